//! The server process: control socket, per-gateway UDP/TCP listeners,
//! periodic reload, exit when idle.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::message::{handle, servfail, Outcome};
use super::records::{default_upstreams, Records};
use crate::lock::NetLock;
use crate::state::Store;
use crate::Error;

type Shared = Arc<RwLock<Arc<Records>>>;

/// One gateway's sockets: the UDP thread (stopped through the flag) and
/// the TCP accept task.
struct Listener {
    stop: Arc<AtomicBool>,
    /// The UDP socket, to wake the thread blocked on it when closing.
    udp: std::net::UdpSocket,
    tcp: JoinHandle<()>,
}

impl Listener {
    /// Release the address now, not at the thread's next read timeout:
    /// the same gateway may come back at once on a network of another root
    /// (its subnet is free again), whose server must be able to bind it.
    fn close(&self) {
        use std::os::fd::AsRawFd as _;
        self.stop.store(true, Ordering::Relaxed);
        // On an unconnected UDP socket this reports ENOTCONN but still
        // wakes the blocked recvfrom (Linux), so the thread exits and drops
        // the socket.
        // SAFETY: plain syscall on a socket we own.
        unsafe { libc::shutdown(self.udp.as_raw_fd(), libc::SHUT_RDWR) };
        self.tcp.abort();
    }
}

fn current(shared: &Shared) -> Arc<Records> {
    shared.read().map(|r| r.clone()).unwrap_or_default()
}

/// Run the DNS server for `root` until no endpoint is left. Blocks.
pub fn serve(root: &Path) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the DNS server runtime")?;
    rt.block_on(run(Store::new(root)))
}

fn load(store: &Store) -> Result<Records, Error> {
    let networks = store.networks()?;
    let endpoints: Vec<_> = store
        .endpoints()?
        .into_iter()
        .filter(|e| e.netns.alive())
        .collect();
    Ok(Records::build(&networks, &endpoints, default_upstreams()))
}

async fn run(store: Store) -> Result<(), Error> {
    let sock_path = store.dns_socket();
    // One server per root: held until the process exits.
    let Some(_instance) = NetLock::try_acquire(&super::control::dns_lock(&store))? else {
        return Err(
            anyhow::anyhow!("a DNS server already serves {}", store.root().display()).into(),
        );
    };
    let _ = std::fs::remove_file(&sock_path);
    let control = UnixListener::bind(&sock_path)
        .with_context(|| format!("binding {}", sock_path.display()))?;
    let shared: Shared = Arc::new(RwLock::new(Arc::new(Records::default())));
    let mut listeners: HashMap<Ipv4Addr, Listener> = HashMap::new();
    let mut proxies = crate::proxy::Proxies::default();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let started = std::time::Instant::now();
    tracing::info!(
        "dns server for {} started (pid {})",
        store.root().display(),
        std::process::id()
    );
    loop {
        tokio::select! {
            conn = control.accept() => {
                if let Ok((conn, _)) = conn {
                    let records = reload(&store, &shared, &mut listeners).await;
                    sync_proxies(&store, &mut proxies).await;
                    let answer = if records.is_ok() { "ok\n" } else { "error\n" };
                    let _ = serve_control(conn, answer).await;
                }
            }
            _ = tick.tick() => {
                let _ = reload(&store, &shared, &mut listeners).await;
                sync_proxies(&store, &mut proxies).await;
            }
        }
        // Started early for a new network (see control::prestart): give the
        // first container a moment to attach before calling ourselves idle.
        if current(&shared).endpoint_count() == 0 {
            exit_if_idle(&store, started.elapsed() < START_GRACE).await;
        }
    }
}

/// Published ports through the userland proxy, when nft is not used.
async fn sync_proxies(store: &Store, proxies: &mut crate::proxy::Proxies) {
    let endpoints: Vec<_> = if crate::proxy::kernel_path(store) {
        Vec::new()
    } else {
        store
            .endpoints()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.netns.alive())
            .collect()
    };
    proxies.sync(&endpoints).await;
}

async fn serve_control(conn: UnixStream, answer: &str) -> std::io::Result<()> {
    let (r, mut w) = conn.into_split();
    let mut line = String::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        BufReader::new(r).read_line(&mut line),
    )
    .await;
    w.write_all(answer.as_bytes()).await
}

/// Exit when, under the root's lock (so no attach runs concurrently), no
/// live endpoint is left. The socket goes first, so the next attach starts
/// a fresh server. Never waits for the lock: its holder may be waiting for
/// our answer on the control socket; we will be asked to reload anyway.
/// How long a server without endpoints waits for its first one, while the
/// root still has networks.
const START_GRACE: Duration = Duration::from_secs(5);

async fn exit_if_idle(store: &Store, in_grace: bool) {
    let store = store.clone();
    let _ = tokio::task::spawn_blocking(move || {
        // The root is gone altogether (a test's temporary root): nothing to
        // lock or serve, and taking the lock would recreate its directory.
        if !store.run_dir().exists() {
            std::process::exit(0);
        }
        let Ok(Some(_lock)) = NetLock::try_acquire(&store.lock_path()) else {
            return;
        };
        let no_networks = store.networks().is_ok_and(|n| n.is_empty());
        if (no_networks || !in_grace) && load(&store).is_ok_and(|r| r.endpoint_count() == 0) {
            let _ = std::fs::remove_file(store.dns_socket());
            tracing::info!("dns server: no endpoints left, exiting");
            std::process::exit(0);
        }
    })
    .await;
}

async fn reload(
    store: &Store,
    shared: &Shared,
    listeners: &mut HashMap<Ipv4Addr, Listener>,
) -> Result<(), Error> {
    let records = match load(store) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("dns reload failed: {e}");
            return Err(e);
        }
    };
    let wanted = records.listen.clone();
    if let Ok(mut w) = shared.write() {
        *w = Arc::new(records);
    }
    listeners.retain(|gw, l| {
        let keep = wanted.contains(gw);
        if !keep {
            l.close();
        }
        keep
    });
    for gw in wanted {
        if listeners.contains_key(&gw) {
            continue;
        }
        match bind(gw, shared.clone()).await {
            Ok(l) => {
                listeners.insert(gw, l);
            }
            Err(e) => tracing::warn!("dns: cannot listen on {gw}:53: {e}"),
        }
    }
    Ok(())
}

async fn bind(gw: Ipv4Addr, shared: Shared) -> std::io::Result<Listener> {
    let addr = SocketAddr::new(IpAddr::V4(gw), 53);
    let udp = bind_udp(addr).await?;
    udp.set_read_timeout(Some(Duration::from_millis(500)))?;
    let tcp = TcpListener::bind(addr).await?;
    tracing::info!("dns: listening on {addr} (udp, tcp)");
    let stop = Arc::new(AtomicBool::new(false));
    let udp_handle = udp.try_clone()?;
    let (stop2, shared2, rt) = (
        stop.clone(),
        shared.clone(),
        tokio::runtime::Handle::current(),
    );
    std::thread::Builder::new()
        .name(format!("dns-udp-{gw}"))
        .spawn(move || udp_thread(udp, shared2, stop2, rt))?;
    Ok(Listener {
        stop,
        udp: udp_handle,
        tcp: tokio::spawn(tcp_loop(tcp, shared)),
    })
}

/// Bind the gateway's UDP port, waiting a little while it is still in use:
/// the server of a network that just went (another root's, same subnet)
/// may not have closed its socket yet.
async fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let mut tries = 0;
    loop {
        match std::net::UdpSocket::bind(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r => return r,
        }
    }
}

/// UDP on a plain thread: a local answer is one recvfrom + one sendto with
/// no task hand-off, which keeps the latency tail short. Forwards go to
/// the runtime.
fn udp_thread(
    sock: std::net::UdpSocket,
    shared: Shared,
    stop: Arc<AtomicBool>,
    rt: tokio::runtime::Handle,
) {
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, src)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let query = &buf[..n];
        match handle(&current(&shared), src.ip(), query) {
            Some(Outcome::Reply(bytes)) => {
                let _ = sock.send_to(&bytes, src);
            }
            Some(Outcome::Forward(ups)) => {
                let Ok(reply_sock) = sock.try_clone() else {
                    continue;
                };
                let query = query.to_vec();
                rt.spawn(async move {
                    let reply = match super::forward::udp(&query, &ups).await {
                        Some(r) => Some(r),
                        None => servfail(&query),
                    };
                    if let Some(r) = reply {
                        let _ = reply_sock.send_to(&r, src);
                    }
                });
            }
            None => {}
        }
    }
}

async fn tcp_loop(listener: TcpListener, shared: Shared) {
    loop {
        let Ok((conn, src)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(30), tcp_conn(conn, src, shared)).await;
        });
    }
}

async fn tcp_conn(mut conn: TcpStream, src: SocketAddr, shared: Shared) -> std::io::Result<()> {
    loop {
        let len = conn.read_u16().await? as usize;
        let mut query = vec![0u8; len];
        conn.read_exact(&mut query).await?;
        let reply = match handle(&current(&shared), src.ip(), &query) {
            Some(Outcome::Reply(b)) => Some(b),
            Some(Outcome::Forward(ups)) => match super::forward::tcp(&query, &ups).await {
                Some(r) => Some(r),
                None => servfail(&query),
            },
            None => None,
        };
        let Some(reply) = reply else { return Ok(()) };
        conn.write_all(&(reply.len() as u16).to_be_bytes()).await?;
        conn.write_all(&reply).await?;
    }
}
