//! HTTP to one registry endpoint for one repository: auth challenges and
//! tokens, redirects (never carrying Authorization to another host),
//! retries with backoff, and errors a user can act on.

use std::time::{Duration, Instant};

use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, LOCATION, RANGE, WWW_AUTHENTICATE,
};
use reqwest::{Response, StatusCode, Url};
use tokio::sync::Mutex;

use super::challenge::{self, Challenge};
use super::{Endpoint, RegistryError};
use crate::auth::Credentials;

/// Attempts per request on 5xx and dropped connections (Docker: 5).
pub const ATTEMPTS: u32 = 5;
const MAX_REDIRECTS: usize = 10;
/// Lifetime assumed for a token without `expires_in` (the spec's minimum).
const DEFAULT_TOKEN_SECS: u64 = 60;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    pub endpoint: Endpoint,
    repository: String,
    creds: Option<Credentials>,
    state: std::sync::Arc<Mutex<AuthState>>,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer token for this repository's pull scope, and when it expires.
    token: Option<(String, Instant)>,
}

/// A shared HTTP client: redirects handled by us, timeouts that catch a dead peer.
pub fn http_client() -> Result<reqwest::Client, crate::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(concat!("minicompose/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| crate::Error::Other(anyhow::anyhow!("create the HTTP client: {e}")))
}

impl Client {
    pub fn new(
        http: reqwest::Client,
        endpoint: Endpoint,
        repository: &str,
        creds: Option<Credentials>,
    ) -> Client {
        Client {
            http,
            endpoint,
            repository: repository.to_string(),
            creds,
            state: std::sync::Arc::new(Mutex::new(AuthState::default())),
        }
    }

    /// `GET /v2/`: is this a v2 registry, and what auth does it want?
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.endpoint.base);
        let resp = self
            .get_with_retries(&url, None, &HeaderMap::new(), "registry")
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                self.learn_challenge(&resp).await;
                Ok(())
            }
            s => Err(RegistryError::Protocol(format!(
                "{} does not look like a registry (GET /v2/ answered {s})",
                self.endpoint.base
            ))),
        }
    }

    /// Fetch a manifest by tag or digest: (Content-Type, raw bytes).
    pub async fn manifest(
        &self,
        object: &str,
        what: &str,
    ) -> Result<(String, Vec<u8>), RegistryError> {
        let url = format!(
            "{}/v2/{}/manifests/{object}",
            self.endpoint.base, self.repository
        );
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(crate::manifest::ACCEPT));
        let resp = self.request(&url, &h, what).await?;
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await.map_err(|e| {
            RegistryError::Unreachable(format!(
                "{what}: reading from {} failed: {}",
                self.endpoint.base,
                describe(&e)
            ))
        })?;
        Ok((ct, body.to_vec()))
    }

    /// Whether the repository exists (`GET /v2/<name>/tags/list` is not a 404).
    pub async fn repository_exists(&self) -> Result<bool, RegistryError> {
        let url = format!("{}/v2/{}/tags/list", self.endpoint.base, self.repository);
        match self.request(&url, &HeaderMap::new(), "tags").await {
            Ok(_) => Ok(true),
            Err(RegistryError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Start downloading a blob at byte `offset` (a Range request when > 0).
    /// The response is 200 (whole blob) or 206 (from offset).
    pub async fn blob(
        &self,
        digest: &str,
        offset: u64,
        what: &str,
    ) -> Result<Response, RegistryError> {
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            self.endpoint.base, self.repository
        );
        let mut h = HeaderMap::new();
        if offset > 0 {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes={offset}-")) {
                h.insert(RANGE, v);
            }
        }
        self.request(&url, &h, what).await
    }

    /// A small blob (an image config) in memory.
    pub async fn blob_bytes(&self, digest: &str, what: &str) -> Result<Vec<u8>, RegistryError> {
        let resp = self.blob(digest, 0, what).await?;
        let body = resp.bytes().await.map_err(|e| {
            RegistryError::Unreachable(format!(
                "{what}: reading from {} failed: {}",
                self.endpoint.base,
                describe(&e)
            ))
        })?;
        Ok(body.to_vec())
    }

    /// Check that the credentials work (as `docker login` does): ping, then
    /// a token without a scope, or a Basic-authenticated `/v2/`.
    pub async fn login(&self) -> Result<(), RegistryError> {
        self.ping().await?;
        let challenge = self.state.lock().await.challenge.clone();
        let Some(creds) = &self.creds else {
            return Err(RegistryError::Unauthorized("no credentials given".into()));
        };
        match challenge {
            None => Ok(()),
            Some(Challenge::Basic) => {
                let url = format!("{}/v2/", self.endpoint.base);
                let resp = self
                    .get_with_retries(&url, Some(creds.basic_header()), &HeaderMap::new(), "login")
                    .await?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(self.refused(resp.status()))
                }
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                self.fetch_token(&realm, service.as_deref(), None, Some(&creds.username))
                    .await?;
                Ok(())
            }
        }
    }

    fn refused(&self, status: StatusCode) -> RegistryError {
        match &self.creds {
            Some(c) => RegistryError::Unauthorized(format!(
                "{} refused the credentials of user \"{}\" ({status})",
                self.endpoint.host, c.username
            )),
            None => RegistryError::Unauthorized(format!(
                "{} requires authentication ({status}): run `minicompose login {}`",
                self.endpoint.host, self.endpoint.host
            )),
        }
    }

    /// GET with auth: learn the challenge on a 401 and retry once with credentials.
    async fn request(
        &self,
        url: &str,
        headers: &HeaderMap,
        what: &str,
    ) -> Result<Response, RegistryError> {
        let mut reauthed = false;
        loop {
            let auth = self.authorization().await?;
            let sent_auth = auth.is_some();
            let resp = self.get_with_retries(url, auth, headers, what).await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if status == StatusCode::UNAUTHORIZED && !reauthed {
                reauthed = true;
                let learned = self.learn_challenge(&resp).await;
                // Retry only if we now have something to send.
                if learned && (self.is_bearer().await || (self.creds.is_some() && !sent_auth)) {
                    continue;
                }
            }
            return Err(self.status_error(resp, what).await);
        }
    }

    async fn is_bearer(&self) -> bool {
        matches!(
            self.state.lock().await.challenge,
            Some(Challenge::Bearer { .. })
        )
    }

    /// Store the challenge of a 401 response and drop any cached token. True if understood.
    async fn learn_challenge(&self, resp: &Response) -> bool {
        let header = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let parsed = challenge::parse(header);
        let mut st = self.state.lock().await;
        st.token = None;
        let ok = parsed.is_some();
        if parsed.is_some() {
            st.challenge = parsed;
        }
        ok
    }

    /// The Authorization header to send, fetching a token if needed.
    async fn authorization(&self) -> Result<Option<String>, RegistryError> {
        let mut st = self.state.lock().await;
        match st.challenge.clone() {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.creds.as_ref().map(|c| c.basic_header())),
            Some(Challenge::Bearer { realm, service, .. }) => {
                if let Some((t, until)) = &st.token {
                    if Instant::now() < *until {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                }
                let scope = format!("repository:{}:pull", self.repository);
                let (token, until) = self
                    .fetch_token(&realm, service.as_deref(), Some(&scope), None)
                    .await?;
                st.token = Some((token.clone(), until));
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Docker Hub's token flow: GET realm?service=…&scope=…, Basic auth if we have credentials.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
        account: Option<&str>,
    ) -> Result<(String, Instant), RegistryError> {
        let mut url = Url::parse(realm).map_err(|e| {
            RegistryError::Protocol(format!(
                "{}: bad token realm \"{realm}\": {e}",
                self.endpoint.host
            ))
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            if let Some(s) = scope {
                q.append_pair("scope", s);
            }
            if let Some(a) = account {
                q.append_pair("account", a);
            }
        }
        tracing::info!(target: "explain::image", "token request: {url}");
        let auth = self.creds.as_ref().map(|c| c.basic_header());
        let resp = self
            .get_with_retries(url.as_str(), auth, &HeaderMap::new(), "token")
            .await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(match &self.creds {
                Some(c) => RegistryError::Unauthorized(format!(
                    "the token server {} refused the credentials of user \"{}\" ({status})",
                    url.host_str().unwrap_or(realm),
                    c.username
                )),
                None => RegistryError::Unauthorized(format!(
                    "the token server {} refused anonymous access ({status}): run `minicompose login {}`",
                    url.host_str().unwrap_or(realm),
                    self.endpoint.host
                )),
            });
        }
        if !status.is_success() {
            return Err(RegistryError::Protocol(format!(
                "token server {realm} answered {status}"
            )));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let body = resp.bytes().await.map_err(|e| {
            RegistryError::Unreachable(format!("token server {realm}: {}", describe(&e)))
        })?;
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::Protocol(format!("token server {realm} sent bad JSON: {e}"))
        })?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                RegistryError::Protocol(format!("token server {realm} sent no token"))
            })?;
        let secs = t
            .expires_in
            .unwrap_or(DEFAULT_TOKEN_SECS)
            .max(DEFAULT_TOKEN_SECS);
        // Renew a little early so a token never expires mid-request.
        let until = Instant::now() + Duration::from_secs(secs.saturating_sub(5));
        Ok((token, until))
    }

    /// One GET (following redirects), retried with backoff on connection
    /// errors and 5xx. Other statuses are returned to the caller.
    async fn get_with_retries(
        &self,
        url: &str,
        auth: Option<String>,
        headers: &HeaderMap,
        what: &str,
    ) -> Result<Response, RegistryError> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
                tracing::debug!("retrying {url} (attempt {}): {last}", attempt + 1);
            }
            match self.get_following(url, auth.as_deref(), headers).await {
                Ok(resp) if resp.status().is_server_error() => {
                    last = format!("{} answered {}", host_of(resp.url()), resp.status());
                }
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    // A name that does not resolve will not resolve a second later.
                    // Nor does a closed port reopen within the backoff (a mirror
                    // that is down must not delay the fallback by seconds).
                    let permanent = e.contains("dns error") || e.contains("Connection refused");
                    last = e;
                    if permanent {
                        break;
                    }
                }
            }
        }
        Err(RegistryError::Unreachable(format!("{what}: {last}")))
    }

    /// GET, following redirects by hand: Authorization goes only to the registry's own host.
    async fn get_following(
        &self,
        url: &str,
        auth: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Response, String> {
        let mut current = Url::parse(url).map_err(|e| format!("bad URL {url}: {e}"))?;
        let origin = host_of(&current);
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.http.get(current.clone()).headers(headers.clone());
            if let Some(a) = auth {
                if host_of(&current) == origin {
                    req = req.header(AUTHORIZATION, a);
                }
            }
            let resp = req
                .send()
                .await
                .map_err(|e| format!("cannot reach {}: {}", host_of(&current), describe(&e)))?;
            if resp.status().is_redirection() {
                if let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
                    let next = current
                        .join(loc)
                        .map_err(|e| format!("bad redirect to \"{loc}\": {e}"))?;
                    tracing::info!(target: "explain::image", "redirect {} -> {}", host_of(&current), host_of(&next));
                    current = next;
                    continue;
                }
            }
            return Ok(resp);
        }
        Err(format!("too many redirects from {url}"))
    }

    /// Turn a non-success response into a one-line error.
    async fn status_error(&self, resp: Response, what: &str) -> RegistryError {
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap_or_default();
        let detail = registry_error_text(&body);
        let at = &self.endpoint.base;
        match status {
            StatusCode::NOT_FOUND => RegistryError::NotFound(format!(
                "{what} not found at {at}{}",
                detail.map(|d| format!(" ({d})")).unwrap_or_default()
            )),
            StatusCode::UNAUTHORIZED => {
                let mut e = self.refused(status);
                if let (RegistryError::Unauthorized(m), Some(d)) = (&mut e, detail) {
                    m.push_str(&format!(" ({d})"));
                }
                if let RegistryError::Unauthorized(m) = &mut e {
                    *m = format!("{what}: {m}");
                }
                e
            }
            StatusCode::FORBIDDEN => RegistryError::Forbidden(format!(
                "{what}: access denied by {at}{}",
                detail.map(|d| format!(" ({d})")).unwrap_or_default()
            )),
            StatusCode::TOO_MANY_REQUESTS => {
                let limits: Vec<String> = [
                    "ratelimit-limit",
                    "ratelimit-remaining",
                    "docker-ratelimit-source",
                    "retry-after",
                ]
                .iter()
                .filter_map(|h| {
                    headers
                        .get(*h)
                        .and_then(|v| v.to_str().ok())
                        .map(|v| format!("{h}: {v}"))
                })
                .collect();
                RegistryError::RateLimited(format!(
                    "{what}: rate limited by {at} (429{}): wait and retry, or `minicompose login` for a higher limit",
                    if limits.is_empty() { String::new() } else { format!("; {}", limits.join(", ")) }
                ))
            }
            s => RegistryError::Protocol(format!(
                "{what}: {at} answered {s}{}",
                detail.map(|d| format!(" ({d})")).unwrap_or_default()
            )),
        }
    }
}

/// `host[:port]` of a URL.
fn host_of(u: &Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => u.to_string(),
    }
}

/// 250 ms, 500 ms, 1 s, 2 s …
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << (attempt.saturating_sub(1)).min(5))
}

/// A reqwest error with its causes (reqwest's own text is terse).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |t: String| {
        // reqwest/hyper wrappers that only repeat the URL or say "client error".
        let noise = t.starts_with("error sending request")
            || t.starts_with("client error (")
            || t.starts_with("error decoding response body")
            || t.starts_with("request or response body error");
        if !noise && !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
    };
    push(e.to_string());
    let mut src = e.source();
    while let Some(s) = src {
        push(s.to_string());
        src = s.source();
    }
    if parts.is_empty() {
        return e.to_string();
    }
    parts.join(": ")
}

/// `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"…"}]}` → "MANIFEST_UNKNOWN: …".
fn registry_error_text(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let e: Errors = serde_json::from_slice(body).ok()?;
    let parts: Vec<String> = e
        .errors
        .iter()
        .map(|i| match (i.code.is_empty(), i.message.is_empty()) {
            (false, false) => format!("{}: {}", i.code, i.message),
            (false, true) => i.code.clone(),
            _ => i.message.clone(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let b = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(
            registry_error_text(b).unwrap(),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(registry_error_text(b"<html>"), None);
    }

    #[test]
    fn backoff_grows() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(4), Duration::from_millis(2000));
    }
}
