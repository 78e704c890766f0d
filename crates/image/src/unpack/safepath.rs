//! Tar entry paths → components that stay inside the layer directory.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Normalise a tar entry name lexically (`./a//b/` → `a/b`, `a/../b` → `b`).
/// Refused: absolute paths, and `..` that climbs above the layer root.
/// Returns an empty path for the root itself (`./`).
pub fn normalise(name: &Path) -> Result<PathBuf, String> {
    let bytes = name.as_os_str().as_bytes();
    if bytes.first() == Some(&b'/') {
        return Err("absolute path".into());
    }
    if bytes.contains(&0) {
        return Err("NUL byte in the name".into());
    }
    let mut out: Vec<&OsStr> = Vec::new();
    for c in name.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err("\"..\" leads outside the layer".into());
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    Ok(out.iter().collect())
}

/// A symlink target, resolved lexically from the link's directory, stays inside?
/// (Used only to word errors: we never follow links while unpacking.)
pub fn link_escapes(link_dir: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    normalise(&link_dir.join(target)).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_refuses_escapes() {
        let ok = |s: &str| {
            normalise(Path::new(s))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };
        assert_eq!(ok("./a//b/"), "a/b");
        assert_eq!(ok("a/../b"), "b");
        assert_eq!(ok("./"), "");
        assert_eq!(ok("."), "");
        assert_eq!(ok("a/./b/c/.."), "a/b");
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "./../x",
            "a/b/../../../x",
            "/",
        ] {
            assert!(normalise(Path::new(bad)).is_err(), "{bad}");
        }
        assert!(link_escapes(Path::new("a"), Path::new("/etc")));
        assert!(link_escapes(Path::new("a"), Path::new("../../etc")));
        assert!(!link_escapes(Path::new("a/b"), Path::new("../c")));
    }
}
