//! Building images through BuildKit's gRPC API (the Control service), never the docker CLI.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use stackctl::buildkit::{self, Address, BuildRequest, Progress, ProgressMode, TlsFiles};
//! let client = buildkit::connect(&Address::from_env(TlsFiles::default())?).await?;
//! let req = BuildRequest { label: "base".into(), context: "images/base".into(),
//!     tags: vec!["127.0.0.1:5000/base:2026.3-main".into()], push: true, ..Default::default() };
//! let outcome = client.build(&req, &mut Progress::new(ProgressMode::Auto)).await?;
//! println!("{} {:?} cached {}/{}", outcome.image, outcome.digest, outcome.cached_steps, outcome.total_steps);
//! # Ok(()) }
//! ```
//!
//! Concerns, one module each: [`transport`] (addresses, the gRPC channel, the engine's h2c
//! upgrade), [`context`] (the context walk and `.dockerignore`), [`session`] (file sync, registry
//! auth), [`solve`] (the Dockerfile frontend request), [`progress`] (live view and build log),
//! [`push`] (pushing from the engine), [`cache`] (cache exports and imports), [`pool`] (several
//! buildkitd nodes).

pub mod cache;
pub mod context;
pub mod gateway;
pub mod llb;
pub mod pool;
pub mod progress;
pub mod push;
pub mod session;
pub mod solve;
pub mod transport;

pub use cache::CacheExport;
pub use pool::Pool;
pub use progress::{Progress, ProgressMode, VertexStep};
pub use solve::{Attestations, BaseImage, BuildError, BuildOutcome, BuildRequest};
pub use transport::{Address, EngineSocket, TlsFiles};

use anyhow::anyhow;
use bollard_buildkit_proto::moby::buildkit::v1::control_client::ControlClient;
use bollard_buildkit_proto::moby::buildkit::v1::{InfoRequest, ListWorkersRequest};
use std::time::Duration;
use tonic::transport::Channel;

/// Largest gRPC message accepted from BuildKit (as buildctl).
const MAX_MESSAGE: usize = 16 << 20;

/// A connection to BuildKit's Control service.
#[derive(Clone)]
pub struct Client {
    addr: Address,
    channel: Channel,
    /// BuildKit's worker is a Docker engine's (`moby`): images go to the engine's store with
    /// the `moby` exporter (the only image exporter it has), whatever the transport.
    moby_worker: bool,
}

/// Whose BuildKit a [`Client`] talks to ([`Client::kind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A standalone buildkitd: it exports images to their registry itself (by tag, or by
    /// digest without a tag).
    Buildkitd,
    /// A Docker engine's BuildKit (its `moby` worker), reached through the engine's API: images
    /// land in the engine's store, and the engine pushes them.
    Engine(EngineSocket),
    /// A Docker engine's BuildKit reached without the engine's API (its socket as plain
    /// unix:// or tcp://): images land in the engine, and nothing here can push them.
    EngineWithoutApi,
}

impl Kind {
    /// Whether images land in a Docker engine's store (the `moby` exporter) rather than
    /// being exported by BuildKit.
    pub fn is_engine(&self) -> bool {
        !matches!(self, Kind::Buildkitd)
    }
}

/// A BuildKit worker.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Worker {
    pub id: String,
    pub platforms: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// What `Info`/`ListWorkers` tell about BuildKit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Info {
    pub address: String,
    /// `moby/buildkit v0.12.5`; None when BuildKit is older than the Info call (v0.11).
    pub version: Option<String>,
    /// The engine's version when BuildKit runs inside Docker.
    pub engine_version: Option<String>,
    pub workers: Vec<Worker>,
}

/// Connect to BuildKit at `addr` and check that it answers the Control protocol.
/// Errors are one line naming the address.
pub async fn connect(addr: &Address) -> anyhow::Result<Client> {
    let channel = transport::control_channel(addr).await?;
    let mut client = Client {
        addr: addr.clone(),
        channel,
        moby_worker: false,
    };
    // A cheap call proves it speaks BuildKit's protocol.
    let mut c = client.control();
    match tokio::time::timeout(
        Duration::from_secs(15),
        c.list_workers(ListWorkersRequest { filter: vec![] }),
    )
    .await
    {
        Ok(Ok(r)) => {
            client.moby_worker = r.into_inner().record.iter().any(|w| {
                w.id == "moby"
                    || w.labels
                        .keys()
                        .any(|k| k.starts_with("org.mobyproject.buildkit.worker.moby"))
            });
            Ok(client)
        }
        Ok(Err(s)) => Err(anyhow!(
            "{addr} does not answer as BuildKit: {}",
            one_line_status(&s)
        )),
        Err(_) => Err(anyhow!(
            "{addr} does not answer as BuildKit (no reply to ListWorkers in 15s)"
        )),
    }
}

pub(crate) fn one_line_status(s: &tonic::Status) -> String {
    let m = s.message().split_whitespace().collect::<Vec<_>>().join(" ");
    let src = std::error::Error::source(s)
        .map(transport::flatten)
        .unwrap_or_default();
    match (m.is_empty(), src.is_empty()) {
        (false, false) if !m.contains(&src) => format!("{m}: {src}"),
        (false, _) => m,
        (true, false) => src,
        (true, true) => format!("{:?}", s.code()),
    }
}

impl Client {
    pub fn address(&self) -> &Address {
        &self.addr
    }

    /// Whose BuildKit this is, and so where a built image goes and who can push it. The one
    /// place that answers "is this BuildKit an engine's?".
    pub fn kind(&self) -> Kind {
        match (&self.addr, self.moby_worker) {
            (_, false) => Kind::Buildkitd,
            (Address::Engine(sock), true) => Kind::Engine(sock.clone()),
            (_, true) => Kind::EngineWithoutApi,
        }
    }

    /// A Control client on the shared channel.
    pub fn control(&self) -> ControlClient<Channel> {
        ControlClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// BuildKit's version (when it tells) and workers.
    pub async fn info(&self) -> anyhow::Result<Info> {
        let mut c = self.control();
        let workers = c
            .list_workers(ListWorkersRequest { filter: vec![] })
            .await
            .map_err(|s| anyhow!("{}: ListWorkers failed: {}", self.addr, one_line_status(&s)))?
            .into_inner()
            .record
            .into_iter()
            .map(|w| Worker {
                id: w.id,
                platforms: w
                    .platforms
                    .iter()
                    .map(|p| {
                        let mut s = format!("{}/{}", p.os, p.architecture);
                        if !p.variant.is_empty() {
                            s = format!("{s}/{}", p.variant);
                        }
                        s
                    })
                    .collect(),
                labels: w.labels.into_iter().collect(),
            })
            .collect();
        let version = match c.info(InfoRequest {}).await {
            Ok(r) => r
                .into_inner()
                .buildkit_version
                .map(|v| format!("{} {}", v.package, v.version)),
            Err(s) if s.code() == tonic::Code::Unimplemented => None,
            Err(s) => {
                return Err(anyhow!(
                    "{}: Info failed: {}",
                    self.addr,
                    one_line_status(&s)
                ))
            }
        };
        let engine_version = match self.kind() {
            Kind::Engine(sock) => match push::docker(&sock) {
                Ok(d) => d.version().await.ok().and_then(|v| v.version),
                Err(_) => None,
            },
            _ => None,
        };
        Ok(Info {
            address: self.addr.to_string(),
            version,
            engine_version,
            workers,
        })
    }

    /// Build one image; with `push`, put it in its registry (through the engine's API when
    /// BuildKit is the engine's, else by the image exporter) and return the manifest digest.
    pub async fn build(
        &self,
        req: &BuildRequest,
        progress: &mut Progress,
    ) -> Result<BuildOutcome, BuildError> {
        let kind = self.kind();
        if req.push && kind == Kind::EngineWithoutApi {
            return Err(BuildError::Unavailable(format!(
                "image {}: BuildKit at {} is a Docker engine's, which cannot push by itself; \
                 to push, reach the engine with docker:// (or docker-unix://, docker-tcp://)",
                req.label, self.addr
            )));
        }
        if kind.is_engine() && req.cache_to != CacheExport::Inline {
            warn_engine_cache_once(&self.addr);
        }
        let mut outcome = solve::build(self, req, progress).await?;
        if let Some(w) = &outcome.cache_warning {
            tracing::warn!(
                "image {}: the registry cache export failed (the image is fine): {w}",
                req.label
            );
        }
        if req.push {
            if let Kind::Engine(sock) = &kind {
                let mut digest = None;
                for tag in &req.tags {
                    let r = crate::registry::ImageRef::parse(tag)
                        .map_err(|e| push_error(&req.label, &e.to_string()))?;
                    let d = push::push_from_engine(sock, &r, &req.credentials)
                        .await
                        .map_err(|e| push_error(&req.label, &format!("{e:#}")))?;
                    digest.get_or_insert(d);
                }
                outcome.digest = digest;
            }
        }
        Ok(outcome)
    }
}

/// The engine's BuildKit (v0.8, moby worker) cannot export a registry cache: say so once a
/// process, and build with inline cache.
fn warn_engine_cache_once(addr: &Address) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::warn!(
            "BuildKit at {addr} is a Docker engine's, which cannot export a registry cache: \
             using inline cache (the image carries it) instead"
        )
    });
}

/// A random id in BuildKit's style (25 base-36 characters).
pub fn new_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..25)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A failed push: refused access (wrong or missing credentials) is a service refusing
/// (unavailable), as for every command; anything else is failed work.
pub(crate) fn push_error(label: &str, message: &str) -> BuildError {
    if push::is_access_refused(message) {
        BuildError::Unavailable(format!(
            "image {label}: the registry refused access to push: {message}"
        ))
    } else {
        BuildError::Failed(format!("image {label}: {message}"))
    }
}
