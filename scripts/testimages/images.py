#!/usr/bin/python3
"""Builds (cached) and pushes the minicompose test images.

  images.py build [NAME...]                 build missing image sets, print their layout dirs
  images.py push --registry H:P [--user U --password P] [--repos R,R] [NAME...]
  images.py list                            recipe names
  images.py cache-dir                       print the cache directory

Cache: $MC_TEST_CACHE or /var/cache/minicompose-test (when writable) or
~/.cache/minicompose-test. Each image set is an OCI image layout in
<cache>/images/<name>-<key>/, where key hashes the recipe and the builder code.
"""

import argparse
import fcntl
import hashlib
import inspect
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep the clone clean

import blobs  # noqa: E402
import push  # noqa: E402
import recipes  # noqa: E402

BUILDER_MODULES = ("blobs.py", "debroot.py")


def log(msg):
    print("testimages: " + msg, file=sys.stderr, flush=True)


def cache_root():
    env = os.environ.get("MC_TEST_CACHE")
    if env:
        return env
    system = "/var/cache/minicompose-test"
    try:
        os.makedirs(system, exist_ok=True)
        if os.access(system, os.W_OK):
            return system
    except OSError:
        pass
    return os.path.join(os.path.expanduser("~"), ".cache", "minicompose-test")


def recipe_key(name, _memo={}):
    if name in _memo:
        return _memo[name]
    r = recipes.RECIPES[name]
    h = hashlib.sha256()
    for mod in (*BUILDER_MODULES, *r["sources"]):
        path = os.path.join(HERE, mod)
        if os.path.exists(path):
            with open(path, "rb") as f:
                h.update(f.read())
    h.update(inspect.getsource(r["fn"]).encode())
    h.update(repr(r["packages"]).encode())
    for dep in r["deps"]:
        h.update(recipe_key(dep).encode())
    _memo[name] = h.hexdigest()[:16]
    return _memo[name]


def layout_dir(cache, name):
    return os.path.join(cache, "images", f"{name}-{recipe_key(name)}")


def build(cache, name, built):
    """Builds NAME (and its dependencies) unless cached; returns its layout dir."""
    if name in built:
        return built[name]
    r = recipes.RECIPES[name]
    dep_roots = {dep: build(cache, dep, built) for dep in r["deps"]}
    final = layout_dir(cache, name)
    if not os.path.exists(os.path.join(final, "index.json")):
        started = time.monotonic()
        tmp_root = os.path.join(cache, "tmp")
        os.makedirs(tmp_root, exist_ok=True)
        work = os.path.join(tmp_root, f"{name}-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        try:
            staging = os.path.join(work, "layout")
            layout = blobs.Layout(staging)
            ctx = recipes.Context(layout, work, os.path.join(cache, "debs"), dep_roots, r["packages"])
            r["fn"](ctx)
            layout.finish()
            os.makedirs(os.path.dirname(final), exist_ok=True)
            shutil.rmtree(final, ignore_errors=True)
            os.rename(staging, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log(f"built {name} in {time.monotonic() - started:.1f}s -> {final}")
        prune_old(cache, name, final)
    built[name] = final
    return final


def prune_old(cache, name, keep):
    """Removes older builds of the same image set (other keys)."""
    images = os.path.join(cache, "images")
    for entry in os.listdir(images):
        path = os.path.join(images, entry)
        if entry.rsplit("-", 1)[0] == name and path != keep:
            shutil.rmtree(path, ignore_errors=True)


def with_lock(cache, fn):
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return fn()


def cmd_build(args):
    cache = cache_root()
    names = args.names or list(recipes.RECIPES)
    unknown = [n for n in names if n not in recipes.RECIPES]
    if unknown:
        log(f"unknown image set(s) {', '.join(unknown)}; known: {', '.join(recipes.RECIPES)}")
        return 1
    built = {}
    dirs = with_lock(cache, lambda: [build(cache, n, built) for n in names])
    for d in dirs:
        print(d)
    return 0


def cmd_push(args):
    cache = cache_root()
    names = args.names or list(recipes.RECIPES)
    built = {}
    dirs = with_lock(cache, lambda: [build(cache, n, built) for n in names])
    reg = push.Registry(args.registry, args.user, args.password)
    only = set(args.repos.split(",")) if args.repos else None
    started = time.monotonic()
    refs = []
    for d in dirs:
        refs += push.push_layout(reg, d, only)
    log(f"pushed {len(refs)} refs to {args.registry} in {time.monotonic() - started:.1f}s")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("names", nargs="*")
    ps = sub.add_parser("push")
    ps.add_argument("--registry", required=True, help="host:port (plain http)")
    ps.add_argument("--user")
    ps.add_argument("--password")
    ps.add_argument("--repos", help="comma-separated repositories to push (default: all)")
    ps.add_argument("names", nargs="*")
    sub.add_parser("list")
    sub.add_parser("cache-dir")
    args = p.parse_args()
    try:
        if args.cmd == "build":
            return cmd_build(args)
        if args.cmd == "push":
            return cmd_push(args)
        if args.cmd == "cache-dir":
            print(cache_root())
            return 0
        print("\n".join(recipes.RECIPES))
        return 0
    except (push.PushError, OSError, RuntimeError) as e:
        log(f"error: {e}")
        return 1
    except Exception as e:  # subprocess failures and the like: one line, not a trace
        log(f"error: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
