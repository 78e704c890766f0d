"""The test images: one function per cached image set.

A recipe gets a Context (layout to write into, temp dir, its dependencies'
layouts) and tags what it builds. Its cache key covers its own source, the
builder modules and its dependencies' keys, so editing one recipe rebuilds
only that image set and what depends on it.
"""

import os
import shutil

import blobs
import debroot
import evil
from blobs import ImageBuilder, make_index, strip_platform

RECIPES = {}

PATH_DEFAULT = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def recipe(name, deps=(), packages=(), sources=()):
    """Registers a recipe; sources: extra modules (file names) its cache key covers."""

    def register(fn):
        RECIPES[name] = dict(name=name, fn=fn, deps=list(deps), packages=list(packages), sources=list(sources))
        return fn

    return register


class Context:
    def __init__(self, layout, workdir, deb_dir, dep_roots, packages):
        self.layout = layout
        self.workdir = workdir
        self.deb_dir = deb_dir
        self.dep_roots = dep_roots  # name -> layout root of a built dependency
        self.packages = packages

    def image(self, flavour="oci", arch="amd64", variant=None):
        return ImageBuilder(self.layout, self.workdir, flavour, arch, variant)

    def rootfs_dir(self, name):
        path = os.path.join(self.workdir, "rootfs-" + name)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.makedirs(path)
        return path

    def dep_manifest(self, dep, ref):
        """The single-platform manifest descriptor a dependency tagged REF (amd64 if an index)."""
        root = self.dep_roots[dep]
        layout = blobs.Layout(root)
        for d in _read_index(root):
            if d["annotations"].get(blobs.REF_ANNOTATION) != ref:
                continue
            if d["mediaType"] in (blobs.OCI_INDEX, blobs.DOCKER_LIST):
                for m in layout.read_json(d["digest"])["manifests"]:
                    if m.get("platform", {}).get("architecture") == "amd64":
                        return root, m
            return root, d
        raise KeyError(f"{dep} has no {ref}")


def _read_index(root):
    import json

    with open(os.path.join(root, "index.json")) as f:
        return json.load(f)["manifests"]


def write_base_files(rootfs, users=(), groups=()):
    """/etc/passwd, /etc/group and the usual empty directories."""
    etc = os.path.join(rootfs, "etc")
    os.makedirs(etc, exist_ok=True)
    passwd = [
        "root:x:0:0:root:/root:/bin/sh",
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false",
        *users,
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false",
    ]
    group = ["root:x:0:", "daemon:x:1:", *groups, "nogroup:x:65534:"]
    with open(os.path.join(etc, "passwd"), "w") as f:
        f.write("\n".join(passwd) + "\n")
    with open(os.path.join(etc, "group"), "w") as f:
        f.write("\n".join(group) + "\n")
    with open(os.path.join(etc, "nsswitch.conf"), "w") as f:
        f.write("passwd: files\ngroup: files\nhosts: files dns\n")
    for name in ("passwd", "group", "nsswitch.conf"):
        os.chmod(os.path.join(etc, name), 0o644)  # whatever the umask
    for d, mode in (("tmp", 0o1777), ("var/tmp", 0o1777), ("root", 0o700), ("home", 0o755),
                    ("proc", 0o755), ("sys", 0o755), ("dev", 0o755), ("usr/local/bin", 0o755)):
        path = os.path.join(rootfs, d)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)


def debian_layer(ctx, img, name, created_by):
    """Unpacks ctx.packages into a fresh rootfs; returns the rootfs path (layer not yet added)."""
    rootfs = ctx.rootfs_dir(name)
    debroot.build_rootfs(ctx.packages, rootfs, ctx.deb_dir, ctx.workdir)
    return rootfs


def tar_tree(img, rootfs, created_by, compression="gzip"):
    t = img.tar()
    t.add_tree(rootfs)
    desc = img.add_layer(t.close(), compression, created_by)
    shutil.rmtree(rootfs)
    return desc


# --- stand-ins for the Docker Hub images ---------------------------------


@recipe("busybox", packages=["busybox-static"])
def busybox(ctx):
    """library/busybox:latest: docker schema2 manifest inside a docker manifest list."""
    img = ctx.image(flavour="docker")
    rootfs = debian_layer(ctx, img, "busybox", "busybox-static")
    debroot.install_busybox_links(rootfs, hardlinks=True)
    write_base_files(rootfs)
    tar_tree(img, rootfs, "busybox-static from Debian, applets hardlinked in /bin")
    manifest = img.finish({"Env": ["PATH=" + PATH_DEFAULT], "Cmd": ["sh"]})
    ctx.layout.tag(strip_platform(manifest), "library/busybox:single")
    index = make_index(ctx.layout, "docker", [manifest])
    ctx.layout.tag(index, "library/busybox:latest")


@recipe("python", deps=["busybox"], packages=["python3", "python3-pip", "python3-flask", "python3-redis"])
def python(ctx):
    """library/python:3.6-alpine: OCI manifest inside an OCI index; busybox layer + Debian python."""
    img = ctx.image(flavour="oci")
    base_root, base_manifest = ctx.dep_manifest("busybox", "library/busybox:latest")
    img.add_layers_from(base_root, base_manifest)
    rootfs = debian_layer(ctx, img, "python", "python3 python3-pip python3-flask python3-redis")
    usr_bin = os.path.join(rootfs, "usr", "bin")
    # Names the official image has; pip must not refuse to run (PEP 668 marker).
    for link, target in (("python", "python3"), ("pip", "pip3")):
        if not os.path.lexists(os.path.join(usr_bin, link)):
            os.symlink(target, os.path.join(usr_bin, link))
    for dirpath, _, files in os.walk(os.path.join(rootfs, "usr", "lib")):
        if "EXTERNALLY-MANAGED" in files:
            os.unlink(os.path.join(dirpath, "EXTERNALLY-MANAGED"))
    tar_tree(img, rootfs, "python3 python3-pip python3-flask python3-redis from Debian")
    manifest = img.finish({
        "Env": ["PATH=/usr/local/bin:" + PATH_DEFAULT, "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"],
        "Cmd": ["python3"],
    })
    index = make_index(ctx.layout, "oci", [manifest])
    ctx.layout.tag(index, "library/python:3.6-alpine")


REDIS_ENTRYPOINT = """#!/bin/sh
# Like the official image's entrypoint: redis-server runs without protected
# mode unless told otherwise, so other containers can connect.
set -e
case "$1" in -*|*.conf) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ]; then
    case " $* " in
        *" --protected-mode "*) ;;
        *) set -- "$@" --protected-mode no ;;
    esac
fi
exec "$@"
"""


@recipe("redis", deps=["busybox"], packages=["redis-server"])
def redis(ctx):
    """library/redis:alpine: plain docker schema2 manifest (no list); busybox layer + Debian redis."""
    img = ctx.image(flavour="docker")
    base_root, base_manifest = ctx.dep_manifest("busybox", "library/busybox:latest")
    img.add_layers_from(base_root, base_manifest)
    rootfs = debian_layer(ctx, img, "redis", "redis-server")
    write_base_files(rootfs, users=["redis:x:999:1000::/home/redis:/bin/false"], groups=["redis:x:1000:"])
    os.makedirs(os.path.join(rootfs, "data"), exist_ok=True)
    os.chmod(os.path.join(rootfs, "data"), 0o755)
    entry = os.path.join(rootfs, "usr", "local", "bin", "docker-entrypoint.sh")
    with open(entry, "w") as f:
        f.write(REDIS_ENTRYPOINT)
    os.chmod(entry, 0o755)
    tar_tree(img, rootfs, "redis-server from Debian, docker-entrypoint.sh")
    manifest = img.finish({
        "Env": ["PATH=" + PATH_DEFAULT],
        "Entrypoint": ["docker-entrypoint.sh"],
        "Cmd": ["redis-server", "--protected-mode", "no"],
        "ExposedPorts": {"6379/tcp": {}},
        "Volumes": {"/data": {}},
        "WorkingDir": "/data",
    })
    ctx.layout.tag(strip_platform(manifest), "library/redis:alpine")


# --- images that exercise the puller and the unpacker ---------------------


def _gunzip_to_tar(layout_root, desc, workdir):
    """Decompresses a gzip layer blob of another layout into a temp tar file."""
    import gzip
    import tempfile

    src = os.path.join(layout_root, "blobs", "sha256", desc["digest"].split(":", 1)[1])
    fd, out = tempfile.mkstemp(dir=workdir, suffix=".tar")
    with gzip.open(src, "rb") as zin, os.fdopen(fd, "wb") as fout:
        shutil.copyfileobj(zin, fout, 1 << 20)
    return out


def _busybox_amd64(ctx):
    return ctx.dep_manifest("busybox", "library/busybox:latest")


@recipe("multiarch", deps=["busybox"])
def multiarch(ctx):
    """test/multiarch: OCI index with arm64, an attestation manifest and amd64 (in that order)."""
    amd = ctx.image(flavour="oci", arch="amd64")
    amd.add_layers_from(*_busybox_amd64(ctx))
    t = amd.tar()
    t.dir("etc")
    t.file("etc/mc-arch", "amd64\n")
    amd.add_layer(t.close(), created_by="marker amd64")
    amd_desc = amd.finish({"Env": ["PATH=" + PATH_DEFAULT], "Cmd": ["cat", "/etc/mc-arch"]})

    arm = ctx.image(flavour="oci", arch="arm64", variant="v8")
    t = arm.tar()
    t.dir("etc")
    t.file("etc/mc-arch", "arm64\n")
    arm.add_layer(t.close(), created_by="marker arm64 (no binaries: never run)")
    arm_desc = arm.finish({"Env": ["PATH=" + PATH_DEFAULT], "Cmd": ["cat", "/etc/mc-arch"]})

    # Like BuildKit's provenance: platform unknown/unknown, in-toto layer.
    att = ctx.image(flavour="oci", arch="unknown")
    statement = (
        '{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2",'
        '"subject":[{"name":"test/multiarch","digest":{"sha256":"' + amd_desc["digest"].split(":")[1] + '"}}],'
        '"predicate":{"builder":{"id":"minicompose-testimages"}}}'
    ).encode()
    layer = ctx.layout.put_bytes(statement, "application/vnd.in-toto+json",
                                 annotations={"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"})
    att.layers.append(layer)
    att.diff_ids.append(layer["digest"])
    att_desc = att.finish({})
    att_desc["platform"] = {"architecture": "unknown", "os": "unknown"}
    att_desc["annotations"] = {
        "vnd.docker.reference.digest": amd_desc["digest"],
        "vnd.docker.reference.type": "attestation-manifest",
    }
    ctx.layout.tag(make_index(ctx.layout, "oci", [arm_desc, att_desc, amd_desc]), "test/multiarch:latest")
    ctx.layout.tag(make_index(ctx.layout, "oci", [arm_desc]), "test/multiarch:arm64-only")


@recipe("zstd", deps=["busybox"])
def zstd(ctx):
    """test/zstd: OCI manifest; busybox recompressed with zstd + a small zstd layer."""
    img = ctx.image(flavour="oci")
    root, manifest_desc = _busybox_amd64(ctx)
    base = blobs.Layout(root)
    base_manifest = base.read_json(manifest_desc["digest"])
    for layer in base_manifest["layers"]:
        img.add_layer(_gunzip_to_tar(root, layer, ctx.workdir), "zstd", "busybox layer, zstd")
    t = img.tar()
    t.dir("zstd")
    t.file("zstd/hello.txt", "hello from a zstd layer\n")
    img.add_layer(t.close(), "zstd", "zstd marker")
    desc = img.finish({"Env": ["PATH=" + PATH_DEFAULT], "Cmd": ["cat", "/zstd/hello.txt"]})
    ctx.layout.tag(strip_platform(desc), "test/zstd:latest")


@recipe("whiteout", deps=["busybox"])
def whiteout(ctx):
    """test/whiteout: whiteouts and opaque dirs across three layers on busybox."""
    img = ctx.image(flavour="oci")
    img.add_layers_from(*_busybox_amd64(ctx))

    t = img.tar()
    t.dir("wh")
    t.file("wh/keep.txt", "keep\n")
    t.file("wh/gone.txt", "gone\n")
    t.dir("wh/gonedir")
    t.file("wh/gonedir/a.txt", "a\n")
    t.dir("wh/gonedir/sub")
    t.file("wh/gonedir/sub/b.txt", "b\n")
    t.dir("wh/opq")
    t.file("wh/opq/old.txt", "old\n")
    t.dir("wh/opq/oldsub")
    t.file("wh/opq/oldsub/c.txt", "c\n")
    t.dir("wh/readd")
    t.file("wh/readd/x.txt", "v1\n")
    img.add_layer(t.close(), created_by="whiteout layer 1: files")

    t = img.tar()
    t.dir("wh")
    t.whiteout("wh/gone.txt")
    t.whiteout("wh/gonedir")
    t.dir("wh/opq")
    # The new file comes BEFORE the opaque marker: the marker hides only lower layers.
    t.file("wh/opq/new.txt", "new\n")
    t.opaque("wh/opq")
    t.whiteout("wh/readd")
    t.whiteout("wh/never-existed")
    t.dir("bin")
    t.whiteout("bin/vi")
    img.add_layer(t.close(), created_by="whiteout layer 2: whiteouts, opaque dir")

    t = img.tar()
    t.dir("wh")
    t.dir("wh/readd")
    t.file("wh/readd/y.txt", "v2\n")
    img.add_layer(t.close(), created_by="whiteout layer 3: re-created dir")
    desc = img.finish({"Env": ["PATH=" + PATH_DEFAULT], "Cmd": ["find", "/wh"]})
    ctx.layout.tag(strip_platform(desc), "test/whiteout:latest")


@recipe("hardlink", deps=["busybox"])
def hardlink(ctx):
    """test/hardlink: hardlinks inside one layer, one with a >100 char name (PAX linkpath)."""
    img = ctx.image(flavour="oci")
    img.add_layers_from(*_busybox_amd64(ctx))
    t = img.tar()
    t.dir("hl")
    t.file("hl/original", "same content\n", mode=0o640)
    t.hardlink("hl/link1", "hl/original")
    t.dir("hl/sub")
    t.hardlink("hl/sub/link2", "hl/original")
    long_dir = "hl/" + "d" * 60
    t.dir(long_dir)
    t.file(long_dir + "/" + "f" * 60, "long name\n")
    t.hardlink("hl/long-link", long_dir + "/" + "f" * 60)
    t.symlink("hl/sym", "original")
    img.add_layer(t.close(), created_by="hardlinks")
    desc = img.finish({"Env": ["PATH=" + PATH_DEFAULT], "Cmd": ["ls", "-li", "/hl"]})
    ctx.layout.tag(strip_platform(desc), "test/hardlink:latest")


def _evil_image(ctx, ref, writers, note):
    img = ctx.image(flavour="oci")
    for w in writers:
        t = img.tar()
        w(t)
        raw = w in (evil.absurd_ustar, evil.absurd_pax)
        img.add_layer(t.close(raw_end=raw), created_by=f"evil: {w.__name__}")
    desc = img.finish({"Env": ["PATH=" + PATH_DEFAULT], "Cmd": ["/ok.txt"]},
                      annotations={"org.opencontainers.image.description": note})
    ctx.layout.tag(strip_platform(desc), ref)


@recipe("evil", sources=["evil.py"])
def evil_images(ctx):
    """evil/*: layers a safe unpacker must refuse (see evil.py)."""
    _evil_image(ctx, "evil/traversal:latest", [evil.traversal], "../ and absolute paths")
    _evil_image(ctx, "evil/symlink-escape:latest", [evil.symlink_escape], "writes through symlinks")
    _evil_image(ctx, "evil/hardlink-escape:latest", [evil.hardlink_escape], "hardlinks outside the layer")
    _evil_image(ctx, "evil/absurd-size:latest", [evil.absurd_ustar, evil.absurd_pax], "huge sizes")
    _evil_image(ctx, "evil/absurd-size:ustar", [evil.absurd_ustar], "8 GiB ustar size")
    _evil_image(ctx, "evil/absurd-size:pax", [evil.absurd_pax], "1 PB PAX size")
