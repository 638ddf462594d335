#!/usr/bin/env bash
# Installs the local AWS Lambda emulator that the tests and bench/lambda.sh run
# `fmirun --lambda` against: serverless 3 with the serverless-offline plugin, which
# serves the real Invoke API and runs Python handlers as processes (docs/lambda.md).
# v14 of the plugin needs serverless v4, which needs a login: these versions stay.
#
#   scripts/lambda-emulator.sh DIR     installs into DIR/node_modules (cached: nothing
#                                      is fetched when both versions are there)
#
# Prints DIR/node_modules/.bin/serverless. Fails loudly (exit 1, npm's own log)
# when npm or the registry cannot be reached: the tests then fail, they never skip.
set -euo pipefail

SERVERLESS_VERSION=3.40.0
OFFLINE_VERSION=13.9.0

dir=${1:?usage: lambda-emulator.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

installed() {  # installed NAME VERSION
  local pj="$dir/node_modules/$1/package.json"
  [[ -f $pj ]] && node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' "$pj" "$2"
}

if ! installed serverless "$SERVERLESS_VERSION" || ! installed serverless-offline "$OFFLINE_VERSION"; then
  command -v npm >/dev/null || { echo "lambda-emulator.sh: npm is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
  # One installer at a time (parallel tests share the folder).
  exec 9>"$dir/.install.lock"
  flock 9
  if ! installed serverless "$SERVERLESS_VERSION" || ! installed serverless-offline "$OFFLINE_VERSION"; then
    [[ -f $dir/package.json ]] || echo '{"name": "fmi-lambda-emulator", "private": true}' >"$dir/package.json"
    echo "lambda-emulator.sh: installing serverless@$SERVERLESS_VERSION serverless-offline@$OFFLINE_VERSION into $dir" >&2
    if ! (cd "$dir" && npm install --no-audit --no-fund --loglevel=error \
            "serverless@$SERVERLESS_VERSION" "serverless-offline@$OFFLINE_VERSION" >"$dir/npm.log" 2>&1); then
      tail -30 "$dir/npm.log" >&2
      echo "lambda-emulator.sh: npm install failed (log: $dir/npm.log)" >&2
      exit 1
    fi
  fi
fi
echo "$dir/node_modules/.bin/serverless"
