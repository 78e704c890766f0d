"""Root filesystems made from Debian packages (no maintainer scripts run).

The package closure is resolved by apt itself against a fake dpkg status that
claims a few packages (dpkg, debconf, perl, adduser, ...) are installed, so
they and their own dependencies stay out of the image. The .deb files are
downloaded once into the cache (apt-get download) and unpacked with dpkg -x.
"""

import os
import re
import subprocess
import sys

# Packages a container never needs (packaging tools, init helpers, docs
# helpers); claiming them installed keeps their dependency trees out.
NOT_NEEDED = [
    "tar", "dpkg", "debconf", "perl-base", "perl", "usrmerge", "init-system-helpers",
    "sysvinit-utils", "adduser", "passwd", "lsb-base", "libjs-jquery", "ca-certificates",
    "openssl", "debianutils", "base-files", "base-passwd", "bash", "coreutils", "dash",
    "diffutils", "findutils", "grep", "gzip", "hostname", "login", "mount", "sed",
    "util-linux", "ncurses-base", "ncurses-bin",
]

# Paths dropped from every rootfs: documentation, manuals, translations.
DROP_PREFIXES = (
    "usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/",
    "usr/share/lintian/", "usr/share/bug/", "usr/share/doc-base/", "usr/share/bash-completion/",
    "usr/share/initramfs-tools/",
)


def log(msg):
    print("testimages: " + msg, file=sys.stderr, flush=True)


def _fake_status(path):
    with open(path, "w") as f:
        for name in NOT_NEEDED:
            f.write(
                f"Package: {name}\nStatus: install ok installed\nVersion: 9999:0\n"
                f"Architecture: all\nMaintainer: none\nDescription: not needed\n\n"
            )


def resolve(packages, workdir):
    """Returns [(name, version)] apt would install on an empty system."""
    status = os.path.join(workdir, "fake-status")
    _fake_status(status)
    cmd = [
        "apt-get", "-s", "-q", "-o", "Dir::State::status=" + status, "-o", "Debug::NoLocking=1",
        "install", "--no-install-recommends", *packages,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        # A fresh machine may have no package lists yet.
        log("apt-get could not resolve " + " ".join(packages) + "; running apt-get update and retrying")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("apt-get cannot resolve " + " ".join(packages) + ": " + r.stderr.strip()[-300:])
    out = r.stdout
    result = []
    for line in out.splitlines():
        m = re.match(r"^Inst (\S+) \((\S+) ", line)
        if m:
            result.append((m.group(1), m.group(2)))
    if not result:
        raise RuntimeError("apt-get resolved nothing for " + " ".join(packages))
    return result


def _deb_name(name, version):
    # apt-get download names files name_version_arch.deb with ':' escaped as %3a.
    return f"{name}_{version.replace(':', '%3a')}_"


def download(pkgs, deb_dir):
    """Downloads the given (name, version) packages into deb_dir; returns the paths."""
    os.makedirs(deb_dir, exist_ok=True)
    have = os.listdir(deb_dir)

    def find(name, version):
        prefix = _deb_name(name, version)
        for f in have:
            if f.startswith(prefix) and f.endswith(".deb"):
                return os.path.join(deb_dir, f)
        return None

    missing = [f"{n}={v}" for n, v in pkgs if find(n, v) is None]
    if missing:
        log(f"apt-get download {len(missing)} packages")
        cmd = ["apt-get", "download", "-q", *missing]
        r = subprocess.run(cmd, cwd=deb_dir, capture_output=True, text=True)
        if r.returncode != 0:
            # A fresh machine may have stale or no package lists.
            log("apt-get download failed; running apt-get update and retrying")
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(cmd, cwd=deb_dir, check=True, stdout=subprocess.DEVNULL)
        have = os.listdir(deb_dir)
    paths = []
    for n, v in pkgs:
        p = find(n, v)
        if p is None:
            raise RuntimeError(f"package {n}={v} was not downloaded into {deb_dir}")
        paths.append(p)
    return paths


def extract(debs, rootfs):
    """Unpacks the packages into rootfs and drops documentation."""
    os.makedirs(rootfs, exist_ok=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", deb, rootfs], check=True)
    for prefix in DROP_PREFIXES:
        path = os.path.join(rootfs, prefix)
        if os.path.isdir(path):
            subprocess.run(["rm", "-rf", path], check=True)


def versions_key(packages, workdir):
    """The resolved closure as text: part of the cache key of an image."""
    return "\n".join(f"{n}={v}" for n, v in resolve(packages, workdir))


def build_rootfs(packages, rootfs, deb_dir, workdir):
    pkgs = resolve(packages, workdir)
    extract(download(pkgs, deb_dir), rootfs)
    return pkgs


def install_busybox_links(rootfs, hardlinks=True):
    """Links every busybox applet as /bin/<applet> unless a program of that name exists.

    hardlinks=True makes them hardlinks of /bin/busybox, like the real busybox
    image; otherwise symlinks (for images that carry their own programs).
    """
    bb = os.path.join(rootfs, "bin", "busybox")
    applets = subprocess.run([bb, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for name in sorted(set(applets)):
        if "/" in name or name in ("busybox", "linuxrc"):
            continue
        if any(os.path.lexists(os.path.join(rootfs, d, name)) for d in ("bin", "sbin", "usr/bin", "usr/sbin")):
            continue
        dest = os.path.join(rootfs, "bin", name)
        if hardlinks:
            os.link(bb, dest)
        else:
            os.symlink("busybox", dest)
