//! The operations: create/remove networks, attach/detach endpoints. Each
//! takes the root's lock, first drops endpoints whose namespace is gone
//! (a killed process's leftovers), then changes the host and rewrites the
//! root's nft chains and DNS view from the state on disk.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::Context as _;
use ipnet::Ipv4Net;

use crate::dns::{self, DnsLauncher};
use crate::firewall;
use crate::ipam;
use crate::lock::NetLock;
use crate::netlink::{self, Netlink, VethRequest};
use crate::ports::{self, PortMapping};
use crate::state::{Endpoint, NetnsRef, Network, Store};
use crate::sysctl;
use crate::Error;

/// Names that cannot be user networks (`--network none|host` mean modes).
const RESERVED: [&str; 3] = ["none", "host", "bridge"];

#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    pub subnet: Option<Ipv4Net>,
    pub internal: bool,
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct AttachRequest {
    pub container_id: String,
    pub container_name: String,
    pub hostname: Option<String>,
    pub network: String,
    /// Interface name inside the namespace (`eth0`).
    pub interface: String,
    /// `--network-alias` (and compose service names).
    pub aliases: Vec<String>,
    pub ip: Option<Ipv4Addr>,
    pub ports: Vec<PortMapping>,
    pub dns_servers: Vec<IpAddr>,
    pub netns: NetnsRef,
}

/// Handle on one root's networks.
pub struct Networks {
    store: Store,
    dns: Option<DnsLauncher>,
}

fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Host end of a container's veth: `mcv` + 8 hex of a hash.
pub fn host_veth_name(container_id: &str, network_id: &str) -> String {
    let key = format!("{container_id}/{network_id}");
    format!("mcv{}", firewall::root_key(Path::new(&key)))
}

pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

impl Networks {
    pub fn open(root: &Path) -> Result<Networks, Error> {
        let store = Store::new(root);
        store.ensure_dirs()?;
        Ok(Networks { store, dns: None })
    }

    /// How to start the DNS server when a container attaches and none runs.
    pub fn with_dns_launcher(mut self, launcher: DnsLauncher) -> Networks {
        self.dns = Some(launcher);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn lock(&self) -> Result<NetLock, Error> {
        NetLock::acquire(&self.store.lock_path())
    }

    /// Networks, sorted by name.
    pub fn list(&self) -> Result<Vec<Network>, Error> {
        self.store.networks()
    }

    /// A network by name, or by a unique prefix of its id (as docker).
    pub fn get(&self, name: &str) -> Result<Network, Error> {
        if let Some(n) = self.store.load_network(name)? {
            return Ok(n);
        }
        let hex = !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit());
        let mut by_id: Vec<Network> = if hex {
            self.store
                .networks()?
                .into_iter()
                .filter(|n| n.id.starts_with(name))
                .collect()
        } else {
            Vec::new()
        };
        match by_id.len() {
            1 => Ok(by_id.remove(0)),
            0 => Err(Error::Invalid(format!(
                "network {name} not found: see `minicompose network ls`"
            ))),
            _ => Err(Error::Invalid(format!(
                "network id prefix {name} is ambiguous: give more of it or the name"
            ))),
        }
    }

    /// Live endpoints (all networks).
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        Ok(self
            .store
            .endpoints()?
            .into_iter()
            .filter(|e| e.netns.alive())
            .collect())
    }

    /// Published ports of a container.
    pub fn ports(&self, container_id: &str) -> Result<Vec<PortMapping>, Error> {
        let mut out: Vec<PortMapping> = self
            .endpoints()?
            .into_iter()
            .filter(|e| e.container_id == container_id)
            .flat_map(|e| e.ports)
            .collect();
        out.sort();
        Ok(out)
    }

    /// Drop endpoints whose namespace is gone (their veth went with it);
    /// returns the live ones and whether any was dropped.
    fn gc(&self) -> Result<(Vec<Endpoint>, bool), Error> {
        let mut live = Vec::new();
        let mut dropped = false;
        for ep in self.store.endpoints()? {
            if ep.netns.alive() {
                live.push(ep);
                continue;
            }
            tracing::info!(
                target: "explain::dns",
                "remove records of {} on {} (its network namespace is gone)",
                ep.container_name,
                ep.network
            );
            let _ = Netlink::host().and_then(|nl| nl.delete_link(&ep.host_veth));
            self.store.delete_endpoint(&ep)?;
            dropped = true;
        }
        Ok((live, dropped))
    }

    /// Make the host match the state: drop dead endpoints, rewrite rules.
    fn sync(&self, networks: &[Network]) -> Result<Vec<Endpoint>, Error> {
        let (live, _) = self.gc()?;
        self.apply_rules(networks, &live)?;
        Ok(live)
    }

    /// Like [`Self::sync`], but touches nft only when a dead endpoint was
    /// dropped (the rules are otherwise current).
    fn gc_and_sync_if_needed(&self, networks: &[Network]) -> Result<Vec<Endpoint>, Error> {
        let (live, dropped) = self.gc()?;
        if dropped {
            self.apply_rules(networks, &live)?;
        }
        Ok(live)
    }

    /// Rewrite the root's nft chains; without nft, published ports are
    /// served by the userland proxy in the DNS server process instead.
    fn apply_rules(&self, networks: &[Network], live: &[Endpoint]) -> Result<(), Error> {
        if !crate::proxy::kernel_path(&self.store) {
            tracing::info!(
                target: "explain::nft",
                "nft not used: published ports go through the userland proxy (no egress masquerade, no isolation rules)"
            );
            return Ok(());
        }
        let key = firewall::root_key(self.store.root());
        firewall::apply(&key, &firewall::render(&key, networks, live))
    }

    fn rebuild(&self) -> Result<Vec<Endpoint>, Error> {
        let networks = self.store.networks()?;
        self.sync(&networks)
    }

    /// `network create`.
    pub fn create(&self, req: &CreateRequest) -> Result<Network, Error> {
        if !valid_name(&req.name) {
            return Err(Error::Invalid(format!(
                "invalid network name {:?}: use letters, digits, '_', '.', '-' (starting with a letter or digit)",
                req.name
            )));
        }
        if RESERVED.contains(&req.name.as_str()) {
            return Err(Error::Invalid(format!(
                "network name {} is reserved: choose another name",
                req.name
            )));
        }
        let _lock = self.lock()?;
        if self.store.load_network(&req.name)?.is_some() {
            return Err(Error::Invalid(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let existing = self.store.networks()?;
        let net = {
            // Host-wide: two roots must not pick the same free subnet.
            let _host = NetLock::acquire(Path::new(crate::lock::HOST_LOCK))?;
            let net = self.choose_and_save(req, &existing)?;
            let made = Netlink::host().and_then(|nl| bridge_up(&nl, &net));
            if let Err(e) = made {
                let _ = self.store.delete_network(&net.name);
                let _ = Netlink::host().and_then(|nl| nl.delete_link(&net.bridge));
                return Err(e);
            }
            net
        };
        let mut all = existing.clone();
        all.push(net.clone());
        if let Err(e) = self.sync(&all) {
            let _ = self.store.delete_network(&net.name);
            let _ = Netlink::host().and_then(|nl| nl.delete_link(&net.bridge));
            let _ = self.rebuild();
            return Err(e);
        }
        if let Some(l) = &self.dns {
            // Best effort: the first attach starts it anyway.
            if let Err(e) = dns::prestart(&self.store, l) {
                tracing::warn!("starting the DNS server early: {e}");
            }
        }
        Ok(net)
    }

    /// Pick (or check) the subnet against the host's routes and addresses
    /// and the other networks, and record the network.
    fn choose_and_save(&self, req: &CreateRequest, existing: &[Network]) -> Result<Network, Error> {
        let (routes, addrs) = {
            let nl = Netlink::host()?;
            (netlink::host_routes(&nl)?, netlink::host_ipv4_nets(&nl)?)
        };
        let mut taken: Vec<(Ipv4Net, String)> = Vec::new();
        taken.extend(
            existing
                .iter()
                .map(|n| (n.subnet, format!("network {}", n.name))),
        );
        taken.extend(
            addrs
                .into_iter()
                .map(|n| (n, "an address of this host".to_string())),
        );
        taken.extend(
            routes
                .into_iter()
                .map(|n| (n, "a route of this host".to_string())),
        );
        let subnet = match req.subnet {
            Some(s) => {
                ipam::check_subnet(&s, &taken)?;
                s
            }
            None => ipam::choose_subnet(&taken.iter().map(|(n, _)| *n).collect::<Vec<_>>())?,
        };
        let id = random_hex(32)?;
        let net = Network {
            name: req.name.clone(),
            bridge: format!("mc-{}", &id[..8]),
            id,
            subnet,
            gateway: ipam::gateway(&subnet),
            internal: req.internal,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            labels: req.labels.clone(),
        };
        tracing::info!(
            target: "explain::ipam",
            "network {} gets subnet {} gateway {}",
            net.name,
            net.subnet,
            net.gateway
        );
        self.store.save_network(&net)?;
        Ok(net)
    }

    /// `network rm`: refused while a live container is attached.
    pub fn remove(&self, name: &str) -> Result<(), Error> {
        let _lock = self.lock()?;
        let net = self.get(name)?;
        let name = net.name.as_str();
        let live = self.rebuild()?;
        let users: Vec<&str> = live
            .iter()
            .filter(|e| e.network == net.name)
            .map(|e| e.container_name.as_str())
            .collect();
        if !users.is_empty() {
            return Err(Error::Invalid(format!(
                "network {name} has active endpoints ({}): stop or remove those containers first",
                users.join(", ")
            )));
        }
        // Deleting a bridge waits out RCU grace periods in the kernel (~35 ms
        // here), as does the nft commit that drops its chains: run the two
        // side by side. The thread is joined before we return.
        let bridge = net.bridge.clone();
        let deleting =
            std::thread::spawn(move || Netlink::host().and_then(|nl| nl.delete_link(&bridge)));
        self.store.delete_network(name)?;
        let synced = self.rebuild();
        let deleted = deleting
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("deleting {} panicked", net.bridge).into()));
        if let Err(e) = deleted {
            // Keep the network known, so `network rm` can be retried.
            self.store.save_network(&net)?;
            let _ = self.rebuild();
            return Err(e);
        }
        synced?;
        dns::notify(&self.store, None)?;
        Ok(())
    }

    /// Connect the namespace in `req` to a network: address, veth, routes,
    /// port rules, DNS records. Nothing is left configured on error.
    pub fn attach(&self, req: &AttachRequest) -> Result<Endpoint, Error> {
        for alias in &req.aliases {
            if !valid_dns_name(alias) {
                return Err(Error::Invalid(format!(
                    "invalid network alias {alias:?}: use a DNS name"
                )));
            }
        }
        let _lock = self.lock()?;
        let net = self.get(&req.network)?;
        let networks = self.store.networks()?;
        let live = self.gc_and_sync_if_needed(&networks)?;
        if live
            .iter()
            .any(|e| e.container_id == req.container_id && e.network == net.name)
        {
            return Err(Error::Invalid(format!(
                "container {} is already connected to network {}",
                req.container_name, net.name
            )));
        }
        if net.internal && !req.ports.is_empty() {
            return Err(Error::Invalid(format!(
                "network {} is --internal: ports cannot be published from it",
                net.name
            )));
        }
        let owned: Vec<(PortMapping, String)> = live
            .iter()
            .flat_map(|e| e.ports.iter().map(|p| (*p, e.container_name.clone())))
            .collect();
        ports::check_clashes(&req.ports, &owned)?;
        let mut port_list = req.ports.clone();
        ports::check_host_and_pick(&mut port_list)?;
        let used: Vec<Ipv4Addr> = live
            .iter()
            .filter(|e| e.network == net.name)
            .map(|e| e.ip)
            .collect();
        let ip = ipam::allocate(&net.subnet, net.gateway, &used, req.ip)?;
        let o = ip.octets();
        let mac = [0x02, 0x42, o[0], o[1], o[2], o[3]];
        let mut dns_names = vec![req.container_name.to_ascii_lowercase()];
        let short_id: String = req.container_id.chars().take(12).collect();
        for n in req
            .hostname
            .iter()
            .chain(std::iter::once(&short_id))
            .chain(req.aliases.iter())
        {
            let n = n.to_ascii_lowercase();
            if !n.is_empty() && !dns_names.contains(&n) {
                dns_names.push(n);
            }
        }
        let ep = Endpoint {
            container_id: req.container_id.clone(),
            container_name: req.container_name.clone(),
            network: net.name.clone(),
            interface: req.interface.clone(),
            host_veth: host_veth_name(&req.container_id, &net.id),
            ip,
            mac: mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            dns_names,
            ports: port_list,
            dns_servers: req.dns_servers.clone(),
            netns: req.netns.clone(),
        };
        tracing::info!(target: "explain::ipam", "{} gets {ip} on {}", ep.container_name, net.name);
        self.store.save_endpoint(&ep)?;
        let result = (|| {
            {
                let nl = Netlink::host()?;
                let mtu = bridge_up(&nl, &net)?;
                let veth = VethRequest {
                    host_name: &ep.host_veth,
                    peer_name: &ep.interface,
                    netns: &ep.netns.path,
                    bridge: &net.bridge,
                    mtu,
                    mac,
                    ip,
                    prefix: net.subnet.prefix_len(),
                    gateway: net.gateway,
                };
                netlink::create_veth(&nl, &veth)
            }?;
            self.sync(&networks)?;
            for name in &ep.dns_names {
                tracing::info!(target: "explain::dns", "add {name} A {ip} (network {})", net.name);
            }
            dns::notify(&self.store, self.dns.as_ref())
        })();
        if let Err(e) = result {
            let _ = Netlink::host().and_then(|nl| nl.delete_link(&ep.host_veth));
            let _ = self.store.delete_endpoint(&ep);
            let _ = self.sync(&networks);
            let _ = dns::notify(&self.store, None);
            return Err(e);
        }
        Ok(ep)
    }

    /// Disconnect a container from every network. Idempotent.
    pub fn detach(&self, container_id: &str) -> Result<usize, Error> {
        let _lock = self.lock()?;
        let mine: Vec<Endpoint> = self
            .store
            .endpoints()?
            .into_iter()
            .filter(|e| e.container_id == container_id)
            .collect();
        for ep in &mine {
            Netlink::host().and_then(|nl| nl.delete_link(&ep.host_veth))?;
            for name in &ep.dns_names {
                tracing::info!(target: "explain::dns", "remove {name} A {} (network {})", ep.ip, ep.network);
            }
            self.store.delete_endpoint(ep)?;
        }
        let live = self.rebuild()?;
        // Containers remain: make sure their DNS server runs (it may have
        // been killed), not only that it reloads.
        let start = if live.is_empty() {
            None
        } else {
            self.dns.as_ref()
        };
        dns::notify(&self.store, start)?;
        Ok(mine.len())
    }
}

/// The network's bridge exists, is up with its gateway address and has its
/// sysctls (idempotent: attach re-checks it, a reboot may have removed it).
/// Returns the MTU used, the default route's.
fn bridge_up(nl: &Netlink, net: &Network) -> Result<u32, Error> {
    let mtu = netlink::default_route_mtu(nl)?;
    netlink::ensure_bridge(nl, &net.bridge, net.gateway, net.subnet.prefix_len(), mtu)?;
    sysctl::for_bridge(&net.bridge)?;
    Ok(mtu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("my_net-1.x"));
        assert!(valid_name("a"));
        assert!(!valid_name("-a"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(""));
        assert!(valid_dns_name("web"));
        assert!(valid_dns_name("db.internal"));
        assert!(!valid_dns_name("a..b"));
        assert!(!valid_dns_name("a b"));
        let v = host_veth_name("abc", "def");
        assert!(v.starts_with("mcv") && v.len() == 11);
        assert_ne!(v, host_veth_name("abd", "def"));
    }
}
