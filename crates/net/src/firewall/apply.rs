//! Running `nft -f -`, under the host-wide lock, only for what changed.
//!
//! What was last applied for a root is remembered in a stamp under /run
//! (tmpfs: gone after a reboot, when the rules are gone too). A command
//! whose rendered rules match the stamp runs no nft at all; one that only
//! changes published ports rewrites only the ports chain. The stamp is
//! removed before nft runs, so a process killed in between leaves none and
//! the next command rewrites everything.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;

use super::rules::{RuleSet, TABLE};
use crate::lock::{NetLock, HOST_LOCK};
use crate::Error;

/// Where the stamps of every root live (one file per root key).
const STAMP_DIR: &str = "/run/mc-nft";

/// Separates the base part from the ports part in a stamp.
const STAMP_SPLIT: &str = "#ports\n";

/// Whether the `nft` tool is installed (looked up in PATH once per process).
pub fn nft_available() -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join("nft"))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn nft(script: &str) -> Result<(), Error> {
    for line in script.lines() {
        tracing::info!(target: "explain::nft", "{line}");
    }
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

fn stamp_path(key: &str) -> PathBuf {
    Path::new(STAMP_DIR).join(key)
}

/// The (base, ports) parts last applied for `key`, if known.
fn read_stamp(key: &str) -> Option<(String, String)> {
    let text = std::fs::read_to_string(stamp_path(key)).ok()?;
    let (base, ports) = text.split_once(STAMP_SPLIT)?;
    Some((base.to_string(), ports.to_string()))
}

fn remove_stamp(key: &str) -> Result<(), Error> {
    match std::fs::remove_file(stamp_path(key)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("removing {}", stamp_path(key).display()))
            .into()),
    }
}

fn write_stamp(key: &str, rules: &RuleSet) -> Result<(), Error> {
    std::fs::create_dir_all(STAMP_DIR).with_context(|| format!("creating {STAMP_DIR}"))?;
    let path = stamp_path(key);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{}{STAMP_SPLIT}{}", rules.base, rules.ports))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Whether no other root has chains in the live table (stamps are not
/// trusted here: a root whose directory was deleted leaves its stamp).
fn only_root(key: &str) -> Result<bool, Error> {
    let out = Command::new("nft")
        .args(["list", "table"])
        .args(TABLE.split(' '))
        .stderr(Stdio::null())
        .output()
        .context("listing nft table")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let suffix = format!("-{key}");
    Ok(text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("chain "))
        .filter_map(|l| l.split_whitespace().next())
        .all(|chain| chain.ends_with(&suffix)))
}

/// Make the root's chains match `rules`, running nft only for the parts
/// that differ from what was last applied. An empty root's chains are
/// deleted, with the table in the same transaction when no other root has
/// chains.
pub fn apply(key: &str, rules: &RuleSet) -> Result<(), Error> {
    let _host = NetLock::acquire(Path::new(HOST_LOCK))?;
    let last = read_stamp(key);
    if rules.empty {
        let mut script = rules.base.clone();
        if only_root(key)? {
            script.push_str(&format!("delete table {TABLE}\n"));
        }
        remove_stamp(key)?;
        return nft(&script);
    }
    let script = match last {
        Some((base, ports)) if base == rules.base && ports == rules.ports => {
            tracing::info!(target: "explain::nft", "rules unchanged: nft not run");
            return Ok(());
        }
        Some((base, _)) if base == rules.base => rules.ports.clone(),
        _ => rules.script(),
    };
    remove_stamp(key)?;
    nft(&script)?;
    write_stamp(key, rules)
}
