//! Registry v2 client: endpoints (mirrors first for docker.io), auth, errors.

pub mod challenge;
pub mod client;

use std::net::IpAddr;

use crate::reference::{Reference, DOCKER_HUB_API};
use crate::Error;

pub use client::Client;

/// One place to ask for an image: a mirror or the registry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http://127.0.0.1:5000`, `https://registry-1.docker.io` (no trailing slash).
    pub base: String,
    /// host[:port] of `base`, for credentials and same-host checks.
    pub host: String,
    pub mirror: bool,
}

/// `MINICOMPOSE_REGISTRY_MIRROR`, comma-separated.
pub fn mirrors_from_env() -> Vec<String> {
    std::env::var("MINICOMPOSE_REGISTRY_MIRROR")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// `MINICOMPOSE_MIRROR_ONLY=1`: docker.io images come from the mirrors
/// only, never from Docker Hub itself. For sandboxes and tests that must
/// send nothing off the machine.
pub fn mirror_only_from_env() -> bool {
    std::env::var("MINICOMPOSE_MIRROR_ONLY").is_ok_and(|v| v == "1" || v == "true")
}

/// Where to look for `r`, in order: mirrors (docker.io images only, as
/// Docker's `registry-mirrors`), then the registry itself (unless
/// [`mirror_only_from_env`] and there is a mirror).
pub fn endpoints(r: &Reference, mirrors: &[String]) -> Result<Vec<Endpoint>, Error> {
    endpoints_with(r, mirrors, mirror_only_from_env())
}

fn endpoints_with(
    r: &Reference,
    mirrors: &[String],
    mirror_only: bool,
) -> Result<Vec<Endpoint>, Error> {
    let mut out = Vec::new();
    if r.is_docker_hub() {
        for m in mirrors {
            out.push(mirror_endpoint(m)?);
        }
        if mirror_only && !out.is_empty() {
            return Ok(out);
        }
        out.push(Endpoint {
            base: format!("https://{DOCKER_HUB_API}"),
            host: DOCKER_HUB_API.to_string(),
            mirror: false,
        });
    } else {
        out.push(registry_endpoint(&r.registry));
    }
    Ok(out)
}

/// A registry host: https, except plain http for loopback (as Docker allows).
pub fn registry_endpoint(host: &str) -> Endpoint {
    let scheme = if is_loopback(host) { "http" } else { "https" };
    Endpoint {
        base: format!("{scheme}://{host}"),
        host: host.to_string(),
        mirror: false,
    }
}

/// `http://host:port[/path]` as given to `--registry-mirror`. Without a scheme:
/// http for loopback, https otherwise.
pub fn mirror_endpoint(url: &str) -> Result<Endpoint, Error> {
    let url = url.trim();
    let with_scheme = if url.contains("://") {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Invalid(format!(
                "invalid registry mirror \"{url}\": only http:// and https:// are supported"
            )));
        }
        url.trim_end_matches('/').to_string()
    } else {
        let host = url.split('/').next().unwrap_or(url);
        let scheme = if is_loopback(host) { "http" } else { "https" };
        format!("{scheme}://{}", url.trim_end_matches('/'))
    };
    let parsed = reqwest::Url::parse(&with_scheme).map_err(|e| {
        Error::Invalid(format!(
            "invalid registry mirror \"{url}\": {e} (expected e.g. http://127.0.0.1:5000)"
        ))
    })?;
    let Some(h) = parsed.host_str() else {
        return Err(Error::Invalid(format!(
            "invalid registry mirror \"{url}\": no host"
        )));
    };
    let host = match parsed.port() {
        Some(p) => format!("{h}:{p}"),
        None => h.to_string(),
    };
    Ok(Endpoint {
        base: with_scheme,
        host,
        mirror: true,
    })
}

/// localhost, 127.0.0.0/8 and ::1, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// What went wrong talking to a registry, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Protocol(String),
}

impl RegistryError {
    /// An answer from a working registry (as opposed to not reaching one).
    pub fn is_definitive(&self) -> bool {
        !matches!(self, RegistryError::Unreachable(_))
    }

    /// Caused by what the user asked for (exit 1) rather than by us or the network.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            RegistryError::NotFound(_)
                | RegistryError::Unauthorized(_)
                | RegistryError::Forbidden(_)
        )
    }

    pub fn into_error(self) -> Error {
        if self.is_user_error() {
            Error::Invalid(self.to_string())
        } else {
            Error::Other(anyhow::Error::new(self))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_only_skips_docker_hub() {
        let r = Reference::parse("busybox").unwrap();
        let mirrors = vec!["http://127.0.0.1:5000".to_string()];
        let e = endpoints_with(&r, &mirrors, true).unwrap();
        assert_eq!(e.len(), 1);
        assert!(e[0].mirror);
        // Without a mirror there is nowhere else to go: Docker Hub stays.
        let e = endpoints_with(&r, &[], true).unwrap();
        assert_eq!(e[0].host, DOCKER_HUB_API);
    }

    #[test]
    fn mirrors_only_for_docker_hub() {
        let mirrors = vec![
            "http://127.0.0.1:5000/".to_string(),
            "mirror.example.com".to_string(),
        ];
        let r = Reference::parse("redis:alpine").unwrap();
        let e = endpoints(&r, &mirrors).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].base, "http://127.0.0.1:5000");
        assert_eq!(e[0].host, "127.0.0.1:5000");
        assert!(e[0].mirror);
        assert_eq!(e[1].base, "https://mirror.example.com");
        assert_eq!(e[2].base, "https://registry-1.docker.io");
        let r = Reference::parse("localhost:5000/x").unwrap();
        assert_eq!(
            endpoints(&r, &mirrors).unwrap(),
            vec![registry_endpoint("localhost:5000")]
        );
        assert_eq!(
            registry_endpoint("localhost:5000").base,
            "http://localhost:5000"
        );
        assert_eq!(
            registry_endpoint("127.1.2.3:80").base,
            "http://127.1.2.3:80"
        );
        assert_eq!(registry_endpoint("[::1]:5000").base, "http://[::1]:5000");
        assert_eq!(registry_endpoint("quay.io").base, "https://quay.io");
        assert_eq!(
            registry_endpoint("128.0.0.1:5000").base,
            "https://128.0.0.1:5000"
        );
        assert!(mirror_endpoint("http://").is_err());
        assert!(mirror_endpoint("ftp://x").is_err());
    }
}
