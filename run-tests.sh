#!/usr/bin/env bash
# Builds FMI and runs every test on a fresh Debian 12 machine (as root, or with
# sudo for the package installation). Servers the tests need (fmi-rendezvous,
# redis-server, the moto S3 server) are started by the tests themselves.
#   ./run-tests.sh            # install packages, build into build/, run ctest
#   FMI_SKIP_DEPS=1 ./run-tests.sh   # skip the apt step
set -euo pipefail
cd "$(dirname "$0")"

if [[ "${FMI_SKIP_DEPS:-0}" != 1 ]]; then
  ./scripts/install-deps.sh
fi

BUILD_DIR="${FMI_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD_DIR" -j "$(nproc)"
cd "$BUILD_DIR"
ctest --output-on-failure -j "${FMI_TEST_JOBS:-2}" "$@"
