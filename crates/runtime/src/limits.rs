//! Per-container resource limits (`--ulimit`) and namespaced kernel
//! parameters (`--sysctl`): parsing and validating them as Docker does,
//! clamping rlimits to what this host allows, and applying both inside the
//! container's init.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// One resource limit, by Docker's name (`nofile`, `nproc`, …).
/// `u64::MAX` means unlimited (RLIM_INFINITY).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rlimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// Docker's ulimit names (go-units) and the kernel resource each one sets.
const RLIMITS: [(&str, libc::__rlimit_resource_t); 15] = [
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

fn resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    RLIMITS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

fn valid_names() -> String {
    RLIMITS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One limit value: a number, or `-1` / `unlimited` for no limit.
fn parse_value(arg: &str, v: &str) -> Result<u64, Error> {
    match v.trim() {
        "-1" | "unlimited" => Ok(u64::MAX),
        t => t.parse::<u64>().map_err(|_| {
            Error::Invalid(format!(
                "invalid ulimit {arg:?}: {v:?} is not a number (use NAME=SOFT[:HARD], e.g. nofile=1024:2048)"
            ))
        }),
    }
}

/// Parse Docker's `--ulimit NAME=SOFT[:HARD]` (HARD defaults to SOFT).
pub fn parse_ulimit(s: &str) -> Result<Rlimit, Error> {
    let Some((name, values)) = s.split_once('=') else {
        return Err(Error::Invalid(format!(
            "invalid ulimit argument {s:?}: use NAME=SOFT[:HARD], e.g. nofile=1024:2048"
        )));
    };
    let name = name.trim();
    if resource(name).is_none() {
        return Err(Error::Invalid(format!(
            "invalid ulimit type {name:?}: use one of {}",
            valid_names()
        )));
    }
    let parts: Vec<&str> = values.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => {
            let v = parse_value(s, soft)?;
            (v, v)
        }
        [soft, hard] => (parse_value(s, soft)?, parse_value(s, hard)?),
        _ => {
            return Err(Error::Invalid(format!(
            "too many limit value arguments in ulimit {s:?}: can only have up to two, soft[:hard]"
        )))
        }
    };
    let r = Rlimit {
        name: name.to_string(),
        soft,
        hard,
    };
    validate_rlimit(&r)?;
    Ok(r)
}

fn show(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

/// A known name and soft <= hard (Docker's rule).
pub fn validate_rlimit(r: &Rlimit) -> Result<(), Error> {
    if resource(&r.name).is_none() {
        return Err(Error::Invalid(format!(
            "invalid ulimit type {:?}: use one of {}",
            r.name,
            valid_names()
        )));
    }
    if r.soft > r.hard {
        return Err(Error::Invalid(format!(
            "ulimit {}: soft limit must be less than or equal to hard limit: {} > {}",
            r.name,
            show(r.soft),
            show(r.hard)
        )));
    }
    Ok(())
}

/// The sysctls Docker allows by name (they live in the IPC namespace).
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Docker's rule (moby opts.ValidateSysctl, plus the daemon's refusal of
/// `net.*` in the host's network namespace): only namespaced sysctls, so a
/// container can never change the host's kernel.
pub fn validate_sysctl(key: &str, network: &str) -> Result<(), Error> {
    // Dots become slashes under /proc/sys: no other separators, no empty parts.
    if key.is_empty()
        || key.split('.').any(|p| p.is_empty())
        || key.contains(['/', '\\', '=', ' ', '\t', '\n', '\0'])
    {
        return Err(Error::Invalid(format!(
            "invalid sysctl name {key:?}: use the dotted form, e.g. net.core.somaxconn"
        )));
    }
    if key.starts_with("net.") {
        if network == "host" {
            return Err(Error::Invalid(format!(
                "sysctl {key:?} is not allowed with --network host: it would change the host's network namespace"
            )));
        }
        return Ok(());
    }
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "sysctl {key:?} is not allowed in a container: only namespaced ones (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)"
    )))
}

/// Parse `--sysctl KEY=VALUE` (validated separately, with the network).
pub fn parse_sysctl(s: &str) -> Result<(String, String), Error> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(Error::Invalid(format!(
            "invalid sysctl {s:?}: use KEY=VALUE, e.g. net.core.somaxconn=1024"
        ))),
    }
}

/// Check every rlimit and sysctl of a spec (before anything is created).
pub fn validate(
    rlimits: &[Rlimit],
    sysctls: &BTreeMap<String, String>,
    network: &str,
) -> Result<(), Error> {
    for r in rlimits {
        validate_rlimit(r)?;
    }
    for (k, v) in sysctls {
        validate_sysctl(k, network)?;
        if v.contains(['\n', '\0']) {
            return Err(Error::Invalid(format!(
                "invalid value for sysctl {k:?}: it contains a newline or NUL byte"
            )));
        }
    }
    Ok(())
}

/// This process's (soft, hard) limit for `name`.
fn current(name: &str) -> Option<(u64, u64)> {
    let res = resource(name)?;
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a struct we own.
    if unsafe { libc::getrlimit(res, &mut cur) } != 0 {
        return None;
    }
    Some((cur.rlim_cur, cur.rlim_max))
}

/// Without CAP_SYS_RESOURCE a hard limit cannot be raised: lower each hard
/// limit to ours (and the soft one with it) instead of failing, and say so.
/// Returns the limits to apply and one warning per clamped limit.
pub fn clamp_to_host(rlimits: &[Rlimit]) -> (Vec<Rlimit>, Vec<String>) {
    let may_raise = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false);
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for r in rlimits {
        let mut r = r.clone();
        if let Some((_, host_hard)) = current(&r.name) {
            if !may_raise && r.hard > host_hard {
                warnings.push(format!(
                    "ulimit {}: hard limit {} is above this host's {}; using {}",
                    r.name,
                    show(r.hard),
                    show(host_hard),
                    show(host_hard)
                ));
                r.hard = host_hard;
                r.soft = r.soft.min(host_hard);
            }
        }
        out.push(r);
    }
    (out, warnings)
}

/// setrlimit each limit (in the container's init, before exec).
pub fn apply_rlimits(rlimits: &[Rlimit]) -> Result<(), Error> {
    for r in rlimits {
        let res = resource(&r.name).ok_or_else(|| {
            Error::Invalid(format!(
                "invalid ulimit type {:?}: use one of {}",
                r.name,
                valid_names()
            ))
        })?;
        let lim = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        crate::explain!(
            "rlimit",
            "setrlimit(RLIMIT_{}, soft={}, hard={})",
            r.name.to_ascii_uppercase(),
            show(r.soft),
            show(r.hard)
        );
        // SAFETY: setrlimit reads a struct we own.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::Other(anyhow::anyhow!(
                "cannot set ulimit {}={}:{}: {e}",
                r.name,
                show(r.soft),
                show(r.hard)
            )));
        }
    }
    Ok(())
}

/// Write each sysctl under `proc_sys` (the container's /proc/sys, mounted
/// in its namespaces).
pub fn write_sysctls(proc_sys: &Path, sysctls: &BTreeMap<String, String>) -> Result<(), Error> {
    for (key, value) in sysctls {
        let path = proc_sys.join(key.replace('.', "/"));
        crate::explain!(
            "sysctl",
            "write {value:?} to /proc/sys/{}",
            key.replace('.', "/")
        );
        if let Err(e) = std::fs::write(&path, value) {
            let msg = format!("cannot set sysctl {key}={value}: {e}");
            return Err(match e.raw_os_error() {
                // No such sysctl in this kernel, or a value it refuses.
                Some(libc::ENOENT) | Some(libc::EINVAL) | Some(libc::ERANGE) => Error::Invalid(msg),
                _ => Error::Other(anyhow::anyhow!(msg)),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_like_docker() {
        let r = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!(
            r,
            Rlimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048
            }
        );
        let r = parse_ulimit("nproc=512").unwrap();
        assert_eq!((r.soft, r.hard), (512, 512));
        let r = parse_ulimit("core=-1").unwrap();
        assert_eq!((r.soft, r.hard), (u64::MAX, u64::MAX));
        let r = parse_ulimit("memlock=0:unlimited").unwrap();
        assert_eq!((r.soft, r.hard), (0, u64::MAX));
    }

    #[test]
    fn bad_ulimits() {
        let e = parse_ulimit("nofiles=1").unwrap_err();
        assert!(e.is_user_error());
        assert!(e.to_string().contains("nofile, nproc"), "{e}");
        let e = parse_ulimit("nofile=2048:1024").unwrap_err();
        assert!(e.to_string().contains("2048 > 1024"), "{e}");
        assert!(parse_ulimit("nofile").unwrap_err().is_user_error());
        assert!(parse_ulimit("nofile=1:2:3").unwrap_err().is_user_error());
        assert!(parse_ulimit("nofile=lots").unwrap_err().is_user_error());
        assert!(parse_ulimit("nofile=-5").unwrap_err().is_user_error());
    }

    #[test]
    fn sysctls_like_docker() {
        for k in [
            "net.core.somaxconn",
            "net.ipv4.ip_forward",
            "kernel.shmmax",
            "kernel.sem",
            "kernel.shm_rmid_forced",
            "fs.mqueue.msg_max",
        ] {
            assert!(validate_sysctl(k, "bridge").is_ok(), "{k}");
        }
        for k in [
            "vm.swappiness",
            "kernel.hostname",
            "kernel.shm",
            "fs.file-max",
            "net",
        ] {
            let e = validate_sysctl(k, "bridge").unwrap_err();
            assert!(e.is_user_error(), "{k}");
        }
        let e = validate_sysctl("vm.swappiness", "none").unwrap_err();
        assert!(e.to_string().contains("not allowed in a container"), "{e}");
        // net.* would change the host's own network namespace.
        assert!(validate_sysctl("net.core.somaxconn", "host").is_err());
        assert!(validate_sysctl("kernel.shmmax", "host").is_ok());
        // No way out of /proc/sys.
        assert!(validate_sysctl("net.core/../../vm/swappiness", "none").is_err());
        assert!(validate_sysctl("net..core", "none").is_err());
    }

    #[test]
    fn sysctl_pairs() {
        assert_eq!(
            parse_sysctl("net.core.somaxconn=1024").unwrap(),
            ("net.core.somaxconn".into(), "1024".into())
        );
        assert_eq!(
            parse_sysctl("kernel.sem=250 32000 100 128").unwrap().1,
            "250 32000 100 128"
        );
        assert!(parse_sysctl("net.core.somaxconn").is_err());
        assert!(parse_sysctl("=1").is_err());
    }

    #[test]
    fn clamp_lowers_only_what_is_too_high() {
        let (_, host_hard) = current("nofile").unwrap();
        if host_hard == u64::MAX
            || caps::has_cap(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_RESOURCE,
            )
            .unwrap_or(false)
        {
            return; // nothing to clamp against on this host
        }
        let want = vec![
            Rlimit {
                name: "nofile".into(),
                soft: host_hard + 10,
                hard: host_hard + 10,
            },
            Rlimit {
                name: "nofile".into(),
                soft: 1,
                hard: 2,
            },
        ];
        let (got, warnings) = clamp_to_host(&want);
        assert_eq!((got[0].soft, got[0].hard), (host_hard, host_hard));
        assert_eq!((got[1].soft, got[1].hard), (1, 2));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("is above this host's"),
            "{}",
            warnings[0]
        );
    }
}
