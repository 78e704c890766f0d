#!/usr/bin/env bash
# The demo's registry mirror: the Debian-built stand-ins for library/busybox:latest,
# library/python:3.6-alpine and library/redis:alpine on an anonymous local registry.
#
#   mirror=$(scripts/demo-images.sh)      start (or reuse) it; prints http://127.0.0.1:PORT
#   minicompose --registry-mirror "$mirror" up
#   scripts/demo-images.sh stop           stop it (the pushed images stay cached)
#
# State (pid, config, log) lives in $MC_DEMO_STATE (default /tmp/mc-demo-registry), so
# every shell finds the same mirror; the registry storage persists in the image cache
# (scripts/testimages/README.md), so a restart pushes nothing again.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
py=${MC_PYTHON:-/usr/bin/python3}
images=("$py" "$here/testimages/images.py")
state=${MC_DEMO_STATE:-/tmp/mc-demo-registry}

log() { echo "demo-images: $*" >&2; }
die() { echo "demo-images: error: $*" >&2; exit 1; }

. "$here/testimages/registry-lib.sh"

cmd_start() {
  command -v docker-registry >/dev/null || die "docker-registry not installed; run scripts/install-deps.sh"
  if [ -f "$state/url" ] && all_running "$state"; then
    cat "$state/url"
    return 0
  fi
  [ -d "$state" ] && cmd_stop
  mkdir -p "$state"
  : >"$state/pids"
  trap 'rc=$?; if [ $rc -ne 0 ]; then cmd_stop >/dev/null 2>&1 || true; fi' EXIT
  local cache
  cache=$("${images[@]}" cache-dir)
  "${images[@]}" build busybox python redis >/dev/null || die "building the stand-in images failed"
  start_registry mirror "" "$cache/demo-storage"
  "${images[@]}" push --registry "127.0.0.1:$port" --repos library/busybox,library/python,library/redis \
    busybox python redis || die "pushing the stand-ins failed"
  echo "http://127.0.0.1:$port" >"$state/url"
  log "mirror ready (stop: $0 stop)"
  cat "$state/url"
  trap - EXIT
}

cmd_stop() {
  [ -d "$state" ] || return 0
  stop_started "$state"
  rm -rf "$state"
}

case "${1:-start}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) die "usage: $0 [start|stop]" ;;
esac
