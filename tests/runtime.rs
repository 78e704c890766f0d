//! End-to-end tests of `minicompose container …` with the busybox stand-in,
//! run as root. They need only MINICOMPOSE_BIN and an image source: the
//! local registry (MC_TEST_REGISTRY) or, in the cgroup v2 VM lane, a
//! pre-pulled store (MC_TEST_PREPULLED_ROOT). Every test removes what it
//! started, also when it fails (the `Rt` guard).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use mc_e2e::runtime::{assert_gone, cgroup_dirs_with_prefix, mounts_containing, text, Rt, IMAGE};

fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({:?}): {}{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn hostname_pid1_and_exit_codes() {
    let rt = Rt::new();
    let out = stdout_of(&rt.run(&[], &["sh", "-c", "hostname; echo $$; cat /etc/hostname"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        lines[0].len(),
        12,
        "default hostname is the short id: {out}"
    );
    assert!(lines[0].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(lines[1], "1", "the command is PID 1");
    assert_eq!(lines[2], lines[0]);
    let out = stdout_of(&rt.run(&["--hostname", "box"], &["hostname"]));
    assert_eq!(out.trim(), "box");

    assert_eq!(rt.run(&[], &["sh", "-c", "exit 3"]).status.code(), Some(3));
    assert_eq!(rt.run(&[], &["false"]).status.code(), Some(1));
    let nf = rt.run(&[], &["no-such-command"]);
    assert_eq!(nf.status.code(), Some(127));
    assert!(
        text(&nf.stderr).contains("executable file not found in $PATH"),
        "{}",
        text(&nf.stderr)
    );
    let ne = rt.run(&[], &["/etc/passwd"]);
    assert_eq!(ne.status.code(), Some(126), "{}", text(&ne.stderr));
    assert!(rt.ids().is_empty(), "--rm removes every container");
}

#[test]
fn mounts_match_dockers_defaults() {
    let rt = Rt::new();
    let out = stdout_of(&rt.run(&[], &["cat", "/proc/self/mounts"]));
    let mut table: BTreeMap<String, (String, String)> = BTreeMap::new();
    for l in out.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        table.insert(f[1].to_string(), (f[2].to_string(), f[3].to_string()));
    }
    let expect = [
        ("/", "overlay", ""),
        ("/proc", "proc", "nosuid,nodev,noexec"),
        ("/dev", "tmpfs", "nosuid,size=65536k,mode=755"),
        ("/dev/pts", "devpts", "nosuid,noexec"),
        ("/dev/mqueue", "mqueue", "nosuid,nodev,noexec"),
        ("/dev/shm", "tmpfs", "nosuid,nodev,noexec"),
        ("/sys", "sysfs", "ro,nosuid,nodev,noexec"),
        ("/etc/hostname", "", ""),
        ("/etc/hosts", "", ""),
        ("/etc/resolv.conf", "", ""),
        ("/proc/sys", "proc", "ro"),
        ("/proc/bus", "proc", "ro"),
        ("/proc/fs", "proc", "ro"),
        ("/proc/irq", "proc", "ro"),
    ];
    for (point, fstype, opts) in expect {
        let (t, o) = table
            .get(point)
            .unwrap_or_else(|| panic!("{point} is not mounted:\n{out}"));
        if !fstype.is_empty() {
            assert_eq!(t, fstype, "{point}");
        }
        for opt in opts.split(',').filter(|s| !s.is_empty()) {
            assert!(
                o.split(',')
                    .any(|x| x == opt || (opt == "size=65536k" && x == "size=65536k")),
                "{point} lacks {opt}: {o}"
            );
        }
    }
    assert!(
        table
            .get("/sys/fs/cgroup")
            .is_some_and(|(_, o)| o.starts_with("ro")),
        "/sys/fs/cgroup ro:\n{out}"
    );
    assert!(table.get("/dev/pts").unwrap().1.contains("ptmxmode=666"));
    // Masked: whatever of Docker's list exists on this kernel is hidden.
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/acpi",
        "/proc/scsi",
        "/sys/firmware",
    ] {
        if std::path::Path::new(p).exists() {
            assert!(table.contains_key(p), "{p} is not masked:\n{out}");
        }
    }
    let devs = stdout_of(&rt.run(&[], &["ls", "/dev"]));
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "fd", "stdin", "stdout",
        "stderr", "pts", "shm", "mqueue",
    ] {
        assert!(
            devs.split_whitespace().any(|x| x == d),
            "/dev/{d} missing: {devs}"
        );
    }
}

#[test]
fn masked_and_readonly_paths() {
    let rt = Rt::new();
    let out = rt.run(&[], &["sh", "-c", "cat /proc/keys /proc/timer_list | wc -c; ls /sys/firmware | wc -l; echo x > /proc/sys/kernel/hostname"]);
    let o = text(&out.stdout);
    let mut lines = o.lines();
    assert_eq!(lines.next(), Some("0"), "masked files read empty: {o}");
    assert_eq!(lines.next(), Some("0"), "masked dirs are empty: {o}");
    assert_ne!(out.status.code(), Some(0), "/proc/sys is read-only");
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn capabilities() {
    let rt = Rt::new();
    let cap = |flags: &[&str]| {
        let out = stdout_of(&rt.run(flags, &["grep", "CapEff", "/proc/self/status"]));
        out.split_whitespace().nth(1).unwrap().to_string()
    };
    assert_eq!(cap(&[]), "00000000a80425fb");
    // -CHOWN (bit 0), +NET_ADMIN (bit 12)
    assert_eq!(
        cap(&["--cap-drop", "chown", "--cap-add", "NET_ADMIN"]),
        "00000000a80435fa"
    );
    assert_eq!(cap(&["--cap-drop", "ALL"]), "0000000000000000");
    let all = u64::from_str_radix(&cap(&["--privileged"]), 16).unwrap();
    assert!(all & (1 << 21) != 0, "privileged has CAP_SYS_ADMIN");
    // A non-root user gets no effective capabilities, as in Docker.
    assert_eq!(cap(&["-u", "nobody"]), "0000000000000000");
}

#[test]
fn seccomp_default_profile_and_unconfined() {
    let rt = Rt::new();
    // unshare(2) of a user namespace needs no capability: only seccomp stops it.
    let denied = rt.run(&[], &["unshare", "-U", "true"]);
    assert_ne!(denied.status.code(), Some(0));
    assert!(
        text(&denied.stderr).contains("Operation not permitted"),
        "{}",
        text(&denied.stderr)
    );
    let out = rt.run(
        &["--security-opt", "seccomp=unconfined"],
        &["unshare", "-U", "true"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "unconfined allows unshare: {}",
        text(&out.stderr)
    );
    let bad = rt.mc(&[
        "container",
        "run",
        "--rm",
        "--security-opt",
        "seccomp=/x.json",
        IMAGE,
        "true",
    ]);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn memory_limit_oom_is_137() {
    let rt = Rt::new();
    let out = rt.mc(&[
        "container",
        "run",
        "--name",
        "hog",
        "-m",
        "16m",
        IMAGE,
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    let v = rt.inspect("hog");
    assert_eq!(v["State"]["ExitCode"], 137);
    assert_eq!(v["State"]["OOMKilled"], true);
    assert_eq!(v["HostConfig"]["Memory"], 16 * 1024 * 1024);
    stdout_of(&rt.mc(&["container", "rm", "hog"]));
}

#[test]
fn pids_limit() {
    let rt = Rt::new();
    let out = rt.run(
        &["--pids-limit", "4"],
        &["sh", "-c", "for i in 1 2 3 4 5 6; do sleep 2 & done; wait"],
    );
    assert!(
        text(&out.stderr).contains("can't fork"),
        "fork fails past the limit: {}",
        text(&out.stderr)
    );
    let ok = rt.run(
        &["--pids-limit", "20"],
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6; do true & done; wait; echo done",
        ],
    );
    assert_eq!(stdout_of(&ok).trim(), "done");
}

#[test]
fn user_workdir_env() {
    let rt = Rt::new();
    assert_eq!(
        stdout_of(&rt.run(&["-u", "nobody"], &["id", "-u"])).trim(),
        "65534"
    );
    assert_eq!(
        stdout_of(&rt.run(&["-u", "1234:5678"], &["id"])).trim(),
        "uid=1234 gid=5678 groups=5678"
    );
    assert_eq!(stdout_of(&rt.run(&["-w", "/a/b"], &["pwd"])).trim(), "/a/b");
    let env = stdout_of(&rt.run(&["-e", "FOO=bar"], &["env"]));
    assert!(env.lines().any(|l| l == "FOO=bar"));
    assert!(env.lines().any(|l| l.starts_with("PATH=")));
    assert!(env.lines().any(|l| l.starts_with("HOSTNAME=")));
    assert!(env.lines().any(|l| l == "HOME=/root"), "{env}");
}

#[test]
fn volumes_tmpfs_readonly_root() {
    let rt = Rt::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), "from host\n").unwrap();
    let v = format!("{}:/data", host.path().display());
    let out = stdout_of(&rt.run(
        &["-v", &v],
        &["sh", "-c", "cat /data/f; echo back > /data/g"],
    ));
    assert_eq!(out, "from host\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("g")).unwrap(),
        "back\n"
    );
    let ro = format!("{}:/data:ro", host.path().display());
    assert_ne!(
        rt.run(&["-v", &ro], &["touch", "/data/h"]).status.code(),
        Some(0)
    );
    // A volume name instead of a path: created on first use, filled from
    // the image at the mount point (busybox's /var/tmp, mode 1777), kept.
    let out = stdout_of(&rt.run(
        &["-v", "mcrtvol:/var"],
        &["sh", "-c", "stat -c %a /var/tmp; echo x > /var/mine"],
    ));
    assert_eq!(out, "1777\n");
    let out = stdout_of(&rt.run(&["-v", "mcrtvol:/data:ro"], &["cat", "/data/mine"]));
    assert_eq!(out, "x\n");
    assert_eq!(stdout_of(&rt.mc(&["volume", "ls", "-q"])), "mcrtvol\n");
    assert_eq!(stdout_of(&rt.mc(&["volume", "rm", "mcrtvol"])), "mcrtvol\n");
    let bad = rt.run(&["-v", "./rel:/data"], &["true"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("absolute path"),
        "{}",
        text(&bad.stderr)
    );
    assert_ne!(
        rt.run(&["--read-only"], &["touch", "/x"]).status.code(),
        Some(0)
    );
    stdout_of(&rt.run(
        &["--read-only", "--tmpfs", "/scratch"],
        &["touch", "/scratch/x"],
    ));
}

#[test]
fn stop_waits_the_grace_period_then_kills() {
    let rt = Rt::new();
    // A shell as PID 1 has no SIGTERM handler: the kernel ignores the signal.
    rt.detach(
        "stubborn",
        &[],
        &["sh", "-c", "while true; do sleep 1; done"],
    );
    let t0 = Instant::now();
    stdout_of(&rt.mc(&["container", "stop", "-t", "1", "stubborn"]));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "stop returned after {took:?}, before the grace period"
    );
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    assert_eq!(rt.inspect("stubborn")["State"]["ExitCode"], 137);

    // With --init the reaper forwards SIGTERM: a prompt exit.
    rt.detach(
        "polite",
        &["--init"],
        &["sh", "-c", "while true; do sleep 1; done"],
    );
    let t0 = Instant::now();
    stdout_of(&rt.mc(&["container", "stop", "-t", "5", "polite"]));
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "--init forwards SIGTERM"
    );
    assert_eq!(rt.inspect("polite")["State"]["ExitCode"], 143);

    // kill -s sends the given signal.
    rt.detach(
        "trapper",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 7' USR1; echo ready; while true; do sleep 0.1; done",
        ],
    );
    // PID 1 drops signals it has no handler for: wait for the trap.
    wait_for("the trap to be set", Duration::from_secs(5), || {
        text(&rt.mc(&["container", "logs", "trapper"]).stdout).contains("ready")
    });
    stdout_of(&rt.mc(&["container", "kill", "-s", "USR1", "trapper"]));
    wait_for("trapper to exit", Duration::from_secs(5), || {
        rt.inspect("trapper")["State"]["Status"] == "exited"
    });
    assert_eq!(rt.inspect("trapper")["State"]["ExitCode"], 7);
}

#[test]
fn init_reaps_zombies() {
    let rt = Rt::new();
    // The orphaned `sleep 0.1` is reparented to PID 1; `sleep` never reaps it.
    let script = "sh -c 'sleep 0.1 &'; exec sleep 30";
    let zombies = |name: &str| {
        let out = stdout_of(&rt.mc(&["container", "exec", name, "ps", "-o", "stat"]));
        out.lines()
            .filter(|l| l.trim_start().starts_with('Z'))
            .count()
    };
    rt.detach("noinit", &[], &["sh", "-c", script]);
    rt.detach("withinit", &["--init"], &["sh", "-c", script]);
    // Without --init the orphan stays a zombie.
    wait_for(
        "the orphan to become a zombie",
        Duration::from_secs(10),
        || zombies("noinit") == 1,
    );
    // By now the other container's orphan has exited too.
    assert_eq!(zombies("withinit"), 0, "--init reaps it");
    let top = stdout_of(&rt.mc(&["container", "top", "withinit"]));
    assert!(
        top.contains("__internal init"),
        "the reaper is PID 1: {top}"
    );
}

#[test]
fn exec_joins_the_container() {
    let rt = Rt::new();
    let id = rt.detach("target", &["-e", "FROM_RUN=1"], &["sleep", "30"]);
    let out = stdout_of(&rt.mc(&["container", "exec", "-e", "X=y", "-w", "/tmp", &id[..8], "sh", "-c", "hostname; echo $FROM_RUN$X; pwd; grep CapEff /proc/self/status; ps -o comm | grep -c sleep"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], &id[..12]);
    assert_eq!(lines[1], "1y");
    assert_eq!(lines[2], "/tmp");
    assert!(lines[3].ends_with("00000000a80425fb"));
    assert_eq!(lines[4], "1", "sees the container's processes");
    assert_eq!(
        rt.mc(&["container", "exec", "target", "sh", "-c", "exit 5"])
            .status
            .code(),
        Some(5)
    );
    assert_eq!(
        rt.mc(&["container", "exec", "target", "nope"])
            .status
            .code(),
        Some(127)
    );
    assert_eq!(
        stdout_of(&rt.mc(&["container", "exec", "-u", "nobody", "target", "id", "-u"])).trim(),
        "65534"
    );
    let denied = rt.mc(&["container", "exec", "target", "unshare", "-U", "true"]);
    assert_ne!(
        denied.status.code(),
        Some(0),
        "exec has the container's seccomp profile"
    );
}

#[test]
fn logs_and_detached_survival() {
    let rt = Rt::new();
    let id = rt.detach(
        "talker",
        &[],
        &["sh", "-c", "echo out; echo err >&2; sleep 2; echo late"],
    );
    // The CLI has exited; the monitor keeps the container and its log.
    let ls = stdout_of(&rt.mc(&["container", "ls"]));
    assert!(ls.contains("talker") && ls.contains("Up"), "{ls}");
    wait_for("talker to exit", Duration::from_secs(10), || {
        rt.inspect("talker")["State"]["Status"] == "exited"
    });
    let logs = rt.mc(&["container", "logs", "talker"]);
    assert_eq!(text(&logs.stdout), "out\nlate\n");
    assert_eq!(text(&logs.stderr), "err\n");
    let tail = rt.mc(&["container", "logs", "--tail", "1", "talker"]);
    assert_eq!(text(&tail.stdout), "late\n");
    let ts = stdout_of(&rt.mc(&["container", "logs", "-t", "talker"]));
    assert!(
        ts.lines().all(|l| l.contains('T') && l.contains("Z ")),
        "{ts}"
    );
    let raw =
        std::fs::read_to_string(rt.path().join("containers").join(&id).join("log.json")).unwrap();
    let first: serde_json::Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
    assert!(first["stream"].is_string() && first["time"].is_string() && first["log"].is_string());
    assert!(
        stdout_of(&rt.mc(&["container", "ls"])).lines().count() == 1,
        "ls hides exited containers"
    );
    assert!(stdout_of(&rt.mc(&["container", "ls", "-a"])).contains("Exited (0)"));

    // logs -f follows until the container exits.
    rt.detach(
        "ticker",
        &[],
        &[
            "sh",
            "-c",
            "for i in 1 2 3; do echo tick$i; sleep 0.3; done",
        ],
    );
    let follow = rt.mc(&["container", "logs", "-f", "ticker"]);
    assert_eq!(text(&follow.stdout), "tick1\ntick2\ntick3\n");
}

#[test]
fn rm_leaves_nothing() {
    let rt = Rt::new();
    let id = rt.detach(
        "busy",
        &["-m", "32m", "--pids-limit", "50"],
        &["sleep", "30"],
    );
    assert!(
        !mc_e2e::runtime::cgroup_dirs(&id).is_empty(),
        "the container has cgroups"
    );
    let refused = rt.mc(&["container", "rm", "busy"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "rm of a running container needs -f"
    );
    stdout_of(&rt.mc(&["container", "rm", "-f", "busy"]));
    assert_gone(&rt, &id);

    let id = rt.detach("done", &[], &["true"]);
    wait_for("done to exit", Duration::from_secs(5), || {
        rt.inspect("done")["State"]["Status"] == "exited"
    });
    stdout_of(&rt.mc(&["container", "rm", &id[..10]]));
    assert_gone(&rt, &id);
    assert!(rt.mc(&["container", "inspect", "done"]).status.code() != Some(0));
}

#[test]
fn bad_input_is_one_line_and_leaves_nothing() {
    let rt = Rt::new();
    // Warm the store so later failures are about the flag, not the pull.
    stdout_of(&rt.run(&[], &["true"]));
    let check = |args: &[&str], code: Option<i32>, needle: &str| {
        let out = rt.mc(args);
        let err = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?} should fail");
        if let Some(c) = code {
            assert_eq!(out.status.code(), Some(c), "{args:?}: {err}");
        }
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err:?}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(
            rt.ids().is_empty() || args.contains(&"--name"),
            "{args:?} left a container: {:?}",
            rt.ids()
        );
    };
    check(
        &["container", "run", "--rm", IMAGE, "nope"],
        Some(127),
        "executable file not found in $PATH",
    );
    check(
        &["container", "run", "--rm", "-u", "ghost", IMAGE, "true"],
        None,
        "unable to find user ghost",
    );
    check(
        &["container", "run", "--rm", "-m", "1m", IMAGE, "true"],
        Some(1),
        "6MB",
    );
    check(
        &[
            "container",
            "run",
            "--rm",
            "-v",
            "/no/such/dir:/x",
            IMAGE,
            "true",
        ],
        Some(1),
        "bind source path does not exist",
    );
    check(
        &["container", "run", "--rm", "does-not-exist/at-all", "true"],
        None,
        "",
    );
    let id = rt.detach("taken", &[], &["sleep", "30"]);
    check(
        &["container", "run", "--rm", "--name", "taken", IMAGE, "true"],
        Some(1),
        "already in use",
    );
    assert_eq!(rt.ids(), vec![id.clone()]);
    stdout_of(&rt.mc(&["container", "rm", "-f", "taken"]));
    assert_gone(&rt, &id);

    // Not root: refused before anything is created.
    let out = Command::new(mc_e2e::bin())
        .arg("--root")
        .arg(rt.path())
        .args(["container", "run", "--rm", IMAGE, "true"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("root"), "{}", text(&out.stderr));
    assert!(rt.ids().is_empty());
}

use std::os::unix::process::CommandExt;

#[test]
fn many_run_rm_cycles_leak_nothing() {
    let rt = Rt::new();
    let n: usize = std::env::var("MC_TEST_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mounts_before = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let mut short_ids = Vec::new();
    for _ in 0..n {
        let out = stdout_of(&rt.run(&[], &["hostname"]));
        short_ids.push(out.trim().to_string());
    }
    assert!(rt.ids().is_empty(), "containers left: {:?}", rt.ids());
    for s in &short_ids {
        assert!(
            cgroup_dirs_with_prefix(s).is_empty(),
            "cgroup of {s} left behind"
        );
        assert!(mounts_containing(s).is_empty(), "mount of {s} left behind");
    }
    let mounts_after = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    // Other tests run in parallel: allow a little noise, not one per cycle.
    assert!(
        mounts_after <= mounts_before + 20,
        "host mounts grew from {mounts_before} to {mounts_after}"
    );
}

#[test]
fn tty_is_allocated_in_the_containers_devpts() {
    let rt = Rt::new();
    let out = rt.run(&["-t"], &["sh", "-c", "tty; exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stdout).contains("/dev/pts/0"),
        "{}",
        text(&out.stdout)
    );
    rt.detach("console", &["-t"], &["sh", "-c", "tty; sleep 30"]);
    let ex = rt.mc(&["container", "exec", "-t", "console", "tty"]);
    assert!(
        text(&ex.stdout).starts_with("/dev/pts/"),
        "{}",
        text(&ex.stdout)
    );
    wait_for("the tty line in the log", Duration::from_secs(5), || {
        text(&rt.mc(&["container", "logs", "console"]).stdout).contains("/dev/pts/0")
    });
}

/// `container run` with MINICOMPOSE_NO_OVERLAY=1 (forces the copied rootfs).
fn run_copied(rt: &Rt, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(mc_e2e::bin());
    cmd.arg("--root").arg(rt.path());
    if !mc_e2e::vm::in_vm() {
        cmd.arg("--registry-mirror")
            .arg(format!("http://{}", mc_e2e::registry()));
    }
    cmd.env("MINICOMPOSE_NO_OVERLAY", "1")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn copied_rootfs_when_overlay_is_unavailable() {
    let rt = Rt::new();
    let out = run_copied(
        &rt,
        &[
            "container",
            "run",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "head -1 /proc/self/mounts; echo x > /new; cat /new",
        ],
    );
    let o = stdout_of(&out);
    assert!(!o.starts_with("overlay"), "root is not overlay: {o}");
    assert!(o.ends_with("x\n"));
    let warnings = text(&out.stderr)
        .matches("overlayfs is not available")
        .count();
    assert_eq!(warnings, 1, "said once: {}", text(&out.stderr));
    assert!(rt.ids().is_empty());
}

#[test]
fn whiteouts_overlay_and_copy_agree() {
    if mc_e2e::vm::in_vm() {
        return; // the VM lane has busybox only
    }
    let rt = Rt::new();
    let image = format!("{}/test/whiteout:latest", mc_e2e::registry());
    let script = "find /wh | sort; ls /bin/vi 2>&1; ls /bin/sh";
    let expected = "/wh\n/wh/keep.txt\n/wh/opq\n/wh/opq/new.txt\n/wh/readd\n/wh/readd/y.txt\nls: /bin/vi: No such file or directory\n/bin/sh\n";
    let overlay = stdout_of(&rt.mc(&["container", "run", "--rm", &image, "sh", "-c", script]));
    assert_eq!(overlay, expected);
    let copied = stdout_of(&run_copied(
        &rt,
        &["container", "run", "--rm", &image, "sh", "-c", script],
    ));
    assert_eq!(copied, expected);
}

#[test]
fn explain_shows_every_host_visible_step() {
    let rt = Rt::new();
    stdout_of(&rt.run(&[], &["true"])); // pull first: the explain run below is the container only
    let out = rt.mc(&["--explain", "container", "run", "--rm", IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    for needle in [
        "clone: clone(CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWNET|SIGCHLD)",
        "cgroup: mkdir ",
        "cgroup: join: write ",
        "mount: mount overlay on ",
        "mount: mount proc on ",
        "rootfs: pivot_root(",
        "seccomp: install Docker's default profile",
        "caps: bounding = permitted = effective = 0x00000000a80425fb",
        "exec: execve /bin/true",
        "cgroup: rmdir ",
    ] {
        assert!(err.contains(needle), "--explain lacks {needle:?}:\n{err}");
    }
    assert!(
        err.lines().all(|l| l.starts_with("[+")),
        "every line is timed:\n{err}"
    );
}

#[test]
fn foreground_run_forwards_signals() {
    let rt = Rt::new();
    stdout_of(&rt.run(&[], &["true"]));
    let mut child = Command::new(mc_e2e::bin())
        .arg("--root")
        .arg(rt.path())
        .args([
            "container",
            "run",
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "trap 'exit 9' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "ready\n");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(9),
        "the CLI forwards SIGTERM and exits with the container's code"
    );
    wait_for(
        "--rm to remove the container",
        Duration::from_secs(5),
        || rt.ids().is_empty(),
    );
}

#[test]
fn command_starts_with_a_clean_signal_state() {
    // Ignored signals and the mask survive execve: our own process ignores
    // SIGPIPE (Rust's runtime), which must not leak into the container.
    let rt = Rt::new();
    for extra in [&[][..], &["--init"][..]] {
        let out = stdout_of(&rt.run(extra, &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]));
        assert!(
            out.contains("SigIgn:\t0000000000000000"),
            "{extra:?}: {out}"
        );
        assert!(
            out.contains("SigBlk:\t0000000000000000"),
            "{extra:?}: {out}"
        );
    }
    let exec_out = rt.mc(&[
        "container",
        "run",
        "-d",
        "--name",
        "mcsig",
        IMAGE,
        "sleep",
        "30",
    ]);
    assert!(exec_out.status.success(), "{}", text(&exec_out.stderr));
    let out = stdout_of(&rt.mc(&[
        "container",
        "exec",
        "mcsig",
        "grep",
        "SigIgn",
        "/proc/self/status",
    ]));
    assert!(out.contains("SigIgn:\t0000000000000000"), "exec: {out}");
}

/// This process's hard limit on open files (the CLI inherits it).
/// Whether this process may raise hard rlimits (CAP_SYS_RESOURCE, bit 24).
fn has_cap_sys_resource() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

fn host_nofile_hard() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r.rlim_max
}

#[test]
fn ulimits_are_applied_and_clamped_to_the_host() {
    let rt = Rt::new();
    stdout_of(&rt.run(&[], &["true"]));
    let out = rt.run(
        &["--ulimit", "nofile=1024:2048"],
        &["sh", "-c", "ulimit -n; ulimit -Hn"],
    );
    assert_eq!(stdout_of(&out), "1024\n2048\n");
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    let out = rt.run(
        &["--ulimit", "core=0"],
        &["sh", "-c", "ulimit -c; ulimit -Hc"],
    );
    assert_eq!(stdout_of(&out), "0\n0\n");

    // Above our hard limit without CAP_SYS_RESOURCE (the build VM lacks
    // it): clamped with a warning, and the container still runs. With it
    // (the cgroup v2 lane's VM), the limit is simply raised.
    let hard = host_nofile_hard();
    if hard != libc::RLIM_INFINITY && has_cap_sys_resource() {
        let want = format!("nofile={}:{}", hard + 1000, hard + 1000);
        let out = rt.run(&["--ulimit", &want], &["sh", "-c", "ulimit -n; ulimit -Hn"]);
        assert_eq!(
            stdout_of(&out),
            format!("{}\n{}\n", hard + 1000, hard + 1000)
        );
    } else if hard != libc::RLIM_INFINITY {
        let want = format!("nofile={}:{}", hard + 1000, hard + 1000);
        let out = rt.run(&["--ulimit", &want], &["sh", "-c", "ulimit -n; ulimit -Hn"]);
        assert_eq!(stdout_of(&out), format!("{hard}\n{hard}\n"));
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!(
                "ulimit nofile: hard limit {} is above this host's {hard}; using {hard}",
                hard + 1000
            )),
            "{err}"
        );
    }

    // A detached container: the warning too, `exec` gets the limits, inspect shows them.
    let id = rt.detach(
        "limited",
        &["--ulimit", "nofile=512:1024"],
        &["sleep", "30"],
    );
    let out = rt.mc(&[
        "container",
        "exec",
        "limited",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(stdout_of(&out), "512\n1024\n");
    let ul = &rt.inspect("limited")["HostConfig"]["Ulimits"];
    assert_eq!(
        ul,
        &serde_json::json!([{"Name": "nofile", "Soft": 512, "Hard": 1024}])
    );
    stdout_of(&rt.mc(&["container", "rm", "-f", "limited"]));
    assert_gone(&rt, &id);
}

#[test]
fn sysctls_are_set_in_the_container_only() {
    let rt = Rt::new();
    let host = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap();
    let out = rt.run(
        &[
            "--sysctl",
            "net.core.somaxconn=1234",
            "--sysctl",
            "kernel.shmmni=1000",
        ],
        &[
            "sh",
            "-c",
            "cat /proc/sys/net/core/somaxconn /proc/sys/kernel/shmmni",
        ],
    );
    assert_eq!(stdout_of(&out), "1234\n1000\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap(),
        host,
        "the host's value is untouched"
    );
    // /proc/sys stays read-only for the command.
    let out = rt.run(
        &["--sysctl", "net.core.somaxconn=1234"],
        &["sh", "-c", "echo 1 > /proc/sys/net/core/somaxconn"],
    );
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn bad_ulimits_and_sysctls_are_one_line_and_leave_nothing() {
    let rt = Rt::new();
    stdout_of(&rt.run(&[], &["true"]));
    let cases: &[(&[&str], &str)] = &[
        (&["--ulimit", "nofile=2048:1024"], "2048 > 1024"),
        (
            &["--ulimit", "nofiles=1"],
            "invalid ulimit type \"nofiles\"",
        ),
        (&["--ulimit", "nofile"], "NAME=SOFT[:HARD]"),
        (&["--ulimit", "nofile=many"], "is not a number"),
        (
            &["--sysctl", "vm.swappiness=10"],
            "sysctl \"vm.swappiness\" is not allowed in a container",
        ),
        (&["--sysctl", "kernel.hostname=x"], "not allowed"),
        (&["--sysctl", "net.core.somaxconn"], "KEY=VALUE"),
        (
            &["--network", "host", "--sysctl", "net.core.somaxconn=1"],
            "--network host",
        ),
        // Allowed name, but the kernel has no such key / refuses the value.
        (
            &["--sysctl", "net.core.no_such_key=1"],
            "cannot set sysctl net.core.no_such_key=1: No such file",
        ),
        (
            &["--sysctl", "net.core.somaxconn=lots"],
            "cannot set sysctl net.core.somaxconn=lots: Invalid argument",
        ),
    ];
    for (flags, needle) in cases {
        for detach in [false, true] {
            let mut args = vec!["container", "run"];
            args.push(if detach { "-d" } else { "--rm" });
            args.extend_from_slice(flags);
            args.extend_from_slice(&[IMAGE, "true"]);
            let out = rt.mc(&args);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(
                err.contains(needle),
                "{args:?}: expected {needle:?} in {err:?}"
            );
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{args:?}: one line: {err}"
            );
            assert!(rt.ids().is_empty(), "{args:?} left a container");
        }
    }
}

/// `containers/<id>/state.json` of a container.
fn state_of(rt: &Rt, id: &str) -> serde_json::Value {
    let p = rt.path().join("containers").join(id).join("state.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn alive(pid: i64) -> bool {
    pid > 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

#[test]
fn detached_monitor_survives_a_closed_stderr() {
    let rt = Rt::new();
    stdout_of(&rt.run(&[], &["true"]));
    // `--explain … 2>&1 | head -3`: the CLI's stderr is closed after three
    // lines while the monitor is still starting the container.
    let script = format!(
        "'{}' --root '{}' --registry-mirror http://{} --explain container run -d --name mcpipe {IMAGE} sleep 100 2>&1 | head -3",
        mc_e2e::bin().display(),
        rt.path().display(),
        mc_e2e::registry()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert_eq!(
        text(&out.stdout).lines().count(),
        3,
        "{}",
        text(&out.stdout)
    );
    let ids = rt.ids();
    assert_eq!(ids.len(), 1, "one container was created");
    let id = ids[0].clone();
    wait_for("mcpipe to run", Duration::from_secs(10), || {
        state_of(&rt, &id)["status"] == "running"
    });
    let monitor = state_of(&rt, &id)["monitor_pid"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(monitor), "the monitor survived");
    let ls = stdout_of(&rt.mc(&["container", "ls"]));
    assert!(ls.contains("mcpipe") && ls.contains("Up"), "{ls}");
    assert_eq!(
        stdout_of(&rt.mc(&["container", "exec", "mcpipe", "echo", "hi"])),
        "hi\n"
    );
    stdout_of(&rt.mc(&["container", "rm", "-f", "mcpipe"]));
    assert_gone(&rt, &id);
    wait_for(
        "the monitor to end with its container",
        Duration::from_secs(5),
        || !alive(monitor),
    );
}

#[test]
fn orphans_of_a_dead_monitor_are_killed_on_removal() {
    let rt = Rt::new();
    // The monitor is killed: the record still says running.
    let id = rt.detach("orphan1", &[], &["sh", "-c", "sleep 100 & sleep 100"]);
    let st = state_of(&rt, &id);
    let monitor = st["monitor_pid"].as_i64().unwrap();
    assert!(alive(monitor));
    unsafe { libc::kill(monitor as i32, libc::SIGKILL) };
    wait_for("the monitor to die", Duration::from_secs(5), || {
        !alive(monitor)
    });
    assert!(!mc_e2e::runtime::processes_of(&id).is_empty());
    stdout_of(&rt.mc(&["container", "rm", "-f", "orphan1"]));
    assert_gone(&rt, &id);

    // The monitor died before it could record the start (or after it
    // recorded an exit): the record says exited, processes are left in the
    // cgroup. Both `stop` and `rm` (even without -f) kill them.
    for (name, cmd) in [("orphan2", "stop"), ("orphan3", "rm")] {
        let id = rt.detach(name, &[], &["sh", "-c", "sleep 100 & sleep 100"]);
        let mut st = state_of(&rt, &id);
        let monitor = st["monitor_pid"].as_i64().unwrap();
        unsafe { libc::kill(monitor as i32, libc::SIGKILL) };
        wait_for("the monitor to die", Duration::from_secs(5), || {
            !alive(monitor)
        });
        st["status"] = "exited".into();
        st["pid"] = 0.into();
        std::fs::write(
            rt.path().join("containers").join(&id).join("state.json"),
            serde_json::to_vec(&st).unwrap(),
        )
        .unwrap();
        let left = mc_e2e::runtime::processes_of(&id);
        assert!(left.len() >= 2, "{left:?}");
        stdout_of(&rt.mc(&["container", cmd, name]));
        // Killed, then reaped by the host's init (their parent is gone).
        wait_for("the orphans to go", Duration::from_secs(5), || {
            left.iter().all(|p| !alive(*p as i64))
        });
        if cmd == "stop" {
            stdout_of(&rt.mc(&["container", "rm", name]));
        }
        assert_gone(&rt, &id);
    }
}

/// A network under the test's root, removed when dropped.
struct TestNetwork<'a> {
    rt: &'a Rt,
    name: &'static str,
}

impl Drop for TestNetwork<'_> {
    fn drop(&mut self) {
        let _ = self.rt.mc(&["network", "rm", self.name]);
    }
}

#[test]
fn sysctls_on_a_named_network_see_its_interface() {
    let rt = Rt::new();
    stdout_of(&rt.run(&[], &["true"]));
    stdout_of(&rt.mc(&["network", "create", "mcrlnet"]));
    let _net = TestNetwork {
        rt: &rt,
        name: "mcrlnet",
    };
    // eth0 exists when the sysctls are written; a user value replaces
    // Docker's default for ip_unprivileged_port_start.
    let out = rt.run(
        &[
            "--network",
            "mcrlnet",
            "--sysctl",
            "net.ipv4.conf.eth0.rp_filter=2",
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=80",
        ],
        &[
            "cat",
            "/proc/sys/net/ipv4/conf/eth0/rp_filter",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
        ],
    );
    assert_eq!(stdout_of(&out), "2\n80\n");
}
