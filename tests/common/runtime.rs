//! Helpers for the runtime's end-to-end tests (tests/runtime.rs): a root per
//! test that removes every container it started when dropped (even when the
//! test fails), and leak checks (directories, cgroups, mounts, processes).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// One test's `--root`, pre-seeded with busybox in the VM lane.
pub struct Rt {
    pub root: crate::TestRoot,
}

impl Default for Rt {
    fn default() -> Rt {
        Rt::new()
    }
}

/// The image the runtime tests use.
pub const IMAGE: &str = "busybox";

impl Rt {
    pub fn new() -> Rt {
        assert!(
            crate::is_root(),
            "the runtime tests need root: run them through scripts/test.sh"
        );
        Rt {
            root: crate::vm::seeded_root(),
        }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// Run the binary with our root and the test registry as mirror.
    pub fn mc(&self, args: &[&str]) -> Output {
        crate::mc(self.path(), args)
    }

    /// `container run --rm busybox ARGS…` (flags may precede the image via `flags`).
    pub fn run(&self, flags: &[&str], cmd: &[&str]) -> Output {
        let mut a = vec!["container", "run", "--rm"];
        a.extend_from_slice(flags);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        self.mc(&a)
    }

    /// `container run -d --name NAME FLAGS busybox CMD…`; panics unless it starts.
    pub fn detach(&self, name: &str, flags: &[&str], cmd: &[&str]) -> String {
        let mut a = vec!["container", "run", "-d", "--name", name];
        a.extend_from_slice(flags);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        let out = self.mc(&a);
        assert!(
            out.status.success(),
            "run -d {name} failed: {}",
            text(&out.stderr)
        );
        let id = text(&out.stdout).trim().to_string();
        assert_eq!(id.len(), 64, "run -d prints the id, got {id:?}");
        id
    }

    /// `container inspect KEY` as JSON (the first element).
    pub fn inspect(&self, key: &str) -> serde_json::Value {
        let out = self.mc(&["container", "inspect", key]);
        assert!(out.status.success(), "inspect {key}: {}", text(&out.stderr));
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("inspect prints JSON");
        v[0].clone()
    }

    /// Ids of the containers on disk.
    pub fn ids(&self) -> Vec<String> {
        std::fs::read_dir(self.path().join("containers"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() == 64)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        for id in self.ids() {
            let _ = Command::new(crate::bin())
                .arg("--root")
                .arg(self.path())
                .args(["container", "rm", "--force", &id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // Whatever rm could not undo: processes, cgroups, mounts.
            for pid in processes_of(&id) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            for d in cgroup_dirs(&id) {
                for _ in 0..50 {
                    if std::fs::remove_dir(&d).is_ok() || !d.exists() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
        for m in mounts_containing(&self.path().display().to_string()) {
            let c = std::ffi::CString::new(m).unwrap();
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Existing cgroup directories named after `id` (v1 hierarchies or v2).
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![base.join("minicompose").join(id)];
    if let Ok(rd) = std::fs::read_dir(base) {
        for e in rd.flatten() {
            candidates.push(e.path().join("minicompose").join(id));
        }
    }
    for c in candidates {
        if c.is_dir() && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Cgroup directories whose name starts with `prefix` (a short id).
pub fn cgroup_dirs_with_prefix(prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    let mut parents = vec![base.join("minicompose")];
    if let Ok(rd) = std::fs::read_dir(base) {
        for e in rd.flatten() {
            parents.push(e.path().join("minicompose"));
        }
    }
    for p in parents {
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix) {
                    out.push(e.path());
                }
            }
        }
    }
    out
}

/// Host pids whose cgroup path names `id`.
pub fn processes_of(id: &str) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
                if cg.contains(id) {
                    out.push(pid);
                }
            }
        }
    }
    out
}

/// Mount points in the host's mount table whose line mentions `needle`.
pub fn mounts_containing(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

/// Panic unless container `id` left nothing behind.
pub fn assert_gone(rt: &Rt, id: &str) {
    assert!(
        !rt.path().join("containers").join(id).exists(),
        "directory of {id} left behind"
    );
    assert!(
        cgroup_dirs(id).is_empty(),
        "cgroups of {id} left behind: {:?}",
        cgroup_dirs(id)
    );
    assert!(processes_of(id).is_empty(), "processes of {id} left behind");
    assert!(
        mounts_containing(id).is_empty(),
        "mounts of {id} left behind: {:?}",
        mounts_containing(id)
    );
}
