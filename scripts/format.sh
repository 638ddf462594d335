#!/bin/bash
# Formats the C++ sources with clang-format and the top-level .clang-format.
#
#   scripts/format.sh            format every tracked C++ file in place
#   scripts/format.sh --check    change nothing; list the files that need formatting
#                                and exit 1 if there are any
#   scripts/format.sh FILE...    only these files (with or without --check)
#
# CLANG_FORMAT names the binary (default: clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
cf=${CLANG_FORMAT:-clang-format}
check=0
if [[ ${1:-} == --check ]]; then
  check=1
  shift
fi
command -v "$cf" >/dev/null || { echo "format.sh: $cf not found (apt-get install clang-format)" >&2; exit 2; }

if (($#)); then
  files=("$@")
else
  mapfile -t files < <(git ls-files '*.h' '*.hpp' '*.cpp' '*.cc' | grep -v '^tests/fuzz/corpus/')
fi

if ((check)); then
  bad=0
  for f in "${files[@]}"; do
    if ! "$cf" --style=file --dry-run --Werror "$f" >/dev/null 2>&1; then
      echo "needs formatting: $f"
      bad=$((bad + 1))
    fi
  done
  if ((bad)); then
    echo "format.sh: $bad of ${#files[@]} files need formatting (run scripts/format.sh)" >&2
    exit 1
  fi
  echo "format.sh: ${#files[@]} files formatted"
else
  "$cf" --style=file -i "${files[@]}"
fi
