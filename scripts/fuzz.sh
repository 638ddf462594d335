#!/usr/bin/env bash
# Fuzzes the rendezvous/handshake protocol parser, then the decoder of encrypted
# Direct frames (frame_fuzz: records, tags, src/channels/direct/secure.cpp), with
# libFuzzer for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS]      (default 60, per target)
#
# Configures build-fuzz/ with clang++ (tests/fuzz as its own CMake project), builds
# rendezvous_fuzz with -fsanitize=fuzzer,address,undefined, regenerates the seed
# corpus into the committed tests/fuzz/corpus/rendezvous/ (valid frames of every
# message type), and fuzzes from it with a scratch copy, so that the committed
# corpus only changes when the protocol does. Exits non-zero on a crash, a
# sanitizer report or a leak; the reproducer is written to build-fuzz/artifacts/.
# Prints the number of executions run.
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FMI_FUZZ_BUILD_DIR:-$root/build-fuzz}
corpus=$root/tests/fuzz/corpus/rendezvous

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (scripts/install-deps.sh)" >&2; exit 1; }
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$root/tests/fuzz" -B "$build" "${generator[@]}" -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build" -j2 --target rendezvous_fuzz rendezvous_make_corpus frame_fuzz

mkdir -p "$corpus" "$build/artifacts"
"$build/rendezvous_make_corpus" "$corpus"
work=$build/corpus-work
rm -rf "$work"
mkdir -p "$work"
cp "$corpus"/* "$work"/

log=$build/fuzz.log
set +e
"$build/rendezvous_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$build/artifacts/" "$work" >"$log" 2>&1
rc=$?
set -e
grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$log" || true
if [[ $rc -ne 0 ]]; then
  tail -n 60 "$log" >&2
  echo "fuzz.sh: rendezvous_fuzz failed (exit $rc); reproducer in $build/artifacts/" >&2
  exit "$rc"
fi
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
echo "fuzz.sh: rendezvous_fuzz ran ${execs:-?} executions in ${seconds} s without a crash"

# The frame decoder, from its small committed corpus (tests/fuzz/corpus/frame/).
work=$build/corpus-frame-work
rm -rf "$work"
mkdir -p "$work"
cp "$root"/tests/fuzz/corpus/frame/* "$work"/
log=$build/fuzz-frame.log
set +e
"$build/frame_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=600000 \
  -print_final_stats=1 -artifact_prefix="$build/artifacts/frame-" "$work" >"$log" 2>&1
rc=$?
set -e
if [[ $rc -ne 0 ]]; then
  tail -n 60 "$log" >&2
  echo "fuzz.sh: frame_fuzz failed (exit $rc); reproducer in $build/artifacts/" >&2
  exit "$rc"
fi
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
echo "fuzz.sh: frame_fuzz ran ${execs:-?} executions in ${seconds} s without a crash"
