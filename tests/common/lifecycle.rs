//! Helpers for the compose lifecycle tests: a project on its own root,
//! copied from `tests/fixtures/<name>`, torn down on drop, and a check that
//! nothing is left on the host (containers, networks, mounts, cgroups, nft
//! chains, processes).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A compose project under test.
pub struct Stack {
    pub root: crate::TestRoot,
    pub dir: tempfile::TempDir,
    pub name: String,
    pub port: u16,
    torn_down: bool,
}

/// A free TCP port on loopback (for `ports:`).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

impl Stack {
    /// Copy `tests/fixtures/<fixture>` and pick a project name and port.
    pub fn new(fixture: &str, name: &str) -> Stack {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(fixture);
        let dir = tempfile::Builder::new()
            .prefix("mc-stack-")
            .tempdir()
            .unwrap();
        copy_dir(&src, dir.path());
        Stack {
            root: crate::temp_root(),
            dir,
            name: name.into(),
            port: free_port(),
            torn_down: false,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::bin());
        c.current_dir(self.dir.path())
            .env("WEB_PORT", self.port.to_string())
            // The hit-counter fixture runs the seed's app, not a copy of it.
            .env(
                "SEED_APP",
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/hit-counter/app"),
            )
            // The embedded DNS never forwards to the host's resolvers.
            .env("MINICOMPOSE_DNS_UPSTREAM", "127.0.0.1:9")
            .env("NO_COLOR", "1")
            .arg("--root")
            .arg(self.root.path())
            .arg("--registry-mirror")
            .arg(format!("http://{}", crate::registry()))
            .arg("-p")
            .arg(&self.name)
            .args(args);
        c
    }

    /// Run a command; its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn minicompose")
    }

    /// Run a command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "minicompose {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `ps -a --format json`, one object per container.
    pub fn ps(&self) -> Vec<serde_json::Value> {
        self.ok(&["ps", "-a", "--format", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).expect("ps json line"))
            .collect()
    }

    /// The supervisor's pid, from its pid file.
    pub fn supervisor_pid(&self) -> Option<i32> {
        let p = self
            .root
            .path()
            .join("run/compose")
            .join(&self.name)
            .join("supervisor.pid");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        v["pid"].as_i64().map(|p| p as i32)
    }

    /// `down -v` and check that nothing is left.
    pub fn teardown(&mut self) {
        let ids: Vec<String> = std::fs::read_dir(self.root.path().join("containers"))
            .map(|r| {
                r.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.len() == 64)
                    .collect()
            })
            .unwrap_or_default();
        self.torn_down = true;
        self.ok(&["down", "-v", "-t", "2"]);
        assert_clean(self.root.path(), &ids);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !self.torn_down {
            let _ = self.run(&["down", "-v", "-t", "1"]);
        }
        // Whatever is still there (a failed test): best effort.
        let _ = Command::new(crate::bin())
            .arg("--root")
            .arg(self.root.path())
            .args(["network", "ls"])
            .output();
    }
}

/// Fetch `http://127.0.0.1:port/` (plain HTTP/1.0 over a socket), retrying until `timeout`.
pub fn http_get(port: u16, timeout: Duration) -> Option<String> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut buf = String::new();
            s.read_to_string(&mut buf)?;
            Ok(buf)
        })();
        match attempt {
            Ok(b) if b.starts_with("HTTP/1.") && b.contains(" 200 ") => {
                return b.split("\r\n\r\n").nth(1).map(str::to_string);
            }
            _ if Instant::now() >= deadline => return None,
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Wait until `f` holds (polling every 100 ms) or panic with `what`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Nothing of `root` is left on the host.
pub fn assert_clean(root: &Path, ids: &[String]) {
    let left: Vec<String> = std::fs::read_dir(root.join("containers"))
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.len() == 64)
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "containers left: {left:?}");
    let nets = std::fs::read_dir(root.join("networks"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(
        nets,
        0,
        "networks left in {}",
        root.join("networks").display()
    );
    let root_s = root.to_string_lossy().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let m: Vec<&str> = mounts.lines().filter(|l| l.contains(&root_s)).collect();
    assert!(m.is_empty(), "mounts left: {m:?}");
    for id in ids {
        for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            if let Ok(rd) = std::fs::read_dir(base) {
                for ctrl in rd.flatten() {
                    let p = ctrl.path().join("minicompose").join(id);
                    assert!(!p.exists(), "cgroup left: {}", p.display());
                }
            }
            let p = Path::new(base).join("minicompose").join(id);
            assert!(!p.exists(), "cgroup left: {}", p.display());
        }
    }
    let key = mc_net::firewall::root_key(root);
    let nft = Command::new("nft")
        .args(["list", "table", "inet", "minicompose"])
        .output();
    if let Ok(o) = nft {
        let text = String::from_utf8_lossy(&o.stdout);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(&key)).collect();
        assert!(lines.is_empty(), "nft rules of this root left: {lines:?}");
    }
    // Processes: supervisor and DNS server carry `--root <root>`; containers are gone with their cgroups.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let procs = processes_mentioning(&root_s);
        if procs.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes left: {procs:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Live (non-zombie) processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().starts_with('Z'))
                    .unwrap_or(false)
            })
            .unwrap_or(true);
        if !zombie && cmd.contains(needle) && pid != std::process::id() as i32 {
            out.push((pid, cmd));
        }
    }
    out
}
