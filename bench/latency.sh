#!/usr/bin/env bash
# Small-message one-way latency of FMI Direct against its baselines, in ROUNDS
# interleaved rounds (one run of each tool per round, same order), because a single
# run on a shared or virtual machine is noise: the idle state of the vCPUs alone
# moves bare blocking TCP between ~4 and ~50 us here. Prints each round's medians and
# ratios, then the median of each ratio over the rounds.
#
#   bench/latency.sh                       # 7 rounds, 8 bytes, build/
#   ROUNDS=11 SIZE=64 BUILD_DIR=build-bench bench/latency.sh
#
# Baselines: tcp = bench/baseline/tcp_pingpong (blocking recv, what a plain TCP
# program does); tcp-spin = the same with a busy-polling receiver (the floor without
# wake-ups); mpi = OpenMPI over TCP (--mca btl tcp,self); fmi = fmi-bench over Direct
# (loopback, rendezvous server started by fmirun).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-build}
[[ "$build" = /* ]] || build="$src/$build"
rounds=${ROUNDS:-7}
size=${SIZE:-8}
iters=${ITERS:-20000}

cmake --build "$build" -j2 --target tcp_pingpong mpi_bench fmi-bench fmirun fmi-rendezvous >&2
tcp="$build/bench/baseline/tcp_pingpong"
mpi="$build/bench/baseline/mpi_bench"
fmib="$build/tools/fmi-bench/fmi-bench"
mpirun=(mpirun --allow-run-as-root --oversubscribe --mca btl tcp,self --bind-to none)
common=(--sizes "$size" --iters "$iters" --warmup 2000 --budget 2 --csv)

# median_us (column 7) of the ping-pong row of a CSV on stdin
median() { awk -F, '$2 == "pingpong" && $7 ~ /^[0-9.]+$/ { print $7; exit }'; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "date: $(date -u +%FT%TZ); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $size B, $rounds rounds" >&2
printf '%-6s %10s %10s %10s %10s %9s %9s %9s\n' round tcp tcp-spin mpi fmi fmi/tcp fmi/spin fmi/mpi
for r in $(seq "$rounds"); do
  t=$("$tcp" "${common[@]}" | median)
  ts=$("$tcp" --spin "${common[@]}" | median)
  m=$("${mpirun[@]}" -n 2 "$mpi" --ops pingpong "${common[@]}" --no-header 2>/dev/null | median)
  f=$("$fmib" --channel Direct --ops pingpong --peers 2 "${common[@]}" -q 2>/dev/null | median)
  echo "$r $t $ts $m $f" >>"$out"
  awk -v r="$r" -v t="$t" -v ts="$ts" -v m="$m" -v f="$f" 'BEGIN {
    printf "%-6s %10.2f %10.2f %10.2f %10.2f %9.2f %9.2f %9.2f\n", r, t, ts, m, f, f / t, f / ts, f / m }'
done
python3 - "$out" <<'EOF'
import statistics, sys
rows = [list(map(float, l.split()[1:])) for l in open(sys.argv[1]) if l.strip()]
col = lambda i: [r[i] for r in rows]
med = statistics.median
print(f"{'median':<6} {med(col(0)):10.2f} {med(col(1)):10.2f} {med(col(2)):10.2f} {med(col(3)):10.2f}"
      f" {med([r[3] / r[0] for r in rows]):9.2f} {med([r[3] / r[1] for r in rows]):9.2f}"
      f" {med([r[3] / r[2] for r in rows]):9.2f}   (us; ratios: median over rounds)")
wins = sum(r[3] <= r[0] for r in rows)
print(f"FMI no slower than bare blocking TCP in {wins} of {len(rows)} rounds")
EOF
