//! IP address management: choosing a subnet that overlaps nothing the host
//! already routes or addresses, and handing out addresses inside it.
//! Callers hold the root's lock, so two processes never pick the same.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::Error;

/// Candidate pools, tried in order: 10.89.0.0/24 … 10.89.255.0/24 (as
/// podman), then 10.90.0.0/24 … 10.99.255.0/24.
fn candidates() -> impl Iterator<Item = Ipv4Net> {
    (89u8..=99).flat_map(|b| {
        (0u8..=255).filter_map(move |c| Ipv4Net::new(Ipv4Addr::new(10, b, c, 0), 24).ok())
    })
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first candidate subnet overlapping none of `taken` (host routes,
/// host addresses with their prefixes, other networks). Default routes
/// (0.0.0.0/0) are ignored: everything overlaps them.
pub fn choose_subnet(taken: &[Ipv4Net]) -> Result<Ipv4Net, Error> {
    let taken: Vec<&Ipv4Net> = taken.iter().filter(|n| n.prefix_len() > 0).collect();
    candidates()
        .find(|c| !taken.iter().any(|t| overlaps(c, t)))
        .ok_or_else(|| {
            Error::Invalid(
                "no free subnet left in 10.89.0.0-10.99.255.0: pass one with --subnet".into(),
            )
        })
}

/// Check a user-given `--subnet`: a private-looking IPv4 network that is
/// big enough and overlaps nothing in `taken`.
pub fn check_subnet(subnet: &Ipv4Net, taken: &[(Ipv4Net, String)]) -> Result<(), Error> {
    if subnet.network() != subnet.addr() {
        return Err(Error::Invalid(format!(
            "invalid --subnet {subnet}: host bits are set, did you mean {}?",
            subnet.trunc()
        )));
    }
    if subnet.prefix_len() > 30 {
        return Err(Error::Invalid(format!(
            "invalid --subnet {subnet}: too small, use a prefix of /30 or shorter"
        )));
    }
    if subnet.prefix_len() < 8 {
        return Err(Error::Invalid(format!(
            "invalid --subnet {subnet}: too large, use a prefix of /8 or longer"
        )));
    }
    for (t, what) in taken {
        if t.prefix_len() > 0 && overlaps(subnet, t) {
            return Err(Error::Invalid(format!(
                "--subnet {subnet} overlaps {t} ({what}): choose another subnet"
            )));
        }
    }
    Ok(())
}

/// The gateway: first usable address.
pub fn gateway(subnet: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// An address for a new endpoint: `requested` if given (must be inside the
/// subnet, not the network/broadcast/gateway, not in use), else the lowest
/// free one.
pub fn allocate(
    subnet: &Ipv4Net,
    gateway: Ipv4Addr,
    used: &[Ipv4Addr],
    requested: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, Error> {
    let first = u32::from(subnet.network()) + 1;
    let last = u32::from(subnet.broadcast()) - 1;
    if let Some(ip) = requested {
        let n = u32::from(ip);
        if !subnet.contains(&ip) || n < first || n > last {
            return Err(Error::Invalid(format!(
                "--ip {ip} is not a usable address of subnet {subnet}: pick one in {}-{}",
                Ipv4Addr::from(first),
                Ipv4Addr::from(last)
            )));
        }
        if ip == gateway {
            return Err(Error::Invalid(format!(
                "--ip {ip} is the network's gateway: pick another address"
            )));
        }
        if used.contains(&ip) {
            return Err(Error::Invalid(format!(
                "--ip {ip} is already in use on this network: pick another address"
            )));
        }
        return Ok(ip);
    }
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| *ip != gateway && !used.contains(ip))
        .ok_or_else(|| Error::Invalid(format!("no free address left in subnet {subnet}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn subnet_skips_routes_and_addresses() {
        assert_eq!(choose_subnet(&[]).unwrap(), net("10.89.0.0/24"));
        let taken = [
            net("0.0.0.0/0"),
            net("10.89.0.0/24"),
            net("10.89.1.7/32"),
            net("10.89.2.0/23"),
        ];
        assert_eq!(choose_subnet(&taken).unwrap(), net("10.89.4.0/24"));
        // A broad route covering the whole 10.89/16 pool moves to 10.90.
        assert_eq!(
            choose_subnet(&[net("10.89.0.0/16")]).unwrap(),
            net("10.90.0.0/24")
        );
        assert!(choose_subnet(&[net("10.0.0.0/8")]).is_err());
    }

    #[test]
    fn subnet_checks() {
        let taken = [(net("192.0.2.0/24"), "eth0".to_string())];
        assert!(check_subnet(&net("10.1.0.0/16"), &taken).is_ok());
        let e = check_subnet(&net("192.0.2.128/25"), &taken)
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlaps 192.0.2.0/24 (eth0)"), "{e}");
        assert!(check_subnet(&net("10.1.0.1/16"), &taken).is_err());
        assert!(check_subnet(&net("10.1.0.0/31"), &taken).is_err());
    }

    #[test]
    fn allocation() {
        let s = net("10.89.0.0/29");
        let gw = gateway(&s);
        assert_eq!(gw, "10.89.0.1".parse::<Ipv4Addr>().unwrap());
        let a = allocate(&s, gw, &[], None).unwrap();
        assert_eq!(a.to_string(), "10.89.0.2");
        let b = allocate(&s, gw, &[a], None).unwrap();
        assert_eq!(b.to_string(), "10.89.0.3");
        let want = "10.89.0.6".parse().unwrap();
        assert_eq!(allocate(&s, gw, &[a], Some(want)).unwrap(), want);
        assert!(allocate(&s, gw, &[a], Some(a)).is_err());
        assert!(allocate(&s, gw, &[], Some(gw)).is_err());
        assert!(allocate(&s, gw, &[], Some("10.89.0.7".parse().unwrap())).is_err());
        assert!(allocate(&s, gw, &[], Some("10.1.0.7".parse().unwrap())).is_err());
        let full: Vec<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(10, 89, 0, i)).collect();
        assert!(allocate(&s, gw, &full, None).is_err());
    }
}
