#!/usr/bin/env bash
# Local registries with the minicompose test images (see scripts/testimages/README.md).
#
#   eval "$(scripts/test-registry.sh start)"   build (cached) + push the images, start the
#                                              registries, print `export MC_TEST_...` lines
#   scripts/test-registry.sh stop [STATE_DIR]  stop what start started (default $MC_TEST_STATE)
#   scripts/test-registry.sh status [STATE_DIR]
#
# Registries (Debian's docker-registry, distribution 2.8) listen on free loopback ports:
#   MC_TEST_REGISTRY        anonymous, every test image
#   MC_TEST_REGISTRY_BASIC  htpasswd basic auth (MC_TEST_REGISTRY_USER / _PASSWORD), library/*
#   MC_TEST_REGISTRY_TOKEN  token auth through scripts/testimages/token_issuer.py, library/*
# State (pids, configs, storage, certs, logs) lives in a temp dir outside the clone
# (MC_TEST_STATE); stdout carries only the export lines, progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
py=${MC_PYTHON:-/usr/bin/python3}
images=("$py" "$here/testimages/images.py")

log() { echo "test-registry: $*" >&2; }
die() { echo "test-registry: error: $*" >&2; exit 1; }

. "$here/testimages/registry-lib.sh"

# start_issuer USER PASSWORD: starts the token issuer; sets $realm to its URL.
start_issuer() {
  local dir="$state/token" pid i
  mkdir -p "$dir"
  "$py" "$here/testimages/token_issuer.py" gencert --dir "$dir" || die "token certificate generation failed"
  MC_TOKEN_PASSWORD=$2 "$py" "$here/testimages/token_issuer.py" serve --dir "$dir" \
    --service mc-test-registry --issuer mc-test-issuer --user "$1" --port-file "$dir/port" \
    </dev/null >"$dir/stderr.log" 2>&1 &
  pid=$!
  for i in $(seq 1 100); do
    [ -s "$dir/port" ] && break
    kill -0 "$pid" 2>/dev/null || die "token issuer exited; see $dir/stderr.log: $(tail -n 3 "$dir/stderr.log" | tr '\n' ' ')"
    sleep 0.1
  done
  [ -s "$dir/port" ] || die "token issuer did not report its port within 10s"
  echo "$pid issuer" >>"$state/pids"
  realm="http://127.0.0.1:$(cat "$dir/port")/token"
}

# Registry storage after a push is kept in the cache as a seed, keyed by the image
# builds, so the next start copies it and the pushes only find everything present.
seed_dir() { echo "$cache/registry-seed/$1-$seed_key"; }

# Blob data files are immutable in distribution (written once, then renamed into
# place), so they are hardlinked; the small link files it rewrites in place are copied.
seed_storage() {
  local seed v2="docker/registry/v2"
  seed=$(seed_dir "$1")
  mkdir -p "$state/$1/storage/$v2"
  [ -d "$seed/$v2" ] || return 0
  [ -d "$seed/$v2/blobs" ] && cp -al "$seed/$v2/blobs" "$state/$1/storage/$v2/"
  [ -d "$seed/$v2/repositories" ] && cp -a "$seed/$v2/repositories" "$state/$1/storage/$v2/"
  return 0
}

save_seed() {
  local seed tmp
  seed=$(seed_dir "$1")
  [ -d "$seed" ] && return 0
  mkdir -p "$(dirname "$seed")"
  find "$(dirname "$seed")" -mindepth 1 -maxdepth 1 -name "$1-*" -exec rm -rf {} + 2>/dev/null || true
  tmp="$seed.tmp.$$"
  if cp -a "$state/$1/storage" "$tmp"; then mv -T "$tmp" "$seed" 2>/dev/null || rm -rf "$tmp"; fi
}

cmd_start() {
  command -v docker-registry >/dev/null || die "docker-registry not installed; run scripts/install-deps.sh"
  if [ -n "${MC_TEST_STATE:-}" ] && [ -f "$MC_TEST_STATE/env" ] && all_running "$MC_TEST_STATE"; then
    log "reusing running registries in $MC_TEST_STATE"
    cat "$MC_TEST_STATE/env"
    return 0
  fi
  if [ -n "${MC_TEST_STATE:-}" ] && [ -d "$MC_TEST_STATE" ]; then
    log "registries in $MC_TEST_STATE are not (all) running; cleaning up and starting afresh"
    cmd_stop "$MC_TEST_STATE"
  fi
  local t0=$SECONDS layouts
  layouts=$("${images[@]}" build) || die "building the test images failed"
  cache=$("${images[@]}" cache-dir)
  seed_key=$(echo "$layouts" | sha256sum | cut -c1-16)
  log "images ready after $((SECONDS - t0))s"

  state=$(mktemp -d "${TMPDIR:-/tmp}/mc-test-registry.XXXXXX")
  chmod 755 "$state"
  : >"$state/pids"
  # On failure, leave nothing behind.
  trap 'rc=$?; if [ $rc -ne 0 ]; then cmd_stop "$state" >/dev/null 2>&1 || true; fi' EXIT

  local user=mcuser password
  password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  htpasswd -Bbn "$user" "$password" >"$state/htpasswd" 2>/dev/null || die "htpasswd failed (apache2-utils)"
  local kind
  for kind in plain basic token; do seed_storage "$kind"; done

  start_registry plain ""
  local plain="127.0.0.1:$port"
  start_registry basic "auth:
  htpasswd:
    realm: mc-test-registry-basic
    path: $state/htpasswd"
  local basic="127.0.0.1:$port"
  start_issuer "$user" "$password"
  start_registry token "auth:
  token:
    realm: $realm
    service: mc-test-registry
    issuer: mc-test-issuer
    rootcertbundle: $state/token/cert.pem"
  local token="127.0.0.1:$port"

  # The three pushes run side by side; each only uploads what the seed lacks.
  local creds=(--user "$user" --password "$password")
  local library=(--repos library/busybox,library/python,library/redis busybox python redis)
  local p1 p2 p3
  "${images[@]}" push --registry "$plain" & p1=$!
  "${images[@]}" push --registry "$basic" "${creds[@]}" "${library[@]}" & p2=$!
  "${images[@]}" push --registry "$token" "${creds[@]}" "${library[@]}" & p3=$!
  wait "$p1" || die "pushing to $plain failed"
  wait "$p2" || die "pushing to $basic failed"
  wait "$p3" || die "pushing to $token failed"
  for kind in plain basic token; do save_seed "$kind"; done

  cat >"$state/env" <<EOF
export MC_TEST_REGISTRY=$plain
export MC_TEST_REGISTRY_BASIC=$basic
export MC_TEST_REGISTRY_TOKEN=$token
export MC_TEST_REGISTRY_USER=$user
export MC_TEST_REGISTRY_PASSWORD=$password
export MC_TEST_TOKEN_REALM=$realm
export MC_TEST_STATE=$state
EOF
  log "ready in $((SECONDS - t0))s (state $state)"
  cat "$state/env"
  trap - EXIT
}

cmd_stop() {
  local state=${1:-${MC_TEST_STATE:-}}
  [ -n "$state" ] || die "no state dir: give it as argument or set MC_TEST_STATE"
  [ -d "$state" ] || { log "$state does not exist; nothing to stop"; return 0; }
  case "$state" in */mc-test-registry.*) ;; *) die "$state is not a test-registry state dir" ;; esac
  stop_started "$state"
  rm -rf "$state"
}

cmd_status() {
  local state=${1:-${MC_TEST_STATE:-}}
  [ -n "$state" ] && [ -d "$state" ] || die "no state dir (set MC_TEST_STATE)"
  if all_running "$state"; then cat "$state/env"; else log "not (all) running: $state"; return 1; fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  *) die "usage: $0 start|stop [STATE_DIR]|status [STATE_DIR]" ;;
esac
