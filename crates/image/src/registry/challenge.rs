//! `WWW-Authenticate` challenges (RFC 7235): `Bearer realm="…",service="…"`.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// The first challenge we can answer (Bearer preferred over Basic).
pub fn parse(header: &str) -> Option<Challenge> {
    let mut found = None;
    for (scheme, params) in split_challenges(header) {
        match scheme.to_ascii_lowercase().as_str() {
            "bearer" => {
                let realm = params.get("realm")?.clone();
                return Some(Challenge::Bearer {
                    realm,
                    service: params.get("service").cloned(),
                    scope: params.get("scope").cloned(),
                });
            }
            "basic" => found = Some(Challenge::Basic),
            _ => {}
        }
    }
    found
}

/// Split `Scheme k=v, k="v, with comma", Other k=v` into (scheme, params) pairs.
fn split_challenges(header: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let chars: Vec<char> = header.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && (chars[*i].is_whitespace() || chars[*i] == ',') {
            *i += 1;
        }
    };
    while i < chars.len() {
        skip_ws(&mut i);
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' && chars[i] != ',' {
            i += 1;
        }
        let token: String = chars[start..i].iter().collect();
        if token.is_empty() {
            break;
        }
        // Look past spaces: a '=' means this token is a parameter of the current scheme.
        let mut j = i;
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        if j < chars.len() && chars[j] == '=' && !out.is_empty() {
            i = j + 1;
            while i < chars.len() && chars[i] == ' ' {
                i += 1;
            }
            let mut value = String::new();
            if i < chars.len() && chars[i] == '"' {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    value.push(chars[i]);
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && chars[i] != ',' && !chars[i].is_whitespace() {
                    value.push(chars[i]);
                    i += 1;
                }
            }
            if let Some((_, params)) = out.last_mut() {
                params.insert(token.to_ascii_lowercase(), value);
            }
        } else {
            out.push((token, BTreeMap::new()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_challenge() {
        let c = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/redis:pull""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/redis:pull".into()),
            }
        );
    }

    #[test]
    fn basic_and_quoting() {
        assert_eq!(
            parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse("basic"), Some(Challenge::Basic));
        let c = parse(r#"Basic realm="x", Bearer realm="https://a/t?x=1,2", service=svc"#).unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://a/t?x=1,2".into(),
                service: Some("svc".into()),
                scope: None
            }
        );
        assert_eq!(parse(r#"Bearer service="x""#), None, "no realm");
        assert_eq!(parse("Negotiate abc"), None);
    }
}
