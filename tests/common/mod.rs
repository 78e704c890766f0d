//! Shared harness for the end-to-end tests.
//!
//! The tests drive the real `minicompose` binary as a user would. They need
//! root and the local registry that `scripts/test.sh` starts; it passes the
//! registry's address as `MC_TEST_REGISTRY` (host:port).

pub mod images;
pub mod lifecycle;
pub mod network;
pub mod pty;
pub mod runtime;

use std::path::PathBuf;
use std::process::{Command, Output};

pub mod vm;

/// Path of the binary under test: `MINICOMPOSE_BIN`, else the one cargo built.
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MINICOMPOSE_BIN") {
        return PathBuf::from(p);
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| here.join("../target"));
    for profile in ["release", "debug"] {
        let p = target.join(profile).join("minicompose");
        if p.exists() {
            return p;
        }
    }
    panic!("minicompose binary not found: build it first (cargo build) or set MINICOMPOSE_BIN");
}

/// `host:port` of the local test registry. Panics with the fix if unset.
pub fn registry() -> String {
    std::env::var("MC_TEST_REGISTRY").expect(
        "MC_TEST_REGISTRY is not set: run the end-to-end tests through scripts/test.sh, \
         which builds the test images and starts the registry",
    )
}

/// Whether we run as root (the end-to-end tests need it).
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A throwaway `--root` for one test; removed (with a best-effort unmount
/// sweep done by the test itself) when dropped.
pub fn temp_root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mc-test-root-")
        .tempdir()
        .expect("create temp root")
}

/// Run the binary with `args`, `--root root`, and the test registry as mirror.
pub fn mc(root: &std::path::Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--root")
        .arg(root)
        .arg("--registry-mirror")
        .arg(format!("http://{}", registry()))
        .args(args)
        .output()
        .expect("spawn minicompose")
}
