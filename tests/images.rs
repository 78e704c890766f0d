//! End-to-end: pulling from the local registry (filled in by the images work).

#[test]
fn binary_reports_version() {
    let out = std::process::Command::new(mc_e2e::bin())
        .arg("version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("minicompose version v"));
}
