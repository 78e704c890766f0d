//! Walking one stage's instructions: ARG/ENV scope, expansion, config
//! evolution and history, one step at a time. The executor drives it:
//!
//! ```no_run
//! # use mc_build::{args::*, config::ImageConfig, dockerfile::*, evaluate::*};
//! # fn f(df: &Dockerfile, opts: &BuildOptions, base: ImageConfig) -> Result<(), mc_build::Error> {
//! let meta = MetaScope::new(df, opts)?;
//! let mut st = StageState::new(base, &meta, opts, df.directives.escape);
//! for located in &df.stages[0].instructions {
//!     let step = st.step(located)?;
//!     if let Some(run) = &step.run { /* run.argv with run.env in st.config.working_dir */ }
//!     // COPY/ADD: step.instruction is the expanded Copy; dest via step.copy_dest
//! }
//! # Ok(()) }
//! ```

use crate::args::{BuildOptions, MetaScope};
use crate::config::{apply, history_entry, ApplyState, HistoryEntry, ImageConfig};
use crate::dockerfile::{ArgDecl, Instruction, Located};
use crate::expand::{expand_instruction, Lexer};
use crate::Error;

/// What the executor must do to run a RUN step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The argv (shell form wrapped in the stage's SHELL; heredocs folded in).
    pub argv: Vec<String>,
    /// The process environment: image ENV, then ARGs in scope not overridden
    /// by ENV, then proxy build args. `K=V`.
    pub env: Vec<String>,
    /// A lone `RUN <<EOF` heredoc starting with `#!`: write it to a file and
    /// execute that file instead of `argv` (BuildKit's behaviour).
    pub shebang_script: Option<String>,
    /// `--network` (None = default).
    pub network: Option<String>,
    /// Working directory (absolute; `/` when no WORKDIR). Create it if missing.
    pub workdir: String,
    /// `USER` in effect (empty = root), to resolve in the image's /etc/passwd.
    pub user: String,
}

/// One evaluated instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// 1-based line of the instruction.
    pub line: usize,
    /// The instruction with variables expanded (see [`expand_instruction`]);
    /// for COPY/ADD inline heredocs with `expand` set are expanded too; for
    /// ARG each `default` is the value in effect (build arg, default, or the
    /// inherited meta value; `None` = unset).
    pub instruction: Instruction,
    /// For RUN.
    pub run: Option<RunSpec>,
    /// For COPY/ADD: the absolute destination in the image (WORKDIR applied;
    /// a trailing `/` is kept: it means "into this directory").
    pub copy_dest: Option<String>,
    /// The history entry this step adds (already appended to `StageState::history`).
    pub history: HistoryEntry,
}

/// The evolving state of one stage.
#[derive(Debug, Clone)]
pub struct StageState {
    /// The image config so far.
    pub config: ImageConfig,
    /// History entries of this stage so far (append to the base image's).
    pub history: Vec<HistoryEntry>,
    lexer: Lexer,
    apply: ApplyState,
    /// ARGs declared in this stage, in order, with their values (None = unset).
    args: Vec<(String, Option<String>)>,
    meta: MetaScope,
    opts: BuildOptions,
}

impl StageState {
    /// Start a stage from its base's config (default for `scratch`).
    pub fn new(
        base: ImageConfig,
        meta: &MetaScope,
        opts: &BuildOptions,
        escape: char,
    ) -> StageState {
        StageState {
            config: base,
            history: Vec::new(),
            lexer: Lexer::new(escape),
            apply: ApplyState::default(),
            args: Vec::new(),
            meta: meta.clone(),
            opts: opts.clone(),
        }
    }

    /// The stage's ARGs that have values, in declaration order (later
    /// declarations of the same name replace earlier ones).
    pub fn arg_values(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.args {
            out.retain(|(n, _)| n != k);
            if let Some(v) = v {
                out.push((k.clone(), v.clone()));
            }
        }
        out
    }

    /// Variables for expanding the next instruction: ARGs, then ENV (ENV wins).
    pub fn expansion_vars(&self) -> Vec<(String, String)> {
        let mut v = self.arg_values();
        v.extend(self.config.env_pairs());
        v
    }

    /// The RUN environment (see [`RunSpec::env`]).
    pub fn run_env(&self) -> Vec<String> {
        let mut env = self.config.env.clone();
        let has = |env: &[String], k: &str| {
            env.iter()
                .any(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k)
        };
        for (k, v) in self.arg_values().into_iter().chain(self.opts.proxy_env()) {
            if !has(&env, &k) {
                env.push(format!("{k}={v}"));
            }
        }
        env
    }

    /// Evaluate one instruction: expand it, update the ARG scope and the
    /// config, and append its history entry.
    pub fn step(&mut self, located: &Located<Instruction>) -> Result<Step, Error> {
        let at = |e: String| {
            Error::Invalid(format!(
                "dockerfile line {}: {}: {e}",
                located.line, located.original
            ))
        };
        let vars = self.expansion_vars();
        let mut instr =
            expand_instruction(&self.lexer, &located.instruction, &vars).map_err(|e| at(e.0))?;
        if let Instruction::Arg(decls) = &mut instr {
            // The expanded ARG carries the value in effect (build arg, default
            // or inherited meta value), as BuildKit records it in history.
            for ArgDecl { name, default } in decls.iter_mut() {
                let value = match (self.opts.build_args.get(name.as_str()), default.as_ref()) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(d)) => Some(d.clone()),
                    (None, None) => self.meta.inherited(name),
                };
                self.args.push((name.clone(), value.clone()));
                *default = value;
            }
        }
        if let Instruction::Copy(c) = &mut instr {
            for inline in &mut c.inline {
                if inline.expand {
                    // Heredoc bodies keep their quotes and escapes; only `$VAR` expands.
                    let raw = Lexer {
                        raw_quotes: true,
                        raw_escapes: true,
                        ..self.lexer
                    };
                    inline.content = raw
                        .process_word(&inline.content, &vars)
                        .map_err(|e| at(e.0))?;
                }
            }
        }
        apply(&mut self.config, &mut self.apply, &instr).map_err(at)?;
        let run = match &instr {
            Instruction::Run(r) => Some(RunSpec {
                argv: r
                    .effective_command()
                    .to_argv(&self.config.shell_or_default()),
                env: self.run_env(),
                shebang_script: r.shebang_script(),
                network: r.network.clone(),
                workdir: if self.config.working_dir.is_empty() {
                    "/".to_string()
                } else {
                    self.config.working_dir.clone()
                },
                user: self.config.user.clone(),
            }),
            _ => None,
        };
        let copy_dest = match &instr {
            Instruction::Copy(c) => Some(copy_destination(&self.config.working_dir, &c.dest)),
            _ => None,
        };
        if run.as_ref().is_some_and(|r| r.argv.is_empty()) {
            return Err(at("RUN requires at least one argument".into()));
        }
        let history = history_entry(&instr, &self.config, &self.arg_values());
        self.history.push(history.clone());
        Ok(Step {
            line: located.line,
            instruction: instr,
            run,
            copy_dest,
            history,
        })
    }
}

/// COPY/ADD destination made absolute against WORKDIR, keeping a trailing `/`.
pub fn copy_destination(workdir: &str, dest: &str) -> String {
    let dir_like = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    let abs = crate::config::resolve_workdir(workdir, dest);
    if dir_like && abs != "/" {
        format!("{abs}/")
    } else {
        abs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Platform;
    use crate::dockerfile::parse;

    fn stage_steps(
        src: &str,
        build_args: &[(&str, &str)],
        base: ImageConfig,
    ) -> (StageState, Vec<Step>) {
        let df = parse(src).unwrap();
        let opts = BuildOptions {
            build_args: build_args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: None,
            target_platform: Platform::parse("linux/amd64").unwrap(),
            build_platform: Platform::parse("linux/amd64").unwrap(),
        };
        let meta = MetaScope::new(&df, &opts).unwrap();
        let stage = df.stages.last().unwrap();
        let mut st = StageState::new(base, &meta, &opts, df.directives.escape);
        let steps = stage
            .instructions
            .iter()
            .map(|l| st.step(l).unwrap())
            .collect();
        (st, steps)
    }

    #[test]
    fn arg_scoping() {
        let (_, steps) = stage_steps(
            "ARG GLOBAL=g\nARG VER=1\nFROM x\n\
             ENV A=$GLOBAL\n\
             ARG GLOBAL\nENV B=$GLOBAL\n\
             ARG LOCAL=l-$GLOBAL\nENV C=$LOCAL\n\
             ARG VER\nENV D=$VER\n\
             ARG TARGETARCH\nENV E=$TARGETARCH\n\
             ENV F=$BUILDOS\n",
            &[("VER", "2")],
            ImageConfig::default(),
        );
        let env = |i: usize| match &steps[i].instruction {
            Instruction::Env(kv) => kv[0].1.clone(),
            _ => panic!(),
        };
        assert_eq!(env(0), "", "meta ARG not visible before redeclaration");
        assert_eq!(env(2), "g");
        assert_eq!(env(4), "l-g");
        assert_eq!(env(6), "2", "--build-arg overrides");
        assert_eq!(env(8), "amd64");
        assert_eq!(env(9), "", "platform args need ARG inside a stage");
    }

    #[test]
    fn env_overrides_arg_and_run_env() {
        let (st, steps) = stage_steps(
            "FROM x\nARG X=fromarg\nENV X=fromenv\nARG Y=y\nRUN echo $X\nCOPY --chown=$Y a b/\n",
            &[("HTTP_PROXY", "http://proxy:3128"), ("X", "cli")],
            ImageConfig {
                env: vec!["PATH=/bin".into()],
                working_dir: "/w".into(),
                ..Default::default()
            },
        );
        let run = steps[3].run.clone().unwrap();
        assert_eq!(run.argv, vec!["/bin/sh", "-c", "echo $X"]);
        assert_eq!(
            run.env,
            vec![
                "PATH=/bin",
                "X=fromenv",
                "Y=y",
                "HTTP_PROXY=http://proxy:3128"
            ]
        );
        assert_eq!(
            steps[3].history.created_by,
            "RUN |2 X=cli Y=y /bin/sh -c echo $X # buildkit"
        );
        assert_eq!(steps[0].history.created_by, "ARG X=cli");
        match &steps[4].instruction {
            Instruction::Copy(c) => assert_eq!(c.chown.as_deref(), Some("y")),
            _ => panic!(),
        }
        assert_eq!(steps[4].copy_dest.as_deref(), Some("/w/b/"));
        assert!(!st
            .config
            .env
            .iter()
            .any(|e| e.starts_with("Y=") || e.starts_with("HTTP_PROXY")));
    }

    #[test]
    fn heredoc_run_and_copy() {
        let (_, steps) = stage_steps(
            "FROM x\nENV N=world\nRUN <<EOF\necho hi\nEOF\nCOPY <<EOT /hello\necho \"hello\" '$N' \\$N\nEOT\nCOPY <<EOT /hello2\nhello $N\nEOT\nCOPY <<'EOT' /raw\n$N\nEOT\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n",
            &[],
            ImageConfig::default(),
        );
        assert_eq!(
            steps[1].run.as_ref().unwrap().argv,
            vec!["/bin/sh", "-c", "echo hi\n"]
        );
        let inline = |i: usize| match &steps[i].instruction {
            Instruction::Copy(c) => c.inline[0].content.clone(),
            _ => panic!(),
        };
        // BuildKit's lexer: quotes kept, single quotes still suppress expansion.
        assert_eq!(inline(2), "echo \"hello\" '$N' \\$N\n");
        assert_eq!(inline(3), "hello world\n");
        assert_eq!(inline(4), "$N\n");
        assert!(steps[5]
            .run
            .as_ref()
            .unwrap()
            .shebang_script
            .as_deref()
            .unwrap()
            .starts_with("#!"));
    }

    #[test]
    fn copy_dest_rules() {
        assert_eq!(copy_destination("/code", "."), "/code/");
        assert_eq!(copy_destination("", "app"), "/app");
        assert_eq!(copy_destination("/a", "/b/"), "/b/");
        assert_eq!(copy_destination("/", "./"), "/");
    }
}

/// The whole pure pipeline on a realistic multi-stage Dockerfile: parse →
/// plan → evaluate each needed stage with its base's config → final config and
/// history.
#[cfg(test)]
mod pipeline_tests {
    use super::*;
    use crate::args::Platform;
    use crate::config::ImageConfig;
    use crate::dockerfile::parse;
    use crate::plan::plan;
    use crate::stages::Base;

    const DOCKERFILE: &str = "# syntax=docker/dockerfile:1
# A Go service, built in one stage and shipped in another.
ARG\tGO_VERSION=1.22
ARG ALPINE=3.19

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine AS build
ARG TARGETOS TARGETARCH
WORKDIR\t/src
ENV\tCGO_ENABLED\t0
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH \\
\tgo build -o /out/app \\
\t# the linker flags keep the binary small
\t-ldflags='-s -w' ./cmd/app

FROM alpine:${ALPINE} AS runtime
LABEL\tmaintainer\tOps Team <ops@example.com>
RUN addgroup -S app && adduser -S -G app app
COPY --from=build --chown=app:app /out/app /usr/local/bin/app
USER app
EXPOSE 8080/tcp 9090
ENV PORT=8080 \\
    LOG_LEVEL=\"info level\"
HEALTHCHECK --interval=30s --timeout=3s CMD wget -qO- http://localhost:$PORT/health || exit 1
ENTRYPOINT [\"/usr/local/bin/app\"]
CMD [\"--port\", \"8080\"]
";

    #[test]
    fn multi_stage_service() {
        let df = parse(DOCKERFILE).unwrap();
        let opts = BuildOptions {
            target_platform: Platform::parse("linux/arm64").unwrap(),
            build_platform: Platform::parse("linux/amd64").unwrap(),
            build_args: [("ALPINE".to_string(), "3.20".to_string())]
                .into_iter()
                .collect(),
            target: None,
        };
        let p = plan(&df, &opts).unwrap();
        assert_eq!(p.order, vec![0, 1]);
        assert_eq!(
            p.graph.nodes[0].base,
            Base::Image("golang:1.22-alpine".into())
        );
        assert_eq!(p.graph.nodes[0].platform.as_deref(), Some("linux/amd64"));
        assert_eq!(p.graph.nodes[1].base, Base::Image("alpine:3.20".into()));

        // Stage 0, from a golang base config.
        let base = ImageConfig {
            env: vec![
                "PATH=/usr/local/go/bin:/usr/bin:/bin".into(),
                "GOLANG_VERSION=1.22.1".into(),
            ],
            cmd: Some(vec!["/bin/sh".into()]),
            ..Default::default()
        };
        let mut st = StageState::new(base, &p.meta, &opts, df.directives.escape);
        let steps: Vec<Step> = df.stages[0]
            .instructions
            .iter()
            .map(|l| st.step(l).unwrap())
            .collect();
        let build_run = steps[6].run.clone().unwrap();
        assert_eq!(
            build_run.argv[2],
            "GOOS=$TARGETOS GOARCH=$TARGETARCH \tgo build -o /out/app \t-ldflags='-s -w' ./cmd/app"
        );
        assert!(build_run.env.contains(&"TARGETARCH=arm64".to_string()));
        assert!(build_run.env.contains(&"CGO_ENABLED=0".to_string()));
        assert_eq!(build_run.workdir, "/src");
        assert_eq!(steps[3].copy_dest.as_deref(), Some("/src/"));
        assert!(steps[6]
            .history
            .created_by
            .starts_with("RUN |2 TARGETOS=linux TARGETARCH=arm64 /bin/sh -c GOOS="));

        // Stage 1, from an alpine base config.
        let base = ImageConfig {
            env: vec!["PATH=/usr/bin:/bin".into()],
            cmd: Some(vec!["/bin/sh".into()]),
            ..Default::default()
        };
        let mut st = StageState::new(base, &p.meta, &opts, df.directives.escape);
        for l in &df.stages[1].instructions {
            st.step(l).unwrap();
        }
        let c = &st.config;
        assert_eq!(
            c.labels.get("maintainer").map(String::as_str),
            Some("Ops Team <ops@example.com>")
        );
        assert_eq!(c.user, "app");
        assert_eq!(
            c.exposed_ports.keys().cloned().collect::<Vec<_>>(),
            vec!["8080/tcp", "9090/tcp"]
        );
        assert_eq!(
            c.env,
            vec!["PATH=/usr/bin:/bin", "PORT=8080", "LOG_LEVEL=info level"]
        );
        assert_eq!(c.entrypoint, Some(vec!["/usr/local/bin/app".into()]));
        assert_eq!(c.cmd, Some(vec!["--port".into(), "8080".into()]));
        let hc = c.healthcheck.as_ref().unwrap();
        assert_eq!(
            hc.test[1],
            "wget -qO- http://localhost:$PORT/health || exit 1"
        );
        assert_eq!((hc.interval, hc.timeout), (30_000_000_000, 3_000_000_000));
        let created: Vec<&str> = st.history.iter().map(|h| h.created_by.as_str()).collect();
        assert_eq!(
            created[2],
            "COPY --from=build --chown=app:app /out/app /usr/local/bin/app # buildkit"
        );
        assert_eq!(created.last(), Some(&"CMD [\"--port\" \"8080\"]"));
        let layers = st.history.iter().filter(|h| !h.empty_layer).count();
        assert_eq!(layers, 2);
    }
}
