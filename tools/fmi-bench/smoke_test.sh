#!/usr/bin/env bash
# Smoke test of fmi-bench (ctest): runs a tiny benchmark and checks that the CSV has
# one row per (operation, size), with positive times and iteration counts.
#   smoke_test.sh PATH/TO/fmi-bench CHANNEL
set -euo pipefail
bench=$1 channel=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$bench" --channel "$channel" --ops pingpong,allreduce,mesh --peers 2 --sizes 8,1K \
  --iters 20 --warmup 2 --budget 0.2 --csv --quiet >"$out"
cat "$out"
expected="pingpong 8
pingpong 1024
allreduce 8
allreduce 1024"
# A new communicator's set-up (a channel from the configuration; inproc has none)
[[ $channel == inproc* ]] || expected+=$'\nmesh 0'
got=$(awk -F, -v ch="$channel" 'NR > 1 && $1 == "fmi" && $3 == ch && $4 == 2 && $6 > 0 && $7 > 0 { print $2, $5 }' "$out")
if [[ "$got" != "$expected" ]]; then
  echo "smoke_test: expected rows (op bytes):"; echo "$expected"
  echo "got:"; echo "$got"
  exit 1
fi
head -1 "$out" | grep -q '^tool,op,channel,peers,bytes,iters,median_us,p90_us,min_us,bw_MiBps,pred_us,pred_usd$'
echo "smoke_test: OK"
