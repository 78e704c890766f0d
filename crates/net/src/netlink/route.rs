//! Routes: listing the host's, the default route's MTU, and a container's
//! default route.

use std::net::Ipv4Addr;

use anyhow::Context as _;
use futures_util::TryStreamExt as _;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::RouteMessageBuilder;

use super::{is_errno, Netlink};
use crate::Error;

/// Every IPv4 route destination on the host, any table (for subnet choice).
pub async fn host_routes(nl: &Netlink) -> Result<Vec<Ipv4Net>, Error> {
    let mut out = Vec::new();
    let mut routes = nl
        .handle()
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(msg) = routes.try_next().await.context("listing routes")? {
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
pub async fn default_route_mtu(nl: &Netlink) -> Result<u32, Error> {
    let mut routes = nl
        .handle()
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(msg) = routes.try_next().await.context("listing routes")? {
        if msg.header.destination_prefix_length != 0 || msg.header.table != 254 {
            continue;
        }
        let oif = msg.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        });
        if let Some(oif) = oif {
            if let Some(mtu) = nl.mtu(oif).await? {
                return Ok(mtu);
            }
        }
    }
    Ok(1500)
}

/// `ip route add default via gateway` in the namespace `nl` is bound to.
pub async fn add_default_route(nl: &Netlink, gateway: Ipv4Addr, index: u32) -> Result<(), Error> {
    tracing::info!(target: "explain::netlink", "RTM_NEWROUTE default via {gateway} (in the container's netns)");
    let msg = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(index)
        .build();
    match nl.handle().route().add(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("adding default route via {gateway}"))
            .into()),
    }
}
