//! `push`: send a stored image to its registry (distribution spec "push"):
//! for each blob (layers, config) `HEAD` it, else `POST …/blobs/uploads/` and
//! `PUT <location>?digest=…` with the whole blob; then `PUT …/manifests/<tag>`.
//! Auth as Docker: a `401` challenge, then Basic (credentials from
//! `minicompose login`, i.e. the docker config) or a Bearer token for
//! `repository:<name>:pull,push`. Never through mirrors (Docker's rule).
//! Runs a current-thread tokio runtime and returns after it is dropped.

use mc_image::registry::challenge::{self, Challenge};
use mc_image::{Reference, Store};
use reqwest::{Method, StatusCode};

use crate::Error;

/// What [`push`] did.
#[derive(Debug, Clone, Default)]
pub struct Pushed {
    /// The manifest digest the registry stored.
    pub digest: String,
    /// Blobs uploaded / already present.
    pub uploaded: usize,
    /// Blobs the registry already had.
    pub existing: usize,
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(anyhow::anyhow!("{e}"))
}

/// Push the stored image `reference` (tagged in `store`) to its registry.
pub fn push(store: &Store, reference: &str) -> Result<Pushed, Error> {
    let r = Reference::parse(reference).map_err(|e| Error::Invalid(e.to_string()))?;
    let rec = store
        .find(&r.to_string())
        .map_err(|e| Error::Invalid(e.to_string()))?
        .ok_or_else(|| {
            Error::Invalid(format!(
                "push {r}: no such image: tag it first (image build -t {})",
                r.familiar_name()
            ))
        })?;
    let (manifest, _) = store
        .read_image(&rec.manifest_digest)
        .map_err(Error::Other)?;
    let manifest_raw = store
        .read_blob(&rec.manifest_digest)
        .map_err(Error::Other)?;
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| rec.manifest_media_type.clone());
    let endpoint = mc_image::registry::registry_endpoint(&r.registry);
    let endpoint_base = if r.is_docker_hub() {
        format!("https://{}", mc_image::reference::DOCKER_HUB_API)
    } else {
        endpoint.base.clone()
    };
    let session = Session {
        http: reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(15))
            .user_agent(concat!("minicompose/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(other)?,
        base: endpoint_base,
        repository: r.repository.clone(),
        creds: mc_image::auth::lookup(&r.registry),
        auth: None,
    };
    let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(other)?;
    let tag_ref = &tag;
    let result = rt.block_on(async move {
        let mut s = session;
        let mut out = Pushed::default();
        let mut blobs: Vec<String> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
        blobs.push(manifest.config.digest.clone());
        for digest in &blobs {
            if s.push_blob(store, digest).await? {
                out.uploaded += 1;
                eprintln!("{}: Pushed", short(digest));
            } else {
                out.existing += 1;
                eprintln!("{}: Layer already exists", short(digest));
            }
        }
        out.digest = s.put_manifest(tag_ref, &media_type, manifest_raw).await?;
        Ok::<_, Error>(out)
    });
    drop(rt);
    let out = result.map_err(|e| match e {
        Error::Invalid(m) => Error::Invalid(format!("push {r}: {m}")),
        Error::Other(e) => Error::Other(e.context(format!("push {r}"))),
    })?;
    eprintln!("{tag}: digest: {} size: {}", out.digest, rec.manifest_size);
    Ok(out)
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..12.min(hex.len())]
}

struct Session {
    http: reqwest::Client,
    base: String,
    repository: String,
    creds: Option<mc_image::auth::Credentials>,
    /// The Authorization header value once learned.
    auth: Option<String>,
}

impl Session {
    /// Send a request; on a 401, answer the challenge once and resend.
    async fn send(
        &mut self,
        method: Method,
        url: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<reqwest::Response, Error> {
        for attempt in 0..2 {
            let mut req = self.http.request(method.clone(), url);
            if let Some(a) = &self.auth {
                req = req.header(reqwest::header::AUTHORIZATION, a);
            }
            if let Some((bytes, ct)) = &body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, *ct)
                    .body(bytes.clone());
            }
            let resp = req.send().await.map_err(|e| {
                Error::Invalid(format!(
                    "cannot reach {}: {}",
                    self.base,
                    mc_image::registry::client::describe(&e)
                ))
            })?;
            if resp.status() != StatusCode::UNAUTHORIZED || attempt == 1 {
                if resp.status() == StatusCode::UNAUTHORIZED
                    || resp.status() == StatusCode::FORBIDDEN
                {
                    return Err(Error::Invalid(match &self.creds {
                        Some(c) => format!(
                            "{} refused user \"{}\" ({}): check the credentials (minicompose login)",
                            self.base, c.username, resp.status()
                        ),
                        None => format!(
                            "{} requires authentication ({}): run `minicompose login`",
                            self.base,
                            resp.status()
                        ),
                    }));
                }
                return Ok(resp);
            }
            let header = resp
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            self.auth = match challenge::parse(&header) {
                Some(Challenge::Basic) => self.creds.as_ref().map(|c| c.basic_header()),
                Some(Challenge::Bearer { realm, service, .. }) => Some(format!(
                    "Bearer {}",
                    self.token(&realm, service.as_deref()).await?
                )),
                None => None,
            };
            if self.auth.is_none() {
                return Err(Error::Invalid(format!(
                    "{} requires authentication: run `minicompose login`",
                    self.base
                )));
            }
        }
        unreachable!("the loop returns")
    }

    async fn token(&self, realm: &str, service: Option<&str>) -> Result<String, Error> {
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| other(format!("bad token realm {realm:?}: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair(
                "scope",
                &format!("repository:{}:pull,push", self.repository),
            );
        }
        let mut req = self.http.get(url.as_str());
        if let Some(c) = &self.creds {
            req = req.header(reqwest::header::AUTHORIZATION, c.basic_header());
        }
        let resp = req.send().await.map_err(other)?;
        if !resp.status().is_success() {
            return Err(Error::Invalid(format!(
                "the token server {realm} refused ({}): check the credentials (minicompose login)",
                resp.status()
            )));
        }
        let v: serde_json::Value = resp.json().await.map_err(other)?;
        v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| other(format!("the token server {realm} sent no token")))
    }

    /// Upload one blob unless the registry has it; true if uploaded.
    async fn push_blob(&mut self, store: &Store, digest: &str) -> Result<bool, Error> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let head = self.send(Method::HEAD, &url, None).await?;
        if head.status().is_success() {
            return Ok(false);
        }
        let start = format!("{}/v2/{}/blobs/uploads/", self.base, self.repository);
        let resp = self.send(Method::POST, &start, None).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(other(format!("start an upload: {}", resp.status())));
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| other("the registry sent no upload location"))?;
        let mut put = if location.starts_with("http://") || location.starts_with("https://") {
            reqwest::Url::parse(location).map_err(other)?
        } else {
            reqwest::Url::parse(&format!("{}{location}", self.base)).map_err(other)?
        };
        put.query_pairs_mut().append_pair("digest", digest);
        let bytes = store.read_blob(digest).map_err(Error::Other)?;
        let resp = self
            .send(
                Method::PUT,
                put.as_str(),
                Some((bytes, "application/octet-stream")),
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(other(format!("upload {digest}: {}", resp.status())));
        }
        Ok(true)
    }

    async fn put_manifest(
        &mut self,
        tag: &str,
        media_type: &str,
        raw: Vec<u8>,
    ) -> Result<String, Error> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.repository);
        let resp = self
            .send(Method::PUT, &url, Some((raw.clone(), media_type)))
            .await?;
        if resp.status() != StatusCode::CREATED {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(other(format!(
                "put the manifest: {status}: {}",
                body.trim()
            )));
        }
        Ok(mc_image::store::sha256_digest(&raw))
    }
}
