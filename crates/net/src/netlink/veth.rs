//! The container's veth pair: the peer is created directly inside the
//! container's namespace (no window where it sits on the host), the host
//! end joins the bridge; inside: address, lo and the interface up, default
//! route via the gateway.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::Context as _;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{LinkUnspec, LinkVeth};

use super::Netlink;
use crate::Error;

pub struct VethRequest<'a> {
    pub host_name: &'a str,
    pub peer_name: &'a str,
    pub netns: &'a Path,
    pub bridge: &'a str,
    pub mtu: u32,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// Create and configure the pair. On failure the host end is deleted (and
/// with it the peer), so nothing is left half-configured.
pub fn create_veth(host: &Netlink, req: &VethRequest<'_>) -> Result<(), Error> {
    let result = create_inner(host, req);
    if result.is_err() {
        let _ = host.delete_link(req.host_name);
    }
    result
}

fn create_inner(host: &Netlink, req: &VethRequest<'_>) -> Result<(), Error> {
    let ns = std::fs::File::open(req.netns)
        .with_context(|| format!("opening network namespace {}", req.netns.display()))?;
    let peer = LinkUnspec::new_with_name(req.peer_name)
        .mtu(req.mtu)
        .address(req.mac.to_vec())
        .setns_by_fd(ns.as_raw_fd())
        .build();
    let msg = LinkVeth::new(req.host_name, req.peer_name)
        .mtu(req.mtu)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    tracing::info!(
        target: "explain::netlink",
        "RTM_NEWLINK {} type veth peer {} (created in netns {}) mtu {}",
        req.host_name, req.peer_name, req.netns.display(), req.mtu
    );
    host.change(RouteNetlinkMessage::NewLink(msg), true)
        .with_context(|| format!("creating veth pair {}/{}", req.host_name, req.peer_name))?;
    drop(ns);

    let bridge = host.index(req.bridge)?;
    let index = host.index(req.host_name)?;
    tracing::info!(target: "explain::netlink", "RTM_NEWLINK {} master {} up", req.host_name, req.bridge);
    host.set_link(
        LinkUnspec::new_with_index(index)
            .controller(bridge)
            .up()
            .build(),
    )
    .with_context(|| format!("attaching {} to {}", req.host_name, req.bridge))?;

    let inside = Netlink::in_netns(req.netns)?;
    let peer_index = inside.index(req.peer_name)?;
    super::addr::ensure_address(
        &inside,
        peer_index,
        req.peer_name,
        IpAddr::V4(req.ip),
        req.prefix,
    )?;
    inside.set_up("lo")?;
    inside.set_up(req.peer_name)?;
    super::route::add_default_route(&inside, req.gateway, peer_index)
}
