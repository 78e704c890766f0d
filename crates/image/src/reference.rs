//! Image references, parsed and normalised exactly as Docker does
//! (distribution/reference `ParseNormalizedNamed`).
//!
//! `redis:alpine` → `docker.io/library/redis:alpine`; the first path component
//! is a registry only if it holds `.` or `:`, is `localhost`, or has capitals.

use std::fmt;

use crate::Error;

/// The registry Docker Hub images live on, in normalised names.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API actually answers.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
const NAME_MAX: usize = 255;

/// A normalised reference: registry, repository path, and tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, `[::1]:5000`, …
    pub registry: String,
    /// `library/redis`, `ns/name`, …
    pub repository: String,
    /// The tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:<64 hex>` when given; it wins over the tag when pulling.
    pub digest: Option<String>,
}

impl Reference {
    /// Parse and normalise a user-written reference.
    pub fn parse(input: &str) -> Result<Reference, Error> {
        parse(input).map_err(|why| Error::Invalid(format!("invalid reference \"{input}\": {why}")))
    }

    /// `registry/repository` (no tag, no digest).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Docker's short form: `redis` for `docker.io/library/redis`, `user/x` for Hub users.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix("library/") {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }

    /// What to ask the registry for: the digest if given, else the tag.
    pub fn object(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same reference with `digest` replacing any tag.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn parse(input: &str) -> Result<Reference, String> {
    if input.is_empty() {
        return Err("empty reference".into());
    }
    if input.len() == 64
        && input
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(
            "a 64-character hexadecimal string is an image ID, not a repository name".into(),
        );
    }
    let (rest, digest) = match input.split_once('@') {
        Some((n, d)) => {
            validate_digest(d)?;
            (n, Some(d.to_string()))
        }
        None => (input, None),
    };
    // A tag is a ':' after the last '/', so a registry port is never taken for one.
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let split = last_slash + i;
            let tag = &rest[split + 1..];
            validate_tag(tag)?;
            (&rest[..split], Some(tag.to_string()))
        }
        None => (rest, None),
    };
    if name.is_empty() {
        return Err("missing repository name".into());
    }
    let (registry, mut repository) = split_registry(name);
    if registry == DOCKER_HUB && !repository.contains('/') {
        repository = format!("library/{repository}");
    }
    if registry != DOCKER_HUB {
        validate_domain(&registry)?;
    }
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "repository name \"{repository}\" must be lowercase"
        ));
    }
    validate_path(&repository)?;
    if registry.len() + 1 + repository.len() > NAME_MAX {
        return Err(format!(
            "repository name must not be longer than {NAME_MAX} characters"
        ));
    }
    let tag = match (&tag, &digest) {
        (None, None) => Some("latest".to_string()),
        _ => tag,
    };
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Docker's `splitDockerDomain`.
fn split_registry(name: &str) -> (String, String) {
    let (registry, rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    let registry = if registry == "index.docker.io" {
        DOCKER_HUB.to_string()
    } else {
        registry
    };
    (registry, rest)
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let bad = || format!("registry \"{domain}\" is not a valid host[:port]");
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        match after {
            "" => ("", None),
            p => ("", Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    if !domain.starts_with('[') {
        if host.is_empty() {
            return Err(bad());
        }
        for comp in host.split('.') {
            let ok = !comp.is_empty()
                && comp.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !comp.starts_with('-')
                && !comp.ends_with('-');
            if !ok {
                return Err(bad());
            }
        }
    }
    Ok(())
}

/// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | __ | -+
fn validate_path(path: &str) -> Result<(), String> {
    for comp in path.split('/') {
        if !valid_path_component(comp) {
            return Err(format!(
                "repository name \"{path}\" has an invalid component \"{comp}\" \
                 (lowercase letters, digits and single '.', '_', '__' or '-' between them)"
            ));
        }
    }
    Ok(())
}

fn valid_path_component(comp: &str) -> bool {
    let b = comp.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run, then an alphanumeric must follow.
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &comp[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// tag := [\w][\w.-]{0,127}
fn validate_tag(tag: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag \"{tag}\" is invalid (1 to 128 of letters, digits, '_', '.', '-'; not starting with '.' or '-')"
        ))
    }
}

/// Only sha256 digests are supported (as Docker).
pub fn validate_digest(d: &str) -> Result<(), String> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err(format!("digest \"{d}\" is not algorithm:hex"));
    };
    if alg != "sha256" {
        return Err(format!(
            "digest algorithm \"{alg}\" is not supported (only sha256)"
        ));
    }
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "digest \"{d}\" must be sha256: followed by 64 lowercase hex digits"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    #[test]
    fn normalises_like_docker() {
        let table: &[(&str, &str)] = &[
            ("redis:alpine", "docker.io/library/redis:alpine"),
            ("busybox", "docker.io/library/busybox:latest"),
            ("test_com", "docker.io/library/test_com:latest"),
            ("test.com:tag", "docker.io/library/test.com:tag"),
            ("test.com:5000", "docker.io/library/test.com:5000"),
            ("test.com/repo:tag", "test.com/repo:tag"),
            ("test:5000/repo", "test:5000/repo:latest"),
            ("test:5000/repo:tag", "test:5000/repo:tag"),
            ("localhost:5000/x", "localhost:5000/x:latest"),
            ("localhost/foo", "localhost/foo:latest"),
            ("foo_bar.com:8080", "docker.io/library/foo_bar.com:8080"),
            ("foo/foo_bar.com:8080", "docker.io/foo/foo_bar.com:8080"),
            (
                "sub-dom1.foo.com/bar/baz/quux",
                "sub-dom1.foo.com/bar/baz/quux:latest",
            ),
            ("index.docker.io/foo", "docker.io/library/foo:latest"),
            ("index.docker.io/u/foo", "docker.io/u/foo:latest"),
            ("docker.io/redis", "docker.io/library/redis:latest"),
            ("user/repo", "docker.io/user/repo:latest"),
            (
                "lowercase:Uppercase",
                "docker.io/library/lowercase:Uppercase",
            ),
            ("a__b-c---d/f.g", "docker.io/a__b-c---d/f.g:latest"),
            ("Foo/bar", "Foo/bar:latest"),
            ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000/repo:latest"),
            ("127.0.0.1:5000/ns/name:v1", "127.0.0.1:5000/ns/name:v1"),
        ];
        for (input, want) in table {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), *want, "{input}");
        }
    }

    #[test]
    fn digests() {
        let r = Reference::parse(&format!("test:5000/repo@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.object(), D);
        let r = Reference::parse(&format!("host:5000/ns/name:tag@{D}")).unwrap();
        assert_eq!(r.registry, "host:5000");
        assert_eq!(r.repository, "ns/name");
        assert_eq!(r.tag.as_deref(), Some("tag"));
        assert_eq!(r.object(), D, "the digest wins over the tag");
    }

    #[test]
    fn rejects_invalid_with_reason() {
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            (":justtag", "missing repository"),
            (&format!("@{D}"), "missing repository"),
            ("repo@sha256:ffff", "64 lowercase hex"),
            (&format!("validname@invalid:{}", &D[7..]), "not supported"),
            ("Uppercase:tag", "must be lowercase"),
            ("test:5000/Uppercase/lowercase:tag", "must be lowercase"),
            ("aa/asdf$$^/aa", "invalid component"),
            ("a/-b", "invalid component"),
            ("a/b-", "invalid component"),
            ("a/b..c", "invalid component"),
            ("a/b___c", "invalid component"),
            ("a//b", "invalid component"),
            ("repo:-tag", "tag"),
            ("repo:", "tag"),
            ("repo:a:b", "invalid component"),
            ("[fe80::1%eth0]:5000/repo", "host[:port]"),
            ("-bad.com:5000/repo", "host[:port]"),
            ("a_b.com/repo", "host[:port]"),
            ("bad.com:port/repo", "host[:port]"),
            (&"a".repeat(64), "image ID"),
            (&format!("{}/b", "a".repeat(256)), "255"),
        ];
        for (input, why) in table {
            match Reference::parse(input) {
                Ok(r) => panic!("{input:?} parsed as {r}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(e.is_user_error());
                    assert!(msg.contains(why), "{input:?}: {msg}");
                }
            }
        }
    }

    #[test]
    fn familiar_names() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar_name();
        assert_eq!(f("redis"), "redis");
        assert_eq!(f("user/repo"), "user/repo");
        assert_eq!(f("localhost:5000/x"), "localhost:5000/x");
    }
}
