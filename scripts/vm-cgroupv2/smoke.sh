#!/usr/bin/env bash
# Smoke test of the pure-cgroup-v2 VM: proves the guest is a pure v2 host on
# which a container runtime can do its job. Run on the host as root:
#   scripts/vm-cgroupv2/smoke.sh
# It boots the VM with this folder and a scratch folder shared, runs itself
# inside (the part below "guest"), and checks what the guest wrote back.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ ! -e /mc-vm/cmd.sh ]; then
	# --- host
	scratch=$(mktemp -d /tmp/mc-vm-smoke.XXXXXX)
	trap 'rm -rf "$scratch"' EXIT
	rc=0
	"$here/run.sh" --share "$here" --share "$scratch" --env "MC_SMOKE_OUT=$scratch" \
		--timeout 300 -- sh "$here/smoke.sh" || rc=$?
	[ "$rc" = 0 ] || { echo "smoke: FAILED in the VM (exit $rc)" >&2; exit 1; }
	grep -qx 'written from the guest' "$scratch/from-guest" ||
		{ echo "smoke: FAILED: the guest's file did not reach the host through 9p" >&2; exit 1; }
	echo "ok - 9p share is writable from the guest and visible on the host"
	# Exit codes come back unchanged.
	rc=0
	"$here/run.sh" --timeout 120 -- sh -c 'exit 7' || rc=$?
	[ "$rc" = 7 ] || { echo "smoke: FAILED: exit code 7 came back as $rc" >&2; exit 1; }
	echo "ok - the command's exit code comes back"
	echo "smoke: all checks passed"
	exit 0
fi

# --- guest (busybox sh is enough, but bash-isms are avoided: this is sh)
# No pipefail here: `… | grep -q` would fail whenever grep exits first.
set +e +o pipefail
fails=0
check() { # description, command…
	d=$1
	shift
	if out=$("$@" 2>&1); then
		echo "ok - $d"
	else
		echo "not ok - $d"
		printf '%s\n' "$out" | sed 's/^/    /'
		fails=$((fails + 1))
	fi
}

pure_v2() {
	# exactly one cgroup mount, of type cgroup2, and no v1 hierarchy anywhere
	[ "$(awk '$3 ~ /^cgroup/ {print $3 " " $2}' /proc/mounts)" = "cgroup2 /sys/fs/cgroup" ] || return 1
	[ "$(stat -f -c %t /sys/fs/cgroup)" = 63677270 ] || return 1 # CGROUP2_SUPER_MAGIC
	[ "$(awk 'NR > 1 && $2 != 0' /proc/cgroups | wc -l)" = 0 ] || return 1
	# and no v1 hierarchy can be made (cgroup_no_v1=all)
	mkdir -p /tmp/mc-smoke-v1
	if mount -t cgroup -o memory mc-smoke-v1 /tmp/mc-smoke-v1 2>/dev/null; then
		umount /tmp/mc-smoke-v1
		return 1
	fi
	rmdir /tmp/mc-smoke-v1
	echo "controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
}
check "only cgroup2 is mounted, at /sys/fs/cgroup" pure_v2

all_controllers() {
	for c in cpu cpuset io memory pids; do
		grep -qw "$c" /sys/fs/cgroup/cgroup.controllers || return 1
		grep -qw "$c" /sys/fs/cgroup/cgroup.subtree_control || return 1
	done
}
check "cpu cpuset io memory pids available and enabled below the root" all_controllers
check "we run in a non-root cgroup, like a login session" grep -qx '0::/test.scope' /proc/self/cgroup

cg=/sys/fs/cgroup/mc-smoke
child_cgroup() {
	mkdir "$cg" && echo 33554432 >"$cg/memory.max" && echo 8 >"$cg/pids.max" &&
		[ "$(cat "$cg/memory.max")" = 33554432 ] && [ "$(cat "$cg/pids.max")" = 8 ] || return 1
	sh -c "echo \$\$ >$cg/cgroup.procs && exec sleep 30" &
	pid=$!
	i=0 # the machine may be slow (emulated, and the host busy)
	until grep -qx "$pid" "$cg/cgroup.procs"; do
		i=$((i + 1))
		[ $i -lt 100 ] || return 1
		sleep 0.1
	done
	grep -qx '0::/mc-smoke' "/proc/$pid/cgroup" || return 1
	kill "$pid"
	wait "$pid" 2>/dev/null
	return 0
}
check "child cgroup with memory.max and pids.max holds a process" child_cgroup

pids_limit() {
	# 8 pids at most: the 9th fork in the cgroup must fail
	sh -c "echo \$\$ >$cg/cgroup.procs; i=0; while [ \$i -lt 12 ]; do sleep 5 & i=\$((i+1)); done; wait" 2>/dev/null
	[ "$(awk '/^max / {print $2}' "$cg/pids.events")" -gt 0 ]
}
check "pids.max is enforced" pids_limit
echo 1 >"$cg/cgroup.kill"

memory_limit() {
	# writing 64 MiB to tmpfs from a cgroup limited to 32 MiB (no swap) fails
	if sh -c "echo \$\$ >$cg/cgroup.procs; exec dd if=/dev/zero of=/dev/shm/mc-smoke bs=1M count=64" 2>/dev/null; then
		rm -f /dev/shm/mc-smoke
		return 1
	fi
	rm -f /dev/shm/mc-smoke
	[ "$(awk '/^max / {print $2}' "$cg/memory.events")" -gt 0 ]
}
check "memory.max is enforced" memory_limit
sleep 0.3
rmdir "$cg" 2>/dev/null || true

namespaces() {
	# every namespace, cgroup included; inside: pid 1, cgroup root, own hostname
	/usr/bin/unshare --mount --uts --ipc --net --pid --cgroup --user --map-root-user --fork --mount-proc \
		sh -c 'hostname mc-inner && [ "$(hostname)" = mc-inner ] && [ $$ = 1 ] &&
			grep -qx "0::/" /proc/self/cgroup && [ "$(ip -o link | wc -l)" = 1 ]'
}
check "unshare of all namespaces (mount uts ipc net pid cgroup user)" namespaces

overlay_on_tmpfs() {
	t=/tmp/mc-smoke-ovl
	mkdir -p $t/lower $t/upper $t/work $t/merged && echo lower >$t/lower/f &&
		mount -t overlay overlay -o lowerdir=$t/lower,upperdir=$t/upper,workdir=$t/work $t/merged || return 1
	ok=1
	[ "$(cat $t/merged/f)" = lower ] && echo upper >$t/merged/f && [ "$(cat $t/upper/f)" = upper ] &&
		[ "$(cat $t/lower/f)" = lower ] && ok=0
	umount $t/merged
	rm -rf $t
	return $ok
}
check "overlay mount on tmpfs" overlay_on_tmpfs

pivot_root_works() {
	# what every runtime does: new mount ns, tmpfs root, pivot_root into it
	/usr/bin/unshare --mount --propagation private sh -c '
		mkdir -p /tmp/mc-smoke-root && mount -t tmpfs t /tmp/mc-smoke-root &&
		mkdir /tmp/mc-smoke-root/old && cp /bin/busybox /tmp/mc-smoke-root/ &&
		cd /tmp/mc-smoke-root && pivot_root . old && /busybox test -x /busybox'
	rc=$?
	rmdir /tmp/mc-smoke-root 2>/dev/null
	return $rc
}
check "pivot_root out of a tmpfs in a new mount namespace" pivot_root_works
check "mounts are shared (rshared /)" sh -c "awk '\$5 == \"/\" {print}' /proc/self/mountinfo | grep -q shared:"

network() {
	ip link add mcsmoke0 type veth peer name mcsmoke1 && ip link add mcsmokebr type bridge &&
		ip link set mcsmoke0 master mcsmokebr && ip link set mcsmokebr up && ip link set mcsmoke0 up || return 1
	ip link del mcsmoke0
	ip link del mcsmokebr
}
check "veth and bridge" network
nftables() {
	nft add table inet mcsmoke &&
		nft add chain inet mcsmoke post '{ type nat hook postrouting priority 100; }' &&
		nft add rule inet mcsmoke post ip saddr 10.88.0.0/16 ct state new masquerade || return 1
	rules=$(nft list table inet mcsmoke)
	case "$rules" in *masquerade*) rc=0 ;; *) echo "$rules"; rc=1 ;; esac
	nft delete table inet mcsmoke
	return $rc
}
check "nftables with NAT and conntrack (modules load on demand)" nftables
check "loopback is up" sh -c 'ip -o link show lo | grep -q "UP"'
check "/dev/pts, /dev/shm and /tmp are mounted" sh -c \
	'grep -q " /dev/pts devpts " /proc/mounts && grep -q " /dev/shm tmpfs " /proc/mounts && grep -q " /tmp tmpfs " /proc/mounts'

echo 'written from the guest' >"$MC_SMOKE_OUT/from-guest"
[ "$fails" = 0 ] || { echo "$fails check(s) failed"; exit 1; }
