//! The runtime's network step for compose containers: attach to each of the
//! container's networks through mc_net (veth, address, ports, DNS names),
//! then rewrite its hosts and resolv.conf in place (they are bind-mounted).
//!
//! This mirrors what `container_net::setup` does for `container run`; the
//! engine keeps its own copy so the supervisor can re-attach a restarted
//! container without the CLI.
//!
//! The hook and the teardown run inside the container's monitor, a forked
//! process that closed every inherited fd — including the ones tokio keeps
//! in process-wide statics (its signal pipe), which mc_net's netlink
//! runtime would reuse. So there the work is done by a fresh process of our
//! own binary (`helper`: `__internal compose-net`, JSON on stdin).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::state::ContainerRecord;

/// How to reach mc_net for one root.
#[derive(Debug, Clone)]
pub struct NetContext {
    pub root: PathBuf,
    pub dns: Option<mc_net::DnsLauncher>,
    /// Our binary and the arguments before the request (None: in-process).
    pub helper: Option<crate::Launcher>,
}

/// A request to the helper process.
#[derive(Debug, Serialize, Deserialize)]
pub enum HelperRequest {
    Attach {
        record: Box<ContainerRecord>,
        hostname: String,
        dir: PathBuf,
        pid: i32,
    },
    Detach {
        id: String,
    },
}

impl NetContext {
    /// Run a request in a fresh helper process; its stderr is the error.
    fn call_helper(&self, req: &HelperRequest) -> Result<(), mc_net::Error> {
        use anyhow::Context as _;
        let Some(h) = &self.helper else {
            return self.serve(req);
        };
        let mut child = Command::new(&h.program)
            .args(&h.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start the network helper")?;
        if let Some(mut stdin) = child.stdin.take() {
            let body = serde_json::to_vec(req).context("encode the network request")?;
            stdin.write_all(&body).context("send the network request")?;
        }
        let out = child
            .wait_with_output()
            .context("wait for the network helper")?;
        if out.status.success() {
            return Ok(());
        }
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let msg = msg
            .strip_prefix("minicompose: ")
            .unwrap_or(&msg)
            .to_string();
        Err(if out.status.code() == Some(1) {
            mc_net::Error::Invalid(msg)
        } else {
            mc_net::Error::Other(anyhow::anyhow!("{msg}"))
        })
    }

    /// Do a request in this process (the helper's side).
    pub fn serve(&self, req: &HelperRequest) -> Result<(), mc_net::Error> {
        match req {
            HelperRequest::Attach {
                record,
                hostname,
                dir,
                pid,
            } => {
                let hook = Hook {
                    ctx: self,
                    rec: record,
                    hostname: hostname.clone(),
                    dir: dir.clone(),
                };
                let r = hook.attach(*pid);
                if r.is_err() {
                    self.detach_here(&record.id);
                }
                r
            }
            HelperRequest::Detach { id } => {
                self.detach_here(id);
                Ok(())
            }
        }
    }

    pub fn networks(&self) -> Result<mc_net::Networks, mc_net::Error> {
        let n = mc_net::Networks::open(&self.root)?;
        Ok(match &self.dns {
            Some(l) => n.with_dns_launcher(l.clone()),
            None => n,
        })
    }

    /// Undo every attachment of a container (idempotent), from a monitor:
    /// through the helper when one is configured.
    pub fn detach(&self, id: &str) {
        if self.helper.is_some() && self.attached(id) {
            if let Err(e) = self.call_helper(&HelperRequest::Detach { id: id.to_string() }) {
                tracing::warn!("detaching {id} from its networks: {e}");
            }
        } else {
            self.detach_here(id);
        }
    }

    fn attached(&self, id: &str) -> bool {
        mc_net::Networks::open(&self.root)
            .and_then(|n| n.store().endpoints())
            .map(|eps| eps.iter().any(|e| e.container_id == id))
            .unwrap_or(true)
    }

    /// Undo every attachment in this process. Cheap when there is nothing to
    /// undo (its monitor already detached it): no lock taken.
    pub fn detach_here(&self, id: &str) {
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
        let req = HelperRequest::Attach {
            record: Box::new(self.rec.clone()),
            hostname: self.hostname.clone(),
            dir: self.dir.clone(),
            pid,
        };
        let result = self.ctx.call_helper(&req);
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
