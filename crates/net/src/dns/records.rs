//! The DNS view of the endpoints: who may see which names (pure).
//!
//! A query is scoped by its source address: a container sees the names of
//! every network it is attached to, nothing else. Names of containers on
//! networks the asker is not on, and single-label names we do not know,
//! get NXDOMAIN here (never forwarded: they would leak container names to
//! the upstream and cannot exist there). Everything else is forwarded.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;

use crate::state::{Endpoint, Network};

/// What the server should do with one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A records (for an A question).
    Addrs(Vec<Ipv4Addr>),
    /// The name exists but has no record of the asked type (AAAA, MX, …).
    NoData,
    /// PTR answer.
    Ptr(String),
    NxDomain,
    /// Ask these upstreams, in order.
    Forward(Vec<SocketAddr>),
}

/// Question types we tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    A,
    Ptr,
    Other,
}

#[derive(Debug, Default, Clone)]
pub struct Records {
    /// Container address → container id.
    owner: HashMap<Ipv4Addr, String>,
    /// Container id → networks it is on.
    networks_of: HashMap<String, BTreeSet<String>>,
    /// (network, lowercase name) → addresses.
    names: HashMap<(String, String), Vec<Ipv4Addr>>,
    /// (network, address) → the container's primary name.
    reverse: HashMap<(String, Ipv4Addr), String>,
    /// Container id → `--dns` upstreams.
    upstreams_of: HashMap<String, Vec<SocketAddr>>,
    /// Every network's subnet (PTR questions inside them are ours).
    subnets: Vec<Ipv4Net>,
    /// Gateways of networks with at least one endpoint: where we listen.
    pub listen: Vec<Ipv4Addr>,
    /// Upstreams for everyone else.
    pub default_upstreams: Vec<SocketAddr>,
}

impl Records {
    pub fn build(
        networks: &[Network],
        endpoints: &[Endpoint],
        default_upstreams: Vec<SocketAddr>,
    ) -> Records {
        let mut r = Records {
            default_upstreams,
            ..Default::default()
        };
        r.subnets = networks.iter().map(|n| n.subnet).collect();
        for ep in endpoints {
            let Some(net) = networks.iter().find(|n| n.name == ep.network) else {
                continue;
            };
            r.owner.insert(ep.ip, ep.container_id.clone());
            r.networks_of
                .entry(ep.container_id.clone())
                .or_default()
                .insert(ep.network.clone());
            for name in &ep.dns_names {
                let v = r
                    .names
                    .entry((ep.network.clone(), name.to_ascii_lowercase()))
                    .or_default();
                if !v.contains(&ep.ip) {
                    v.push(ep.ip);
                }
            }
            if let Some(first) = ep.dns_names.first() {
                r.reverse.insert((ep.network.clone(), ep.ip), first.clone());
            }
            if !ep.dns_servers.is_empty() {
                let ups = ep
                    .dns_servers
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, 53))
                    .collect();
                r.upstreams_of.insert(ep.container_id.clone(), ups);
            }
            if !r.listen.contains(&net.gateway) {
                r.listen.push(net.gateway);
            }
        }
        for v in r.names.values_mut() {
            v.sort();
        }
        r
    }

    /// Number of endpoints known.
    pub fn endpoint_count(&self) -> usize {
        self.owner.len()
    }

    /// Answer `name` (any case, with or without the final dot) asked by `src`.
    pub fn lookup(&self, src: IpAddr, name: &str, qtype: QType) -> Answer {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let asker = match src {
            IpAddr::V4(ip) => self.owner.get(&ip),
            IpAddr::V6(_) => None,
        };
        let visible: Vec<&String> = asker
            .and_then(|id| self.networks_of.get(id))
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        let upstreams = asker
            .and_then(|id| self.upstreams_of.get(id))
            .cloned()
            .unwrap_or_else(|| self.default_upstreams.clone());

        if let Some(ip) = parse_arpa(&name) {
            for net in &visible {
                if let Some(n) = self.reverse.get(&((*net).clone(), ip)) {
                    return if qtype == QType::Ptr {
                        Answer::Ptr(n.clone())
                    } else {
                        Answer::NoData
                    };
                }
            }
            if self.subnets.iter().any(|s| s.contains(&ip)) {
                return Answer::NxDomain;
            }
            return Answer::Forward(upstreams);
        }

        let mut addrs: Vec<Ipv4Addr> = Vec::new();
        let mut found = false;
        for net in &visible {
            if let Some(v) = self.names.get(&((*net).clone(), name.clone())) {
                found = true;
                for ip in v {
                    if !addrs.contains(ip) {
                        addrs.push(*ip);
                    }
                }
            }
        }
        if found {
            return if qtype == QType::A {
                Answer::Addrs(addrs)
            } else {
                Answer::NoData
            };
        }
        if !name.contains('.') || self.names.keys().any(|(_, n)| *n == name) {
            return Answer::NxDomain;
        }
        Answer::Forward(upstreams)
    }
}

/// `4.3.2.1.in-addr.arpa` → 1.2.3.4.
fn parse_arpa(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let mut octets: Vec<u8> = rest
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if octets.len() != 4 {
        return None;
    }
    octets.reverse();
    Some(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
}

/// Upstreams from `MINICOMPOSE_DNS_UPSTREAM` (comma-separated `ip[:port]`),
/// else the host's resolv.conf nameservers on port 53. Loopback resolvers
/// (systemd-resolved's 127.0.0.53) work: the server runs on the host.
pub fn default_upstreams() -> Vec<SocketAddr> {
    if let Ok(v) = std::env::var("MINICOMPOSE_DNS_UPSTREAM") {
        return v
            .split(',')
            .filter_map(|s| {
                let s = s.trim();
                s.parse::<SocketAddr>()
                    .ok()
                    .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
            })
            .collect();
    }
    crate::files::ResolvConf::host()
        .nameservers
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NetnsRef;

    fn net(name: &str, subnet: &str) -> Network {
        let subnet: Ipv4Net = subnet.parse().unwrap();
        Network {
            name: name.into(),
            id: String::new(),
            bridge: format!("mc-{name}"),
            subnet,
            gateway: crate::ipam::gateway(&subnet),
            internal: false,
            created: 0,
            labels: Default::default(),
        }
    }

    fn ep(id: &str, network: &str, ip: &str, names: &[&str], dns: &[&str]) -> Endpoint {
        Endpoint {
            container_id: id.into(),
            container_name: id.into(),
            network: network.into(),
            interface: "eth0".into(),
            host_veth: String::new(),
            ip: ip.parse().unwrap(),
            mac: String::new(),
            dns_names: names.iter().map(|s| s.to_string()).collect(),
            ports: vec![],
            dns_servers: dns.iter().map(|s| s.parse().unwrap()).collect(),
            netns: NetnsRef {
                path: "/x".into(),
                pid: None,
                pid_start: None,
                inode: 0,
            },
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn scoped_by_source_network() {
        let nets = [net("a", "10.89.0.0/24"), net("b", "10.89.1.0/24")];
        let eps = [
            ep("c1", "a", "10.89.0.2", &["web", "alias1"], &[]),
            ep("c2", "a", "10.89.0.3", &["db", "shared"], &["192.0.2.53"]),
            ep("c3", "b", "10.89.1.2", &["other", "shared"], &[]),
        ];
        let up: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        let r = Records::build(&nets, &eps, vec![up]);
        assert_eq!(r.listen.len(), 2);
        let a = ip("10.89.0.2");
        assert_eq!(
            r.lookup(a, "DB.", QType::A),
            Answer::Addrs(vec!["10.89.0.3".parse().unwrap()])
        );
        assert_eq!(
            r.lookup(a, "alias1", QType::A),
            Answer::Addrs(vec!["10.89.0.2".parse().unwrap()])
        );
        assert_eq!(r.lookup(a, "db", QType::Other), Answer::NoData);
        assert_eq!(
            r.lookup(a, "shared", QType::A),
            Answer::Addrs(vec!["10.89.0.3".parse().unwrap()])
        );
        // Another network's names do not resolve, not even by forwarding.
        assert_eq!(r.lookup(a, "other", QType::A), Answer::NxDomain);
        assert_eq!(r.lookup(ip("10.89.1.2"), "web", QType::A), Answer::NxDomain);
        assert_eq!(
            r.lookup(ip("10.89.1.2"), "shared", QType::A),
            Answer::Addrs(vec!["10.89.1.2".parse().unwrap()])
        );
        // Unknown sources see no container names.
        assert_eq!(r.lookup(ip("127.0.0.1"), "web", QType::A), Answer::NxDomain);
        // Reverse lookups.
        assert_eq!(
            r.lookup(a, "3.0.89.10.in-addr.arpa", QType::Ptr),
            Answer::Ptr("db".into())
        );
        assert_eq!(
            r.lookup(a, "2.1.89.10.in-addr.arpa", QType::Ptr),
            Answer::NxDomain
        );
        // Other names go upstream: the container's --dns if given.
        assert_eq!(
            r.lookup(a, "example.org", QType::A),
            Answer::Forward(vec![up])
        );
        assert_eq!(
            r.lookup(ip("10.89.0.3"), "example.org", QType::A),
            Answer::Forward(vec!["192.0.2.53:53".parse().unwrap()])
        );
        assert_eq!(
            r.lookup(a, "1.2.0.192.in-addr.arpa", QType::Ptr),
            Answer::Forward(vec![up])
        );
    }

    #[test]
    fn arpa() {
        assert_eq!(
            parse_arpa("4.3.2.1.in-addr.arpa"),
            Some(Ipv4Addr::new(1, 2, 3, 4))
        );
        assert_eq!(parse_arpa("3.2.1.in-addr.arpa"), None);
        assert_eq!(parse_arpa("x.3.2.1.in-addr.arpa"), None);
    }
}
