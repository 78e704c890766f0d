//! `COPY --chown=user[:group]` resolution against the image's `/etc/passwd`
//! and `/etc/group` (contents passed in: the executor reads them from the
//! stage's root filesystem).
//!
//! Docker's rules: numbers are used as they are; names are looked up in the
//! image; a user without a group (`--chown=bin`, `--chown=10`) uses the same
//! number as the GID — not the user's primary group.

use crate::Error;

/// Resolve a `--chown` value to `(uid, gid)`.
pub fn resolve_chown(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<(u32, u32), Error> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || grp == Some("") {
        return Err(Error::Invalid(format!(
            "invalid --chown={spec}: use user[:group] with names or numeric ids"
        )));
    }
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => lookup(passwd, user).ok_or_else(|| {
            Error::Invalid(format!(
                "--chown={spec}: unable to find user {user}: no matching entries in passwd file"
            ))
        })?,
    };
    let gid = match grp {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(group, g).ok_or_else(|| {
                Error::Invalid(format!(
                    "--chown={spec}: unable to find group {g}: no matching entries in group file"
                ))
            })?,
        },
    };
    Ok((uid, gid))
}

/// Third field (the id) of the first `name:` line of a passwd/group file.
fn lookup(file: Option<&str>, name: &str) -> Option<u32> {
    file?.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nbin:x:1:1:bin:/bin:/sbin/nologin\napp:x:1000:2000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nbin:x:1:\nstaff:x:50:app\n";

    #[test]
    fn chown_table() {
        let ok: &[(&str, (u32, u32))] = &[
            ("0", (0, 0)),
            ("1000", (1000, 1000)),
            ("10:11", (10, 11)),
            ("app", (1000, 1000)),
            ("app:staff", (1000, 50)),
            ("app:7", (1000, 7)),
            ("5:staff", (5, 50)),
            ("bin:bin", (1, 1)),
        ];
        for (spec, want) in ok {
            assert_eq!(
                resolve_chown(spec, Some(PASSWD), Some(GROUP)).unwrap(),
                *want,
                "{spec}"
            );
        }
        let err = |spec: &str, passwd: Option<&str>| {
            resolve_chown(spec, passwd, Some(GROUP))
                .unwrap_err()
                .to_string()
        };
        assert!(err("nobody", Some(PASSWD)).contains("unable to find user nobody"));
        assert!(err("app:nogroup", Some(PASSWD)).contains("unable to find group nogroup"));
        assert!(err("app", None).contains("unable to find user app"));
        assert!(err(":1", Some(PASSWD)).contains("invalid --chown"));
        assert!(err("1:", Some(PASSWD)).contains("invalid --chown"));
        assert!(resolve_chown("1:2", None, None).is_ok());
    }
}
