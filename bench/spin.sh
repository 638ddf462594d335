#!/usr/bin/env bash
# Adaptive waiting of the Direct channel (docs/direct.md, "Waiting is adaptive")
# against the two fixed choices, side by side in one run: FMI_DIRECT_SPIN_US=30 (the
# default), =0 (no spinning) and =adaptive, in ROUNDS interleaved
# rounds (each round runs the three settings, in a rotating order), on
#  - latency: fmi-bench ping-pong of SIZE bytes between 2 functions (median us);
#  - kmeans:  the K-means study (bench/kmeans_study) with KPEERS functions
#             (communication ms per epoch, slowest function, median over epochs).
# Prints each round and then, per benchmark, the median over the rounds and the
# ratio adaptive / best of the two fixed settings (target: at most 1.2). Run it on an
# idle machine: with other jobs running the load sampler (rightly) stops spinning
# and the numbers say nothing about an idle one.
#
#   bench/spin.sh                                   # 5 rounds, 16-function K-means
#   ROUNDS=1 ITERS=2000 KPEERS=4 EPOCHS=3 POINTS=2000 bench/spin.sh    # a quick check
#
# Environment: BUILD_DIR (default build), ROUNDS (5), SIZE (8), ITERS (20000),
# KPEERS (16), EPOCHS (20), POINTS per function (20000), OUT (results folder).
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

# run_setting NAME CMD...: CMD with FMI_DIRECT_SPIN_US as the setting NAME says.
run_setting() {
  local name=$1; shift
  if [[ $name = adaptive ]]; then env FMI_DIRECT_SPIN_US=adaptive "$@"
  else FMI_DIRECT_SPIN_US=$name "$@"; fi
}
latency() {  # median us of the ping-pong row (column 7 of fmi-bench's CSV)
  run_setting "$1" "$fmib" --channel Direct --ops pingpong --peers 2 --sizes "$size" \
    --iters "$iters" --warmup $((iters / 10)) --budget 2 --csv -q 2>>"$out/latency-$1.log" |
    awk -F, '$2 == "pingpong" && $7 ~ /^[0-9.]+$/ { print $7; exit }'
}
kmeans() {  # communication ms per epoch (KMEANS_SUMMARY's median)
  run_setting "$1" "$fmirun" -n "$kpeers" --config "$cfg" --timeout 300 -- "$kb" \
    --epochs "$epochs" --points "$points" --label "Direct-$1" >>"$out/kmeans-$1.log" 2>&1 &&
    grep -o 'KMEANS_SUMMARY,.*' "$out/kmeans-$1.log" | tail -1 | cut -d, -f6
}

settings=(30 0 adaptive)
rows="$out/rounds.txt"
: >"$rows"
log "$(date -u +%FT%TZ); $(nproc) cores; load $(cut -d' ' -f1-4 /proc/loadavg); $rounds rounds;" \
    "ping-pong $size B x $iters; K-means $kpeers functions x $epochs epochs"
printf '%-5s %-9s %12s %12s\n' round setting 'latency us' 'kmeans ms'
for r in $(seq "$rounds"); do
  # Rotate the order so that no setting always runs first (a warm or cold machine).
  for i in 0 1 2; do
    s=${settings[$(((i + r) % 3))]}
    l=$(latency "$s" || true); k=$(kmeans "$s" || true)
    printf '%-5s %-9s %12s %12s\n' "$r" "$s" "${l:-failed}" "${k:-failed}"
    echo "$r $s ${l:-nan} ${k:-nan}" >>"$rows"
  done
done
python3 - "$rows" <<'PY' | tee "$out/summary.txt"
import math, statistics, sys
data = {}
for line in open(sys.argv[1]):
    r, s, l, k = line.split()
    data.setdefault(s, {"latency": [], "kmeans": []})
    for name, v in (("latency", l), ("kmeans", k)):
        if not math.isnan(float(v)):
            data[s][name].append(float(v))
med = lambda xs: statistics.median(xs) if xs else float("nan")
print(f"\n{'':<10} {'SPIN_US=30':>11} {'SPIN_US=0':>11} {'adaptive':>11} {'adaptive/best':>14}")
for name, unit in (("latency", "us"), ("kmeans", "ms")):
    m = {s: med(data.get(s, {}).get(name, [])) for s in ("30", "0", "adaptive")}
    best = min(m["30"], m["0"])
    ratio = m["adaptive"] / best if best > 0 else float("nan")
    verdict = "ok" if ratio <= 1.2 else "ABOVE 1.2"
    print(f"{name + ' ' + unit:<10} {m['30']:>11.3f} {m['0']:>11.3f} {m['adaptive']:>11.3f}"
          f" {ratio:>14.2f}  {verdict}")
PY
log "results: $out (rounds.txt, summary.txt, *.log)"
