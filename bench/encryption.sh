#!/usr/bin/env bash
# The cost of Direct's encryption (issue 15), side by side in one run: every round
# runs the same points encrypted (the default), plaintext (backends.Direct.encryption
# false) and over OpenMPI-TCP, interleaved, and prints the medians of the rounds'
# medians, the medians of the per-round ratios and the three targets:
#   8-byte one-way latency (2 functions)      encrypted at most 2 us above plaintext
#   64 MiB bandwidth (2 functions)            encrypted at least 0.7x plaintext
#   allreduce of 64 MiB on 4 functions        encrypted at most 0.8x OpenMPI-TCP
# 4 functions share this machine's cores when it has fewer than 4 (the allreduce
# then counts the cipher's CPU time in full). Run it on an idle machine.
#
#   bench/encryption.sh                       # build/, 5 rounds
#   ROUNDS=9 BUDGET=0.5 BUILD_DIR=build-bench bench/encryption.sh
#
# Environment: BUILD_DIR (default build), ROUNDS (default 5), BUDGET (seconds of
# timed iterations per point, default 0.3), EXTRA_SIZES (more 2-function sizes for
# the table, e.g. 64K,1M; the targets use 8 B and 64 MiB only).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-build}
[[ "$build" = /* ]] || build="$src/$build"
rounds=${ROUNDS:-5}
budget=${BUDGET:-0.3}
sizes=8,64M${EXTRA_SIZES:+,$EXTRA_SIZES}

cmake --build "$build" -j2 --target fmi-bench fmirun fmi-rendezvous mpi_bench >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=bench/setup.sh
source "$here/setup.sh"
bench_direct_configs "$src" "$work"
# shellcheck disable=SC2054  # tcp,self is one MCA value
mpirun=(mpirun --allow-run-as-root --oversubscribe --mca btl tcp,self --bind-to none)
mpi="$build/bench/baseline/mpi_bench"
common=(--budget "$budget" --csv)
echo "date: $(date -u +%FT%TZ); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg);" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)" >&2
for ((r = 1; r <= rounds; r++)); do
  echo "round $r/$rounds" >&2
  for cfg in enc plain; do
    fb=("$build/tools/fmi-bench/fmi-bench" --config "$work/$cfg.json" --channel Direct -q "${common[@]}")
    "${fb[@]}" --peers 2 --ops pingpong,bandwidth --sizes "$sizes" | sed -n "s/^fmi,/$r,$cfg,/p"
    "${fb[@]}" --peers 4 --ops allreduce --sizes 64M | sed -n "s/^fmi,/$r,$cfg,/p"
  done
  "${mpirun[@]}" -n 2 "$mpi" --ops pingpong,bandwidth --sizes "$sizes" "${common[@]}" --no-header |
    sed -n "s/^mpi,/$r,mpi,/p"
  "${mpirun[@]}" -n 4 "$mpi" --ops allreduce --sizes 64M "${common[@]}" --no-header |
    sed -n "s/^mpi,/$r,mpi,/p"
done >"$work/rounds.csv" 2> >(grep -v '^fmirun: started' >&2)
python3 - "$work/rounds.csv" <<'PY'
import collections, csv, statistics, sys
t = collections.defaultdict(dict)  # (op, peers, bytes) -> {(round, impl): median us}
for row in csv.reader(open(sys.argv[1])):
    rnd, impl, op, _, peers, size, _, median = row[:8]
    t[(op, int(peers), int(size))][(int(rnd), impl)] = float(median)
rounds = sorted({r for v in t.values() for r, _ in v})
def med(p, impl):
    v = [t[p][(r, impl)] for r in rounds if (r, impl) in t[p]]
    return statistics.median(v) if v else None
def ratio(p, a, b):
    v = [t[p][(r, a)] / t[p][(r, b)] for r in rounds if (r, a) in t[p] and (r, b) in t[p]]
    return statistics.median(v) if v else None
def diff(p, a, b):
    v = [t[p][(r, a)] - t[p][(r, b)] for r in rounds if (r, a) in t[p] and (r, b) in t[p]]
    return statistics.median(v) if v else None
fmt = lambda x, w=12, d=2: f"{x:{w}.{d}f}" if x is not None else f'{"-":>{w}}'
print(f'{"op":10}{"peers":>6}{"bytes":>10} |{"enc us":>12}{"plain us":>12}{"mpi us":>12} |'
      f'{"enc/plain":>10}{"enc-plain":>10}{"enc/mpi":>9}{"plain/mpi":>10}')
for p in sorted(t):
    print(f"{p[0]:10}{p[1]:>6}{p[2]:>10} |{fmt(med(p, 'enc'))}{fmt(med(p, 'plain'))}"
          f"{fmt(med(p, 'mpi'))} |{fmt(ratio(p, 'enc', 'plain'), 10)}"
          f"{fmt(diff(p, 'enc', 'plain'), 10)}{fmt(ratio(p, 'enc', 'mpi'), 9)}"
          f"{fmt(ratio(p, 'plain', 'mpi'), 10)}")
print(f"({len(rounds)} rounds; ratios and differences are medians of per-round values)")
lat = diff(("pingpong", 2, 8), "enc", "plain")
bw = ratio(("bandwidth", 2, 64 << 20), "plain", "enc")  # bandwidth ratio = inverse time ratio
ar = ratio(("allreduce", 4, 64 << 20), "enc", "mpi")
for name, val, ok in (
    ("8-byte one-way latency, encrypted - plaintext (us), at most 2", lat, lat is not None and lat <= 2),
    ("64 MiB bandwidth, encrypted / plaintext, at least 0.7", bw, bw is not None and bw >= 0.7),
    ("allreduce 64 MiB on 4, encrypted / OpenMPI-TCP time, at most 0.8", ar, ar is not None and ar <= 0.8),
):
    print(f"target: {name}: {fmt(val, 0)} {'met' if ok else 'NOT met'}")
PY
