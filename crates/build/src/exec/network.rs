//! The network RUN steps get (docs/build-exec.md, "Network").
//!
//! - [`NetworkMode`]: `default` (a bridge network of this build), `host`
//!   or `none`; from `RUN --network=` or `image build --network`.
//! - [`BuildNetwork`]: the build's bridge network in mc_net's store,
//!   `mcbuild-<8 hex>`, created at the first RUN that is not cached and
//!   removed when the build ends (drop), however it ends.
//! - [`Attach`]: the runtime's network hook that puts a RUN container on it.
//! - [`sweep_stale`]: remove build networks whose build process is gone.
//! - [`resolv_conf`] / [`hosts`]: the RUN container's /etc files.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use mc_net::files::ResolvConf;
use mc_net::{AttachRequest, CreateRequest, NetnsRef, Network, Networks};

use crate::exec::run_step::BUILDER_PID_LABEL;
use crate::Error;

/// Label marking a network as a build's (its value: the build's pid is in
/// [`BUILDER_PID_LABEL`]).
pub const BUILD_NETWORK_LABEL: &str = "org.minicompose.build";

/// Prefix of build networks' names in the network store.
pub const NAME_PREFIX: &str = "mcbuild-";

/// Where a RUN step's process is networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// BuildKit's sandbox: its own namespace on the build's bridge network,
    /// masqueraded to the outside.
    #[default]
    Default,
    /// The host's network namespace.
    Host,
    /// Its own namespace with only `lo`.
    None,
}

impl NetworkMode {
    /// Parse `default`, `host` or `none` (what BuildKit accepts); `what`
    /// names the place for the error (`--network`, `RUN --network`).
    pub fn parse(s: &str, what: &str) -> Result<NetworkMode, Error> {
        match s {
            "default" => Ok(NetworkMode::Default),
            "host" => Ok(NetworkMode::Host),
            "none" => Ok(NetworkMode::None),
            _ => Err(Error::Invalid(format!(
                "invalid {what} {s:?}: use default, host or none"
            ))),
        }
    }

    /// The mode of one RUN: its own `--network=` flag, else the build's.
    pub fn for_run(flag: Option<&str>, build: NetworkMode) -> Result<NetworkMode, Error> {
        match flag {
            Some(f) => NetworkMode::parse(f, "RUN --network"),
            None => Ok(build),
        }
    }

    /// The word BuildKit uses.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Default => "default",
            NetworkMode::Host => "host",
            NetworkMode::None => "none",
        }
    }

    /// What enters the step's cache key, as BuildKit's ExecOp `network`
    /// field: nothing for the default (protobuf's zero value is left out
    /// of the op's JSON), the mode otherwise.
    pub fn cache_word(self) -> Option<&'static str> {
        match self {
            NetworkMode::Default => None,
            m => Some(m.as_str()),
        }
    }
}

fn net_err(e: mc_net::Error) -> Error {
    match e {
        mc_net::Error::Invalid(m) => Error::Invalid(m),
        other => Error::Other(anyhow::Error::new(other)),
    }
}

/// Whether the process a builder-pid label names is still running.
pub(crate) fn builder_alive(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists())
}

/// The build's bridge network: made on first use, removed on drop.
pub struct BuildNetwork {
    root: PathBuf,
    nets: Option<Networks>,
    net: Option<Network>,
}

impl BuildNetwork {
    /// Nothing is created until [`BuildNetwork::ensure`].
    pub fn new(root: &Path) -> BuildNetwork {
        BuildNetwork {
            root: root.to_path_buf(),
            nets: None,
            net: None,
        }
    }

    /// The network store (opened once).
    pub fn networks(&mut self) -> Result<&Networks, Error> {
        if self.nets.is_none() {
            self.nets = Some(Networks::open(&self.root).map_err(net_err)?);
        }
        self.nets
            .as_ref()
            .ok_or_else(|| Error::Other(anyhow::anyhow!("internal: network store not open")))
    }

    /// Remove stale build networks ([`sweep_stale`]); errors only warn.
    pub fn sweep(&mut self) {
        match self.networks() {
            Ok(nets) => sweep_stale(nets),
            Err(e) => eprintln!("WARNING: could not check for stale build networks: {e}"),
        }
    }

    /// The network, created now if this is the first RUN that needs it.
    pub fn ensure(&mut self) -> Result<Network, Error> {
        if let Some(n) = &self.net {
            return Ok(n.clone());
        }
        let nets = self.networks()?;
        let name = format!("{NAME_PREFIX}{}", random_hex(4)?);
        let labels: BTreeMap<String, String> = [
            (BUILD_NETWORK_LABEL.to_string(), "true".to_string()),
            (
                BUILDER_PID_LABEL.to_string(),
                std::process::id().to_string(),
            ),
        ]
        .into();
        let net = nets
            .create(&CreateRequest {
                name: name.clone(),
                subnet: None,
                internal: false,
                labels,
            })
            .map_err(|e| with_context(net_err(e), &format!("create the build network {name}")))?;
        tracing::info!(
            target: "explain::build",
            "build network {} (bridge {}, subnet {}) for RUN steps",
            net.name,
            net.bridge,
            net.subnet
        );
        self.net = Some(net.clone());
        Ok(net)
    }
}

impl Drop for BuildNetwork {
    fn drop(&mut self) {
        let (Some(nets), Some(net)) = (&self.nets, self.net.take()) else {
            return;
        };
        tracing::info!(target: "explain::build", "remove build network {} (bridge {})", net.name, net.bridge);
        if let Err(e) = remove(nets, &net.name) {
            eprintln!(
                "WARNING: could not remove the build network {}: {e} (the next build removes it)",
                net.name
            );
        }
    }
}

fn with_context(e: Error, what: &str) -> Error {
    match e {
        Error::Invalid(m) => Error::Invalid(format!("{what}: {m}")),
        Error::Other(e) => Error::Other(e.context(what.to_string())),
    }
}

fn random_hex(bytes: usize) -> Result<String, Error> {
    use std::io::Read as _;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::Other(anyhow::anyhow!("read /dev/urandom: {e}")))?;
    Ok(hex::encode(buf))
}

/// Detach whatever is still attached (a RUN container of a killed build),
/// then remove the network.
fn remove(nets: &Networks, name: &str) -> Result<(), mc_net::Error> {
    for ep in nets.endpoints()?.iter().filter(|e| e.network == name) {
        nets.detach(&ep.container_id)?;
    }
    nets.remove(name)
}

/// Remove build networks whose build process is gone (killed with -9);
/// live builds' networks are left alone. Reads the store only: host
/// changes happen only when there is something stale.
pub fn sweep_stale(nets: &Networks) {
    let Ok(list) = nets.list() else { return };
    for net in list {
        if !net.labels.contains_key(BUILD_NETWORK_LABEL) {
            continue;
        }
        let alive = net
            .labels
            .get(BUILDER_PID_LABEL)
            .is_some_and(|p| builder_alive(p));
        if alive {
            continue;
        }
        tracing::info!(target: "explain::build", "remove stale build network {} (bridge {})", net.name, net.bridge);
        if let Err(e) = remove(nets, &net.name) {
            eprintln!(
                "WARNING: could not remove the stale build network {}: {e}",
                net.name
            );
        }
    }
}

/// The runtime's network step for a RUN container on the build network:
/// a veth into the container's namespace with an address of the subnet.
/// hosts and resolv.conf were written before start ([`hosts`],
/// [`resolv_conf`]); nothing needs the address.
pub struct Attach<'a> {
    /// The network store.
    pub nets: &'a Networks,
    /// The build network's name.
    pub network: String,
    /// The container's id and name.
    pub id: String,
    /// Its name.
    pub name: String,
}

impl mc_runtime::NetworkHook for Attach<'_> {
    fn needed(&self) -> bool {
        true
    }

    fn setup(&mut self, pid: i32) -> Result<(), mc_runtime::Error> {
        let to_rt = |e: mc_net::Error| match e {
            mc_net::Error::Invalid(m) => mc_runtime::Error::Invalid(m),
            other => mc_runtime::Error::Other(anyhow::Error::new(other)),
        };
        let netns = NetnsRef::from_pid(pid as u32).map_err(to_rt)?;
        let ep = self
            .nets
            .attach(&AttachRequest {
                container_id: self.id.clone(),
                container_name: self.name.clone(),
                hostname: None,
                network: self.network.clone(),
                interface: "eth0".into(),
                aliases: Vec::new(),
                ip: None,
                ports: Vec::new(),
                dns_servers: Vec::new(),
                netns,
            })
            .map_err(to_rt)?;
        tracing::info!(target: "explain::build", "RUN container {} gets {} on {}", self.name, ep.ip, self.network);
        Ok(())
    }
}

/// systemd-resolved's list of the real upstream servers (used when
/// /etc/resolv.conf only names its loopback stub).
const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// resolv.conf of a RUN container in its own namespace: the host's, without
/// loopback nameservers (unreachable from another namespace); when that
/// leaves none, systemd-resolved's upstream list if there is one. This is
/// what BuildKit does (it adds no resolver of its own for build steps).
pub fn resolv_conf(host_text: &str, resolved_upstream: Option<&str>) -> String {
    let is_loopback = |ip: &IpAddr| ip.is_loopback();
    let host = ResolvConf::parse(host_text);
    let usable = host.nameservers.iter().any(|n| !is_loopback(n));
    let text = match resolved_upstream {
        Some(up) if !usable && !host.nameservers.is_empty() => up,
        _ => host_text,
    };
    text.lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            !(w.next() == Some("nameserver")
                && w.next()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .is_some_and(|a| is_loopback(&a)))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// [`resolv_conf`] of this host.
pub fn host_resolv_conf() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let upstream = std::fs::read_to_string(RESOLVED_UPSTREAM).ok();
    resolv_conf(&host, upstream.as_deref())
}

/// /etc/hosts of a RUN container in its own namespace: BuildKit's, the
/// sandbox's hostname on loopback.
pub fn hosts(hostname: &str) -> String {
    format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(
            NetworkMode::parse("host", "--network").unwrap(),
            NetworkMode::Host
        );
        assert_eq!(
            NetworkMode::parse("bridge", "--network")
                .unwrap_err()
                .to_string(),
            "invalid --network \"bridge\": use default, host or none"
        );
        assert_eq!(
            NetworkMode::for_run(None, NetworkMode::None).unwrap(),
            NetworkMode::None
        );
        assert_eq!(
            NetworkMode::for_run(Some("default"), NetworkMode::Host).unwrap(),
            NetworkMode::Default
        );
        assert_eq!(NetworkMode::Default.cache_word(), None);
        assert_eq!(NetworkMode::Host.cache_word(), Some("host"));
    }

    #[test]
    fn resolv_drops_loopback_and_falls_back_to_resolved() {
        let host = "search example.org\nnameserver 127.0.0.53\noptions edns0\n";
        let up = "nameserver 192.0.2.1\nsearch example.org\n";
        assert_eq!(resolv_conf(host, Some(up)), up);
        // Without systemd-resolved: no nameserver at all (libc then tries
        // the namespace's own loopback, which answers nothing).
        assert_eq!(
            resolv_conf(host, None),
            "search example.org\noptions edns0\n"
        );
        let mixed = "nameserver ::1\nnameserver 10.0.0.2\n";
        assert_eq!(resolv_conf(mixed, Some(up)), "nameserver 10.0.0.2\n");
    }

    #[test]
    fn hosts_names_the_sandbox() {
        assert!(hosts("buildkitsandbox").starts_with("127.0.0.1\tlocalhost buildkitsandbox\n"));
    }
}
