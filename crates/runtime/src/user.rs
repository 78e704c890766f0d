//! Users and groups, resolved by reading the container's /etc/passwd and
//! /etc/group ourselves (never the host's NSS: CVE-2019-14271).

use crate::Error;

/// Who the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"/").to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolve `spec` ("", "user", "uid", "user:group", "uid:gid") against the
/// given file contents (None when the file is missing), as runc's
/// GetExecUser does: names must exist, numbers need not.
pub fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<ExecUser, Error> {
    let users = passwd.map(parse_passwd).unwrap_or_default();
    let groups = group.map(parse_group).unwrap_or_default();
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let numeric_uid = user_part.parse::<u32>().ok();
    let entry = users
        .iter()
        .find(|e| numeric_uid.map_or(e.name == user_part, |uid| e.uid == uid));
    let (uid, mut gid, home, name) = match (entry, numeric_uid) {
        (Some(e), _) => (e.uid, e.gid, e.home.clone(), Some(e.name.clone())),
        (None, Some(uid)) => (uid, 0, "/".to_string(), None),
        (None, None) => {
            return Err(Error::Invalid(format!(
                "unable to find user {user_part}: no matching entries in passwd file"
            )))
        }
    };
    let explicit_group = match group_part {
        Some(g) if !g.is_empty() => {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => groups
                    .iter()
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "unable to find group {g}: no matching entries in group file"
                        ))
                    })?,
            };
            true
        }
        _ => false,
    };
    // Supplementary groups: those listing the user, unless a group was given.
    let mut sup: Vec<u32> = Vec::new();
    if !explicit_group {
        if let Some(name) = &name {
            for g in &groups {
                if g.members.iter().any(|m| m == name) && !sup.contains(&g.gid) {
                    sup.push(g.gid);
                }
            }
        }
    }
    if !sup.contains(&gid) {
        sup.insert(0, gid);
    }
    Ok(ExecUser {
        uid,
        gid,
        groups: sup,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nbob:x:1000:1000::/home/bob:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nwww-data:x:33:\nbob:x:1000:\naudio:x:29:bob\nvideo:x:44:bob,www-data\n";

    #[test]
    fn names_numbers_and_groups() {
        let root = resolve("", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
        let bob = resolve("bob", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((bob.uid, bob.gid), (1000, 1000));
        assert_eq!(bob.groups, vec![1000, 29, 44]);
        let n = resolve("4242", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((n.uid, n.gid, n.home.as_str()), (4242, 0, "/"));
        let wg = resolve("www-data:audio", Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!((wg.uid, wg.gid, wg.groups.clone()), (33, 29, vec![29]));
        let nums = resolve("5:6", None, None).unwrap();
        assert_eq!((nums.uid, nums.gid), (5, 6));
    }

    #[test]
    fn unknown_names_are_user_errors() {
        let e = resolve("nobody-here", Some(PASSWD), Some(GROUP)).unwrap_err();
        assert!(e.is_user_error());
        assert!(e.to_string().contains("unable to find user nobody-here"));
        assert!(resolve("bob:nogroup", Some(PASSWD), Some(GROUP))
            .unwrap_err()
            .is_user_error());
    }
}
