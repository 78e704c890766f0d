//! The network's bridge: created if missing, gateway address, up.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context as _;
use rtnetlink::LinkBridge;

use super::{is_errno, Netlink};
use crate::Error;

/// Make sure bridge `name` exists with `gateway/prefix` and is up.
/// Idempotent: repairs a bridge a killed process left half-configured.
pub async fn ensure_bridge(
    nl: &Netlink,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    mtu: u32,
) -> Result<(), Error> {
    if nl.link(name).await?.is_none() {
        tracing::info!(target: "explain::netlink", "RTM_NEWLINK {name} type bridge mtu {mtu}");
        let msg = LinkBridge::new(name).mtu(mtu).build();
        match nl.handle().link().add(msg).execute().await {
            Ok(()) => {}
            Err(e) if is_errno(&e, libc::EEXIST) => {}
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("creating bridge {name}"))
                    .into())
            }
        }
    }
    let index = nl.index(name).await?;
    super::addr::ensure_address(nl, index, name, IpAddr::V4(gateway), prefix)
        .await
        .context("configuring the bridge")?;
    nl.set_up(name).await
}
