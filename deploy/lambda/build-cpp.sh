#!/usr/bin/env bash
# Builds examples/kmeans as an AWS Lambda function for the provided.al2023 runtime
# (FMI::Lambda::serve, include/fmi/lambda.h; docs/lambda-cpp.md):
#   build/cpp/function/bootstrap   the entry point (deploy/lambda/bootstrap)
#   build/cpp/function/kmeans      the example, FMI linked statically
#   build/cpp/function/lib/        the shared libraries it needs beyond glibc
#   build/cpp/function.zip         the three above, for `aws lambda create-function`
# then `sam deploy --guided --template-file template-cpp.yaml` (in this folder).
#
# It must run on Amazon Linux 2023 (the runtime's glibc), e.g. from the repository root:
#
#   docker run --rm -v "$PWD":/src -w /src public.ecr.aws/amazonlinux/amazonlinux:2023 \
#       deploy/lambda/build-cpp.sh
#
# As root with dnf (that image), it installs the build packages first (gcc-c++,
# cmake, ninja-build, libcurl-devel, openssl-devel, json-devel, zip).
# Environment: FMI_CMAKE_ARGS (extra CMake arguments; default builds Direct and S3,
# not Redis: hiredis is not an Amazon Linux package), JOBS (default: number of CPUs),
# FMI_LAMBDA_ANY_OS=1 to build on another OS anyway (to test this script; the
# result then needs that OS's glibc).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$here/build/cpp
jobs=${JOBS:-$(nproc)}

if ! grep -qs 'Amazon Linux' /etc/os-release && [ "${FMI_LAMBDA_ANY_OS:-0}" != 1 ]; then
  echo "build-cpp.sh: not Amazon Linux; run it in public.ecr.aws/amazonlinux/amazonlinux:2023" \
       "(or set FMI_LAMBDA_ANY_OS=1 to build anyway, e.g. to test this script)" >&2
  exit 2
fi
if [ "$(id -u)" = 0 ] && command -v dnf > /dev/null; then
  dnf install -y -q gcc-c++ cmake ninja-build libcurl-devel openssl-devel json-devel \
      zip findutils > /dev/null
fi

rm -rf "$out"
mkdir -p "$out/function/lib"

# Only what the function needs: the library and the example (no tests, tools, Python).
cmake -S "$repo" -B "$out/cmake" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DFMI_WITH_REDIS=OFF -DFMI_WITH_LAMBDA=ON \
  -DFMI_BUILD_TESTS=OFF -DFMI_BUILD_TOOLS=OFF -DFMI_BUILD_BENCH=OFF \
  -DFMI_BUILD_PYTHON=OFF -DFMI_BUILD_EXAMPLES=ON \
  ${FMI_CMAKE_ARGS:-}
cmake --build "$out/cmake" --target kmeans -j "$jobs"

cp "$out/cmake/examples/kmeans" "$out/function/kmeans"
cp "$here/bootstrap" "$out/function/bootstrap"
chmod 755 "$out/function/bootstrap" "$out/function/kmeans"

# Every shared library kmeans loads except glibc's own (the runtime has those, and a
# copied libc would not match its loader): libcurl and what it pulls in, libcrypto,
# libstdc++ and libgcc_s (provided.al2023 is a minimal image).
ldd "$out/function/kmeans" | awk '/=> \// {print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libresolv.so*) ;;
    *) cp -L "$lib" "$out/function/lib/" ;;
  esac
done

(cd "$out/function" && rm -f ../function.zip && zip -q -r ../function.zip bootstrap kmeans lib)
echo "function: $out/function ($(ls "$out/function/lib" | wc -l) shared libraries in lib/)"
echo "zip:      $out/function.zip"
echo "next:     cd $here && sam deploy --guided --template-file template-cpp.yaml"
