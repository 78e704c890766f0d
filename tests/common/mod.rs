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
pub fn temp_root() -> TestRoot {
    TestRoot {
        dir: tempfile::Builder::new()
            .prefix("mc-test-root-")
            .tempdir()
            .expect("create temp root"),
    }
}

/// A test's `--root`. Dropping it, also when the test panicked half-way,
/// force-removes the containers and networks still in it before deleting
/// the directory, so a failed test leaves no process, bridge or rule.
pub struct TestRoot {
    dir: tempfile::TempDir,
}

impl TestRoot {
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        let list = |args: &[&str]| -> Vec<String> {
            Command::new(bin())
                .arg("--root")
                .arg(self.path())
                .args(args)
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let containers = list(&["container", "ls", "-a", "-q"]);
        if !containers.is_empty() {
            let mut args = vec!["container", "rm", "-f"];
            args.extend(containers.iter().map(String::as_str));
            list(&args);
        }
        for net in list(&["network", "ls", "-q"]) {
            list(&["network", "rm", &net]);
        }
    }
}

/// A command's status and both streams, for assertion messages.
pub fn describe(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// [`mc`] that must succeed.
pub fn mc_ok(root: &std::path::Path, args: &[&str]) -> Output {
    let o = mc(root, args);
    assert!(o.status.success(), "minicompose {args:?}: {}", describe(&o));
    o
}

pub fn stderr_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `container run --rm IMAGE sh -c SCRIPT`; its stdout.
pub fn sh_in(root: &std::path::Path, image: &str, script: &str) -> String {
    let o = mc_ok(
        root,
        &["container", "run", "--rm", image, "sh", "-c", script],
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
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
