//! Routes: listing the host's, the default route's MTU, and a container's
//! default route.

use std::net::Ipv4Addr;

use anyhow::Context as _;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::RouteMessageBuilder;

use super::Netlink;
use crate::Error;

/// Every IPv4 route, any table.
fn ipv4_routes(nl: &Netlink) -> Result<Vec<RouteMessage>, Error> {
    let replies = nl
        .dump(RouteNetlinkMessage::GetRoute(
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
        ))
        .context("listing routes")?;
    Ok(replies
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => Some(r),
            _ => None,
        })
        .collect())
}

/// Every IPv4 route destination on the host, any table (for subnet choice).
pub fn host_routes(nl: &Netlink) -> Result<Vec<Ipv4Net>, Error> {
    let mut out = Vec::new();
    for msg in ipv4_routes(nl)? {
        let prefix = msg.header.destination_prefix_length;
        let dst = msg.attributes.iter().find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
            _ => None,
        });
        if let Some(dst) = dst {
            if let Ok(n) = Ipv4Net::new(dst, prefix) {
                out.push(n.trunc());
            }
        }
    }
    Ok(out)
}

/// MTU of the interface carrying the host's default route (1500 if none).
pub fn default_route_mtu(nl: &Netlink) -> Result<u32, Error> {
    for msg in ipv4_routes(nl)? {
        if msg.header.destination_prefix_length != 0 || msg.header.table != 254 {
            continue;
        }
        let oif = msg.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        });
        if let Some(oif) = oif {
            if let Some(mtu) = nl.mtu(oif)? {
                return Ok(mtu);
            }
        }
    }
    Ok(1500)
}

/// `ip route add default via gateway` in the namespace `nl` is bound to.
pub fn add_default_route(nl: &Netlink, gateway: Ipv4Addr, index: u32) -> Result<(), Error> {
    tracing::info!(target: "explain::netlink", "RTM_NEWROUTE default via {gateway} (in the container's netns)");
    let msg = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(index)
        .build();
    match nl.change(RouteNetlinkMessage::NewRoute(msg), true) {
        Ok(()) => Ok(()),
        Err(e) if e.errno == libc::EEXIST => Ok(()),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("adding default route via {gateway}"))
            .into()),
    }
}
