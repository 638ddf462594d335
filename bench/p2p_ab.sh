#!/usr/bin/env bash
# Direct's point-to-point path, two builds side by side with OpenMPI-TCP, in ROUNDS
# interleaved rounds (medians over the rounds of each point's median): 2-function
# ping-pong and bandwidth at SIZES, bcast of BCAST_SIZES on 4 functions. Plaintext
# (backends.Direct.encryption false) unless ENCRYPTED=1. Run it on an idle machine.
#
#   OLD=build-old NEW=build bench/p2p_ab.sh      # OLD: a build of the tree to compare with
#   ROUNDS=1 SIZES=8,64K BCAST_SIZES=8 OLD=build NEW=build bench/p2p_ab.sh   # smoke run
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
abs() { [[ "$1" = /* ]] && echo "$1" || echo "$src/$1"; }
old=$(abs "${OLD:?OLD=<build folder of the tree to compare with>}")
new=$(abs "${NEW:-build}")
rounds=${ROUNDS:-3}
sizes=${SIZES:-8,64K,1M,64M}
bcast_sizes=${BCAST_SIZES:-1M}
budget=${BUDGET:-0.3}
for b in "$old" "$new"; do
  cmake --build "$b" -j2 --target fmi-bench fmirun fmi-rendezvous mpi_bench >&2
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=bench/setup.sh
source "$here/setup.sh"
bench_direct_configs "$src" "$work"
config="$work/plain.json"
[[ -z "${ENCRYPTED:-}" ]] || config="$work/enc.json"
# shellcheck disable=SC2054  # tcp,self is one MCA value
mpirun=(mpirun --allow-run-as-root --oversubscribe --mca btl tcp,self --bind-to none)
mpi="$new/bench/baseline/mpi_bench"
common=(--budget "$budget" --csv)
echo "date: $(date -u +%FT%TZ); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for ((r = 1; r <= rounds; r++)); do
  for pair in "old:$old" "new:$new"; do
    name=${pair%%:*} b=${pair#*:}
    fb=("$b/tools/fmi-bench/fmi-bench" --config "$config" --channel Direct -q "${common[@]}")
    "${fb[@]}" --peers 2 --ops pingpong,bandwidth --sizes "$sizes" | sed -n "s/^fmi,/$r,$name,/p"
    "${fb[@]}" --peers 4 --ops bcast --sizes "$bcast_sizes" | sed -n "s/^fmi,/$r,$name,/p"
  done
  "${mpirun[@]}" -n 2 "$mpi" --ops pingpong,bandwidth --sizes "$sizes" "${common[@]}" --no-header |
    sed -n "s/^mpi,/$r,mpi,/p"
  "${mpirun[@]}" -n 4 "$mpi" --ops bcast --sizes "$bcast_sizes" "${common[@]}" --no-header |
    sed -n "s/^mpi,/$r,mpi,/p"
done >"$work/rounds.csv"
python3 - "$work/rounds.csv" <<'PY'
import collections, csv, statistics, sys
per = collections.defaultdict(list)
for row in csv.reader(open(sys.argv[1])):
    _, impl, op, _, peers, size, _, median = row[:8]
    per[(op, int(peers), int(size), impl)].append(float(median))
points = sorted({k[:3] for k in per})
med = {k: statistics.median(v) for k, v in per.items()}
print(f'{"op":10}{"peers":>6}{"bytes":>10}{"old us":>12}{"new us":>12}{"mpi us":>12}'
      f'{"new/old":>9}{"new/mpi":>9}{"old/mpi":>9}')
for p in points:
    o, n, m = (med.get(p + (i,)) for i in ("old", "new", "mpi"))
    f = lambda x: f"{x:12.1f}" if x else f'{"-":>12}'
    q = lambda x, y: f"{x / y:9.2f}" if x and y else f'{"-":>9}'
    print(f"{p[0]:10}{p[1]:>6}{p[2]:>10}{f(o)}{f(n)}{f(m)}{q(n, o)}{q(n, m)}{q(o, m)}")
PY
