//! Registry credentials: `~/.docker/config.json` (`auths`), read and written
//! the way the docker CLI does, so `docker login` and `minicompose login` share them.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine as _;

use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};
use crate::Error;

/// The key docker uses for Docker Hub in config.json.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ****)", self.username)
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic …` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The host part of a config.json key (`https://host:5000/v1/` → `host:5000`).
fn key_host(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Docker Hub's many names all mean the same registry.
fn canonical_host(host: &str) -> &str {
    match host {
        DOCKER_HUB | DOCKER_HUB_API | "index.docker.io" => DOCKER_HUB,
        h => h,
    }
}

/// The key to write for a registry (Docker Hub gets docker's legacy key).
pub fn config_key(registry: &str) -> String {
    if canonical_host(key_host(registry)) == DOCKER_HUB {
        DOCKER_HUB_KEY.to_string()
    } else {
        key_host(registry).to_string()
    }
}

/// Credentials for `registry` (a host[:port]) from a config.json document.
pub fn lookup_in(config: &serde_json::Value, registry: &str) -> Option<Credentials> {
    let auths = config.get("auths")?.as_object()?;
    let want = canonical_host(key_host(registry));
    for (key, entry) in auths {
        if canonical_host(key_host(key)) != want {
            continue;
        }
        if let Some(auth) = entry
            .get("auth")
            .and_then(|a| a.as_str())
            .filter(|a| !a.is_empty())
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (u, p) = text.split_once(':')?;
            return Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            });
        }
        let u = entry.get("username").and_then(|v| v.as_str());
        let p = entry.get("password").and_then(|v| v.as_str());
        if let (Some(u), Some(p)) = (u, p) {
            return Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            });
        }
    }
    None
}

/// Credentials for `registry` from the user's docker config, if any.
pub fn lookup(registry: &str) -> Option<Credentials> {
    let path = config_path()?;
    let bytes = std::fs::read(&path).ok()?;
    let config: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("ignoring {}: not valid JSON ({e})", path.display());
            return None;
        }
    };
    lookup_in(&config, registry)
}

/// Save credentials (as `docker login` does: base64 `auth` under `auths`),
/// keeping everything else in the file. Written 0600, atomically.
pub fn save(registry: &str, creds: &Credentials) -> Result<PathBuf, Error> {
    let path = config_path().ok_or_else(|| {
        Error::Invalid("cannot find the docker config: set HOME or DOCKER_CONFIG".into())
    })?;
    edit_config(&path, |auths| {
        let raw = format!("{}:{}", creds.username, creds.password);
        auths.insert(
            config_key(registry),
            serde_json::json!({ "auth": base64::engine::general_purpose::STANDARD.encode(raw) }),
        );
        true
    })?;
    Ok(path)
}

/// Forget credentials for `registry`; false if there were none.
pub fn remove(registry: &str) -> Result<bool, Error> {
    let Some(path) = config_path() else {
        return Ok(false);
    };
    if !path.exists() {
        return Ok(false);
    }
    let want = canonical_host(key_host(registry)).to_string();
    let mut removed = false;
    edit_config(&path, |auths| {
        let before = auths.len();
        auths.retain(|k, _| canonical_host(key_host(k)) != want);
        removed = auths.len() != before;
        removed
    })?;
    Ok(removed)
}

fn edit_config(
    path: &std::path::Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>) -> bool,
) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut doc: serde_json::Value = match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            Error::Invalid(format!(
                "{} is not valid JSON ({e}): fix or remove it",
                path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("read {}", path.display()))
                .into())
        }
    };
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| Error::Invalid(format!("{} is not a JSON object", path.display())))?;
    let auths = obj
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| Error::Invalid(format!("{}: \"auths\" is not an object", path.display())))?;
    if !edit(auths) {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&doc)?)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("write {}", path.display()))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_credentials_under_docker_keys() {
        let cfg = serde_json::json!({
            "auths": {
                "https://index.docker.io/v1/": { "auth": "dXNlcjpwYXNz" },
                "localhost:5000": { "username": "u2", "password": "p:2" },
                "https://reg.example.com/v2/": { "auth": "YTpiOmM=" }
            }
        });
        let c = lookup_in(&cfg, "docker.io").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("user", "pass"));
        assert_eq!(
            lookup_in(&cfg, "registry-1.docker.io").unwrap().username,
            "user"
        );
        assert_eq!(lookup_in(&cfg, "localhost:5000").unwrap().password, "p:2");
        let c = lookup_in(&cfg, "reg.example.com").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("a", "b:c"));
        assert!(lookup_in(&cfg, "localhost:5001").is_none());
        assert_eq!(config_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(config_key("http://127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn basic_header() {
        let c = Credentials {
            username: "user".into(),
            password: "pass".into(),
        };
        assert_eq!(c.basic_header(), "Basic dXNlcjpwYXNz");
        assert!(!format!("{c:?}").contains("pass"));
    }
}
