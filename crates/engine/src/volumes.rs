//! Named volumes: `<root>/volumes/<name>/_data` (Docker's layout) plus
//! `volume.json` (labels). A new volume is filled from the image's content
//! at the mount point, like Docker does (unless `nocopy`).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::state::{read_json, write_json, Paths};
use crate::Error;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct VolumeMeta {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub created: String,
    /// Filled from an image already (or marked nocopy).
    #[serde(default)]
    pub populated: bool,
}

/// Docker's label on anonymous volumes (since 23.0): `volume prune`
/// without `--all` removes only those.
pub const LABEL_ANONYMOUS: &str = "com.docker.volume.anonymous";

/// Docker's rule for local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Anonymous: labelled so, or named by a bare container-style id (volumes
/// made before the label was written).
pub fn is_anonymous(m: &VolumeMeta) -> bool {
    m.labels.contains_key(LABEL_ANONYMOUS)
        || (m.name.len() == 64 && m.name.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Every volume of the root, by name.
pub fn list(paths: &Paths) -> Vec<VolumeMeta> {
    let mut all: Vec<VolumeMeta> = fs::read_dir(paths.volumes())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| meta(paths, e.file_name().to_str()?))
        .collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// Volume name → names of the containers (running or not) that mount it,
/// as Docker counts "in use".
pub fn users(paths: &Paths, containers: &[mc_runtime::Record]) -> BTreeMap<String, Vec<String>> {
    let root = paths.volumes();
    let mut by_volume: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in containers {
        for m in &c.spec.mounts {
            let Ok(rest) = m.source.strip_prefix(&root) else {
                continue;
            };
            if let Some(name) = rest.iter().next().and_then(|n| n.to_str()) {
                let names = by_volume.entry(name.to_string()).or_default();
                if !names.contains(&c.spec.name) {
                    names.push(c.spec.name.clone());
                }
            }
        }
    }
    by_volume
}

/// Bytes the volume's files take (apparent sizes, as `docker system df`).
pub fn size(paths: &Paths, name: &str) -> u64 {
    fn walk(p: &Path) -> u64 {
        let Ok(md) = fs::symlink_metadata(p) else {
            return 0;
        };
        if !md.is_dir() {
            return md.len();
        }
        fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| walk(&e.path()))
            .sum()
    }
    walk(&data_dir(paths, name))
}

pub fn dir(paths: &Paths, name: &str) -> PathBuf {
    paths.volumes().join(name)
}

pub fn data_dir(paths: &Paths, name: &str) -> PathBuf {
    dir(paths, name).join("_data")
}

pub fn exists(paths: &Paths, name: &str) -> bool {
    dir(paths, name).join("volume.json").exists()
}

pub fn meta(paths: &Paths, name: &str) -> Option<VolumeMeta> {
    read_json(&dir(paths, name).join("volume.json"))
}

/// Create a volume if missing; returns whether it was created.
pub fn ensure(paths: &Paths, name: &str, labels: BTreeMap<String, String>) -> Result<bool, Error> {
    if !valid_name(name) {
        return Err(Error::Invalid(format!(
            "invalid volume name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed (for a host directory, use an absolute path)"
        )));
    }
    if exists(paths, name) {
        return Ok(false);
    }
    let data = data_dir(paths, name);
    fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    tracing::info!(target: "explain::volume", "create volume {name} at {}", data.display());
    let m = VolumeMeta {
        name: name.into(),
        labels,
        created: mc_runtime::state::now_rfc3339(),
        populated: false,
    };
    write_json(&dir(paths, name).join("volume.json"), &m)?;
    Ok(true)
}

pub fn remove(paths: &Paths, name: &str) -> Result<bool, Error> {
    let d = dir(paths, name);
    if !d.exists() {
        return Ok(false);
    }
    tracing::info!(target: "explain::volume", "remove volume {name}");
    fs::remove_dir_all(&d).with_context(|| format!("cannot remove {}", d.display()))?;
    Ok(true)
}

/// Copy the image's `target` directory into an empty, never-populated volume.
pub fn populate(paths: &Paths, name: &str, layers: &[PathBuf], target: &str) -> Result<(), Error> {
    let Some(mut m) = meta(paths, name) else {
        return Ok(());
    };
    if m.populated {
        return Ok(());
    }
    let data = data_dir(paths, name);
    let empty = fs::read_dir(&data)
        .map(|mut r| r.next().is_none())
        .unwrap_or(false);
    if empty {
        let rel = target.trim_start_matches('/');
        for layer in layers {
            let src = layer.join(rel);
            if let Ok(md) = fs::symlink_metadata(&src) {
                if md.is_dir() {
                    if is_opaque(&src) {
                        clear_dir(&data)?;
                    }
                    copy_tree(&src, &data)?;
                }
            }
        }
        tracing::info!(target: "explain::volume", "fill volume {name} from the image's {target}");
    }
    m.populated = true;
    write_json(&dir(paths, name).join("volume.json"), &m)
}

fn is_opaque(dir: &Path) -> bool {
    xattr_is_y(dir, "trusted.overlay.opaque")
}

fn xattr_is_y(path: &Path, name: &str) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(p) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let Ok(n) = std::ffi::CString::new(name) else {
        return false;
    };
    let mut buf = [0u8; 4];
    // SAFETY: valid C strings and a buffer of the given size.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    r == 1 && buf[0] == b'y'
}

fn clear_dir(dir: &Path) -> Result<(), Error> {
    for e in fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .flatten()
    {
        let p = e.path();
        let r = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        r.with_context(|| format!("remove {}", p.display()))?;
    }
    Ok(())
}

/// Merge one layer's directory into `dst`: whiteouts remove, the rest is
/// copied with owner and mode.
fn copy_tree(src: &Path, dst: &Path) -> Result<(), Error> {
    for e in fs::read_dir(src)
        .with_context(|| format!("read {}", src.display()))?
        .flatten()
    {
        let from = e.path();
        let to = dst.join(e.file_name());
        let md = fs::symlink_metadata(&from).with_context(|| format!("stat {}", from.display()))?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            // An overlay whiteout: the lower layer's entry is gone.
            let _ = fs::remove_dir_all(&to).or_else(|_| fs::remove_file(&to));
            continue;
        }
        if ft.is_dir() {
            if fs::symlink_metadata(&to)
                .map(|m| !m.is_dir())
                .unwrap_or(false)
            {
                let _ = fs::remove_file(&to);
            }
            if !to.exists() {
                fs::create_dir(&to).with_context(|| format!("create {}", to.display()))?;
            } else if is_opaque(&from) {
                clear_dir(&to)?;
            }
            copy_tree(&from, &to)?;
        } else {
            if fs::symlink_metadata(&to).is_ok() {
                let _ = fs::remove_dir_all(&to).or_else(|_| fs::remove_file(&to));
            }
            if ft.is_symlink() {
                let target =
                    fs::read_link(&from).with_context(|| format!("readlink {}", from.display()))?;
                std::os::unix::fs::symlink(target, &to)
                    .with_context(|| format!("symlink {}", to.display()))?;
            } else if ft.is_file() {
                fs::copy(&from, &to).with_context(|| format!("copy {}", from.display()))?;
            } else {
                continue; // devices, fifos, sockets: not copied into volumes
            }
        }
        let _ = std::os::unix::fs::lchown(&to, Some(md.uid()), Some(md.gid()));
        if !ft.is_symlink() {
            let _ = fs::set_permissions(&to, fs::Permissions::from_mode(md.mode() & 0o7777));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_fill_remove() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path());
        let l1 = root.path().join("l1");
        let l2 = root.path().join("l2");
        fs::create_dir_all(l1.join("data/sub")).unwrap();
        fs::write(l1.join("data/a"), "1").unwrap();
        fs::write(l1.join("data/sub/b"), "2").unwrap();
        fs::create_dir_all(l2.join("data")).unwrap();
        fs::write(l2.join("data/a"), "override").unwrap();
        assert!(ensure(&paths, "p_v", BTreeMap::new()).unwrap());
        assert!(!ensure(&paths, "p_v", BTreeMap::new()).unwrap());
        populate(&paths, "p_v", &[l1, l2], "/data").unwrap();
        let d = data_dir(&paths, "p_v");
        assert_eq!(fs::read_to_string(d.join("a")).unwrap(), "override");
        assert_eq!(fs::read_to_string(d.join("sub/b")).unwrap(), "2");
        assert!(meta(&paths, "p_v").unwrap().populated);
        assert!(ensure(&paths, "../x", BTreeMap::new())
            .unwrap_err()
            .is_user_error());
        assert!(remove(&paths, "p_v").unwrap());
        assert!(!exists(&paths, "p_v"));
    }

    #[test]
    fn names_follow_docker() {
        for ok in ["ab", "my_vol", "p_data.1", "0-x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a", "_x", ".x", "a/b", "a b", "../x", "é1"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn list_users_anonymous_and_size() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path());
        let anon = "a".repeat(64);
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_ANONYMOUS.to_string(), String::new());
        ensure(&paths, "zz_named", BTreeMap::new()).unwrap();
        ensure(&paths, "labelled", labels).unwrap();
        ensure(&paths, &anon, BTreeMap::new()).unwrap();
        fs::write(data_dir(&paths, "zz_named").join("f"), "12345").unwrap();
        fs::create_dir(data_dir(&paths, "zz_named").join("d")).unwrap();
        fs::write(data_dir(&paths, "zz_named").join("d/g"), "678").unwrap();
        let all = list(&paths);
        let names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, [anon.as_str(), "labelled", "zz_named"]);
        let anonymous: Vec<bool> = all.iter().map(is_anonymous).collect();
        assert_eq!(anonymous, [true, true, false]);
        assert_eq!(size(&paths, "zz_named"), 8);

        let mut spec = mc_runtime::ContainerSpec {
            name: "web-1".into(),
            ..Default::default()
        };
        spec.mounts.push(mc_runtime::MountSpec {
            kind: "bind".into(),
            source: data_dir(&paths, "zz_named"),
            destination: "/data".into(),
            read_only: false,
            options: String::new(),
        });
        spec.mounts.push(mc_runtime::MountSpec {
            kind: "bind".into(),
            source: "/srv/app".into(),
            destination: "/app".into(),
            read_only: false,
            options: String::new(),
        });
        let rec = mc_runtime::Record {
            spec,
            state: Default::default(),
            dir: root.path().join("c"),
        };
        let used = users(&paths, &[rec]);
        assert_eq!(used.len(), 1);
        assert_eq!(used["zz_named"], ["web-1"]);
    }
}
