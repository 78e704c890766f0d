#!/usr/bin/env bash
# Builds the pure-cgroup-v2 test VM: an uncompressed Debian kernel and a
# base initramfs (busybox, kernel modules, nft, ip, util-linux unshare/nsenter
# and their libraries, our /init). Usage: build.sh DEST_DIR
# Writes DEST_DIR/{vmlinux,initramfs.cpio,recipe} atomically (temp + rename).
# Nothing is installed on the host: the kernel package is only unpacked.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:?usage: build.sh DEST_DIR}

# Modules loaded at boot; everything in $ondemand is present and loaded by
# the kernel through /sbin/modprobe when first used.
boot_modules=(crc32c_generic virtio_pci virtio_console 9pnet_virtio 9p
	overlay veth bridge br_netfilter nf_tables)
ondemand_dirs=(net/netfilter net/ipv4/netfilter net/ipv6/netfilter net/bridge/netfilter)
ondemand_extra=(dummy tun macvlan ipvlan)
# Host binaries copied in with the libraries ldd lists (GNU tar and cp keep
# xattrs, which overlay layers use for opaque directories).
binaries=(/usr/sbin/nft /usr/bin/ip /usr/bin/unshare /usr/bin/nsenter /usr/bin/tar /usr/bin/cp)

mkdir -p "$(dirname "$dest")"
work=$(mktemp -d "$(dirname "$dest")/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "mc-vm: downloading the kernel package" >&2
# apt's download sandbox user cannot write here; we are root and only unpack.
apt_get() { apt-get -qq -o APT::Sandbox::User=root "$@"; }
if ! apt_get download linux-image-amd64 >/dev/null 2>&1; then
	# fresh machine without package lists
	apt-get update -qq
	apt_get download linux-image-amd64 >/dev/null
fi
kpkg=$(dpkg-deb -f linux-image-amd64_*.deb Depends | sed -E 's/[ (,|].*//')
case "$kpkg" in linux-image-[0-9]*) ;; *)
	echo "mc-vm: unexpected kernel dependency '$kpkg' of linux-image-amd64" >&2
	exit 1
	;;
esac
apt_get download "$kpkg" >/dev/null
dpkg -x "$kpkg"_*.deb k
kver=${kpkg#linux-image-}
[ -d "k/lib/modules/$kver" ] || { echo "mc-vm: no modules for $kver in $kpkg" >&2; exit 1; }

echo "mc-vm: extracting the uncompressed kernel ($kver)" >&2
# Like the kernel's scripts/extract-vmlinux: find the compressed payload in
# the bzImage and unpack it. Booting the ELF directly (PVH entry) saves the
# in-guest decompression, ~2 s under TCG.
vmlinuz=k/boot/vmlinuz-$kver
try_payload() { # magic (grep -P), decompressor…
	local magic=$1 off
	shift
	for off in $(LC_ALL=C grep -obUaP "$magic" "$vmlinuz" | cut -d: -f1); do
		tail -c "+$((off + 1))" "$vmlinuz" | "$@" >vmlinux 2>/dev/null || true
		if [ "$(head -c 4 vmlinux | od -An -c | tr -d ' ')" = '177ELF' ]; then
			return 0
		fi
	done
	return 1
}
try_payload '\xfd7zXZ\x00' xz -dcq || try_payload '\x28\xb5\x2f\xfd' zstd -dcq ||
	try_payload '\x1f\x8b\x08' gzip -dcq || {
	echo "mc-vm: could not extract vmlinux from $vmlinuz" >&2
	exit 1
}

echo "mc-vm: assembling the initramfs" >&2
root=$work/root
mkdir -p "$root"/{bin,usr/bin,usr/sbin,lib/x86_64-linux-gnu,lib64,etc/mc-vm,proc,sys,dev,mnt,tmp,run,root,mc-vm}
ln -s bin "$root/sbin"

# busybox-static and its applets
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
done

# Kernel modules: the closure (by modules.dep) of what we ask for.
moddir=k/lib/modules/$kver
busybox depmod -b k "$kver"
wanted=$(
	for m in "${boot_modules[@]}" "${ondemand_extra[@]}"; do
		grep -E "(^|/)${m}\.ko:" "$moddir/modules.dep" | cut -d: -f1 ||
			{ echo "mc-vm: module $m not found" >&2; exit 1; }
	done
	for d in "${ondemand_dirs[@]}"; do
		(cd "$moddir" && find "kernel/$d" -name '*.ko')
	done
)
closure=$(for m in $wanted; do
	echo "$m"
	grep -E "^${m}:" "$moddir/modules.dep" | cut -d: -f2 | tr ' ' '\n'
done | sed '/^$/d' | sort -u)
for m in $closure; do
	install -D -m 0644 "$moddir/$m" "$root/lib/modules/$kver/$m"
done
cp "$moddir"/modules.{builtin,builtin.modinfo,order} "$root/lib/modules/$kver/"
busybox depmod -b "$root" "$kver"
printf '%s\n' "${boot_modules[@]}" >"$root/etc/mc-vm/modules-boot"

# Host binaries with their shared libraries (at the paths ldd resolves).
copy_libs() { # ELF file: copy what it links against into $root
	ldd "$1" | sed -nE 's#.*=> (/[^ ]+) .*#\1#p; s#^\s*(/[^ ]+) \(.*#\1#p' | while read -r lib; do
		[ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
	done
}
for b in "${binaries[@]}"; do
	install -D -m 0755 "$b" "$root$b"
	copy_libs "$b"
done
# Shared data nft and ip read.
for f in /etc/protocols /etc/services /etc/ethertypes; do
	[ -e "$f" ] && cp "$f" "$root$f"
done
[ -d /usr/share/iproute2 ] && mkdir -p "$root/usr/share" && cp -a /usr/share/iproute2 "$root/usr/share/"

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF
printf '127.0.0.1\tlocalhost mc-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
ln -s /proc/self/mounts "$root/etc/mtab"
: >"$root/etc/resolv.conf"

install -m 0755 "$here/init" "$root/init"

(cd "$root" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) >initramfs.cpio

mkdir -p out
mv vmlinux initramfs.cpio out/
{
	echo "kernel $kpkg $(dpkg-deb -f "$kpkg"_*.deb Version)"
	echo "modules $(echo "$closure" | wc -l)"
	echo "built $(date -u +%FT%TZ)"
} >out/recipe
rm -rf "$dest"
mv out "$dest"
echo "mc-vm: built $dest ($(du -sh "$dest" | cut -f1))" >&2
