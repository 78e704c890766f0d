#!/usr/bin/env bash
# The hit-counter demo, end to end (the tutorial's "docker compose up" as minicompose):
#
#   bash scripts/demo.sh            (as root, from anywhere in the clone)
#
# 1. builds minicompose (release);
# 2. makes the images available: Docker Hub when MC_DEMO_HUB=1 and it answers,
#    otherwise the Debian-built stand-ins on a local registry mirror (scripts/demo-images.sh);
# 3. in examples/hit-counter: `up -d` (builds the web image from app/Dockerfile,
#    pulls redis), curls localhost:8000 three times, shows `ps`, `top`, `logs`;
# 4. `down`, and checks that nothing is left running.
#
# The store is the repo-local, git-ignored rootfs-cache/ (--root rootfs-cache), so a
# second run reuses the pulled layers and the build cache.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "containers need root: run it as root (sudo bash scripts/demo.sh)"

say "installing what the demo needs (scripts/install-deps.sh)"
bash scripts/install-deps.sh

say "building minicompose (cargo build --release)"
if [ -z "${MINICOMPOSE_BIN:-}" ]; then
  cargo build --release --quiet -p minicompose
  MINICOMPOSE_BIN=$repo/target/release/minicompose
fi
root=$repo/rootfs-cache
mkdir -p "$root"

# Where the images come from.
mirror_args=()
started_mirror=0
# Docker Hub is asked only when the user opts in (MC_DEMO_HUB=1): by default
# the demo sends nothing off this machine.
hub=
if [ "${MC_DEMO_HUB:-0}" = 1 ]; then
  hub=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 https://registry-1.docker.io/v2/ 2>/dev/null || true)
fi
if [ "$hub" = 200 ] || [ "$hub" = 401 ]; then
  say "images: Docker Hub is reachable"
else
  say "images: Docker Hub is not reachable; using the Debian-built stand-ins on a local mirror"
  state=${MC_DEMO_STATE:-/tmp/mc-demo-registry}
  [ -f "$state/url" ] || started_mirror=1
  mirror=$(scripts/demo-images.sh)
  echo "mirror: $mirror"
  mirror_args=(--registry-mirror "$mirror")
  export MINICOMPOSE_MIRROR_ONLY=1  # never fall back to Docker Hub
fi

mc() { "$MINICOMPOSE_BIN" --root "$root" "${mirror_args[@]}" "$@"; }

cleanup() {
  local rc=$?
  set +e
  (cd "$repo/examples/hit-counter" && mc down >/dev/null 2>&1)
  [ "$started_mirror" = 1 ] && "$repo/scripts/demo-images.sh" stop >/dev/null 2>&1
  exit $rc
}
trap cleanup EXIT

cd examples/hit-counter

say "minicompose up -d"
start=$(date +%s%N)
mc up -d

say "curl localhost:8000 (three times)"
answered=0
for _ in $(seq 1 100); do
  # Any path but / answers (404) without counting a hit.
  code=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' http://localhost:8000/ready || true)
  if [ "$code" != 000 ]; then answered=1; break; fi
  sleep 0.2
done
[ "$answered" = 1 ] || { mc logs || true; die "the web service did not answer on localhost:8000"; }
echo "(the web service answered $(( ($(date +%s%N) - start) / 1000000 )) ms after up -d started)"
for _ in 1 2 3; do curl -s http://localhost:8000/; done

say "minicompose ps"
mc ps

say "minicompose top"
mc top

say "minicompose logs"
mc logs --no-color | tail -n 20

say "minicompose down"
mc down

say "checking that nothing is left running"
left=$(mc ps -a -q | wc -l)
[ "$left" = 0 ] || die "$left containers are left"
[ -z "$(ls -A "$root/networks" 2>/dev/null)" ] || die "a network is left in $root/networks"
sup=$(ls "$root/run/compose/hit-counter/supervisor.pid" 2>/dev/null || true)
[ -z "$sup" ] || die "the project's supervisor is still registered ($sup)"
if grep -q "$root" /proc/self/mountinfo; then die "mounts under $root are left"; fi
if curl -s --max-time 1 -o /dev/null http://localhost:8000/; then die "port 8000 still answers"; fi
echo "nothing left: no containers, networks, mounts or supervisor; port 8000 closed"
say "demo done"
