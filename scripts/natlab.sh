#!/usr/bin/env bash
# natlab.sh: a NAT lab in network namespaces, for running FMI functions as they run on
# AWS Lambda: each function behind its own NAT that drops unsolicited inbound traffic,
# and a "public" namespace (the internet) holding the rendezvous server. Root only.
# See docs/natlab.md.
#
#   natlab.sh [--prefix P] up N [--symmetric]   make a lab for N functions (prints P)
#   natlab.sh [--prefix P] down [--all]          remove it (--all: every lab recorded)
#   natlab.sh [--prefix P] exec NODE CMD...      run CMD in NODE: 0..N-1 (function), rI, pub
#   natlab.sh [--prefix P] flush                 conntrack -F in every router
#   natlab.sh [--prefix P] addr NODE             print NODE's address
#   natlab.sh list                               labs recorded on this machine
#
# Layout for function i (0-based, the FMI peer id), namespace names prefixed by P:
#
#   Pf<i>: eth0 192.168.(i+1).2/24, default via .1
#      | veth
#   Pr<i>: lan 192.168.(i+1).1/24 | wan 10.200.0.(10+i)/24
#           nat POSTROUTING -o wan MASQUERADE [--random-fully with --symmetric]
#           FORWARD policy DROP: lan->wan new, wan->lan only ESTABLISHED,RELATED
#           INPUT from wan: only ESTABLISHED,RELATED (no RST for unsolicited SYNs)
#      | veth
#   Ppub:  br0 10.200.0.1/24 (a bridge joining every router's wan)
#
# Nothing is created in the host's namespace: each veth pair is created inside the
# namespaces it joins, so labs with different prefixes run side by side.
set -euo pipefail

readonly STATE_DIR=/run/fmi-natlab
readonly PUBLIC_ADDR=10.200.0.1
readonly MAX_FUNCTIONS=200

prog=$(basename "$0")
die() { echo "$prog: $*" >&2; exit 1; }
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

prefix=${FMI_NATLAB_PREFIX:-}
while [[ $# -gt 0 ]]; do
  case $1 in
    --prefix) [[ $# -ge 2 ]] || usage; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || usage
cmd=$1; shift

if [[ -n $prefix && ! $prefix =~ ^[A-Za-z0-9_.-]{1,24}$ ]]; then
  die "bad prefix '$prefix' (letters, digits, _ . - only, at most 24 characters)"
fi

need_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces and iptables)"
  local c
  for c in ip iptables; do command -v "$c" >/dev/null || die "$c not found (apt-get install iproute2 iptables)"; done
}

# Namespaces of lab $1, exactly (a prefix fmi12- never matches fmi123-'s namespaces).
lab_namespaces() {
  local p=$1
  ip netns list 2>/dev/null | awk '{print $1}' | while read -r ns; do
    local rest=${ns#"$p"}
    [[ $ns != "$rest" && $rest =~ ^(pub|r[0-9]+|f[0-9]+)$ ]] && echo "$ns"
  done
  return 0
}

# The lab a command without --prefix means: the only one recorded.
resolve_prefix() {
  [[ -n $prefix ]] && return
  local labs=()
  if [[ -d $STATE_DIR ]]; then
    local f
    for f in "$STATE_DIR"/*; do [[ -e $f ]] && labs+=("$(basename "$f")"); done
  fi
  case ${#labs[@]} in
    1) prefix=${labs[0]} ;;
    0) die "no lab recorded in $STATE_DIR; give --prefix" ;;
    *) die "several labs recorded (${labs[*]}); give --prefix" ;;
  esac
}

lab_size() { sed -n 's/^functions=//p' "$STATE_DIR/$prefix" 2>/dev/null || true; }

teardown() {
  local p=$1 ns pids
  for ns in $(lab_namespaces "$p"); do
    # Processes left inside (a server, a stuck function) would keep the namespace
    # alive after its name is gone: end them first.
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [[ -n $pids ]]; then
      kill -TERM $pids 2>/dev/null || true
      sleep 0.2
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -f "$STATE_DIR/$p"
}

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

do_up() {
  need_root
  local n=${1:-} symmetric=0
  shift || true
  while [[ $# -gt 0 ]]; do
    case $1 in
      --symmetric) symmetric=1 ;;
      *) die "up: unknown argument $1" ;;
    esac
    shift
  done
  [[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le $MAX_FUNCTIONS ]] || die "up: N must be 1..$MAX_FUNCTIONS, got '$n'"
  [[ -n $prefix ]] || prefix="fmilab$$-"  # fmirun uses fmi<pid>-: never the same
  mkdir -p "$STATE_DIR"
  if [[ -e $STATE_DIR/$prefix || -n $(lab_namespaces "$prefix") ]]; then
    die "a lab with prefix $prefix already exists (natlab.sh --prefix $prefix down)"
  fi
  # Whatever happens from here on (an error, Ctrl-C), a half-built lab is removed.
  building=$prefix  # global: the EXIT trap may run outside this function's scope
  local p=$prefix
  trap 'rc=$?; trap - EXIT; if [[ $rc -ne 0 ]]; then echo "$prog: up failed, removing lab $building" >&2; teardown "$building"; fi; exit $rc' EXIT
  trap 'exit 130' INT TERM HUP
  printf 'functions=%s\nsymmetric=%s\n' "$n" "$symmetric" >"$STATE_DIR/$p"

  local pub="${p}pub"
  ip netns add "$pub"
  ip -n "$pub" link set lo up
  ip -n "$pub" link add br0 type bridge
  ip -n "$pub" addr add "$PUBLIC_ADDR/24" dev br0
  ip -n "$pub" link set br0 up

  local masq=(-j MASQUERADE)
  [[ $symmetric -eq 1 ]] && masq+=(--random-fully)

  local i r f
  for ((i = 0; i < n; i++)); do
    r="${p}r$i"
    f="${p}f$i"
    ip netns add "$r"
    ip netns add "$f"
    ip -n "$r" link set lo up
    ip -n "$f" link set lo up

    # Public side: router's wan on the bridge in the public namespace.
    ip -n "$pub" link add "r$i" type veth peer name wan netns "$r"
    ip -n "$pub" link set "r$i" master br0 up
    ip -n "$r" addr add "10.200.0.$((10 + i))/24" dev wan
    ip -n "$r" link set wan up
    ip -n "$r" route add default via "$PUBLIC_ADDR"

    # Private side: the function's only link, to its router.
    ip -n "$r" link add lan type veth peer name eth0 netns "$f"
    ip -n "$r" addr add "192.168.$((i + 1)).1/24" dev lan
    ip -n "$r" link set lan up
    ip -n "$f" addr add "192.168.$((i + 1)).2/24" dev eth0
    ip -n "$f" link set eth0 up
    ip -n "$f" route add default via "192.168.$((i + 1)).1"

    # The NAT, as cloud NATs behave: outbound connections are masqueraded, replies
    # come back, and anything unsolicited from outside is dropped without an answer.
    in_ns "$r" sysctl -qw net.ipv4.ip_forward=1
    in_ns "$r" iptables -t nat -A POSTROUTING -o wan "${masq[@]}"
    in_ns "$r" iptables -P FORWARD DROP
    in_ns "$r" iptables -A FORWARD -i lan -o wan -j ACCEPT
    in_ns "$r" iptables -A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    in_ns "$r" iptables -A INPUT -i wan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    in_ns "$r" iptables -A INPUT -i wan -j DROP
  done
  trap - EXIT INT TERM HUP
  echo "$p"
}

do_down() {
  need_root
  if [[ ${1:-} == --all ]]; then
    local f
    if [[ -d $STATE_DIR ]]; then
      for f in "$STATE_DIR"/*; do [[ -e $f ]] && teardown "$(basename "$f")"; done
    fi
    return 0
  fi
  [[ $# -eq 0 ]] || die "down: unknown argument $1"
  resolve_prefix
  teardown "$prefix"
}

# NODE: a function index (0..N-1), rI (function I's router) or pub.
node_ns() {
  local node=$1
  case $node in
    pub) echo "${prefix}pub" ;;
    r[0-9]*) echo "${prefix}$node" ;;
    f[0-9]*) echo "${prefix}$node" ;;
    [0-9]*) echo "${prefix}f$node" ;;
    *) die "bad node '$node' (a function index, rI or pub)" ;;
  esac
}

do_exec() {
  need_root
  [[ $# -ge 2 ]] || die "exec: needs NODE and a command"
  resolve_prefix
  local ns
  ns=$(node_ns "$1")
  shift
  ip netns list | awk '{print $1}' | grep -qx -- "$ns" || die "exec: no namespace $ns (is the lab up?)"
  exec ip netns exec "$ns" "$@"
}

do_flush() {
  need_root
  resolve_prefix
  command -v conntrack >/dev/null || die "conntrack not found (apt-get install conntrack)"
  local ns
  for ns in $(lab_namespaces "$prefix"); do
    # Stale entries (another sequence number, an old mapping) make later punches
    # INVALID, so every case starts from empty tables.
    [[ $ns == "${prefix}"r* ]] && { ip netns exec "$ns" conntrack -F >/dev/null 2>&1 || true; }
  done
  return 0
}

do_addr() {
  [[ $# -eq 1 ]] || die "addr: needs NODE"
  local node=$1
  case $node in
    pub) echo "$PUBLIC_ADDR" ;;
    r[0-9]*) echo "10.200.0.$((10 + ${node#r}))" ;;
    f[0-9]*) echo "192.168.$((${node#f} + 1)).2" ;;
    [0-9]*) echo "192.168.$((node + 1)).2" ;;
    *) die "bad node '$node'" ;;
  esac
}

do_list() {
  [[ -d $STATE_DIR ]] || return 0
  local f
  for f in "$STATE_DIR"/*; do
    [[ -e $f ]] || continue
    echo "$(basename "$f") $(tr '\n' ' ' <"$f")"
  done
}

case $cmd in
  up) do_up "$@" ;;
  down) do_down "$@" ;;
  exec) do_exec "$@" ;;
  flush) do_flush "$@" ;;
  addr) do_addr "$@" ;;
  list) do_list "$@" ;;
  *) die "unknown command '$cmd' (up, down, exec, flush, addr, list)" ;;
esac
