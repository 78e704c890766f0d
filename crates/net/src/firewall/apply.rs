//! Running `nft -f -` with a rendered script, under the host-wide lock.

use std::io::Write as _;
use std::process::{Command, Stdio};

use anyhow::Context as _;

use super::rules::{RuleSet, TABLE};
use crate::lock::{NetLock, HOST_LOCK};
use crate::Error;

/// Whether the `nft` tool is installed (asked once per process).
pub fn nft_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("nft")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn nft(script: &str) -> Result<(), Error> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Other(anyhow::anyhow!(
                    "nft not found: install nftables (apt-get install nftables) to use bridge networks"
                ))
            } else {
                Error::Other(anyhow::Error::new(e).context("running nft"))
            }
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .context("writing to nft")?;
    }
    let out = child.wait_with_output().context("waiting for nft")?;
    if !out.status.success() {
        return Err(Error::Other(anyhow::anyhow!(
            "nft failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Apply one root's rules atomically; when the table is left without
/// chains (no root has networks), delete it too.
pub fn apply(rules: &RuleSet) -> Result<(), Error> {
    let _host = NetLock::acquire(std::path::Path::new(HOST_LOCK))?;
    for line in rules.script.lines() {
        tracing::info!(target: "explain::nft", "{line}");
    }
    nft(&rules.script)?;
    if rules.empty {
        let out = Command::new("nft")
            .args(["list", "table"])
            .args(TABLE.split(' '))
            .output()
            .context("listing nft table")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && !text.contains("chain ") {
            tracing::info!(target: "explain::nft", "delete table {TABLE}");
            nft(&format!("delete table {TABLE}\n"))?;
        }
    }
    Ok(())
}
