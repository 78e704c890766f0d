//! The userland proxy: published ports served by copying bytes, used where
//! nftables is missing (or when `<root>/run/net/userland-proxy` exists).
//! It runs inside the per-root DNS server process, which already lives as
//! long as any endpoint. Unlike the kernel path, the container sees the
//! proxy's address, not the client's.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use crate::ports::{PortMapping, Proto};
use crate::state::{Endpoint, Store};

/// Whether published ports go through nftables (else: this proxy).
pub fn kernel_path(store: &Store) -> bool {
    !store.run_dir().join("userland-proxy").exists() && crate::firewall::nft_available()
}

type Key = (Proto, Option<Ipv4Addr>, u16, Ipv4Addr, u16);

/// Running proxies, keyed by what they forward.
#[derive(Default)]
pub struct Proxies {
    running: HashMap<Key, JoinHandle<()>>,
}

impl Proxies {
    /// Make the running proxies match the endpoints' published ports.
    pub async fn sync(&mut self, endpoints: &[Endpoint]) {
        let wanted: HashMap<Key, ()> = endpoints
            .iter()
            .flat_map(|e| {
                e.ports.iter().map(move |p| {
                    (
                        (p.proto, p.host_ip, p.host_port, e.ip, p.container_port),
                        (),
                    )
                })
            })
            .collect();
        let gone: Vec<Key> = self
            .running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .copied()
            .collect();
        for key in gone {
            if let Some(task) = self.running.remove(&key) {
                task.abort();
                // abort() only schedules the cancel: wait until the task (and
                // its listening socket) is dropped, so the port is free when
                // the reload is acknowledged and `rm` returns.
                let _ = task.await;
            }
        }
        for key in wanted.keys() {
            if self.running.contains_key(key) {
                continue;
            }
            let (proto, host_ip, host_port, ip, container_port) = *key;
            let m = PortMapping {
                proto,
                host_ip,
                host_port,
                container_port,
            };
            let listen = SocketAddr::new(
                IpAddr::V4(host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED)),
                host_port,
            );
            let target = SocketAddr::new(IpAddr::V4(ip), container_port);
            let task = match proto {
                Proto::Tcp => TcpListener::bind(listen)
                    .await
                    .map(|l| tokio::spawn(tcp(l, target))),
                Proto::Udp => UdpSocket::bind(listen)
                    .await
                    .map(|s| tokio::spawn(udp(Arc::new(s), target))),
            };
            match task {
                Ok(t) => {
                    tracing::info!("proxy: {} -> {target}", m.docker_line());
                    self.running.insert(*key, t);
                }
                Err(e) => tracing::warn!("proxy: cannot listen on {listen}/{proto}: {e}"),
            }
        }
    }
}

async fn tcp(listener: TcpListener, target: SocketAddr) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if let Ok(mut upstream) = TcpStream::connect(target).await {
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
    }
}

/// One upstream socket per client address; dropped after 60 s idle.
async fn udp(sock: Arc<UdpSocket>, target: SocketAddr) {
    let flows: Arc<tokio::sync::Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Default::default();
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, client)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let mut map = flows.lock().await;
        let up = match map.get(&client) {
            Some(u) => u.clone(),
            None => {
                let Ok(u) = UdpSocket::bind("0.0.0.0:0").await else {
                    continue;
                };
                if u.connect(target).await.is_err() {
                    continue;
                }
                let u = Arc::new(u);
                map.insert(client, u.clone());
                let (u2, sock2, flows2) = (u.clone(), sock.clone(), flows.clone());
                tokio::spawn(async move {
                    let mut b = vec![0u8; 65535];
                    while let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(60), u2.recv(&mut b)).await
                    {
                        let _ = sock2.send_to(&b[..n], client).await;
                    }
                    flows2.lock().await.remove(&client);
                });
                u
            }
        };
        drop(map);
        let _ = up.send(&buf[..n]).await;
    }
}
