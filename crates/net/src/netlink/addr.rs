//! Addresses: adding one to a link, listing the host's.

use std::net::IpAddr;

use anyhow::Context as _;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::AddressMessageBuilder;

use super::Netlink;
use crate::Error;

/// Add `ip/prefix` to link `index` unless it is already there.
pub fn ensure_address(
    nl: &Netlink,
    index: u32,
    name: &str,
    ip: IpAddr,
    prefix: u8,
) -> Result<(), Error> {
    tracing::info!(target: "explain::netlink", "RTM_NEWADDR {ip}/{prefix} dev {name}");
    let msg = match ip {
        IpAddr::V4(a) => AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(index)
            .address(a, prefix)
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .index(index)
            .address(a, prefix)
            .build(),
    };
    match nl.change(RouteNetlinkMessage::NewAddress(msg), true) {
        Ok(()) => Ok(()),
        Err(e) if e.errno == libc::EEXIST => Ok(()),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("adding {ip}/{prefix} to {name}"))
            .into()),
    }
}

/// Every IPv4 address on the host with its prefix (for subnet choice).
pub fn host_ipv4_nets(nl: &Netlink) -> Result<Vec<Ipv4Net>, Error> {
    let mut out = Vec::new();
    let replies = nl
        .dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))
        .context("listing addresses")?;
    for msg in replies {
        let RouteNetlinkMessage::NewAddress(msg) = msg else {
            continue;
        };
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
