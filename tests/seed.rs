//! The seed stack (examples/hit-counter, verbatim) through the tutorial
//! (/work/shared/seed/docker-compose-tutorial.md): `up` in the foreground
//! builds the web image and shows both services' colored logs; localhost:8000
//! answers 1, 2, 3; `up -d`; `ps` shows both Up with 0.0.0.0:8000->5000/tcp;
//! `top`; `logs -f` follows; the counter survives `stop`/`start` of web; `down`
//! leaves nothing behind. Port 8000 is the seed's own: it must be free.
//! Needs root and the test registry (scripts/test.sh).

use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::time::{Duration, Instant};

use mc_e2e::lifecycle::{http_get, Stack};
use mc_e2e::pty::{pty, read_until};

const PORT: u16 = 8000;

fn hits(n: u32) -> String {
    format!("Hi! I have been called {n} times")
}

fn get() -> String {
    http_get(PORT, Duration::from_secs(60))
        .expect("localhost:8000 answers")
        .trim()
        .to_string()
}

#[test]
fn tutorial_end_to_end() {
    if !mc_e2e::is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    assert!(
        std::net::TcpListener::bind(("0.0.0.0", PORT)).is_ok(),
        "port {PORT} is taken: the seed publishes 8000:5000; free it first"
    );
    // tests/fixtures/../../examples/hit-counter: the seed as the repository ships it.
    let mut s = Stack::new("../../examples/hit-counter", "mcseed");

    // `docker compose up`: builds web, pulls redis, attaches to both.
    let (master, slave) = pty();
    let mut cmd = s.command(&["up"]);
    cmd.env_remove("NO_COLOR")
        .stdin(slave.try_clone().unwrap())
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
        read_until(&master, &mut out, "Attaching to", Duration::from_secs(180)),
        "{out}"
    );
    assert!(
        out.contains("RUN pip install -r requirements.txt"),
        "the web image is built: {out}"
    );
    for n in 1..=3 {
        assert_eq!(get(), hits(n), "{out}");
    }
    assert!(
        read_until(&master, &mut out, "GET / HTTP", Duration::from_secs(10)),
        "{out}"
    );
    read_until(&master, &mut out, "Ready to accept", Duration::from_secs(2));
    // Both services' logs, each prefix in its color (cyan, yellow, …) as compose does.
    for name in ["mcseed-redis-1", "mcseed-web-1"] {
        assert!(
            out.lines()
                .any(|l| l.contains("\x1b[") && l.contains(name) && l.contains(" |")),
            "colored {name} logs: {out}"
        );
    }
    // SAFETY: ^C on the pty master.
    unsafe { libc::write(master.as_raw_fd(), b"\x03".as_ptr().cast(), 1) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        read_until(&master, &mut out, "\u{0}", Duration::from_millis(200));
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "up did not stop on ^C: {out}");
    };
    assert_eq!(status.code(), Some(130), "{out}");

    // `docker compose up -d`, `ps`.
    s.ok(&["up", "-d"]);
    let first = get();
    assert!(first.starts_with("Hi! I have been called "), "{first}");
    let table = s.ok(&["ps"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for svc in ["mcseed-redis-1", "mcseed-web-1"] {
        let l = lines.iter().find(|l| l.starts_with(svc)).expect(svc);
        assert!(l.contains(" Up "), "{table}");
    }
    let web = lines
        .iter()
        .find(|l| l.starts_with("mcseed-web-1"))
        .unwrap();
    assert!(web.contains("0.0.0.0:8000->5000/tcp"), "{table}");
    assert!(
        web.contains("mcseed-web"),
        "image named <project>-<service>: {table}"
    );

    // `top`.
    let top = s.ok(&["top"]);
    assert!(
        top.contains("redis-server") && top.contains("python app.py"),
        "{top}"
    );

    // `logs -f` follows new lines.
    let mut follow = s
        .command(&["logs", "-f", "web"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let n: u32 = get()
        .trim_start_matches("Hi! I have been called ")
        .trim_end_matches(" times")
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: our own child.
    unsafe { libc::kill(follow.id() as i32, libc::SIGINT) };
    let mut followed = String::new();
    follow
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut followed)
        .unwrap();
    let _ = follow.wait();
    assert!(
        followed.matches("\"GET / HTTP/1.0\" 200").count() >= 2,
        "logs -f shows the new request: {followed}"
    );

    // The count lives in redis: it survives web's stop/start.
    s.ok(&["stop", "web"]);
    s.ok(&["start", "web"]);
    assert_eq!(get(), hits(n + 1));

    // `build`: the compose command; nothing changed, so every step is cached.
    let o = s.run(&["build"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("CACHED").count(), 2, "{err}");
    assert!(
        err.contains("naming to docker.io/library/mcseed-web:latest"),
        "{err}"
    );

    // `down`: nothing left (containers, network, mounts, cgroups, rules, processes).
    s.teardown();
    assert!(http_get(PORT, Duration::from_millis(300)).is_none());
}
