#!/bin/bash
# One MPI test: compiles PROGRAM.c unmodified with fmi-mpicc and with OpenMPI's mpicc,
# runs it on each process count with fmirun over CHANNEL and with mpirun, and compares
# the outputs (stdout, fmirun's "[peer i] " prefix removed, lines sorted: the programs
# print one line per fact, prefixed by the rank where more than one rank prints) and
# the exit statuses.
#
#   run.sh FMIRUN FMI_MPICC PROGRAM.c CHANNEL(direct|redis|nat) N...
#
# CHANNEL nat: Direct with fmirun --nat, every function in its own network namespace
# behind its own NAT (scripts/natlab.sh, or $FMI_NATLAB; the rendezvous server
# $FMI_RENDEZVOUS or fmirun's default): root only, exits 77 (skipped) as
# tests/tools/natlab_test.sh does when it cannot run here.
#
# OpenMPI's outputs are kept next to the build (OMPI_CACHE, keyed by the source's
# checksum and N), so the Direct and the Redis test of a program run mpirun once.
# With EXPECT_FAILURE=REGEX the program must fail instead: exit non-zero under both,
# print nothing on stdout, and fmirun's stderr must match REGEX (FMI's message).
# Environment: OMPI_CACHE, REDIS_SERVER (default redis-server), EXPECT_FAILURE.
set -u
fmirun=$1 mpicc_fmi=$2 src=$3 channel=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/fmi-mpi-test.XXXXXX")
cache=${OMPI_CACHE:-$work}
mkdir -p "$cache"
redis_pid=
cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
name=$(basename "$src" .c)
fail() { echo "FAIL: $name ($channel): $*"; exit 1; }

launch=(-n)
if [ "$channel" = nat ]; then
  skip() { echo "SKIP: $name (nat): $*"; exit 77; }
  [ "$(id -u)" -eq 0 ] || skip "the NAT lab needs root (network namespaces, iptables)"
  for c in ip iptables conntrack; do
    command -v "$c" >/dev/null || skip "$c is not installed (scripts/install-deps.sh)"
  done
  probe_ns="fmimpiprobe$$"
  ip netns add "$probe_ns" 2>/dev/null || skip "cannot create network namespaces here"
  ip netns exec "$probe_ns" iptables -t nat -S >/dev/null 2>&1 ||
    { ip netns del "$probe_ns"; skip "iptables does not work inside a network namespace here"; }
  ip netns del "$probe_ns"
  launch=(--nat --natlab "${FMI_NATLAB:-$here/../../scripts/natlab.sh}")
  [ -n "${FMI_RENDEZVOUS:-}" ] && launch+=(--rendezvous "$FMI_RENDEZVOUS")
  launch+=(-n)
else
  launch=(--rendezvous-port 0 -n)
fi

"$mpicc_fmi" -O1 -Wall -o "$work/$name.fmi" "$src" -lm || fail "fmi-mpicc could not build $src"
sum=$(cat "$src" | md5sum | cut -c1-16)

# The configuration: Direct on loopback (fmirun starts a rendezvous server on a free
# port), or Redis only, on a redis-server of our own.
config=$work/fmi.json
base=$here/../tools/fmi-test.json  # config/fmi.json with short timeouts
port=0
if [ "$channel" = redis ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${REDIS_SERVER:-redis-server}" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work" >"$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
fi
python3 - "$base" "$config" "$channel" "$port" <<'PY'
import json, sys
base, out, channel, port = sys.argv[1:]
c = json.load(open(base))
b = c["backends"]
for k in b:
    b[k]["enabled"] = False
if channel == "redis":
    b["Redis"].update(enabled=True, host="127.0.0.1", port=int(port), max_timeout=20000)
else:
    b["Direct"].update(enabled=True, max_timeout=20000)
json.dump(c, open(out, "w"))
PY

openmpi() {  # N -> OpenMPI's sorted stdout and status, computed once per source and N
  local n=$1 out=$cache/$name-$sum-$1.ompi
  if [ ! -f "$out" ]; then
    [ -x "$cache/$name-$sum.ompi.exe" ] ||
      { mpicc -O1 -o "$work/ompi.exe" "$src" -lm && mv "$work/ompi.exe" "$cache/$name-$sum.ompi.exe"; } ||
      fail "OpenMPI's mpicc could not build $src"
    local extra=()
    [ "$(id -u)" = 0 ] && extra=(--allow-run-as-root)
    timeout 120 mpirun "${extra[@]}" --oversubscribe --mca btl tcp,self --mca btl_tcp_if_include lo \
      -n "$n" "$cache/$name-$sum.ompi.exe" >"$work/ompi.out" 2>"$work/ompi.err" </dev/null
    echo "exit $?" >>"$work/ompi.out"
    sort "$work/ompi.out" >"$work/ompi.sorted" && mv "$work/ompi.sorted" "$out"
  fi
  cat "$out"
}

status=0
for n in "$@"; do
  expected=$(openmpi "$n")
  timeout 120 "$fmirun" --timeout 90 --config "$config" "${launch[@]}" "$n" -- \
    "$work/$name.fmi" >"$work/fmi.out" 2>"$work/fmi.err" </dev/null
  rc=$?
  if [ "$channel" = nat ] && ! grep -q "NAT lab .* is up" "$work/fmi.err"; then
    echo "FAIL: $name on $n processes over nat: fmirun did not report its NAT lab:"
    head -20 "$work/fmi.err"
    status=1
    continue
  fi
  got=$( (sed -E 's/^\[peer [0-9]+\] //' "$work/fmi.out"; echo "exit $rc") | sort)
  if [ -n "${EXPECT_FAILURE:-}" ]; then
    # Only the failure is compared: the statuses differ (OpenMPI's error classes).
    expected=$(echo "$expected" | sed -E 's/^exit [1-9][0-9]*$/exit non-zero/')
    got=$(echo "$got" | sed -E 's/^exit [1-9][0-9]*$/exit non-zero/')
    if ! grep -Eq "$EXPECT_FAILURE" "$work/fmi.err"; then
      echo "FAIL: $name on $n processes over $channel: stderr does not match /$EXPECT_FAILURE/:"
      head -20 "$work/fmi.err"
      status=1
      continue
    fi
  fi
  if [ "$expected" != "$got" ]; then
    echo "FAIL: $name on $n processes over $channel differs from OpenMPI (< OpenMPI, > FMI):"
    diff <(echo "$expected") <(echo "$got") | head -40
    echo "--- fmirun stderr:"
    head -20 "$work/fmi.err"
    status=1
  else
    echo "ok: $name on $n processes over $channel ($(echo "$got" | wc -l) lines as OpenMPI)"
  fi
done
exit $status
