//! Compose lifecycle end to end, as a user: `up`, `ps`, `logs`, `top`,
//! `exec`, `run`, `stop`/`start`, scaling, depends_on conditions, restart
//! policies, Ctrl+C on a foreground `up` (through a pty), and a supervisor
//! killed with -9. Every test tears its stack down and checks that nothing
//! is left on the host. Needs root and the test registry (scripts/test.sh).

use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::time::Duration;

use mc_e2e::lifecycle::{http_get, wait_for, Stack};
use mc_e2e::pty::{pty, read_until};

fn skip() -> bool {
    if !mc_e2e::is_root() {
        eprintln!("skipping: needs root");
        return true;
    }
    false
}

fn by_service<'a>(ps: &'a [serde_json::Value], svc: &str) -> Vec<&'a serde_json::Value> {
    ps.iter().filter(|c| c["Service"] == svc).collect()
}

#[test]
fn hit_counter_lifecycle() {
    if skip() {
        return;
    }
    let mut s = Stack::new("hitcounter", "mclchit");
    let out = s.run(&["up", "-d"]);
    assert!(
        out.status.success(),
        "up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for n in 1..=3 {
        let body = http_get(s.port, Duration::from_secs(30)).expect("the web service answers");
        assert_eq!(body.trim(), format!("Hi! I have been called {n} times"));
    }

    let ps = s.ps();
    assert_eq!(ps.len(), 2, "{ps:?}");
    let web = by_service(&ps, "web")[0];
    assert_eq!(web["Name"], "mclchit-web-1");
    assert_eq!(web["State"], "running");
    assert_eq!(web["Publishers"][0]["PublishedPort"], s.port);
    assert_eq!(web["Publishers"][0]["TargetPort"], 5000);
    assert!(web["Status"].as_str().unwrap().starts_with("Up "));
    assert_eq!(by_service(&ps, "redis")[0]["Name"], "mclchit-redis-1");
    let table = s.ok(&["ps"]);
    assert!(table.starts_with("NAME "), "{table}");
    assert!(
        table.contains(&format!("0.0.0.0:{}->5000/tcp", s.port)),
        "{table}"
    );

    let top = s.ok(&["top", "redis"]);
    assert!(
        top.contains("mclchit-redis-1") && top.contains("redis-server"),
        "{top}"
    );
    let logs = s.ok(&["logs", "web"]);
    assert!(
        logs.contains("mclchit-web-1  | ") && logs.contains("GET / HTTP/1."),
        "{logs}"
    );
    let logs = s.ok(&["logs", "--no-log-prefix", "--tail", "1", "redis"]);
    assert_eq!(logs.lines().count(), 1, "{logs}");

    assert_eq!(
        s.ok(&["exec", "-T", "redis", "redis-cli", "get", "hits"])
            .trim(),
        "3"
    );
    let o = s.run(&["exec", "-T", "web", "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    // Service names resolve on the project network, from a one-off container too.
    let ip = s.ok(&[
        "run",
        "--rm",
        "web",
        "python",
        "-c",
        "import socket; print(socket.gethostbyname('redis'))",
    ]);
    assert!(ip.trim().parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
    let o = s.run(&["run", "--rm", "--no-deps", "web", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(s.ps().len(), 2, "run --rm leaves nothing");

    // A second `up` keeps what did not change.
    let ids: Vec<String> = s
        .ps()
        .iter()
        .map(|c| c["ID"].as_str().unwrap().to_string())
        .collect();
    let o = s.run(&["up", "-d"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("mclchit-web-1  Running"));
    let again: Vec<String> = s
        .ps()
        .iter()
        .map(|c| c["ID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, again);

    s.ok(&["stop"]);
    assert!(s.ps().iter().all(|c| c["State"] == "exited"));
    s.ok(&["start"]);
    let body = http_get(s.port, Duration::from_secs(30)).expect("answers after start");
    assert_eq!(body.trim(), "Hi! I have been called 4 times");
    s.teardown();
}

#[test]
fn scale_up_and_back() {
    if skip() {
        return;
    }
    let mut s = Stack::new("hitcounter", "mclcscale");
    s.ok(&["up", "-d", "--scale", "redis=3", "redis"]);
    let names: Vec<String> = by_service(&s.ps(), "redis")
        .iter()
        .map(|c| c["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "mclcscale-redis-1",
            "mclcscale-redis-2",
            "mclcscale-redis-3"
        ]
    );
    // logs -f follows containers that appear later.
    let mut follow = s
        .command(&["logs", "-f", "redis"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    s.ok(&["up", "-d", "--scale", "redis=4", "redis"]);
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: our own child.
    unsafe { libc::kill(follow.id() as i32, libc::SIGINT) };
    let mut out = String::new();
    follow
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = follow.wait();
    assert!(out.contains("mclcscale-redis-4  | "), "{out}");
    s.ok(&["up", "-d", "--scale", "redis=1", "redis"]);
    let names: Vec<String> = s
        .ps()
        .iter()
        .map(|c| c["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["mclcscale-redis-1"]);
    s.teardown();
}

#[test]
fn depends_on_healthy_waits_for_a_slow_service() {
    if skip() {
        return;
    }
    let mut s = Stack::new("health", "mclchealth");
    let o = s.run(&["up", "-d"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    let healthy = err
        .find("mclchealth-slow-1  Healthy")
        .expect("waits for slow to be healthy");
    let exited = err
        .find("mclchealth-init-1  Exited")
        .expect("waits for init to complete");
    let app = err.find("mclchealth-app-1  Started").expect("app started");
    assert!(healthy < app && exited < app, "{err}");
    let ps = s.ps();
    assert!(
        by_service(&ps, "slow")[0]["Status"]
            .as_str()
            .unwrap()
            .ends_with("(healthy)"),
        "{ps:?}"
    );
    assert_eq!(by_service(&ps, "slow")[0]["Health"], "healthy");
    assert_eq!(by_service(&ps, "init")[0]["State"], "exited");
    assert_eq!(by_service(&ps, "init")[0]["ExitCode"], 0);
    assert!(s.ok(&["logs", "app"]).contains("app started"));
    s.teardown();
}

#[test]
fn restart_on_failure_and_dependency_errors() {
    if skip() {
        return;
    }
    let mut s = Stack::new("restart", "mclcrestart");
    s.ok(&["up", "-d"]);
    // on-failure:2 → the first run and two restarts, then it stays down.
    wait_for("three runs of flaky", Duration::from_secs(30), || {
        s.ok(&["logs", "flaky"]).matches("| run").count() >= 3
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.ok(&["logs", "flaky"]).matches("| run").count(), 3);
    let ps = s.ps();
    let flaky = by_service(&ps, "flaky")[0];
    assert_eq!(flaky["State"], "exited");
    assert_eq!(flaky["ExitCode"], 3);
    // service_healthy on a service without a healthcheck: docker's message.
    let mut c = s.command(&["up", "-d", "needs"]);
    c.env("COMPOSE_PROFILES", "broken");
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("container mclcrestart-nohc-1 has no healthcheck configured"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    s.teardown();
}

#[test]
fn ctrl_c_stops_a_foreground_up() {
    if skip() {
        return;
    }
    let mut s = Stack::new("hitcounter", "mclcfg");
    s.ok(&["pull"]);
    let (master, slave) = pty();
    let mut cmd = s.command(&["up"]);
    cmd.stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    // SAFETY: setsid + TIOCSCTTY in the child: the pty becomes its terminal,
    // so the ^C we type reaches it as SIGINT.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(slave);
    let mut out = String::new();
    assert!(
        read_until(&master, &mut out, "Attaching to", Duration::from_secs(60)),
        "{out}"
    );
    assert!(http_get(s.port, Duration::from_secs(30)).is_some(), "{out}");
    assert!(
        read_until(&master, &mut out, "GET / HTTP", Duration::from_secs(10)),
        "logs are attached: {out}"
    );
    // SAFETY: write ^C to the pty master.
    unsafe { libc::write(master.as_raw_fd(), b"\x03".as_ptr().cast(), 1) };
    assert!(
        read_until(
            &master,
            &mut out,
            "Gracefully stopping... (press Ctrl+C again to force)",
            Duration::from_secs(10)
        ),
        "{out}"
    );
    read_until(
        &master,
        &mut out,
        "mclcfg-redis-1  Stopped",
        Duration::from_secs(30),
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{out}");
    let web = out.find("mclcfg-web-1  Stopped").expect("web stopped");
    let redis = out.find("mclcfg-redis-1  Stopped").expect("redis stopped");
    assert!(web < redis, "reverse dependency order: {out}");
    assert!(out.contains("mclcfg-web-1    | "), "prefixed logs: {out}");
    assert!(s.ps().iter().all(|c| c["State"] == "exited"));
    s.teardown();
}

#[test]
fn supervisor_killed_then_down() {
    if skip() {
        return;
    }
    let mut s = Stack::new("hitcounter", "mclckill");
    s.ok(&["up", "-d"]);
    let pid = s.supervisor_pid().expect("a supervisor runs");
    let rss: u64 = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    eprintln!("supervisor RSS: {rss} kB");
    // SAFETY: the supervisor this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        http_get(s.port, Duration::from_secs(30)).is_some(),
        "containers outlive the supervisor"
    );
    assert!(s.ps().iter().all(|c| c["State"] == "running"));
    let again = s.supervisor_pid().expect("ps started a new supervisor");
    assert_ne!(again, pid);
    // SAFETY: as above.
    unsafe { libc::kill(again, libc::SIGKILL) };
    s.teardown();
}

#[test]
fn exit_code_from_aborts_a_foreground_up() {
    if skip() {
        return;
    }
    let mut s = Stack::new("oneshot", "mclcone");
    let o = s.run(&["up", "--exit-code-from", "worker"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(
        o.status.code(),
        Some(4),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("mclcone-worker-1  | working"), "{out}");
    assert!(out.contains("mclcone-worker-1 exited with code 4"), "{out}");
    assert!(out.contains("Aborting on container exit..."), "{out}");
    assert!(s.ps().iter().all(|c| c["State"] == "exited"));
    s.teardown();
}

#[test]
fn volumes_binds_tmpfs_and_wait() {
    if skip() {
        return;
    }
    let mut s = Stack::new("volumes", "mclcvol");
    let o = s.run(&["up", "-d", "--wait"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(s.ps()[0]["Health"], "healthy");
    assert!(
        s.dir.path().join("conf").is_dir(),
        "a missing bind source is created"
    );
    s.ok(&["exec", "-T", "db", "sh", "-c", "echo kept > /data/f"]);
    let o = s.run(&["exec", "-T", "db", "touch", "/conf/x"]);
    assert_ne!(o.status.code(), Some(0), ":ro bind is read-only");
    let mounts = s.ok(&["exec", "-T", "db", "cat", "/proc/mounts"]);
    assert!(
        mounts.lines().any(|l| l.starts_with("tmpfs /scratch ")),
        "{mounts}"
    );
    s.ok(&["down"]);
    let vol = s.root.path().join("volumes/mclcvol_data/_data/f");
    assert!(vol.exists(), "down keeps named volumes");
    s.ok(&["up", "-d"]);
    assert_eq!(s.ok(&["exec", "-T", "db", "cat", "/data/f"]).trim(), "kept");
    s.teardown();
    assert!(
        !s.root.path().join("volumes/mclcvol_data").exists(),
        "down -v removes it"
    );
}

#[test]
fn restart_count_survives_a_supervisor_kill() {
    if skip() {
        return;
    }
    let mut s = Stack::new("restartkill", "mclcrk");
    s.ok(&["up", "-d"]);
    let runs = |s: &Stack| s.ok(&["logs", "slowfail"]).matches("| run").count();
    wait_for("the first restart", Duration::from_secs(30), || {
        runs(&s) >= 2
    });
    let pid = s.supervisor_pid().expect("a supervisor runs");
    // SAFETY: the supervisor this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // `logs` notices and starts a new supervisor, which must remember that
    // one of the two restarts is spent: three runs in all, not four.
    wait_for("the second restart", Duration::from_secs(30), || {
        runs(&s) >= 3
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(runs(&s), 3, "{}", s.ok(&["logs", "slowfail"]));
    assert_eq!(by_service(&s.ps(), "slowfail")[0]["State"], "exited");
    s.teardown();
}

#[test]
fn image_volumes_survive_recreate_and_down_rmi_removes_images() {
    if skip() {
        return;
    }
    let mut s = Stack::new("hitcounter", "mclcanon");
    s.ok(&["up", "-d"]);
    for n in 1..=2 {
        let body = http_get(s.port, Duration::from_secs(30)).expect("the web service answers");
        assert_eq!(body.trim(), format!("Hi! I have been called {n} times"));
    }
    // redis's image declares VOLUME /data: an anonymous volume, as in Docker.
    let volumes = || -> Vec<String> {
        std::fs::read_dir(s.root.path().join("volumes"))
            .map(|r| {
                r.flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = volumes();
    assert_eq!(before.len(), 1, "{before:?}");
    // A recreated redis keeps the data (its dump on shutdown) in that volume.
    s.ok(&["up", "-d", "--force-recreate", "redis"]);
    assert_eq!(volumes(), before);
    let body = http_get(s.port, Duration::from_secs(30)).expect("the web service answers");
    assert_eq!(body.trim(), "Hi! I have been called 3 times");

    let images = |s: &Stack| {
        let o = std::process::Command::new(mc_e2e::bin())
            .arg("--root")
            .arg(s.root.path())
            .args(["image", "ls", "-q"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    assert_eq!(images(&s), 2);
    // `local` only takes images compose built: none here.
    s.ok(&["down", "-v", "--rmi", "local"]);
    assert_eq!(images(&s), 2);
    assert!(volumes().is_empty(), "{:?}", volumes());
    s.ok(&["up", "-d"]);
    let out = s.run(&["down", "--rmi", "all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(images(&s), 0);
    s.teardown();
}

#[test]
fn ulimits_and_sysctls_reach_the_container() {
    if skip() {
        return;
    }
    let mut s = Stack::new("limits", "mclclim");
    s.ok(&["up", "-d"]);
    wait_for("the limits line", Duration::from_secs(30), || {
        s.ok(&["logs", "limited"]).contains("nofile")
    });
    let logs = s.ok(&["logs", "--no-log-prefix", "limited"]);
    assert_eq!(logs.trim(), "nofile 1024 2048 nproc 900 somaxconn 1234");
    // A sysctl that is not namespaced: one line naming the service, nothing started.
    let mut c = s.command(&["up", "-d", "hostwide"]);
    c.env("COMPOSE_PROFILES", "bad");
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("service hostwide") && err.contains("vm.swappiness"),
        "{err}"
    );
    assert_eq!(s.ps().len(), 1);
    s.teardown();
}

#[test]
fn volume_commands_manage_external_and_anonymous_volumes() {
    if skip() {
        return;
    }
    let mut s = Stack::new("extvolume", "mclcext");
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let names = |s: &Stack, args: &[&str]| -> Vec<String> {
        let mut a = vec!["volume", "ls", "-q"];
        a.extend_from_slice(args);
        s.ok(&a).lines().map(str::to_string).collect()
    };
    // The external volume must exist first: one line saying how, and
    // nothing created (not even the project's network).
    let o = s.run(&["up", "-d"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("create it with `minicompose volume create mclcext_shared`"),
        "{}",
        stderr(&o)
    );
    assert!(s.ps().is_empty());
    assert!(
        !s.ok(&["network", "ls"]).contains("mclcext_default"),
        "a failed up left its network"
    );
    let o = s.run(&["volume", "create", "a/b"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("invalid volume name"), "{}", stderr(&o));
    let created = s.ok(&["volume", "create", "--label", "team=a", "mclcext_shared"]);
    assert_eq!(created.trim(), "mclcext_shared");

    s.ok(&["up", "-d"]);
    s.ok(&["exec", "-T", "box", "sh", "-c", "echo kept > /shared/f"]);
    let all = names(&s, &[]);
    assert_eq!(
        all.len(),
        2,
        "the external and redis's anonymous /data: {all:?}"
    );
    let anon = all
        .iter()
        .find(|n| *n != "mclcext_shared")
        .cloned()
        .unwrap();
    assert_eq!(anon.len(), 64, "{anon}");
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["volume", "inspect", "mclcext_shared"])).unwrap();
    assert_eq!(inspect[0]["Labels"]["team"], "a");
    assert_eq!(inspect[0]["Driver"], "local");
    let mountpoint = inspect[0]["Mountpoint"].as_str().unwrap().to_string();
    assert!(
        std::fs::read_to_string(std::path::Path::new(&mountpoint).join("f")).unwrap() == "kept\n"
    );

    // In use: rm refuses, prune takes nothing.
    let o = s.run(&["volume", "rm", "mclcext_shared"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("in use by mclcext-box-1"),
        "{}",
        stderr(&o)
    );
    let out = s.ok(&["volume", "prune", "-f"]);
    assert_eq!(out.trim(), "Total reclaimed space: 0B");
    assert!(names(&s, &["--filter", "dangling=true"]).is_empty());

    // Plain down keeps both, as docker compose: now both are dangling.
    s.ok(&["down"]);
    assert_eq!(names(&s, &["--filter", "dangling=true"]), all);
    // Without -f, prune asks; no answer declines.
    let o = s.run(&["volume", "prune"]);
    assert!(o.status.success() && stderr(&o).contains("WARNING!"));
    assert_eq!(names(&s, &[]), all);
    // Prune takes the anonymous one only; the external volume keeps its data.
    let out = s.ok(&["volume", "prune", "-f"]);
    assert!(
        out.starts_with(&format!("Deleted Volumes:\n{anon}\n\n")),
        "{out}"
    );
    assert_eq!(names(&s, &[]), ["mclcext_shared"]);
    // --all with a label filter: only matching volumes.
    s.ok(&["volume", "prune", "-f", "--all", "--filter", "label=team=b"]);
    assert_eq!(names(&s, &["--filter", "label=team"]), ["mclcext_shared"]);
    let out = s.ok(&["volume", "prune", "-af", "--filter", "label=team=a"]);
    assert_eq!(
        out,
        "Deleted Volumes:\nmclcext_shared\n\nTotal reclaimed space: 5B\n"
    );
    assert!(names(&s, &[]).is_empty());
    let o = s.run(&["volume", "rm", "mclcext_shared"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such volume"), "{}", stderr(&o));
    s.ok(&["volume", "rm", "-f", "mclcext_shared"]);
    s.teardown();
}
