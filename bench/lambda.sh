#!/usr/bin/env bash
# The launcher's own overhead on the local Lambda emulator (serverless-offline, see
# docs/lambda.md): for each job size, the time from fmirun --lambda's start until
# every function's Communicator is ready (built and through a first barrier: the
# last peer's moment), and the job's total time (fmirun's start to its exit). The
# functions (tests/lambda/handlers.py: ready) report wall-clock times; emulator and
# launcher share this machine's clock. On a 2-core machine the emulator starts one
# Python process per function: the numbers measure that machine, not AWS.
#
#   bench/lambda.sh                  # 8, 32, 128 functions, build/
#   SIZES="8" BUILD_DIR=build bench/lambda.sh
#
# Prints "functions ready_s total_s" rows (and fmirun's own summary on stderr).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
build=${BUILD_DIR:-build}
[[ "$build" = /* ]] || build="$src/$build"
sizes=${SIZES:-"8 32 128"}

if [[ "${1:-}" != --inner ]]; then
  cmake --build "$build" -j2 --target fmirun fmi-rendezvous fmi_python >&2
  python=$(sed -n 's/^FMI_PYTHON_EXECUTABLE:INTERNAL=//p' "$build/CMakeCache.txt")
  export PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}" BUILD_DIR="$build" SIZES="$sizes"
  exec "${python:-python3}" "$src/tests/lambda/emulator.py" --build "$build" \
    --handlers "$src/tests/lambda" --function ready=handlers.ready:300 -- bash "$0" --inner
fi

# Inside the emulator's run: FMI_LAMBDA_ENDPOINT and FMI_LAMBDA_PREFIX are set.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$src/config/fmi.json" "$work/fmi.json" "$port" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
for name in ("S3", "Redis"):
    cfg["backends"].setdefault(name, {})["enabled"] = False
cfg["backends"]["Direct"] = {"enabled": True, "host": "127.0.0.1", "port": int(sys.argv[3]),
                             "max_timeout": 120000}
json.dump(cfg, open(sys.argv[2], "w"))
PY
echo "date: $(date -u +%FT%TZ); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
printf '%-9s %8s %8s\n' functions ready_s total_s
for n in $sizes; do
  rm -rf "$work/out"
  start=$(date +%s.%N)
  "$build/tools/fmirun/fmirun" --lambda "${FMI_LAMBDA_PREFIX}ready" -n "$n" --timeout 600 \
    --endpoint "$FMI_LAMBDA_ENDPOINT" --config "$work/fmi.json" --output "$work/out" >/dev/null
  end=$(date +%s.%N)
  python3 - "$work/out" "$n" "$start" "$end" <<'PY'
import json, os, sys
out, n, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rows = [json.load(open(os.path.join(out, f"peer-{i}.json"))) for i in range(n)]
assert sorted(r["peer_id"] for r in rows) == list(range(n)), "a peer's result is missing"
print(f"{n:<9d} {max(r['ready_at'] for r in rows) - start:8.2f} {end - start:8.2f}")
PY
done
