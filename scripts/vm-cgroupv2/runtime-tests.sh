#!/usr/bin/env bash
# The pure-cgroup-v2 lane: the runtime's root tests (tests/runtime.rs) run
# inside a throwaway QEMU VM whose kernel has no cgroup v1 at all.
#
#   scripts/vm-cgroupv2/runtime-tests.sh [TEST ARGS…]   (as root; args go to the test binary)
#
# 1. boots the VM once for the smoke test (is it really pure v2?);
# 2. builds the release `minicompose` and the `runtime` test binary of mc-e2e;
# 3. pulls busybox:latest from the local test registry into a store on the
#    host (the VM has no network), started here when MC_TEST_REGISTRY is unset;
# 4. runs the test binary in the VM with the repository shared at the same path
#    and the store unpacked onto the VM's tmpfs (overlay wants a local lower
#    filesystem; GNU tar keeps the layers' xattrs), as MC_TEST_PREPULLED_ROOT.
# Env: MC_VM_TEST (test target, default runtime), MC_VM_TIMEOUT (default 1800 s),
# MC_VM_CACHE (see run.sh); MC_TEST_* knobs are passed in (MC_TEST_CYCLES
# defaults to 25 here).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd -P)
cd "$repo"
test_name=${MC_VM_TEST:-runtime}
image=busybox:latest

die() {
	echo "vm-cgroupv2 lane: $*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || die "needs root"
t0=$SECONDS

smoke_log=$(mktemp /tmp/mc-vm-smoke-log.XXXXXX)
"$here/smoke.sh" >"$smoke_log" 2>&1 || { cat "$smoke_log" >&2; rm -f "$smoke_log"; die "the VM smoke test failed"; }
rm -f "$smoke_log"
echo "vm-cgroupv2 lane: VM smoke test passed ($((SECONDS - t0))s)"

t1=$SECONDS
cargo build --release -p minicompose --quiet
target=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
bin=$target/release/minicompose
artifacts=$(cargo test -p mc-e2e --release --no-run --quiet --message-format=json --test "$test_name") ||
	die "building the mc-e2e test '$test_name' failed (is there a [[test]] '$test_name' in tests/Cargo.toml?)"
testbin=$(jq -r --arg n "$test_name" \
	'select(.reason == "compiler-artifact" and .target.name == $n and .executable != null) | .executable' <<<"$artifacts" |
	tail -n 1)
[ -n "$testbin" ] && [ -x "$testbin" ] || die "cargo built no executable for the mc-e2e test '$test_name'"

echo "vm-cgroupv2 lane: binaries built ($((SECONDS - t1))s)"

stage=$(mktemp -d /tmp/mc-vm-lane.XXXXXX)
registry_started=""
cleanup() {
	rm -rf "$stage"
	if [ -n "$registry_started" ]; then "$repo/scripts/test-registry.sh" stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
if [ -z "${MC_TEST_REGISTRY:-}" ]; then
	eval "$("$repo/scripts/test-registry.sh" start)"
	registry_started=1
fi

# The store is pulled into a path of its own and packed; inside the VM it is
# unpacked at the same path (on tmpfs), so nothing depends on where it lives.
store=$(mktemp -d /tmp/mc-vm-store.XXXXXX)
trap 'cleanup; rm -rf "$store"' EXIT
"$bin" --root "$store" --registry-mirror "http://$MC_TEST_REGISTRY" image pull -q "$image" >"$stage/pull.log" 2>&1 ||
	{ cat "$stage/pull.log" >&2; die "pre-pulling $image into $store failed"; }
tar --xattrs --xattrs-include='*' -C / -cf "$stage/store.tar" "${store#/}"
t2=$SECONDS
echo "vm-cgroupv2 lane: $image pre-pulled ($(du -sh "$stage/store.tar" | cut -f1)); running $test_name tests in the VM"

shares=(--share "$repo" --share "$stage")
case "$target/" in "$repo"/*) ;; *) shares+=(--share "$target") ;; esac
# Inside: the registry address points at a closed port, so a test that would
# pull fails at once instead of hanging; pre-pulled images are found locally.
# Test knobs (MC_TEST_CYCLES…) go in too; the registry's and ours do not.
# Emulation makes a container start ~10x slower than on the host, where the
# full 200 run/rm cycles already run: 25 here still catch a leak per cycle.
export MC_TEST_CYCLES=${MC_TEST_CYCLES:-25}
knobs=()
while IFS='=' read -r name value; do
	case "$name" in MC_TEST_REGISTRY* | MC_TEST_STATE | MC_TEST_PREPULLED_ROOT | MC_TEST_IN_VM) continue ;; esac
	knobs+=(--env "$name=$value")
done < <(env | grep -E '^MC_TEST_[A-Z0-9_]+=' || true)
rc=0
"$here/run.sh" "${shares[@]}" "${knobs[@]}" --timeout "${MC_VM_TIMEOUT:-1800}" \
	--env MINICOMPOSE_BIN="$bin" \
	--env MC_TEST_PREPULLED_ROOT="$store" \
	--env MC_TEST_REGISTRY=127.0.0.1:9 \
	--env MC_TEST_IN_VM=1 \
	--env RUST_BACKTRACE=1 \
	--bin "$bin" --bin "$testbin" \
	-- sh -c '/usr/bin/tar --xattrs --xattrs-include="*" -C / -xpf "$0/store.tar" && exec "$@"' "$stage" \
	"$testbin" "$@" || rc=$?
echo "vm-cgroupv2 lane: $test_name tests in the VM exited $rc after $((SECONDS - t2))s (lane took $((SECONDS - t0))s)"
exit "$rc"
