#!/usr/bin/env bash
# Benchmark: warm `up -d` and `down` of (a) the two-service hit counter and
# (b) 20 busybox services, side by side with `docker compose` and
# `podman-compose` when they are available (or installed with --install).
#
#   scripts/bench-compose.sh [--runs N] [--install] [--no-docker] [--no-podman]
#
# "Warm": images already pulled, one untimed up/down first; the figure is
# the median of N runs (default 5). Images come from the local test
# registry (scripts/test-registry.sh), which docker and podman reach as a
# mirror / insecure registry, exactly as minicompose does.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD

runs=5 install=0 docker=1 podman=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --install) install=1; shift ;;
    --no-docker) docker=0; shift ;;
    --no-podman) podman=0; shift ;;
    *) echo "usage: $0 [--runs N] [--install] [--no-docker] [--no-podman]" >&2; exit 1 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench-compose: run as root (containers need it)" >&2; exit 1; }

if [ -z "${MINICOMPOSE_BIN:-}" ]; then
  cargo build --release --quiet -p minicompose
  MINICOMPOSE_BIN=$here/target/release/minicompose
fi

reused_state=${MC_TEST_STATE:-}
registry_env=$(scripts/test-registry.sh start)
eval "$registry_env"
work=$(mktemp -d /tmp/mc-bench.XXXXXX)
started_dockerd="" rpid=""
cleanup() {
  set +e
  [ -n "$rpid" ] && kill "$rpid" 2>/dev/null
  ip link del mcbfloor 2>/dev/null
  [ -n "$started_dockerd" ] && kill "$started_dockerd" 2>/dev/null && wait "$started_dockerd" 2>/dev/null
  [ "$MC_TEST_STATE" != "$reused_state" ] && scripts/test-registry.sh stop "$MC_TEST_STATE" >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The two stacks.
mkdir -p "$work/hit" "$work/hitinit" "$work/many"
cp -r tests/fixtures/hitcounter/. "$work/hit/"
# The same stack with `init: true`: the Flask app as PID 1 ignores SIGTERM,
# so `down` of "hit" is its 10 s grace period for every tool; with an init
# it stops at once and `down` measures the tool itself.
cp -r tests/fixtures/hitcounter/. "$work/hitinit/"
sed -i 's/^  \(web\|redis\):$/&\n    init: true/' "$work/hitinit/docker-compose.yml"
{
  echo "services:"
  for i in $(seq -w 1 20); do
    printf '  s%s:\n    image: busybox\n    command: ["sleep", "3600"]\n    stop_signal: SIGKILL\n' "$i"
  done
} > "$work/many/docker-compose.yml"
export WEB_PORT=18931
# The hit-counter fixture bind-mounts the seed's own app (see tests/common/lifecycle.rs).
export SEED_APP=$here/examples/hit-counter/app

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# bench NAME DIR UP... -- DOWN...: prints "NAME up_ms down_ms"
bench() {
  local name=$1 dir=$2; shift 2
  local up=() down=()
  while [ "$1" != "--" ]; do up+=("$1"); shift; done; shift
  down=("$@")
  (cd "$dir" && "${up[@]}" >/dev/null 2>&1 && "${down[@]}" >/dev/null 2>&1) || {
    echo "$name: failed (run it by hand: cd $dir; ${up[*]})" >&2; return 1; }
  local ups=() downs=()
  for _ in $(seq "$runs"); do
    local t0 t1 t2
    t0=$(now_ms); (cd "$dir" && "${up[@]}" >/dev/null 2>&1)
    t1=$(now_ms); (cd "$dir" && "${down[@]}" >/dev/null 2>&1)
    t2=$(now_ms)
    ups+=($((t1 - t0))); downs+=($((t2 - t1)))
  done
  printf '%s %s %s\n' "$name" "$(printf '%s\n' "${ups[@]}" | median)" "$(printf '%s\n' "${downs[@]}" | median)"
}

results=()
mcroot="$work/mcroot"
mc() { "$MINICOMPOSE_BIN" --root "$mcroot" --registry-mirror "http://$MC_TEST_REGISTRY" "$@"; }
for s in hit hitinit many; do
  (cd "$work/$s" && mc -p "mcb$s" pull >/dev/null 2>&1) || { echo "bench-compose: minicompose pull failed in $work/$s" >&2; exit 1; }
  results+=("$(bench "minicompose:$s" "$work/$s" "$MINICOMPOSE_BIN" --root "$mcroot" -p "mcb$s" up -d -- "$MINICOMPOSE_BIN" --root "$mcroot" -p "mcb$s" down)")
done
# Supervisor memory (the issue's target: <= 10 MiB RSS for two services).
(cd "$work/hit" && mc -p mcbhit up -d >/dev/null 2>&1)
pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$mcroot/run/compose/mcbhit/supervisor.pid")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
(cd "$work/hit" && mc -p mcbhit down >/dev/null 2>&1)

if [ "$install" = 1 ]; then
  pkgs=()
  [ "$docker" = 1 ] && pkgs+=(docker.io docker-compose)
  [ "$podman" = 1 ] && pkgs+=(podman podman-compose)
  [ ${#pkgs[@]} -gt 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null
fi

compose_cmd=()
if [ "$docker" = 1 ]; then
  if docker compose version >/dev/null 2>&1; then compose_cmd=(docker compose)
  elif command -v docker-compose >/dev/null; then compose_cmd=(docker-compose); fi
  if [ ${#compose_cmd[@]} -gt 0 ] && command -v dockerd >/dev/null; then
    # Our own dockerd (data, sockets and pid under $work), pulling through
    # the test registry; no docker0 bridge and no iptables rules of its own.
    dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" -p "$work/dockerd.pid" \
      -H "unix://$work/docker.sock" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
      --registry-mirror "http://$MC_TEST_REGISTRY" --insecure-registry "$MC_TEST_REGISTRY" \
      >"$work/dockerd.log" 2>&1 &
    started_dockerd=$!
    export DOCKER_HOST="unix://$work/docker.sock"
    for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  if [ ${#compose_cmd[@]} -gt 0 ] && docker info >/dev/null 2>&1; then
    for s in hit hitinit many; do
      (cd "$work/$s" && "${compose_cmd[@]}" -p "mcd$s" pull >/dev/null 2>&1) || true
      results+=("$(bench "${compose_cmd[*]// /-}:$s" "$work/$s" "${compose_cmd[@]}" -p "mcd$s" up -d -- "${compose_cmd[@]}" -p "mcd$s" down || echo "docker-compose:$s - -")")
    done
  else
    results+=("docker-compose:hit - -" "docker-compose:hitinit - -" "docker-compose:many - -")
    echo "bench-compose: docker compose not available (use --install)" >&2
  fi
fi
if [ "$podman" = 1 ]; then
  if command -v podman-compose >/dev/null; then
    export CONTAINERS_REGISTRIES_CONF="$work/registries.conf"
    printf '[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "%s"\ninsecure = true\n' \
      "$MC_TEST_REGISTRY" > "$CONTAINERS_REGISTRIES_CONF"
    for s in hit hitinit many; do
      (cd "$work/$s" && podman-compose -p "mcp$s" pull >/dev/null 2>&1) || true
      results+=("$(bench "podman-compose:$s" "$work/$s" podman-compose -p "mcp$s" up -d -- podman-compose -p "mcp$s" down || echo "podman-compose:$s - -")")
    done
  else
    results+=("podman-compose:hit - -" "podman-compose:hitinit - -" "podman-compose:many - -")
    echo "bench-compose: podman-compose not available (use --install)" >&2
  fi
fi

# What a two-service `down` costs whatever the tool: the stand-in redis
# (Debian's redis-server, as in the image) acts on SIGTERM only in its
# serverCron (hz 10, so up to 100 ms later), and the kernel waits out two
# RCU barriers when it deletes a bridge. Measured here without containers.
redis_stop=() bridge_del=()
if command -v redis-server >/dev/null; then
  for _ in $(seq "$runs"); do
    rdir=$(mktemp -d "$work/redis.XXXXXX")
    redis-server --port 0 --unixsocket "$rdir/sock" --dir "$rdir" --logfile "$rdir/log" >/dev/null 2>&1 &
    rpid=$!
    for _ in $(seq 200); do grep -q "Ready to accept" "$rdir/log" 2>/dev/null && break; sleep 0.01; done
    t0=$(date +%s%N); kill -TERM "$rpid"; wait "$rpid" || true; t1=$(date +%s%N)
    redis_stop+=($(( (t1 - t0) / 1000000 ))); rpid=""
  done
fi
for _ in $(seq "$runs"); do
  ip link add mcbfloor type bridge && ip link set mcbfloor up
  t0=$(date +%s%N); ip link del mcbfloor; t1=$(date +%s%N)
  bridge_del+=($(( (t1 - t0) / 1000000 )))
done

echo
echo "warm up -d / down, median of $runs runs (ms); hit = 2 services, hitinit = the same with init: true, many = 20 busybox services"
printf '%-24s %10s %10s\n' "tool:stack" "up -d" "down"
for r in "${results[@]}"; do
  # shellcheck disable=SC2086
  printf '%-24s %10s %10s\n' $r
done
echo "minicompose supervisor RSS (2 services): ${rss:-?} kB"
if [ ${#redis_stop[@]} -gt 0 ]; then
  echo "floor of a 2-service down, any tool: redis SIGTERM -> exit $(printf '%s\n' "${redis_stop[@]}" | median) ms, bridge deletion $(printf '%s\n' "${bridge_del[@]}" | median) ms (medians)"
else
  echo "floor: bridge deletion $(printf '%s\n' "${bridge_del[@]}" | median) ms (median; redis-server not installed)"
fi
