//! The runtime's network step for compose containers: attach to each of the
//! container's networks through mc_net (veth, address, ports, DNS names),
//! then rewrite its hosts and resolv.conf in place (they are bind-mounted).
//!
//! This mirrors what `container_net::setup` does for `container run`; the
//! engine keeps its own copy so the supervisor can re-attach a restarted
//! container without the CLI.
//!
//! The hook and the teardown run inside the container's monitor, a forked
//! process that closed every inherited fd. mc_net does its netlink work
//! with plain blocking sockets and runs nft as a child process, so it needs
//! nothing a fork could have closed: both run right here, in-process.

use std::path::PathBuf;

use crate::state::ContainerRecord;

/// How to reach mc_net for one root.
#[derive(Debug, Clone)]
pub struct NetContext {
    pub root: PathBuf,
    pub dns: Option<mc_net::DnsLauncher>,
}

impl NetContext {
    pub fn networks(&self) -> Result<mc_net::Networks, mc_net::Error> {
        let n = mc_net::Networks::open(&self.root)?;
        Ok(match &self.dns {
            Some(l) => n.with_dns_launcher(l.clone()),
            None => n,
        })
    }

    /// Undo every attachment of a container (idempotent). Cheap when there
    /// is nothing to undo (its monitor already detached it): no lock taken.
    pub fn detach(&self, id: &str) {
        if let Ok(n) = mc_net::Networks::open(&self.root) {
            let attached = n
                .store()
                .endpoints()
                .map(|eps| eps.iter().any(|e| e.container_id == id))
                .unwrap_or(true);
            if !attached {
                return;
            }
            if let Err(e) = n.detach(id) {
                tracing::warn!("detaching {id} from its networks: {e}");
            }
        }
    }
}

pub struct Hook<'a> {
    pub ctx: &'a NetContext,
    pub rec: &'a ContainerRecord,
    pub hostname: String,
    pub dir: PathBuf,
}

impl mc_runtime::NetworkHook for Hook<'_> {
    fn needed(&self) -> bool {
        !self.rec.networks.is_empty()
    }

    fn setup(&mut self, pid: i32) -> Result<(), mc_runtime::Error> {
        let result = self.attach(pid);
        if result.is_err() {
            self.ctx.detach(&self.rec.id);
        }
        result.map_err(|e| match e {
            mc_net::Error::Invalid(m) => mc_runtime::Error::Invalid(m),
            mc_net::Error::Other(o) => mc_runtime::Error::Other(o),
        })
    }
}

impl Hook<'_> {
    fn attach(&self, pid: i32) -> Result<(), mc_net::Error> {
        let nets = self.ctx.networks()?;
        let netns = mc_net::NetnsRef::from_pid(pid as u32)?;
        let mut first: Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)> = None;
        for (i, att) in self.rec.networks.iter().enumerate() {
            let ep = nets.attach(&mc_net::AttachRequest {
                container_id: self.rec.id.clone(),
                container_name: self.rec.name.clone(),
                hostname: Some(self.hostname.clone()),
                network: att.network.clone(),
                interface: format!("eth{i}"),
                aliases: att.aliases.clone(),
                ip: att.ip,
                ports: att.ports.clone(),
                dns_servers: self.rec.dns.clone(),
                netns: netns.clone(),
            })?;
            if first.is_none() {
                let gw = nets.get(&att.network)?.gateway;
                first = Some((ep.ip, gw));
            }
        }
        if let Some((ip, gw)) = first {
            let names = vec![self.hostname.clone()];
            let hosts = mc_net::files::container_hosts(Some((ip, &names)), &self.rec.extra_hosts);
            let resolv =
                mc_net::files::container_resolv_conf(gw, &mc_net::files::ResolvConf::host());
            rewrite(&self.dir.join("hosts"), &hosts)?;
            rewrite(&self.dir.join("resolv.conf"), &resolv)?;
        }
        Ok(())
    }
}

/// Truncate and write (not rename: the file is bind-mounted).
fn rewrite(path: &std::path::Path, text: &str) -> Result<(), mc_net::Error> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
