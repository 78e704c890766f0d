//! The build context: which files a COPY/ADD source selects, and where each
//! lands in the image.
//!
//! - Sources are relative to the context root; an absolute source (`/app`) is
//!   taken relative to the context too. A source that leaves the context
//!   (`../x`) is refused.
//! - Sources may be globs with Go `filepath.Match` rules, matched per path
//!   component (`*` never crosses `/`).
//! - Files excluded by `.dockerignore` do not exist for COPY.
//! - Symlinks inside a copied directory are copied as symlinks (never
//!   followed), whatever they point to. A source that is itself a symlink is
//!   followed, but only within the context.
//! - Nothing is ever read through a path outside the context root.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::dockerignore::{glob_match, go_clean, has_wildcards, DockerIgnore};
use crate::Error;

/// File type of a context entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symlink, with its target as stored (not resolved).
    Symlink(String),
}

/// One file or directory of the context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextEntry {
    /// Path relative to the context root, `/`-separated (`.` for the root).
    pub rel: String,
    /// Where to read it on the host.
    pub host_path: PathBuf,
    /// Type.
    pub kind: EntryKind,
    /// Permission bits (incl. setuid/setgid/sticky), `st_mode & 0o7777`.
    pub mode: u32,
    /// Size in bytes (files).
    pub size: u64,
}

/// What one COPY source selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// The source as written.
    pub source: String,
    /// The matched path (for a directory: its contents are copied).
    pub root: ContextEntry,
    /// For a directory: everything below it, in sorted order (the root excluded).
    pub children: Vec<ContextEntry>,
}

/// One thing to create in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyItem {
    /// Absolute destination path in the image.
    pub dest: String,
    /// What to copy there.
    pub entry: ContextEntry,
    /// Mode to give it (after `--chmod`).
    pub mode: u32,
    /// Owner (after `--chown`; root when not given).
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// A build context directory with its `.dockerignore`.
#[derive(Debug, Clone)]
pub struct BuildContext {
    root: PathBuf,
    ignore: DockerIgnore,
    /// Absolute symlink targets resolve inside `root` (an image/stage rootfs)
    /// instead of being refused (a host build context).
    rooted_links: bool,
    /// What `root` is, for messages ("build context", "stage build", …).
    label: String,
}

impl BuildContext {
    /// Open a context directory and read its `.dockerignore`.
    pub fn open(root: &Path) -> Result<BuildContext, Error> {
        let ignore = DockerIgnore::read(root)?;
        BuildContext::with_ignore(root, ignore)
    }

    /// Open a context directory with the given ignore rules.
    pub fn with_ignore(root: &Path, ignore: DockerIgnore) -> Result<BuildContext, Error> {
        let root = root
            .canonicalize()
            .map_err(|e| Error::Invalid(format!("build context {}: {e}", root.display())))?;
        if !root.is_dir() {
            return Err(Error::Invalid(format!(
                "build context {} is not a directory",
                root.display()
            )));
        }
        Ok(BuildContext {
            root,
            ignore,
            rooted_links: false,
            label: "build context".into(),
        })
    }

    /// Open the context for a Dockerfile: `<Dockerfile>.dockerignore` next to the
    /// Dockerfile wins over `<context>/.dockerignore` (BuildKit's rule).
    pub fn for_dockerfile(root: &Path, dockerfile: &Path) -> Result<BuildContext, Error> {
        let mut specific = dockerfile.as_os_str().to_owned();
        specific.push(".dockerignore");
        let specific = PathBuf::from(specific);
        let ignore = match std::fs::read_to_string(&specific) {
            Ok(t) => {
                tracing::info!(target: "explain::build", "using ignore file {}", specific.display());
                DockerIgnore::parse(&t)?
            }
            Err(_) => DockerIgnore::read(root)?,
        };
        BuildContext::with_ignore(root, ignore)
    }

    /// A filesystem tree to `COPY --from`: a built stage's or an image's rootfs.
    /// No ignore rules; absolute symlinks resolve inside `root`.
    pub fn rootfs(root: &Path, label: &str) -> Result<BuildContext, Error> {
        let mut c = BuildContext::with_ignore(root, DockerIgnore::default())?;
        c.rooted_links = true;
        c.label = label.to_string();
        Ok(c)
    }

    /// The context root (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a context-relative path is excluded by `.dockerignore`.
    pub fn is_ignored(&self, rel: &str) -> bool {
        self.ignore.is_excluded(rel)
    }

    /// Select what each source names. Errors name the source and say what to do.
    pub fn select(&self, sources: &[String]) -> Result<Vec<Selected>, Error> {
        let mut out = Vec::new();
        for src in sources {
            let rel = normalize_source(src)?;
            let matches = if has_wildcards(&rel) {
                self.glob(&rel)?
            } else if rel == "." {
                vec![".".to_string()]
            } else {
                match self.resolve_parents(src, &rel)? {
                    Some(r) if !self.is_ignored(&r) && self.lstat(&r).is_some() => vec![r],
                    _ => Vec::new(),
                }
            };
            if matches.is_empty() {
                let hint = if self.rooted_links {
                    ""
                } else {
                    " (or excluded by .dockerignore)"
                };
                return Err(Error::Invalid(format!(
                    "COPY/ADD source {src:?}: not found in {} {}{hint}",
                    self.label,
                    self.root.display()
                )));
            }
            for m in matches {
                let root = self.source_entry(src, &m)?;
                let children = match root.kind {
                    EntryKind::Dir => self.walk(&root.rel)?,
                    _ => Vec::new(),
                };
                tracing::info!(
                    target: "explain::build",
                    "COPY source {src:?}: {} ({} entries below) from {}",
                    root.rel,
                    children.len(),
                    self.root.display()
                );
                out.push(Selected {
                    source: src.clone(),
                    root,
                    children,
                });
            }
        }
        Ok(out)
    }

    /// Resolve symlinks in the directory part of `rel` within the context, so
    /// that no host path outside the root is ever touched. `None` if missing.
    fn resolve_parents(&self, src: &str, rel: &str) -> Result<Option<String>, Error> {
        let mut comps: Vec<String> = rel.split('/').map(str::to_string).collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while comps.len() > 1 {
            let c = comps.remove(0);
            let cur = if done.is_empty() {
                c.clone()
            } else {
                format!("{}/{c}", done.join("/"))
            };
            let Some(md) = self.lstat(&cur) else {
                return Ok(None);
            };
            if md.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    return Err(Error::Invalid(format!(
                        "COPY/ADD source {src:?}: too many levels of symbolic links"
                    )));
                }
                let target = std::fs::read_link(self.host(&cur))
                    .map_err(|e| Error::Invalid(format!("cannot read link {cur}: {e}")))?;
                let target = target.to_string_lossy();
                let joined = self.link_target(src, &done.join("/"), &target)?;
                let mut rest: Vec<String> = if joined == "." {
                    Vec::new()
                } else {
                    joined.split('/').map(str::to_string).collect()
                };
                rest.extend(comps);
                comps = rest;
                done.clear();
                if comps.is_empty() {
                    return Ok(Some(".".into()));
                }
            } else if md.is_dir() {
                done.push(c);
            } else {
                return Ok(None);
            }
        }
        done.extend(comps);
        Ok(Some(done.join("/")))
    }

    /// Where a symlink in directory `dir` pointing to `target` leads, relative
    /// to the root; refuses anything outside a host build context.
    fn link_target(&self, src: &str, dir: &str, target: &str) -> Result<String, Error> {
        if self.rooted_links {
            // Inside a rootfs, absolute targets start at its root and `..`
            // stops there, as in a chroot.
            let base = if target.starts_with('/') {
                String::new()
            } else {
                dir.to_string()
            };
            let rel = go_clean(&format!("/{base}/{target}"));
            let rel = rel.trim_start_matches('/');
            return Ok(if rel.is_empty() {
                ".".to_string()
            } else {
                rel.to_string()
            });
        }
        if target.starts_with('/') {
            // On the host an absolute target leaves the context.
            return Err(outside(src));
        }
        let joined = go_clean(format!("{dir}/{target}").trim_start_matches('/'));
        if joined == ".." || joined.starts_with("../") {
            return Err(outside(src));
        }
        Ok(joined)
    }

    fn lstat(&self, rel: &str) -> Option<std::fs::Metadata> {
        std::fs::symlink_metadata(self.host(rel)).ok()
    }

    fn host(&self, rel: &str) -> PathBuf {
        if rel == "." {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    fn entry(&self, rel: &str) -> Result<Option<ContextEntry>, Error> {
        let host_path = self.host(rel);
        let md = match std::fs::symlink_metadata(&host_path) {
            Ok(m) => m,
            Err(e) => {
                return Err(Error::Invalid(format!(
                    "cannot read {}: {e}",
                    host_path.display()
                )))
            }
        };
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&host_path).map_err(|e| {
                Error::Invalid(format!("cannot read link {}: {e}", host_path.display()))
            })?;
            EntryKind::Symlink(t.to_string_lossy().into_owned())
        } else {
            tracing::warn!(
                "skipping special file {} in build context",
                host_path.display()
            );
            return Ok(None);
        };
        Ok(Some(ContextEntry {
            rel: rel.to_string(),
            host_path,
            kind,
            mode: md.mode() & 0o7777,
            size: if ft.is_file() { md.len() } else { 0 },
        }))
    }

    /// The entry a source names; a symlink source is followed within the context.
    fn source_entry(&self, src: &str, rel: &str) -> Result<ContextEntry, Error> {
        let mut cur = rel.to_string();
        for _ in 0..40 {
            let e = self.entry(&cur)?.ok_or_else(|| {
                Error::Invalid(format!(
                    "COPY/ADD source {src:?} is not a file or directory"
                ))
            })?;
            let EntryKind::Symlink(target) = &e.kind else {
                return Ok(ContextEntry { rel: e.rel, ..e });
            };
            let parent = match cur.rfind('/') {
                Some(i) => &cur[..i],
                None => "",
            };
            let joined = self.link_target(src, parent, target)?;
            if joined != "." && self.is_ignored(&joined) {
                return Err(Error::Invalid(format!(
                    "COPY/ADD source {src:?} links to {joined:?}, which .dockerignore excludes"
                )));
            }
            cur = self.resolve_parents(src, &joined)?.ok_or_else(|| {
                Error::Invalid(format!(
                    "COPY/ADD source {src:?} is a dangling symlink (target {joined:?} not found)"
                ))
            })?;
        }
        Err(Error::Invalid(format!(
            "COPY/ADD source {src:?}: too many levels of symbolic links"
        )))
    }

    /// Everything below `dir` (context-relative), sorted, minus ignored entries.
    fn walk(&self, dir: &str) -> Result<Vec<ContextEntry>, Error> {
        let mut out = Vec::new();
        self.walk_into(dir, &mut out)?;
        Ok(out)
    }

    fn walk_into(&self, dir: &str, out: &mut Vec<ContextEntry>) -> Result<bool, Error> {
        let host = self.host(dir);
        let rd = std::fs::read_dir(&host)
            .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", host.display())))?;
        let mut names: Vec<String> = Vec::new();
        for ent in rd {
            let ent =
                ent.map_err(|e| Error::Invalid(format!("cannot read {}: {e}", host.display())))?;
            names.push(ent.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        let mut any = false;
        for name in names {
            let rel = if dir == "." {
                name
            } else {
                format!("{dir}/{name}")
            };
            let Some(e) = self.entry(&rel)? else { continue };
            let ignored = self.is_ignored(&rel);
            if e.kind == EntryKind::Dir {
                if ignored && !self.ignore.has_exclusions() {
                    continue;
                }
                let at = out.len();
                out.push(e);
                let inner = self.walk_into(&rel, out)?;
                if ignored && !inner {
                    // Only kept as the parent of re-included files.
                    out.truncate(at);
                    continue;
                }
                any = true;
            } else if !ignored {
                out.push(e);
                any = true;
            }
        }
        Ok(any)
    }

    /// Expand a glob source component by component.
    fn glob(&self, pattern: &str) -> Result<Vec<String>, Error> {
        let mut current = vec![String::from(".")];
        for comp in pattern.split('/') {
            let mut next = Vec::new();
            for base in &current {
                // Descend only into real directories: never through a symlink.
                if !self.lstat(base).is_some_and(|m| m.is_dir()) {
                    continue;
                }
                if !has_wildcards(comp) {
                    let rel = join(base, &unescape(comp));
                    if self.lstat(&rel).is_some() && !self.is_ignored(&rel) {
                        next.push(rel);
                    }
                    continue;
                }
                let host = self.host(base);
                let Ok(rd) = std::fs::read_dir(&host) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for n in names {
                    let rel = join(base, &n);
                    if glob_match(comp, &n, true) && !self.is_ignored(&rel) {
                        next.push(rel);
                    }
                }
            }
            current = next;
        }
        Ok(current)
    }
}

fn join(base: &str, name: &str) -> String {
    if base == "." {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn outside(src: &str) -> Error {
    Error::Invalid(format!(
        "forbidden path outside the build context: {src} (COPY/ADD can only read files inside the context directory)"
    ))
}

/// A source made context-relative and clean; refuses `..` escapes.
pub fn normalize_source(src: &str) -> Result<String, Error> {
    if src.is_empty() {
        return Err(Error::Invalid("COPY/ADD source must not be empty".into()));
    }
    if src.contains("://") || src.starts_with("git@") {
        return Err(Error::Invalid(format!(
            "ADD {src}: remote sources (URLs, git) are not supported by minicompose; download the file in a RUN step"
        )));
    }
    let rel = go_clean(src.trim_start_matches('/'));
    if rel == ".." || rel.starts_with("../") {
        return Err(outside(src));
    }
    Ok(rel)
}

/// Where each selected entry goes, following Docker's COPY rules:
///
/// - a directory source copies its *contents* into `dest`;
/// - a file source goes to `dest` itself, or into it when `dest` ends with `/`
///   or more than one thing is copied;
/// - more than one source requires `dest` to end with `/` (BuildKit's rule).
///
/// `dest` is absolute (see [`crate::evaluate::copy_destination`]). When `dest`
/// does not end with `/` and names an existing directory in the image, the
/// executor must put a single file inside it (Docker does) — only it can see
/// the image's filesystem. `owner` is the resolved `--chown` (root if `None`),
/// `chmod` the parsed `--chmod`.
pub fn plan_copy(
    selected: &[Selected],
    source_count: usize,
    dest: &str,
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
) -> Result<Vec<CopyItem>, Error> {
    let dest_is_dir = dest.ends_with('/');
    if source_count > 1 && !dest_is_dir {
        return Err(Error::Invalid(
            "When using COPY with more than one source file, the destination must be a directory and end with a /"
                .into(),
        ));
    }
    let into_dir = dest_is_dir || selected.len() > 1;
    let base = dest.trim_end_matches('/');
    let base = if base.is_empty() { "/" } else { base };
    let (uid, gid) = owner.unwrap_or((0, 0));
    let item = |dest: String, entry: &ContextEntry| CopyItem {
        dest,
        entry: entry.clone(),
        mode: chmod.unwrap_or(entry.mode),
        uid,
        gid,
    };
    let mut out = Vec::new();
    for sel in selected {
        match sel.root.kind {
            EntryKind::Dir => {
                out.push(item(base.to_string(), &sel.root));
                let prefix = if sel.root.rel == "." {
                    String::new()
                } else {
                    format!("{}/", sel.root.rel)
                };
                for child in &sel.children {
                    let sub = child.rel.strip_prefix(&prefix).unwrap_or(&child.rel);
                    out.push(item(join_abs(base, sub), child));
                }
            }
            _ => {
                let name = sel.root.rel.rsplit('/').next().unwrap_or(&sel.root.rel);
                // A followed symlink keeps the name it was given in the source.
                let name = if sel.source.contains(['*', '?', '[']) {
                    name
                } else {
                    sel.source
                        .trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .unwrap_or(name)
                };
                let d = if into_dir {
                    join_abs(base, name)
                } else {
                    base.to_string()
                };
                out.push(item(d, &sel.root));
            }
        }
    }
    Ok(out)
}

/// Where a heredoc source (`COPY <<EOF /dest`) is written: `dest` itself, or
/// `dest/<name>` when `dest` ends with `/`. `source_count` counts all sources
/// (paths and heredocs); more than one needs a directory destination.
pub fn inline_destination(dest: &str, name: &str, source_count: usize) -> Result<String, Error> {
    if source_count > 1 && !dest.ends_with('/') {
        return Err(Error::Invalid(
            "When using COPY with more than one source file, the destination must be a directory and end with a /"
                .into(),
        ));
    }
    if !dest.ends_with('/') {
        return Ok(dest.to_string());
    }
    let base = dest.trim_end_matches('/');
    Ok(join_abs(if base.is_empty() { "/" } else { base }, name))
}

fn join_abs(base: &str, rel: &str) -> String {
    if base == "/" {
        format!("/{rel}")
    } else {
        format!("{base}/{rel}")
    }
}

/// Compression of a local archive that `ADD` unpacks instead of copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// Plain tar.
    Tar,
    /// gzip-compressed tar.
    Gzip,
    /// bzip2-compressed tar.
    Bzip2,
    /// xz-compressed tar.
    Xz,
    /// zstd-compressed tar.
    Zstd,
}

/// Whether `ADD` should unpack this file, by content like Docker (magic bytes;
/// compressed files are archives when their compression is recognised — the
/// executor still falls back to copying if the payload is not a tar).
/// Returns `None` for anything else, which `ADD` copies like `COPY`.
pub fn archive_kind(path: &Path) -> Result<Option<ArchiveKind>, Error> {
    use std::io::Read;
    let mut head = [0u8; 512];
    let mut f = std::fs::File::open(path)
        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => {
                return Err(Error::Invalid(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        }
    }
    let h = &head[..n];
    Ok(if h.starts_with(&[0x1f, 0x8b]) {
        Some(ArchiveKind::Gzip)
    } else if h.starts_with(b"BZh") {
        Some(ArchiveKind::Bzip2)
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(ArchiveKind::Xz)
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(ArchiveKind::Zstd)
    } else if n >= 262 && &h[257..262] == b"ustar" {
        Some(ArchiveKind::Tar)
    } else {
        None
    })
}

/// Parse a `--chmod` value (octal, e.g. `755` or `0644`).
pub fn parse_chmod(s: &str) -> Result<u32, Error> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "invalid chmod parameter {s:?}: use an octal mode such as 0644"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn ctx_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("src/sub")).unwrap();
        std::fs::create_dir_all(p.join("node_modules/pkg")).unwrap();
        std::fs::write(p.join("app.py"), "print(1)\n").unwrap();
        std::fs::write(p.join("requirements.txt"), "flask\n").unwrap();
        std::fs::write(p.join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(p.join("src/a.txt"), "a").unwrap();
        std::fs::write(p.join("src/b.log"), "b").unwrap();
        std::fs::write(p.join("src/sub/c.txt"), "c").unwrap();
        std::fs::write(p.join("node_modules/pkg/index.js"), "x").unwrap();
        std::fs::set_permissions(p.join("app.py"), std::fs::Permissions::from_mode(0o755)).unwrap();
        symlink("/etc/passwd", p.join("src/escape")).unwrap();
        symlink("../app.py", p.join("src/up")).unwrap();
        symlink("src/a.txt", p.join("link-a")).unwrap();
        symlink("../../etc/passwd", p.join("bad-link")).unwrap();
        std::fs::write(
            p.join(".dockerignore"),
            "node_modules\n*.log\n**/*.log\nDockerfile\n",
        )
        .unwrap();
        d
    }

    fn rels(sel: &[Selected]) -> Vec<String> {
        sel.iter()
            .flat_map(|s| {
                std::iter::once(s.root.rel.clone()).chain(s.children.iter().map(|c| c.rel.clone()))
            })
            .collect()
    }

    #[test]
    fn select_whole_context_respects_dockerignore() {
        let d = ctx_dir();
        let ctx = BuildContext::open(d.path()).unwrap();
        let sel = ctx.select(&[".".into()]).unwrap();
        assert_eq!(
            rels(&sel),
            vec![
                ".",
                ".dockerignore",
                "app.py",
                "bad-link",
                "link-a",
                "requirements.txt",
                "src",
                "src/a.txt",
                "src/escape",
                "src/sub",
                "src/sub/c.txt",
                "src/up"
            ]
        );
        // Symlinks inside are kept as symlinks, even when they point outside.
        let esc = sel[0]
            .children
            .iter()
            .find(|c| c.rel == "src/escape")
            .unwrap();
        assert_eq!(esc.kind, EntryKind::Symlink("/etc/passwd".into()));
    }

    #[test]
    fn globs_and_errors() {
        let d = ctx_dir();
        let ctx = BuildContext::open(d.path()).unwrap();
        assert_eq!(
            rels(&ctx.select(&["*.py".into(), "*.txt".into()]).unwrap()),
            vec!["app.py", "requirements.txt"]
        );
        assert_eq!(
            rels(&ctx.select(&["src/*.txt".into()]).unwrap()),
            vec!["src/a.txt"]
        );
        assert_eq!(
            rels(&ctx.select(&["/src/sub".into()]).unwrap()),
            vec!["src/sub", "src/sub/c.txt"]
        );
        let err = |s: &str| ctx.select(&[s.into()]).unwrap_err().to_string();
        assert!(err("../x").starts_with("forbidden path outside the build context: ../x"));
        assert!(err("src/../../x").starts_with("forbidden path outside the build context"));
        assert!(err("node_modules").contains("not found in build context"));
        assert!(err("Dockerfile").contains("excluded by .dockerignore"));
        assert!(err("*.nothing").contains("not found"));
        assert!(err("bad-link").starts_with("forbidden path outside the build context"));
        assert!(err("https://example.com/x.tgz").contains("remote sources"));
        // A symlink source is followed inside the context.
        let sel = ctx.select(&["link-a".into()]).unwrap();
        assert_eq!(sel[0].root.rel, "src/a.txt");
        assert_eq!(sel[0].root.kind, EntryKind::File);
    }

    #[test]
    fn symlinked_parent_dirs_never_escape() {
        let d = ctx_dir();
        let outside_dir = tempfile::tempdir().unwrap();
        std::fs::write(outside_dir.path().join("secret"), "s").unwrap();
        symlink(outside_dir.path(), d.path().join("abs-dir")).unwrap();
        symlink("..", d.path().join("src/parent")).unwrap();
        symlink("src", d.path().join("src-link")).unwrap();
        let ctx = BuildContext::open(d.path()).unwrap();
        let err = |s: &str| ctx.select(&[s.into()]).unwrap_err().to_string();
        assert!(err("abs-dir/secret").starts_with("forbidden path outside the build context"));
        assert!(
            err("*/secret").contains("not found"),
            "globs do not descend through symlinks"
        );
        // `src/parent` is the context root itself: allowed, and stays inside.
        assert_eq!(
            ctx.select(&["src/parent/app.py".into()]).unwrap()[0]
                .root
                .rel,
            "app.py"
        );
        assert_eq!(
            ctx.select(&["src-link/a.txt".into()]).unwrap()[0].root.rel,
            "src/a.txt"
        );
        // Paths are cleaned lexically first (Go semantics): this is `src/x`.
        assert!(err("src/parent/../x").contains("not found"));
    }

    #[test]
    fn rootfs_sources_resolve_absolute_links_inside() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("usr/bin")).unwrap();
        std::fs::write(p.join("usr/bin/app"), "bin").unwrap();
        symlink("/usr/bin", p.join("bin")).unwrap();
        symlink("../../../../usr/bin/app", p.join("usr/bin/deep")).unwrap();
        let ctx = BuildContext::rootfs(p, "stage build").unwrap();
        assert_eq!(
            ctx.select(&["/bin/app".into()]).unwrap()[0].root.rel,
            "usr/bin/app"
        );
        assert_eq!(
            ctx.select(&["/usr/bin/deep".into()]).unwrap()[0].root.rel,
            "usr/bin/app"
        );
        let e = ctx.select(&["/nope".into()]).unwrap_err().to_string();
        assert!(
            e.contains("not found in stage build") && !e.contains("dockerignore"),
            "{e}"
        );
    }

    #[test]
    fn dockerfile_specific_ignore_file_wins() {
        let d = ctx_dir();
        std::fs::write(d.path().join("Dockerfile.dockerignore"), "app.py\n").unwrap();
        let ctx = BuildContext::for_dockerfile(d.path(), &d.path().join("Dockerfile")).unwrap();
        assert!(ctx.is_ignored("app.py"));
        assert!(!ctx.is_ignored("node_modules"));
        let ctx =
            BuildContext::for_dockerfile(d.path(), &d.path().join("Other.Dockerfile")).unwrap();
        assert!(ctx.is_ignored("node_modules"));
    }

    #[test]
    fn archive_detection() {
        let d = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = d.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            archive_kind(&p).unwrap()
        };
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(write("a.tar", &tar), Some(ArchiveKind::Tar));
        assert_eq!(write("a.tgz", &[0x1f, 0x8b, 8, 0]), Some(ArchiveKind::Gzip));
        assert_eq!(write("a.bz2", b"BZh91AY"), Some(ArchiveKind::Bzip2));
        assert_eq!(
            write("a.xz", &[0xfd, b'7', b'z', b'X', b'Z', 0, 0]),
            Some(ArchiveKind::Xz)
        );
        assert_eq!(
            write("a.zst", &[0x28, 0xb5, 0x2f, 0xfd, 1]),
            Some(ArchiveKind::Zstd)
        );
        assert_eq!(write("app.py", b"print(1)\n"), None);
        assert_eq!(write("empty", b""), None);
        assert!(archive_kind(&d.path().join("missing")).is_err());
    }

    #[test]
    fn plan_table() {
        let d = ctx_dir();
        let ctx = BuildContext::open(d.path()).unwrap();
        let plan = |srcs: &[&str], dest: &str| {
            let s: Vec<String> = srcs.iter().map(|s| s.to_string()).collect();
            let sel = ctx.select(&s).unwrap();
            plan_copy(&sel, s.len(), dest, Some((1000, 1000)), None)
                .map(|v| v.into_iter().map(|i| i.dest).collect::<Vec<_>>())
        };
        assert_eq!(
            plan(&["app.py"], "/code/app.py").unwrap(),
            vec!["/code/app.py"]
        );
        assert_eq!(plan(&["app.py"], "/code/").unwrap(), vec!["/code/app.py"]);
        assert_eq!(plan(&["src/sub"], "/x").unwrap(), vec!["/x", "/x/c.txt"]);
        assert_eq!(
            plan(&["*.txt"], "/r/").unwrap(),
            vec!["/r/requirements.txt"]
        );
        assert_eq!(plan(&["link-a"], "/l/").unwrap(), vec!["/l/link-a"]);
        assert!(plan(&["app.py", "requirements.txt"], "/code")
            .unwrap_err()
            .to_string()
            .contains("must be a directory and end with a /"));
        let sel = ctx.select(&["app.py".into()]).unwrap();
        let items = plan_copy(&sel, 1, "/a", None, Some(0o600)).unwrap();
        assert_eq!((items[0].mode, items[0].uid), (0o600, 0));
        let items = plan_copy(&sel, 1, "/a", None, None).unwrap();
        assert_eq!(items[0].mode, 0o755);
        assert_eq!(parse_chmod("0644").unwrap(), 0o644);
        assert_eq!(
            inline_destination("/etc/motd", "EOF", 1).unwrap(),
            "/etc/motd"
        );
        assert_eq!(
            inline_destination("/app/", "run.sh", 2).unwrap(),
            "/app/run.sh"
        );
        assert_eq!(inline_destination("/", "f", 1).unwrap(), "/f");
        assert!(inline_destination("/app", "a", 2).is_err());
        assert!(parse_chmod("9").is_err());
    }
}
