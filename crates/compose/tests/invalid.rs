//! The invalid-file corpus: every file under testdata/invalid starts with
//! `# expect: <the exact error>`. Each must fail with that one-line message, which
//! names the file and (for anything inside the file) the line and column.
//! `MC_BLESS=1` rewrites the expectations; review the diff.

use std::path::Path;

use mc_compose::{load, Env, LoadOptions};

#[test]
fn invalid_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/invalid");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 50,
        "the corpus must hold at least 50 files, has {}",
        names.len()
    );
    let bless = std::env::var_os("MC_BLESS").is_some();
    let mut failures = Vec::new();
    for name in &names {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let (first, rest) = text.split_once('\n').unwrap();
        let want = first
            .strip_prefix("# expect: ")
            .unwrap_or_else(|| panic!("{name}: first line must be `# expect: …`"));
        let env: Env = [("HOME", "/home/test")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let opts = LoadOptions {
            files: vec![name.into()],
            cwd: Some(dir.clone()),
            environment: Some(env),
            ..Default::default()
        };
        let got = match load(&opts) {
            Ok(_) => "<loaded without error>".to_string(),
            Err(e) => {
                assert!(e.is_user_error(), "{name}: not marked as a user error: {e}");
                // Absolute paths differ between checkouts.
                e.to_string()
                    .replace(&format!("{}/", dir.display()), "{{DIR}}/")
            }
        };
        if bless {
            std::fs::write(&path, format!("# expect: {got}\n{rest}")).unwrap();
            continue;
        }
        assert!(!got.contains('\n'), "{name}: error is not one line: {got}");
        assert!(
            got.starts_with(&format!("{name}:")),
            "{name}: error does not name the file: {got}"
        );
        if got != want {
            failures.push(format!("{name}:\n  want: {want}\n  got:  {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
