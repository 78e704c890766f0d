#!/usr/bin/env bash
# Cold pull + unpack of the python stand-in (library/python:3.6-alpine) from the
# loopback test registry, RUNS times each (default 5), side by side:
#   minicompose image pull      (empty --root every run)
#   docker pull                 (dockerd from Debian's docker.io, own data root; rmi between runs)
#   podman pull                 (Debian's podman, own root; rmi between runs)
#   floor: curl | gzip -dc | tar -x of the same layer blobs, all layers at once
# Prints the medians and the ratios. Needs root. Installs docker.io and podman
# with apt-get if missing (this script only). Uses $MC_TEST_REGISTRY if set,
# else starts the test registries and stops them at the end.
#
#   scripts/bench-pull.sh            RUNS=3 scripts/bench-pull.sh
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
RUNS=${RUNS:-5}
REPO=library/python
TAG=3.6-alpine

[ "$(id -u)" = 0 ] || { echo "bench-pull: run as root" >&2; exit 1; }

work=$(mktemp -d /tmp/mc-bench.XXXXXX)
started_registry=0
dockerd_pid=""

cleanup() {
  if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  # Unmount anything the engines left mounted under our work dir (deepest first).
  if [ -d "$work" ]; then
    awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf "$work"
  fi
  if [ "$started_registry" = 1 ]; then "$here/scripts/test-registry.sh" stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

if [ -z "${MC_TEST_REGISTRY:-}" ]; then
  eval "$("$here/scripts/test-registry.sh" start)"
  started_registry=1
fi
REG=$MC_TEST_REGISTRY

bin=${MINICOMPOSE_BIN:-$here/target/release/minicompose}
if [ ! -x "$bin" ]; then
  echo "== cargo build --release" >&2
  cargo build --release -q -p minicompose
  bin=$here/target/release/minicompose
fi

ms() { date +%s%N; }
tools=()
# time_one NAME: prepare (untimed: delete the last run's data, then sync so the
# filesystem is in the same state for every tool), then one timed pull.
time_one() {
  local name=$1 s e
  [ -e "$work/$name.failed" ] && return 0
  "${name}_prep" >/dev/null 2>&1 || true
  sync
  s=$(ms)
  if ! "${name}_pull" >"$work/$name.log" 2>&1; then
    echo "  $name failed: $(tail -n 3 "$work/$name.log" | tr '\n' ' ')"
    touch "$work/$name.failed"
    return 0
  fi
  e=$(ms)
  echo $(((e - s) / 1000000)) >>"$work/$name.times"
}

echo "bench-pull: cold pull of $REPO:$TAG from $REG, $RUNS runs each ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"

# --- minicompose
mc_prep() { rm -rf "$work/mc"; }
mc_pull() { "$bin" --root "$work/mc" --registry-mirror "http://$REG" image pull -q "python:$TAG"; }
minicompose_prep() { mc_prep; }
minicompose_pull() { mc_pull; }
tools+=(minicompose)

# --- floor: the layer blobs through curl | gzip -dc | tar -x, in parallel
index=$(curl -sf -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json' \
  "http://$REG/v2/$REPO/manifests/$TAG")
manifest_digest=$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print([d["digest"] for d in m["manifests"] if d["platform"]["architecture"]=="amd64"][0])' "$index")
layers=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REG/v2/$REPO/manifests/$manifest_digest" |
  python3 -c 'import json,sys; print(" ".join(l["digest"] for l in json.load(sys.stdin)["layers"]))')
floor_prep() { rm -rf "$work/floor"; mkdir -p "$work/floor"; }
floor_pull() {
  local l pids=() rc=0
  for l in $layers; do
    mkdir -p "$work/floor/${l#sha256:}"
    (curl -sf "http://$REG/v2/$REPO/blobs/$l" | gzip -dc | tar -x -C "$work/floor/${l#sha256:}") &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}
tools+=(floor)

install_pkg() { # COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "  (apt-get install $2)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >"$work/apt-$2.log" 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >"$work/apt-$2.log" 2>&1; }
}

# --- docker
if install_pkg dockerd docker.io; then
  docker_cli=/usr/bin/docker
  [ -x "$docker_cli" ] || docker_cli=$(command -v docker)
  sock="$work/docker.sock"
  dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" --pidfile "$work/docker.pid" \
    -H "unix://$sock" --insecure-registry "$REG" --iptables=false --ip-masq=false --bridge=none \
    >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  up=0
  for _ in $(seq 1 150); do
    if "$docker_cli" -H "unix://$sock" version >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.2
  done
  if [ "$up" = 1 ]; then
    docker_prep() { "$docker_cli" -H "unix://$sock" rmi -f "$REG/$REPO:$TAG" >/dev/null 2>&1 || true; }
    docker_pull() { "$docker_cli" -H "unix://$sock" pull -q "$REG/$REPO:$TAG"; }
    tools+=(docker)
  else
    echo "  docker: dockerd cannot run here: $(grep -i -m2 'level=fatal\|level=error\|failed' "$work/dockerd.log" | tr '\n' ' ')"
  fi
else
  echo "  docker: docker.io could not be installed (see apt-get output)"
fi

# --- podman (runtime runc and no default ulimits: this host cannot raise them)
if install_pkg podman podman; then
  cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = []
[engine]
runtime = "runc"
EOF
  cat >"$work/registries.conf" <<EOF
[[registry]]
location = "$REG"
insecure = true
EOF
  podman_cmd() {
    CONTAINERS_CONF="$work/containers.conf" CONTAINERS_REGISTRIES_CONF="$work/registries.conf" \
      podman --root "$work/podman" --runroot "$work/podman-run" --storage-driver overlay "$@"
  }
  podman_prep() { podman_cmd rmi -a -f >/dev/null 2>&1 || true; }
  podman_pull() { podman_cmd pull -q --tls-verify=false "$REG/$REPO:$TAG"; }
  tools+=(podman)
else
  echo "  podman: could not be installed (see apt-get output)"
fi

# --- the runs, round-robin so background load hits every tool alike
for i in $(seq 1 "$RUNS"); do
  for t in "${tools[@]}"; do time_one "$t"; done
done
for t in "${tools[@]}"; do
  [ -s "$work/$t.times" ] && echo "  $t: $(tr '\n' ' ' <"$work/$t.times")ms"
done

# --- report
python3 - "$work" <<'EOF'
import os, statistics, sys
work = sys.argv[1]
med = {}
for name in ["minicompose", "floor", "docker", "podman"]:
    p = os.path.join(work, name + ".times")
    if os.path.exists(p):
        t = [int(x) for x in open(p).read().split()]
        if t:
            med[name] = statistics.median(t)
print()
print(f"{'tool':<12} {'median ms':>10} {'vs floor':>9} {'vs docker':>10}")
for name in ["minicompose", "docker", "podman", "floor"]:
    if name not in med:
        print(f"{name:<12} {'n/a':>10}")
        continue
    m = med[name]
    vf = f"{m / med['floor']:.2f}x" if "floor" in med else "-"
    vd = f"{m / med['docker']:.2f}x" if "docker" in med else "-"
    print(f"{name:<12} {m:>10.0f} {vf:>9} {vd:>10}")
if "minicompose" in med:
    m = med["minicompose"]
    if "docker" in med:
        print(f"target minicompose <= docker/3: {'met' if m <= med['docker'] / 3 else 'NOT met'}")
    if "floor" in med:
        print(f"target minicompose <= 1.5 x floor: {'met' if m <= 1.5 * med['floor'] else 'NOT met'}")
EOF
