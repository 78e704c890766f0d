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
from blobs import ImageBuilder, make_index, strip_platform

RECIPES = {}

PATH_DEFAULT = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def recipe(name, deps=(), packages=()):
    def register(fn):
        RECIPES[name] = dict(name=name, fn=fn, deps=list(deps), packages=list(packages))
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
