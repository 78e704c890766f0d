//! Netlink (rtnetlink): bridges, veth pairs, addresses and routes, on the
//! host or inside a network namespace. Every change is logged at
//! `explain::netlink`.

mod addr;
mod bridge;
mod route;
mod veth;

use std::os::fd::AsFd;
use std::path::Path;

use anyhow::Context as _;
use futures_util::TryStreamExt as _;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkUnspec};

use crate::Error;

pub use addr::host_ipv4_nets;
pub use bridge::ensure_bridge;
pub use route::{default_route_mtu, host_routes};
pub use veth::{create_veth, VethRequest};

/// A netlink connection bound to one network namespace.
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// The caller's namespace. Needs a tokio runtime.
    pub fn host() -> Result<Netlink, Error> {
        let (conn, handle, _) = rtnetlink::new_connection().context("opening netlink socket")?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// Inside the namespace at `path`: the socket is opened by a short-lived
    /// thread that joined the namespace, and stays bound to it.
    pub fn in_netns(path: &Path) -> Result<Netlink, Error> {
        let ns = std::fs::File::open(path)
            .with_context(|| format!("opening network namespace {}", path.display()))?;
        let rt = tokio::runtime::Handle::current();
        let opened = std::thread::spawn(move || -> anyhow::Result<_> {
            let _enter = rt.enter();
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .context("joining the network namespace")?;
            rtnetlink::new_connection().context("opening netlink socket")
        })
        .join()
        .map_err(|_| anyhow::anyhow!("netlink thread panicked"))??;
        let (conn, handle, _) = opened;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// A link by name, or None.
    pub async fn link(&self, name: &str) -> Result<Option<LinkMessage>, Error> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e)
                .context(format!("looking up link {name}"))
                .into()),
        }
    }

    /// Index of a link that must exist.
    pub async fn index(&self, name: &str) -> Result<u32, Error> {
        match self.link(name).await? {
            Some(l) => Ok(l.header.index),
            None => Err(anyhow::anyhow!("network device {name} does not exist").into()),
        }
    }

    pub async fn set_up(&self, name: &str) -> Result<(), Error> {
        let index = self.index(name).await?;
        tracing::info!(target: "explain::netlink", "RTM_NEWLINK {name} up");
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .with_context(|| format!("setting {name} up"))?;
        Ok(())
    }

    /// Delete a link if it exists (deleting one end of a veth deletes both).
    pub async fn delete_link(&self, name: &str) -> Result<bool, Error> {
        let Some(link) = self.link(name).await? else {
            return Ok(false);
        };
        tracing::info!(target: "explain::netlink", "RTM_DELLINK {name}");
        match self.handle.link().del(link.header.index).execute().await {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(false),
            Err(e) => Err(anyhow::Error::new(e)
                .context(format!("deleting {name}"))
                .into()),
        }
    }

    /// MTU of a link.
    pub async fn mtu(&self, index: u32) -> Result<Option<u32>, Error> {
        let mut links = self.handle.link().get().match_index(index).execute();
        let link = links.try_next().await.context("looking up link")?;
        Ok(link.and_then(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            })
        }))
    }
}

/// Whether a netlink error carries `errno`.
pub fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -errno)
}
