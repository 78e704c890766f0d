//! Helpers for the networking tests: throwaway network namespaces
//! (`mcns-…`), veth links to play "outside client" and "internet", servers
//! and clients running inside a namespace, a tiny DNS client. Everything is
//! removed on drop, also when a test fails.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Run `ip` with `args`; panics with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{n:x}", std::process::id() & 0xfffff)
}

/// A network namespace made with `ip netns add mcns-…`, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = unique("mcns-");
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Run `f` on a thread that joined this namespace (sockets it creates
    /// stay in the namespace).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .expect("netns thread panicked")
    }

    /// Spawn a long-running closure in the namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let path = self.path();
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
    }
}

impl Default for Netns {
    fn default() -> Self {
        Netns::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn enter(path: &Path) {
    let f = std::fs::File::open(path).expect("open netns");
    let rc = unsafe {
        libc::setns(
            std::os::fd::AsRawFd::as_raw_fd(&f.as_fd()),
            libc::CLONE_NEWNET,
        )
    };
    assert_eq!(rc, 0, "setns {}", path.display());
}

/// A namespace wired to the host by a /30 veth link: host side `host_ip`,
/// namespace side `peer_ip`, default route via the host. Plays an outside
/// client or "the internet". The host end is `mcvt…`; removed on drop.
pub struct Linked {
    pub ns: Netns,
    pub host_if: String,
    pub host_ip: Ipv4Addr,
    pub peer_ip: Ipv4Addr,
}

impl Linked {
    /// `third` picks 198.18.<third>.0/30 (RFC 2544 benchmark space).
    pub fn new(third: u8) -> Linked {
        let ns = Netns::new();
        let host_if = unique("mcvt");
        let host_ip = Ipv4Addr::new(198, 18, third, 1);
        let peer_ip = Ipv4Addr::new(198, 18, third, 2);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{peer_ip}/30"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns.name, "link", "set", "eth0", "up"]);
        ip(&[
            "-n",
            &ns.name,
            "route",
            "add",
            "default",
            "via",
            &host_ip.to_string(),
        ]);
        Linked {
            ns,
            host_if,
            host_ip,
            peer_ip,
        }
    }
}

impl Drop for Linked {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
    }
}

/// A TCP server that answers each connection with the peer's address
/// (`ip:port\n`) and closes. Stops on drop.
pub struct PeerEcho {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PeerEcho {
    pub fn tcp(ns: &Netns, bind: SocketAddr) -> PeerEcho {
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = ns.spawn(move || {
            let l = TcpListener::bind(bind).expect("bind echo");
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            while !s2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, peer)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.write_all(format!("{peer}\n").as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        rx.recv().expect("echo server started");
        PeerEcho {
            stop,
            thread: Some(thread),
        }
    }

    pub fn udp(ns: &Netns, bind: SocketAddr) -> PeerEcho {
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = ns.spawn(move || {
            let s = UdpSocket::bind(bind).expect("bind udp echo");
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 512];
            while !s2.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(format!("{peer}\n").as_bytes(), peer);
                }
            }
        });
        rx.recv().expect("udp echo started");
        PeerEcho {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PeerEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect over TCP and read the echo server's line (None: unreachable).
pub fn tcp_ask(addr: SocketAddr) -> Option<String> {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_millis(1500)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    Some(s.trim().to_string())
}

/// One UDP round trip to the echo server (None: no answer).
pub fn udp_ask(addr: SocketAddr) -> Option<String> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(1500))).ok()?;
    s.send_to(b"hi", addr).ok()?;
    let mut buf = [0u8; 512];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// DNS answer: response code and the A records.
#[derive(Debug, PartialEq, Eq)]
pub struct DnsReply {
    pub rcode: u8,
    pub addrs: Vec<Ipv4Addr>,
}

/// Build a DNS query for `name`, type `qtype` (1 = A).
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// Parse the rcode and A records of a reply to a single-question query.
pub fn dns_parse(r: &[u8]) -> Option<DnsReply> {
    if r.len() < 12 {
        return None;
    }
    let rcode = r[3] & 0x0f;
    let ancount = u16::from_be_bytes([r[6], r[7]]);
    let mut i = 12;
    while r.get(i).copied()? != 0 {
        i += 1 + r[i] as usize;
    }
    i += 5;
    let mut addrs = Vec::new();
    for _ in 0..ancount {
        // name: pointer (2 bytes) or labels
        if r.get(i)? & 0xc0 == 0xc0 {
            i += 2;
        } else {
            while r.get(i).copied()? != 0 {
                i += 1 + r[i] as usize;
            }
            i += 1;
        }
        let t = u16::from_be_bytes([*r.get(i)?, *r.get(i + 1)?]);
        let len = u16::from_be_bytes([*r.get(i + 8)?, *r.get(i + 9)?]) as usize;
        let data = r.get(i + 10..i + 10 + len)?;
        if t == 1 && len == 4 {
            addrs.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        i += 10 + len;
    }
    Some(DnsReply { rcode, addrs })
}

/// Ask `server` (UDP) for the A records of `name`.
pub fn dns_a(server: SocketAddr, name: &str) -> Option<DnsReply> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.send_to(&dns_query(0x1234, name, 1), server).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    dns_parse(&buf[..n])
}

/// Same over TCP.
pub fn dns_a_tcp(server: SocketAddr, name: &str) -> Option<DnsReply> {
    let mut c = TcpStream::connect_timeout(&server, Duration::from_secs(2)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let q = dns_query(0x4321, name, 1);
    c.write_all(&(q.len() as u16).to_be_bytes()).ok()?;
    c.write_all(&q).ok()?;
    let mut len = [0u8; 2];
    c.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    c.read_exact(&mut buf).ok()?;
    dns_parse(&buf)
}

/// A fake upstream resolver on 127.0.0.1 answering every A question with
/// `answer`, so forwarding is tested without any outside address.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeUpstream {
    pub fn start(answer: Ipv4Addr) -> FakeUpstream {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind fake upstream");
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let addr = s.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s2.load(Ordering::Relaxed) {
                let Ok((n, peer)) = s.recv_from(&mut buf) else {
                    continue;
                };
                let q = &buf[..n];
                let mut r = q.to_vec();
                r[2] = 0x81;
                r[3] = 0x80;
                r[6] = 0;
                r[7] = 1;
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&answer.octets());
                let _ = s.send_to(&r, peer);
            }
        });
        FakeUpstream {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Host links whose name starts with `prefix` (for leak checks).
pub fn links_with_prefix(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// `nft list table inet minicompose` (empty when absent).
pub fn nft_table() -> String {
    let out = Command::new("nft")
        .args(["list", "table", "inet", "minicompose"])
        .output()
        .expect("nft");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A free port on 127.0.0.1 (tcp and udp) at the time of asking.
pub fn free_port() -> u16 {
    loop {
        let t = TcpListener::bind("0.0.0.0:0").unwrap();
        let p = t.local_addr().unwrap().port();
        if UdpSocket::bind(("0.0.0.0", p)).is_ok() {
            return p;
        }
    }
}

/// The host's first global IPv4 address (its "own address").
pub fn host_address() -> Ipv4Addr {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains(" mc-") && !l.contains(" mcvt"))
        .find_map(|l| l.split_whitespace().nth(3)?.split('/').next()?.parse().ok())
        .expect("host has a global IPv4 address")
}
