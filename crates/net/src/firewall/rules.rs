//! Rendering a root's rules as nft commands (pure, unit-tested).
//!
//! Per root `<k>`:
//! - `pre-<k>` (nat prerouting) and `out-<k>` (nat output) jump to
//!   `ports-<k>` for packets addressed to the host (`fib daddr type local`),
//!   which DNATs each published port to its container: the client's source
//!   address is kept.
//! - `post-<k>` (nat postrouting): masquerade the subnet's egress (not for
//!   `--internal`), hairpin (a container reaching a published port of its
//!   own network) and 127.0.0.1 clients (with route_localnet on the bridge).
//! - `fwd-<k>` (filter forward): isolate networks from each other (DNATed
//!   published-port traffic excepted) and keep internal networks internal.

use crate::state::{Endpoint, Network};

pub const TABLE: &str = "inet minicompose";

/// A short stable key for a `--root` path (FNV-1a, 8 hex digits).
pub fn root_key(root: &std::path::Path) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in root.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:08x}", (h ^ (h >> 32)) as u32)
}

/// The nft commands for one root, in two parts so that a change of
/// published ports alone rewrites only the ports chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    /// Table, base chains and their rules (the networks' own rules); the
    /// ports chain is created (not flushed) so the jumps to it resolve. For
    /// an empty root: the commands deleting its chains.
    pub base: String,
    /// The ports chain, flushed and refilled with one DNAT per published
    /// port (empty for an empty root).
    pub ports: String,
    /// Whether the root has no networks left (its chains get deleted).
    pub empty: bool,
}

impl RuleSet {
    /// Everything, as one transaction.
    pub fn script(&self) -> String {
        format!("{}{}", self.base, self.ports)
    }
}

struct Chains {
    pre: String,
    out: String,
    ports: String,
    post: String,
    fwd: String,
}

impl Chains {
    fn new(key: &str) -> Chains {
        Chains {
            pre: format!("pre-{key}"),
            out: format!("out-{key}"),
            ports: format!("ports-{key}"),
            post: format!("post-{key}"),
            fwd: format!("fwd-{key}"),
        }
    }
}

/// Render the commands that make the root's chains exactly match
/// `networks` and the `endpoints` on them.
pub fn render(key: &str, networks: &[Network], endpoints: &[Endpoint]) -> RuleSet {
    let c = Chains::new(key);
    let mut s = format!("add table {TABLE}\n");
    // Numeric priorities (dstnat = -100, srcnat = 100, filter = 0): nft 1.0.6
    // (Debian 12) rejects the named `dstnat` on an inet output hook.
    let base = [
        (
            &c.pre,
            "type nat hook prerouting priority -100; policy accept;",
        ),
        (&c.out, "type nat hook output priority -100; policy accept;"),
        (
            &c.post,
            "type nat hook postrouting priority 100; policy accept;",
        ),
        (
            &c.fwd,
            "type filter hook forward priority 0; policy accept;",
        ),
    ];
    for (name, spec) in &base {
        s.push_str(&format!("add chain {TABLE} {name} {{ {spec} }}\n"));
        s.push_str(&format!("flush chain {TABLE} {name}\n"));
    }
    s.push_str(&format!("add chain {TABLE} {}\n", c.ports));
    if networks.is_empty() {
        // Flushed above, so nothing jumps to the ports chain any more.
        s.push_str(&format!("flush chain {TABLE} {}\n", c.ports));
        for name in [&c.pre, &c.out, &c.post, &c.fwd, &c.ports] {
            s.push_str(&format!("delete chain {TABLE} {name}\n"));
        }
        return RuleSet {
            base: s,
            ports: String::new(),
            empty: true,
        };
    }
    let mut p = format!(
        "add chain {TABLE} {}\nflush chain {TABLE} {}\n",
        c.ports, c.ports
    );
    let rule = |s: &mut String, chain: &str, body: String| {
        s.push_str(&format!("add rule {TABLE} {chain} {body}\n"))
    };
    rule(
        &mut s,
        &c.pre,
        format!("fib daddr type local jump {}", c.ports),
    );
    rule(
        &mut s,
        &c.out,
        format!("fib daddr type local jump {}", c.ports),
    );
    for net in networks {
        let b = &net.bridge;
        let subnet = net.subnet;
        if net.internal {
            rule(
                &mut s,
                &c.fwd,
                format!("iifname \"{b}\" oifname != \"{b}\" drop"),
            );
            rule(
                &mut s,
                &c.fwd,
                format!("oifname \"{b}\" iifname != \"{b}\" drop"),
            );
            continue;
        }
        rule(
            &mut s,
            &c.fwd,
            format!("iifname \"{b}\" oifname \"mc-*\" oifname != \"{b}\" ct status ! dnat drop"),
        );
        rule(
            &mut s,
            &c.fwd,
            format!("oifname \"{b}\" iifname \"mc-*\" iifname != \"{b}\" ct status ! dnat drop"),
        );
        rule(
            &mut s,
            &c.post,
            format!("meta nfproto ipv4 ip saddr {subnet} oifname != \"{b}\" masquerade"),
        );
        rule(
            &mut s,
            &c.post,
            format!(
                "meta nfproto ipv4 ip saddr {subnet} oifname \"{b}\" ct status dnat masquerade"
            ),
        );
        rule(
            &mut s,
            &c.post,
            format!("meta nfproto ipv4 ip saddr 127.0.0.0/8 oifname \"{b}\" masquerade"),
        );
        for ep in endpoints.iter().filter(|e| e.network == net.name) {
            for m in &ep.ports {
                let daddr = m
                    .host_ip
                    .map(|ip| format!("ip daddr {ip} "))
                    .unwrap_or_default();
                rule(
                    &mut p,
                    &c.ports,
                    format!(
                        "meta nfproto ipv4 {daddr}{} dport {} dnat ip to {}:{}",
                        m.proto, m.host_port, ep.ip, m.container_port
                    ),
                );
            }
        }
    }
    RuleSet {
        base: s,
        ports: p,
        empty: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::parse;
    use crate::state::NetnsRef;

    fn net(name: &str, bridge: &str, subnet: &str, internal: bool) -> Network {
        Network {
            name: name.into(),
            id: "0".repeat(64),
            bridge: bridge.into(),
            subnet: subnet.parse().unwrap(),
            gateway: crate::ipam::gateway(&subnet.parse().unwrap()),
            internal,
            created: 0,
            labels: Default::default(),
        }
    }

    fn ep(network: &str, ip: &str, ports: &[&str]) -> Endpoint {
        Endpoint {
            container_id: "c".into(),
            container_name: "c".into(),
            network: network.into(),
            interface: "eth0".into(),
            host_veth: "mcv00000000".into(),
            ip: ip.parse().unwrap(),
            mac: String::new(),
            dns_names: vec![],
            ports: ports.iter().flat_map(|p| parse(p).unwrap()).collect(),
            dns_servers: vec![],
            netns: NetnsRef {
                path: "/x".into(),
                pid: None,
                pid_start: None,
                inode: 0,
            },
        }
    }

    #[test]
    fn key_is_stable_and_short() {
        let k = root_key(std::path::Path::new("/var/lib/minicompose"));
        assert_eq!(k.len(), 8);
        assert_eq!(k, root_key(std::path::Path::new("/var/lib/minicompose")));
        assert_ne!(k, root_key(std::path::Path::new("/tmp/x")));
    }

    #[test]
    fn renders_ports_masquerade_and_isolation() {
        let nets = [
            net("a", "mc-aaaaaaaa", "10.89.0.0/24", false),
            net("i", "mc-iiiiiiii", "10.89.1.0/24", true),
        ];
        let eps = [
            ep("a", "10.89.0.2", &["8080:80", "127.0.0.1:5353:53/udp"]),
            ep("i", "10.89.1.2", &["9000:90"]),
        ];
        let r = render("k", &nets, &eps);
        assert!(!r.empty);
        let s = &r.script();
        assert!(
            !r.base.contains("dnat ip to"),
            "ports only in the ports part"
        );
        assert!(r.ports.starts_with(
            "add chain inet minicompose ports-k\nflush chain inet minicompose ports-k\n"
        ));
        assert!(s.contains("add chain inet minicompose pre-k { type nat hook prerouting priority -100; policy accept; }\nflush chain inet minicompose pre-k\n"));
        assert!(s.contains("add rule inet minicompose out-k fib daddr type local jump ports-k\n"));
        assert!(s.contains("add rule inet minicompose ports-k meta nfproto ipv4 tcp dport 8080 dnat ip to 10.89.0.2:80\n"));
        assert!(s.contains(
            "ports-k meta nfproto ipv4 ip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.89.0.2:53\n"
        ));
        assert!(s.contains("ip saddr 10.89.0.0/24 oifname != \"mc-aaaaaaaa\" masquerade"));
        assert!(
            !s.contains("10.89.1.0/24 oifname != \"mc-iiiiiiii\" masquerade"),
            "internal: no egress"
        );
        assert!(!s.contains("dport 9000"), "internal: no published ports");
        assert!(s.contains("iifname \"mc-iiiiiiii\" oifname != \"mc-iiiiiiii\" drop"));
        assert!(!s.contains("delete chain"));
    }

    #[test]
    fn empty_root_deletes_its_chains() {
        let r = render("k", &[], &[]);
        assert!(r.empty);
        assert!(r.base.ends_with("delete chain inet minicompose ports-k\n"));
        assert!(!r.base.contains("add rule"));
        assert!(r.ports.is_empty());
    }

    #[test]
    fn ports_only_change_leaves_the_base_alone() {
        let nets = [net("a", "mc-aaaaaaaa", "10.89.0.0/24", false)];
        let one = render("k", &nets, &[ep("a", "10.89.0.2", &["8080:80"])]);
        let two = render(
            "k",
            &nets,
            &[
                ep("a", "10.89.0.2", &["8080:80"]),
                ep("a", "10.89.0.3", &[]),
            ],
        );
        assert_eq!(one, two, "an endpoint without ports changes nothing");
        let three = render(
            "k",
            &nets,
            &[
                ep("a", "10.89.0.2", &["8080:80"]),
                ep("a", "10.89.0.4", &["81:80"]),
            ],
        );
        assert_eq!(one.base, three.base);
        assert_ne!(one.ports, three.ports);
    }
}
