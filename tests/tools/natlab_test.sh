#!/usr/bin/env bash
# Test of the NAT lab (scripts/natlab.sh) and of `fmirun --nat`, on real network
# namespaces and iptables. Root only: exits 77 (ctest: skipped) with a message when it
# cannot run here. Every lab it makes is removed on the way out, failed or not.
#
#   natlab_test.sh NATLAB_SH PROBE [FMIRUN|none] [RENDEZVOUS|none] [HELLO KMEANS CONFIG [STREAM]]
#
# With the examples (FMI built with the Direct channel), FMI's collectives run through
# `fmirun --nat`: every connection between functions is hole-punched through two NATs.
set -uo pipefail

natlab=$1
probe=$2
fmirun=${3:-}
rendezvous=${4:-}
hello=${5:-}
kmeans=${6:-}
config=${7:-}
stream=${8:-}
[[ $fmirun == none ]] && fmirun=
[[ $rendezvous == none ]] && rendezvous=

skip() { echo "SKIP: $*"; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "the NAT lab needs root (network namespaces, iptables)"
for c in ip iptables conntrack; do
  command -v "$c" >/dev/null || skip "$c is not installed (scripts/install-deps.sh)"
done
probe_ns="fmiprobe$$"
ip netns add "$probe_ns" 2>/dev/null || skip "cannot create network namespaces here"
ip netns exec "$probe_ns" iptables -t nat -S >/dev/null 2>&1 || { ip netns del "$probe_ns"; skip "iptables does not work inside a network namespace here"; }
ip netns del "$probe_ns"

P="fmitest$$-"
failures=0
bg_pids=()
cleanup() {
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
  "$natlab" --prefix "$P" down 2>/dev/null
  "$natlab" --prefix "${P}s" down 2>/dev/null
  rm -f /tmp/natlab-test.$$ /tmp/natlab-pub.$$ /tmp/natlab-punch.$$
}
trap cleanup EXIT

pass() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; failures=$((failures + 1)); }
check() {  # check DESCRIPTION COMMAND...: passes when COMMAND succeeds
  local what=$1; shift
  if "$@" >/tmp/natlab-test.$$ 2>&1; then pass "$what"; else fail "$what"; sed 's/^/       /' /tmp/natlab-test.$$; fi
}
check_fails() {  # passes when COMMAND fails
  local what=$1; shift
  if "$@" >/tmp/natlab-test.$$ 2>&1; then fail "$what"; sed 's/^/       /' /tmp/natlab-test.$$; else pass "$what"; fi
}
lab() { "$natlab" --prefix "$P" "$@"; }
lab_namespaces() { ip netns list | awk '{print $1}' | grep -E "^$1(pub|r[0-9]+|f[0-9]+)\$"; }

# ---- a lab of 4 functions ---------------------------------------------------------
echo "# natlab up 4 (prefix $P)"
check "up 4 succeeds and prints its prefix" bash -c "[[ \$('$natlab' --prefix '$P' up 4) == '$P' ]]"
check "9 namespaces: pub, 4 routers, 4 functions" bash -c "[[ \$(ip netns list | awk '{print \$1}' | grep -cE '^${P}(pub|r[0-9]+|f[0-9]+)\$') -eq 9 ]]"
check_fails "a second up with the same prefix is refused" lab up 2

# Function 1 listens; function 0 must not reach it, neither through function 1's
# router (the NAT drops unsolicited inbound) nor at its private address.
lab exec 1 "$probe" listen 0.0.0.0 5000 1 >/dev/null 2>&1 &
bg_pids+=($!)
sleep 0.3
check_fails "plain connect function 0 -> function 1's public address fails" lab exec 0 "$probe" connect 10.200.0.11 5000 1500
check_fails "plain connect function 0 -> function 1's private address fails" lab exec 0 "$probe" connect 192.168.2.2 5000 1000
check_fails "plain connect function 2 -> function 1's public address fails" lab exec 2 "$probe" connect 10.200.0.11 5000 1000
check_fails "connect public namespace -> function 1's public address fails" lab exec pub "$probe" connect 10.200.0.11 5000 1000

# Every function reaches the public namespace, seen there at its router's address.
lab exec pub "$probe" listen 10.200.0.1 5001 4 >/tmp/natlab-pub.$$ 2>&1 &
listener=$!
bg_pids+=($listener)
sleep 0.3
for i in 0 1 2 3; do
  check "function $i reaches the public namespace" lab exec "$i" "$probe" connect 10.200.0.1 5001 2000
done
wait "$listener"
for i in 0 1 2 3; do
  check "function $i is seen from outside as 10.200.0.$((10 + i)) (masqueraded)" grep -qx "accepted 10.200.0.$((10 + i))" /tmp/natlab-pub.$$
done
rm -f /tmp/natlab-pub.$$

# Hole punching passes: both sides connect at once from a fixed local port to the
# other's public endpoint (TCP simultaneous open through two NATs).
check "conntrack -F in the routers" lab flush
lab exec 2 "$probe" punch 6000 10.200.0.13 6000 5000 from2 >/tmp/natlab-punch.$$ 2>&1 &
puncher=$!
check "TCP simultaneous open function 3 <-> function 2 through both NATs" lab exec 3 "$probe" punch 6000 10.200.0.12 6000 5000 from3
check "the other side of the punch got through too" wait "$puncher"
check "function 2 received function 3's bytes" grep -q "got from3" /tmp/natlab-punch.$$
rm -f /tmp/natlab-punch.$$

check "down succeeds" lab down
check "down leaves no namespace of the lab" bash -c "! ip netns list | awk '{print \$1}' | grep -qE '^${P}(pub|r[0-9]+|f[0-9]+)\$'"
check "down removes the lab's record" bash -c "! '$natlab' list | grep -q '^$P '"

# ---- symmetric NAT ---------------------------------------------------------------
echo "# natlab up 2 --symmetric"
check "up 2 --symmetric succeeds" "$natlab" --prefix "${P}s" up 2 --symmetric
check "the routers masquerade with --random-fully" bash -c "'$natlab' --prefix '${P}s' exec r0 iptables -t nat -S POSTROUTING | grep -q -- '--random-fully'"
check "down (symmetric)" "$natlab" --prefix "${P}s" down
check "nothing left of the symmetric lab" bash -c "! ip netns list | awk '{print \$1}' | grep -qE '^${P}s(pub|r[0-9]+|f[0-9]+)\$'"

# ---- fmirun --nat ------------------------------------------------------------------
if [[ -n $fmirun ]]; then
  echo "# fmirun --nat"
  before=$(ip netns list | awk '{print $1}' | sort)
  out=$("$fmirun" --nat -n 3 --natlab "$natlab" -- "$probe" whereami 2>&1)
  rc=$?
  check "fmirun --nat -n 3 runs every peer (rc $rc)" test "$rc" -eq 0
  for i in 0 1 2; do
    check "peer $i runs in its own namespace at 192.168.$((i + 1)).2" grep -qx "\[peer $i\] addr 192.168.$((i + 1)).2" <<<"$out"
  done
  after=$(ip netns list | awk '{print $1}' | sort)
  check "fmirun --nat removes its lab" test "$before" == "$after"

  tmp=$(mktemp -d)
  out=$("$fmirun" --nat -n 3 --natlab "$natlab" -- "$probe" fail 1 5 "$tmp" 2>&1)
  rc=$?
  check "fmirun --nat with a failing peer returns its status (rc $rc)" test "$rc" -eq 5
  after=$(ip netns list | awk '{print $1}' | sort)
  check "fmirun --nat removes its lab after a failure" test "$before" == "$after"
  rm -rf "$tmp"

  if [[ -n $rendezvous ]]; then
    # fmi-test.json: Direct enabled at 127.0.0.1:10000, which fmirun --nat rewrites.
    cfg="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/fmi-test.json"
    out=$("$fmirun" --nat -n 4 --config "$cfg" --natlab "$natlab" --rendezvous "$rendezvous" -- "$probe" connect-config 2>&1)
    rc=$?
    check "fmirun --nat starts the rendezvous server in the public namespace (rc $rc)" test "$rc" -eq 0
    check "every peer reaches it at 10.200.0.1:10000 through its NAT" test "$(grep -c 'connected to 10.200.0.1:10000' <<<"$out")" -eq 4
    [[ $rc -eq 0 ]] || sed 's/^/       /' <<<"$out"
  fi
fi

# ---- FMI collectives over Direct through the NATs ----------------------------------
if [[ -n $fmirun && -n $rendezvous && -n $hello && -n $kmeans && -n $config ]]; then
  echo "# FMI over Direct through the NAT lab (fmirun --nat)"
  # -v: the server's log, to tell punched connections from relayed ones.
  run_nat() { "$fmirun" -v --nat --natlab "$natlab" --rendezvous "$rendezvous" --config "$config" --timeout 100 "$@" 2>&1; }
  out=$(run_nat -n 4 -- "$hello")
  rc=$?
  check "hello (send/recv, bcast, reduce, allreduce, barrier) on 4 NATed functions (rc $rc)" test "$rc" -eq 0
  check "hello: every result right" bash -c "! grep -q WRONG <<<\"\$1\" && grep -q 'barrier passed' <<<\"\$1\"" _ "$out"
  [[ $rc -eq 0 ]] || sed 's/^/       /' <<<"$out" | tail -20
  check "hello: every connection hole-punched (nothing relayed by the server)" bash -c "! grep -qi 'rendezvous\].*relay' <<<\"\$1\"" _ "$out"
  out=$(run_nat -n 4 -- "$kmeans" --points 5000 --check)
  rc=$?
  check "kmeans --check (bcast + allreduce per epoch) on 4 NATed functions (rc $rc)" test "$rc" -eq 0
  [[ $rc -eq 0 ]] || sed 's/^/       /' <<<"$out" | tail -20
  check "kmeans: every connection hole-punched (nothing relayed by the server)" bash -c "! grep -qi 'rendezvous\].*relay' <<<\"\$1\"" _ "$out"
  if [[ -n $stream ]]; then
    # 1 GiB in 16 MiB messages over one punched connection, every word checked.
    out=$(run_nat -n 2 -- "$stream" 1024 16)
    rc=$?
    check "1 GiB checksummed stream between 2 NATed functions (rc $rc)" test "$rc" -eq 0
    check "stream: checksums match on both sides" grep -q "checksums match" <<<"$out"
    check "stream: over a punched connection (nothing relayed)" bash -c "! grep -qi 'rendezvous\].*relay' <<<\"\$1\"" _ "$out"
    grep -E "sent .* MiB" <<<"$out" | sed 's/^/       /'
    [[ $rc -eq 0 ]] || sed 's/^/       /' <<<"$out" | tail -20
  fi
  # Symmetric NATs: punching cannot work; the Direct channel must relay or fail with
  # an error that says so (config: max_timeout 8 s).
  out=$(run_nat --symmetric -n 2 -- "$hello")
  rc=$?
  if [[ $rc -eq 0 ]]; then
    check "symmetric NAT: hello passes, relayed through the rendezvous server" grep -qi 'rendezvous\].*relay' <<<"$out"
  else
    check "symmetric NAT: the failure names the symmetric NAT" grep -qi "symmetric" <<<"$out"
  fi
  after=$(ip netns list | awk '{print $1}' | sort)
  check "no lab left behind by the FMI runs" test "$before" == "$after"
fi

echo "# $failures failure(s)"
[[ $failures -eq 0 ]]
