//! Logical lines → typed instructions and stages, with BuildKit's checks and
//! error wording.

use super::instruction::*;
use super::lines::{LogicalLine, Scanned};
use super::words::{
    extract_flags, parse_json, parse_words, split_whitespace, FlagType, Flags, Json,
};
use super::{suggest, ParseError};
use crate::duration::parse_go_duration;

const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// What one logical line parsed into.
enum Parsed {
    From {
        base: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Instr(Instruction),
}

struct Ctx<'a> {
    escape: char,
    warnings: &'a mut Vec<Warning>,
    line: usize,
}

impl Ctx<'_> {
    fn warn(&mut self, message: String) {
        self.warnings.push(Warning {
            line: self.line,
            message,
        });
    }
}

pub(crate) fn build(scanned: Scanned) -> Result<Dockerfile, ParseError> {
    let Scanned {
        directives,
        lines,
        mut warnings,
    } = scanned;
    if let Some(s) = &directives.syntax {
        if !is_builtin_syntax(s) {
            warnings.push(Warning {
                line: 1,
                message: format!("syntax directive {s:?} ignored: minicompose uses its built-in Dockerfile frontend"),
            });
        }
    }
    let Some(last) = lines.last() else {
        return Err(ParseError::new(1, "file with no instructions".into()));
    };
    let last_line = last.end;
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ll in lines {
        let mut ctx = Ctx {
            escape: directives.escape,
            warnings: &mut warnings,
            line: ll.start,
        };
        let parsed = parse_line(&ll, &mut ctx).map_err(|m| ParseError::new(ll.start, m))?;
        match parsed {
            Parsed::From {
                base,
                name,
                platform,
            } => {
                if let Some(n) = &name {
                    if stages.iter().any(|s| s.name.as_ref() == Some(n)) {
                        return Err(ParseError::new(
                            ll.start,
                            format!("duplicate stage name {n:?}"),
                        ));
                    }
                }
                stages.push(Stage {
                    index: stages.len(),
                    name,
                    base,
                    platform,
                    line: ll.start,
                    original: ll.text.trim().to_string(),
                    instructions: Vec::new(),
                });
            }
            Parsed::Instr(instruction) => {
                let located = Located {
                    line: ll.start,
                    end_line: ll.end,
                    original: ll.text.trim().to_string(),
                    instruction,
                };
                match stages.last_mut() {
                    Some(stage) => stage.instructions.push(located),
                    None if matches!(located.instruction, Instruction::Arg(_)) => {
                        meta_args.push(located)
                    }
                    None => {
                        return Err(ParseError::new(
                            ll.start,
                            "no build stage in current context".into(),
                        ))
                    }
                }
            }
        }
    }
    if stages.is_empty() {
        return Err(ParseError::new(
            last_line,
            "dockerfile contains no stages to build".into(),
        ));
    }
    warnings.sort_by_key(|w| w.line);
    Ok(Dockerfile {
        directives,
        meta_args,
        stages,
        warnings,
    })
}

fn is_builtin_syntax(s: &str) -> bool {
    let s = s.strip_prefix("docker.io/").unwrap_or(s);
    s.starts_with("docker/dockerfile:") || s == "docker/dockerfile"
}

fn parse_line(ll: &LogicalLine, ctx: &mut Ctx) -> Result<Parsed, String> {
    let text = ll.text.trim();
    let (cmd, rest) = match text.find(['\t', '\u{b}', '\u{c}', '\r', ' ']) {
        Some(i) => (&text[..i], text[i..].trim_start()),
        None => (text, ""),
    };
    let (flags, args) = extract_flags(rest);
    let args = args.trim().to_string();
    let lower = cmd.to_ascii_lowercase();
    if lower == "from" {
        return parse_from(&flags, &args);
    }
    parse_instruction(cmd, &flags, &args, &ll.heredocs, ctx).map(Parsed::Instr)
}

fn parse_from(flags: &[String], args: &str) -> Result<Parsed, String> {
    let words = split_whitespace(args);
    let name = match words.len() {
        3 if words[1].eq_ignore_ascii_case("as") => {
            let n = words[2].to_ascii_lowercase();
            if !valid_stage_name(&n) {
                return Err(format!(
                    "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                    words[2]
                ));
            }
            Some(n)
        }
        1 => None,
        _ => return Err("FROM requires either one or three arguments".into()),
    };
    let f = Flags::parse(flags, &[("platform", FlagType::String)])?;
    Ok(Parsed::From {
        base: words[0].clone(),
        name,
        platform: f.string("platform").filter(|p| !p.is_empty()),
    })
}

/// `^[a-z][a-z0-9-_.]*$`
pub(crate) fn valid_stage_name(n: &str) -> bool {
    let mut it = n.chars();
    it.next().is_some_and(|c| c.is_ascii_lowercase())
        && it.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn no_flags(flags: &[String]) -> Result<(), String> {
    Flags::parse(flags, &[]).map(|_| ())
}

fn shell_or_exec(args: &str) -> Result<Option<CommandLine>, String> {
    if args.is_empty() {
        return Ok(None);
    }
    Ok(Some(match parse_json(args)? {
        Json::Array(v) => CommandLine::Exec(v),
        Json::NotJson => CommandLine::Shell(args.to_string()),
    }))
}

fn json_or_words(args: &str) -> Result<(Vec<String>, bool), String> {
    Ok(match parse_json(args)? {
        Json::Array(v) => (v, true),
        Json::NotJson => (split_whitespace(args), false),
    })
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

fn parse_instruction(
    cmd: &str,
    flags: &[String],
    args: &str,
    heredocs: &[Heredoc],
    ctx: &mut Ctx,
) -> Result<Instruction, String> {
    let upper = cmd.to_ascii_uppercase();
    match upper.as_str() {
        "RUN" => parse_run(flags, args, heredocs, ctx),
        "CMD" | "ENTRYPOINT" => {
            no_flags(flags)?;
            let c = shell_or_exec(args)?.ok_or_else(|| at_least_one(&upper))?;
            Ok(if upper == "CMD" {
                Instruction::Cmd(c)
            } else {
                Instruction::Entrypoint(c)
            })
        }
        "COPY" | "ADD" => parse_copy(&upper, flags, args, heredocs),
        "WORKDIR" => {
            if args.is_empty() {
                return Err(exactly_one("WORKDIR"));
            }
            no_flags(flags)?;
            Ok(Instruction::Workdir(args.to_string()))
        }
        "ENV" | "LABEL" => {
            no_flags(flags)?;
            let pairs = parse_name_val(args, &upper, ctx.escape)?;
            Ok(if upper == "ENV" {
                Instruction::Env(pairs)
            } else {
                Instruction::Label(pairs)
            })
        }
        "ARG" => {
            let words = parse_words(args, ctx.escape);
            if words.is_empty() {
                return Err(at_least_one("ARG"));
            }
            no_flags(flags)?;
            let mut decls = Vec::new();
            for w in words {
                let decl = match w.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => ArgDecl {
                        name: k.to_string(),
                        default: Some(v.to_string()),
                    },
                    None => ArgDecl {
                        name: w,
                        default: None,
                    },
                };
                decls.push(decl);
            }
            Ok(Instruction::Arg(decls))
        }
        "EXPOSE" => {
            let ports = split_whitespace(args);
            if ports.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags(flags)?;
            Ok(Instruction::Expose(ports))
        }
        "USER" => {
            if args.is_empty() {
                return Err(exactly_one("USER"));
            }
            no_flags(flags)?;
            Ok(Instruction::User(args.to_string()))
        }
        "VOLUME" => {
            let (vols, _) = json_or_words(args)?;
            if vols.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags(flags)?;
            let vols: Vec<String> = vols.into_iter().map(|v| v.trim().to_string()).collect();
            if vols.iter().any(String::is_empty) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Ok(Instruction::Volume(vols))
        }
        "STOPSIGNAL" => {
            if args.is_empty() {
                return Err(exactly_one("STOPSIGNAL"));
            }
            Ok(Instruction::StopSignal(args.to_string()))
        }
        "HEALTHCHECK" => parse_healthcheck(flags, args),
        "SHELL" => {
            no_flags(flags)?;
            match parse_json(args)? {
                Json::Array(v) if v.is_empty() => Err(at_least_one("SHELL")),
                Json::Array(v) => Ok(Instruction::Shell(v)),
                Json::NotJson if args.is_empty() => Err(at_least_one("SHELL")),
                Json::NotJson => Err("SHELL requires the arguments to be in JSON form".into()),
            }
        }
        "ONBUILD" => parse_onbuild(flags, args, heredocs, ctx),
        "MAINTAINER" => {
            if args.is_empty() {
                return Err(exactly_one("MAINTAINER"));
            }
            no_flags(flags)?;
            ctx.warn(
                "MAINTAINER is deprecated: recorded as LABEL maintainer=... (use LABEL instead)"
                    .into(),
            );
            Ok(Instruction::Label(vec![(
                "maintainer".into(),
                quote_literal(args, ctx.escape),
            )]))
        }
        "FROM" => Err("FROM isn't allowed here".into()),
        _ => {
            let hint = suggest(cmd, INSTRUCTIONS)
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            Err(format!("unknown instruction: {cmd}{hint}"))
        }
    }
}

/// Single-quote `s` so that expansion gives it back unchanged.
fn quote_literal(s: &str, escape: char) -> String {
    format!("'{}'", s.replace('\'', &format!("'{escape}''")))
}

fn parse_name_val(args: &str, key: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(args, escape);
    if words.is_empty() {
        return Err(at_least_one(key));
    }
    let mut out = Vec::new();
    if !words[0].contains('=') {
        // Legacy `ENV key value with spaces`.
        let Some(i) = args.find(['\t', '\u{b}', '\u{c}', '\r', ' ']) else {
            return Err(format!("{key} must have two arguments"));
        };
        let value = args[i..].trim_start_matches(['\t', '\u{b}', '\u{c}', '\r', ' ']);
        out.push((args[..i].to_string(), value.to_string()));
    } else {
        for w in words {
            let Some((k, v)) = w.split_once('=') else {
                return Err(format!(
                    "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
                ));
            };
            out.push((k.to_string(), v.to_string()));
        }
    }
    if out.iter().any(|(k, _)| k.is_empty()) {
        return Err(format!("{key} names can not be blank"));
    }
    Ok(out)
}

fn parse_run(
    flags: &[String],
    args: &str,
    heredocs: &[Heredoc],
    ctx: &mut Ctx,
) -> Result<Instruction, String> {
    let f = Flags::parse(
        flags,
        &[
            ("mount", FlagType::Strings),
            ("network", FlagType::String),
            ("security", FlagType::String),
            ("device", FlagType::Strings),
        ],
    )?;
    if let Some(s) = f.string("security") {
        return Err(format!(
            "RUN --security={s} is not supported by minicompose (steps always run unprivileged by the build)"
        ));
    }
    if !f.strings("device").is_empty() {
        return Err("RUN --device is not supported by minicompose".into());
    }
    let network = f.string("network");
    if let Some(n) = &network {
        if !matches!(n.as_str(), "default" | "none" | "host") {
            return Err(format!(
                "unsupported network mode {n:?}: use default, none or host"
            ));
        }
    }
    let mut mounts = Vec::new();
    for raw in f.strings("mount") {
        let m = parse_mount(&raw)?;
        if m.kind != "cache" {
            return Err(format!(
                "RUN --mount=type={} is not supported by minicompose; only type=cache is accepted \
                 (copy needed files with COPY instead)",
                m.kind
            ));
        }
        ctx.warn(format!(
            "RUN --mount={raw}: cache mounts are not supported, the target is an ordinary directory of the step"
        ));
        mounts.push(m);
    }
    let command = shell_or_exec(args)?.ok_or_else(|| at_least_one("RUN"))?;
    let heredocs = match &command {
        CommandLine::Shell(_) => heredocs.to_vec(),
        CommandLine::Exec(_) => Vec::new(),
    };
    Ok(Instruction::Run(Run {
        command,
        heredocs,
        network,
        mounts,
    }))
}

fn parse_mount(raw: &str) -> Result<RunMount, String> {
    let mut kind = "bind".to_string();
    let mut target = None;
    for field in raw.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "type" => kind = v.trim().to_ascii_lowercase(),
            "target" | "dst" | "destination" => target = Some(v.trim().to_string()),
            _ => {}
        }
    }
    if !matches!(kind.as_str(), "bind" | "cache" | "tmpfs" | "secret" | "ssh") {
        return Err(format!("unsupported mount type {kind:?}"));
    }
    if target.is_none() && matches!(kind.as_str(), "bind" | "cache" | "tmpfs") {
        return Err("mount target not specified".into());
    }
    Ok(RunMount {
        kind,
        target,
        raw: raw.to_string(),
    })
}

fn parse_copy(
    upper: &str,
    flags: &[String],
    args: &str,
    heredocs: &[Heredoc],
) -> Result<Instruction, String> {
    let (words, json) = json_or_words(args)?;
    if words.len() < 2 {
        return Err(format!(
            "{upper} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let is_add = upper == "ADD";
    let defs: &[(&'static str, FlagType)] = if is_add {
        &[
            ("chown", FlagType::String),
            ("chmod", FlagType::String),
            ("link", FlagType::Bool),
            ("keep-git-dir", FlagType::Bool),
            ("checksum", FlagType::String),
        ]
    } else {
        &[
            ("chown", FlagType::String),
            ("from", FlagType::String),
            ("chmod", FlagType::String),
            ("link", FlagType::Bool),
        ]
    };
    let f = Flags::parse(flags, defs)?;
    let (srcs, dest) = words.split_at(words.len() - 1);
    let dest = dest[0].clone();
    let heredoc_word = |w: &str| {
        if json {
            None
        } else {
            super::heredoc::parse_heredoc_word(w)
        }
    };
    if heredoc_word(&dest).is_some() {
        return Err(format!("{upper} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut inline = Vec::new();
    for s in srcs {
        match heredoc_word(s) {
            Some(h) => {
                let doc = heredocs.iter().find(|d| d.name == h.name);
                inline.push(InlineSource {
                    name: h.name.clone(),
                    content: doc.map(Heredoc::effective_content).unwrap_or_default(),
                    expand: h.expand,
                });
            }
            None => sources.push(s.clone()),
        }
    }
    let chmod = f.string("chmod").filter(|c| !c.is_empty());
    if let Some(c) = &chmod {
        if !c.contains('$') && u32::from_str_radix(c, 8).map_or(true, |m| m > 0o7777) {
            return Err(format!(
                "invalid chmod parameter {c:?}: use an octal mode such as 0644"
            ));
        }
    }
    Ok(Instruction::Copy(Copy {
        kind: if is_add {
            CopyKind::Add
        } else {
            CopyKind::Copy
        },
        sources,
        inline,
        dest,
        from: f.string("from").filter(|s| !s.is_empty()),
        chown: f.string("chown").filter(|s| !s.is_empty()),
        chmod,
        link: f.bool("link"),
        json,
        checksum: f.string("checksum").filter(|s| !s.is_empty()),
        keep_git_dir: f.bool("keep-git-dir"),
    }))
}

fn parse_healthcheck(flags: &[String], args: &str) -> Result<Instruction, String> {
    let (typ, rest) = match args.find(char::is_whitespace) {
        Some(i) => (&args[..i], args[i..].trim_start()),
        None => (args, ""),
    };
    if typ.is_empty() {
        return Err(at_least_one("HEALTHCHECK"));
    }
    let typ = typ.to_ascii_uppercase();
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Instruction::Healthcheck(Healthcheck {
            test: vec!["NONE".into()],
            interval_ns: 0,
            timeout_ns: 0,
            start_period_ns: 0,
            start_interval_ns: 0,
            retries: 0,
        }));
    }
    let f = Flags::parse(
        flags,
        &[
            ("interval", FlagType::String),
            ("timeout", FlagType::String),
            ("start-period", FlagType::String),
            ("start-interval", FlagType::String),
            ("retries", FlagType::String),
        ],
    )?;
    if typ != "CMD" {
        return Err(format!("Unknown type \"{typ}\" in HEALTHCHECK (try CMD)"));
    }
    let test = match shell_or_exec(rest)? {
        None => return Err("Missing command after HEALTHCHECK CMD".into()),
        Some(CommandLine::Exec(v)) if v.is_empty() => {
            return Err("Missing command after HEALTHCHECK CMD".into())
        }
        Some(CommandLine::Exec(v)) => std::iter::once("CMD".to_string()).chain(v).collect(),
        Some(CommandLine::Shell(s)) => vec!["CMD-SHELL".to_string(), s],
    };
    let interval = |name: &str| -> Result<i64, String> {
        let Some(v) = f.string(name).filter(|v| !v.is_empty()) else {
            return Ok(0);
        };
        let d = parse_go_duration(&v)?;
        if d != 0 && d < 1_000_000 {
            return Err(format!("Interval \"{name}\" cannot be less than 1ms"));
        }
        Ok(d)
    };
    let retries = match f.string("retries").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => {
            let r: i64 = v
                .parse()
                .map_err(|_| format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))?;
            if r < 0 {
                return Err(format!("--retries cannot be negative ({r})"));
            }
            r
        }
    };
    Ok(Instruction::Healthcheck(Healthcheck {
        test,
        interval_ns: interval("interval")?,
        timeout_ns: interval("timeout")?,
        start_period_ns: interval("start-period")?,
        start_interval_ns: interval("start-interval")?,
        retries,
    }))
}

fn parse_onbuild(
    flags: &[String],
    args: &str,
    heredocs: &[Heredoc],
    ctx: &mut Ctx,
) -> Result<Instruction, String> {
    if args.is_empty() && flags.is_empty() {
        return Err(at_least_one("ONBUILD"));
    }
    // ONBUILD's own flags are the trigger's flags: re-split the full text.
    let full = flags
        .iter()
        .cloned()
        .chain(std::iter::once(args.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let full = full.trim();
    let (trigger, rest) = match full.find(char::is_whitespace) {
        Some(i) => (&full[..i], full[i..].trim_start()),
        None => (full, ""),
    };
    let upper = trigger.to_ascii_uppercase();
    match upper.as_str() {
        "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "MAINTAINER" | "FROM" => {
            return Err(format!("{upper} isn't allowed as an ONBUILD trigger"))
        }
        _ => {}
    }
    // Validate the trigger like any instruction.
    let (tflags, targs) = extract_flags(rest);
    let mut scratch = Vec::new();
    let mut sub = Ctx {
        escape: ctx.escape,
        warnings: &mut scratch,
        line: ctx.line,
    };
    parse_instruction(trigger, &tflags, targs.trim(), heredocs, &mut sub)?;
    ctx.warn("ONBUILD triggers are stored in the image config but never run by minicompose".into());
    let mut expr = full.to_string();
    for h in heredocs {
        expr.push('\n');
        expr.push_str(&h.content);
        expr.push_str(&h.name);
    }
    Ok(Instruction::Onbuild(expr))
}
