//! Which cgroup layout the host has: pure v2 (cgroup2 on /sys/fs/cgroup),
//! v1, or hybrid (v1 controllers plus an empty v2 at /sys/fs/cgroup/unified;
//! treated as v1, as runc does). Decided at runtime from statfs and mountinfo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The host's cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Unified hierarchy mounted at this path.
    V2(PathBuf),
    /// v1 controllers and where each is mounted; `hybrid` when a v2 tree exists too.
    V1 {
        controllers: BTreeMap<String, PathBuf>,
        hybrid: bool,
    },
}

/// The v1 controllers we place containers in.
pub const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "pids"];

fn is_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// Parse /proc/self/mountinfo text: v1 controller → mount point.
pub fn v1_mounts(mountinfo: &str) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split(' ');
        if r.next() != Some("cgroup") {
            continue;
        }
        let super_opts = r.nth(1).unwrap_or("");
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        for opt in super_opts.split(',') {
            if V1_CONTROLLERS.contains(&opt) && !out.contains_key(opt) {
                out.insert(opt.to_string(), PathBuf::from(unescape(mount_point)));
            }
        }
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Look at the running host.
pub fn detect() -> Layout {
    let base = Path::new("/sys/fs/cgroup");
    if is_cgroup2(base) {
        return Layout::V2(base.to_path_buf());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let controllers = v1_mounts(&mountinfo);
    let hybrid = is_cgroup2(&base.join("unified"));
    Layout::V1 {
        controllers,
        hybrid,
    }
}

impl Layout {
    pub fn describe(&self) -> String {
        match self {
            Layout::V2(p) => format!("cgroup v2 at {}", p.display()),
            Layout::V1 {
                controllers,
                hybrid,
            } => format!(
                "cgroup v1{} ({})",
                if *hybrid {
                    " (hybrid: v2 tree unused)"
                } else {
                    ""
                },
                controllers.keys().cloned().collect::<Vec<_>>().join(",")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hybrid_mountinfo() {
        let mi = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
33 30 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
34 30 0:30 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
35 30 0:31 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
36 30 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
37 30 0:33 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
38 30 0:34 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
";
        let m = v1_mounts(mi);
        assert_eq!(m.len(), 4);
        assert_eq!(m["memory"], PathBuf::from("/sys/fs/cgroup/memory"));
        let joined = "40 30 0:35 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let m = v1_mounts(joined);
        assert_eq!(m["cpu"], m["cpuacct"]);
    }
}
