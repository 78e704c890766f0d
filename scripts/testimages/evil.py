"""Malicious layer tars. A safe unpacker must refuse them (or confine every
entry inside the layer directory) and never create or change anything under
/tmp/mc-evil-* (the targets are named so tests can look for them).

Escapes go through many '..' so that, whatever the depth of the layer
directory, a naive unpacker lands at /tmp/mc-evil-*.
"""

import tarfile

from blobs import EPOCH

UP = "../" * 16


def traversal(t):
    t.file("ok.txt", "harmless\n")
    t.file(UP + "tmp/mc-evil-traversal-1", "escaped via ../\n")
    t.file("a/" + UP + "tmp/mc-evil-traversal-2", "escaped via a/../\n")
    t.file("../mc-evil-traversal-3", "escaped one level up\n")
    t.file("/tmp/mc-evil-absolute", "absolute path\n")


def symlink_escape(t):
    t.file("ok.txt", "harmless\n")
    t.symlink("escape-root", "/")
    t.file("escape-root/tmp/mc-evil-symlink-1", "written through a symlink to /\n")
    t.symlink("escape-up", UP.rstrip("/"))
    t.file("escape-up/tmp/mc-evil-symlink-2", "written through a symlink to ../..\n")
    t.dir("dir")
    t.symlink("dir/tmp-link", UP + "tmp")
    t.file("dir/tmp-link/mc-evil-symlink-3", "written through a nested symlink\n")
    # A symlink whose target is the file itself: writing to it must not follow.
    t.symlink("abs-file", "/tmp/mc-evil-symlink-4")
    t.file("abs-file", "replaces the symlink, must not write /tmp/mc-evil-symlink-4\n")


def hardlink_escape(t):
    """Links to /tmp/mc-evil-hardlink-target, which a test creates before pulling."""
    t.file("ok.txt", "harmless\n")
    t.hardlink("link-up", UP + "tmp/mc-evil-hardlink-target")
    t.hardlink("link-abs", "/tmp/mc-evil-hardlink-target")
    t.symlink("tmp-dir", "/tmp")
    t.hardlink("link-via-symlink", "tmp-dir/mc-evil-hardlink-target")
    # Writing a regular entry over the link must not write through it.
    t.file("link-up", "overwrites the hardlink target if followed\n")


def _huge_header(name, size, fmt):
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = 0o644
    ti.mtime = EPOCH
    ti.uname = ti.gname = ""
    return ti.tobuf(fmt, "utf-8", "surrogateescape")


def absurd_ustar(t):
    """A ustar header claiming 8 GiB, followed by 1 KiB of data and the end of the stream."""
    t.file("ok.txt", "harmless\n")
    t.raw(_huge_header("huge-ustar", 0o77777777777, tarfile.USTAR_FORMAT))
    t.raw(b"A" * 1024)


def absurd_pax(t):
    """A PAX 'size' record claiming 1 PB (the ustar size field says 0)."""
    t.file("ok.txt", "harmless\n")
    t.raw(_huge_header("huge-pax", 10**15, tarfile.PAX_FORMAT))
    t.raw(b"B" * 1024)
