#!/usr/bin/env bash
# Every collective, FMI Direct next to OpenMPI over TCP and Gloo over TCP (issue 21),
# in one command:
# bcast, reduce, allreduce, scan, gather, scatter, allgather, alltoall,
# reduce_scatter and barrier at 8 B to 64 MiB per peer on 2, 4 and 8 functions.
# Each round runs, per peer count, mpi_bench (mpirun --mca btl tcp,self) and then
# fmi-bench (--channel Direct) with the same options and timing method
# (tools/fmi-bench/bench_common.h), and gloo_bench (bench/baseline/gloo_bench.cpp,
# Debian's libgloo-dev: every collective but scan and reduce_scatter, which Gloo
# lacks: n/a in the table); ROUNDS rounds are interleaved so that all see the same
# load, and the table gives the median over rounds of each point's median time, the
# ratio FMI/MPI and its spread over the rounds, Gloo's time ("gloo us") and the
# ratio FMI/Gloo ("fmi/gloo"). NO_GLOO=1 leaves Gloo out. The ratio chart goes to
# docs/img/collectives_ratio.{png,svg} (bench/plot.py; skipped with a message if
# matplotlib is missing).
#
#   bench/collectives.sh                                   # everything (~1 h on 2 cores)
#   SIZES=8,64K PEERS=2,3 BUDGET=0.05 ROUNDS=1 bench/collectives.sh   # a smoke run
#
# Sweeps for the thresholds of src/collectives/algorithm.cpp: ALGORITHMS lists FMI
# variants, space-separated, each an FMI_ALGORITHM value ("auto" = the automatic
# choice), SEGMENTS lists FMI_SEGMENT_BYTES values for the pipelined algorithms;
# every (algorithm, segment) variant runs in every round and gets its own column
# (rows "Direct[bcast=pipeline;65536]" in the CSV, "+" for the commas of FMI_ALGORITHM), with its ratio to MPI and to
# the automatic choice:
#
#   OPS=bcast ALGORITHMS="auto bcast=binomial bcast=scatter_allgather bcast=pipeline" \
#     SIZES=64K,256K,1M,4M,16M bench/collectives.sh
#   OPS=scan ALGORITHMS="scan=recursive_doubling scan=pipeline" SEGMENTS="65536 131072 262144" \
#     bench/collectives.sh
#
# Environment: BUILD_DIR (default build), OUT (results folder, default
# build/bench-results/collectives-<date>), SIZES (default 8,1K,64K,1M,16M,64M),
# PEERS (default 2,4,8), OPS (default all ten), BUDGET (seconds of timed iterations
# per point, default 0.5), ROUNDS (default 3), MAX_BUFFER (points needing more
# memory per peer are skipped by both tools, default 512M), ALGORITHMS (default
# auto), SEGMENTS (default: kSegment), IMG (chart folder, default docs/img),
# NO_PLOTS=1, NO_INSTALL=1 (never apt-get). Run it on an idle machine and compare
# ratios from one run only.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-build}
[[ "$build" = /* ]] || build="$src/$build"
out=${OUT:-$build/bench-results/collectives-$(date -u +%Y%m%d-%H%M%S)}
sizes=${SIZES:-8,1K,64K,1M,16M,64M}
peers=${PEERS:-2,4,8}
ops=${OPS:-bcast,reduce,allreduce,scan,gather,scatter,allgather,alltoall,reduce_scatter,barrier}
budget=${BUDGET:-0.5}
rounds=${ROUNDS:-3}
max_buffer=${MAX_BUFFER:-512M}
algorithms=${ALGORITHMS:-auto}
segments=${SEGMENTS:-default}
img=${IMG:-$src/docs/img}

log() { echo "[collectives] $*" >&2; }
# shellcheck source=bench/setup.sh
source "$here/setup.sh"

# ---- what it needs -----------------------------------------------------------
need=()
command -v mpirun >/dev/null || need+=(openmpi-bin)
dpkg -s libopenmpi-dev >/dev/null 2>&1 || need+=(libopenmpi-dev)
gloo_on=1; [[ -n "${NO_GLOO:-}" ]] && gloo_on=
[[ -n "$gloo_on" ]] && ! dpkg -s libgloo-dev >/dev/null 2>&1 && need+=(libgloo-dev)
bench_install "${need[@]}"
bench_configure "$src" "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
targets=(mpi_bench fmi-bench fmirun fmi-rendezvous)
if [[ -n "$gloo_on" ]]; then
  # A build folder configured before libgloo-dev was installed has no gloo_bench.
  cmake "$build" >/dev/null
  targets+=(gloo_bench)
fi
log "building in $build"
cmake --build "$build" -j2 --target "${targets[@]}" >&2
mpi="$build/bench/baseline/mpi_bench"
gloo="$build/bench/baseline/gloo_bench"
fmib="$build/tools/fmi-bench/fmi-bench"
[[ -z "$gloo_on" || -x "$gloo" ]] || { log "missing $gloo"; exit 1; }
for b in "$mpi" "$fmib"; do [[ -x "$b" ]] || { log "missing $b"; exit 1; }; done
mpirun=(mpirun --allow-run-as-root --oversubscribe --mca btl tcp,self --bind-to none)

mkdir -p "$out"
header="tool,op,channel,peers,bytes,iters,median_us,p90_us,min_us,bw_MiBps,pred_us,pred_usd"
echo "round,$header" >"$out/rounds.csv"
{ echo "date: $(date -u +%FT%TZ)"; echo "host: $(uname -srm), $(nproc) cores"; uptime;
  echo "sizes=$sizes peers=$peers ops=$ops budget=$budget rounds=$rounds";
  echo "algorithms=$algorithms segments=$segments max_buffer=$max_buffer";
  echo "commit: $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)"; } >"$out/environment.txt"
log "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"

# Prefixes every CSV row with the round; renames FMI's channel to its variant.
tag() { awk -F, -v OFS=, -v round="$1" -v chan="$2" '
  NR > 0 && $1 != "tool" && NF == 12 { if (chan != "") $3 = chan; print round, $0 }'; }

IFS=, read -ra plist <<<"$peers"
read -ra alist <<<"$algorithms"
read -ra slist <<<"$segments"
common=(--ops "$ops" --sizes "$sizes" --budget "$budget" --max-buffer "$max_buffer" --csv)
for ((round = 1; round <= rounds; round++)); do
  for p in "${plist[@]}"; do
    log "round $round/$rounds: OpenMPI on $p peers"
    "${mpirun[@]}" -n "$p" "$mpi" "${common[@]}" --no-header | tag "$round" "" >>"$out/rounds.csv"
    if [[ -n "$gloo_on" ]]; then
      log "round $round/$rounds: Gloo on $p peers"
      "$gloo" --peers "$p" "${common[@]}" --no-header | tag "$round" "" >>"$out/rounds.csv"
    fi
    for alg in "${alist[@]}"; do
      for seg in "${slist[@]}"; do
        env=(); name=Direct
        if [[ "$alg" != auto || "$seg" != default ]]; then
          [[ "$alg" != auto ]] && env+=("FMI_ALGORITHM=$alg")
          [[ "$seg" != default ]] && env+=("FMI_SEGMENT_BYTES=$seg")
          name="Direct[${alg//,/+};$seg]"  # no commas in a CSV field
        fi
        log "round $round/$rounds: FMI $name on $p peers"
        env "${env[@]}" "$fmib" --channel Direct --peers "$p" "${common[@]}" -q |
          tag "$round" "$name" >>"$out/rounds.csv"
      done
    done
  done
done
log "load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- medians over rounds, ratios ---------------------------------------------------
/usr/bin/python3 - "$out" <<'EOF' | tee "$out/summary.txt"
import csv, os, statistics, sys
from collections import defaultdict
out = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(out, "rounds.csv"))))
per = defaultdict(list)   # (impl, op, peers, bytes) -> [median_us per round]
by_round = defaultdict(dict)
def impl_of(r):  # the baselines by tool, FMI's variants by channel
    return r["tool"] if r["tool"] in ("mpi", "gloo") else r["channel"]
for r in rows:
    impl = impl_of(r)
    k = (impl, r["op"], int(r["peers"]), int(r["bytes"]))
    per[k].append(float(r["median_us"]))
    by_round[k][r["round"]] = float(r["median_us"])
# Median over rounds, in the tools' CSV format (bench/plot.py reads it).
with open(os.path.join(out, "medians.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["tool", "op", "channel", "peers", "bytes", "iters", "median_us", "p90_us",
                "min_us", "bw_MiBps", "pred_us", "pred_usd"])
    seen = set()
    for r in rows:
        impl = impl_of(r)
        k = (impl, r["op"], int(r["peers"]), int(r["bytes"]))
        if k in seen:
            continue
        seen.add(k)
        m = statistics.median(per[k])
        bw = (k[3] / (1 << 20)) / (m / 1e6) if m > 0 else 0
        w.writerow([r["tool"], r["op"], r["channel"], r["peers"], r["bytes"], r["iters"],
                    f"{m:.3f}", r["p90_us"], r["min_us"], f"{bw:.1f}", r["pred_us"], r["pred_usd"]])

def fmt(us):
    if us is None: return "n/a"
    if us >= 1e6: return f"{us/1e6:.2f} s"
    if us >= 1e4: return f"{us/1e3:.1f} ms"
    return f"{us:.1f} us"
def size(b):
    for u, s in (("G", 30), ("M", 20), ("K", 10)):
        if b >= (1 << s) and b % (1 << s) == 0: return f"{b >> s}{u}"
    return str(b)
impls = sorted({k[0] for k in per if k[0] not in ("mpi", "gloo")}, key=lambda x: (x != "Direct", x))
gloo = any(k[0] == "gloo" for k in per)
med = {k: statistics.median(v) for k, v in per.items()}
def ratio_spread(a, b):
    ra, rb = by_round.get(a, {}), by_round.get(b, {})
    rs = [ra[x] / rb[x] for x in ra if x in rb and rb[x] > 0]
    return (min(rs), max(rs)) if rs else None
print(f"\nMedian of {max((len(v) for v in per.values()), default=0)} interleaved rounds; "
      "ratio = FMI / OpenMPI-TCP time (below 1: FMI faster), [min-max over rounds]"
      + ("; fmi/gloo = FMI / Gloo-TCP time (n/a: Gloo has no such operation)" if gloo else ""))
head = f"{'op':<15}{'peers':>5}{'bytes':>7}{'OpenMPI':>11}" + (f"{'gloo us':>11}" if gloo else "")
for i in impls: head += f" {i:>22}{'ratio':>7}{'spread':>12}" + (f"{'fmi/gloo':>9}" if gloo else "")
print(head)
points = sorted({k[1:] for k in per})
for op, p, b in points:
    m = med.get(("mpi", op, p, b))
    g = med.get(("gloo", op, p, b))
    line = f"{op:<15}{p:>5}{size(b):>7}{fmt(m):>11}" + (f"{fmt(g):>11}" if gloo else "")
    for i in impls:
        f = med.get((i, op, p, b))
        r = f"{f/m:.2f}" if f and m else "-"
        sp = ratio_spread((i, op, p, b), ("mpi", op, p, b))
        sp = f"[{sp[0]:.2f}-{sp[1]:.2f}]" if sp else ""
        line += f" {fmt(f):>22}{r:>7}{sp:>12}"
        if gloo: line += f"{f/g:>9.2f}" if f and g else f"{'n/a':>9}"
    print(line)
if len(impls) > 1 and "Direct" in impls:
    print("\nVariants against the automatic choice (time / automatic's time)")
    for op, p, b in points:
        a = med.get(("Direct", op, p, b))
        cells = [f"{i}: {med[(i, op, p, b)]/a:.2f}" for i in impls[1:] if a and (i, op, p, b) in med]
        if cells: print(f"  {op} {p}p {size(b)}: " + ", ".join(cells))
over = [(k, med[k] / med[("mpi",) + k[1:]]) for k in med
        if k[0] == "Direct" and med.get(("mpi",) + k[1:])]
if over:
    bad = sorted([x for x in over if x[1] > 1.0], key=lambda x: -x[1])
    print(f"\nPoints where FMI Direct is slower than OpenMPI-TCP: {len(bad)} of {len(over)}")
    for (i, op, p, b), r in bad[:20]:
        print(f"  {op} {p}p {size(b)}: {r:.2f}")
EOF

# ---- the ratio chart ----------------------------------------------------------------
if [[ -n "${NO_PLOTS:-}" ]]; then
  log "NO_PLOTS is set: no chart"
elif ! /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  log "matplotlib is missing (apt-get install python3-matplotlib): no chart"
else
  mkdir -p "$out/img"
  /usr/bin/python3 "$here/plot.py" "$out/medians.csv" --out "$out/img" >&2 || log "plotting failed"
  if [[ -f "$out/img/ratio_fmi_mpi.png" ]]; then
    mkdir -p "$img"
    cp "$out/img/ratio_fmi_mpi.png" "$img/collectives_ratio.png"
    cp "$out/img/ratio_fmi_mpi.svg" "$img/collectives_ratio.svg"
    log "chart: $img/collectives_ratio.png (.svg)"
  fi
fi
log "results: $out (rounds.csv, medians.csv, summary.txt, environment.txt)"
