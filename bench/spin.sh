#!/usr/bin/env bash
# Adaptive waiting of the Direct channel (docs/direct.md, "Waiting") against the two
# fixed choices, side by side in one run: the default (adaptive, FMI_DIRECT_SPIN_US
# unset), FMI_DIRECT_SPIN_US=0 (no spinning) and =30 (the fixed spin that was the
# default before), in ROUNDS interleaved rounds (each round runs the three settings,
# in a rotating order), on
#  - latency:  fmi-bench ping-pong of SIZE bytes between 2 functions (median us);
#  - kmeans:   the K-means study (bench/kmeans_study) with KPEERS functions
#              (communication ms per epoch, slowest function, median over epochs);
#  - allreduce-N, bcast-N: fmi-bench collectives of SIZE bytes on COLL_PEERS
#              functions (median us; empty COLL_PEERS skips them).
# Prints each round and then, per benchmark, the median over the rounds, default /
# best of the two fixed settings (issue 14's target: at most 1.2 for latency and
# kmeans) and default / SPIN_US=30 (the collectives must not be slower than that).
# Run it on an idle machine: other jobs make the yields long, so every setting but
# SPIN_US=30 (rightly) sleeps and the numbers say nothing about an idle machine.
#
#   bench/spin.sh                                   # 5 rounds, 16-function K-means
#   ROUNDS=1 ITERS=2000 KPEERS=4 EPOCHS=3 POINTS=2000 COLL_PEERS=4 bench/spin.sh  # quick check
#
# Environment: BUILD_DIR (default build), ROUNDS (5), SIZE (8), ITERS (20000),
# KPEERS (16), EPOCHS (20), POINTS per function (20000), COLL_PEERS (4,8),
# OUT (results folder).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-build}
[[ "$build" = /* ]] || build="$src/$build"
rounds=${ROUNDS:-5}
size=${SIZE:-8}
iters=${ITERS:-20000}
kpeers=${KPEERS:-16}
epochs=${EPOCHS:-20}
points=${POINTS:-20000}
coll_peers=${COLL_PEERS-4,8}
out=${OUT:-$build/bench-results/spin-$(date -u +%Y%m%d-%H%M%S)}

log() { echo "[spin] $*" >&2; }
source "$here/setup.sh"
bench_configure "$src" "$build"
cmake --build "$build" -j2 --target fmi-bench kmeans_bench fmirun fmi-rendezvous >&2
fmib="$build/tools/fmi-bench/fmi-bench"
kb="$build/bench/kmeans_study/kmeans_bench"
fmirun="$build/tools/fmirun/fmirun"

mkdir -p "$out"
SERVER_LOGS=$out
source "$here/servers.sh"  # write_config (no servers: Direct's is started by fmirun)
cfg="$out/config-Direct.json"
write_config Direct "$cfg"

# run_setting NAME CMD...: CMD with FMI_DIRECT_SPIN_US as the setting NAME says
# ("default": unset).
run_setting() {
  local name=$1; shift
  if [[ $name = default ]]; then env -u FMI_DIRECT_SPIN_US "$@"
  else FMI_DIRECT_SPIN_US=$name "$@"; fi
}
latency() {  # "latency <median us>" of the ping-pong row (column 7 of fmi-bench's CSV)
  run_setting "$1" "$fmib" --channel Direct --ops pingpong --peers 2 --sizes "$size" \
    --iters "$iters" --warmup $((iters / 10)) --budget 2 --csv -q 2>>"$out/latency-$1.log" |
    awk -F, '$2 == "pingpong" && $7 ~ /^[0-9.]+$/ { print "latency", $7; exit }'
}
kmeans() {  # "kmeans <communication ms per epoch>" (KMEANS_SUMMARY's median)
  run_setting "$1" "$fmirun" -n "$kpeers" --config "$cfg" --timeout 300 -- "$kb" \
    --epochs "$epochs" --points "$points" --label "Direct-$1" >>"$out/kmeans-$1.log" 2>&1 &&
    echo "kmeans $(grep -o 'KMEANS_SUMMARY,.*' "$out/kmeans-$1.log" | tail -1 | cut -d, -f6)"
}
collectives() {  # "<op>-<peers> <median us>" per row
  run_setting "$1" "$fmib" --channel Direct --ops allreduce,bcast --peers "$coll_peers" \
    --sizes "$size" --iters "$iters" --warmup $((iters / 10)) --budget 2 --csv -q \
    2>>"$out/collectives-$1.log" |
    awk -F, '($2 == "allreduce" || $2 == "bcast") && $7 ~ /^[0-9.]+$/ { print $2 "-" $4, $7 }'
}

settings=(default 0 30)
benches=(latency kmeans)
[[ -z $coll_peers ]] || benches+=(collectives)
rows="$out/rounds.txt"
: >"$rows"
log "$(date -u +%FT%TZ); $(nproc) cores; load $(cut -d' ' -f1-4 /proc/loadavg); $rounds rounds;" \
    "ping-pong $size B x $iters; K-means $kpeers functions x $epochs epochs;" \
    "collectives ${coll_peers:-none}"
printf '%-5s %-8s %-14s %12s\n' round setting benchmark value
for r in $(seq "$rounds"); do
  # Rotate the order so that no setting always runs first (a warm or cold machine).
  for i in 0 1 2; do
    s=${settings[$(((i + r) % 3))]}
    for bench in "${benches[@]}"; do
      got=$($bench "$s" || true)
      [[ -n $got ]] || got="$bench failed"
      while read -r name value; do
        printf '%-5s %-8s %-14s %12s\n' "$r" "$s" "$name" "$value"
        [[ $value = failed ]] || echo "$r $s $name $value" >>"$rows"
      done <<<"$got"
    done
  done
done
python3 - "$rows" <<'PY' | tee "$out/summary.txt"
import statistics, sys
data = {}
for line in open(sys.argv[1]):
    r, s, name, v = line.split()
    data.setdefault(name, {}).setdefault(s, []).append(float(v))
med = lambda xs: statistics.median(xs) if xs else float("nan")
print(f"\n{'':<14} {'default':>10} {'SPIN_US=0':>10} {'SPIN_US=30':>10}"
      f" {'default/best':>13} {'default/30':>11}")
for name in sorted(data, key=lambda n: (n not in ("latency", "kmeans"), n)):
    m = {s: med(data[name].get(s, [])) for s in ("default", "0", "30")}
    best = min(m["0"], m["30"])
    ratio = m["default"] / best if best > 0 else float("nan")
    vs30 = m["default"] / m["30"] if m["30"] > 0 else float("nan")
    unit = "ms" if name == "kmeans" else "us"
    verdict = "" if name not in ("latency", "kmeans") else ("ok" if ratio <= 1.2 else "ABOVE 1.2")
    print(f"{name + ' ' + unit:<14} {m['default']:>10.3f} {m['0']:>10.3f} {m['30']:>10.3f}"
          f" {ratio:>13.2f} {vs30:>11.2f}  {verdict}")
PY
log "results: $out (rounds.txt, summary.txt, *.log)"
