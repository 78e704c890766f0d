//! What is on disk: network definitions under `<root>/networks/<name>.json`
//! and one endpoint file per (container, network) under
//! `<root>/run/net/endpoints/`. Every write is atomic (temp + rename); every
//! change happens under [`crate::lock::NetLock`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::ports::PortMapping;
use crate::Error;

/// A user-defined bridge network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    /// 64 hex characters, random.
    pub id: String,
    /// Host bridge device, `mc-<first 8 of id>`.
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// No egress, no published ports, no route to other networks.
    pub internal: bool,
    /// Seconds since the epoch.
    pub created: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Where a container's network namespace is, and how to tell whether it is
/// still the same one (pids and paths get reused).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetnsRef {
    /// `/proc/<pid>/ns/net` or a bind mount such as `/run/netns/NAME`.
    pub path: PathBuf,
    /// Owning process, when the namespace lives as long as a process.
    pub pid: Option<u32>,
    /// Start time of `pid` (field 22 of /proc/pid/stat) at attach time.
    pub pid_start: Option<u64>,
    /// Inode of the nsfs file at attach time.
    pub inode: u64,
}

/// One container's attachment to one network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    pub container_id: String,
    pub container_name: String,
    pub network: String,
    /// Interface name inside the container (`eth0`, `eth1`, …).
    pub interface: String,
    /// Host side of the veth pair (`mcv…`).
    pub host_veth: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// Names the embedded DNS answers for this endpoint (lowercase):
    /// container name, short id, hostname, `--network-alias`es.
    pub dns_names: Vec<String>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// `--dns`: upstreams the embedded DNS forwards this container's
    /// other queries to (empty: the host's resolvers).
    #[serde(default)]
    pub dns_servers: Vec<IpAddr>,
    pub netns: NetnsRef,
}

/// Paths of one `--root`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn networks_dir(&self) -> PathBuf {
        self.root.join("networks")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run").join("net")
    }

    pub fn endpoints_dir(&self) -> PathBuf {
        self.run_dir().join("endpoints")
    }

    pub fn dns_socket(&self) -> PathBuf {
        self.run_dir().join("dns.sock")
    }

    pub fn dns_log(&self) -> PathBuf {
        self.run_dir().join("dns.log")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.run_dir().join("lock")
    }

    pub fn ensure_dirs(&self) -> Result<(), Error> {
        for d in [self.networks_dir(), self.endpoints_dir()] {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(())
    }

    fn network_path(&self, name: &str) -> PathBuf {
        self.networks_dir().join(format!("{name}.json"))
    }

    fn endpoint_path(&self, container_id: &str, network: &str) -> PathBuf {
        self.endpoints_dir()
            .join(format!("{container_id}@{network}.json"))
    }

    pub fn load_network(&self, name: &str) -> Result<Option<Network>, Error> {
        read_json(&self.network_path(name))
    }

    pub fn save_network(&self, net: &Network) -> Result<(), Error> {
        write_json(&self.network_path(&net.name), net)
    }

    pub fn delete_network(&self, name: &str) -> Result<(), Error> {
        remove_if_exists(&self.network_path(name))
    }

    /// All networks, sorted by name. Unreadable files are skipped with a
    /// warning rather than making every command fail.
    pub fn networks(&self) -> Result<Vec<Network>, Error> {
        let mut out: Vec<Network> = list_json(&self.networks_dir())?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn save_endpoint(&self, ep: &Endpoint) -> Result<(), Error> {
        write_json(&self.endpoint_path(&ep.container_id, &ep.network), ep)
    }

    pub fn delete_endpoint(&self, ep: &Endpoint) -> Result<(), Error> {
        remove_if_exists(&self.endpoint_path(&ep.container_id, &ep.network))
    }

    pub fn endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        let mut out: Vec<Endpoint> = list_json(&self.endpoints_dir())?;
        out.sort_by(|a, b| (&a.network, a.ip).cmp(&(&b.network, b.ip)));
        Ok(out)
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let v = serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", path.display()))?;
            Ok(Some(v))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("reading {}", path.display()))
            .into()),
    }
}

fn list_json<T: for<'de> Deserialize<'de>>(dir: &Path) -> Result<Vec<T>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("listing {}", dir.display()))
                .into())
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        match read_json(&path) {
            Ok(Some(v)) => out.push(v),
            Ok(None) => {}
            Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
        }
    }
    Ok(out)
}

/// Write `value` as JSON to `path` atomically (temp file in the same
/// directory, fsync, rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(value).context("serializing state")?;
    write_atomic(path, &bytes)
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e)
            .context(format!("writing {}", path.display()))
            .into());
    }
    Ok(())
}

fn remove_if_exists(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("removing {}", path.display()))
            .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_roundtrip_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.ensure_dirs().unwrap();
        assert!(store.load_network("a").unwrap().is_none());
        let net = Network {
            name: "a".into(),
            id: "ab".repeat(32),
            bridge: "mc-abababab".into(),
            subnet: "10.89.0.0/24".parse().unwrap(),
            gateway: "10.89.0.1".parse().unwrap(),
            internal: false,
            created: 1,
            labels: BTreeMap::new(),
        };
        store.save_network(&net).unwrap();
        assert_eq!(store.load_network("a").unwrap(), Some(net.clone()));
        std::fs::write(store.networks_dir().join("broken.json"), b"{").unwrap();
        assert_eq!(store.networks().unwrap(), vec![net]);
        store.delete_network("a").unwrap();
        store.delete_network("a").unwrap();
        assert!(store.load_network("a").unwrap().is_none());
    }
}
