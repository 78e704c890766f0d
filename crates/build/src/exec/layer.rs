//! Layer directories → layer tarballs, and looking paths up in a stack of
//! unpacked layers.
//!
//! A RUN's overlay upper dir holds overlayfs whiteouts: a deleted name is a
//! char device 0/0, a directory whose lower contents are hidden carries
//! `trusted.overlay.opaque=y`. In an OCI layer they become `.wh.<name>` and
//! `<dir>/.wh..wh..opq` (image-spec "Representing Changes"). The tar is
//! deterministic for a given tree: entries sorted by name, numeric owners
//! only, no atime/ctime; mtimes are kept as Docker keeps them.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// What [`write_layer`] saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LayerStats {
    /// Tar entries written (whiteouts included).
    pub entries: u64,
}

/// Names the runtime creates as mount points in a RUN's upper dir when the
/// image lacks them (Docker keeps them out of build layers too).
pub const MOUNT_STUBS: [&str; 6] = [
    "proc",
    "sys",
    "dev",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
];

/// Write `dir` as a gzip-compressed layer tar to `out`. `skip` lists
/// `/`-separated relative paths left out (with everything below them).
pub fn write_layer(dir: &Path, out: impl Write, skip: &[String]) -> anyhow::Result<LayerStats> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let mut w = TarWriter {
        tar: tar::Builder::new(gz),
        links: HashMap::new(),
        stats: LayerStats::default(),
        skip,
    };
    w.tar.mode(tar::HeaderMode::Complete);
    w.tar.follow_symlinks(false);
    w.dir(dir, "")?;
    let gz = w.tar.into_inner().context("finish the layer tar")?;
    gz.finish().context("finish the layer gzip")?;
    Ok(w.stats)
}

/// Whether a layer directory has no entries at all.
pub fn is_empty_dir(dir: &Path, skip: &[String]) -> io::Result<bool> {
    for e in fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if !skip.contains(&name) {
            return Ok(false);
        }
    }
    Ok(true)
}

struct TarWriter<'a, W: Write> {
    tar: tar::Builder<W>,
    /// Hard links: (dev, ino) → first path written.
    links: HashMap<(u64, u64), String>,
    stats: LayerStats,
    skip: &'a [String],
}

impl<W: Write> TarWriter<'_, W> {
    fn dir(&mut self, host: &Path, rel: &str) -> anyhow::Result<()> {
        let mut entries: Vec<_> = fs::read_dir(host)
            .with_context(|| format!("read {}", host.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        if !rel.is_empty() && is_opaque(host) {
            self.whiteout(&format!("{rel}/.wh..wh..opq"))?;
        }
        for e in entries {
            let name = e.file_name();
            let name = name.to_str().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: file names must be UTF-8 in a layer",
                    e.path().display()
                )
            })?;
            let child = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            if self.skip.contains(&child) {
                continue;
            }
            self.entry(&e.path(), &child)?;
        }
        Ok(())
    }

    fn header(m: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(m.mode() & 0o7777);
        h.set_uid(u64::from(m.uid()));
        h.set_gid(u64::from(m.gid()));
        h.set_mtime(m.mtime().max(0) as u64);
        h.set_size(0);
        h
    }

    fn whiteout(&mut self, path: &str) -> anyhow::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_mtime(0);
        self.tar.append_data(&mut h, path, io::empty())?;
        self.stats.entries += 1;
        Ok(())
    }

    /// A PAX header carrying the entry's xattrs (`SCHILY.xattr.*`, as GNU tar
    /// and Docker write them); overlayfs' own and SELinux labels are left out.
    fn xattrs(&mut self, host: &Path, rel: &str) -> anyhow::Result<()> {
        let attrs: Vec<(String, Vec<u8>)> = mc_image::export::list_xattrs(host)
            .into_iter()
            .filter(|(n, _)| keep_xattr(n))
            .collect();
        if attrs.is_empty() {
            return Ok(());
        }
        let mut body = Vec::new();
        for (name, value) in attrs {
            body.extend(pax_record(&format!("SCHILY.xattr.{name}"), &value));
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(body.len() as u64);
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let name: String = format!("PaxHeaders/{base}").chars().take(99).collect();
        h.set_path(&name)?;
        h.set_cksum();
        self.tar.append(&h, &body[..])?;
        Ok(())
    }

    fn entry(&mut self, host: &Path, rel: &str) -> anyhow::Result<()> {
        let m = fs::symlink_metadata(host).with_context(|| format!("stat {}", host.display()))?;
        let ft = m.file_type();
        if ft.is_char_device() && m.rdev() == 0 {
            let (parent, name) = match rel.rsplit_once('/') {
                Some((p, n)) => (format!("{p}/"), n),
                None => (String::new(), rel),
            };
            return self.whiteout(&format!("{parent}.wh.{name}"));
        }
        if !ft.is_symlink() {
            self.xattrs(host, rel)?;
        }
        self.stats.entries += 1;
        if ft.is_dir() {
            let mut h = Self::header(&m, tar::EntryType::Directory);
            self.tar
                .append_data(&mut h, format!("{rel}/"), io::empty())?;
            return self.dir(host, rel);
        }
        if ft.is_symlink() {
            let target = fs::read_link(host)?;
            let mut h = Self::header(&m, tar::EntryType::Symlink);
            self.tar.append_link(&mut h, rel, &target)?;
            return Ok(());
        }
        if ft.is_file() {
            if m.nlink() > 1 {
                let key = (m.dev(), m.ino());
                if let Some(first) = self.links.get(&key) {
                    let first = first.clone();
                    let mut h = Self::header(&m, tar::EntryType::Link);
                    self.tar.append_link(&mut h, rel, &first)?;
                    return Ok(());
                }
                self.links.insert(key, rel.to_string());
            }
            let mut h = Self::header(&m, tar::EntryType::Regular);
            h.set_size(m.len());
            let f = fs::File::open(host).with_context(|| format!("open {}", host.display()))?;
            self.tar.append_data(&mut h, rel, f)?;
            return Ok(());
        }
        let kind = if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else if ft.is_fifo() {
            tar::EntryType::Fifo
        } else {
            self.stats.entries -= 1;
            return Ok(()); // sockets are not image content
        };
        let mut h = Self::header(&m, kind);
        let dev = m.rdev();
        h.set_device_major(libc::major(dev))?;
        h.set_device_minor(libc::minor(dev))?;
        self.tar.append_data(&mut h, rel, io::empty())?;
        Ok(())
    }
}

/// Which xattrs a layer carries: file capabilities and user attributes.
fn keep_xattr(name: &str) -> bool {
    name == "security.capability"
        || (name.starts_with("user.") && !name.starts_with("user.overlay."))
}

/// One PAX record: `"<len> <key>=<value>\n"`, where len counts the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = 1 + key.len() + 1 + value.len() + 1; // ' ' key '=' value '\n'
    let mut len = rest + 1;
    while rest + len.to_string().len() != len {
        len = rest + len.to_string().len();
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

fn is_opaque(dir: &Path) -> bool {
    OPAQUE_XATTRS
        .iter()
        .any(|name| get_xattr(dir, name).as_deref() == Some(b"y"))
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = [0u8; 16];
    // SAFETY: valid C strings and a buffer of the given size.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return None;
    }
    Some(buf[..len as usize].to_vec())
}

/// The merged view of a stack of unpacked layers (lowest first), for reading
/// single paths: `/etc/passwd` for `--chown`, whether a COPY destination is
/// a directory, the metadata of parent directories a layer re-creates.
#[derive(Debug, Clone)]
pub struct LayerStack<'a> {
    layers: &'a [PathBuf],
}

/// What a path is in a [`LayerStack`].
#[derive(Debug)]
pub struct Found {
    /// The host path in the topmost layer that has it.
    pub host: PathBuf,
    /// Its metadata (not following a final symlink).
    pub meta: fs::Metadata,
}

impl<'a> LayerStack<'a> {
    /// A view over `layers`, lowest first.
    pub fn new(layers: &'a [PathBuf]) -> LayerStack<'a> {
        LayerStack { layers }
    }

    /// Look `rel` (relative, `/`-separated, no `..`) up: the topmost layer
    /// that has it, unless a layer above deleted it or one of its parents
    /// (whiteout, opaque directory, or a non-directory parent).
    pub fn find(&self, rel: &str) -> Option<Found> {
        let rel = rel.trim_matches('/');
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        for layer in self.layers.iter().rev() {
            let mut here = layer.clone();
            let mut hidden = false;
            for (i, part) in parts.iter().enumerate() {
                here.push(part);
                match fs::symlink_metadata(&here) {
                    Ok(m) if m.file_type().is_char_device() && m.rdev() == 0 => {
                        return None; // deleted in this layer
                    }
                    Ok(m) if i + 1 == parts.len() => {
                        return Some(Found {
                            host: here,
                            meta: m,
                        })
                    }
                    Ok(m) if m.is_dir() => {
                        if is_opaque(&here) {
                            hidden = true; // below layers cannot show anything under it
                        }
                    }
                    Ok(_) => return None, // a non-directory parent hides the rest
                    Err(_) => break,
                }
            }
            if parts.is_empty() {
                let m = fs::symlink_metadata(layer).ok()?;
                return Some(Found {
                    host: layer.clone(),
                    meta: m,
                });
            }
            if hidden {
                return None;
            }
        }
        None
    }

    /// Resolve symlinks along an absolute image path as the image sees them
    /// (absolute targets start at the image root, `..` stops there), like a
    /// COPY destination in Docker: `/var/run/x` with `/var/run -> /run` is
    /// `/run/x`. The last component is followed only with `follow_last`.
    pub fn resolve(&self, path: &str, follow_last: bool) -> String {
        let mut todo: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .rev()
            .map(str::to_string)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                done.pop();
                continue;
            }
            let last = todo.is_empty();
            done.push(c);
            if last && !follow_last {
                break;
            }
            let Some(f) = self.find(&done.join("/")) else {
                continue;
            };
            if !f.meta.file_type().is_symlink() {
                continue;
            }
            hops += 1;
            if hops > 40 {
                // A loop: leave the path as written.
                let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
                return format!("/{}", parts.join("/"));
            }
            let Ok(target) = fs::read_link(&f.host) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            done.pop();
            if target.starts_with('/') {
                done.clear();
            }
            todo.extend(
                target
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .rev()
                    .map(str::to_string),
            );
        }
        format!("/{}", done.join("/"))
    }

    /// Read a small file (e.g. `etc/passwd`) of the merged view.
    pub fn read_to_string(&self, rel: &str) -> Option<String> {
        let f = self.find(rel)?;
        if !f.meta.is_file() {
            return None;
        }
        fs::read_to_string(&f.host).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn entries(gz: &[u8]) -> Vec<(String, tar::EntryType, String)> {
        let mut s = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut s)
            .unwrap();
        let mut a = tar::Archive::new(&s[..]);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let p = e.path().unwrap().to_string_lossy().into_owned();
                let t = e.header().entry_type();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut body = String::new();
                e.read_to_string(&mut body).unwrap();
                (p, t, if link.is_empty() { body } else { link })
            })
            .collect()
    }

    #[test]
    fn tars_sorted_with_links_and_skips() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("code/sub")).unwrap();
        fs::write(r.join("code/b.txt"), "b").unwrap();
        fs::write(r.join("code/a.txt"), "a").unwrap();
        fs::hard_link(r.join("code/a.txt"), r.join("code/sub/a2.txt")).unwrap();
        symlink("a.txt", r.join("code/l")).unwrap();
        fs::create_dir(r.join("proc")).unwrap();
        let mut out = Vec::new();
        write_layer(r, &mut out, &["proc".to_string()]).unwrap();
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "code/",
                "code/a.txt",
                "code/b.txt",
                "code/l",
                "code/sub/",
                "code/sub/a2.txt"
            ]
        );
        assert_eq!(got[1].2, "a");
        assert_eq!(
            got[3],
            ("code/l".into(), tar::EntryType::Symlink, "a.txt".into())
        );
        assert_eq!(
            got[5],
            (
                "code/sub/a2.txt".into(),
                tar::EntryType::Link,
                "code/a.txt".into()
            )
        );
        // Same tree, same bytes.
        let mut again = Vec::new();
        write_layer(r, &mut again, &["proc".to_string()]).unwrap();
        assert_eq!(out, again);
    }

    #[test]
    fn overlay_whiteouts_become_oci_whiteouts() {
        // Char 0/0 devices and trusted.* xattrs need root.
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("etc/opaque")).unwrap();
        fs::write(r.join("etc/opaque/new"), "n").unwrap();
        nix::sys::stat::mknod(
            &r.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let p = CString::new(r.join("etc/opaque").as_os_str().as_bytes()).unwrap();
        let n = CString::new("trusted.overlay.opaque").unwrap();
        // SAFETY: valid C strings and a one-byte value.
        let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        assert_eq!(rc, 0, "set the opaque xattr");
        let mut out = Vec::new();
        write_layer(r, &mut out, &[]).unwrap();
        let names: Vec<String> = entries(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/.wh.gone",
                "etc/opaque/",
                "etc/opaque/.wh..wh..opq",
                "etc/opaque/new"
            ]
        );
    }

    #[test]
    fn xattrs_travel_as_pax_records() {
        assert_eq!(pax_record("k", b"v"), b"6 k=v\n");
        for n in [0, 1, 80, 95, 96, 1000] {
            let r = pax_record("SCHILY.xattr.user.a", &vec![b'x'; n]);
            let declared: usize =
                std::str::from_utf8(&r[..r.iter().position(|b| *b == b' ').unwrap()])
                    .unwrap()
                    .parse()
                    .unwrap();
            assert_eq!(declared, r.len(), "value of {n} bytes");
        }
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "x").unwrap();
        let p = CString::new(f.as_os_str().as_bytes()).unwrap();
        let n = CString::new("user.mc.test").unwrap();
        // SAFETY: valid C strings and value.
        let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), b"yes".as_ptr().cast(), 3, 0) };
        if rc != 0 {
            eprintln!("skipping: this filesystem has no user xattrs");
            return;
        }
        let mut out = Vec::new();
        write_layer(d.path(), &mut out, &[]).unwrap();
        let mut s = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut s)
            .unwrap();
        let mut a = tar::Archive::new(&s[..]);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("f"));
        let exts: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| {
                let x = x.unwrap();
                (x.key().unwrap().to_string(), x.value_bytes().to_vec())
            })
            .collect();
        assert_eq!(
            exts,
            [("SCHILY.xattr.user.mc.test".to_string(), b"yes".to_vec())]
        );
    }

    #[test]
    fn stack_lookup_honours_upper_layers() {
        let d = tempfile::tempdir().unwrap();
        let (lo, hi) = (d.path().join("lo"), d.path().join("hi"));
        fs::create_dir_all(lo.join("etc")).unwrap();
        fs::create_dir_all(lo.join("usr/share")).unwrap();
        fs::write(lo.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::create_dir_all(hi.join("usr")).unwrap();
        fs::write(hi.join("etc"), "now a file").unwrap();
        let layers = vec![lo.clone(), hi.clone()];
        let s = LayerStack::new(&layers);
        assert!(
            s.find("etc/passwd").is_none(),
            "a file above hides the directory"
        );
        assert!(s.find("usr/share").unwrap().meta.is_dir());
        assert_eq!(s.find("usr").unwrap().host, hi.join("usr"));
        let only_lo = vec![lo.clone()];
        assert!(LayerStack::new(&only_lo)
            .read_to_string("etc/passwd")
            .unwrap()
            .starts_with("root"));
        assert!(s.find("nope").is_none());
    }

    #[test]
    fn resolves_destination_symlinks_inside_the_image() {
        let d = tempfile::tempdir().unwrap();
        let lo = d.path().join("lo");
        fs::create_dir_all(lo.join("run")).unwrap();
        fs::create_dir_all(lo.join("var")).unwrap();
        symlink("/run", lo.join("var/run")).unwrap();
        symlink("../../etc", lo.join("var/up")).unwrap();
        symlink("loop", lo.join("loop")).unwrap();
        let layers = vec![lo];
        let s = LayerStack::new(&layers);
        assert_eq!(s.resolve("/var/run/x.pid", false), "/run/x.pid");
        assert_eq!(s.resolve("/var/run", true), "/run");
        assert_eq!(s.resolve("/var/run", false), "/var/run");
        assert_eq!(
            s.resolve("/var/up/passwd", false),
            "/etc/passwd",
            "`..` stops at the root"
        );
        assert_eq!(s.resolve("/new/dir/", true), "/new/dir");
        assert_eq!(
            s.resolve("/loop/x", false),
            "/loop/x",
            "a loop stays as written"
        );
    }
}
