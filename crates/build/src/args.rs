//! Build options and the build-argument rules:
//!
//! - ARGs before the first `FROM` ("meta args") are in scope only for `FROM`
//!   lines; a stage sees one only after re-declaring it (`ARG NAME`).
//! - `--build-arg NAME=value` overrides the default of a declared ARG.
//! - Platform args (`TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`, `TARGETVARIANT`,
//!   `BUILDPLATFORM`, `BUILDOS`, `BUILDARCH`, `BUILDVARIANT`) are predefined in
//!   the meta scope; a stage must declare `ARG TARGETARCH` to use them.
//! - Proxy args (`HTTP_PROXY`, `http_proxy`, …) need no declaration: given as
//!   `--build-arg`, they are in the RUN environment (never in the image config
//!   or in history).

use std::collections::BTreeMap;

use crate::dockerfile::{ArgDecl, Dockerfile, Instruction};
use crate::expand::{Lexer, Vars};
use crate::Error;

/// The proxy build args that are available to RUN without an `ARG`.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// An OCI platform (`linux/amd64`, `linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, …
    pub arch: String,
    /// `v7`, `v8`, or empty.
    pub variant: String,
}

impl Platform {
    /// Parse `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(Error::Invalid(format!(
                "invalid platform {s:?}: expected os/arch[/variant], e.g. linux/amd64"
            )));
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            arch: parts[1].to_ascii_lowercase(),
            variant: parts
                .get(2)
                .map(|v| v.to_ascii_lowercase())
                .unwrap_or_default(),
        })
    }

    /// The platform this binary runs on.
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "aarch64" => ("arm64", ""),
            "x86" => ("386", ""),
            "arm" => ("arm", "v7"),
            "powerpc64" => ("ppc64le", ""),
            "s390x" => ("s390x", ""),
            "riscv64" => ("riscv64", ""),
            other => (other, ""),
        };
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: variant.into(),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// What the user asked for on the command line.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `--build-arg NAME=value` (the caller resolves `--build-arg NAME` from its environment).
    pub build_args: BTreeMap<String, String>,
    /// `--target`: stage name to stop at (default: the last stage).
    pub target: Option<String>,
    /// Platform of the image being built.
    pub target_platform: Platform,
    /// Platform doing the build.
    pub build_platform: Platform,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            build_args: BTreeMap::new(),
            target: None,
            target_platform: Platform::host(),
            build_platform: Platform::host(),
        }
    }
}

impl BuildOptions {
    /// The automatic platform args and their values.
    pub fn platform_args(&self) -> Vec<(String, String)> {
        let (t, b) = (&self.target_platform, &self.build_platform);
        vec![
            ("BUILDPLATFORM".into(), b.to_string()),
            ("BUILDOS".into(), b.os.clone()),
            ("BUILDARCH".into(), b.arch.clone()),
            ("BUILDVARIANT".into(), b.variant.clone()),
            ("TARGETPLATFORM".into(), t.to_string()),
            ("TARGETOS".into(), t.os.clone()),
            ("TARGETARCH".into(), t.arch.clone()),
            ("TARGETVARIANT".into(), t.variant.clone()),
        ]
    }

    /// Proxy args given with `--build-arg` (for the RUN environment).
    pub fn proxy_env(&self) -> Vec<(String, String)> {
        PROXY_ARGS
            .iter()
            .filter_map(|k| self.build_args.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect()
    }
}

/// The meta-arg scope: values of the ARGs declared before the first `FROM`,
/// plus the platform args. Used to expand `FROM` lines and to give a stage's
/// `ARG NAME` (no default) its global value.
#[derive(Debug, Clone, Default)]
pub struct MetaScope {
    /// Variables visible to FROM lines (set ones only), in declaration order.
    vars: Vec<(String, String)>,
    /// Every meta ARG declared, with its value (None = declared, unset).
    declared: BTreeMap<String, Option<String>>,
    /// The `--build-arg` values (they also override ARG defaults inside stages).
    build_args: BTreeMap<String, String>,
}

impl MetaScope {
    /// Evaluate the meta args of `df` with the options' build args.
    pub fn new(df: &Dockerfile, opts: &BuildOptions) -> Result<MetaScope, Error> {
        let lx = Lexer::new(df.directives.escape);
        let mut scope = MetaScope {
            vars: opts.platform_args(),
            declared: BTreeMap::new(),
            build_args: opts.build_args.clone(),
        };
        for located in &df.meta_args {
            let Instruction::Arg(decls) = &located.instruction else {
                continue;
            };
            for ArgDecl { name, default } in decls {
                let value = match (opts.build_args.get(name), default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(d)) => Some(lx.process_word(d, &scope.vars).map_err(|e| {
                        Error::Invalid(format!("dockerfile line {}: ARG {name}: {e}", located.line))
                    })?),
                    (None, None) => None,
                };
                scope.vars.retain(|(k, _)| k != name);
                if let Some(v) = &value {
                    scope.vars.push((name.clone(), v.clone()));
                }
                scope.declared.insert(name.clone(), value);
            }
        }
        Ok(scope)
    }

    /// Variables for expanding `FROM` lines.
    pub fn vars(&self) -> &Vec<(String, String)> {
        &self.vars
    }

    /// The value a stage's `ARG NAME` (without default) inherits: the meta
    /// arg's value, or a platform arg's. `None` if neither exists or it is unset.
    pub fn inherited(&self, name: &str) -> Option<String> {
        match self.declared.get(name) {
            Some(v) => v.clone(),
            None => self.vars.get_var(name),
        }
    }

    /// The `--build-arg` value for `name`, if given.
    pub fn build_arg(&self, name: &str) -> Option<&str> {
        self.build_args.get(name).map(String::as_str)
    }

    /// Whether `name` was declared before the first FROM.
    pub fn is_declared(&self, name: &str) -> bool {
        self.declared.contains_key(name)
    }
}

/// `--build-arg` names no `ARG` anywhere in the Dockerfile declares (proxy args
/// excepted): Docker warns "One or more build-args [..] were not consumed".
pub fn unused_build_args(df: &Dockerfile, opts: &BuildOptions) -> Vec<String> {
    let mut declared = std::collections::BTreeSet::new();
    let all = df
        .meta_args
        .iter()
        .chain(df.stages.iter().flat_map(|s| s.instructions.iter()));
    for l in all {
        if let Instruction::Arg(decls) = &l.instruction {
            declared.extend(decls.iter().map(|d| d.name.clone()));
        }
    }
    opts.build_args
        .keys()
        .filter(|k| !declared.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;

    fn opts(args: &[(&str, &str)]) -> BuildOptions {
        BuildOptions {
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: None,
            target_platform: Platform::parse("linux/arm64/v8").unwrap(),
            build_platform: Platform::parse("linux/amd64").unwrap(),
        }
    }

    #[test]
    fn meta_args_scope() {
        let df = parse("ARG A=1\nARG B=${A}2\nARG C\nARG D=$TARGETARCH\nFROM x\n").unwrap();
        let m = MetaScope::new(&df, &opts(&[])).unwrap();
        assert_eq!(m.vars().get_var("B").as_deref(), Some("12"));
        assert_eq!(m.vars().get_var("D").as_deref(), Some("arm64"));
        assert_eq!(m.vars().get_var("C"), None);
        assert!(m.is_declared("C"));
        assert_eq!(
            m.inherited("TARGETPLATFORM").as_deref(),
            Some("linux/arm64/v8")
        );
        let m = MetaScope::new(&df, &opts(&[("A", "9"), ("C", "c")])).unwrap();
        assert_eq!(m.vars().get_var("B").as_deref(), Some("92"));
        assert_eq!(m.inherited("C").as_deref(), Some("c"));
    }

    #[test]
    fn platforms() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//x").is_err());
        let o = opts(&[("HTTP_PROXY", "http://p"), ("UNUSED", "1"), ("A", "1")]);
        assert_eq!(
            o.proxy_env(),
            vec![("HTTP_PROXY".to_string(), "http://p".to_string())]
        );
        let df = parse("ARG A\nFROM x\n").unwrap();
        assert_eq!(unused_build_args(&df, &o), vec!["UNUSED".to_string()]);
    }
}
