#!/usr/bin/env bash
# The MPI layer's overhead: OSU-style ping-pong latency (2 functions) and an
# MPI_Allreduce sweep (PEERS functions) through
#   fmi-mpi  = bench/mpi/mpi_sweep.c built with fmi-mpicc, run with fmirun over Direct;
#   fmi-cxx  = fmi-bench (the C++ API) over Direct, same sizes and iterations;
#   openmpi  = the same mpi_sweep.c built with OpenMPI's mpicc, mpirun --mca btl tcp,self.
# All on loopback. Prints one CSV (fmi-bench's columns) with every row, then a table of
# medians with the ratios fmi-mpi/fmi-cxx (the layer's overhead) and fmi-mpi/openmpi.
#
#   bench/mpi.sh                                     # 8 B .. 1 MiB, 4 peers, 1000 iterations
#   SIZES=8,64 PEERS=3 ITERS=20 bench/mpi.sh         # a tiny run (what the tests check)
#   BUILD_DIR=build-bench CONFIG=config/fmi.json bench/mpi.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-build}
[[ "$build" = /* ]] || build="$src/$build"
sizes=${SIZES:-8,64,512,4096,32768,262144,1048576}
peers=${PEERS:-4}
iters=${ITERS:-1000}
warmup=${WARMUP:-10}
config=${CONFIG:-$src/config/fmi.json}
[[ "$config" = /* ]] || config="$src/$config"

cmake --build "$build" -j2 --target fmi_mpi fmirun fmi-rendezvous fmi-bench >&2
fmirun="$build/tools/fmirun/fmirun"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/tools/fmi-mpicc/fmi-mpicc" -O2 -o "$work/sweep-fmi" "$here/mpi/mpi_sweep.c"
mpicc -O2 -o "$work/sweep-ompi" "$here/mpi/mpi_sweep.c"
mpirun=(mpirun --oversubscribe --mca btl tcp,self --mca btl_tcp_if_include lo --bind-to none)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
run_fmi() { "$fmirun" -n "$1" --rendezvous-port 0 --timeout 600 --config "$config" -- "$work/sweep-fmi" "${@:2}"; }

echo "date: $(date -u +%FT%TZ); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
{
  echo "tool,op,channel,peers,bytes,iters,median_us,p90_us,min_us,bw_MiBps,pred_us,pred_usd"
  run_fmi 2 fmi-mpi pingpong "$sizes" "$iters" "$warmup" | sed 's/^\[peer [0-9]*\] //; s/,MPI,/,Direct,/'
  run_fmi "$peers" fmi-mpi allreduce "$sizes" "$iters" "$warmup" | sed 's/^\[peer [0-9]*\] //; s/,MPI,/,Direct,/'
  "$build/tools/fmi-bench/fmi-bench" --fmirun "$fmirun" --config "$config" --channel Direct --hint fast \
    --ops pingpong --peers 2 --sizes "$sizes" --iters "$iters" --min-iters "$iters" --warmup "$warmup" \
    --csv -q | tail -n +2 | sed 's/^[^,]*,/fmi-cxx,/'
  "$build/tools/fmi-bench/fmi-bench" --fmirun "$fmirun" --config "$config" --channel Direct --hint fast \
    --ops allreduce --peers "$peers" --sizes "$sizes" --iters "$iters" --min-iters "$iters" \
    --warmup "$warmup" --csv -q | tail -n +2 | sed 's/^[^,]*,/fmi-cxx,/'
  "${mpirun[@]}" -n 2 "$work/sweep-ompi" openmpi pingpong "$sizes" "$iters" "$warmup" | sed 's/,MPI,/,TCP,/'
  "${mpirun[@]}" -n "$peers" "$work/sweep-ompi" openmpi allreduce "$sizes" "$iters" "$warmup" | sed 's/,MPI,/,TCP,/'
} | tee "$work/all.csv"

echo
python3 - "$work/all.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
med = {(r["tool"], r["op"], int(r["bytes"])): float(r["median_us"]) for r in rows}
print(f'{"op":10} {"peers":>5} {"bytes":>9} {"fmi-mpi":>9} {"fmi-cxx":>9} {"openmpi":>9} {"mpi/cxx":>8} {"mpi/ompi":>8}  (median us)')
for op in ("pingpong", "allreduce"):
    peers = next((r["peers"] for r in rows if r["op"] == op), "?")
    for b in sorted({k[2] for k in med if k[1] == op}):
        m, c, o = (med.get((t, op, b)) for t in ("fmi-mpi", "fmi-cxx", "openmpi"))
        f = lambda x: f"{x:9.2f}" if x is not None else f'{"-":>9}'
        ratio = lambda x, y: f"{x / y:8.2f}" if x and y else f'{"-":>8}'
        print(f"{op:10} {peers:>5} {b:>9} {f(m)} {f(c)} {f(o)} {ratio(m, c)} {ratio(m, o)}")
PY
