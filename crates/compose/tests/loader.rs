//! Table-driven loader tests in the style of compose-go's: each case writes a small
//! project to a temporary directory, loads it and checks parts of the JSON output.

use std::path::Path;

use mc_compose::{load, Env, LoadOptions, Project};
use serde_json::{json, Value};

struct Case<'a> {
    name: &'a str,
    files: &'a [(&'a str, &'a str)],
    env: &'a [(&'a str, &'a str)],
    opts: fn(&mut LoadOptions),
    /// (JSON pointer into `config --format json`, expected value)
    want: &'a [(&'a str, Value)],
}

fn none(_: &mut LoadOptions) {}

fn run(
    files: &[(&str, &str)],
    env: &[(&str, &str)],
    opts: fn(&mut LoadOptions),
) -> (tempfile::TempDir, Result<Project, String>) {
    let dir = tempfile::Builder::new()
        .prefix("mc-compose-test")
        .tempdir()
        .unwrap();
    let root = dir.path().join("proj");
    for (name, text) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    std::fs::create_dir_all(&root).unwrap();
    let mut env: Env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.entry("HOME".into()).or_insert("/home/test".into());
    let mut o = LoadOptions {
        cwd: Some(root.clone()),
        environment: Some(env),
        ..Default::default()
    };
    opts(&mut o);
    let r = load(&o).map_err(|e| e.to_string());
    (dir, r)
}

fn json_of(p: &Project, root: &Path) -> Value {
    let text = p
        .to_json()
        .unwrap()
        .replace(&root.join("proj").to_string_lossy().into_owned(), "/P");
    serde_json::from_str(&text).unwrap()
}

fn check_cases(cases: &[Case]) {
    for c in cases {
        let (dir, r) = run(c.files, c.env, c.opts);
        let p = r.unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let j = json_of(&p, dir.path());
        for (ptr, want) in c.want {
            let got = j
                .pointer(ptr)
                .cloned()
                .unwrap_or(Value::String("<missing>".into()));
            assert_eq!(
                &got,
                want,
                "{}: {ptr}\n{}",
                c.name,
                serde_json::to_string_pretty(&j).unwrap()
            );
        }
    }
}

const WEB: &str = "services:\n  web:\n    image: busybox\n";

#[test]
fn syntax_normalization() {
    check_cases(&[
        Case {
            name: "build string is the context",
            files: &[("compose.yaml", "services:\n  a:\n    build: ./app\n  b:\n    build: {context: ./sub/../x, dockerfile: D, args: [A=1, B]}\n")],
            env: &[("B", "from-env")],
            opts: none,
            want: &[
                ("/services/a/build", json!({"context": "/P/app", "dockerfile": "Dockerfile"})),
                ("/services/b/build/context", json!("/P/x")),
                ("/services/b/build/args", json!({"A": "1", "B": "from-env"})),
            ],
        },
        Case {
            name: "environment list, map, bare names",
            files: &[("compose.yaml", "services:\n  a:\n    image: x\n    environment: [A=1, 'B=x=y', C, D]\n  b:\n    image: x\n    environment: {N: 1, T: true, E: '', U: null}\n")],
            env: &[("C", "from-env")],
            opts: none,
            want: &[
                ("/services/a/environment", json!({"A": "1", "B": "x=y", "C": "from-env", "D": null})),
                ("/services/b/environment", json!({"E": "", "N": "1", "T": "true", "U": null})),
            ],
        },
        Case {
            name: "env_file string, list, long form with required",
            files: &[
                ("compose.yaml", "services:\n  a:\n    image: x\n    env_file: a.env\n    environment: [OVER=env]\n  b:\n    image: x\n    env_file: [a.env, {path: missing.env, required: false}]\n"),
                ("a.env", "FROM_FILE=1\nOVER=file\n"),
            ],
            env: &[],
            opts: none,
            want: &[
                ("/services/a/environment", json!({"FROM_FILE": "1", "OVER": "env"})),
                ("/services/a/env_file", json!([{"path": "/P/a.env", "required": true}])),
                ("/services/b/env_file/1", json!({"path": "/P/missing.env", "required": false})),
            ],
        },
        Case {
            name: "ports short and long",
            files: &[("compose.yaml", "services:\n  a:\n    image: x\n    ports: [80, '8000:5000', '127.0.0.1:53:53/udp', '[::1]:6001:6001', '3000-3001', {target: 90, published: 9090, host_ip: 0.0.0.0}]\n")],
            env: &[],
            opts: none,
            want: &[
                ("/services/a/ports/0", json!({"mode": "ingress", "target": 80, "protocol": "tcp"})),
                ("/services/a/ports/1", json!({"mode": "ingress", "target": 5000, "published": "8000", "protocol": "tcp"})),
                ("/services/a/ports/2", json!({"mode": "ingress", "host_ip": "127.0.0.1", "target": 53, "published": "53", "protocol": "udp"})),
                ("/services/a/ports/3/host_ip", json!("::1")),
                ("/services/a/ports/4/target", json!(3000)),
                ("/services/a/ports/5/target", json!(3001)),
                ("/services/a/ports/6", json!({"mode": "ingress", "host_ip": "0.0.0.0", "target": 90, "published": "9090", "protocol": "tcp"})),
            ],
        },
        Case {
            name: "volumes short to long, tmpfs, expose",
            files: &[("compose.yaml", "services:\n  a:\n    image: x\n    volumes: ['./data:/data:ro', 'named:/n', '/anon', '~/c:/c', {type: tmpfs, target: /t, tmpfs: {size: 1m}}]\n    tmpfs: /run\n    expose: [80, '90']\nvolumes:\n  named: {}\n")],
            env: &[],
            opts: none,
            want: &[
                ("/services/a/volumes/0", json!({"type": "bind", "source": "/P/data", "target": "/data", "read_only": true, "bind": {"create_host_path": true}})),
                ("/services/a/volumes/1", json!({"type": "volume", "source": "named", "target": "/n", "volume": {}})),
                ("/services/a/volumes/2", json!({"type": "volume", "target": "/anon", "volume": {}})),
                ("/services/a/volumes/3/source", json!("/home/test/c")),
                ("/services/a/volumes/4", json!({"type": "tmpfs", "target": "/t", "tmpfs": {"size": 1048576}})),
                ("/services/a/tmpfs", json!(["/run"])),
                ("/services/a/expose", json!(["80", "90"])),
                ("/volumes/named/name", json!("proj_named")),
            ],
        },
        Case {
            name: "depends_on, healthcheck, restart",
            files: &[("compose.yaml", "services:\n  a:\n    image: x\n    depends_on: [b]\n    restart: on-failure:3\n  b:\n    image: x\n    healthcheck: {test: curl -f http://x, interval: 1m30s, timeout: 500ms, retries: 3, start_period: 0s}\n  c:\n    image: x\n    healthcheck: {disable: true}\n    depends_on: {b: {condition: service_healthy, required: false}}\n")],
            env: &[],
            opts: none,
            want: &[
                ("/services/a/depends_on", json!({"b": {"condition": "service_started", "required": true}})),
                ("/services/a/restart", json!("on-failure:3")),
                ("/services/b/healthcheck", json!({"test": ["CMD-SHELL", "curl -f http://x"], "interval": "1m30s", "timeout": "500ms", "retries": 3, "start_period": "0s"})),
                ("/services/c/healthcheck/test", json!(["NONE"])),
                ("/services/c/depends_on/b", json!({"condition": "service_healthy", "required": false})),
            ],
        },
        Case {
            name: "networks list to map, aliases, ipv4, default network",
            files: &[("compose.yaml", "services:\n  a:\n    image: x\n    networks: [front]\n  b:\n    image: x\n    networks: {back: {aliases: [db], ipv4_address: 172.16.0.5}}\n  c:\n    image: x\nnetworks:\n  front:\n  back:\n    external: true\n")],
            env: &[],
            opts: none,
            want: &[
                ("/services/a/networks", json!({"front": null})),
                ("/services/b/networks/back", json!({"aliases": ["db"], "ipv4_address": "172.16.0.5"})),
                ("/services/c/networks", json!({"default": null})),
                ("/networks", json!({"back": {"name": "back", "external": true}, "default": {"name": "proj_default"}, "front": {"name": "proj_front"}})),
            ],
        },
        Case {
            name: "resources, ulimits, sysctls, extra_hosts, labels, scale",
            files: &[("compose.yaml", "services:\n  a:\n    image: x\n    mem_limit: 512m\n    cpus: 0.5\n    shm_size: 64m\n    deploy: {replicas: 2, resources: {limits: {cpus: '1.5', memory: 1g, pids: 100}}}\n    ulimits: {nproc: 65535, nofile: {soft: 1024, hard: 2048}}\n    sysctls: [net.core.somaxconn=1024]\n    extra_hosts: ['somehost:162.242.195.82', 'v6=::1']\n    labels: {com.example: x}\n  b:\n    image: x\n    scale: 3\n")],
            env: &[],
            opts: none,
            want: &[
                ("/services/a/mem_limit", json!("536870912")),
                ("/services/a/cpus", json!(0.5)),
                ("/services/a/shm_size", json!("67108864")),
                ("/services/a/deploy", json!({"replicas": 2, "resources": {"limits": {"cpus": 1.5, "memory": "1073741824", "pids": 100}}})),
                ("/services/a/ulimits", json!({"nofile": {"soft": 1024, "hard": 2048}, "nproc": 65535})),
                ("/services/a/sysctls", json!({"net.core.somaxconn": "1024"})),
                ("/services/a/extra_hosts", json!(["somehost=162.242.195.82", "v6=::1"])),
                ("/services/a/labels", json!({"com.example": "x"})),
                ("/services/b/scale", json!(3)),
            ],
        },
        Case {
            name: "command and entrypoint strings are split like a shell",
            files: &[("compose.yaml", "services:\n  a:\n    image: x\n    command: sh -c 'echo \"a b\"'\n    entrypoint: []\n")],
            env: &[],
            opts: none,
            want: &[("/services/a/command", json!(["sh", "-c", "echo \"a b\""])), ("/services/a/entrypoint", json!([]))],
        },
        Case {
            name: "anchors, merge keys and extension fields",
            files: &[("compose.yaml", "x-common: &common\n  restart: always\n  environment: {A: '1'}\nservices:\n  a:\n    <<: *common\n    image: x\n  b:\n    <<: *common\n    image: y\n    restart: 'no'\n    x-custom: 1\n")],
            env: &[],
            opts: none,
            want: &[
                ("/services/a/restart", json!("always")),
                ("/services/a/environment", json!({"A": "1"})),
                ("/services/b/restart", json!("no")),
                ("/services/b/x-custom", json!(1)),
                ("/x-common", json!({"restart": "always", "environment": {"A": "1"}})),
            ],
        },
    ]);
}

#[test]
fn interpolation_in_files() {
    check_cases(&[
        Case {
            name: "all forms from env and .env; OS env wins",
            files: &[
                ("compose.yaml", "services:\n  web:\n    image: \"${IMG}:${TAG:-latest}\"\n    environment:\n      A: ${FROM_DOTENV}\n      B: $${NOT_VAR}\n      C: ${EMPTY:-dflt}\n      D: ${SET:+alt}\n      E: ${UNSET_VAR}\n    ports: ['${PORT}:80']\n"),
                (".env", "IMG=fromfile\nFROM_DOTENV=dot\nPORT=1234\n"),
            ],
            env: &[("IMG", "busybox"), ("SET", "1"), ("EMPTY", "")],
            opts: none,
            want: &[
                ("/services/web/image", json!("busybox:latest")),
                ("/services/web/environment", json!({"A": "dot", "B": "$${NOT_VAR}", "C": "dflt", "D": "alt", "E": ""})),
                ("/services/web/ports/0/published", json!("1234")),
            ],
        },
        Case {
            name: "--env-file replaces .env",
            files: &[("compose.yaml", "services:\n  web:\n    image: ${IMG}\n"), (".env", "IMG=dot\n"), ("other.env", "IMG=other\n")],
            env: &[],
            opts: |o| o.env_files = vec!["other.env".into()],
            want: &[("/services/web/image", json!("other"))],
        },
        Case {
            name: "--no-interpolate keeps the text",
            files: &[("compose.yaml", "services:\n  web:\n    image: ${IMG:-x}\n")],
            env: &[],
            opts: |o| o.no_interpolate = true,
            want: &[("/services/web/image", json!("${IMG:-x}"))],
        },
    ]);
    // The project holds the real value; `config` output escapes it again.
    let (_d, r) = run(
        &[(
            "compose.yaml",
            "services:\n  web:\n    image: x\n    user: $$HOME\n",
        )],
        &[],
        none,
    );
    assert_eq!(r.unwrap().services["web"].user.as_deref(), Some("$HOME"));
    let (_d, r) = run(
        &[("compose.yaml", "services:\n  web:\n    image: ${NOPE}x\n")],
        &[],
        none,
    );
    assert_eq!(
        r.unwrap().warnings,
        vec!["The \"NOPE\" variable is not set. Defaulting to a blank string."]
    );
    let (_d, r) = run(
        &[(
            "compose.yaml",
            "services:\n  web:\n    image: busybox\n    user: ${NEEDED:?set NEEDED please}\n",
        )],
        &[],
        none,
    );
    assert_eq!(r.unwrap_err(), "compose.yaml:4:11: services.web.user: required variable NEEDED is missing a value: set NEEDED please");
}

#[test]
fn merging_files() {
    check_cases(&[
        Case {
            name: "override file picked up without -f",
            files: &[("compose.yaml", "services:\n  web:\n    image: a\n    ports: ['80:80']\n"), ("compose.override.yaml", "services:\n  web:\n    image: b\n    ports: ['81:81']\n")],
            env: &[],
            opts: none,
            want: &[("/services/web/image", json!("b")), ("/services/web/ports/1/published", json!("81"))],
        },
        Case {
            name: "-f files merge in order, override file ignored",
            files: &[
                ("one.yml", "services:\n  web:\n    image: a\n    command: [x, y]\n    environment: [A=1]\n"),
                ("two.yml", "services:\n  web:\n    command: z\n    environment: {B: 2}\n"),
                ("compose.override.yaml", "services:\n  web:\n    image: never\n"),
            ],
            env: &[],
            opts: |o| o.files = vec!["one.yml".into(), "two.yml".into()],
            want: &[("/services/web/image", json!("a")), ("/services/web/command", json!(["z"])), ("/services/web/environment", json!({"A": "1", "B": "2"}))],
        },
        Case {
            name: "COMPOSE_FILE with a custom separator",
            files: &[("a.yml", WEB), ("b.yml", "services:\n  web:\n    user: nobody\n")],
            env: &[("COMPOSE_FILE", "a.yml;b.yml"), ("COMPOSE_PATH_SEPARATOR", ";")],
            opts: none,
            want: &[("/services/web/user", json!("nobody"))],
        },
        Case {
            name: "!reset and !override",
            files: &[
                ("a.yml", "services:\n  web:\n    image: a\n    user: nobody\n    ports: ['80:80']\n    environment: {A: 1, B: 2}\n"),
                ("b.yml", "services:\n  web:\n    ports: !reset []\n    user: !reset null\n    environment: !override {C: 3}\n"),
            ],
            env: &[],
            opts: |o| o.files = vec!["a.yml".into(), "b.yml".into()],
            want: &[
                ("/services/web/ports", json!("<missing>")),
                ("/services/web/user", json!("<missing>")),
                ("/services/web/environment", json!({"C": "3"})),
            ],
        },
        Case {
            name: "files found in a parent directory; relative paths from its dir",
            files: &[("compose.yaml", "services:\n  web:\n    build: ./app\n"), ("sub/deeper/.keep", "")],
            env: &[],
            opts: |o| o.cwd = Some(o.cwd.clone().unwrap().join("sub/deeper")),
            want: &[("/services/web/build/context", json!("/P/app")), ("/name", json!("proj"))],
        },
        Case {
            name: "stdin",
            files: &[],
            env: &[],
            opts: |o| {
                o.files = vec!["-".into()];
                o.stdin = Some("name: fromstdin\nservices:\n  s:\n    image: x\n".into());
            },
            want: &[("/name", json!("fromstdin")), ("/services/s/image", json!("x"))],
        },
    ]);
    let (_d, r) = run(
        &[("compose.yaml", WEB), ("docker-compose.yml", WEB)],
        &[],
        none,
    );
    assert!(r.unwrap().warnings[0].starts_with("Found multiple config files"));
}

#[test]
fn extends_and_include() {
    check_cases(&[
        Case {
            name: "extends in the same file",
            files: &[("compose.yaml", "services:\n  base:\n    image: a\n    environment: {A: 1}\n    depends_on: [other]\n  other:\n    image: o\n  web:\n    extends: base\n    environment: {B: 2}\n")],
            env: &[],
            opts: none,
            want: &[("/services/web/image", json!("a")), ("/services/web/environment", json!({"A": "1", "B": "2"})), ("/services/web/depends_on", json!("<missing>"))],
        },
        Case {
            name: "extends from another file resolves its relative paths there",
            files: &[
                ("compose.yaml", "services:\n  web:\n    extends: {file: common/base.yml, service: app}\n    image: mine\n"),
                ("common/base.yml", "services:\n  app:\n    build: ./src\n    volumes: ['./data:/data']\n    image: base\n"),
            ],
            env: &[],
            opts: none,
            want: &[
                ("/services/web/image", json!("mine")),
                ("/services/web/build/context", json!("/P/common/src")),
                ("/services/web/volumes/0/source", json!("/P/common/data")),
            ],
        },
        Case {
            name: "include adds services with their own paths",
            files: &[
                ("compose.yaml", "include:\n  - sub/compose.yaml\nservices:\n  web:\n    image: w\n    depends_on: [db]\n"),
                ("sub/compose.yaml", "services:\n  db:\n    build: .\n    env_file: db.env\n"),
                ("sub/db.env", "X=1\n"),
            ],
            env: &[],
            opts: none,
            want: &[("/services/db/build/context", json!("/P/sub")), ("/services/db/environment", json!({"X": "1"})), ("/services/web/depends_on/db/condition", json!("service_started"))],
        },
    ]);
    let cycle = run(
        &[(
            "compose.yaml",
            "services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
        )],
        &[],
        none,
    )
    .1
    .unwrap_err();
    assert!(cycle.contains("circular reference: a -> b -> a"), "{cycle}");
    let cycle = run(
        &[
            ("compose.yaml", "include: [b.yml]\nservices: {}\n"),
            ("b.yml", "include: [compose.yaml]\n"),
        ],
        &[],
        none,
    )
    .1
    .unwrap_err();
    assert!(cycle.contains("include cycle"), "{cycle}");
    let conflict = run(
        &[
            (
                "compose.yaml",
                "include: [b.yml]\nservices:\n  s:\n    image: a\n",
            ),
            ("b.yml", "services:\n  s:\n    image: b\n"),
        ],
        &[],
        none,
    )
    .1
    .unwrap_err();
    assert!(
        conflict.contains("services.s conflicts with the imported resource"),
        "{conflict}"
    );
}

#[test]
fn profiles() {
    let files: &[(&str, &str)] = &[("compose.yaml", "services:\n  web:\n    image: a\n  debug:\n    image: b\n    profiles: [dev]\n  all:\n    image: c\n    profiles: [ops, dev]\n")];
    let names =
        |r: Result<Project, String>| r.unwrap().services.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(run(files, &[], none).1), ["web"]);
    assert_eq!(
        names(run(files, &[], |o| o.profiles = vec!["dev".into()]).1),
        ["all", "debug", "web"]
    );
    assert_eq!(
        names(run(files, &[("COMPOSE_PROFILES", "ops")], none).1),
        ["all", "web"]
    );
    assert_eq!(
        names(run(files, &[("COMPOSE_PROFILES", "*")], none).1),
        ["all", "debug", "web"]
    );
    let e = run(&[("compose.yaml", "services:\n  web:\n    image: a\n    depends_on: [db]\n  db:\n    image: b\n    profiles: [x]\n")], &[], none).1.unwrap_err();
    assert!(
        e.contains("was pulled in as a dependency of service \"web\" but is not enabled"),
        "{e}"
    );
}

#[test]
fn project_names() {
    let n = |files: &[(&str, &str)], env: &[(&str, &str)], o: fn(&mut LoadOptions)| {
        run(files, env, o).1.map(|p| p.name)
    };
    assert_eq!(n(&[("compose.yaml", WEB)], &[], none).unwrap(), "proj");
    assert_eq!(
        n(
            &[("compose.yaml", "name: named\nservices: {}\n")],
            &[],
            none
        )
        .unwrap(),
        "named"
    );
    assert_eq!(
        n(
            &[
                ("compose.yaml", WEB),
                (".env", "COMPOSE_PROJECT_NAME=fromdotenv\n")
            ],
            &[],
            none
        )
        .unwrap(),
        "fromdotenv"
    );
    assert_eq!(
        n(
            &[("compose.yaml", "name: named\nservices: {}\n")],
            &[("COMPOSE_PROJECT_NAME", "env")],
            |o| o.project_name = Some("flag".into())
        )
        .unwrap(),
        "flag"
    );
    assert!(n(&[("compose.yaml", WEB)], &[], |o| o.project_name =
        Some("Bad!".into()))
    .unwrap_err()
    .contains("invalid project name \"Bad!\""));
    assert_eq!(
        n(&[("compose.yaml", WEB), ("other/.keep", "")], &[], |o| o
            .project_directory =
            Some("other".into()))
        .unwrap(),
        "other"
    );
}

#[test]
fn obsolete_version_and_ignored_keys_warn_once() {
    let (_d, r) = run(&[("a.yml", "version: '3'\nservices:\n  w:\n    image: x\n    runtime: runc\n  v:\n    image: x\n    runtime: runc\n"), ("b.yml", "version: '3.8'\n")], &[], |o| o.files = vec!["a.yml".into(), "b.yml".into()]);
    let w = r.unwrap().warnings;
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("`version` is obsolete"));
    assert_eq!(
        w[1],
        "services.*.runtime is parsed but not acted on by minicompose yet (used by: w, v)"
    );
}

#[test]
fn optional_dependencies_and_compose_file_from_dotenv() {
    let (_d, r) = run(
        &[("compose.yaml", "services:\n  web:\n    image: a\n    depends_on:\n      ghost: {condition: service_started, required: false}\n      dbg: {condition: service_started, required: false}\n  dbg:\n    image: b\n    profiles: [debug]\n")],
        &[],
        none,
    );
    let p = r.unwrap();
    assert!(p.services["web"].depends_on.is_empty());
    assert_eq!(
        p.warnings,
        vec!["service \"web\" depends on undefined service \"ghost\" (not required, ignored)"]
    );
    let (_d, r) = run(
        &[("main.yml", WEB), (".env", "COMPOSE_FILE=main.yml\n")],
        &[],
        none,
    );
    assert_eq!(r.unwrap().services["web"].image.as_deref(), Some("busybox"));
}
