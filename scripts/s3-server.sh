#!/bin/sh
# A local S3 server for trying the S3 channel by hand (the tests start their own):
# moto on 127.0.0.1, plus a bucket.
#
#   scripts/s3-server.sh [PORT [BUCKET]]     # default 5000 fmi-bucket; Ctrl-C stops it
#
# Then, in another shell:
#   export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
#   config: "S3": {"enabled": true, "bucket_name": "fmi-bucket", "s3_region": "us-east-1",
#                  "endpoint": "http://127.0.0.1:5000", "timeout": 5, "max_timeout": 30000}
set -eu
PORT=${1:-5000}
BUCKET=${2:-fmi-bucket}

PY=${FMI_MOTO_PYTHON:-}
if [ -z "$PY" ]; then
  for p in /root/.pyenv/shims/python3 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import moto.server' 2>/dev/null; then PY=$p; break; fi
  done
fi
if [ -z "$PY" ]; then
  echo "s3-server.sh: no Python with moto found (pip install 'moto[server]' or set FMI_MOTO_PYTHON)" >&2
  exit 1
fi

"$PY" -m moto.server -H 127.0.0.1 -p "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT INT TERM

i=0
until curl -s -o /dev/null "http://127.0.0.1:$PORT/"; do
  i=$((i + 1))
  if [ $i -gt 100 ]; then echo "s3-server.sh: moto did not start on port $PORT" >&2; exit 1; fi
  sleep 0.1
done
curl -sS -f -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" -u testing:testing \
  -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
  -X PUT "http://127.0.0.1:$PORT/$BUCKET"
echo "moto S3 at http://127.0.0.1:$PORT with bucket $BUCKET (Ctrl-C to stop)"
wait $SERVER
