#!/usr/bin/env bash
# Container start latency: `minicompose container run --rm busybox true`,
# side by side in one run with raw `runc run` of the same rootfs and with
# `docker run --rm busybox true` where they can be installed (apt-get).
#
#   sudo scripts/bench-run.sh            # N=50 runs each
#   N=200 sudo scripts/bench-run.sh
#   MC_BENCH_DOCKER=0 / MC_BENCH_RUNC=0  # skip a contender
#   MC_BENCH_INSTALL=0                   # never apt-get install
#
# Prints median / p90 / mean in ms and the ratios, then one `--explain` run
# to show where the time goes. Uses the local test registry (started here
# unless MC_TEST_REGISTRY is set). Cleans up everything it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

N=${N:-50}
WARMUP=${WARMUP:-5}
[ "$(id -u)" = 0 ] || { echo "bench-run: needs root (containers)" >&2; exit 1; }

bin=${MINICOMPOSE_BIN:-}
if [ -z "$bin" ]; then
	cargo build --release -p minicompose --quiet
	bin=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/minicompose
fi

work=$(mktemp -d /tmp/mc-bench.XXXXXX)
registry_started=""
dockerd_pid=""
cleanup() {
	set +e
	"$bin" --root "$work/root" container ls -aq --no-trunc 2>/dev/null | while read -r id; do
		"$bin" --root "$work/root" container rm -f "$id" >/dev/null 2>&1
	done
	[ -n "${docker_image:-}" ] && docker rmi -f "$docker_image" >/dev/null 2>&1
	if [ -n "$dockerd_pid" ]; then
		kill "$dockerd_pid" 2>/dev/null
		wait "$dockerd_pid" 2>/dev/null
	fi
	[ -n "$registry_started" ] && "$repo/scripts/test-registry.sh" stop >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${MC_TEST_REGISTRY:-}" ]; then
	eval "$("$repo/scripts/test-registry.sh" start)"
	registry_started=1
fi
mc() { "$bin" --root "$work/root" --registry-mirror "http://$MC_TEST_REGISTRY" "$@"; }
mc image pull -q busybox >/dev/null

install_pkg() {
	[ "${MC_BENCH_INSTALL:-1}" = 1 ] || return 1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

# Contenders are measured round-robin (one run of each per round), so the
# load of a shared machine hits them alike.
names=()
declare -A cmds
add() { names+=("$1"); cmds[$1]=$2; }

# time_all: WARMUP rounds, then N timed rounds; durations (ms) in $work/t-NAME.
time_all() {
	local i name t0 t1
	for ((i = 0; i < WARMUP; i++)); do
		for name in "${names[@]}"; do eval "${cmds[$name]}" >/dev/null 2>&1; done
	done
	for name in "${names[@]}"; do : >"$work/t-$name"; done
	for ((i = 0; i < N; i++)); do
		for name in "${names[@]}"; do
			t0=$EPOCHREALTIME
			eval "${cmds[$name]}" >/dev/null 2>&1 || { echo "bench-run: $name failed" >&2; return 1; }
			t1=$EPOCHREALTIME
			echo "$t0 $t1" | awk '{ printf "%.3f\n", ($2 - $1) * 1000 }' >>"$work/t-$name"
		done
	done
}

# stats NAME → "median p90 mean"
stats() {
	sort -n "$work/t-$1" | awk '{ a[NR] = $1; s += $1 } END {
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		p = a[int(NR * 0.9 + 0.5)]
		printf "%.1f %.1f %.1f\n", m, p, s / NR }'
}

echo "== minicompose container run --rm busybox true"
add minicompose "mc container run --rm busybox true"

# The same rootfs for runc: the image's (single) layer directory.
if [ "${MC_BENCH_RUNC:-1}" = 1 ]; then
	command -v runc >/dev/null || install_pkg runc || true
	if command -v runc >/dev/null; then
		lower=$(mc container run -d --name mc-bench-probe busybox sleep 30 >/dev/null &&
			mc container inspect mc-bench-probe | jq -r '.[0].GraphDriver.Data.LowerDir')
		mc container rm -f mc-bench-probe >/dev/null
		case "$lower" in *:*) echo "bench-run: busybox has several layers; runc gets the top one only" >&2 ;; esac
		bundle=$work/bundle
		mkdir -p "$bundle"
		cp -a "${lower%%:*}" "$bundle/rootfs"
		(cd "$bundle" && runc spec)
		jq '.process.args = ["true"] | .process.terminal = false' "$bundle/config.json" >"$bundle/c.json"
		mv "$bundle/c.json" "$bundle/config.json"
		n=0
		runc_once() {
			n=$((n + 1))
			runc --root "$work/runc-state" run --bundle "$bundle" "mc-bench-runc-$$-$n"
		}
		echo "== runc run (same rootfs, $(runc --version | head -1))"
		add runc runc_once
	else
		echo "== runc: not available (apt-get install runc failed)"
	fi
fi

if [ "${MC_BENCH_DOCKER:-1}" = 1 ]; then
	command -v dockerd >/dev/null || install_pkg docker.io || true
	if command -v dockerd >/dev/null && command -v docker >/dev/null; then
		if ! docker info >/dev/null 2>&1; then
			# Our own daemon, invisible to the rest of the host: no docker0
			# bridge, no iptables rules (containers run with --network none).
			dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" -p "$work/dockerd.pid" \
				-H "unix://$work/docker.sock" --bridge=none --iptables=false --ip6tables=false \
				--ip-forward=false --ip-masq=false >"$work/dockerd.log" 2>&1 &
			dockerd_pid=$!
			export DOCKER_HOST="unix://$work/docker.sock"
			for _ in $(seq 1 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
		fi
		if docker info >/dev/null 2>&1 &&
			skopeo copy --quiet --src-tls-verify=false --dest-daemon-host "${DOCKER_HOST:-unix:///var/run/docker.sock}" \
				"docker://$MC_TEST_REGISTRY/library/busybox:latest" \
				docker-daemon:mc-bench-busybox:latest >"$work/skopeo.log" 2>&1; then
			echo "== docker run --rm --network none (docker $(docker version --format '{{.Server.Version}}' 2>/dev/null))"
			docker_image=mc-bench-busybox:latest
			add docker "docker run --rm --network none $docker_image true"
		else
			echo "== docker: daemon or image load failed here; skipped"
			tail -3 "$work/dockerd.log" "$work/skopeo.log" 2>/dev/null | sed 's/^/   /'
		fi
	else
		echo "== docker: not available (apt-get install docker.io failed)"
	fi
fi

echo "== $N rounds (+$WARMUP warm-up), round-robin"
time_all
results=()
for name in "${names[@]}"; do results+=("$name $(stats "$name")"); done

echo
printf "%-12s %10s %10s %10s %12s\n" contender "median ms" "p90 ms" "mean ms" "vs minicompose"
base=$(echo "${results[0]}" | awk '{ print $2 }')
for r in "${results[@]}"; do
	set -- $r
	printf "%-12s %10s %10s %10s %11.2fx\n" "$1" "$2" "$3" "$4" "$(echo "$2 $base" | awk '{ print $1 / $2 }')"
done

echo
echo "== where the time goes: one run with --explain"
mc --explain container run --rm busybox true 2>&1 | sed 's/^/   /'
