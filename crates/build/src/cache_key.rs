//! Build-cache keys.
//!
//! A step's key is `sha256` over a length-prefixed, versioned encoding of:
//!
//! 1. the parent key (the previous step's key, or [`base_key`] for the stage's
//!    base: image id + platform, or the key of the stage it is `FROM`);
//! 2. the expanded instruction (canonical JSON of [`Instruction`]);
//! 3. for RUN: the argv, the environment minus proxy variables (which, as in
//!    BuildKit, never bust the cache), the working directory and user;
//! 4. for COPY/ADD: the destination and a [`content_digest`] of what is copied
//!    (destination path, type, mode, uid/gid after `--chown`, file content hash,
//!    symlink target; in a fixed order; mtimes and host owners excluded), plus
//!    the key of the `--from` stage when copying from one.
//!
//! Same inputs give the same key; any change to them gives a different key.

use std::io::Read;

use sha2::{Digest, Sha256};

use crate::args::PROXY_ARGS;
use crate::config::ImageConfig;
use crate::context::{CopyItem, EntryKind};
use crate::dockerfile::{InlineSource, Instruction};
use crate::evaluate::Step;
use crate::Error;

const VERSION: &[u8] = b"mc-build-cache-v1";

/// Length-prefixed fields into a running hash (so "ab"+"c" ≠ "a"+"bc").
struct Hasher(Sha256);

impl Hasher {
    fn new(kind: &str) -> Hasher {
        let mut h = Hasher(Sha256::new());
        h.field(VERSION);
        h.field(kind.as_bytes());
        h
    }
    fn field(&mut self, b: &[u8]) {
        self.0.update((b.len() as u64).to_le_bytes());
        self.0.update(b);
    }
    fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finalize()))
    }
}

/// Key of a stage's starting point: the base image's id (config digest) or a
/// built stage's final key, and the platform.
pub fn base_key(base_id: &str, platform: &str) -> String {
    let mut h = Hasher::new("base");
    h.field(base_id.as_bytes());
    h.field(platform.as_bytes());
    h.finish()
}

/// Digest of what a COPY/ADD copies (see module docs). Reads file contents.
pub fn content_digest(items: &[CopyItem], inline: &[InlineSource]) -> Result<String, Error> {
    let mut sorted: Vec<&CopyItem> = items.iter().collect();
    sorted.sort_by(|a, b| a.dest.cmp(&b.dest));
    let mut h = Hasher::new("content");
    for it in sorted {
        h.field(it.dest.as_bytes());
        h.field(&it.mode.to_le_bytes());
        h.field(&it.uid.to_le_bytes());
        h.field(&it.gid.to_le_bytes());
        match &it.entry.kind {
            EntryKind::Dir => h.field(b"dir"),
            EntryKind::Symlink(t) => {
                h.field(b"symlink");
                h.field(t.as_bytes());
            }
            EntryKind::File => {
                h.field(b"file");
                h.field(file_sha256(&it.entry.host_path)?.as_bytes());
            }
        }
    }
    for s in inline {
        h.field(b"inline");
        h.field(s.name.as_bytes());
        h.field(s.content.as_bytes());
    }
    Ok(h.finish())
}

fn file_sha256(path: &std::path::Path) -> Result<String, Error> {
    let mut f = std::fs::File::open(path).map_err(|e| {
        Error::Invalid(format!(
            "cannot read {} from the build context: {e}",
            path.display()
        ))
    })?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The key of one step. `config` is the stage config *after* the step;
/// `content` is [`content_digest`] for COPY/ADD (and must be given for them);
/// `from_key` is the final key of the `--from` stage (or the image id) if any.
pub fn step_key(
    parent: &str,
    step: &Step,
    config: &ImageConfig,
    content: Option<&str>,
    from_key: Option<&str>,
) -> String {
    let mut h = Hasher::new("step");
    h.field(parent.as_bytes());
    let json = serde_json::to_vec(&step.instruction).unwrap_or_default();
    h.field(&json);
    if let Some(run) = &step.run {
        h.field(b"run");
        for a in &run.argv {
            h.field(a.as_bytes());
        }
        h.field(b"env");
        for e in run.env.iter().filter(|e| !is_proxy(e)) {
            h.field(e.as_bytes());
        }
        h.field(config.working_dir.as_bytes());
        h.field(config.user.as_bytes());
        h.field(run.shebang_script.as_deref().unwrap_or_default().as_bytes());
    }
    if matches!(step.instruction, Instruction::Copy(_)) {
        h.field(b"copy");
        h.field(step.copy_dest.as_deref().unwrap_or_default().as_bytes());
        h.field(content.unwrap_or_default().as_bytes());
        h.field(from_key.unwrap_or_default().as_bytes());
    }
    h.finish()
}

fn is_proxy(env: &str) -> bool {
    let k = env.split_once('=').map_or(env, |(k, _)| k);
    PROXY_ARGS.contains(&k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{BuildOptions, MetaScope};
    use crate::context::{plan_copy, BuildContext};
    use crate::dockerfile::parse;
    use crate::evaluate::StageState;

    fn keys(src: &str, build_args: &[(&str, &str)]) -> Vec<String> {
        let df = parse(src).unwrap();
        let opts = BuildOptions {
            build_args: build_args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let meta = MetaScope::new(&df, &opts).unwrap();
        let mut st = StageState::new(ImageConfig::default(), &meta, &opts, '\\');
        let mut parent = base_key("sha256:base", "linux/amd64");
        let mut out = Vec::new();
        for l in &df.stages[0].instructions {
            let step = st.step(l).unwrap();
            parent = step_key(&parent, &step, &st.config, None, None);
            out.push(parent.clone());
        }
        out
    }

    #[test]
    fn same_input_same_key_any_change_differs() {
        let a = keys("FROM x\nENV A=1\nRUN echo hi\n", &[]);
        assert_eq!(a, keys("FROM x\nENV A=1\nRUN echo hi\n", &[]));
        assert!(a[1].starts_with("sha256:") && a[1].len() == 71);
        let variants = [
            keys("FROM x\nENV A=2\nRUN echo hi\n", &[]),
            keys("FROM x\nENV A=1\nRUN echo hi!\n", &[]),
            keys("FROM x\nENV A=1\nRUN [\"echo\", \"hi\"]\n", &[]),
            keys("FROM x\nENV A=1\nWORKDIR /w\nRUN echo hi\n", &[]),
            keys("FROM x\nENV A=1\nUSER 1\nRUN echo hi\n", &[]),
            keys(
                "FROM x\nENV A=1\nSHELL [\"/bin/bash\", \"-c\"]\nRUN echo hi\n",
                &[],
            ),
        ];
        for v in &variants {
            assert_ne!(v.last(), a.last());
        }
        // Build args change RUN keys; proxy args do not.
        let with_arg = keys("FROM x\nARG V=1\nRUN echo hi\n", &[]);
        assert_ne!(
            with_arg,
            keys("FROM x\nARG V=1\nRUN echo hi\n", &[("V", "2")])
        );
        assert_eq!(
            with_arg,
            keys(
                "FROM x\nARG V=1\nRUN echo hi\n",
                &[("HTTP_PROXY", "http://p:1")]
            )
        );
        // Different parent → different key.
        let df = parse("FROM x\nRUN a\n").unwrap();
        let opts = BuildOptions::default();
        let meta = MetaScope::new(&df, &opts).unwrap();
        let mut st = StageState::new(ImageConfig::default(), &meta, &opts, '\\');
        let step = st.step(&df.stages[0].instructions[0]).unwrap();
        assert_ne!(
            step_key(
                &base_key("sha256:a", "linux/amd64"),
                &step,
                &st.config,
                None,
                None
            ),
            step_key(
                &base_key("sha256:b", "linux/amd64"),
                &step,
                &st.config,
                None,
                None
            )
        );
        assert_ne!(
            base_key("sha256:a", "linux/amd64"),
            base_key("sha256:a", "linux/arm64")
        );
    }

    #[test]
    fn content_digest_tracks_content_mode_owner_links_not_mtime() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir(p.join("dir")).unwrap();
        std::fs::write(p.join("dir/f"), "one").unwrap();
        std::os::unix::fs::symlink("f", p.join("dir/l")).unwrap();
        let digest = |owner: Option<(u32, u32)>, chmod: Option<u32>, dest: &str| {
            let ctx = BuildContext::open(p).unwrap();
            let sel = ctx.select(&["dir".into()]).unwrap();
            content_digest(&plan_copy(&sel, 1, dest, owner, chmod).unwrap(), &[]).unwrap()
        };
        let base = digest(None, None, "/x/");
        assert_eq!(base, digest(None, None, "/x/"));
        // mtime changes do not matter.
        let f = std::fs::File::options()
            .write(true)
            .open(p.join("dir/f"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        drop(f);
        assert_eq!(base, digest(None, None, "/x/"));
        assert_ne!(base, digest(Some((1, 1)), None, "/x/"));
        assert_ne!(base, digest(None, Some(0o700), "/x/"));
        assert_ne!(base, digest(None, None, "/y/"));
        std::fs::write(p.join("dir/f"), "two").unwrap();
        let changed = digest(None, None, "/x/");
        assert_ne!(base, changed);
        std::fs::remove_file(p.join("dir/l")).unwrap();
        std::os::unix::fs::symlink("g", p.join("dir/l")).unwrap();
        assert_ne!(changed, digest(None, None, "/x/"));
        std::fs::write(p.join("dir/new"), "").unwrap();
        assert_ne!(changed, digest(None, None, "/x/"));
        let inline = |c: &str| {
            content_digest(
                &[],
                &[InlineSource {
                    name: "f".into(),
                    content: c.into(),
                    expand: true,
                }],
            )
            .unwrap()
        };
        assert_ne!(inline("a"), inline("b"));
    }
}

/// The seed app (`hit-counter/app`) through the whole pure pipeline: the keys
/// the executor would compute, and which of them an edit invalidates.
#[cfg(test)]
mod seed_tests {
    use super::*;
    use crate::args::BuildOptions;
    use crate::context::{plan_copy, BuildContext};
    use crate::dockerfile::parse_file;
    use crate::evaluate::StageState;
    use crate::plan::plan;
    use crate::stages::Base;

    /// A copy of the seed app (examples/hit-counter/app) in a temp dir.
    fn seed_context() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let seed =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hit-counter/app");
        for name in ["Dockerfile", "app.py", "requirements.txt"] {
            std::fs::copy(seed.join(name), d.path().join(name))
                .unwrap_or_else(|e| panic!("copy the seed's {name}: {e}"));
        }
        d
    }

    fn keys(ctx_dir: &std::path::Path) -> Vec<String> {
        let df = parse_file(&ctx_dir.join("Dockerfile")).unwrap();
        let opts = BuildOptions::default();
        let p = plan(&df, &opts).unwrap();
        assert_eq!(
            p.graph.nodes[0].base,
            Base::Image("python:3.6-alpine".into())
        );
        let ctx = BuildContext::for_dockerfile(ctx_dir, &ctx_dir.join("Dockerfile")).unwrap();
        let base = ImageConfig {
            env: vec![
                "PATH=/usr/local/bin:/usr/bin:/bin".into(),
                "PYTHON_VERSION=3.6.15".into(),
            ],
            cmd: Some(vec!["python3".into()]),
            ..Default::default()
        };
        let mut st = StageState::new(base, &p.meta, &opts, df.directives.escape);
        let mut parent = base_key("sha256:python-image-id", &opts.target_platform.to_string());
        let mut out = Vec::new();
        for l in &df.stages[0].instructions {
            let step = st.step(l).unwrap();
            let content = match &step.instruction {
                Instruction::Copy(c) => {
                    let sel = ctx.select(&c.sources).unwrap();
                    let dest = step.copy_dest.clone().unwrap();
                    let items = plan_copy(&sel, c.sources.len(), &dest, None, None).unwrap();
                    Some(content_digest(&items, &c.inline).unwrap())
                }
                _ => None,
            };
            parent = step_key(&parent, &step, &st.config, content.as_deref(), None);
            out.push(parent.clone());
        }
        assert_eq!(st.config.working_dir, "/code");
        assert_eq!(st.config.cmd, Some(vec!["python".into(), "app.py".into()]));
        let created: Vec<&str> = st.history.iter().map(|h| h.created_by.as_str()).collect();
        assert_eq!(
            created,
            vec![
                "COPY . /code # buildkit",
                "WORKDIR /code",
                "RUN /bin/sh -c pip install -r requirements.txt # buildkit",
                "CMD [\"python\" \"app.py\"]",
            ]
        );
        out
    }

    #[test]
    fn seed_keys_are_stable_and_content_sensitive() {
        let d = seed_context();
        let first = keys(d.path());
        assert_eq!(first.len(), 4);
        assert_eq!(first, keys(d.path()), "same input, same keys");
        // Touching mtimes changes nothing.
        let f = std::fs::File::options()
            .write(true)
            .open(d.path().join("app.py"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        drop(f);
        assert_eq!(first, keys(d.path()));
        // Editing a copied file invalidates the COPY and everything after it.
        std::fs::write(d.path().join("app.py"), "print('changed')\n").unwrap();
        let edited = keys(d.path());
        assert!(first.iter().zip(&edited).all(|(a, b)| a != b));
        // An ignore file that hides only itself changes nothing; hiding a file does.
        std::fs::write(d.path().join(".dockerignore"), ".dockerignore\n").unwrap();
        assert_eq!(keys(d.path()), edited);
        std::fs::write(
            d.path().join(".dockerignore"),
            ".dockerignore\nrequirements.txt\n",
        )
        .unwrap();
        assert_ne!(keys(d.path())[0], edited[0]);
    }
}
