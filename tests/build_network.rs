//! The network of RUN steps (docs/build-exec.md, "Network"): by default
//! a bridge network of the build, made at the first uncached RUN,
//! masqueraded to the outside and removed when the build ends (also when
//! a RUN fails); `--network none` and `RUN --network=host|none`; no
//! network work at all for a cached build. "The internet" is a namespace
//! the test creates (tests/common/network.rs); nothing else is contacted.
//! Needs root and the test registry.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mc_e2e::network::{links_with_prefix, nft_table, Linked};

use mc_e2e::{describe as text, mc_ok as ok, sh_in as sh, stderr_text as stderr};

fn skip() -> bool {
    if !mc_e2e::is_root() {
        eprintln!("skipping: needs root");
        return true;
    }
    false
}

/// A build context holding only `dockerfile`.
fn context(dockerfile: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("mc-build-ctx-")
        .tempdir()
        .unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    d
}

/// `--explain image build ARGS… CONTEXT` (explain lines go to stderr).
fn build(root: &Path, args: &[&str], ctx: &Path) -> Output {
    let mut all = vec!["--explain", "image", "build"];
    all.extend_from_slice(args);
    all.push(ctx.to_str().unwrap());
    mc_e2e::mc(root, &all)
}

/// What the build's explain output says about its network.
#[derive(Debug, Default)]
struct Seen {
    network: Option<String>,
    bridge: Option<String>,
    /// The subnet's first three octets (`10.89.0.`).
    prefix: Option<String>,
    veths: Vec<String>,
}

fn seen(explain: &str) -> Seen {
    let mut s = Seen::default();
    for line in explain.lines() {
        if let Some(rest) = line.split("build: build network ").nth(1) {
            // `mcbuild-… (bridge mc-…, subnet 10.89.0.0/24) for RUN steps`
            let mut w = rest.split([' ', '(', ')', ',']).filter(|w| !w.is_empty());
            s.network = w.next().map(str::to_string);
            let words: Vec<&str> = w.collect();
            let after = |k: &str| {
                words
                    .iter()
                    .position(|x| *x == k)
                    .and_then(|i| words.get(i + 1))
                    .map(|x| x.to_string())
            };
            s.bridge = after("bridge");
            s.prefix = after("subnet").map(|n| {
                let ip = n.split('/').next().unwrap_or("");
                format!("{}.", ip.rsplit_once('.').map_or("", |x| x.0))
            });
        }
        if line.contains("RTM_NEWLINK mcv") {
            if let Some(v) = line
                .split_whitespace()
                .find(|w| w.starts_with("mcv"))
                .map(str::to_string)
            {
                s.veths.push(v);
            }
        }
    }
    s
}

/// Nothing of the build's network is left: no entry in the root's network
/// store or endpoints, no bridge or veth, no nft chain naming the bridge.
fn assert_network_gone(root: &Path, s: &Seen) {
    let entries = |dir: &str| -> Vec<String> {
        std::fs::read_dir(root.join(dir))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(entries("networks"), Vec::<String>::new(), "network entries");
    assert_eq!(
        entries("run/net/endpoints"),
        Vec::<String>::new(),
        "endpoint entries"
    );
    let bridge = s.bridge.as_deref().expect("a bridge was made");
    assert!(links_with_prefix(bridge).is_empty(), "bridge {bridge} left");
    assert!(!s.veths.is_empty(), "a veth was made");
    for v in &s.veths {
        assert!(links_with_prefix(v).is_empty(), "veth {v} left");
    }
    assert!(
        !nft_table().contains(bridge),
        "nft rules for {bridge} left:\n{}",
        nft_table()
    );
    let ls = ok(root, &["network", "ls"]);
    assert!(
        !String::from_utf8_lossy(&ls.stdout).contains("mcbuild-"),
        "{}",
        text(&ls)
    );
}

/// A one-connection-at-a-time HTTP server in the "internet" namespace:
/// answers every request with the client's address as the body.
struct WhoAmI {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WhoAmI {
    fn start(inet: &Linked, port: u16) -> WhoAmI {
        let addr = SocketAddr::from((inet.peer_ip, port));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = inet.ns.spawn(move || {
            let l = TcpListener::bind(addr).expect("bind in the fake internet");
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, peer)) => {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut buf = [0u8; 4096];
                        let _ = c.read(&mut buf);
                        let body = format!("{}\n", peer.ip());
                        let _ = write!(
                            c,
                            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("server started");
        WhoAmI {
            stop,
            addr,
            thread: Some(thread),
        }
    }
}

impl Drop for WhoAmI {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn run_reaches_the_outside_from_its_own_namespace_and_leaves_nothing() {
    if skip() {
        return;
    }
    let root = mc_e2e::temp_root();
    let r = root.path();
    let inet = Linked::new(131);
    let web = WhoAmI::start(&inet, 8080);
    let url = format!("http://{}/", web.addr);
    let ctx = context(&format!(
        "FROM busybox\n\
         RUN wget -qO /got {url} && cat /proc/net/dev > /netdev && ip -4 -o addr show eth0 > /addr\n\
         RUN --network=none cat /proc/net/dev > /none\n\
         RUN --network=host cat /proc/net/dev > /hostdev\n"
    ));
    let o = build(r, &["-t", "mc-bn-egress"], ctx.path());
    assert!(o.status.success(), "{}", text(&o));
    let s = seen(&stderr(&o));
    assert!(
        s.network
            .as_deref()
            .is_some_and(|n| n.starts_with("mcbuild-")),
        "{s:?}"
    );
    let prefix = s.prefix.clone().expect("subnet in the explain output");

    // Masqueraded: the server saw the host's address on its link.
    let got = sh(r, "mc-bn-egress", "cat /got");
    assert_eq!(got.trim(), inet.host_ip.to_string(), "source address");
    // Its own namespace: eth0 with an address of the build subnet, and
    // none of the host's links (the host end of the fake internet's link).
    let netdev = sh(r, "mc-bn-egress", "cat /netdev");
    assert!(netdev.contains("eth0:"), "{netdev}");
    assert!(
        !netdev.contains(&inet.host_if),
        "host links seen:\n{netdev}"
    );
    let addr = sh(r, "mc-bn-egress", "cat /addr");
    assert!(
        addr.contains(&format!("inet {prefix}")),
        "address in {prefix}x: {addr}"
    );
    // --network=none: loopback only; --network=host: the host's links.
    let none = sh(r, "mc-bn-egress", "cat /none");
    assert!(none.contains("lo:") && !none.contains("eth0:"), "{none}");
    let host = sh(r, "mc-bn-egress", "cat /hostdev");
    assert!(host.contains(&format!("{}:", inet.host_if)), "{host}");
    assert_network_gone(r, &s);

    // Cached: the same result, and no network work at all.
    let again = build(r, &["-t", "mc-bn-egress"], ctx.path());
    assert!(again.status.success(), "{}", text(&again));
    let e = stderr(&again);
    assert_eq!(e.matches("CACHED").count(), 3, "{e}");
    for word in ["build network", "netlink:", "nft:", "ipam:"] {
        assert!(!e.contains(word), "cached build did {word:?}:\n{e}");
    }

    // A failing RUN (after reaching out) removes the network as well.
    let bad = context(&format!(
        "FROM busybox\nRUN wget -qO /got {url} && cat /got && exit 3\n"
    ));
    let o = build(r, &["-t", "mc-bn-bad"], bad.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = stderr(&o);
    assert!(e.contains("exit code: 3"), "{e}");
    assert!(
        e.contains(&inet.host_ip.to_string()),
        "RUN reached out: {e}"
    );
    assert_network_gone(r, &seen(&e));
    drop(web);
}

#[test]
fn network_none_and_host_for_the_whole_build() {
    if skip() {
        return;
    }
    let root = mc_e2e::temp_root();
    let r = root.path();
    let ctx = context(
        "FROM busybox\nRUN cat /proc/net/dev > /dev.txt\nRUN --network=default ip -o link > /links\n",
    );
    // --network none: no eth0, and RUN --network=default still gets the bridge.
    let o = build(r, &["--network", "none", "-t", "mc-bn-none"], ctx.path());
    assert!(o.status.success(), "{}", text(&o));
    let dev = sh(r, "mc-bn-none", "cat /dev.txt");
    assert!(dev.contains("lo:") && !dev.contains("eth0"), "{dev}");
    let links = sh(r, "mc-bn-none", "cat /links");
    assert!(links.contains("eth0"), "{links}");
    assert_network_gone(r, &seen(&stderr(&o)));

    // The mode is part of a RUN's cache key (as in BuildKit): another
    // --network runs the step again; the same one is cached.
    let o = build(r, &["--network", "host", "-t", "mc-bn-host"], ctx.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(!stderr(&o).contains("CACHED"), "{}", stderr(&o));
    let dev = sh(r, "mc-bn-host", "cat /dev.txt");
    let lo_only = dev.lines().filter(|l| l.contains(':')).count() <= 1;
    assert!(!lo_only, "host links expected:\n{dev}");
    let o = build(r, &["--network", "none", "-t", "mc-bn-none"], ctx.path());
    assert_eq!(stderr(&o).matches("CACHED").count(), 2, "{}", text(&o));

    // A RUN with only `--network none` builds without any network.
    let quiet = context("FROM busybox\nRUN ip -o link > /links\n");
    let o = build(r, &["--network", "none", "-t", "mc-bn-quiet"], quiet.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(!stderr(&o).contains("build network"), "{}", stderr(&o));
    let links = sh(r, "mc-bn-quiet", "cat /links");
    assert!(!links.contains("eth0"), "{links}");

    // Bad values: one clear line, nothing built.
    let o = build(r, &["--network", "bridge", "-t", "mc-bn-x"], ctx.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains("invalid --network \"bridge\": use default, host or none"),
        "{}",
        text(&o)
    );
}
