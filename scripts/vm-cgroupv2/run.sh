#!/usr/bin/env bash
# Runs a command as root inside a throwaway pure-cgroup-v2 VM (QEMU, software
# emulation) and exits with its exit code. See docs/testing-cgroupv2.md.
#
#   scripts/vm-cgroupv2/run.sh [OPTIONS] -- CMD [ARG…]
#
#   --share DIR       mount host DIR at the same path inside (9p, read-write);
#                     repeatable. CMD runs in the current directory if it is
#                     inside a shared folder, else in /.
#   --bin FILE        make FILE's shared libraries available inside (CMD's own
#                     are added when CMD is a path to an ELF file); repeatable
#   --env NAME=VALUE  set in CMD's environment (which is otherwise clean); repeatable
#   --timeout SECS    power the VM off after SECS (default 1800; exit 124)
#   --mem MB          guest memory (default 2048)   --cpus N  (default: host's, max 4)
#   --logs DIR        keep console.log (kernel messages) and out.log there
#
# CMD's stdout and stderr are streamed back (merged) on stdout. The kernel and
# initramfs are built once and cached in $MC_VM_CACHE (default
# /var/cache/minicompose-test)/vm-<hash of the recipe>/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

die() {
	echo "vm-cgroupv2: $*" >&2
	exit 125
}

shares=() bins=() envs=()
timeout=1800 mem=2048 logs=""
cpus=$(nproc)
[ "$cpus" -le 4 ] || cpus=4
while [ $# -gt 0 ]; do
	case "$1" in
	--share) [ -d "${2:-}" ] || die "--share: '${2:-}' is not a directory"; shares+=("$(cd "$2" && pwd -P)"); shift 2 ;;
	--bin) [ -f "${2:-}" ] || die "--bin: '${2:-}' is not a file"; bins+=("$2"); shift 2 ;;
	--env) [[ "${2:-}" == [A-Za-z_]*=* ]] || die "--env: expected NAME=VALUE, got '${2:-}'"; envs+=("$2"); shift 2 ;;
	--timeout) [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--timeout: expected seconds"; timeout=$2; shift 2 ;;
	--mem) [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--mem: expected megabytes"; mem=$2; shift 2 ;;
	--cpus) [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--cpus: expected a count"; cpus=$2; shift 2 ;;
	--logs) logs=${2:?--logs needs a directory}; shift 2 ;;
	--) shift; break ;;
	*) die "unknown option '$1' (usage: run.sh [--share DIR] [--bin FILE] [--env N=V] [--timeout S] -- CMD…)" ;;
	esac
done
[ $# -gt 0 ] || die "no command given (usage: run.sh [OPTIONS] -- CMD…)"
[ "$(id -u)" = 0 ] || die "needs root (it reads the kernel package and shares folders as root)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found: run scripts/install-deps.sh"

# --- the cached kernel + base initramfs, keyed by everything that goes in
versions=$(dpkg-query -W -f='${Package}=${Version}\n' busybox-static nftables iproute2 util-linux libc6 2>/dev/null || true)
kernel_candidate=$(apt-cache policy linux-image-amd64 2>/dev/null | awk '/Candidate:/ {print $2}')
key=$( (cat "$here/build.sh" "$here/init"; echo "$versions"; echo "$kernel_candidate") | sha256sum | cut -c1-16)
cache_root=${MC_VM_CACHE:-/var/cache/minicompose-test}
image=$cache_root/vm-$key
mkdir -p "$cache_root"
(
	flock 9
	if [ ! -f "$image/recipe" ]; then
		bash "$here/build.sh" "$image"
		# Images of older recipes are dead weight (50 MB each).
		find "$cache_root" -maxdepth 1 -name 'vm-*' ! -name "vm-$key" ! -name "vm-$key.lock" \
			-mmin +60 -exec rm -rf {} +
	fi
) 9>"$cache_root/vm-$key.lock" || die "building the VM image failed"

# --- this run's additions: the command, shared folders, extra libraries
run=$(mktemp -d /tmp/mc-vm.XXXXXX)
qpid=""
cleanup() {
	# Only the qemu we started, by pid.
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
	if [ -n "$logs" ]; then
		mkdir -p "$logs" && cp "$run"/console.log "$run"/out.log "$logs"/ 2>/dev/null
	fi
	rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

extra=$run/extra
mkdir -p "$extra/mc-vm"
q() { # single-quote for sh
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}
{
	cwd=$(pwd -P)
	in_share=""
	for s in "${shares[@]}"; do
		case "$cwd/" in "$s"/*) in_share=1 ;; esac
	done
	if [ -n "$in_share" ]; then echo "cd $(q "$cwd")"; else echo "cd /"; fi
	for e in "${envs[@]}"; do echo "export ${e%%=*}=$(q "${e#*=}")"; done
	printf 'set --'
	for a in "$@"; do printf ' %s' "$(q "$a")"; done
	echo
	# busybox sh would run its own applet for a bare name (ip, unshare…)
	# even when a real binary comes first in PATH: resolve it ourselves.
	cat <<'EOF'
case "$1" in
*/*) ;;
*)
	IFS=:
	for d in $PATH; do
		if [ -f "$d/$1" ] && [ -x "$d/$1" ]; then
			p="$d/$1"
			shift
			set -- "$p" "$@"
			break
		fi
	done
	unset IFS p d
	;;
esac
exec "$@"
EOF
} >"$extra/mc-vm/cmd.sh"
printf '%s\n' "${shares[@]}" >"$extra/mc-vm/shares"

is_elf() { [ -f "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }
elfs=("${bins[@]}")
if [[ "$1" == */* ]] && is_elf "$1"; then elfs+=("$1"); fi
for b in "${elfs[@]}"; do
	ldd "$b" 2>/dev/null | sed -nE 's#.*=> (/[^ ]+) .*#\1#p; s#^\s*(/[^ ]+) \(.*#\1#p' | while read -r lib; do
		[ -e "$extra$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$extra$lib"
	done
done
# Linux unpacks concatenated cpio archives in order: base, then ours.
cp "$image/initramfs.cpio" "$run/initrd.cpio"
(cd "$extra" && find . -mindepth 1 | busybox cpio -o -H newc 2>/dev/null) >>"$run/initrd.cpio"

: >"$run/out.log"
: >"$run/rc"
virtfs=()
for i in "${!shares[@]}"; do
	virtfs+=(-virtfs "local,path=${shares[$i]},mount_tag=mcshare$i,security_model=passthrough,id=share$i")
done

# --- boot
start=$(date +%s.%N)
qemu-system-x86_64 \
	-nodefaults -no-user-config -nographic -no-reboot \
	-machine pc -accel tcg,thread=multi -cpu max -smp "$cpus" -m "$mem" \
	-kernel "$image/vmlinux" -initrd "$run/initrd.cpio" \
	-append "console=ttyS0 panic=-1 ${MC_VM_KARGS:-quiet loglevel=4} systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all" \
	-serial "file:$run/console.log" \
	-device virtio-serial-pci,id=vs \
	-chardev "file,id=out,path=$run/out.log" -device virtserialport,bus=vs.0,chardev=out,name=out \
	-chardev "file,id=rc,path=$run/rc" -device virtserialport,bus=vs.0,chardev=rc,name=rc \
	"${virtfs[@]}" \
	</dev/null >"$run/qemu.log" 2>&1 &
qpid=$!

# Stream the command's output while the VM runs; stop at the time limit.
tail -F -n +1 -s 0.2 --pid="$qpid" "$run/out.log" 2>/dev/null &
tailpid=$!
deadline=$(($(date +%s) + timeout))
timed_out=""
while kill -0 "$qpid" 2>/dev/null; do
	if [ "$(date +%s)" -ge "$deadline" ]; then
		timed_out=1
		kill "$qpid" 2>/dev/null
		break
	fi
	sleep 0.2
done
wait "$qpid" 2>/dev/null || true
qpid=""
wait "$tailpid" 2>/dev/null || true
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

logtail() { # last $1 lines of the kernel console, without SeaBIOS's escape codes
	tail -n "$1" "$run/console.log" 2>/dev/null | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' >&2
}
rc=$(tr -dc '0-9' <"$run/rc")
if [ -n "$timed_out" ]; then
	echo "vm-cgroupv2: timed out after ${timeout}s; kernel log tail:" >&2
	logtail 30
	exit 124
fi
if [ -z "$rc" ]; then
	echo "vm-cgroupv2: the VM stopped without reporting an exit code; qemu and kernel log tail:" >&2
	tail -n 20 "$run/qemu.log" >&2
	logtail 40
	exit 125
fi
[ -z "${MC_VM_VERBOSE:-}" ] || echo "vm-cgroupv2: exit $rc after ${elapsed}s (boot to poweroff)" >&2
exit "$rc"
