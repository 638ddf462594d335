# Sourced by bench/compare.sh and bench/kmeans_study.sh: local servers for the
# storage channels on free ports, stopped when the calling script exits, and an
# FMI configuration that points at them.
#
#   source bench/servers.sh
#   start_redis; start_moto
#   write_config Redis /tmp/cfg.json      # only that backend enabled
#
# Sets REDIS_PORT, S3_PORT, S3_BUCKET. Needs redis-server (Debian) and a Python with
# moto (MOTO_PYTHON, else pyenv's python3, else python3).

SERVER_PIDS=()
REDIS_PORT=0
S3_PORT=0
S3_BUCKET=fmi-bench
SERVER_LOGS=${SERVER_LOGS:-/tmp}

stop_servers() {
  local p
  for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SERVER_PIDS=()
}
trap stop_servers EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {  # port seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

start_redis() {
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    >"$SERVER_LOGS/redis-$REDIS_PORT.log" 2>&1 &
  SERVER_PIDS+=($!)
  wait_port "$REDIS_PORT" 10 || { echo "redis-server did not start ($SERVER_LOGS/redis-$REDIS_PORT.log)" >&2; return 1; }
  echo "[servers] redis-server on 127.0.0.1:$REDIS_PORT" >&2
}

start_moto() {
  local py=${MOTO_PYTHON:-} c
  if [[ -z "$py" ]]; then
    for c in /root/.pyenv/shims/python3 python3; do
      if "$c" -c 'import moto.server' 2>/dev/null; then py=$c; break; fi
    done
  fi
  [[ -n "$py" ]] || { echo "no Python with moto (pip install 'moto[server]' or set MOTO_PYTHON)" >&2; return 1; }
  S3_PORT=$(free_port)
  "$py" -m moto.server -H 127.0.0.1 -p "$S3_PORT" >"$SERVER_LOGS/moto-$S3_PORT.log" 2>&1 &
  SERVER_PIDS+=($!)
  wait_port "$S3_PORT" 30 || { echo "moto did not start ($SERVER_LOGS/moto-$S3_PORT.log)" >&2; return 1; }
  curl -sf -X PUT "http://127.0.0.1:$S3_PORT/$S3_BUCKET" >/dev/null
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-fmi-bench}
  export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-fmi-bench}
  echo "[servers] moto S3 on 127.0.0.1:$S3_PORT, bucket $S3_BUCKET" >&2
}

# write_config CHANNEL FILE: the model section of the source tree's config/fmi.json,
# backends pointing at the local servers, only CHANNEL enabled ("all": every channel
# whose server runs, for the policy). INFRA=0 sets
# include_infrastructure_costs to false in the model (functions and requests only).
write_config() {
  python3 - "$(dirname "${BASH_SOURCE[0]}")/../config/fmi.json" "$1" "$2" "$REDIS_PORT" "$S3_PORT" \
    "$(free_port)" "$S3_BUCKET" "${INFRA:-}" <<'EOF'
import json, sys
base, ch, path, redis_port, s3_port, direct_port, bucket, infra = sys.argv[1:]
cfg = json.load(open(base))
on = lambda name, port=1: ch == name or (ch == "all" and int(port) > 0)
cfg["backends"] = {
    "Direct": {"enabled": on("Direct"), "host": "127.0.0.1", "port": int(direct_port),
               "max_timeout": 60000},
    "Redis": {"enabled": on("Redis", redis_port), "host": "127.0.0.1", "port": int(redis_port) or 6379,
              "timeout": 1, "max_timeout": 60000},
    "S3": {"enabled": on("S3", s3_port), "bucket_name": bucket, "s3_region": "us-east-1",
           "endpoint": f"http://127.0.0.1:{s3_port}", "timeout": 10, "max_timeout": 120000},
}
if infra == "0":
    for sec in ("Redis", "Direct"):
        cfg.setdefault("model", {}).setdefault(sec, {})["include_infrastructure_costs"] = False
json.dump(cfg, open(path, "w"), indent=2)
EOF
}
