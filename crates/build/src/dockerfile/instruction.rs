//! The typed Dockerfile model: what the parser produces and the executor consumes.
//!
//! Strings in this model are as written in the Dockerfile (quotes and `$VAR`
//! references intact) unless a field says otherwise. Use
//! [`crate::expand::expand_instruction`] (or [`crate::evaluate::StageState`],
//! which also tracks ARG/ENV scope) to get the expanded form.

use serde::Serialize;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dockerfile {
    /// Parser directives found at the top of the file.
    pub directives: Directives,
    /// `ARG` instructions before the first `FROM` ("meta args"): usable only in
    /// `FROM` lines, unless re-declared inside a stage.
    pub meta_args: Vec<Located<Instruction>>,
    /// The build stages in file order; `stages[i].index == i`.
    pub stages: Vec<Stage>,
    /// Non-fatal findings (deprecated syntax, ignored features), in file order.
    pub warnings: Vec<Warning>,
}

/// Parser directives (`# syntax=`, `# escape=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// `# syntax=` value; recorded, never used to fetch a frontend.
    pub syntax: Option<String>,
    /// The escape character: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# check=` value; recorded and otherwise ignored.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// A non-fatal finding with the line it refers to (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// 1-based line number.
    pub line: usize,
    /// What was found and what happens instead.
    pub message: String,
}

/// One build stage: a `FROM` line and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// Position in the file, 0-based (what `COPY --from=0` refers to).
    pub index: usize,
    /// `AS name`, lowercased as BuildKit does.
    pub name: Option<String>,
    /// Base as written: an image reference, `scratch`, or another stage's
    /// name; may contain `$ARG` references (expanded with the meta args).
    pub base: String,
    /// `--platform` as written (may contain `$BUILDPLATFORM` etc.).
    pub platform: Option<String>,
    /// Line of the `FROM` instruction (1-based).
    pub line: usize,
    /// The `FROM` line as written.
    pub original: String,
    /// Instructions of the stage, in order.
    pub instructions: Vec<Located<Instruction>>,
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Located<T> {
    /// First line (1-based).
    pub line: usize,
    /// Last line (1-based; differs from `line` with continuations and heredocs).
    pub end_line: usize,
    /// The logical line as written (continuations joined, comments dropped).
    pub original: String,
    /// The parsed instruction.
    pub instruction: T,
}

/// A command in exec (JSON array) or shell form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CommandLine {
    /// `["prog", "arg"]`: run as is, no shell.
    Exec(Vec<String>),
    /// `prog arg`: run through the stage's `SHELL` (default `/bin/sh -c`).
    Shell(String),
}

impl CommandLine {
    /// The argv to run: exec form as is, shell form as `shell + [cmdline]`.
    pub fn to_argv(&self, shell: &[String]) -> Vec<String> {
        match self {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => {
                let mut v = shell.to_vec();
                v.push(s.clone());
                v
            }
        }
    }
}

/// A heredoc attached to `RUN`, `COPY` or `ADD` (`<<EOF … EOF`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The terminator word with quotes removed (`EOF`).
    pub name: String,
    /// Content, each line with its newline; not including the terminator line.
    pub content: String,
    /// False when the word was quoted (`<<"EOF"`): content is taken literally.
    pub expand: bool,
    /// `<<-EOF`: leading tabs are stripped from the content lines.
    pub chomp: bool,
    /// Optional file descriptor prefix (`3<<EOF`), 0 when absent.
    pub fd: u32,
}

impl Heredoc {
    /// The content with leading tabs removed when `chomp` is set.
    pub fn effective_content(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// `RUN --mount=...` as written, split into its `key=value` fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunMount {
    /// `type=` (default `bind`).
    pub kind: String,
    /// `target=` / `dst=` / `destination=`.
    pub target: Option<String>,
    /// The flag value as written.
    pub raw: String,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// The command.
    pub command: CommandLine,
    /// Heredocs referenced by the command (shell form only).
    pub heredocs: Vec<Heredoc>,
    /// `--network=` value if given: `default`, `none` or `host`.
    pub network: Option<String>,
    /// `--mount=` flags. Only `type=cache` is accepted by the parser (with a
    /// warning: it is run as a plain directory inside the layer).
    pub mounts: Vec<RunMount>,
}

impl Run {
    /// The shell-form command line to hand to the shell, with heredocs folded in
    /// the way BuildKit does: a lone `<<EOF` runs the heredoc content as the
    /// script; otherwise the heredoc bodies are appended so the shell itself
    /// reads them. Exec form is returned unchanged.
    ///
    /// (BuildKit runs a lone heredoc starting with `#!` as an executable file;
    /// the executor must handle that case itself — see `shebang_script`.)
    pub fn effective_command(&self) -> CommandLine {
        let CommandLine::Shell(cmd) = &self.command else {
            return self.command.clone();
        };
        if self.heredocs.is_empty() {
            return self.command.clone();
        }
        if self.heredocs.len() == 1 && is_lone_heredoc(cmd) {
            return CommandLine::Shell(self.heredocs[0].effective_content());
        }
        let mut full = cmd.clone();
        for h in &self.heredocs {
            full.push('\n');
            full.push_str(&h.content);
            full.push_str(&h.name);
        }
        CommandLine::Shell(full)
    }

    /// The script of a lone `RUN <<EOF` heredoc that starts with `#!`: BuildKit
    /// writes it to a file and executes it directly instead of through `SHELL`.
    pub fn shebang_script(&self) -> Option<String> {
        let CommandLine::Shell(cmd) = &self.command else {
            return None;
        };
        if self.heredocs.len() == 1 && is_lone_heredoc(cmd) {
            let c = self.heredocs[0].effective_content();
            if c.starts_with("#!") {
                return Some(c);
            }
        }
        None
    }
}

fn is_lone_heredoc(cmd: &str) -> bool {
    let w = cmd.trim();
    !w.contains(char::is_whitespace) && crate::dockerfile::heredoc::parse_heredoc_word(w).is_some()
}

/// Whether a COPY/ADD is `COPY` or `ADD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CopyKind {
    /// `COPY`.
    Copy,
    /// `ADD`: like COPY, plus tar auto-extraction and (unsupported) URL sources.
    Add,
}

/// An inline source from a heredoc (`COPY <<EOF /file`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlineSource {
    /// File name (the heredoc word).
    pub name: String,
    /// Content (already chomped when `<<-` was used).
    pub content: String,
    /// Whether `$VAR` in the content are expanded.
    pub expand: bool,
}

/// `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// COPY or ADD.
    pub kind: CopyKind,
    /// Source paths (relative to the context, or to the `--from` stage/image root).
    pub sources: Vec<String>,
    /// Heredoc sources.
    pub inline: Vec<InlineSource>,
    /// Destination (absolute, or relative to WORKDIR; trailing `/` = directory).
    pub dest: String,
    /// `--from=` (COPY only): stage name, stage index or image reference.
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=` (octal).
    pub chmod: Option<String>,
    /// `--link` (accepted; the layer is produced the same way).
    pub link: bool,
    /// Whether the paths were given in JSON array form.
    pub json: bool,
    /// ADD `--checksum=`.
    pub checksum: Option<String>,
    /// ADD `--keep-git-dir`.
    pub keep_git_dir: bool,
}

/// An `ARG` declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    /// Name.
    pub name: String,
    /// Default value as written (may reference earlier ARG/ENV).
    pub default: Option<String>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", argv…]` or `["CMD-SHELL", cmd]` — Docker's `Test`.
    pub test: Vec<String>,
    /// `--interval` in nanoseconds (0 = default).
    pub interval_ns: i64,
    /// `--timeout` in nanoseconds (0 = default).
    pub timeout_ns: i64,
    /// `--start-period` in nanoseconds (0 = default).
    pub start_period_ns: i64,
    /// `--start-interval` in nanoseconds (0 = default).
    pub start_interval_ns: i64,
    /// `--retries` (0 = default).
    pub retries: i64,
}

/// One Dockerfile instruction (other than `FROM`, which starts a [`Stage`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Instruction {
    /// `RUN`.
    Run(Run),
    /// `COPY` / `ADD`.
    Copy(Copy),
    /// `WORKDIR path`.
    Workdir(String),
    /// `ENV k=v …` / `ENV k v`: pairs in order (values as written, quotes included).
    Env(Vec<(String, String)>),
    /// `ARG name[=default] …`.
    Arg(Vec<ArgDecl>),
    /// `CMD`.
    Cmd(CommandLine),
    /// `ENTRYPOINT`. `Exec([])` clears it.
    Entrypoint(CommandLine),
    /// `EXPOSE port[/proto] …`.
    Expose(Vec<String>),
    /// `USER user[:group]`.
    User(String),
    /// `LABEL k=v …` (also what `MAINTAINER x` becomes: `maintainer=x`).
    Label(Vec<(String, String)>),
    /// `VOLUME` paths.
    Volume(Vec<String>),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `SHELL ["exe", "arg"]`.
    Shell(Vec<String>),
    /// `ONBUILD <instruction>`: recorded in the image config (as Docker does);
    /// triggers of a base image are not run (a warning is given at parse time).
    Onbuild(String),
}

impl Instruction {
    /// The instruction keyword in upper case (`RUN`, `COPY`, `ADD`, …).
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::Run(_) => "RUN",
            Instruction::Copy(c) if c.kind == CopyKind::Add => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::User(_) => "USER",
            Instruction::Label(_) => "LABEL",
            Instruction::Volume(_) => "VOLUME",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Shell(_) => "SHELL",
            Instruction::Onbuild(_) => "ONBUILD",
        }
    }

    /// Whether executing this instruction changes the filesystem (and so makes
    /// a layer): `RUN`, `COPY` and `ADD`. Everything else only edits the config.
    pub fn makes_layer(&self) -> bool {
        matches!(self, Instruction::Run(_) | Instruction::Copy(_))
    }
}
