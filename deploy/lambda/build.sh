#!/usr/bin/env bash
# Builds the FMI Lambda layer and the example function's code for the Lambda Python
# runtime:
#   build/layer/python/    fmi.cpython-3XX-x86_64-linux-gnu.so, fmi.pyi, numpy
#   build/layer/lib/       shared libraries the module needs beyond the runtime's
#   build/function/        handler.py, fmi.json (model parameters)
# then `sam deploy --guided` (in this folder) uploads both (template.yaml).
#
# It must run on Amazon Linux, for the runtime's Python version: a module built on
# Debian links against a newer glibc and another Python. Use the SAM build image of
# the runtime chosen in template.yaml (PythonRuntime, default python3.13), from the
# repository root:
#
#   docker run --rm -v "$PWD":/src -w /src public.ecr.aws/sam/build-python3.13 \
#       deploy/lambda/build.sh
#
# The python3.12+ images are Amazon Linux 2023 (gcc 11, C++20). python3.11 (Amazon
# Linux 2, gcc 7) cannot build FMI and can no longer be used to create functions.
#
# Environment: PYTHON (default python3: the image's runtime interpreter),
# FMI_CMAKE_ARGS (extra CMake arguments; default builds Direct and S3, not Redis),
# JOBS (default: number of CPUs).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$here/build
python=${PYTHON:-python3}
jobs=${JOBS:-$(nproc)}

if ! grep -qs 'Amazon Linux' /etc/os-release && [ "${FMI_LAMBDA_ANY_OS:-0}" != 1 ]; then
  echo "build.sh: not Amazon Linux; run it in public.ecr.aws/sam/build-python3.XX" \
       "(or set FMI_LAMBDA_ANY_OS=1 to build anyway, e.g. to test this script)" >&2
  exit 1
fi

# Build tools and headers (the SAM build images run as root and have dnf).
if command -v dnf >/dev/null && [ "$(id -u)" = 0 ]; then
  dnf install -y gcc-c++ make cmake json-devel libcurl-devel openssl-devel >/dev/null
fi
"$python" -m pip install --quiet --upgrade "pybind11>=2.10" "cmake>=3.18"
export PATH="$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"

rm -rf "$out"
mkdir -p "$out/layer/python" "$out/layer/lib" "$out/function"

cmake -S "$repo/python" -B "$out/cmake" \
  -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE="$(command -v "$python")" \
  -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" \
  -DFMI_WITH_REDIS=OFF \
  ${FMI_CMAKE_ARGS:-}
cmake --build "$out/cmake" --target fmi_python -j "$jobs"

cp "$out"/cmake/fmi*.so "$repo/python/fmi.pyi" "$out/layer/python/"
# NumPy for the runtime (manylinux wheel), next to the module.
"$python" -m pip install --quiet --only-binary=:all: --target "$out/layer/python" numpy

# Libraries outside the Lambda base image (e.g. hiredis when Redis is enabled).
ldd "$out"/layer/python/fmi*.so | awk '/=> \// {print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libhiredis*) cp -L "$lib" "$out/layer/lib/" ;;
  esac
done

cp "$here/handler.py" "$out/function/"
# Model parameters (policy) for the configuration the handler writes; edit or
# replace with fmi-calibrate's output for your deployment.
cp "$repo/config/fmi.json" "$out/function/fmi.json"
echo "layer:    $out/layer"
echo "function: $out/function"
echo "next:     cd $here && sam deploy --guided"
