//! Table-driven parser tests: every instruction form, the seed Dockerfile, and
//! malformed Dockerfiles with their exact errors.

use super::*;

fn one(src: &str) -> Instruction {
    let df = parse(&format!("FROM x\n{src}\n")).unwrap_or_else(|e| panic!("{src}: {e}"));
    assert_eq!(df.stages[0].instructions.len(), 1, "{src}");
    df.stages[0].instructions[0].instruction.clone()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn seed_dockerfile() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/hit-counter/app/Dockerfile");
    let text = std::fs::read_to_string(&path).expect("the seed's Dockerfile in examples/");
    let df = parse(&text).unwrap();
    assert_eq!(df.stages.len(), 1);
    let st = &df.stages[0];
    assert_eq!(
        (st.base.as_str(), st.name.as_ref(), st.line),
        ("python:3.6-alpine", None, 1)
    );
    let got: Vec<&Instruction> = st.instructions.iter().map(|l| &l.instruction).collect();
    assert!(
        matches!(got[0], Instruction::Copy(c) if c.sources == ["."] && c.dest == "/code" && c.kind == CopyKind::Copy)
    );
    assert_eq!(got[1], &Instruction::Workdir("/code".into()));
    assert!(
        matches!(got[2], Instruction::Run(r) if r.command == CommandLine::Shell("pip install -r requirements.txt".into()))
    );
    assert_eq!(
        got[3],
        &Instruction::Cmd(CommandLine::Exec(s(&["python", "app.py"])))
    );
    assert_eq!(
        st.instructions.iter().map(|l| l.line).collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );
    assert!(df.warnings.is_empty());
}

#[test]
fn instruction_forms() {
    let cases: Vec<(&str, Instruction)> = vec![
        ("RUN echo hi", Instruction::Run(Run { command: CommandLine::Shell("echo hi".into()), heredocs: vec![], network: None, mounts: vec![] })),
        ("run [\"echo\", \"hi\"]", Instruction::Run(Run { command: CommandLine::Exec(s(&["echo", "hi"])), heredocs: vec![], network: None, mounts: vec![] })),
        ("RUN [not json", Instruction::Run(Run { command: CommandLine::Shell("[not json".into()), heredocs: vec![], network: None, mounts: vec![] })),
        ("RUN --network=none wget x", Instruction::Run(Run { command: CommandLine::Shell("wget x".into()), heredocs: vec![], network: Some("none".into()), mounts: vec![] })),
        ("CMD python app.py", Instruction::Cmd(CommandLine::Shell("python app.py".into()))),
        ("ENTRYPOINT []", Instruction::Entrypoint(CommandLine::Exec(vec![]))),
        ("ENTRYPOINT [\"/init\"]", Instruction::Entrypoint(CommandLine::Exec(s(&["/init"])))),
        ("WORKDIR /my dir", Instruction::Workdir("/my dir".into())),
        ("ENV A 1 2  3", Instruction::Env(kv(&[("A", "1 2  3")]))),
        ("ENV A=1 B=\"x y\" C=z\\ w", Instruction::Env(kv(&[("A", "1"), ("B", "\"x y\""), ("C", "z\\ w")]))),
        ("ENV E=", Instruction::Env(kv(&[("E", "")]))),
        ("ARG A", Instruction::Arg(vec![ArgDecl { name: "A".into(), default: None }])),
        ("ARG A=1 B", Instruction::Arg(vec![ArgDecl { name: "A".into(), default: Some("1".into()) }, ArgDecl { name: "B".into(), default: None }])),
        ("EXPOSE 80 443/tcp", Instruction::Expose(s(&["80", "443/tcp"]))),
        ("USER app:app", Instruction::User("app:app".into())),
        ("LABEL a=b \"c\"=\"d e\"", Instruction::Label(kv(&[("a", "b"), ("\"c\"", "\"d e\"")]))),
        ("LABEL version 1.0", Instruction::Label(kv(&[("version", "1.0")]))),
        ("MAINTAINER Jane <j@x>", Instruction::Label(kv(&[("maintainer", "'Jane <j@x>'")]))),
        ("VOLUME /data /logs", Instruction::Volume(s(&["/data", "/logs"]))),
        ("VOLUME [\"/my data\"]", Instruction::Volume(s(&["/my data"]))),
        ("STOPSIGNAL SIGKILL", Instruction::StopSignal("SIGKILL".into())),
        ("SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]", Instruction::Shell(s(&["/bin/bash", "-o", "pipefail", "-c"]))),
        ("ONBUILD RUN make", Instruction::Onbuild("RUN make".into())),
        ("HEALTHCHECK NONE", Instruction::Healthcheck(Healthcheck { test: s(&["NONE"]), interval_ns: 0, timeout_ns: 0, start_period_ns: 0, start_interval_ns: 0, retries: 0 })),
        (
            "HEALTHCHECK --interval=5m --timeout=3s --start-period=1s --start-interval=500ms --retries=4 CMD [\"curl\", \"-f\", \"http://localhost/\"]",
            Instruction::Healthcheck(Healthcheck {
                test: s(&["CMD", "curl", "-f", "http://localhost/"]),
                interval_ns: 300_000_000_000,
                timeout_ns: 3_000_000_000,
                start_period_ns: 1_000_000_000,
                start_interval_ns: 500_000_000,
                retries: 4,
            }),
        ),
        ("HEALTHCHECK cmd curl x || exit 1", Instruction::Healthcheck(Healthcheck { test: s(&["CMD-SHELL", "curl x || exit 1"]), interval_ns: 0, timeout_ns: 0, start_period_ns: 0, start_interval_ns: 0, retries: 0 })),
    ];
    for (src, want) in cases {
        assert_eq!(one(src), want, "{src}");
    }
}

#[test]
fn copy_forms() {
    let c = |src: &str| match one(src) {
        Instruction::Copy(c) => c,
        other => panic!("{other:?}"),
    };
    let x = c("COPY --chown=1000:1000 --chmod=0755 --link a b /dest/");
    assert_eq!(x.sources, s(&["a", "b"]));
    assert_eq!(x.dest, "/dest/");
    assert_eq!(
        (x.chown.as_deref(), x.chmod.as_deref(), x.link),
        (Some("1000:1000"), Some("0755"), true)
    );
    let x = c("COPY --from=build /app/bin /usr/local/bin/app");
    assert_eq!(x.from.as_deref(), Some("build"));
    let x = c("COPY [\"my file.txt\", \"/dest dir/\"]");
    assert_eq!(
        (x.sources.clone(), x.dest.as_str(), x.json),
        (s(&["my file.txt"]), "/dest dir/", true)
    );
    let x = c("ADD --checksum=sha256:abc --keep-git-dir=false src.tar.gz /opt/");
    assert_eq!(
        (x.kind, x.checksum.as_deref(), x.keep_git_dir),
        (CopyKind::Add, Some("sha256:abc"), false)
    );
    let df = parse(
        "FROM x\nCOPY <<EOF /etc/motd\nhello\nEOF\nCOPY <<-A <<B /dir/\n\tone\n\tA\ntwo\nB\n",
    )
    .unwrap();
    let got: Vec<Copy> = df.stages[0]
        .instructions
        .iter()
        .map(|l| match &l.instruction {
            Instruction::Copy(c) => c.clone(),
            _ => panic!(),
        })
        .collect();
    assert!(got[0].sources.is_empty());
    assert_eq!(
        (
            got[0].inline[0].name.as_str(),
            got[0].inline[0].content.as_str()
        ),
        ("EOF", "hello\n")
    );
    assert_eq!(
        got[1]
            .inline
            .iter()
            .map(|i| i.content.as_str())
            .collect::<Vec<_>>(),
        vec!["one\n", "two\n"]
    );
    assert_eq!(df.stages[0].instructions[1].line, 5);
}

#[test]
fn stages_and_meta_args() {
    let df = parse(
        "# syntax=docker/dockerfile:1.4\nARG BASE=alpine\nARG V\nFROM --platform=$BUILDPLATFORM ${BASE}:3 AS Build\nRUN x\nfrom scratch\nCOPY --from=build /a /a\nFROM ubuntu@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef as final\n",
    )
    .unwrap();
    assert_eq!(df.meta_args.len(), 2);
    assert_eq!(df.stages.len(), 3);
    assert_eq!(df.stages[0].name.as_deref(), Some("build"));
    assert_eq!(df.stages[0].platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(df.stages[0].base, "${BASE}:3");
    assert_eq!(
        (df.stages[1].base.as_str(), df.stages[1].index),
        ("scratch", 1)
    );
    assert_eq!(df.stages[2].name.as_deref(), Some("final"));
    assert!(df.warnings.is_empty());
}

#[test]
fn escape_directive_backtick() {
    let df = parse("# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir C:\\ `\n  && echo done\nCOPY . C:\\app\\\n").unwrap();
    let i = &df.stages[0].instructions;
    assert_eq!(
        i[0].instruction,
        Instruction::Run(Run {
            command: CommandLine::Shell("dir C:\\   && echo done".into()),
            heredocs: vec![],
            network: None,
            mounts: vec![]
        })
    );
    assert!(matches!(&i[1].instruction, Instruction::Copy(c) if c.dest == "C:\\app\\"));
}

#[test]
fn warnings_are_reported() {
    let df = parse("# syntax=example.com/custom\nFROM x\nMAINTAINER me\nONBUILD RUN x\nRUN --mount=type=cache,target=/root/.cache pip install x\nRUN a \\\n\n b\n").unwrap();
    let lines: Vec<usize> = df.warnings.iter().map(|w| w.line).collect();
    assert_eq!(lines, vec![1, 3, 4, 5, 6]);
    assert!(df.warnings[0].message.contains("ignored"));
}

#[test]
fn malformed_dockerfiles() {
    let cases: &[(&str, &str)] = &[
        ("", "dockerfile parse error on line 1: file with no instructions"),
        ("# only a comment\n\n", "dockerfile parse error on line 1: file with no instructions"),
        ("FRM alpine\n", "dockerfile parse error on line 1: unknown instruction: FRM (did you mean FROM?)"),
        ("FROM a\nRUNN x\n", "dockerfile parse error on line 2: unknown instruction: RUNN (did you mean RUN?)"),
        ("FROM a\nFOOBAR x\n", "dockerfile parse error on line 2: unknown instruction: FOOBAR"),
        ("RUN echo\nFROM a\n", "dockerfile parse error on line 1: no build stage in current context"),
        ("ARG A=1\n", "dockerfile parse error on line 1: dockerfile contains no stages to build"),
        ("FROM\n", "dockerfile parse error on line 1: FROM requires either one or three arguments"),
        ("FROM a b\n", "dockerfile parse error on line 1: FROM requires either one or three arguments"),
        ("FROM a AS 1st\n", "dockerfile parse error on line 1: invalid name for build stage: \"1st\", name can't start with a number or contain symbols"),
        ("FROM a AS x\nFROM b AS X\n", "dockerfile parse error on line 2: duplicate stage name \"x\""),
        ("FROM --plat=linux a\n", "dockerfile parse error on line 1: unknown flag: plat (did you mean platform?)"),
        ("FROM a\nCOPY onlyone\n", "dockerfile parse error on line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM a\nADD x\n", "dockerfile parse error on line 2: ADD requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM a\nCOPY --chown a b\n", "dockerfile parse error on line 2: missing a value on flag: chown"),
        ("FROM a\nCOPY --from=x --from=y a b\n", "dockerfile parse error on line 2: duplicate flag specified: from"),
        ("FROM a\nADD --from=x a b\n", "dockerfile parse error on line 2: unknown flag: from"),
        ("FROM a\nCOPY --link=yes a b\n", "dockerfile parse error on line 2: expecting boolean value for flag link, not: yes"),
        ("FROM a\nCOPY --chmod=999 a b\n", "dockerfile parse error on line 2: invalid chmod parameter \"999\": use an octal mode such as 0644"),
        ("FROM a\nCOPY a <<EOF\nx\nEOF\n", "dockerfile parse error on line 2: COPY cannot accept a heredoc as a destination"),
        ("FROM a\nRUN\n", "dockerfile parse error on line 2: RUN requires at least one argument"),
        ("FROM a\nRUN [\"a\", 1]\n", "dockerfile parse error on line 2: when using JSON array syntax, arrays must be comprised of strings only"),
        ("FROM a\nRUN --mount=type=secret,id=x cat /run/secrets/x\n", "dockerfile parse error on line 2: RUN --mount=type=secret is not supported by minicompose; only type=cache is accepted (copy needed files with COPY instead)"),
        ("FROM a\nRUN --network=bridge x\n", "dockerfile parse error on line 2: unsupported network mode \"bridge\": use default, none or host"),
        ("FROM a\nRUN --security=insecure x\n", "dockerfile parse error on line 2: RUN --security=insecure is not supported by minicompose (steps always run unprivileged by the build)"),
        ("FROM a\nRUN <<EOF\nnever closed\n", "dockerfile parse error on line 2: unterminated heredoc"),
        ("FROM a\nCMD\n", "dockerfile parse error on line 2: CMD requires at least one argument"),
        ("FROM a\nCMD --help\n", "dockerfile parse error on line 2: unknown flag: help"),
        ("FROM a\nENV\n", "dockerfile parse error on line 2: ENV requires at least one argument"),
        ("FROM a\nENV ONLYKEY\n", "dockerfile parse error on line 2: ENV must have two arguments"),
        ("FROM a\nENV A=1 B\n", "dockerfile parse error on line 2: Syntax error - can't find = in \"B\". Must be of the form: name=value"),
        ("FROM a\nENV =x\n", "dockerfile parse error on line 2: ENV names can not be blank"),
        ("FROM a\nLABEL\n", "dockerfile parse error on line 2: LABEL requires at least one argument"),
        ("FROM a\nARG\n", "dockerfile parse error on line 2: ARG requires at least one argument"),
        ("FROM a\nARG =1\n", "dockerfile parse error on line 2: ARG names can not be blank"),
        ("FROM a\nWORKDIR\n", "dockerfile parse error on line 2: WORKDIR requires exactly one argument"),
        ("FROM a\nUSER\n", "dockerfile parse error on line 2: USER requires exactly one argument"),
        ("FROM a\nEXPOSE\n", "dockerfile parse error on line 2: EXPOSE requires at least one argument"),
        ("FROM a\nVOLUME [\"\"]\n", "dockerfile parse error on line 2: VOLUME specified can not be an empty string"),
        ("FROM a\nVOLUME\n", "dockerfile parse error on line 2: VOLUME requires at least one argument"),
        ("FROM a\nSTOPSIGNAL\n", "dockerfile parse error on line 2: STOPSIGNAL requires exactly one argument"),
        ("FROM a\nSHELL /bin/bash -c\n", "dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form"),
        ("FROM a\nSHELL []\n", "dockerfile parse error on line 2: SHELL requires at least one argument"),
        ("FROM a\nHEALTHCHECK\n", "dockerfile parse error on line 2: HEALTHCHECK requires at least one argument"),
        ("FROM a\nHEALTHCHECK NONE x\n", "dockerfile parse error on line 2: HEALTHCHECK NONE takes no arguments"),
        ("FROM a\nHEALTHCHECK CMD\n", "dockerfile parse error on line 2: Missing command after HEALTHCHECK CMD"),
        ("FROM a\nHEALTHCHECK RUN x\n", "dockerfile parse error on line 2: Unknown type \"RUN\" in HEALTHCHECK (try CMD)"),
        ("FROM a\nHEALTHCHECK --interval=1d CMD x\n", "dockerfile parse error on line 2: time: unknown unit \"d\" in duration \"1d\""),
        ("FROM a\nHEALTHCHECK --timeout=10us CMD x\n", "dockerfile parse error on line 2: Interval \"timeout\" cannot be less than 1ms"),
        ("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", "dockerfile parse error on line 2: --retries cannot be negative (-1)"),
        ("FROM a\nONBUILD ONBUILD RUN x\n", "dockerfile parse error on line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM a\nONBUILD FROM b\n", "dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD BOGUS x\n", "dockerfile parse error on line 2: unknown instruction: BOGUS"),
        ("FROM a\nMAINTAINER\n", "dockerfile parse error on line 2: MAINTAINER requires exactly one argument"),
        ("# escape=x\nFROM a\n", "dockerfile parse error on line 1: invalid escape token 'x' does not match ` or \\"),
        ("# syntax=a\n# syntax=b\nFROM a\n", "dockerfile parse error on line 2: only one syntax parser directive can be used"),
        ("FROM a\nRUN \\\n", "dockerfile parse error on line 2: RUN requires at least one argument"),
    ];
    let mut failures = Vec::new();
    for (src, want) in cases {
        match parse(src) {
            Ok(_) => failures.push(format!("{src:?}: parsed, expected {want:?}")),
            Err(e) if e.to_string() != *want => {
                failures.push(format!("{src:?}:\n  got  {e}\n  want {want}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parse_file_names_the_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("Dockerfile");
    std::fs::write(&p, "FROM a\nBAD x\n").unwrap();
    let e = parse_file(&p).unwrap_err();
    assert!(e.is_user_error());
    assert_eq!(
        e.to_string(),
        format!(
            "{}: dockerfile parse error on line 2: unknown instruction: BAD (did you mean ADD?)",
            p.display()
        )
    );
    let e = parse_file(&d.path().join("missing")).unwrap_err();
    assert!(e.to_string().starts_with("cannot read Dockerfile"));
}

/// Garbage in never panics: deterministic pseudo-random Dockerfiles built from
/// the characters and words the parser and the lexer care about, run through
/// parse → plan → evaluate.
#[test]
fn random_input_never_panics() {
    use crate::args::BuildOptions;
    use crate::config::ImageConfig;
    use crate::evaluate::StageState;
    const KEYWORDS: &[&str] = &[
        "FROM ",
        "RUN ",
        "COPY ",
        "ADD ",
        "ENV ",
        "ARG ",
        "LABEL ",
        "ONBUILD ",
        "HEALTHCHECK ",
        "CMD ",
        "SHELL ",
        "EXPOSE ",
        "VOLUME ",
        "WORKDIR ",
        "USER ",
        "STOPSIGNAL ",
        "ENTRYPOINT ",
        "MAINTAINER ",
        "# ",
    ];
    const PIECES: &[&str] = &[
        " AS ",
        "--from=",
        "--chown=",
        "--mount=",
        "--interval=",
        "--link ",
        "$",
        "${",
        "}",
        ":-",
        ":+",
        "#",
        "%",
        "/",
        "\\",
        "`",
        "\"",
        "'",
        "[",
        "]",
        " ",
        " ",
        "=",
        "<<",
        "<<-",
        "EOF",
        "\nEOF\n",
        "x",
        "0",
        "é",
        "\t",
        "*",
        "?",
        ",",
        "CMD",
        "NONE",
        "a=b",
        "\\\n",
        "[\"a\"]",
        "1s",
    ];
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut parsed, mut planned) = (0, 0);
    for _ in 0..20000 {
        let mut text = String::from(if next() % 4 == 0 {
            "# escape=`\nARG A=1\n"
        } else {
            ""
        });
        text.push_str("FROM a AS s0\n");
        for _ in 0..(next() % 6) {
            text.push_str(KEYWORDS[(next() % KEYWORDS.len() as u64) as usize]);
            for _ in 0..(1 + next() % 5) {
                text.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            text.push('\n');
        }
        let Ok(df) = parse(&text) else { continue };
        parsed += 1;
        let opts = BuildOptions::default();
        let Ok(plan) = crate::plan::plan(&df, &opts) else {
            continue;
        };
        planned += 1;
        for &i in &plan.order {
            let mut st = StageState::new(
                ImageConfig::default(),
                &plan.meta,
                &opts,
                df.directives.escape,
            );
            for l in &df.stages[i].instructions {
                let _ = st.step(l);
            }
        }
    }
    // The generator must reach the later stages, or this test proves little.
    assert!(
        parsed > 200 && planned > 100,
        "parsed {parsed}, planned {planned}"
    );
}
