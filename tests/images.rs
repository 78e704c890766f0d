//! End-to-end: `minicompose image …`, `login`, `logout` against the local test
//! registries (scripts/test-registry.sh), as root. Each test has its own
//! `--root`; nothing is left behind (temp dirs are removed on drop).

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mc_e2e::images::{
    cmd, describe_tree, diff_trees, env, evil_names_outside_layers, run, text, Fault, FaultProxy,
};
use mc_e2e::{registry, temp_root};

fn mirror() -> Vec<String> {
    vec![format!("http://{}", registry())]
}

/// Run with the test registry as mirror; assert success; return stdout.
fn ok(root: &Path, args: &[&str]) -> String {
    let o = run(cmd(root, &mirror()).args(args));
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run with the test registry as mirror; assert failure with `code`; return stderr.
fn fails(root: &Path, args: &[&str], code: i32) -> String {
    let o = run(cmd(root, &mirror()).args(args));
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o));
    error_line(&o.stderr)
}

/// The one error line (progress lines may precede it).
fn error_line(stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("minicompose:"))
        .collect();
    assert_eq!(lines.len(), 1, "one clear error line expected: {err}");
    lines[0].to_string()
}

fn tmp_is_empty(root: &Path) -> bool {
    std::fs::read_dir(root.join("tmp"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

fn require_root() {
    assert!(mc_e2e::is_root(), "the image end-to-end tests need root");
}

#[test]
fn binary_reports_version() {
    let out = Command::new(mc_e2e::bin()).arg("version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("minicompose version v"));
}

#[test]
fn pull_ls_inspect_and_oci_layout() {
    require_root();
    let root = temp_root();
    let r = root.path();
    let out = ok(r, &["image", "pull", "busybox"]);
    assert!(out.contains("docker.io/library/busybox:latest"), "{out}");
    assert!(
        out.contains("Downloaded newer image for busybox:latest"),
        "{out}"
    );
    let again = ok(r, &["image", "pull", "busybox"]);
    assert!(again.contains("Image is up to date"), "{again}");

    let ls = ok(r, &["image", "ls"]);
    let mut lines = ls.lines();
    let header = lines.next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{ls}");
    }
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["busybox", "latest"], "{ls}");

    let inspect: serde_json::Value =
        serde_json::from_str(&ok(r, &["image", "inspect", "busybox"])).unwrap();
    let img = &inspect[0];
    let id = img["Id"].as_str().unwrap();
    assert!(id.starts_with("sha256:"));
    assert_eq!(img["Config"]["Cmd"][0], "sh");
    let layer = img["Layers"][0]["Path"].as_str().unwrap();
    // Every busybox applet is one inode with 268 names, as in the image.
    let sh = std::fs::metadata(Path::new(layer).join("bin/sh")).unwrap();
    assert_eq!(sh.nlink(), 268);
    // By short ID, too.
    let short = &id[7..19];
    ok(r, &["image", "inspect", short]);

    // skopeo reads our OCI layout.
    let o = Command::new("skopeo")
        .arg("inspect")
        .arg(format!(
            "oci:{}/oci:docker.io/library/busybox:latest",
            r.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo: {}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    assert!(tmp_is_empty(r));
}

/// Our export must equal, file for file, what umoci unpacks from the same image.
#[test]
fn export_matches_umoci() {
    require_root();
    let root = temp_root();
    let r = root.path();
    let work = tempfile::tempdir().unwrap();
    for image in [
        "library/busybox:latest",
        "library/python:3.6-alpine",
        "library/redis:alpine",
        "test/whiteout:latest",
        "test/hardlink:latest",
        "test/multiarch:latest",
    ] {
        let short = image.trim_start_matches("library/");
        ok(r, &["image", "pull", "-q", short]);
        let ours = work
            .path()
            .join(format!("ours-{}", image.replace(['/', ':'], "_")));
        ok(r, &["image", "export", short, ours.to_str().unwrap()]);
        let layout = work
            .path()
            .join(format!("oci-{}", image.replace(['/', ':'], "_")));
        let o = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                "--override-arch",
                "amd64",
                "--override-os",
                "linux",
            ])
            .arg(format!("docker://{}/{image}", registry()))
            .arg(format!("oci:{}:img", layout.display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "skopeo copy {image}: {}", text(&o));
        let bundle = work
            .path()
            .join(format!("bundle-{}", image.replace(['/', ':'], "_")));
        let o = Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:img", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(o.status.success(), "umoci unpack {image}: {}", text(&o));
        let (a, b) = (describe_tree(&ours), describe_tree(&bundle.join("rootfs")));
        let d = diff_trees(&a, &b);
        assert!(
            d.is_empty(),
            "{image}: export differs from umoci:\n{}",
            d.join("\n")
        );
        assert!(a.len() > 10, "{image}: {} entries", a.len());
    }
}

#[test]
fn whiteouts_multiarch_zstd_hardlinks() {
    require_root();
    let root = temp_root();
    let r = root.path();
    let work = tempfile::tempdir().unwrap();
    let export = |image: &str, name: &str| {
        ok(r, &["image", "pull", "-q", image]);
        let dir = work.path().join(name);
        ok(r, &["image", "export", image, dir.to_str().unwrap()]);
        dir
    };

    let wh = export("test/whiteout", "wh");
    let mut found: Vec<String> = describe_tree(&wh.join("wh")).keys().cloned().collect();
    found.sort();
    assert_eq!(
        found,
        [
            ".",
            "keep.txt",
            "opq",
            "opq/new.txt",
            "readd",
            "readd/y.txt"
        ]
    );
    assert!(!wh.join("bin/vi").exists());
    assert!(wh.join("bin/sh").exists());
    assert!(describe_tree(&wh).keys().all(|k| !k.contains(".wh.")));
    // In the store the layers keep overlay whiteouts: char 0/0.
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(r, &["image", "inspect", "test/whiteout"])).unwrap();
    let second = Path::new(inspect[0]["Layers"][2]["Path"].as_str().unwrap());
    let gone = std::fs::symlink_metadata(second.join("wh/gone.txt")).unwrap();
    assert!(gone.file_type().is_char_device() && gone.rdev() == 0);

    let ma = export("test/multiarch", "ma");
    assert_eq!(
        std::fs::read_to_string(ma.join("etc/mc-arch")).unwrap(),
        "amd64\n"
    );
    let err = fails(r, &["image", "pull", "test/multiarch:arm64-only"], 1);
    assert!(
        err.contains("no image for platform linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
    // --platform picks the other entry.
    let root2 = temp_root();
    let o = run(cmd(root2.path(), &mirror()).args([
        "image",
        "pull",
        "-q",
        "--platform",
        "linux/arm64",
        "test/multiarch",
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let arm = work.path().join("arm");
    let o = run(cmd(root2.path(), &[]).args([
        "image",
        "export",
        "test/multiarch",
        arm.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(arm.join("etc/mc-arch")).unwrap(),
        "arm64\n"
    );

    let z = export("test/zstd", "zstd");
    assert_eq!(
        std::fs::read_to_string(z.join("zstd/hello.txt")).unwrap(),
        "hello from a zstd layer\n"
    );

    let hl = export("test/hardlink", "hl");
    let orig = std::fs::metadata(hl.join("hl/original")).unwrap();
    assert_eq!(orig.nlink(), 3);
    assert_eq!(
        orig.ino(),
        std::fs::metadata(hl.join("hl/sub/link2")).unwrap().ino()
    );
    assert_eq!(
        std::fs::read_to_string(hl.join("hl/long-link")).unwrap(),
        "long name\n"
    );
    assert_eq!(
        std::fs::read_link(hl.join("hl/sym")).unwrap(),
        Path::new("original")
    );
}

#[test]
fn malicious_layers_are_refused_and_nothing_escapes() {
    require_root();
    let root = temp_root();
    let r = root.path();
    let target = Path::new("/tmp/mc-evil-hardlink-target");
    std::fs::write(target, "original\n").unwrap();
    let cases = [
        ("evil/traversal", "leads outside the layer"),
        ("evil/symlink-escape", "goes through the symlink"),
        ("evil/hardlink-escape", "hard link"),
        ("evil/absurd-size:ustar", "truncated"),
        ("evil/absurd-size:pax", "truncated"),
    ];
    for (image, why) in cases {
        let start = Instant::now();
        let err = fails(r, &["image", "pull", image], 125);
        assert!(err.contains(image.split(':').next().unwrap()), "{err}");
        assert!(err.contains(why), "{image}: {err}");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{image} took {:?}",
            start.elapsed()
        );
        assert!(tmp_is_empty(r), "{image}: work left in tmp/");
    }
    let stray: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mc-evil-") && n != "mc-evil-hardlink-target")
        .collect();
    let meta = std::fs::metadata(target).unwrap();
    let content = std::fs::read_to_string(target).unwrap();
    std::fs::remove_file(target).unwrap();
    assert!(stray.is_empty(), "escaped: {stray:?}");
    assert_eq!((meta.nlink(), content.as_str()), (1, "original\n"));
    assert!(
        evil_names_outside_layers(r).is_empty(),
        "{:?}",
        evil_names_outside_layers(r)
    );
    // Nothing half-visible: no image recorded, and the store still works.
    let ls = ok(r, &["image", "ls", "-q"]);
    assert!(ls.trim().is_empty(), "{ls}");
    ok(r, &["image", "pull", "-q", "busybox"]);
}

#[test]
fn bad_references_and_unknown_images() {
    require_root();
    let root = temp_root();
    let r = root.path();
    let err = fails(r, &["image", "pull", "Busybox"], 1);
    assert!(
        err.contains("invalid reference \"Busybox\"") && err.contains("lowercase"),
        "{err}"
    );
    let err = fails(r, &["image", "pull", "busybox:bad:tag"], 1);
    assert!(err.contains("invalid reference"), "{err}");
    let err = fails(r, &["image", "pull", "nosuchimage"], 1);
    assert!(
        err.contains("docker.io/library/nosuchimage:latest") && err.contains("not found"),
        "{err}"
    );
    let err = fails(r, &["image", "pull", "busybox:nosuchtag"], 1);
    assert!(
        err.contains("docker.io/library/busybox:nosuchtag")
            && err.contains("tag \"nosuchtag\" not found"),
        "{err}"
    );
    let zero = format!("busybox@sha256:{}", "0".repeat(64));
    let err = fails(r, &["image", "pull", &zero], 1);
    assert!(
        err.contains(&"0".repeat(64)) && err.contains("not found"),
        "{err}"
    );
    let err = fails(r, &["image", "inspect", "nothere"], 1);
    assert!(err.contains("nothere"), "{err}");
    // Pinning the right digest works (the index digest the tag points to).
    ok(r, &["image", "pull", "-q", "busybox"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(r, &["image", "inspect", "busybox"])).unwrap();
    let repo_digest = inspect[0]["RepoDigests"][0].as_str().unwrap().to_string();
    let digest = repo_digest.split('@').nth(1).unwrap();
    let out = ok(r, &["image", "pull", &format!("busybox@{digest}")]);
    assert!(out.contains(digest), "{out}");
    assert!(tmp_is_empty(r));
}

#[test]
fn registry_down_and_mirror_order() {
    require_root();
    let root = temp_root();
    let r = root.path();
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let o = run(cmd(r, &[format!("http://{dead}")]).args(["image", "pull", "busybox"]));
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("docker.io/library/busybox") && err.contains(&format!("cannot reach {dead}")),
        "{err}"
    );
    let o = run(cmd(r, &[]).args(["image", "pull", &format!("{dead}/library/busybox")]));
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    // Mirrors are tried in order, from the environment too.
    let o = run(cmd(r, &[])
        .env(
            "MINICOMPOSE_REGISTRY_MIRROR",
            format!("http://{dead},http://{}", registry()),
        )
        .args(["image", "pull", "-q", "busybox"]));
    assert!(o.status.success(), "{}", text(&o));
    // Mirrors are for docker.io only: a loopback registry is asked directly (plain http).
    let o = run(cmd(r, &[format!("http://{dead}")]).args([
        "image",
        "pull",
        "-q",
        &format!("{}/test/zstd", registry()),
    ]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(tmp_is_empty(r));
}

fn login(cfg: &Path, host: &str, user: &str, password: &str) -> std::process::Output {
    let mut c = cmd(Path::new("/nonexistent-root-unused"), &[]);
    c.env("DOCKER_CONFIG", cfg)
        .args(["login", host, "-u", user, "--password-stdin"])
        .stdin(Stdio::piped());
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn basic_and_token_auth() {
    require_root();
    let (user, pass) = (
        env("MC_TEST_REGISTRY_USER"),
        env("MC_TEST_REGISTRY_PASSWORD"),
    );
    for (var, anonymous_ok) in [
        ("MC_TEST_REGISTRY_BASIC", false),
        ("MC_TEST_REGISTRY_TOKEN", true),
    ] {
        let host = env(var);
        let root = temp_root();
        let cfg = tempfile::tempdir().unwrap();
        let image = format!("{host}/library/busybox:latest");
        let pull = || {
            run(cmd(root.path(), &[])
                .env("DOCKER_CONFIG", cfg.path())
                .args(["image", "pull", "-q", &image]))
        };
        let o = pull();
        if anonymous_ok {
            // Docker Hub's flow: an anonymous token for pull.
            assert!(o.status.success(), "{var}: {}", text(&o));
        } else {
            assert_eq!(o.status.code(), Some(1), "{var}: {}", text(&o));
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains("requires authentication") && err.contains("minicompose login"),
                "{err}"
            );
        }
        let o = login(cfg.path(), &host, &user, "wrong-password");
        assert_eq!(o.status.code(), Some(1), "{var}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("refused"),
            "{}",
            text(&o)
        );
        assert!(!cfg.path().join("config.json").exists());
        let o = login(cfg.path(), &host, &user, &pass);
        assert!(o.status.success(), "{var}: {}", text(&o));
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(cfg.path().join("config.json")).unwrap())
                .unwrap();
        assert!(saved["auths"][&host]["auth"].is_string());
        let o = pull();
        assert!(o.status.success(), "{var}: {}", text(&o));
        let o = run(cmd(root.path(), &[])
            .env("DOCKER_CONFIG", cfg.path())
            .args(["logout", &host]));
        assert!(o.status.success(), "{}", text(&o));
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(cfg.path().join("config.json")).unwrap())
                .unwrap();
        assert!(saved["auths"].get(&host).is_none());
    }
}

#[test]
fn faulty_blobs_are_caught_and_the_store_stays_consistent() {
    require_root();
    let upstream = registry();
    for (fault, code, why) in [
        (Fault::Truncate, 125, "truncated blob"),
        (Fault::Corrupt, 125, "digest mismatch"),
    ] {
        let root = temp_root();
        let r = root.path();
        let proxy = FaultProxy::start(&upstream, fault);
        let o = run(cmd(r, &[proxy.url()]).args(["image", "pull", "python:3.6-alpine"]));
        assert_eq!(o.status.code(), Some(code), "{fault:?}: {}", text(&o));
        let err = error_line(&o.stderr);
        assert!(
            err.contains("docker.io/library/python:3.6-alpine") && err.contains(why),
            "{fault:?}: {err}"
        );
        assert!(tmp_is_empty(r), "{fault:?}");
        drop(proxy);
        // A second pull through a good path completes it.
        ok(r, &["image", "pull", "-q", "python:3.6-alpine"]);
    }
    // 429: the cause and Docker Hub's rate-limit headers, in one line.
    let root = temp_root();
    let proxy = FaultProxy::start(&upstream, Fault::RateLimit);
    let o = run(cmd(root.path(), &[proxy.url()]).args(["image", "pull", "busybox"]));
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    let err = error_line(&o.stderr);
    assert!(
        err.contains("rate limited") && err.contains("ratelimit-remaining: 0;w=21600"),
        "{err}"
    );
    drop(proxy);
    for fault in [Fault::DropOnce, Fault::Error500(3)] {
        let root = temp_root();
        let proxy = FaultProxy::start(&upstream, fault);
        let o = run(cmd(root.path(), &[proxy.url()]).args([
            "image",
            "pull",
            "-q",
            "python:3.6-alpine",
        ]));
        assert!(
            o.status.success(),
            "{fault:?} should be retried: {}",
            text(&o)
        );
        assert!(
            proxy
                .blob_requests
                .load(std::sync::atomic::Ordering::SeqCst)
                > 3,
            "{fault:?}"
        );
    }
}

#[test]
fn killed_pull_leaves_nothing_visible_and_next_pull_completes() {
    require_root();
    let root = temp_root();
    let r = root.path();
    let proxy = FaultProxy::start(&registry(), Fault::Slow(2_000_000));
    let mut child = cmd(r, &[proxy.url()])
        .args(["image", "pull", "-q", "python:3.6-alpine"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap(); // SIGKILL, by pid
    child.wait().unwrap();
    drop(proxy);
    let ls = ok(r, &["image", "ls", "-q"]);
    assert!(ls.trim().is_empty(), "half-pulled image visible: {ls}");
    let o = run(cmd(r, &[]).args(["image", "inspect", "python:3.6-alpine"]));
    assert_eq!(o.status.code(), Some(1));
    ok(r, &["image", "pull", "-q", "python:3.6-alpine"]);
    assert!(
        tmp_is_empty(r),
        "leftovers of the killed pull were not swept"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(r, &["image", "inspect", "python:3.6-alpine"])).unwrap();
    assert_eq!(inspect[0]["Layers"].as_array().unwrap().len(), 2);
}

#[test]
fn concurrent_pulls_of_one_image_both_succeed() {
    require_root();
    let root = temp_root();
    let r = root.path();
    let spawn = || {
        cmd(r, &mirror())
            .args(["image", "pull", "-q", "python:3.6-alpine"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for c in [a, b] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    let ls = ok(r, &["image", "ls", "-q"]);
    assert_eq!(ls.lines().count(), 1, "{ls}");
    let layers: BTreeSet<_> = std::fs::read_dir(r.join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(layers.len(), 2);
    assert!(tmp_is_empty(r));
}

#[test]
fn rm_prune_and_shared_layers() {
    require_root();
    let root = temp_root();
    let r = root.path();
    ok(r, &["image", "pull", "-q", "busybox"]);
    ok(r, &["image", "pull", "-q", "redis:alpine"]);
    assert_eq!(
        std::fs::read_dir(r.join("layers")).unwrap().count(),
        2,
        "busybox layer shared"
    );
    let out = ok(r, &["image", "rm", "redis:alpine"]);
    assert!(out.contains("Untagged: redis:alpine"), "{out}");
    assert_eq!(
        std::fs::read_dir(r.join("layers")).unwrap().count(),
        1,
        "shared layer kept"
    );
    let bb: serde_json::Value =
        serde_json::from_str(&ok(r, &["image", "inspect", "busybox"])).unwrap();
    assert!(Path::new(bb[0]["Layers"][0]["Path"].as_str().unwrap())
        .join("bin/sh")
        .exists());
    let err = fails(r, &["image", "rm", "redis:alpine"], 1);
    assert!(err.contains("redis:alpine"), "{err}");
    // A container's spec (as the runtime writes it) protects its image and layers.
    let bb_id = bb[0]["Id"].as_str().unwrap().to_string();
    let bb_layer = bb[0]["Layers"][0]["Path"].as_str().unwrap().to_string();
    let c = r.join("containers/c1");
    std::fs::create_dir_all(&c).unwrap();
    let spec = serde_json::json!({ "id": "c1", "name": "mc-test-c1", "image_id": bb_id, "layers": [bb_layer] });
    std::fs::write(c.join("config.json"), spec.to_string()).unwrap();
    let err = fails(r, &["image", "rm", "busybox"], 1);
    assert!(err.contains("container mc-test-c1 is using it"), "{err}");
    ok(r, &["image", "rm", "-f", "busybox"]);
    ok(r, &["image", "prune", "-f"]);
    assert!(
        Path::new(&bb_layer).join("bin/sh").exists(),
        "a container's layer was pruned"
    );
    std::fs::remove_dir_all(&c).unwrap();
    ok(r, &["image", "prune", "-f"]);
    assert_eq!(std::fs::read_dir(r.join("layers")).unwrap().count(), 0);
    let blobs = std::fs::read_dir(r.join("oci/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
}

#[test]
fn import_a_tarball() {
    require_root();
    let root = temp_root();
    let r = root.path();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/greeting"), "hello\n").unwrap();
    std::os::unix::fs::symlink("greeting", src.join("etc/link")).unwrap();
    let tarball = work.path().join("rootfs.tar.gz");
    let o = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success());
    let id = ok(
        r,
        &[
            "image",
            "import",
            tarball.to_str().unwrap(),
            "local/imported:v1",
        ],
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let ls = ok(r, &["image", "ls"]);
    assert!(ls.contains("local/imported") && ls.contains("v1"), "{ls}");
    let out = work.path().join("out");
    ok(
        r,
        &[
            "image",
            "export",
            "local/imported:v1",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("etc/greeting")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_link(out.join("etc/link")).unwrap(),
        Path::new("greeting")
    );
    let bad = work.path().join("bad.tar");
    std::fs::write(&bad, vec![b'x'; 2000]).unwrap();
    let err = fails(
        r,
        &["image", "import", bad.to_str().unwrap(), "local/bad"],
        1,
    );
    assert!(err.contains("bad.tar"), "{err}");
}
