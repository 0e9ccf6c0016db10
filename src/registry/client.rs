//! The registry client: operation-sized functions (HEAD, GET and PUT of a manifest, DELETE,
//! blob HEAD, GET, upload, mount and stream) over the transport stack of
//! [`super::transport`]; copy and retag are above them, in [`super::copy`]. Manifests are
//! kept as the exact bytes and media type the registry stores.

use super::reference::ImageRef;
use super::transport::auth::{describe, Auth};
use super::transport::debuglog::DebugLog;
use super::transport::http::Http;
use super::transport::retry::{Retry, RetryPolicy, Unanswered};
use super::transport::scheme::Schemes;
use super::transport::useragent::UserAgent;
use super::transport::{Call, Transport, TransportError};
use crate::credentials::CredentialStore;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{RequestBuilder, Response, StatusCode};
use sha2::{Digest as _, Sha256};
use std::time::Duration;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// What we accept for a manifest: the four kinds, so the registry never converts one.
/// GHCR answers MANIFEST_UNKNOWN to a GET of an index (BuildKit's attestations always make
/// one) when the OCI index type is missing here, so it must stay in the list.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A manifest exactly as the registry stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub bytes: Bytes,
    pub media_type: String,
    /// `sha256:…` of `bytes`.
    pub digest: String,
}

/// What a HEAD of a manifest tells.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Descriptor {
    pub digest: String,
    pub media_type: String,
    pub size: Option<u64>,
}

/// A registry failure, worded for the user; never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{reference}: not found in its registry (HTTP 404)")]
    NotFound { reference: String },
    #[error("{reference}: the registry refused access (HTTP {status}) to {credential}{detail}")]
    Denied {
        reference: String,
        status: u16,
        credential: String,
        detail: String,
    },
    #[error("{reference}: {action} failed: the registry answered HTTP {status}{detail}")]
    Status {
        reference: String,
        action: String,
        status: u16,
        detail: String,
    },
    #[error("{reference}: cannot reach the registry {host}: {reason}")]
    Network {
        reference: String,
        host: String,
        reason: String,
    },
    #[error("{reference}: {reason}")]
    Invalid { reference: String, reason: String },
    #[error(transparent)]
    Auth(#[from] super::transport::auth::AuthError),
}

impl RegistryError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }

    /// Whether the registry answered with a refusal that asking again will not change
    /// (4xx other than 408/429, a bad answer, auth); network failures and 5xx are not.
    pub fn is_refusal(&self) -> bool {
        match self {
            RegistryError::Status { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            RegistryError::Network { .. } => false,
            _ => true,
        }
    }
}

/// How a client is set up.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// `HOST:PORT` registries reached over plain http (loopback ones always are).
    pub insecure_registries: Vec<String>,
    pub retry: RetryPolicy,
    /// Do not attempt cross-repository mounts (always stream blobs). For benchmarks and tests.
    pub no_mount: bool,
    /// Registry name (as in a reference: `docker.io`, `ghcr.io`) → `HOST[:PORT]` its
    /// requests go to instead (`--registry-endpoint`): a mirror, or a test registry. Names
    /// printed and written stay as they are.
    pub endpoints: Vec<(String, String)>,
}

/// sha256 digest of bytes, `sha256:<hex>`.
pub fn sha256_digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

pub use super::transport::scheme::is_loopback;

/// The layers every request goes through, outermost first (see [`super::transport`]).
type Stack = Auth<UserAgent<Retry<DebugLog<Http>>>>;

/// A registry client. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct RegistryClient {
    transport: Stack,
    /// Makes requests (never sends them): the plain-http client, which has no TLS roots.
    requests: reqwest::Client,
    schemes: Schemes,
    opts: ClientOptions,
}

fn pull(r: &ImageRef) -> String {
    format!("repository:{}:pull", r.repository)
}
fn push(r: &ImageRef) -> String {
    format!("repository:{}:pull,push", r.repository)
}

/// The registry's error text (`{"errors":[{"code","message"}]}`), shortened, or nothing.
async fn detail(resp: Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<E>,
    }
    #[derive(serde::Deserialize)]
    struct E {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(e) = serde_json::from_str::<Errs>(&text) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e.code.as_deref().unwrap_or(""),
                    e.message.as_deref().unwrap_or("")
                )
                .trim()
                .to_string()
            })
            .collect();
        if !parts.is_empty() {
            return format!(" ({})", parts.join("; "));
        }
    }
    let t = text.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(" ({})", t.chars().take(200).collect::<String>())
    }
}

impl RegistryClient {
    pub fn new(creds: CredentialStore, opts: ClientOptions) -> anyhow::Result<Self> {
        let http = Http::new()?;
        let requests = http.plain().clone();
        let transport = Auth::new(
            UserAgent::new(Retry::new(DebugLog::new(http), opts.retry.clone())),
            creds,
            opts.retry.request_timeout,
        );
        Ok(RegistryClient {
            transport,
            requests,
            schemes: Schemes {
                insecure: opts.insecure_registries.clone(),
                endpoints: opts.endpoints.clone(),
            },
            opts,
        })
    }

    /// How requests are retried (also how often a streamed blob is tried).
    pub(super) fn retry_policy(&self) -> &RetryPolicy {
        &self.opts.retry
    }

    /// Whether cross-repository mounts are off (`ClientOptions::no_mount`).
    pub(super) fn no_mount(&self) -> bool {
        self.opts.no_mount
    }

    fn url(&self, r: &ImageRef, tail: &str) -> String {
        self.schemes.url(r, tail)
    }

    /// The URL of `r`'s manifest (by tag or digest).
    fn manifest_url(&self, r: &ImageRef) -> String {
        self.url(r, &format!("manifests/{}", r.manifest_ref()))
    }

    /// The URL of blob `digest` in `r`'s repository.
    fn blob_url(&self, r: &ImageRef, digest: &str) -> String {
        self.url(r, &format!("blobs/{digest}"))
    }

    /// The host requests for `r` go to: its endpoint if one is set, else its API host.
    pub(super) fn host<'a>(&'a self, r: &'a ImageRef) -> &'a str {
        self.schemes.host(r)
    }

    /// Send a request through the transport stack (auth, retries, log), bounded by the
    /// per-request timeout.
    async fn send(
        &self,
        r: &ImageRef,
        scopes: &[String],
        what: &str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let timeout = Some(self.opts.retry.request_timeout);
        self.send_noting(r, scopes, what, timeout, build, None)
            .await
    }

    /// Send a request through the transport stack with `timeout` (`None`: unbounded, for a
    /// streamed blob), noting attempts that got no answer in `unanswered`.
    async fn send_noting(
        &self,
        r: &ImageRef,
        scopes: &[String],
        what: &str,
        timeout: Option<Duration>,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
        unanswered: Option<&Unanswered>,
    ) -> Result<Response, RegistryError> {
        let mut rb = build(&self.requests);
        if let Some(t) = timeout {
            rb = rb.timeout(t);
        }
        let request = rb.build().map_err(|e| RegistryError::Invalid {
            reference: r.to_string(),
            reason: format!("cannot make the request: {}", e.without_url()),
        })?;
        let what = format!("{what} {r}");
        let mut call = Call::new(request, scopes, &what);
        call.unanswered = unanswered;
        self.transport
            .round_trip(call)
            .await
            .map_err(|e| self.unanswered(r, e))
    }

    /// A request that got no answer, as a registry error.
    fn unanswered(&self, r: &ImageRef, e: TransportError) -> RegistryError {
        match e {
            TransportError::Auth(a) => RegistryError::Auth(a),
            e => RegistryError::Network {
                reference: r.to_string(),
                host: self.host(r).to_string(),
                reason: e.to_string(),
            },
        }
    }

    async fn denied(&self, r: &ImageRef, resp: Response) -> RegistryError {
        RegistryError::Denied {
            reference: r.to_string(),
            status: resp.status().as_u16(),
            credential: describe(self.transport.authenticator().credential(self.host(r))),
            detail: detail(resp).await,
        }
    }

    /// Map an unexpected answer to an error.
    async fn fail(&self, r: &ImageRef, action: &str, resp: Response) -> RegistryError {
        match resp.status().as_u16() {
            401 | 403 => self.denied(r, resp).await,
            404 => RegistryError::NotFound {
                reference: r.to_string(),
            },
            s => RegistryError::Status {
                reference: r.to_string(),
                action: action.into(),
                status: s,
                detail: detail(resp).await,
            },
        }
    }

    /// HEAD a manifest: its digest and media type, or `None` when it does not exist.
    pub async fn head_manifest(&self, r: &ImageRef) -> Result<Option<Descriptor>, RegistryError> {
        let url = self.manifest_url(r);
        let resp = self
            .send(r, &[pull(r)], "HEAD", |h| {
                h.head(&url).header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        match resp.status() {
            StatusCode::OK => {
                let hdr = |n: &str| {
                    resp.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let media_type = hdr("content-type")
                    .map(|m| m.split(';').next().unwrap_or("").trim().to_string())
                    .unwrap_or_default();
                let size = hdr("content-length").and_then(|s| s.parse().ok());
                match hdr("docker-content-digest") {
                    Some(digest) => Ok(Some(Descriptor {
                        digest,
                        media_type,
                        size,
                    })),
                    // Some registries leave the digest out of a HEAD: ask for the bytes.
                    None => Ok(self.get_manifest(r).await?.map(|m| Descriptor {
                        size: Some(m.bytes.len() as u64),
                        digest: m.digest,
                        media_type: m.media_type,
                    })),
                }
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.fail(r, "HEAD of the manifest", resp).await),
        }
    }

    /// GET a manifest's exact bytes, or `None` when it does not exist.
    pub async fn get_manifest(&self, r: &ImageRef) -> Result<Option<Manifest>, RegistryError> {
        let url = self.manifest_url(r);
        let resp = self
            .send(r, &[pull(r)], "GET", |h| {
                h.get(&url).header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.fail(r, "GET of the manifest", resp).await),
        }
        let header_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|m| m.split(';').next().unwrap_or("").trim().to_string());
        let bytes = resp.bytes().await.map_err(|e| RegistryError::Network {
            reference: r.to_string(),
            host: self.host(r).into(),
            reason: e.without_url().to_string(),
        })?;
        let digest = sha256_digest(&bytes);
        if let Some(want) = &r.digest {
            if want != &digest {
                return Err(RegistryError::Invalid {
                    reference: r.to_string(),
                    reason: format!("the registry sent a manifest whose digest is {digest}"),
                });
            }
        }
        let media_type = match header_type.as_deref() {
            Some(m) if m.starts_with("application/vnd.") => m.to_string(),
            // A generic type: trust the manifest's own `mediaType` field.
            _ => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
                .unwrap_or_else(|| OCI_MANIFEST.to_string()),
        };
        Ok(Some(Manifest {
            bytes,
            media_type,
            digest,
        }))
    }

    /// PUT a manifest's exact bytes with its media type under `r`'s tag (or digest).
    /// Returns the digest the registry stored (its `Docker-Content-Digest`, else `m`'s).
    pub async fn put_manifest(&self, r: &ImageRef, m: &Manifest) -> Result<String, RegistryError> {
        self.put_manifest_noting(r, m, None).await
    }

    /// [`put_manifest`](Self::put_manifest), noting attempts without an answer (which may
    /// still land) in `unanswered`.
    pub async fn put_manifest_noting(
        &self,
        r: &ImageRef,
        m: &Manifest,
        unanswered: Option<&Unanswered>,
    ) -> Result<String, RegistryError> {
        let url = self.manifest_url(r);
        let resp = self
            .send_noting(
                r,
                &[push(r)],
                "PUT",
                Some(self.opts.retry.request_timeout),
                |h| {
                    h.put(&url)
                        .header(CONTENT_TYPE, &m.media_type)
                        .body(m.bytes.clone())
                },
                unanswered,
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            // A 404 on a PUT says the target is refused (e.g. a name the registry does not
            // route), not that something is missing: not reported as "not found".
            return Err(RegistryError::Status {
                reference: r.to_string(),
                action: "PUT of the manifest".into(),
                status: 404,
                detail: detail(resp).await,
            });
        }
        if resp.status() != StatusCode::CREATED && resp.status() != StatusCode::OK {
            return Err(self.fail(r, "PUT of the manifest", resp).await);
        }
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| m.digest.clone()))
    }

    /// Every tag of `r`'s repository (`GET /v2/<name>/tags/list`, following the `Link`
    /// header's next pages). Empty when the repository does not exist.
    pub async fn list_tags(&self, r: &ImageRef) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut url = self.url(r, "tags/list?n=1000");
        let mut out = vec![];
        loop {
            let resp = self.send(r, &[pull(r)], "GET", |h| h.get(&url)).await?;
            match resp.status() {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => return Ok(out),
                _ => return Err(self.fail(r, "GET of the tag list", resp).await),
            }
            // `Link: </v2/<name>/tags/list?last=x&n=1000>; rel="next"`
            let next = resp
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .filter(|l| l.contains("rel=\"next\""))
                .and_then(|l| Some(l.split_once('<')?.1.split_once('>')?.0.to_string()));
            let page: Page = resp.json().await.map_err(|e| RegistryError::Invalid {
                reference: r.to_string(),
                reason: format!("unreadable tag list: {}", e.without_url()),
            })?;
            out.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) if n.starts_with('/') => {
                    url = format!("{}{n}", self.schemes.base(self.host(r)))
                }
                Some(n) => url = n,
                None => return Ok(out),
            }
        }
    }

    /// DELETE a tag. `Ok(Err("HTTP <status> (<registry's reason>)"))` when the registry
    /// refuses deleting tags (GHCR answers 405; Distribution 2.8 only deletes by digest).
    pub async fn delete_tag(&self, r: &ImageRef) -> Result<Result<(), String>, RegistryError> {
        let url = self.manifest_url(r);
        let resp = self
            .send(r, &[push(r)], "DELETE", |h| h.delete(&url))
            .await?;
        match resp.status().as_u16() {
            200 | 202 | 204 => Ok(Ok(())),
            401 => Err(self.denied(r, resp).await),
            s @ (400 | 403 | 404 | 405 | 501) => Ok(Err(format!("HTTP {s}{}", detail(resp).await))),
            _ => Err(self.fail(r, "DELETE of the tag", resp).await),
        }
    }

    /// Whether blob `digest` is in `r`'s repository.
    pub async fn blob_exists(&self, r: &ImageRef, digest: &str) -> Result<bool, RegistryError> {
        let url = self.blob_url(r, digest);
        let resp = self
            .send(r, &[pull(r)], "HEAD blob", |h| h.head(&url))
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.fail(r, "HEAD of a blob", resp).await),
        }
    }

    /// GET a small blob (a config) whole, checked against `digest`.
    pub async fn get_blob(&self, r: &ImageRef, digest: &str) -> Result<Bytes, RegistryError> {
        let url = self.blob_url(r, digest);
        let resp = self
            .send(r, &[pull(r)], "GET blob", |h| h.get(&url))
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self.fail(r, &format!("GET of blob {digest}"), resp).await);
        }
        let bytes = resp.bytes().await.map_err(|e| RegistryError::Network {
            reference: r.to_string(),
            host: self.host(r).into(),
            reason: e.without_url().to_string(),
        })?;
        if digest.starts_with("sha256:") && sha256_digest(&bytes) != digest {
            return Err(RegistryError::Invalid {
                reference: r.to_string(),
                reason: format!("blob {digest} arrived with another digest"),
            });
        }
        Ok(bytes)
    }

    /// Start an upload in `r`'s repository; with `mount`, ask the registry to mount the blob
    /// from another repository instead. `Ok(None)`: mounted; `Ok(Some(url))`: upload there.
    pub(super) async fn start_upload(
        &self,
        r: &ImageRef,
        mount: Option<(&str, &ImageRef)>,
    ) -> Result<Option<url::Url>, RegistryError> {
        let mut url = url::Url::parse(&self.url(r, "blobs/uploads/")).map_err(|e| {
            RegistryError::Invalid {
                reference: r.to_string(),
                reason: e.to_string(),
            }
        })?;
        let mut scopes = vec![push(r)];
        if let Some((digest, from)) = mount {
            url.query_pairs_mut()
                .append_pair("mount", digest)
                .append_pair("from", &from.repository);
            scopes.push(pull(from));
        }
        let resp = self
            .send(r, &scopes, "POST upload", |h| {
                h.post(url.clone()).header(CONTENT_LENGTH, "0")
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED if mount.is_some() => Ok(None),
            StatusCode::ACCEPTED => {
                let loc = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| RegistryError::Invalid {
                        reference: r.to_string(),
                        reason: "upload started without a Location".into(),
                    })?;
                url.join(loc).map(Some).map_err(|e| RegistryError::Invalid {
                    reference: r.to_string(),
                    reason: format!("bad upload Location: {e}"),
                })
            }
            _ => Err(self.fail(r, "start of a blob upload", resp).await),
        }
    }

    /// Upload a small blob held in memory (test images, configs). Returns its digest.
    pub async fn push_blob(&self, r: &ImageRef, data: Bytes) -> Result<String, RegistryError> {
        let digest = sha256_digest(&data);
        if self.blob_exists(r, &digest).await? {
            return Ok(digest);
        }
        let mut loc = self.start_upload(r, None).await?.expect("not a mount");
        loc.query_pairs_mut().append_pair("digest", &digest);
        let resp = self
            .send(r, &[push(r)], "PUT blob", |h| {
                h.put(loc.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(data.clone())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.fail(r, "upload of a blob", resp).await);
        }
        Ok(digest)
    }

    /// Stream blob `digest` of `src` into upload `loc` of `dst`: a GET whose body is fed to
    /// a monolithic PUT as it arrives, never held whole in memory.
    pub(super) async fn stream_blob(
        &self,
        src: &ImageRef,
        dst: &ImageRef,
        digest: &str,
        size: u64,
        mut loc: url::Url,
    ) -> Result<(), RegistryError> {
        let get_url = self.blob_url(src, digest);
        let resp = self
            .send_noting(
                src,
                &[pull(src)],
                "GET blob",
                None,
                |h| h.get(&get_url),
                None,
            )
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self.fail(src, &format!("GET of blob {digest}"), resp).await);
        }
        loc.query_pairs_mut().append_pair("digest", digest);
        // A streamed body can be sent once only: the stack sends it once (no retry, no
        // second try after a 401; the token is got before), and `copy_blob` starts over.
        let body = reqwest::Body::wrap_stream(resp.bytes_stream().map_err(std::io::Error::other));
        let request = self
            .requests
            .put(loc)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(body)
            .build()
            .map_err(|e| RegistryError::Invalid {
                reference: dst.to_string(),
                reason: format!("cannot make the upload request: {}", e.without_url()),
            })?;
        let scopes = [push(dst)];
        let what = format!("PUT blob {dst}");
        let put = self
            .transport
            .round_trip(Call::new(request, &scopes, &what))
            .await
            .map_err(|e| self.unanswered(dst, e))?;
        if put.status() != StatusCode::CREATED {
            return Err(self
                .fail(dst, &format!("upload of blob {digest}"), put)
                .await);
        }
        Ok(())
    }
}

/// The result of checking one reference.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExistsResult {
    pub reference: String,
    pub exists: bool,
    pub digest: Option<String>,
    pub media_type: Option<String>,
    /// Set when the check itself failed (auth, network, bad reference).
    pub error: Option<String>,
}

/// Checks that did not end by their deadline: the registries still asked, for one line.
#[derive(Debug, thiserror::Error)]
#[error(
    "registry {} did not answer within {} ({unchecked} of {total} references unchecked, e.g. {first})",
    .registries.join(", "),
    humantime::format_duration(*.within)
)]
pub struct CheckDeadline {
    pub registries: Vec<String>,
    pub within: Duration,
    pub unchecked: usize,
    pub total: usize,
    pub first: String,
}

/// [`exists_many`] with one deadline for all the checks, however many retries each takes:
/// a registry that stalls ends the command after `within`, not after every retry.
pub async fn exists_within(
    client: &RegistryClient,
    refs: &[ImageRef],
    within: Duration,
) -> Result<Vec<ExistsResult>, CheckDeadline> {
    let deadline = tokio::time::Instant::now() + within;
    let done: Vec<Option<ExistsResult>> = futures::stream::iter(refs)
        .map(|r| async move {
            tokio::time::timeout_at(deadline, exists_one(client, r))
                .await
                .ok()
        })
        .buffered(16)
        .collect()
        .await;
    let late: Vec<&ImageRef> = refs
        .iter()
        .zip(&done)
        .filter(|(_, d)| d.is_none())
        .map(|(r, _)| r)
        .collect();
    if let Some(first) = late.first() {
        let mut registries: Vec<String> = late.iter().map(|r| r.registry.clone()).collect();
        registries.sort();
        registries.dedup();
        return Err(CheckDeadline {
            registries,
            within,
            unchecked: late.len(),
            total: refs.len(),
            first: first.to_string(),
        });
    }
    Ok(done.into_iter().flatten().collect())
}

/// Check many references at once: one HEAD each, all concurrently (at most 16 in flight).
/// Results come back in the order of `refs`; a failed check has `error` set.
pub async fn exists_many(client: &RegistryClient, refs: &[ImageRef]) -> Vec<ExistsResult> {
    futures::stream::iter(refs)
        .map(|r| exists_one(client, r))
        .buffered(16)
        .collect()
        .await
}

async fn exists_one(client: &RegistryClient, r: &ImageRef) -> ExistsResult {
    match client.head_manifest(r).await {
        Ok(d) => ExistsResult {
            reference: r.to_string(),
            exists: d.is_some(),
            digest: d.as_ref().map(|d| d.digest.clone()),
            media_type: d.map(|d| d.media_type),
            error: None,
        },
        Err(e) => ExistsResult {
            reference: r.to_string(),
            exists: false,
            digest: None,
            media_type: None,
            error: Some(e.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GHCR's rule: an index is found only when its media type is accepted.
    #[test]
    fn manifest_reads_accept_every_kind_an_index_above_all() {
        let kinds: Vec<&str> = MANIFEST_ACCEPT.split(", ").collect();
        for k in [
            OCI_INDEX,
            DOCKER_MANIFEST_LIST,
            OCI_MANIFEST,
            DOCKER_MANIFEST,
        ] {
            assert!(kinds.contains(&k), "{k} missing from {MANIFEST_ACCEPT}");
        }
    }

    #[test]
    fn urls_through_the_schemes() {
        let c = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
        let r = ImageRef::parse("ghcr.io/o/x:t").unwrap();
        assert_eq!(
            c.url(&r, "manifests/t"),
            "https://ghcr.io/v2/o/x/manifests/t"
        );
    }
}
