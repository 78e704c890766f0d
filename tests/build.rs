//! `image build` end to end: every instruction of tests/fixtures/build/full
//! (multi-stage, ARG before FROM, RUN shell/exec, COPY globs/dirs/--chown/
//! --from, ADD of a local archive, metadata instructions, the escape
//! directive, .dockerignore), `--target`, the per-step cache and
//! `--no-cache`, and bad input (syntax error, failing RUN, missing or
//! outside COPY source, unknown base image): a clear error naming the step,
//! nothing tagged, the cache still valid. Needs root and the test registry.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mc_e2e::{describe as text, mc_ok as ok, stderr_text as stderr};

fn skip() -> bool {
    if !mc_e2e::is_root() {
        eprintln!("skipping: needs root");
        return true;
    }
    false
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/build")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// A copy of a fixture context (tests may change it).
fn context(name: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("mc-build-ctx-")
        .tempdir()
        .unwrap();
    copy_dir(&fixture(name), d.path());
    d
}

fn inspect(root: &Path, image: &str) -> serde_json::Value {
    let o = ok(root, &["image", "inspect", image]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0].clone()
}

/// Run `script` as the CMD of `image` (its entrypoint is `sh -c`); stdout.
fn sh(root: &Path, image: &str, script: &str) -> String {
    let o = ok(root, &["container", "run", "--rm", image, script]);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Nothing of the build is left: no build containers, mounts or temp files.
fn assert_no_leftovers(root: &Path) {
    let containers = std::fs::read_dir(root.join("containers"))
        .map(|r| r.flatten().filter(|e| e.file_name().len() == 64).count())
        .unwrap_or(0);
    assert_eq!(containers, 0, "build containers left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root_s = root.to_string_lossy();
    assert!(
        !mounts.lines().any(|l| l.contains(&*root_s)),
        "mounts left under {root_s}"
    );
    let tmp: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
    // The build's network (RUN steps) and its endpoints are gone too.
    for dir in ["networks", "run/net/endpoints"] {
        let left: Vec<_> = std::fs::read_dir(root.join(dir))
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{dir} left: {left:?}");
    }
}

#[test]
fn builds_every_instruction() {
    if skip() {
        return;
    }
    let root = mc_e2e::temp_root();
    let r = root.path();
    let ctx = context("full");
    // ADD unpacks a local archive; make it here (no binary fixtures).
    let arch_src = ctx.path().join("arch");
    std::fs::create_dir_all(arch_src.join("inner")).unwrap();
    std::fs::write(arch_src.join("inner/file.txt"), "from the archive\n").unwrap();
    let st = Command::new("tar")
        .args(["czf", "archive.tar.gz", "-C", "arch", "inner"])
        .current_dir(ctx.path())
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_dir_all(&arch_src).unwrap();
    let c = ctx.path().to_str().unwrap();

    let o = ok(
        r,
        &[
            "image",
            "build",
            "-t",
            "mc-tour:1",
            "--build-arg",
            "GREETING=hi",
            c,
        ],
    );
    let err = stderr(&o);
    assert!(err.contains("[builder 2/3] RUN echo"), "{err}");
    assert!(
        err.contains("naming to docker.io/library/mc-tour:1"),
        "{err}"
    );

    let img = inspect(r, "mc-tour:1");
    let cfg = &img["Config"];
    assert_eq!(cfg["User"], "nobody");
    assert_eq!(cfg["WorkingDir"], "/srv/app");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(cfg["Cmd"], serde_json::json!(["cat /srv/app/a.txt"]));
    assert_eq!(cfg["Labels"]["org.example.tour"], "yes");
    assert_eq!(cfg["Labels"]["maintainer"], "team");
    assert_eq!(cfg["StopSignal"], "SIGQUIT");
    assert!(cfg["ExposedPorts"].get("8080/tcp").is_some(), "{cfg}");
    assert!(cfg["ExposedPorts"].get("9000/tcp").is_some(), "{cfg}");
    assert!(cfg["Volumes"].get("/data").is_some(), "{cfg}");
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"APP_HOME=/srv/app") && env.contains(&"MODE=test"),
        "{env:?}"
    );
    // busybox's layer + COPY ×4 + ADD + RUN + COPY = 8 layers.
    assert_eq!(img["Layers"].as_array().unwrap().len(), 8, "{img}");

    // The CMD runs through the ENTRYPOINT.
    let o = ok(r, &["container", "run", "--rm", "mc-tour:1"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "a\n");
    let files = sh(
        r,
        "mc-tour:1",
        "cd /srv/app && ls && cat sub/deep.txt /srv/from-builder.txt /srv/unpacked/inner/file.txt ran.txt; \
         stat -c '%u:%g' /srv/owned.txt; cat /real/b.txt; readlink /linked; test -e /etc/group || echo no-group; test -e secret.key || echo ignored-ok; pwd; id -u",
    );
    assert_eq!(
        files,
        "a.txt\nb.txt\nowned.txt\nran.txt\nsub\ndeep\nhi from the builder\nexec-form\nfrom the archive\nran\n\
         65534:65534\nb\n/real\nno-group\nignored-ok\n/srv/app\n65534\n",
        "the image's files"
    );

    // --target stops at a stage; FROM a stage reuses its cached steps.
    let o = ok(
        r,
        &[
            "image",
            "build",
            "-t",
            "mc-tour:extra",
            "--target",
            "extra",
            "--build-arg",
            "GREETING=hi",
            c,
        ],
    );
    assert!(stderr(&o).contains("CACHED"), "{}", stderr(&o));
    let out = ok(
        r,
        &[
            "container",
            "run",
            "--rm",
            "mc-tour:extra",
            "cat",
            "/extra.txt",
            "/built.txt",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "extra\nhi from the builder\n"
    );
    let bad = mc_e2e::mc(r, &["image", "build", "--target", "nope", c]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert_no_leftovers(r);
}

#[test]
fn cache_per_step_and_no_cache() {
    if skip() {
        return;
    }
    let root = mc_e2e::temp_root();
    let r = root.path();
    let ctx = context("bad");
    let c = ctx.path().to_str().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCOPY ok.txt /ok.txt\nRUN echo ran-the-step && cat /proc/sys/kernel/random/uuid > /stamp\nCMD [\"cat\", \"/ok.txt\"]\n",
    )
    .unwrap();
    let first = ok(r, &["image", "build", "-t", "mc-cache", c]);
    assert!(
        stderr(&first).contains("ran-the-step")
            || String::from_utf8_lossy(&first.stdout).contains("ran-the-step")
    );
    let id1 = inspect(r, "mc-cache")["Id"].clone();

    // Same input: every step CACHED, the same image id.
    let again = ok(r, &["image", "build", "-t", "mc-cache", c]);
    let err = stderr(&again);
    assert_eq!(err.matches("CACHED").count(), 2, "{err}");
    assert!(!String::from_utf8_lossy(&again.stdout).contains("ran-the-step"));
    assert_eq!(inspect(r, "mc-cache")["Id"], id1);

    // A changed file re-runs its COPY and everything after it.
    std::fs::write(ctx.path().join("ok.txt"), "changed\n").unwrap();
    let changed = ok(r, &["image", "build", "-t", "mc-cache", c]);
    assert_eq!(
        stderr(&changed).matches("CACHED").count(),
        0,
        "{}",
        stderr(&changed)
    );
    assert_ne!(inspect(r, "mc-cache")["Id"], id1);
    let out = ok(r, &["container", "run", "--rm", "mc-cache"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "changed\n");

    // The mtime alone changes nothing.
    let id2 = inspect(r, "mc-cache")["Id"].clone();
    std::fs::write(ctx.path().join("ok.txt"), "changed\n").unwrap();
    ok(r, &["image", "build", "-t", "mc-cache", c]);
    assert_eq!(inspect(r, "mc-cache")["Id"], id2);

    // --no-cache runs every step again.
    let fresh = ok(r, &["image", "build", "--no-cache", "-t", "mc-cache", c]);
    assert_eq!(stderr(&fresh).matches("CACHED").count(), 0);
    assert_ne!(
        inspect(r, "mc-cache")["Id"],
        id2,
        "the RUN wrote a new stamp"
    );
    assert_no_leftovers(r);
}

#[test]
fn bad_input_is_one_clear_error_and_nothing_is_tagged() {
    if skip() {
        return;
    }
    let root = mc_e2e::temp_root();
    let r = root.path();
    let ctx = context("bad");
    let c = ctx.path().to_str().unwrap();
    std::fs::write(ctx.path().parent().unwrap().join("outside.txt"), "x").ok();
    let build = |file: &str, tag: &str| {
        let df = ctx.path().join(file);
        mc_e2e::mc(
            r,
            &["image", "build", "-t", tag, "-f", df.to_str().unwrap(), c],
        )
    };
    let last_line = |o: &Output| stderr(o).lines().last().unwrap_or_default().to_string();

    let o = build("syntax.Dockerfile", "mc-bad:syntax");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let l = last_line(&o);
    assert!(
        l.contains("line 3") && l.contains("unknown instruction: FRM"),
        "{l}"
    );

    let o = build("failing.Dockerfile", "mc-bad:run");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let l = last_line(&o);
    assert!(
        l.contains("failing.Dockerfile:3: RUN echo first line")
            && l.contains("exit code: 3")
            && l.contains("about to fail"),
        "{l}"
    );
    let err = stderr(&o);
    assert!(
        err.contains("first line") && err.contains("about to fail"),
        "the output's last lines: {err}"
    );
    // The step before the failure is cached; the failure is not.
    let o = build("failing.Dockerfile", "mc-bad:run");
    let err = stderr(&o);
    assert_eq!(err.matches("CACHED").count(), 1, "{err}");
    assert_eq!(o.status.code(), Some(1));

    let o = build("missing.Dockerfile", "mc-bad:missing");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let l = last_line(&o);
    assert!(
        l.contains("missing.Dockerfile:2: COPY nothere.txt /x") && l.contains("not found"),
        "{l}"
    );

    let o = build("outside.Dockerfile", "mc-bad:outside");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let l = last_line(&o);
    assert!(
        l.contains("outside.Dockerfile:2: COPY ../outside.txt /x"),
        "{l}"
    );

    let o = build("unknown-image.Dockerfile", "mc-bad:from");
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let l = last_line(&o);
    assert!(l.contains("FROM test/does-not-exist:1.0"), "{l}");

    // Nothing half-tagged.
    let ls = ok(r, &["image", "ls"]);
    assert!(
        !String::from_utf8_lossy(&ls.stdout).contains("mc-bad"),
        "{}",
        text(&ls)
    );
    assert_no_leftovers(r);
}

#[test]
fn push_then_pull_elsewhere() {
    if skip() {
        return;
    }
    let root = mc_e2e::temp_root();
    let r = root.path();
    let ctx = context("bad");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCOPY ok.txt /ok.txt\nCMD [\"cat\", \"/ok.txt\"]\n",
    )
    .unwrap();
    let tag = format!(
        "{}/test/mc-build-push:{}",
        mc_e2e::registry(),
        std::process::id()
    );
    ok(
        r,
        &["image", "build", "-t", &tag, ctx.path().to_str().unwrap()],
    );
    let o = ok(r, &["image", "push", &tag]);
    assert!(stderr(&o).contains("digest: sha256:"), "{}", text(&o));
    // Again: every blob is already there.
    let o = ok(r, &["image", "push", &tag]);
    assert_eq!(
        stderr(&o).matches("Layer already exists").count(),
        3,
        "{}",
        text(&o)
    );
    let elsewhere = mc_e2e::temp_root();
    let o = ok(elsewhere.path(), &["container", "run", "--rm", &tag]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok\n");

    // A registry with Basic auth: refused without credentials, accepted after login.
    let Ok(basic) = std::env::var("MC_TEST_REGISTRY_BASIC") else {
        return;
    };
    let config = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut c = Command::new(mc_e2e::bin())
            .env("DOCKER_CONFIG", config.path())
            .arg("--root")
            .arg(r)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let private = format!("{basic}/test/mc-build-push:{}", std::process::id());
    ok(
        r,
        &[
            "image",
            "build",
            "-t",
            &private,
            ctx.path().to_str().unwrap(),
        ],
    );
    let o = run(&["image", "push", &private], "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("minicompose login"), "{}", text(&o));
    let user = std::env::var("MC_TEST_REGISTRY_USER").unwrap();
    let password = std::env::var("MC_TEST_REGISTRY_PASSWORD").unwrap();
    let o = run(
        &["login", "-u", &user, "--password-stdin", &basic],
        &password,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["image", "push", &private], "");
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_build_killed_mid_run_is_cleaned_by_the_next() {
    if skip() {
        return;
    }
    let root = mc_e2e::temp_root();
    let r = root.path();
    let ctx = context("bad");
    let c = ctx.path().to_str().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN sleep 60\n",
    )
    .unwrap();
    let mut child = Command::new(mc_e2e::bin())
        .arg("--root")
        .arg(r)
        .arg("--registry-mirror")
        .arg(format!("http://{}", mc_e2e::registry()))
        .args(["image", "build", "-t", "mc-killed", c])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let containers = || -> Vec<String> {
        std::fs::read_dir(r.join("containers"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.len() == 64)
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while containers().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the RUN never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let left = containers();
    assert_eq!(left.len(), 1, "the killed build's container is still there");

    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nRUN true\n").unwrap();
    ok(r, &["image", "build", "-t", "mc-next", c]);
    assert_no_leftovers(r);
    let ls = ok(r, &["image", "ls"]);
    assert!(!String::from_utf8_lossy(&ls.stdout).contains("mc-killed"));
}
