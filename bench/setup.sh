# shellcheck shell=bash
# Sourced by the benchmark scripts (compare.sh, collectives.sh, p2p_ab.sh,
# encryption.sh): what they need before measuring. bench_install uses the caller's
# log().

# bench_install PKG...: installs the Debian packages the caller found missing
# (none: nothing to do); with NO_INSTALL set it refuses and exits.
bench_install() {
  (($#)) || return 0
  if [[ -n "${NO_INSTALL:-}" ]]; then
    log "missing Debian packages: $* (NO_INSTALL is set)"; exit 1
  fi
  log "installing $*"
  local sudo=; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get install -y "$@" >&2 || { $sudo apt-get update >&2 && $sudo apt-get install -y "$@" >&2; }
}

# bench_configure SRC BUILD [CMAKE_ARGS...]: configures BUILD unless it already is.
bench_configure() {
  local src=$1 build=$2; shift 2
  if [[ ! -f "$build/build.ninja" && ! -f "$build/Makefile" ]]; then
    log "configuring $build"
    local gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
    cmake -S "$src" -B "$build" "${gen[@]}" "$@" >&2
  fi
}

# bench_direct_configs SRC DIR: writes DIR/enc.json and DIR/plain.json, copies of
# SRC/config/fmi.json with backends.Direct.encryption true and false.
bench_direct_configs() {
  python3 - "$1/config/fmi.json" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
for name, on in (("enc", True), ("plain", False)):
    c["backends"]["Direct"]["encryption"] = on
    json.dump(c, open(f"{sys.argv[2]}/{name}.json", "w"))
PY
}
