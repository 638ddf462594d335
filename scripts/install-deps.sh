#!/usr/bin/env bash
# Installs everything FMI needs to build, test and run its demo on Debian 12, from
# Debian's own packages. Idempotent and quiet: packages already installed are not
# touched and apt-get only runs when something is missing. Run as root (or with sudo).
#
#   scripts/install-deps.sh
set -euo pipefail

packages=(
  # build
  cmake g++ ninja-build make pkg-config
  # libraries
  libhiredis-dev libcurl4-openssl-dev nlohmann-json3-dev pybind11-dev libcli11-dev
  libgtest-dev libbenchmark-dev libssl-dev libopenmpi-dev
  # AES-256-GCM with VAES for Direct encryption (src/channels/direct/secure.h "Impl")
  libipsec-mb-dev
  # Python bindings and their tests
  python3-dev python3-numpy python3-pytest python3-matplotlib
  # the mpi4py side of bench/python/objects_bench.py
  python3-mpi4py
  # servers and tools the tests and benchmarks start
  redis-server openmpi-bin
  # the fuzzer (scripts/fuzz.sh: clang's libFuzzer)
  clang libclang-rt-14-dev
  # the format check (scripts/format.sh, ctest format.check)
  clang-format
  # API documentation (cmake --build build --target docs)
  doxygen
  # the NAT lab (scripts/natlab.sh)
  iptables conntrack iproute2 procps
  # stacks of a test peer killed for hanging (tests/support/harness.h dump_stacks)
  gdb
)

missing=()
for p in "${packages[@]}"; do
  if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) != installed ]]; then
    missing+=("$p")
  fi
done
# The Lambda emulator of the tests (scripts/lambda-emulator.sh: npm packages): Node.js
# and npm from Debian, unless a Node.js with its own npm is installed already.
if ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps.sh: run as root (missing: ${missing[*]})" >&2; exit 1; }
  sudo=(sudo)
fi

echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
