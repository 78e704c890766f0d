//! Capabilities: Docker's default set, `--cap-add/--cap-drop`, `--privileged`,
//! and applying a set to the calling process before exec.

use std::collections::BTreeSet;
use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};

use crate::Error;

/// Docker's 14 default capabilities (moby oci/caps/defaults.go).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// "sys_admin", "SYS_ADMIN", "CAP_SYS_ADMIN" → "CAP_SYS_ADMIN" (or "ALL").
fn normalize(name: &str) -> Result<String, Error> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    Capability::from_str(&full)
        .map(|c| c.to_string())
        .map_err(|_| {
            Error::Invalid(format!(
                "unknown capability {name:?}: use a name like NET_ADMIN (see capabilities(7))"
            ))
        })
}

/// Every capability we can hand out: the kernel's, within our own
/// bounding set (a host may withhold some, e.g. CAP_SYS_RESOURCE).
pub fn all_caps() -> Vec<String> {
    let ours = caps::read(None, CapSet::Bounding)
        .unwrap_or_else(|_| caps::runtime::thread_all_supported());
    let mut v: Vec<String> = caps::runtime::thread_all_supported()
        .into_iter()
        .filter(|c| ours.contains(c))
        .map(|c| c.to_string())
        .collect();
    v.sort();
    v
}

/// The container's capability set, resolved as Docker does: drop first,
/// then add; "ALL" in either list means every capability.
pub fn resolve(add: &[String], drop: &[String], privileged: bool) -> Result<Vec<String>, Error> {
    if privileged {
        return Ok(all_caps());
    }
    let add: Vec<String> = add.iter().map(|c| normalize(c)).collect::<Result<_, _>>()?;
    let drop: Vec<String> = drop
        .iter()
        .map(|c| normalize(c))
        .collect::<Result<_, _>>()?;
    let available = all_caps();
    let mut set: BTreeSet<String> = DEFAULT_CAPS
        .iter()
        .filter(|c| available.iter().any(|a| a == *c))
        .map(|s| s.to_string())
        .collect();
    if drop.iter().any(|c| c == "ALL") {
        set.clear();
    } else {
        for c in &drop {
            set.remove(c);
        }
    }
    if add.iter().any(|c| c == "ALL") {
        set.extend(available);
    } else {
        for c in add {
            if !available.contains(&c) {
                return Err(Error::Invalid(format!(
                    "--cap-add {c}: this host does not grant {c} to minicompose, so a container cannot have it"
                )));
            }
            set.insert(c);
        }
    }
    Ok(set.into_iter().collect())
}

/// The CapEff mask /proc/self/status shows for a set.
pub fn mask(set: &[String]) -> u64 {
    set.iter()
        .filter_map(|c| Capability::from_str(c).ok())
        .fold(0u64, |m, c| m | (1u64 << c.index()))
}

fn to_hashset(set: &[String]) -> CapsHashSet {
    set.iter()
        .filter_map(|c| Capability::from_str(c).ok())
        .collect()
}

/// Shrink the bounding set to `set`. Needs CAP_SETPCAP: call while still root.
pub fn drop_bounding(set: &[String]) -> Result<(), caps::errors::CapsError> {
    let keep = to_hashset(set);
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)?;
        }
    }
    Ok(())
}

/// Set permitted = effective = `set`, inheritable and ambient empty (what
/// Docker gives a root process; exec then keeps them for uid 0 only).
pub fn apply(set: &[String]) -> Result<(), caps::errors::CapsError> {
    let hs = to_hashset(set);
    caps::clear(None, CapSet::Ambient).ok();
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())?;
    caps::set(None, CapSet::Effective, &hs)?;
    caps::set(None, CapSet::Permitted, &hs)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_mask() {
        let set = resolve(&[], &[], false).unwrap();
        assert_eq!(set.len(), 14);
        assert_eq!(format!("{:016x}", mask(&set)), "00000000a80425fb");
    }

    #[test]
    fn add_and_drop() {
        let set = resolve(
            &["net_admin".into()],
            &["CAP_CHOWN".into(), "kill".into()],
            false,
        )
        .unwrap();
        assert!(set.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!set.contains(&"CAP_CHOWN".to_string()));
        assert!(!set.contains(&"CAP_KILL".to_string()));
        let none = resolve(&[], &["ALL".into()], false).unwrap();
        assert!(none.is_empty());
        let one = resolve(&["NET_RAW".into()], &["ALL".into()], false).unwrap();
        assert_eq!(one, vec!["CAP_NET_RAW".to_string()]);
        assert!(resolve(&["FLY".into()], &[], false)
            .unwrap_err()
            .is_user_error());
    }
}
