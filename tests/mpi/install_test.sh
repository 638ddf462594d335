#!/bin/bash
# The wrappers without fmirun and after installation:
#  1. a program built with the build tree's fmi-mpicc and started without fmirun is
#     an MPI singleton (one process);
#  2. installing into a fresh prefix gives bin/fmi-mpicc, bin/fmi-mpicxx,
#     include/fmi/mpi/mpi.h, lib/libfmi_mpi.so, lib/pkgconfig/fmi-mpi.pc and the
#     CMake package, and a C and a C++ program build with them (wrappers, pkg-config,
#     find_package(FMI) + FMI::mpi) and run.
#   install_test.sh BUILD_DIR FMI_MPICC PROGRAM.c
set -u
build=$1 wrapper=$2 src=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/fmi-mpi-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
expect="Process 0 received token -1 from process 0"

"$wrapper" -o "$work/ring" "$src" || fail "build-tree fmi-mpicc"
out=$(env -u FMI_PEER_ID -u FMI_NUM_PEERS "$work/ring") || fail "singleton run exited $?"
[ "$out" = "$expect" ] || fail "singleton printed '$out'"
echo "ok: singleton"

# The library's and the wrappers' install scripts (what `cmake --install` runs for
# them), so that the test needs only the targets it depends on built.
for part in src tools/fmi-mpicc; do
  cmake -DCMAKE_INSTALL_PREFIX="$work/prefix" -P "$build/$part/cmake_install.cmake" >>"$work/install.log" 2>&1 ||
    { cat "$work/install.log"; fail "install of $part"; }
done
for f in bin/fmi-mpicc bin/fmi-mpicxx include/fmi/mpi/mpi.h lib/pkgconfig/fmi-mpi.pc; do
  [ -e "$work/prefix/$f" ] || fail "not installed: $f"
done
ls "$work/prefix"/lib*/libfmi_mpi.so >/dev/null || fail "libfmi_mpi.so not installed"
"$work/prefix/bin/fmi-mpicc" -o "$work/ring-installed" "$src" || fail "installed fmi-mpicc"
ldd "$work/ring-installed" | grep -q "$work/prefix" || fail "the program does not use the installed libfmi_mpi"
[ "$("$work/ring-installed")" = "$expect" ] || fail "installed program output"
cp "$src" "$work/ring.cpp"
"$work/prefix/bin/fmi-mpicxx" -o "$work/ring-cxx" "$work/ring.cpp" || fail "installed fmi-mpicxx"
[ "$("$work/ring-cxx")" = "$expect" ] || fail "C++ program output"
pc=$(ls -d "$work/prefix"/lib*/pkgconfig)
flags=$(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs fmi-mpi) || fail "pkg-config fmi-mpi"
cc -o "$work/ring-pc" "$src" $flags || fail "cc with pkg-config flags: $flags"
[ "$("$work/ring-pc")" = "$expect" ] || fail "pkg-config program output"
# find_package(FMI) + FMI::mpi in a CMake project of the user's.
mkdir -p "$work/app"
cp "$src" "$work/app/prog.c"
cat >"$work/app/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(app C CXX)
find_package(FMI REQUIRED)
add_executable(prog prog.c)
target_link_libraries(prog PRIVATE FMI::mpi)
CM
cmake -S "$work/app" -B "$work/app/build" -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/app.log" 2>&1 &&
  cmake --build "$work/app/build" >>"$work/app.log" 2>&1 || { tail -20 "$work/app.log"; fail "CMake project with FMI::mpi"; }
[ "$("$work/app/build/prog")" = "$expect" ] || fail "FMI::mpi program output"
echo "ok: installed wrappers, header, library, pkg-config file and CMake target FMI::mpi"
