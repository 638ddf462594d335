#!/usr/bin/env bash
# The FMI demo, from a fresh Debian 12 machine (as root): installs the dependencies,
# builds everything, and runs distributed K-means (examples/kmeans.cpp) on 4 functions
# that talk over FMI's Direct channel (TCP, hole-punched). When this machine can make
# network namespaces, each function runs behind its own NAT, as on AWS Lambda
# (fmirun --nat, see docs/natlab.md); otherwise on loopback.
#
#   ./run-demo.sh                 # 4 functions
#   ./run-demo.sh -n 8            # fmirun options go before the example's
#   ./run-demo.sh -- --points 200000 --epochs 40      # kmeans options after --
#   FMI_DEMO_LOOPBACK=1 ./run-demo.sh                 # never use the NAT lab
set -euo pipefail
cd "$(dirname "$0")"

fmirun_args=()
while [[ $# -gt 0 && $1 != -- ]]; do fmirun_args+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
kmeans_args=("$@")
has_n=0
for a in "${fmirun_args[@]}"; do [[ $a == -n || $a == --np || $a == -n* ]] && has_n=1; done
[[ $has_n -eq 1 ]] || fmirun_args=(-n 4 "${fmirun_args[@]}")

step() { printf '\n== %s\n' "$*" >&2; }

step "installing dependencies (scripts/install-deps.sh)"
if [[ $(id -u) -eq 0 ]] || command -v sudo >/dev/null; then
  scripts/install-deps.sh
else
  echo "not root and no sudo: assuming the dependencies are installed" >&2
fi

# RelWithDebInfo (optimised, with symbols), as ./run-tests.sh: the two commands share
# build/, so running one after the other does not rebuild everything.
step "configuring and building everything (build/, RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build

# The NAT lab needs root, iptables and network namespaces (a container may not allow them).
nat=()
if [[ -z ${FMI_DEMO_LOOPBACK:-} && $(id -u) -eq 0 ]] && command -v iptables >/dev/null &&
  ip netns add "fmidemo$$" 2>/dev/null; then
  if ip netns exec "fmidemo$$" iptables -t nat -S >/dev/null 2>&1; then nat=(--nat); fi
  ip netns del "fmidemo$$"
fi
if [[ ${#nat[@]} -gt 0 ]]; then
  step "distributed K-means, every function behind its own NAT (fmirun --nat)"
else
  step "distributed K-means on local functions over loopback (no NAT lab here: it needs root, iptables and network namespaces)"
fi
set -x
build/tools/fmirun/fmirun "${nat[@]}" "${fmirun_args[@]}" --config config/fmi.json --timeout 600 -- \
  build/examples/kmeans "${kmeans_args[@]}"
