#!/usr/bin/env bash
# FMI-Direct against the references a user would pick instead, in ONE run on this
# machine: bare blocking TCP over loopback, the same with a busy-polling receiver
# (the floor without wake-ups, rows tcp-spin) and OpenMPI over TCP (Debian's openmpi,
# --mca btl tcp,self); then the set-up time of a full mesh (fmi-bench --ops mesh). Same sizes, same peer counts, same timing
# method (see tools/fmi-bench/bench_common.h). Prints every row, the ratios FMI/TCP
# and FMI/MPI, the targets of issue 8, and writes charts (bench/plot.py).
#
#   bench/compare.sh                         # build/, results in build/bench-results/compare-<date>/
#   BUILD_DIR=build-bench OUT=/tmp/cmp bench/compare.sh
#
# Environment: BUILD_DIR (default build), OUT (results folder), SIZES (default
# 8,1K,64K,1M,64M), PEERS (collectives, default 2,4,8), OPS (collectives, default
# bcast,barrier,allreduce; OPS=alltoallv: skewed counts, peer 0 sends most, the same
# skew in both tools: fmibench::alltoallv_block), BUDGET (seconds of timed iterations per point, default 1),
# NO_INSTALL=1 (never apt-get), NO_PLOTS=1, MESH_PEERS (full-mesh set-up on loopback,
# default 16,64; empty: none), NAT_MESH_PEERS (the same in the NAT lab, root only,
# default 16). STORES=Redis,S3 also measures the storage
# channels (local redis-server and moto, started and stopped here; the build needs
# them) on STORE_SIZES (default 8,1K,64K,1M) with STORE_BUDGET (default 0.5).
#
# The MPI and FMI runs of each peer count follow each other, so both see the same
# load; on a shared machine run it when nothing else is compiling and compare ratios
# from the same run only.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-build}
[[ "$build" = /* ]] || build="$src/$build"
out=${OUT:-$build/bench-results/compare-$(date -u +%Y%m%d-%H%M%S)}
sizes=${SIZES:-8,1K,64K,1M,64M}
peers=${PEERS:-2,4,8}
ops=${OPS:-bcast,barrier,allreduce}
budget=${BUDGET:-1}
stores=${STORES:-}
store_sizes=${STORE_SIZES:-8,1K,64K,1M}
store_budget=${STORE_BUDGET:-0.5}

log() { echo "[compare] $*" >&2; }
# shellcheck source=bench/setup.sh
source "$here/setup.sh"

# ---- what it needs -----------------------------------------------------------
need=()
command -v mpirun >/dev/null || need+=(openmpi-bin)
dpkg -s libopenmpi-dev >/dev/null 2>&1 || need+=(libopenmpi-dev)
if [[ -z "${NO_PLOTS:-}" ]] && ! /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  need+=(python3-matplotlib)
fi
bench_install "${need[@]}"

bench_configure "$src" "$build"
log "building in $build"
cmake --build "$build" -j2 --target tcp_pingpong mpi_bench fmi-bench fmirun fmi-rendezvous >&2

tcp="$build/bench/baseline/tcp_pingpong"
mpi="$build/bench/baseline/mpi_bench"
fmib="$build/tools/fmi-bench/fmi-bench"
for b in "$tcp" "$mpi" "$fmib"; do [[ -x "$b" ]] || { log "missing $b"; exit 1; }; done
mpirun=(mpirun --allow-run-as-root --oversubscribe --mca btl tcp,self --bind-to none)

mkdir -p "$out"
all="$out/all.csv"
echo "tool,op,channel,peers,bytes,iters,median_us,p90_us,min_us,bw_MiBps,pred_us,pred_usd" >"$all"
{ echo "date: $(date -u +%FT%TZ)"; echo "host: $(uname -srm), $(nproc) cores"; uptime;
  echo "sizes=$sizes peers=$peers ops=$ops budget=$budget"; } >"$out/environment.txt"
log "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- point to point: 2 peers ------------------------------------------------------
log "bare TCP ping-pong and stream"
"$tcp" --sizes "$sizes" --budget "$budget" --csv | tail -n +2 >>"$all"
log "bare TCP with a busy-polling receiver (the floor without wake-ups)"
"$tcp" --spin --sizes "$sizes" --budget "$budget" --csv | tail -n +2 >>"$all"
log "OpenMPI ping-pong and bandwidth"
"${mpirun[@]}" -n 2 "$mpi" --ops pingpong,bandwidth --sizes "$sizes" --budget "$budget" \
  --csv --no-header >>"$all"
log "FMI Direct ping-pong and bandwidth"
"$fmib" --channel Direct --ops pingpong,bandwidth --peers 2 --sizes "$sizes" --budget "$budget" \
  --csv | tail -n +2 >>"$all"

# ---- collectives: per peer count, MPI then FMI ---------------------------------------
IFS=, read -ra plist <<<"$peers"
for p in "${plist[@]}"; do
  log "OpenMPI $ops on $p peers"
  "${mpirun[@]}" -n "$p" "$mpi" --ops "$ops" --sizes "$sizes" --budget "$budget" \
    --csv --no-header >>"$all"
  log "FMI Direct $ops on $p peers"
  "$fmib" --channel Direct --ops "$ops" --peers "$p" --sizes "$sizes" --budget "$budget" \
    --csv | tail -n +2 >>"$all"
done

# ---- set-up of a full mesh (issue 3) --------------------------------------------------
# A new communicator per iteration: registration, endpoint table, every connection.
# On loopback for MESH_PEERS (default 16,64); behind one NAT per function in the NAT
# lab (fmirun --nat, root only) for NAT_MESH_PEERS (default 16), rows "Direct-NAT".
mesh_peers=${MESH_PEERS-16,64}
nat_mesh_peers=${NAT_MESH_PEERS-16}
if [[ -n "$mesh_peers" ]]; then
  log "FMI Direct full-mesh set-up on loopback, $mesh_peers functions"
  "$fmib" --channel Direct --ops mesh --peers "$mesh_peers" --iters 100 --budget 3 --csv -q |
    tail -n +2 >>"$all"
fi
if [[ -n "$nat_mesh_peers" && $(id -u) -eq 0 ]]; then
  log "FMI Direct full-mesh set-up in the NAT lab, $nat_mesh_peers functions"
  "$fmib" --channel Direct --ops mesh --peers "$nat_mesh_peers" --iters 100 --budget 3 --nat \
    --csv -q | tail -n +2 | awk -F, -v OFS=, '{ $3 = "Direct-NAT"; print }' >>"$all"
fi

# ---- storage channels (optional) ---------------------------------------------------
if [[ -n "$stores" ]]; then
  SERVER_LOGS=$out
  source "$here/servers.sh"  # start_redis, start_moto, write_config; stops them on exit
  IFS=, read -ra slist <<<"$stores"
  for ch in "${slist[@]}"; do
    case $ch in
      Redis) start_redis;;
      S3) start_moto;;
      *) log "STORES: unknown channel $ch (Redis, S3)"; exit 2;;
    esac
    write_config "$ch" "$out/config-$ch.json"
    log "FMI $ch ping-pong and bandwidth"
    "$fmib" --channel "$ch" --config "$out/config-$ch.json" --ops pingpong,bandwidth --peers 2 \
      --sizes "$store_sizes" --budget "$store_budget" --warmup 3 --csv | tail -n +2 >>"$all" ||
      log "FMI $ch point-to-point failed"
    log "FMI $ch $ops on $peers peers"
    "$fmib" --channel "$ch" --config "$out/config-$ch.json" --ops "$ops" --peers "$peers" \
      --sizes "$store_sizes" --budget "$store_budget" --warmup 3 --csv | tail -n +2 >>"$all" ||
      log "FMI $ch collectives failed"
  done
fi
log "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- ratios and targets ------------------------------------------------------------
python3 - "$all" <<'EOF' | tee "$out/summary.txt"
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
def get(tool, op, peers, size, channel=None):
    for r in rows:
        if (r["tool"] == tool and r["op"] == op and int(r["peers"]) == peers
                and int(r["bytes"]) == size and (channel is None or r["channel"] == channel)):
            return r
    return None
def med(r): return float(r["median_us"]) if r else None
def fmt(v, unit="us"):
    if v is None: return "n/a"
    return f"{v/1000:.2f} ms" if unit == "us" and v >= 10000 else f"{v:.2f} {unit}"

print("\nAll points: median time, FMI Direct / OpenMPI-TCP and FMI Direct / bare TCP"
      " (tcp: blocking recv; tcp-spin: busy-polling recv)")
print(f"{'op':<10} {'peers':>5} {'bytes':>10} {'tcp':>12} {'tcp-spin':>12} {'mpi':>12} {'fmi':>12} {'fmi/mpi':>8} {'fmi/tcp':>8} {'fmi/spin':>8}")
keys = sorted({(r["op"], int(r["peers"]), int(r["bytes"])) for r in rows
               if r["tool"] == "fmi" and r["channel"] == "Direct"})
for op, p, b in keys:
    f = med(get("fmi", op, p, b, "Direct")); m = med(get("mpi", op, p, b)); t = med(get("tcp", op, p, b))
    ts = med(get("tcp-spin", op, p, b))
    ratio = lambda a, b: f"{a/b:.2f}" if a and b else "-"
    print(f"{op:<10} {p:>5} {b:>10} {fmt(t):>12} {fmt(ts):>12} {fmt(m):>12} {fmt(f):>12}"
          f" {ratio(f, m):>8} {ratio(f, t):>8} {ratio(f, ts):>8}")

print("\nTargets of issue 8 (same run)")
def target(name, f, ref, refname, limit):
    if f is None or ref is None:
        print(f"  {name}: not measured"); return
    ratio = f / ref
    goal = "" if limit == float("inf") else f" (target <= {limit}) " + ("MET" if ratio <= limit else "NOT MET")
    print(f"  {name}: FMI {fmt(f)}, {refname} {fmt(ref)}, ratio {ratio:.2f}{goal}")
target("8 B ping-pong one-way latency vs bare TCP", med(get("fmi", "pingpong", 2, 8, "Direct")),
       med(get("tcp", "pingpong", 2, 8)), "TCP", 1.0)
target("8 B ping-pong one-way latency vs busy-polling TCP (FMI's own overhead)",
       med(get("fmi", "pingpong", 2, 8, "Direct")), med(get("tcp-spin", "pingpong", 2, 8)),
       "TCP-spin", float("inf"))
target("8 B ping-pong one-way latency vs OpenMPI", med(get("fmi", "pingpong", 2, 8, "Direct")),
       med(get("mpi", "pingpong", 2, 8)), "MPI", float("inf"))
big = 64 << 20
fb = get("fmi", "bandwidth", 2, big, "Direct"); tb = get("tcp", "bandwidth", 2, big)
if fb and tb:
    r = float(fb["bw_MiBps"]) / float(tb["bw_MiBps"])
    print(f"  64 MiB bandwidth: FMI {float(fb['bw_MiBps']):.0f} MiB/s, TCP {float(tb['bw_MiBps']):.0f} MiB/s,"
          f" ratio {r:.2f} (issue 3 target >= 0.8) {'MET' if r >= 0.8 else 'NOT MET'}")
for ch, where in (("Direct", "loopback"), ("Direct-NAT", "NAT lab")):
    for r in rows:
        if r["tool"] == "fmi" and r["op"] == "mesh" and r["channel"] == ch:
            p, m = int(r["peers"]), float(r["median_us"])
            goal = " (issue 3 target < 0.5 s) " + ("MET" if m < 5e5 else "NOT MET") if ch == "Direct-NAT" and p == 16 else ""
            print(f"  full mesh of {p} functions, {where}: median {fmt(m)}, p90 {fmt(float(r['p90_us']))},"
                  f" {r['iters']} set-ups{goal}")
target("allreduce 64 MiB float32, 4 peers, vs OpenMPI", med(get("fmi", "allreduce", 4, big, "Direct")),
       med(get("mpi", "allreduce", 4, big)), "MPI", 0.8)
for r in rows:
    if r["tool"] == "fmi" and r["op"] == "alltoallv" and r["channel"] == "Direct":
        p, b = int(r["peers"]), int(r["bytes"])
        target(f"alltoallv skewed (peer 0 sends {b} B per peer), {p} peers, vs OpenMPI",
               float(r["median_us"]), med(get("mpi", "alltoallv", p, b)), "MPI", float("inf"))
for op in ("bcast", "barrier"):
    sizes = sorted({int(r["bytes"]) for r in rows if r["op"] == op and int(r["peers"]) == 8})
    for b in sizes:
        target(f"{op} {b} B, 8 peers, vs OpenMPI", med(get("fmi", op, 8, b, "Direct")),
               med(get("mpi", op, 8, b)), "MPI", 1.5)
stores = sorted({r["channel"] for r in rows if r["tool"] == "fmi" and r["channel"] in ("Redis", "S3")})
if stores:
    print("\nStorage channels: median time and slowdown against FMI Direct")
    for r in rows:
        if r["tool"] != "fmi" or r["channel"] not in stores:
            continue
        d = med(get("fmi", r["op"], int(r["peers"]), int(r["bytes"]), "Direct"))
        m = float(r["median_us"])
        print(f"  {r['channel']:<6} {r['op']:<10} {r['peers']:>2} peers {int(r['bytes']):>9} B: {fmt(m):>12}"
              + (f"  ({m/d:.0f}x Direct)" if d else ""))
EOF

if [[ -z "${NO_PLOTS:-}" ]]; then
  /usr/bin/python3 "$here/plot.py" "$all" --out "$out/img" >&2 || log "plotting failed"
fi
log "results: $out (all.csv, summary.txt, img/)"
