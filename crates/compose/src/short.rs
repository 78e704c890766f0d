//! Short syntaxes that are strings in the file: ports and volumes.
//! Pure parsers, so the tables in the tests cover every form.

use crate::model::{BindOptions, Port, ServiceVolume, VolumeOptions};

/// `[IP:][HOST[-HOST]:]CONTAINER[-CONTAINER][/PROTO]` → one entry per container port.
pub fn parse_port(spec: &str) -> Result<Vec<Port>, String> {
    let bad = |why: &str| format!("invalid port \"{spec}\": {why}");
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad("protocol must be tcp, udp or sctp"));
    }
    // Split from the right: the container port, then the host port, then the IP
    // (which may itself hold colons: IPv6, bracketed or not).
    let (left, container) = match rest.rsplit_once(':') {
        Some((l, c)) => (Some(l), c),
        None => (None, rest),
    };
    let (ip, host) = match left {
        None => (None, None),
        Some(l) if l.starts_with('[') && l.ends_with(']') => (Some(l), None),
        Some(l) => match l.rsplit_once(':') {
            Some((ip, h)) => (Some(ip), Some(h)),
            None => (None, Some(l)),
        },
    };
    let host_ip = match ip {
        None => None,
        Some(ip) => {
            let ip = ip
                .strip_prefix('[')
                .and_then(|i| i.strip_suffix(']'))
                .unwrap_or(ip);
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(bad(&format!("\"{ip}\" is not an IP address")));
            }
            Some(ip.to_string())
        }
    };
    let (c_lo, c_hi) = range(container).map_err(|e| bad(&format!("container port {e}")))?;
    let host = host.filter(|h| !h.is_empty());
    let published: Vec<Option<String>> = match host {
        None => vec![None; (c_hi - c_lo + 1) as usize],
        Some(h) => {
            let (h_lo, h_hi) = range(h).map_err(|e| bad(&format!("host port {e}")))?;
            let n_host = h_hi - h_lo + 1;
            let n_cont = c_hi - c_lo + 1;
            if n_cont == 1 && n_host > 1 {
                vec![Some(h.to_string())]
            } else if n_host == n_cont {
                (h_lo..=h_hi).map(|p| Some(p.to_string())).collect()
            } else {
                return Err(bad("host and container port ranges have different sizes"));
            }
        }
    };
    Ok((c_lo..=c_hi)
        .zip(published)
        .map(|(target, published)| Port {
            name: None,
            mode: "ingress".into(),
            host_ip: host_ip.clone(),
            target,
            published,
            protocol: protocol.clone(),
            app_protocol: None,
        })
        .collect())
}

/// `"80"` or `"8000-8005"` → (low, high).
pub fn range(s: &str) -> Result<(u16, u16), String> {
    let num = |p: &str| -> Result<u16, String> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("must be a number, not \"{p}\""));
        }
        match p.parse::<u32>() {
            Ok(v) if (1..=65535).contains(&v) => Ok(v as u16),
            _ => Err(format!("must be between 1 and 65535, not \"{p}\"")),
        }
    };
    match s.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (num(lo)?, num(hi)?);
            if lo > hi {
                return Err(format!("range \"{s}\" ends before it starts"));
            }
            Ok((lo, hi))
        }
        None => {
            let p = num(s)?;
            Ok((p, p))
        }
    }
}

/// `[SOURCE:]TARGET[:MODE]`. A source starting with `.`, `/` or `~` is a bind mount
/// (resolved later against the project directory); any other source is a named volume;
/// no source is an anonymous volume.
pub fn parse_volume(spec: &str) -> Result<ServiceVolume, String> {
    let bad = |why: &str| format!("invalid volume \"{spec}\": {why}");
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(bad("expected [SOURCE:]TARGET[:MODE]")),
    };
    if target.is_empty() {
        return Err(bad("the container path is empty"));
    }
    if !target.starts_with('/') {
        return Err(bad(&format!(
            "the container path \"{target}\" must be absolute"
        )));
    }
    let is_bind = source.starts_with('.') || source.starts_with('/') || source.starts_with('~');
    let mut v = ServiceVolume {
        kind: if is_bind { "bind" } else { "volume" }.into(),
        source: source.to_string(),
        target: target.to_string(),
        read_only: false,
        bind: None,
        volume: None,
        tmpfs: None,
        extra: Default::default(),
    };
    if is_bind {
        v.bind = Some(BindOptions {
            create_host_path: true,
            ..Default::default()
        });
    } else {
        v.volume = Some(VolumeOptions::default());
    }
    for opt in mode.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => v.read_only = true,
            "rw" => v.read_only = false,
            "z" | "Z" if is_bind => v.bind.get_or_insert_with(Default::default).selinux = Some(opt.into()),
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" if is_bind => {
                v.bind.get_or_insert_with(Default::default).propagation = Some(opt.into())
            }
            "nocopy" if !is_bind => v.volume.get_or_insert_with(Default::default).nocopy = true,
            "consistent" | "cached" | "delegated" => {}
            other => return Err(bad(&format!("unknown mode \"{other}\" (ro, rw, z, Z, nocopy, shared, slave, private and their r-forms)"))),
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (spec, [(host_ip, published, target, protocol)…] or Err(substring))
    #[allow(clippy::type_complexity)]
    const PORTS: &[(
        &str,
        Result<&[(Option<&str>, Option<&str>, u16, &str)], &str>,
    )] = &[
        ("80", Ok(&[(None, None, 80, "tcp")])),
        ("8000:5000", Ok(&[(None, Some("8000"), 5000, "tcp")])),
        ("53:53/udp", Ok(&[(None, Some("53"), 53, "udp")])),
        (
            "127.0.0.1:8080:80",
            Ok(&[(Some("127.0.0.1"), Some("8080"), 80, "tcp")]),
        ),
        ("127.0.0.1::80", Ok(&[(Some("127.0.0.1"), None, 80, "tcp")])),
        (
            "[::1]:6001:6001",
            Ok(&[(Some("::1"), Some("6001"), 6001, "tcp")]),
        ),
        (
            "::1:6001:6001",
            Ok(&[(Some("::1"), Some("6001"), 6001, "tcp")]),
        ),
        (
            "3000-3002",
            Ok(&[
                (None, None, 3000, "tcp"),
                (None, None, 3001, "tcp"),
                (None, None, 3002, "tcp"),
            ]),
        ),
        (
            "9090-9091:8080-8081",
            Ok(&[
                (None, Some("9090"), 8080, "tcp"),
                (None, Some("9091"), 8081, "tcp"),
            ]),
        ),
        ("8000-8005:80", Ok(&[(None, Some("8000-8005"), 80, "tcp")])),
        (
            "0.0.0.0:5000-5001:5000-5001/udp",
            Ok(&[
                (Some("0.0.0.0"), Some("5000"), 5000, "udp"),
                (Some("0.0.0.0"), Some("5001"), 5001, "udp"),
            ]),
        ),
        ("80:abc", Err("container port must be a number")),
        ("abc:80", Err("host port must be a number")),
        ("80:70000", Err("between 1 and 65535")),
        ("80/icmp", Err("protocol must be")),
        ("1.2.3:80:80", Err("is not an IP address")),
        ("9090-9092:8080-8081", Err("different sizes")),
        ("90-80", Err("ends before it starts")),
        ("", Err("must be a number")),
    ];

    #[test]
    fn ports_table() {
        for (spec, want) in PORTS {
            let got = parse_port(spec);
            match (want, got) {
                (Ok(w), Ok(g)) => {
                    let g: Vec<_> = g
                        .iter()
                        .map(|p| {
                            (
                                p.host_ip.as_deref(),
                                p.published.as_deref(),
                                p.target,
                                p.protocol.as_str(),
                            )
                        })
                        .collect();
                    assert_eq!(&g, w, "{spec}");
                }
                (Err(w), Err(g)) => assert!(g.contains(w), "{spec}: {g}"),
                (w, g) => panic!("{spec}: want {w:?} got {g:?}"),
            }
        }
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn volumes_table() {
        let cases: &[(&str, Result<(&str, &str, &str, bool), &str>)] = &[
            ("/data", Ok(("volume", "", "/data", false))),
            ("db:/var/lib/db", Ok(("volume", "db", "/var/lib/db", false))),
            (
                "db:/var/lib/db:ro",
                Ok(("volume", "db", "/var/lib/db", true)),
            ),
            ("./src:/app", Ok(("bind", "./src", "/app", false))),
            ("/etc/x:/x:ro,z", Ok(("bind", "/etc/x", "/x", true))),
            (
                "~/cache:/cache:rw",
                Ok(("bind", "~/cache", "/cache", false)),
            ),
            ("db:/d:nocopy", Ok(("volume", "db", "/d", false))),
            ("a:b:c:d", Err("expected [SOURCE:]TARGET[:MODE]")),
            ("db:relative", Err("must be absolute")),
            ("./x:/y:bogus", Err("unknown mode \"bogus\"")),
            ("db:", Err("container path is empty")),
        ];
        for (spec, want) in cases {
            match (want, parse_volume(spec)) {
                (Ok((k, s, t, ro)), Ok(v)) => {
                    assert_eq!(
                        (
                            v.kind.as_str(),
                            v.source.as_str(),
                            v.target.as_str(),
                            v.read_only
                        ),
                        (*k, *s, *t, *ro),
                        "{spec}"
                    )
                }
                (Err(w), Err(g)) => assert!(g.contains(w), "{spec}: {g}"),
                (w, g) => panic!("{spec}: want {w:?} got {g:?}"),
            }
        }
    }
}
