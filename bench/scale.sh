#!/usr/bin/env bash
# Issue 14's scale benchmark: 16 ... 1,024 functions over Direct on loopback (and, as
# root, 16-64 in the NAT lab), one fmi-bench run per peer count, with what fmi-bench
# itself does not print sampled from /proc while it runs: the most sockets any
# function held, the largest and the mean resident memory of a function, and the
# rendezvous server's.
#
#   bench/scale.sh                     # PEERS=16,64,256,1024
#   PEERS=16,64 NAT_PEERS=16,32 bench/scale.sh
#
# Environment:
#   PEERS=16,64,256,1024     peer counts over Direct on loopback (empty: none)
#   NAT_PEERS=               peer counts in the NAT lab (root; empty: none)
#   OPS=mesh,barrier,allreduce,bcast,alltoall,allgather
#   SIZES=4,1M               bytes per peer (mesh and barrier ignore it); alltoall and
#                            allgather take SMALL_SIZES instead
#   SMALL_SIZES=4            bytes per block of alltoall / allgather
#   BUDGET=0.5               seconds of timed iterations per point
#   TIMEOUT=600              seconds fmirun gives one run
#   BUILD_DIR=build          where fmi-bench and fmirun are built
#   OUT=/tmp/fmi-scale       CSV of every run and the samples
#   CONFIG=config/fmi.json   configuration the runs start from
#   MAX_TIMEOUT_MS=120000    backends.Direct.max_timeout of the runs: 1,024 functions on
#                            2 cores need more than config/fmi.json's 30 s for the first
#                            collective's handshakes when the machine is busy
#
# A function holds about 16 MiB at 1,024 (max 19; 11 MiB at 64): ~16 GiB in all on
# this 24 GiB machine. The script skips a peer count whose estimate (the previous
# count's mean RSS times the count) exceeds MemAvailable, and says so. Functions
# share the machine's cores: every number above 2 functions is a time-sharing
# number, not a platform's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"
PEERS="${PEERS-16,64,256,1024}"
NAT_PEERS="${NAT_PEERS:-}"
OPS="${OPS:-mesh,barrier,allreduce,bcast,alltoall,allgather}"
SIZES="${SIZES:-4,1M}"
SMALL_SIZES="${SMALL_SIZES:-4}"
BUDGET="${BUDGET:-0.5}"
TIMEOUT="${TIMEOUT:-600}"
OUT="${OUT:-/tmp/fmi-scale}"
BENCH="$BUILD_DIR/tools/fmi-bench/fmi-bench"
CONFIG="${CONFIG:-$ROOT/config/fmi.json}"
MAX_TIMEOUT_MS="${MAX_TIMEOUT_MS:-120000}"
mkdir -p "$OUT"
# The configuration with the Direct channel's max_timeout raised (fmi-bench keeps only
# the Direct backend of it).
RUN_CONFIG="$OUT/config.json"
python3 - "$CONFIG" "$MAX_TIMEOUT_MS" "$RUN_CONFIG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["backends"]["Direct"]["max_timeout"] = int(sys.argv[2])
json.dump(c, open(sys.argv[3], "w"), indent=2)
PY

if [[ ! -x "$BENCH" ]]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD_DIR" --target fmi-bench fmirun fmi-rendezvous >/dev/null
fi
# 1,024 functions hold ~130 descriptors each and fmirun one pipe per function.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Samples every 200 ms until the file $1.stop exists: per function (fmi-bench
# --worker) its sockets and RSS, and the server's RSS. Writes "max_sockets
# max_rss_kib mean_rss_kib server_rss_kib" to $1.
sample() {
  local out="$1" max_sock=0 max_rss=0 sum_rss=0 n_rss=0 srv=0
  while [[ ! -e "$out.stop" ]]; do
    for pid in $(pgrep -f 'fmi-bench --worker' || true); do
      local s r
      s=$(find "/proc/$pid/fd" -lname 'socket:*' 2>/dev/null | wc -l) || s=0
      ((s > max_sock)) && max_sock=$s
      r=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null) || r=0
      if [[ -n "$r" && "$r" -gt 0 ]]; then
        ((r > max_rss)) && max_rss=$r
        sum_rss=$((sum_rss + r))
        n_rss=$((n_rss + 1))
      fi
    done
    for pid in $(pgrep -x fmi-rendezvous || true); do
      local r
      r=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null) || r=0
      [[ -n "$r" ]] && ((r > srv)) && srv=$r
    done
    sleep 0.2
  done
  echo "$max_sock $max_rss $((n_rss ? sum_rss / n_rss : 0)) $srv" >"$out"
}

mean_rss_kib=0
run_one() {  # label peers extra-args...
  local label="$1" n="$2"
  shift 2
  local avail_kib
  avail_kib=$(awk '/^MemAvailable/ {print $2}' /proc/meminfo)
  if ((mean_rss_kib > 0 && mean_rss_kib * n > avail_kib * 9 / 10)); then
    echo "scale.sh: $label $n functions skipped: ~$((mean_rss_kib * n / 1024)) MiB needed" \
      "(mean $((mean_rss_kib / 1024)) MiB per function at the last count), $((avail_kib / 1024)) MiB available" >&2
    return
  fi
  local csv="$OUT/$label-$n.csv" samples="$OUT/$label-$n.samples"
  rm -f "$samples" "$samples.stop"
  sample "$samples" &
  local sampler=$!
  local t0=$SECONDS rc=0
  # Small blocks for the all-to-all family, SIZES for the rest.
  local big_ops small_ops
  big_ops=$(tr ',' '\n' <<<"$OPS" | grep -v -x -E 'alltoall|allgather' | paste -sd, - || true)
  small_ops=$(tr ',' '\n' <<<"$OPS" | grep -x -E 'alltoall|allgather' | paste -sd, - || true)
  : >"$csv"
  : >"$OUT/$label-$n.err"
  if [[ -n "$big_ops" ]]; then
    "$BENCH" --channel Direct --config "$RUN_CONFIG" --peers "$n" --ops "$big_ops" --sizes "$SIZES" --budget "$BUDGET" \
      --timeout "$TIMEOUT" --csv -q "$@" >>"$csv" 2>>"$OUT/$label-$n.err" || rc=$?
  fi
  if [[ -n "$small_ops" ]]; then
    "$BENCH" --channel Direct --config "$RUN_CONFIG" --peers "$n" --ops "$small_ops" --sizes "$SMALL_SIZES" \
      --budget "$BUDGET" --timeout "$TIMEOUT" --csv -q "$@" >>"$csv" 2>>"$OUT/$label-$n.err" || rc=$?
  fi
  touch "$samples.stop"
  wait "$sampler" || true
  read -r max_sock max_rss mean_rss srv <"$samples"
  ((mean_rss > 0)) && mean_rss_kib=$mean_rss
  echo "== $label, $n functions: $((SECONDS - t0)) s, exit $rc; most sockets per function" \
    "$max_sock; RSS per function max $((max_rss / 1024)) MiB, mean $((mean_rss / 1024)) MiB;" \
    "server $((srv / 1024)) MiB"
  if [[ $rc -ne 0 ]]; then
    tail -5 "$OUT/$label-$n.err"
  fi
  # op,peers,bytes,... as fmi-bench --csv prints it (header once per run).
  column -s, -t <"$csv" | sed 's/^/   /'
}

IFS=, read -r -a peers <<<"$PEERS"
for n in "${peers[@]}"; do run_one loopback "$n"; done
if [[ -n "$NAT_PEERS" ]]; then
  mean_rss_kib=0
  IFS=, read -r -a nat <<<"$NAT_PEERS"
  for n in "${nat[@]}"; do run_one nat "$n" --nat; done
fi
echo "scale.sh: CSV and samples in $OUT"
