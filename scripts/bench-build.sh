#!/usr/bin/env bash
# Benchmark: building the seed's web image (examples/hit-counter/app) and the
# whole `up --build` → first HTTP answer, side by side with docker.
#
#   scripts/bench-build.sh [--runs N] [--install] [--no-docker]
#
# Figures (median of N runs, default 3, in ms):
#   cold build    `image build --no-cache` (base image already pulled)
#   cached build  `image build` again, nothing changed
#   RUN alone     the Dockerfile's `pip install -r requirements.txt` in a plain
#                 container (what a cold build cannot go below)
#   up→HTTP       `up -d --build` (build cache warm, images pulled, nothing
#                 running) until localhost answers 200, then `down`
#
# Docker side: the classic builder of docker.io 20.10 (Debian) and docker-compose
# 1.29 (`--install` installs them with apt-get). A private dockerd runs with its
# own --data-root, no iptables and no docker0 (port publishing goes through
# docker-proxy), pulling through the same local registry mirror; it is stopped
# and its data removed at the end. Where dockerd cannot run, the script says so.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD

runs=3 install=0 docker=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --install) install=1; shift ;;
    --no-docker) docker=0; shift ;;
    *) echo "usage: $0 [--runs N] [--install] [--no-docker]" >&2; exit 1 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench-build: run as root (containers need it)" >&2; exit 1; }

if [ -z "${MINICOMPOSE_BIN:-}" ]; then
  cargo build --release --quiet -p minicompose
  MINICOMPOSE_BIN=$here/target/release/minicompose
fi

reused_state=${MC_TEST_STATE:-}
registry_env=$(scripts/test-registry.sh start)
eval "$registry_env"
work=$(mktemp -d /tmp/mc-bench-build.XXXXXX)
port=18933
started_dockerd="" docker_root="" docker_conf=""
cleanup() {
  set +e
  (cd "$work/stack" 2>/dev/null && "$MINICOMPOSE_BIN" --root "$work/mcroot" -p mcbb down >/dev/null 2>&1)
  if [ -n "$started_dockerd" ]; then
    (cd "$work/stack" && DOCKER_HOST=$docker_host docker-compose -p mcbbd down >/dev/null 2>&1)
    kill "$started_dockerd" 2>/dev/null && wait "$started_dockerd" 2>/dev/null
    umount -R "$docker_root" 2>/dev/null
    rm -rf "$docker_root" "$docker_conf"
  fi
  [ "$MC_TEST_STATE" != "$reused_state" ] && scripts/test-registry.sh stop "$MC_TEST_STATE" >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The seed, published on a free port instead of 8000.
cp -r examples/hit-counter "$work/stack"
sed -i "s/\"8000:5000\"/\"$port:5000\"/" "$work/stack/docker-compose.yml"
ctx=$work/stack/app

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# timed CMD...: prints the ms it took (fails if CMD fails).
timed() {
  local t0; t0=$(now_ms)
  "$@" >/dev/null 2>&1 || { echo "bench-build: failed: $*" >&2; return 1; }
  echo $(( $(now_ms) - t0 ))
}
# med N CMD...: median ms of N timed runs.
med() {
  local n=$1; shift
  for _ in $(seq "$n"); do timed "$@"; done | median
}
wait_http() {
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/")" = 200 ] && return 0
    sleep 0.05
  done
  return 1
}
# up_http UP... -- DOWN...: ms from starting UP until the first HTTP 200; then DOWN.
up_http() {
  local up=() down=()
  while [ "$1" != "--" ]; do up+=("$1"); shift; done; shift
  down=("$@")
  local t0 t
  t0=$(now_ms)
  (cd "$work/stack" && "${up[@]}" >/dev/null 2>&1) || { echo "bench-build: failed: ${up[*]}" >&2; return 1; }
  wait_http || { echo "bench-build: no HTTP answer after ${up[*]}" >&2; return 1; }
  t=$(( $(now_ms) - t0 ))
  (cd "$work/stack" && "${down[@]}" >/dev/null 2>&1)
  echo "$t"
}
med_up() { local n=$1; shift; for _ in $(seq "$n"); do up_http "$@"; done | median; }

# --- minicompose ---
mcroot=$work/mcroot
mc() { "$MINICOMPOSE_BIN" --root "$mcroot" --registry-mirror "http://$MC_TEST_REGISTRY" "$@"; }
mc image pull python:3.6-alpine >/dev/null 2>&1
mc image pull redis:alpine >/dev/null 2>&1
mc_cold=$(med "$runs" mc image build --no-cache -t mcbench-web "$ctx")
mc_cached=$(med "$runs" mc image build -t mcbench-web "$ctx")
mc_run=$(med "$runs" mc container run --rm -v "$ctx:/code" -w /code python:3.6-alpine pip install -r requirements.txt)
mc_up=$(med_up "$runs" "$MINICOMPOSE_BIN" --root "$mcroot" -p mcbb up -d --build -- "$MINICOMPOSE_BIN" --root "$mcroot" -p mcbb down)

# --- docker ---
d_cold=- d_cached=- d_run=- d_up=- docker_note=""
docker_host=""
if [ "$docker" = 1 ]; then
  if [ "$install" = 1 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io docker-compose >/dev/null
  fi
  if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null; then
    docker_note="docker.io/docker-compose not installed (use --install)"
  else
    docker_root=/var/lib/mc-bench-docker
    docker_conf=$work/daemon.json
    docker_host=unix://$work/docker.sock
    printf '{"registry-mirrors":["http://%s"],"insecure-registries":["%s"]}\n' \
      "$MC_TEST_REGISTRY" "$MC_TEST_REGISTRY" > "$docker_conf"
    dockerd --config-file "$docker_conf" --data-root "$docker_root" --exec-root "$work/docker-exec" \
      --pidfile "$work/docker.pid" -H "$docker_host" --iptables=false --ip-masq=false --bridge=none \
      >"$work/dockerd.log" 2>&1 &
    started_dockerd=$!
    export DOCKER_HOST=$docker_host
    for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    if ! docker info >/dev/null 2>&1; then
      docker_note="dockerd did not start here: $(tail -n 1 "$work/dockerd.log")"
    elif ! docker pull -q python:3.6-alpine >/dev/null 2>&1 || ! docker pull -q redis:alpine >/dev/null 2>&1; then
      docker_note="docker could not pull the stand-ins through the mirror"
    else
      export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
      d_cold=$(med "$runs" docker build --no-cache -t mcbench-web "$ctx") || d_cold=-
      d_cached=$(med "$runs" docker build -t mcbench-web "$ctx") || d_cached=-
      d_run=$(med "$runs" docker run --rm -v "$ctx:/code" -w /code python:3.6-alpine pip install -r requirements.txt) || d_run=-
      d_up=$(med_up "$runs" docker-compose -p mcbbd up -d --build -- docker-compose -p mcbbd down) || d_up=-
    fi
  fi
else
  docker_note="skipped (--no-docker)"
fi

echo
echo "seed web image (examples/hit-counter/app), median of $runs runs (ms)"
printf '%-30s %12s %12s\n' "" "minicompose" "docker"
printf '%-30s %12s %12s\n' "cold build (--no-cache)" "$mc_cold" "$d_cold"
printf '%-30s %12s %12s\n' "cached rebuild" "$mc_cached" "$d_cached"
printf '%-30s %12s %12s\n' "the RUN alone (container)" "$mc_run" "$d_run"
printf '%-30s %12s %12s\n' "up -d --build -> first HTTP" "$mc_up" "$d_up"
[ -n "$docker_note" ] && echo "docker: $docker_note"
if [ "$d_cached" != - ] && [ "$d_cached" -gt 0 ]; then
  awk -v a="$mc_cached" -v b="$d_cached" 'BEGIN { printf "cached rebuild: minicompose takes %.2f of docker'"'"'s time (target <= 0.20)\n", a / b }'
fi
