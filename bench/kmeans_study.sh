#!/usr/bin/env bash
# The FMI paper's case study on this machine: distributed K-means (HIGGS-like data
# generated deterministically: 28 features, 3 clusters; one allreduce of the
# centroid sums per epoch) with 2, 4, 8 and 16 functions over each channel: Direct
# (TCP, rendezvous server started by fmirun), Redis (a local redis-server) and S3 (a
# local moto server). Prints the per-epoch communication time and the modelled cost
# per 1,000 epochs per channel, and the speed-up and cost ratio of Direct over the
# storage channels. Not part of ctest; about 3-5 minutes with the defaults.
#
#   bench/kmeans_study.sh
#   BUILD_DIR=build-bench PEERS=2,4 CHANNELS=Direct,Redis EPOCHS=10 bench/kmeans_study.sh
#
# Environment: BUILD_DIR (default build; must be built with the channels to study),
# OUT (results folder), PEERS (2,4,8,16), CHANNELS (Direct,Redis,S3), EPOCHS (20),
# POINTS per function (20000), MEMORY of a function in MiB for the cost model (1024),
# MOTO_PYTHON (an interpreter with moto; default: pyenv's python3, then python3),
# INFRA=0 (leave the Redis instance and rendezvous VM out of the cost model).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-build}
[[ "$build" = /* ]] || build="$src/$build"
out=${OUT:-$build/bench-results/kmeans-$(date -u +%Y%m%d-%H%M%S)}
peers=${PEERS:-2,4,8,16}
channels=${CHANNELS:-Direct,Redis,S3}
epochs=${EPOCHS:-20}
points=${POINTS:-20000}
memory=${MEMORY:-1024}

log() { echo "[kmeans_study] $*" >&2; }

if [[ ! -f "$build/build.ninja" && ! -f "$build/Makefile" ]]; then
  log "configuring $build"
  gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  cmake -S "$src" -B "$build" "${gen[@]}" >&2
fi
log "building kmeans_bench, fmirun, fmi-rendezvous in $build"
cmake --build "$build" -j2 --target kmeans_bench fmirun fmi-rendezvous >&2
kb="$build/bench/kmeans_study/kmeans_bench"
fmirun="$build/tools/fmirun/fmirun"

mkdir -p "$out"
SERVER_LOGS=$out
source "$here/servers.sh"  # start_redis, start_moto, write_config; stops them on exit

IFS=, read -ra chlist <<<"$channels"
IFS=, read -ra plist <<<"$peers"
for ch in "${chlist[@]}"; do
  case $ch in
    Redis) start_redis;;
    S3) start_moto;;
    Direct) ;;
    *) log "unknown channel $ch (Direct, Redis, S3)"; exit 2;;
  esac
done

lines="$out/kmeans.csv"
: >"$lines"
for ch in "${chlist[@]}"; do
  for p in "${plist[@]}"; do
    cfg="$out/config-$ch.json"
    write_config "$ch" "$cfg"
    log "$ch, $p functions, $epochs epochs"
    t0=$(date +%s.%N)
    if "$fmirun" -n "$p" --config "$cfg" --timeout 300 -- "$kb" --epochs "$epochs" \
         --points "$points" --memory "$memory" --label "$ch" >"$out/run-$ch-$p.log" 2>&1; then
      grep -o 'KMEANS_[A-Z]*,.*' "$out/run-$ch-$p.log" >>"$lines" || true
    else
      log "  failed (see $out/run-$ch-$p.log):"; tail -3 "$out/run-$ch-$p.log" >&2
    fi
    log "  $(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f s", t1 - t0 }')"
  done
done

python3 - "$lines" "$memory" <<'EOF' | tee "$out/summary.txt"
import sys
from collections import defaultdict
epochs = defaultdict(list)
summ = {}
for line in open(sys.argv[1]):
    f = line.strip().split(",")
    if f[0] == "KMEANS_EPOCH":
        epochs[(f[1], int(f[2]))].append(float(f[4]))
    elif f[0] == "KMEANS_SUMMARY":
        summ[(f[1], int(f[2]))] = dict(epochs=int(f[3]), bytes=int(f[4]), med=float(f[5]),
                                        p90=float(f[6]), mean=float(f[7]), model_ms=float(f[8]),
                                        model_usd=float(f[9]), meas_usd=float(f[10]))
if not summ:
    sys.exit("kmeans_study: no results")
print(f"\nK-means, one allreduce of the centroids per epoch (function memory {sys.argv[2]} MiB)")
print("communication time per epoch = the allreduce, slowest function, median over the epochs")
print(f"{'channel':<8} {'funcs':>5} {'bytes':>6} {'comm median':>12} {'p90':>10} {'model':>10}"
      f" {'USD/1000 ep (model)':>20} {'(measured time)':>16}")
for (ch, p), s in sorted(summ.items(), key=lambda kv: (kv[0][0], kv[0][1])):
    print(f"{ch:<8} {p:>5} {s['bytes']:>6} {s['med']:>9.3f} ms {s['p90']:>7.3f} ms {s['model_ms']:>7.2f} ms"
          f" {s['model_usd']:>20.3e} {s['meas_usd']:>16.3e}")
print("\nDirect over the storage channels (same peer count): speed-up = storage time / Direct"
      " time per epoch; cost ratio = storage cost / Direct cost per 1,000 epochs"
      " (above 1: Direct is cheaper)")
for store in ("Redis", "S3"):
    for p in sorted({p for (_, p) in summ}):
        d, s = summ.get(("Direct", p)), summ.get((store, p))
        if not d or not s:
            continue
        speed = s["med"] / d["med"] if d["med"] > 0 else float("nan")
        cm = s["model_usd"] / d["model_usd"] if d["model_usd"] > 0 else float("nan")
        cr = s["meas_usd"] / d["meas_usd"] if d["meas_usd"] > 0 else float("nan")
        print(f"  {store:<5} {p:>2} functions: speed-up {speed:7.2f}, "
              f"cost ratio {cm:7.2f} (model), {cr:7.2f} (measured time)")
EOF
log "results: $out (kmeans.csv, summary.txt, run-*.log)"
