//! Golden `config` outputs: each directory under testdata/golden holds a compose
//! project and `expected.yaml`, what `docker compose config` prints for it
//! (`{{DIR}}` stands for the project's absolute directory), plus `warnings.txt`.
//! `MC_BLESS=1 cargo test -p mc-compose --test golden` rewrites them; review the diff.

use std::path::{Path, PathBuf};

use mc_compose::{load, Env, LoadOptions};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden")
}

fn check(name: &str) {
    let dir = golden_dir().join(name);
    let env: Env = [("HOME", "/home/test")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let opts = LoadOptions {
        cwd: Some(dir.clone()),
        environment: Some(env),
        ..Default::default()
    };
    let project = load(&opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    let got = project
        .to_yaml()
        .unwrap()
        .replace(&dir.to_string_lossy().into_owned(), "{{DIR}}");
    let warnings = project.warnings.join("\n") + "\n";
    if std::env::var_os("MC_BLESS").is_some() {
        std::fs::write(dir.join("expected.yaml"), &got).unwrap();
        std::fs::write(dir.join("warnings.txt"), &warnings).unwrap();
        return;
    }
    let want = std::fs::read_to_string(dir.join("expected.yaml")).unwrap();
    assert_eq!(got, want, "{name}: config output differs");
    let want_w = std::fs::read_to_string(dir.join("warnings.txt")).unwrap();
    assert_eq!(warnings, want_w, "{name}: warnings differ");
    // The output loads again to the same project (docker's `config` promise).
    let again = LoadOptions {
        files: vec!["-".into()],
        stdin: Some(project.to_yaml().unwrap()),
        cwd: Some(dir.clone()),
        environment: Some(
            [("HOME", "/home/test")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    };
    let reloaded =
        load(&again).unwrap_or_else(|e| panic!("{name}: output does not load again: {e}"));
    assert_eq!(
        reloaded.to_yaml().unwrap(),
        project.to_yaml().unwrap(),
        "{name}: output does not round-trip"
    );
    // JSON output is the same document.
    let as_json: serde_json::Value = serde_json::from_str(&project.to_json().unwrap()).unwrap();
    let from_yaml: serde_json::Value =
        serde_yaml_ng::from_str(&project.to_yaml().unwrap()).unwrap();
    assert_eq!(as_json, from_yaml, "{name}: json and yaml disagree");
}

#[test]
fn seed_hit_counter() {
    check("hit-counter");
}

#[test]
fn wordpress_mysql() {
    check("wordpress-mysql");
}

#[test]
fn nginx_flask_mysql() {
    check("nginx-flask-mysql");
}

#[test]
fn prometheus_grafana() {
    check("prometheus-grafana");
}

#[test]
fn kitchen_sink() {
    check("kitchen-sink");
}

#[test]
fn gitea_postgres() {
    check("gitea-postgres");
}
