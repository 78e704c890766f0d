//! The network's bridge: created if missing, gateway address, up.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context as _;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::LinkBridge;

use super::Netlink;
use crate::Error;

/// A fixed MAC for the bridge (locally administered, from its name). Left
/// alone, a bridge takes the lowest MAC of its ports and changes it when
/// that port goes, leaving stale ARP entries for the gateway in every
/// container (DNS and egress stall for seconds after a container leaves).
fn bridge_mac(name: &str) -> [u8; 6] {
    let h = crate::firewall::root_key(std::path::Path::new(name));
    let n = u32::from_str_radix(&h, 16).unwrap_or(0).to_be_bytes();
    [0x02, 0x6d, n[0], n[1], n[2], n[3]]
}

/// Make sure bridge `name` exists with `gateway/prefix` and is up.
/// Idempotent: repairs a bridge a killed process left half-configured.
pub fn ensure_bridge(
    nl: &Netlink,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    mtu: u32,
) -> Result<(), Error> {
    if nl.link(name)?.is_none() {
        let mac = bridge_mac(name);
        tracing::info!(
            target: "explain::netlink",
            "RTM_NEWLINK {name} type bridge mtu {mtu} address {}",
            mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
        );
        let msg = LinkBridge::new(name).mtu(mtu).address(mac.to_vec()).build();
        match nl.change(RouteNetlinkMessage::NewLink(msg), true) {
            Ok(()) => {}
            Err(e) if e.errno == libc::EEXIST => {}
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("creating bridge {name}"))
                    .into())
            }
        }
    }
    let index = nl.index(name)?;
    super::addr::ensure_address(nl, index, name, IpAddr::V4(gateway), prefix)
        .context("configuring the bridge")?;
    nl.set_up(name)
}
