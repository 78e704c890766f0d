//! Published ports: parsing `-p [IP:][HOST[-HOST2]:]CONTAINER[-C2][/tcp|/udp]`
//! into one mapping per port, and checking them against each other and
//! against sockets already bound on the host.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest range accepted in one `-p` (each port is one DNAT rule).
pub const MAX_RANGE: u32 = 1024;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One published port, after parsing. `host_port` 0 means "pick a free
/// one" (`-p 80`); it is filled in before anything is configured.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortMapping {
    pub proto: Proto,
    /// None: every host address (0.0.0.0).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
}

impl PortMapping {
    /// Docker's `port` output: `80/tcp -> 0.0.0.0:8080`.
    pub fn docker_line(&self) -> String {
        format!(
            "{}/{} -> {}:{}",
            self.container_port,
            self.proto,
            self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.host_port
        )
    }

    fn clashes(&self, other: &PortMapping) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && self.host_port != 0
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

fn bad(spec: &str, why: &str) -> Error {
    Error::Invalid(format!(
        "invalid port specification {spec:?}: {why} (expected [IP:][HOST[-HOST2]:]CONTAINER[-C2][/tcp|/udp])"
    ))
}

fn parse_range(spec: &str, s: &str) -> Result<(u16, u16), Error> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let p = |x: &str| -> Result<u16, Error> {
        match x.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(spec, &format!("{x:?} is not a port number 1-65535"))),
            Ok(n) => Ok(n),
        }
    };
    let (a, b) = (p(a)?, p(b)?);
    if b < a {
        return Err(bad(spec, &format!("range {s} ends before it starts")));
    }
    if u32::from(b - a) + 1 > MAX_RANGE {
        return Err(bad(
            spec,
            &format!("range {s} is longer than {MAX_RANGE} ports"),
        ));
    }
    Ok((a, b))
}

/// Parse one `-p` value into one mapping per port.
pub fn parse(spec: &str) -> Result<Vec<PortMapping>, Error> {
    let (body, proto) = match spec.rsplit_once('/') {
        Some((b, "tcp")) => (b, Proto::Tcp),
        Some((b, "udp")) => (b, Proto::Udp),
        Some((_, other)) => return Err(bad(spec, &format!("unknown protocol {other:?}"))),
        None => (spec, Proto::Tcp),
    };
    let parts: Vec<&str> = body.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(*h), *c),
        [ip, h, c] => (Some(*ip), (!h.is_empty()).then_some(*h), *c),
        _ => return Err(bad(spec, "too many ':'")),
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(s) => {
            let s = s.trim_start_matches('[').trim_end_matches(']');
            let ip: Ipv4Addr = s
                .parse()
                .map_err(|_| bad(spec, &format!("{s:?} is not an IPv4 address")))?;
            (!ip.is_unspecified()).then_some(ip)
        }
    };
    let (c1, c2) = parse_range(spec, container)?;
    let (h1, h2) = match host {
        Some(h) => parse_range(spec, h)?,
        None => (0, 0),
    };
    if host.is_some() && h2 - h1 != c2 - c1 {
        return Err(bad(spec, "host and container ranges differ in length"));
    }
    if host.is_none() && c2 != c1 {
        return Err(bad(
            spec,
            "a container range needs a host range of the same length",
        ));
    }
    Ok((0..=(c2 - c1))
        .map(|i| PortMapping {
            proto,
            host_ip,
            host_port: if host.is_some() { h1 + i } else { 0 },
            container_port: c1 + i,
        })
        .collect())
}

/// Reject mappings that clash with each other or with `existing` ones
/// (other containers' published ports).
pub fn check_clashes(new: &[PortMapping], existing: &[(PortMapping, String)]) -> Result<(), Error> {
    for (i, m) in new.iter().enumerate() {
        if let Some(o) = new[..i].iter().find(|o| m.clashes(o)) {
            return Err(Error::Invalid(format!(
                "port {}/{} is published twice ({} and {})",
                m.host_port,
                m.proto,
                o.docker_line(),
                m.docker_line()
            )));
        }
        if let Some((_, owner)) = existing.iter().find(|(o, _)| m.clashes(o)) {
            return Err(Error::Invalid(format!(
                "port {}/{} is already allocated (published by container {owner}): choose another host port",
                m.host_port, m.proto
            )));
        }
    }
    Ok(())
}

/// Check that the host itself has nothing bound on each port (a kernel DNAT
/// rule would silently shadow it), and fill in ports left to us (`-p 80`).
pub fn check_host_and_pick(mappings: &mut [PortMapping]) -> Result<(), Error> {
    for m in mappings.iter_mut() {
        let ip = m.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let addr = SocketAddrV4::new(ip, m.host_port);
        let bound = match m.proto {
            Proto::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
            Proto::Udp => UdpSocket::bind(addr).and_then(|s| s.local_addr()),
        };
        match bound {
            Ok(local) => m.host_port = local.port(),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(Error::Invalid(format!(
                    "port {}/{} is already in use on the host ({}:{}): stop what listens there or choose another host port",
                    m.host_port, m.proto, ip, m.host_port
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                return Err(Error::Invalid(format!(
                    "cannot publish on {ip}:{}: {ip} is not an address of this host",
                    m.host_port
                )))
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("checking host port {}:{}/{}", ip, m.host_port, m.proto))
                    .into())
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortMapping {
        let v = parse(spec).unwrap();
        assert_eq!(v.len(), 1, "{spec}");
        v[0]
    }

    #[test]
    fn parses_docker_forms() {
        let m = one("8080:80");
        assert_eq!(
            (m.proto, m.host_ip, m.host_port, m.container_port),
            (Proto::Tcp, None, 8080, 80)
        );
        let m = one("127.0.0.1:53:5353/udp");
        assert_eq!(m.proto, Proto::Udp);
        assert_eq!(m.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!((m.host_port, m.container_port), (53, 5353));
        assert_eq!(one("80").host_port, 0);
        assert_eq!(one("127.0.0.1::80").host_port, 0);
        assert_eq!(one("0.0.0.0:1:2").host_ip, None);
        let r = parse("9000-9002:7000-7002/tcp").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!((r[2].host_port, r[2].container_port), (9002, 7002));
        assert_eq!(one("8080:80").docker_line(), "80/tcp -> 0.0.0.0:8080");
    }

    #[test]
    fn rejects_bad_specs() {
        for spec in [
            "",
            "x",
            "0:80",
            "70000:80",
            "80:80/sctp",
            "1.2.3:80:80",
            "1:2:3:4",
            "9000-9001:80",
            "9002-9000:80-82",
            "1-2000:1-2000",
            "8000-8001",
        ] {
            let e = parse(spec).unwrap_err();
            assert!(e.is_user_error(), "{spec}");
            assert!(
                e.to_string().contains("invalid port specification"),
                "{spec}: {e}"
            );
        }
    }

    #[test]
    fn clashes() {
        let a = parse("8080:80").unwrap();
        let lo = parse("127.0.0.1:8080:81").unwrap();
        let other_ip = parse("127.0.0.2:8080:81").unwrap();
        let udp = parse("8080:80/udp").unwrap();
        let owned =
            |v: &[PortMapping]| v.iter().map(|m| (*m, "c1".to_string())).collect::<Vec<_>>();
        assert!(check_clashes(&lo, &owned(&a))
            .unwrap_err()
            .to_string()
            .contains("port 8080/tcp"));
        assert!(check_clashes(&other_ip, &owned(&lo)).is_ok());
        assert!(check_clashes(&udp, &owned(&a)).is_ok());
        let twice = [a[0], lo[0]];
        assert!(check_clashes(&twice, &[]).is_err());
    }

    #[test]
    fn host_check_finds_listener_and_picks_free_port() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut m = parse(&format!("127.0.0.1:{port}:80")).unwrap();
        let e = check_host_and_pick(&mut m).unwrap_err().to_string();
        assert!(
            e.contains(&format!("port {port}/tcp is already in use")),
            "{e}"
        );
        let mut any = parse("127.0.0.1::80").unwrap();
        check_host_and_pick(&mut any).unwrap();
        assert_ne!(any[0].host_port, 0);
    }
}
