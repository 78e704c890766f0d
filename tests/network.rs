//! End-to-end networking: the mc-net crate against network namespaces the
//! tests create (`mcns-…`), and the `network` commands. Traffic only goes to
//! loopback and to the tests' own namespaces (198.18.x.0/30 links, the
//! networks' subnets). Needs root, `ip` and `nft`; the embedded DNS server
//! runs as the real binary (`minicompose __internal dns`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

use mc_e2e::network::*;
use mc_net::{AttachRequest, CreateRequest, DnsLauncher, Endpoint, NetnsRef, Networks};

fn skip() -> bool {
    if !mc_e2e::is_root() {
        eprintln!("skipping: needs root");
        return true;
    }
    false
}

/// A root with its networks; everything it made is removed on drop.
struct Env {
    _root: mc_e2e::TestRoot,
    nets: Networks,
}

impl Env {
    fn new() -> Env {
        let root = mc_e2e::temp_root();
        // The DNS servers the tests start inherit this: they never forward
        // to the host's real resolvers, only to the fake one on loopback.
        std::env::set_var("MINICOMPOSE_DNS_UPSTREAM", upstream().to_string());
        let nets = Networks::open(root.path())
            .unwrap()
            .with_dns_launcher(DnsLauncher {
                program: mc_e2e::bin(),
                args: vec![
                    "--root".into(),
                    root.path().into(),
                    "__internal".into(),
                    "dns".into(),
                ],
            });
        Env { _root: root, nets }
    }

    fn create(&self, name: &str, internal: bool) -> mc_net::Network {
        self.nets
            .create(&CreateRequest {
                name: name.into(),
                internal,
                ..Default::default()
            })
            .expect("create network")
    }

    fn attach(
        &self,
        id: &str,
        net: &str,
        ns: &Netns,
        aliases: &[&str],
        ports: &[String],
    ) -> Endpoint {
        self.nets
            .attach(&self.req(id, net, ns, aliases, ports))
            .expect("attach")
    }

    fn req(
        &self,
        id: &str,
        net: &str,
        ns: &Netns,
        aliases: &[&str],
        ports: &[String],
    ) -> AttachRequest {
        AttachRequest {
            container_id: format!("{id}0123456789abcdef"),
            container_name: id.into(),
            hostname: None,
            network: net.into(),
            interface: "eth0".into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            ip: None,
            ports: ports
                .iter()
                .flat_map(|p| mc_net::ports::parse(p).unwrap())
                .collect(),
            dns_servers: vec![],
            netns: NetnsRef::from_path(&ns.path()).unwrap(),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(eps) = self.nets.store().endpoints() {
            for ep in eps {
                let _ = self.nets.detach(&ep.container_id);
            }
        }
        if let Ok(list) = self.nets.list() {
            for n in list {
                let _ = self.nets.remove(&n.name);
            }
        }
    }
}

/// The fake upstream resolver shared by every test of this process.
fn upstream() -> SocketAddr {
    static UP: std::sync::OnceLock<FakeUpstream> = std::sync::OnceLock::new();
    UP.get_or_init(|| FakeUpstream::start(FAKE_ANSWER)).addr
}

const FAKE_ANSWER: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 9);

fn sock(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

fn dns_in(ns: &Netns, server: SocketAddr, name: &'static str) -> Option<DnsReply> {
    ns.run(move || dns_a(server, name))
}

#[test]
fn names_ports_egress_and_isolation() {
    if skip() {
        return;
    }
    let env = Env::new();
    let a = env.create("front", false);
    let b = env.create("back", false);
    let internal = env.create("sealed", true);
    assert_ne!(a.subnet, b.subnet);

    let (ns1, ns2, ns3, ns4) = (Netns::new(), Netns::new(), Netns::new(), Netns::new());
    let tport = free_port();
    let uport = free_port();
    let ep1 = env.attach("web", "front", &ns1, &[], &[]);
    let ep2 = env.attach(
        "db",
        "front",
        &ns2,
        &["store"],
        &[format!("{tport}:8080"), format!("{uport}:9090/udp")],
    );
    let ep3 = env.attach("other", "back", &ns3, &[], &[]);
    let _ep4 = env.attach("hidden", "sealed", &ns4, &[], &[]);
    assert_eq!(ep1.ip, Ipv4Addr::from(u32::from(a.gateway) + 1));
    let gw_a = sock(a.gateway, 53);

    // Names and aliases on the same network, over UDP and TCP.
    let r = dns_in(&ns1, gw_a, "db").expect("dns answer");
    assert_eq!(
        r,
        DnsReply {
            rcode: 0,
            addrs: vec![ep2.ip]
        }
    );
    assert_eq!(dns_in(&ns1, gw_a, "store").unwrap().addrs, vec![ep2.ip]);
    assert_eq!(dns_in(&ns2, gw_a, "WEB.").unwrap().addrs, vec![ep1.ip]);
    assert_eq!(
        ns1.run(move || dns_a_tcp(gw_a, "store")).unwrap().addrs,
        vec![ep2.ip]
    );
    // Other names are forwarded (to the fake upstream on loopback).
    assert_eq!(
        dns_in(&ns1, gw_a, "example.org").unwrap().addrs,
        vec![FAKE_ANSWER]
    );
    // A container on another network gets NXDOMAIN.
    let gw_b = sock(b.gateway, 53);
    assert_eq!(
        dns_in(&ns3, gw_b, "db").unwrap(),
        DnsReply {
            rcode: 3,
            addrs: vec![]
        }
    );
    assert_eq!(dns_in(&ns3, gw_b, "other").unwrap().addrs, vec![ep3.ip]);

    // TCP between containers of one network; none across networks.
    let echo = PeerEcho::tcp(&ns2, "0.0.0.0:8080".parse().unwrap());
    let to_db = sock(ep2.ip, 8080);
    let seen = ns1.run(move || tcp_ask(to_db)).expect("web reaches db");
    assert!(seen.starts_with(&format!("{}:", ep1.ip)), "{seen}");
    assert_eq!(
        ns3.run(move || tcp_ask(to_db)),
        None,
        "another network must not reach db"
    );

    // Published TCP port: from the host on 127.0.0.1 and its own address.
    let own = host_address();
    assert!(
        tcp_ask(sock(Ipv4Addr::LOCALHOST, tport)).is_some(),
        "127.0.0.1:{tport}"
    );
    assert!(tcp_ask(sock(own, tport)).is_some(), "{own}:{tport}");
    // From an outside client: its source address reaches the container.
    let client = Linked::new(101);
    let via = sock(client.host_ip, tport);
    let seen = client
        .ns
        .run(move || tcp_ask(via))
        .expect("outside client reaches the published port");
    assert!(
        seen.starts_with(&format!("{}:", client.peer_ip)),
        "source address kept: {seen}"
    );
    // Hairpin: a container of the same network through the host's address.
    let hair = sock(own, tport);
    assert!(ns1.run(move || tcp_ask(hair)).is_some(), "hairpin");
    drop(echo);

    // Published UDP port.
    let uecho = PeerEcho::udp(&ns2, "0.0.0.0:9090".parse().unwrap());
    assert!(
        udp_ask(sock(Ipv4Addr::LOCALHOST, uport)).is_some(),
        "udp via 127.0.0.1"
    );
    let uvia = sock(client.host_ip, uport);
    let seen = client
        .ns
        .run(move || udp_ask(uvia))
        .expect("udp from outside");
    assert!(seen.starts_with(&format!("{}:", client.peer_ip)), "{seen}");
    drop(uecho);

    // Egress to "the internet" (a namespace), masqueraded; none when internal.
    let inet = Linked::new(102);
    let web = PeerEcho::tcp(&inet.ns, sock(inet.peer_ip, 80));
    let target = sock(inet.peer_ip, 80);
    let seen = ns1.run(move || tcp_ask(target)).expect("egress works");
    assert!(
        seen.starts_with(&format!("{}:", inet.host_ip)),
        "masqueraded: {seen}"
    );
    assert_eq!(
        ns4.run(move || tcp_ask(target)),
        None,
        "internal network has no egress"
    );
    drop(web);

    // Removal: names and rules go away.
    assert_eq!(env.nets.ports(&ep2.container_id).unwrap().len(), 2);
    env.nets.detach(&ep2.container_id).unwrap();
    let after = dns_in(&ns1, gw_a, "db");
    let log = std::fs::read_to_string(env.nets.store().dns_log()).unwrap_or_default();
    assert_eq!(after.map(|r| r.rcode), Some(3), "dns log:\n{log}");
    assert!(!nft_table().contains(&format!("dport {tport} ")));
    assert!(links_with_prefix(&ep2.host_veth).is_empty());
    let _ = internal;
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    if skip() {
        return;
    }
    let env = Env::new();
    let n = env.create("one", false);
    let again = env.nets.create(&CreateRequest {
        name: "one".into(),
        ..Default::default()
    });
    assert!(again.unwrap_err().to_string().contains("already exists"));
    let overlap = env.nets.create(&CreateRequest {
        name: "two".into(),
        subnet: Some(n.subnet),
        ..Default::default()
    });
    let e = overlap.unwrap_err();
    assert!(
        e.is_user_error() && e.to_string().contains("overlaps"),
        "{e}"
    );
    assert!(env.nets.get("two").is_err());
    assert!(env
        .nets
        .create(&CreateRequest {
            name: "bad name".into(),
            ..Default::default()
        })
        .is_err());

    let ns = Netns::new();
    let veth = mc_net::host_veth_name(&env.req("c", "one", &ns, &[], &[]).container_id, &n.id);
    let unknown = env.nets.attach(&env.req("c", "nope", &ns, &[], &[]));
    assert!(unknown
        .unwrap_err()
        .to_string()
        .contains("network nope not found"));

    let mut outside = env.req("c", "one", &ns, &[], &[]);
    outside.ip = Some(Ipv4Addr::new(10, 250, 0, 9));
    let e = env.nets.attach(&outside).unwrap_err();
    assert!(
        e.is_user_error() && e.to_string().contains("not a usable address"),
        "{e}"
    );

    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let e = env
        .nets
        .attach(&env.req("c", "one", &ns, &[], &[format!("{port}:80")]))
        .unwrap_err();
    assert!(
        e.is_user_error() && e.to_string().contains(&format!("port {port}/tcp")),
        "{e}"
    );
    assert!(links_with_prefix(&veth).is_empty(), "no veth left behind");
    assert!(env.nets.endpoints().unwrap().is_empty());

    // Static IP honoured, then refused twice.
    let mut fixed = env.req("c", "one", &ns, &[], &[]);
    let want = Ipv4Addr::from(u32::from(n.gateway) + 10);
    fixed.ip = Some(want);
    assert_eq!(env.nets.attach(&fixed).unwrap().ip, want);
    let ns2 = Netns::new();
    let mut dup = env.req("d", "one", &ns2, &[], &[]);
    dup.ip = Some(want);
    assert!(env
        .nets
        .attach(&dup)
        .unwrap_err()
        .to_string()
        .contains("already in use"));
    // A network in use cannot be removed.
    let e = env.nets.remove("one").unwrap_err();
    assert!(
        e.is_user_error() && e.to_string().contains("active endpoints"),
        "{e}"
    );
    let inside = ns.run(|| {
        let out = Command::new("ip")
            .args(["-4", "-o", "addr", "show", "dev", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    });
    assert!(inside.contains(&format!("{want}/")), "{inside}");
}

#[test]
fn hundred_cycles_and_killed_owner_leak_nothing() {
    if skip() {
        return;
    }
    let env = Env::new();
    let net = env.create("cycle", false);
    let ns = Netns::new();
    let start = std::time::Instant::now();
    for i in 0..100 {
        let port = format!(
            "{}:80",
            20000 + (std::process::id() % 5000) as u16 + i as u16 % 7
        );
        let ep = env.attach("cyc", "cycle", &ns, &["alias"], &[port]);
        assert_eq!(
            ep.ip,
            Ipv4Addr::from(u32::from(net.gateway) + 1),
            "cycle {i} reuses the address"
        );
        env.nets.detach(&ep.container_id).unwrap();
        assert!(
            links_with_prefix(&ep.host_veth).is_empty(),
            "cycle {i} left its veth"
        );
    }
    eprintln!("100 attach/detach cycles: {:?}", start.elapsed());
    assert!(!nft_table().contains(&net.bridge) || nft_table().contains("masquerade"));
    assert!(env.nets.store().endpoints().unwrap().is_empty());

    // The DNS server is killed -9: the next command starts a new one.
    let ns_a = Netns::new();
    let ns_b = Netns::new();
    env.attach("keep", "cycle", &ns_a, &[], &[]);
    let gone = env.attach("gone", "cycle", &ns_b, &[], &[]);
    let pid_of_dns = || {
        let out = Command::new("pgrep")
            .args([
                "-f",
                &format!("{} __internal dns", env.nets.store().root().display()),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let first = pid_of_dns();
    assert!(!first.is_empty(), "dns server runs");
    unsafe { libc::kill(first.parse().unwrap(), libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(100));
    env.nets.detach(&gone.container_id).unwrap();
    let gw = sock(net.gateway, 53);
    assert_eq!(
        ns_a.run(move || dns_a(gw, "keep")).map(|r| r.rcode),
        Some(0),
        "DNS back after kill -9"
    );
    assert_ne!(pid_of_dns(), first);
    env.nets.detach("keep0123456789abcdef").unwrap();

    // The namespace's owner is killed -9: the next command cleans up.
    let mut child = Command::new("unshare")
        .args(["-n", "sleep", "600"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = child.id();
    let mut req = env.req(
        "victim",
        "cycle",
        &ns,
        &[],
        &["127.0.0.1:23456:80".to_string()],
    );
    req.netns = NetnsRef::from_pid(pid).unwrap();
    let ep = env.nets.attach(&req).unwrap();
    assert!(nft_table().contains("dport 23456 "));
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = child.wait();
    std::thread::sleep(std::time::Duration::from_millis(100));
    env.create("next", false);
    assert!(
        env.nets.store().endpoints().unwrap().is_empty(),
        "stale endpoint removed"
    );
    assert!(!nft_table().contains("dport 23456 "), "its rules removed");
    assert!(links_with_prefix(&ep.host_veth).is_empty());
}

fn cli(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(mc_e2e::bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run minicompose")
}

#[test]
fn network_commands() {
    if skip() {
        return;
    }
    let root = mc_e2e::temp_root();
    let r = root.path();
    let out = cli(
        r,
        &[
            "network",
            "create",
            "--subnet",
            "10.231.7.0/24",
            "--internal",
            "mcnet1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 64);
    let bridge = format!("mc-{}", &id[..8]);
    assert_eq!(links_with_prefix(&bridge), vec![bridge.clone()]);

    let ls = cli(r, &["network", "ls"]);
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(text.starts_with("NETWORK ID"), "{text}");
    assert!(
        text.contains("mcnet1") && text.contains(&id[..12]),
        "{text}"
    );

    let insp = cli(r, &["network", "inspect", "mcnet1"]);
    let v: serde_json::Value = serde_json::from_slice(&insp.stdout).unwrap();
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "10.231.7.0/24");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "10.231.7.1");
    assert_eq!(v[0]["Internal"], true);

    // Bad input: one line, exit 1.
    for args in [
        &["network", "create", "--subnet", "10.231.7.128/25", "mcnet2"][..],
        &["network", "create", "--subnet", "banana", "mcnet2"][..],
        &["network", "create", "mcnet1"][..],
        &["network", "rm", "nosuchnet"][..],
        &["network", "inspect", "nosuchnet"][..],
    ] {
        let out = cli(r, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }

    let rm = cli(r, &["network", "rm", "mcnet1"]);
    assert!(rm.status.success());
    assert!(links_with_prefix(&bridge).is_empty());
    let ls = cli(r, &["network", "ls", "-q"]);
    assert!(String::from_utf8_lossy(&ls.stdout).trim().is_empty());
}

/// A busybox root filesystem for `container run --rootfs` (busybox-static).
fn busybox_rootfs() -> Option<tempfile::TempDir> {
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let dir = tempfile::Builder::new()
        .prefix("mc-test-rootfs-")
        .tempdir()
        .ok()?;
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(dir.path().join(d)).ok()?;
    }
    std::fs::copy(bb, dir.path().join("bin/busybox")).ok()?;
    for tool in ["sh", "nc", "nslookup", "sleep", "cat", "echo"] {
        std::os::unix::fs::symlink("busybox", dir.path().join("bin").join(tool)).ok()?;
    }
    Some(dir)
}

#[test]
fn containers_resolve_each_other_and_talk() {
    if skip() {
        return;
    }
    let Some(rootfs) = busybox_rootfs() else {
        eprintln!("skipping: busybox-static not installed");
        return;
    };
    std::env::set_var("MINICOMPOSE_DNS_UPSTREAM", upstream().to_string());
    let root = mc_e2e::temp_root();
    let r = root.path();
    let fs = rootfs.path().to_str().unwrap();
    for net in ["mcfront", "mcback"] {
        assert!(cli(r, &["network", "create", net]).status.success());
    }
    let server = cli(
        r,
        &[
            "container",
            "run",
            "-d",
            "--rootfs",
            "--name",
            "srv",
            "--network",
            "mcfront",
            "--network-alias",
            "api",
            fs,
            "sh",
            "-c",
            "while true; do echo pong | nc -l -p 7000; done",
        ],
    );
    assert!(
        server.status.success(),
        "{}",
        String::from_utf8_lossy(&server.stderr)
    );
    let ask = |net: &str, script: &str| {
        let out = cli(
            r,
            &[
                "container",
                "run",
                "--rm",
                "--rootfs",
                "--network",
                net,
                fs,
                "sh",
                "-c",
                script,
            ],
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = ask(
        "mcfront",
        // The server's `nc -l` takes a moment to listen again after a
        // connection: the second client retries.
        "nslookup api && nslookup srv && echo | nc srv 7000 && \
         for i in 1 2 3 4 5; do echo | nc api 7000 && break; sleep 0.1; done",
    );
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.matches("pong").count(), 2, "{text}");
    let (code, text) = ask("mcback", "nslookup srv");
    assert_ne!(
        code,
        Some(0),
        "another network must not resolve srv: {text}"
    );
    let pubd = cli(
        r,
        &[
            "container",
            "run",
            "-d",
            "--rootfs",
            "--name",
            "pub",
            "--network",
            "mcback",
            "-p",
            "127.0.0.1:18765:80",
            "-p",
            "18766:53/udp",
            fs,
            "sleep",
            "60",
        ],
    );
    assert!(
        pubd.status.success(),
        "{}",
        String::from_utf8_lossy(&pubd.stderr)
    );
    let port = cli(r, &["container", "port", "pub"]);
    assert_eq!(
        String::from_utf8_lossy(&port.stdout),
        "80/tcp -> 127.0.0.1:18765\n53/udp -> 0.0.0.0:18766\n"
    );
    let taken = cli(
        r,
        &[
            "container",
            "run",
            "--rm",
            "--rootfs",
            "--network",
            "mcback",
            "-p",
            "18765:81",
            fs,
            "true",
        ],
    );
    assert_eq!(taken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("port 18765/tcp"));
    let _ = cli(r, &["container", "rm", "-f", "srv", "pub"]);
    for net in ["mcfront", "mcback"] {
        let out = cli(r, &["network", "rm", net]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn userland_proxy_serves_ports_without_nft() {
    if skip() {
        return;
    }
    let env = Env::new();
    // The switch the crate reads besides a missing `nft`.
    std::fs::write(env.nets.store().run_dir().join("userland-proxy"), b"").unwrap();
    env.create("proxied", false);
    let ns = Netns::new();
    let (tport, uport) = (free_port(), free_port());
    let ep = env.attach(
        "px",
        "proxied",
        &ns,
        &[],
        &[
            format!("127.0.0.1:{tport}:8080"),
            format!("{uport}:9090/udp"),
        ],
    );
    assert!(
        !nft_table().contains(&format!("dport {tport} ")),
        "no nft rule in proxy mode"
    );
    let echo = PeerEcho::tcp(&ns, "0.0.0.0:8080".parse().unwrap());
    let uecho = PeerEcho::udp(&ns, "0.0.0.0:9090".parse().unwrap());
    let seen = tcp_ask(sock(Ipv4Addr::LOCALHOST, tport)).expect("tcp through the proxy");
    assert!(
        !seen.starts_with("127.0.0.1:"),
        "the proxy connects from the host side: {seen}"
    );
    assert!(
        udp_ask(sock(Ipv4Addr::LOCALHOST, uport)).is_some(),
        "udp through the proxy"
    );
    drop((echo, uecho));
    env.nets.detach(&ep.container_id).unwrap();
    // The proxy let go of the port.
    assert!(std::net::TcpListener::bind(("127.0.0.1", tport)).is_ok());
}

/// This root's chains as nft prints them with rule handles (`-a`): a chain
/// rewritten with the same rules still shows new handles.
fn root_chains(root: &Path) -> String {
    let key = mc_net::firewall::root_key(root);
    ["pre", "out", "post", "fwd", "ports"]
        .iter()
        .map(|c| {
            let out = Command::new("nft")
                .args(["-a", "list", "chain", "inet", "minicompose"])
                .arg(format!("{c}-{key}"))
                .output()
                .expect("nft");
            assert!(out.status.success(), "chain {c}-{key} exists");
            String::from_utf8_lossy(&out.stdout).to_string()
        })
        .collect()
}

#[test]
fn attach_without_ports_leaves_rules_alone() {
    if skip() {
        return;
    }
    let env = Env::new();
    env.create("steady", false);
    let root = env.nets.store().root().to_path_buf();
    let (ns1, ns2, ns3) = (Netns::new(), Netns::new(), Netns::new());
    let tport = free_port();
    let ep1 = env.attach("pub", "steady", &ns1, &[], &[format!("{tport}:8080")]);
    let before = root_chains(&root);
    assert!(before.contains(&format!("dport {tport} dnat ip to {}:8080", ep1.ip)));

    // Containers without ports come and go: not one rule is rewritten.
    let ep2 = env.attach("quiet", "steady", &ns2, &[], &[]);
    assert_eq!(root_chains(&root), before, "attach without ports");
    env.nets.detach(&ep2.container_id).unwrap();
    assert_eq!(root_chains(&root), before, "detach without ports");

    // A container with a port: only the ports chain changes, and back.
    let other = free_port();
    let ep3 = env.attach("more", "steady", &ns3, &[], &[format!("{other}:8080")]);
    let with = root_chains(&root);
    assert!(with.contains(&format!("dport {other} dnat ip to {}:8080", ep3.ip)));
    let base = |s: &str| {
        s.split("chain ports-")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(base(&with), base(&before), "base chains untouched");
    env.nets.detach(&ep3.container_id).unwrap();
    let after = root_chains(&root);
    assert!(!after.contains(&format!("dport {other} ")));
    assert!(after.contains(&format!("dport {tport} dnat ip to {}:8080", ep1.ip)));

    // The first container's port still works, from the host and hairpin.
    let echo = PeerEcho::tcp(&ns1, "0.0.0.0:8080".parse().unwrap());
    assert!(
        tcp_ask(sock(Ipv4Addr::LOCALHOST, tport)).is_some(),
        "127.0.0.1:{tport}"
    );
    let own = sock(host_address(), tport);
    assert!(tcp_ask(own).is_some(), "host address");
    let ep2 = env.attach("quiet", "steady", &ns2, &[], &[]);
    assert!(ns2.run(move || tcp_ask(own)).is_some(), "hairpin");
    assert_eq!(root_chains(&root), after, "attach without ports, again");
    drop(echo);
    env.nets.detach(&ep2.container_id).unwrap();
}
