//! Addresses: adding one to a link, listing the host's.

use std::net::IpAddr;

use anyhow::Context as _;
use futures_util::TryStreamExt as _;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;

use super::{is_errno, Netlink};
use crate::Error;

/// Add `ip/prefix` to link `index` unless it is already there.
pub async fn ensure_address(
    nl: &Netlink,
    index: u32,
    name: &str,
    ip: IpAddr,
    prefix: u8,
) -> Result<(), Error> {
    tracing::info!(target: "explain::netlink", "RTM_NEWADDR {ip}/{prefix} dev {name}");
    match nl.handle().address().add(index, ip, prefix).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("adding {ip}/{prefix} to {name}"))
            .into()),
    }
}

/// Every IPv4 address on the host with its prefix (for subnet choice).
pub async fn host_ipv4_nets(nl: &Netlink) -> Result<Vec<Ipv4Net>, Error> {
    let mut out = Vec::new();
    let mut addrs = nl.handle().address().get().execute();
    while let Some(msg) = addrs.try_next().await.context("listing addresses")? {
        for attr in &msg.attributes {
            if let AddressAttribute::Address(IpAddr::V4(ip)) = attr {
                if let Ok(n) = Ipv4Net::new(*ip, msg.header.prefix_len) {
                    out.push(n.trunc());
                }
            }
        }
    }
    Ok(out)
}
