"""Deterministic layer tars, compression and an OCI image layout writer.

Every image the test registries serve is written here first, as an OCI image
layout (oci-layout, index.json, blobs/sha256/...) in the cache directory, so
the pusher can send the exact bytes (including docker media types and broken
layers) and tests can compare against `umoci unpack`.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile

# Every entry gets this mtime, so a layer's digest depends only on its content.
EPOCH = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_ANNOTATION = "org.opencontainers.image.ref.name"

# Media types per flavour: (manifest, index, config, gzip layer).
FLAVOURS = {
    "docker": (DOCKER_MANIFEST, DOCKER_LIST, DOCKER_CONFIG, DOCKER_LAYER_GZIP),
    "oci": (OCI_MANIFEST, OCI_INDEX, OCI_CONFIG, OCI_LAYER_GZIP),
}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def canonical_json(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


class TarBuilder:
    """Writes a layer tar to a temp file with fixed owners and mtimes.

    Entries are written in the order they are added; add_tree sorts, so a
    tree always yields the same bytes.
    """

    def __init__(self, workdir):
        fd, self.path = tempfile.mkstemp(dir=workdir, suffix=".tar")
        self._file = os.fdopen(fd, "w+b")
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name, kind, mode, uid=0, gid=0):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = EPOCH
        return ti

    def dir(self, name, mode=0o755, uid=0, gid=0):
        self._tar.addfile(self._info(name, tarfile.DIRTYPE, mode, uid, gid))

    def file(self, name, data, mode=0o644, uid=0, gid=0):
        if isinstance(data, str):
            data = data.encode()
        ti = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        ti.size = len(data)
        self._tar.addfile(ti, io.BytesIO(data))

    def symlink(self, name, target):
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self._tar.addfile(ti)

    def hardlink(self, name, target):
        ti = self._info(name, tarfile.LNKTYPE, 0o644)
        ti.linkname = target
        self._tar.addfile(ti)

    def whiteout(self, name):
        """Marks NAME (a path) deleted: an empty file .wh.<basename>."""
        head, _, base = name.rpartition("/")
        self.file((head + "/" if head else "") + ".wh." + base, b"", mode=0o644)

    def opaque(self, directory):
        self.file(directory.rstrip("/") + "/.wh..wh..opq", b"", mode=0o644)

    def raw(self, data):
        """Appends raw bytes (a hand-made header) at the current position.

        Only for malformed layers; call close(raw_end=True) afterwards.
        """
        self._tar.fileobj.write(data)
        self._tar.offset += len(data)

    def add_tree(self, root, prefix=""):
        """Adds every entry below ROOT (not ROOT itself), sorted, hardlinks kept.

        Everything is owned by root, whoever built the tree.
        """
        inodes = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            names = sorted(dirnames + filenames)
            for name in names:
                full = os.path.join(dirpath, name)
                arc = name if rel_dir == "." else rel_dir + "/" + name
                arc = prefix + arc
                st = os.lstat(full)
                mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISDIR(st.st_mode):
                    self.dir(arc, mode)
                elif stat.S_ISLNK(st.st_mode):
                    ti = self._info(arc, tarfile.SYMTYPE, 0o777)
                    ti.linkname = os.readlink(full)
                    self._tar.addfile(ti)
                elif stat.S_ISREG(st.st_mode):
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in inodes:
                        ti = self._info(arc, tarfile.LNKTYPE, mode)
                        ti.linkname = inodes[key]
                        self._tar.addfile(ti)
                        continue
                    inodes[key] = arc
                    ti = self._info(arc, tarfile.REGTYPE, mode)
                    ti.size = st.st_size
                    with open(full, "rb") as f:
                        self._tar.addfile(ti, f)
                # Device nodes, fifos and sockets have no place in a test image.

    def close(self, raw_end=False):
        """Finishes the tar; returns its path. raw_end: leave the bytes as they are."""
        if raw_end:
            self._tar.closed = True  # skip tarfile's end-of-archive blocks
        else:
            self._tar.close()
        self._file.close()
        return self.path


def compress(tar_path, method, workdir):
    """Returns (blob_path, diff_id). method: gzip | zstd | none."""
    diff_id = sha256_file(tar_path)
    if method == "none":
        return tar_path, diff_id
    fd, out = tempfile.mkstemp(dir=workdir, suffix="." + method)
    os.close(fd)
    if method == "gzip":
        # mtime=0 and no file name: the same tar always gives the same blob.
        with open(tar_path, "rb") as src, open(out, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
                shutil.copyfileobj(src, gz, 1 << 20)
    elif method == "zstd":
        subprocess.run(["zstd", "-q", "-f", "-3", "--no-progress", tar_path, "-o", out], check=True)
    else:
        raise ValueError("unknown compression " + method)
    os.unlink(tar_path)
    return out, diff_id


class Layout:
    """An OCI image layout under construction (see the module doc)."""

    def __init__(self, root):
        self.root = root
        self.blobs = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.blobs, exist_ok=True)
        self.refs = []

    def blob_path(self, digest):
        return os.path.join(self.blobs, digest.split(":", 1)[1])

    def put_bytes(self, data, media_type, **extra):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
        return dict(mediaType=media_type, digest=digest, size=len(data), **extra)

    def put_file(self, path, media_type):
        """Moves a finished blob file into the layout."""
        digest = sha256_file(path)
        size = os.path.getsize(path)
        os.chmod(path, 0o644)
        os.replace(path, self.blob_path(digest))
        return dict(mediaType=media_type, digest=digest, size=size)

    def copy_blob_from(self, other_root, desc):
        """Takes a blob from another layout (a base image) by hardlink or copy."""
        src = os.path.join(other_root, "blobs", "sha256", desc["digest"].split(":", 1)[1])
        dst = self.blob_path(desc["digest"])
        if not os.path.exists(dst):
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        return dict(desc)

    def read_json(self, digest):
        with open(self.blob_path(digest), "rb") as f:
            return json.load(f)

    def tag(self, desc, ref):
        d = dict(desc)
        d["annotations"] = dict(d.get("annotations", {}), **{REF_ANNOTATION: ref})
        self.refs.append(d)

    def finish(self):
        with open(os.path.join(self.root, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.refs}
        with open(os.path.join(self.root, "index.json"), "w") as f:
            json.dump(index, f, indent=1)


class ImageBuilder:
    """Builds one image (config + manifest) from layers into a Layout."""

    def __init__(self, layout, workdir, flavour="oci", arch="amd64", variant=None):
        self.layout = layout
        self.workdir = workdir
        self.flavour = flavour
        self.arch = arch
        self.variant = variant
        self.layers = []  # descriptors
        self.diff_ids = []
        self.history = []

    def tar(self):
        return TarBuilder(self.workdir)

    def add_layer(self, tar_path, compression="gzip", created_by="layer", media_type=None):
        blob, diff_id = compress(tar_path, compression, self.workdir)
        if media_type is None:
            gzip_type = FLAVOURS[self.flavour][3]
            media_type = {"gzip": gzip_type, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER_TAR}[compression]
        desc = self.layout.put_file(blob, media_type)
        self.layers.append(desc)
        self.diff_ids.append(diff_id)
        self.history.append({"created": CREATED, "created_by": created_by})
        return desc

    def add_layers_from(self, base_root, base_manifest_desc):
        """Reuses all layers of a base image (stored in another layout)."""
        base = Layout(base_root)
        manifest = base.read_json(base_manifest_desc["digest"])
        config = base.read_json(manifest["config"]["digest"])
        for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
            d = self.layout.copy_blob_from(base_root, desc)
            if self.flavour == "oci" and d["mediaType"] == DOCKER_LAYER_GZIP:
                d["mediaType"] = OCI_LAYER_GZIP
            elif self.flavour == "docker" and d["mediaType"] == OCI_LAYER_GZIP:
                d["mediaType"] = DOCKER_LAYER_GZIP
            self.layers.append(d)
            self.diff_ids.append(diff_id)
        self.history.extend(config.get("history", []))

    def finish(self, config, annotations=None):
        """Writes config and manifest; returns the manifest descriptor (with platform)."""
        manifest_type, _, config_type, _ = FLAVOURS[self.flavour]
        image_config = {
            "created": CREATED,
            "architecture": self.arch,
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
            "history": self.history,
        }
        if self.variant:
            image_config["variant"] = self.variant
        config_desc = self.layout.put_bytes(canonical_json(image_config), config_type)
        manifest = {"schemaVersion": 2, "mediaType": manifest_type, "config": config_desc, "layers": self.layers}
        if annotations:
            manifest["annotations"] = annotations
        desc = self.layout.put_bytes(canonical_json(manifest), manifest_type)
        platform = {"architecture": self.arch, "os": "linux"}
        if self.variant:
            platform["variant"] = self.variant
        desc["platform"] = platform
        return desc


def make_index(layout, flavour, manifests, annotations=None):
    """Writes an index / manifest list over the given manifest descriptors."""
    index_type = FLAVOURS[flavour][1]
    index = {"schemaVersion": 2, "mediaType": index_type, "manifests": manifests}
    if annotations:
        index["annotations"] = annotations
    return layout.put_bytes(canonical_json(index), index_type)


def strip_platform(desc):
    d = dict(desc)
    d.pop("platform", None)
    return d
