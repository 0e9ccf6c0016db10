//! A client-side build: a Solve with no frontend and no definition, during which this process
//! drives BuildKit through the gateway API (LLBBridge) on the same connection, as buildctl's
//! and buildx's `client.Build` do. It solves definitions to results, reads their files, and
//! runs processes in containers of them ([`GatewayBuild::run`]), on the node that holds the
//! image. A container's process is never served from BuildKit's cache; a solved definition
//! is, unless its ops say otherwise (see [`super::llb`]).

use super::session::{LocalDir, Session, SessionHandle};
use super::Client;
use crate::credentials::CredentialStore;
use anyhow::anyhow;
use bollard_buildkit_proto::moby::buildkit::v1::frontend::exec_message::Input as ExecInput;
use bollard_buildkit_proto::moby::buildkit::v1::frontend::llb_bridge_client::LlbBridgeClient;
use bollard_buildkit_proto::moby::buildkit::v1::frontend::{
    result, ExecMessage, InitMessage, NewContainerRequest, ReadFileRequest,
    ReleaseContainerRequest, ResolveImageConfigRequest, ReturnRequest, SolveRequest as GwSolve,
};
use bollard_buildkit_proto::moby::buildkit::v1::{SolveRequest, StatusRequest};
use bollard_buildkit_proto::pb::{Definition, Meta, Mount};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The gRPC metadata that routes LLBBridge calls to a build (BuildKit's `buildid` package).
const BUILD_ID_KEY: &str = "buildkit-controlapi-buildid";

/// Adds the build's id to every LLBBridge call.
#[derive(Clone)]
pub struct BuildId(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for BuildId {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert(BUILD_ID_KEY, self.0.clone());
        Ok(req)
    }
}

type Bridge = LlbBridgeClient<InterceptedService<Channel, BuildId>>;

/// A running client-side build. Dropping it ends the build (BuildKit then releases what it
/// made, containers included); [`GatewayBuild::finish`] ends it cleanly.
pub struct GatewayBuild {
    bridge: Bridge,
    session_id: String,
    solve: Option<JoinHandle<Result<(), tonic::Status>>>,
    status: JoinHandle<()>,
    progress: Arc<Mutex<Progress>>,
    _session: SessionHandle,
}

impl Drop for GatewayBuild {
    fn drop(&mut self) {
        if let Some(s) = self.solve.take() {
            s.abort();
        }
        self.status.abort();
    }
}

/// What the build's progress said of its vertexes (by digest): their output, and which were
/// served from the cache.
#[derive(Default)]
struct Progress {
    logs: HashMap<String, Vec<u8>>,
    cached: HashSet<String>,
    /// Vertex names to digests: BuildKit may name a vertex by another digest than its op's
    /// (an op that ignores the cache), never by another name.
    names: HashMap<String, Vec<String>>,
}

/// A solve that failed: BuildKit's message, and (for a failed exec op) the results of its
/// mounts as they were when it failed, by mount index (BuildKit's `errdefs.Solve` detail).
#[derive(Debug, Clone)]
pub struct SolveFailure {
    pub message: String,
    pub mount_ids: Vec<String>,
}

impl std::fmt::Display for SolveFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The two fields of BuildKit's `moby.buildkit.v1.errdefs.Solve` read here (its other fields,
/// the op and the subject, are left to prost's unknown-field skipping).
#[derive(Clone, PartialEq, prost::Message)]
struct SolveErrorDetail {
    #[prost(string, repeated, tag = "1")]
    input_ids: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    mount_ids: Vec<String>,
}

fn solve_failure(s: &tonic::Status) -> SolveFailure {
    use prost::Message as _;
    let mut mount_ids = vec![];
    if let Ok(st) = bollard_buildkit_proto::google::rpc::Status::decode(s.details()) {
        for d in st.details {
            if d.type_url.ends_with("moby.buildkit.v1.errdefs.Solve") {
                if let Ok(e) = SolveErrorDetail::decode(d.value.as_slice()) {
                    mount_ids = e.mount_ids;
                }
            }
        }
    }
    SolveFailure {
        message: status_line(s),
        mount_ids,
    }
}

/// How a process in a container ended.
#[derive(Debug, Clone, Default)]
pub struct ProcessOutput {
    /// Its exit status, when it ran to an exit.
    pub exit_code: Option<u32>,
    /// Why it could not run (or was killed), as BuildKit said.
    pub error: Option<String>,
    /// Standard output and error, interleaved as they came.
    pub output: Vec<u8>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// BuildKit's exit status for a process whose status is unknown (it did not run, or was killed).
const UNKNOWN_EXIT: u32 = 255;

fn status_line(s: &tonic::Status) -> String {
    super::one_line_status(s)
}

impl Client {
    /// Start a client-side build named `label`, with `dirs` offered as local folders and
    /// `credentials` for the registry.
    pub async fn gateway(
        &self,
        label: &str,
        dirs: HashMap<String, LocalDir>,
        credentials: CredentialStore,
    ) -> anyhow::Result<GatewayBuild> {
        let session = Session::new(label, &super::new_id(), dirs, credentials);
        let control = self.control();
        let handle = session.attach(self.address(), &control).await?;
        let build_ref = super::new_id();
        let req = SolveRequest {
            r#ref: build_ref.clone(),
            session: session.id.clone(),
            ..Default::default()
        };
        let mut solve_client = control.clone();
        let solve = tokio::spawn(async move { solve_client.solve(req).await.map(|_| ()) });
        let progress = Arc::new(Mutex::new(Progress::default()));
        let mut status_client = control.clone();
        let (status_ref, into) = (build_ref.clone(), progress.clone());
        let status = tokio::spawn(async move {
            let resp = match status_client
                .status(StatusRequest { r#ref: status_ref })
                .await
            {
                Ok(r) => r,
                Err(s) => {
                    tracing::debug!("gateway build progress: {}", status_line(&s));
                    return;
                }
            };
            let mut stream = resp.into_inner();
            while let Ok(Some(m)) = stream.message().await {
                let mut p = into.lock().unwrap_or_else(|e| e.into_inner());
                for v in &m.vertexes {
                    if v.cached {
                        p.cached.insert(v.digest.clone());
                    }
                    let ds = p.names.entry(v.name.clone()).or_default();
                    if !ds.contains(&v.digest) {
                        ds.push(v.digest.clone());
                    }
                }
                for l in m.logs {
                    p.logs
                        .entry(l.vertex)
                        .or_default()
                        .extend_from_slice(&l.msg);
                }
            }
        });
        let id = build_ref
            .parse()
            .map_err(|_| anyhow!("build id {build_ref:?} is not valid metadata"))?;
        let bridge = LlbBridgeClient::with_interceptor(self.channel.clone(), BuildId(id))
            .max_decoding_message_size(super::MAX_MESSAGE)
            .max_encoding_message_size(super::MAX_MESSAGE);
        Ok(GatewayBuild {
            bridge,
            session_id: session.id.clone(),
            solve: Some(solve),
            status,
            progress,
            _session: handle,
        })
    }
}

impl GatewayBuild {
    /// The image config (JSON) of `reference` for `platform`, as the node resolves it.
    pub async fn image_config(
        &self,
        reference: &str,
        platform: Option<&str>,
    ) -> anyhow::Result<Vec<u8>> {
        let r = self
            .bridge
            .clone()
            .resolve_image_config(ResolveImageConfigRequest {
                r#ref: reference.to_string(),
                platform: platform.map(super::llb::platform),
                resolve_mode: "default".into(),
                session_id: self.session_id.clone(),
                ..Default::default()
            })
            .await
            .map_err(|s| anyhow!("cannot resolve {reference}: {}", status_line(&s)))?;
        Ok(r.into_inner().config)
    }

    /// Solve `def`; the id of its result, for mounts and reads.
    pub async fn solve(&self, def: Definition, what: &str) -> anyhow::Result<String> {
        let r = self
            .bridge
            .clone()
            .solve(GwSolve {
                definition: Some(def),
                allow_result_return: true,
                ..Default::default()
            })
            .await
            .map_err(|s| anyhow!("{what}: {}", status_line(&s)))?
            .into_inner();
        let id = match r.result.and_then(|r| r.result) {
            Some(result::Result::Ref(r)) => r.id,
            Some(result::Result::RefDeprecated(id)) => id,
            _ => r.r#ref,
        };
        if id.is_empty() {
            return Err(anyhow!("{what}: BuildKit returned no result"));
        }
        Ok(id)
    }

    /// Solve `def`, telling a failed exec op's mounts (see [`SolveFailure`]).
    pub async fn solve_keeping_failure(&self, def: Definition) -> Result<String, SolveFailure> {
        let r = self
            .bridge
            .clone()
            .solve(GwSolve {
                definition: Some(def),
                allow_result_return: true,
                ..Default::default()
            })
            .await
            .map_err(|s| solve_failure(&s))?
            .into_inner();
        match r.result.and_then(|r| r.result) {
            Some(result::Result::Ref(r)) if !r.id.is_empty() => Ok(r.id),
            Some(result::Result::RefDeprecated(id)) if !id.is_empty() => Ok(id),
            _ if !r.r#ref.is_empty() => Ok(r.r#ref),
            _ => Err(SolveFailure {
                message: "BuildKit returned no result".into(),
                mount_ids: vec![],
            }),
        }
    }

    /// What the vertex named `name` printed, and whether BuildKit served it from its cache,
    /// as the build's progress told once the build ended (BuildKit may send a sub-solve's
    /// progress late, so only the end of the stream is sure to have it all).
    fn vertex(&self, name: &str) -> (Vec<u8>, bool) {
        let p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let digests = p.names.get(name).cloned().unwrap_or_default();
        let mut log = vec![];
        for d in &digests {
            log.extend_from_slice(p.logs.get(d).map(|l| l.as_slice()).unwrap_or_default());
        }
        (log, digests.iter().any(|d| p.cached.contains(d)))
    }

    /// The bytes of `path` in result `id`; None when there is no such file.
    pub async fn read_file(&self, id: &str, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self
            .bridge
            .clone()
            .read_file(ReadFileRequest {
                r#ref: id.to_string(),
                file_path: path.to_string(),
                ..Default::default()
            })
            .await
        {
            Ok(r) => Ok(Some(r.into_inner().data)),
            Err(s) if is_not_found(&s) => Ok(None),
            Err(s) => Err(anyhow!("cannot read {path}: {}", status_line(&s))),
        }
    }

    /// Make container `id` of `mounts` (the first is `/`) for `platform` (None: the node's own).
    pub async fn new_container(
        &self,
        id: &str,
        mounts: Vec<Mount>,
        platform: Option<&str>,
    ) -> anyhow::Result<()> {
        self.bridge
            .clone()
            .new_container(NewContainerRequest {
                container_id: id.to_string(),
                mounts,
                platform: platform.map(super::llb::platform),
                ..Default::default()
            })
            .await
            .map_err(|s| anyhow!("cannot make a container: {}", status_line(&s)))?;
        Ok(())
    }

    /// Remove container `id` (its processes are killed).
    pub async fn release_container(&self, id: &str) {
        if let Err(s) = self
            .bridge
            .clone()
            .release_container(ReleaseContainerRequest {
                container_id: id.to_string(),
            })
            .await
        {
            tracing::debug!("releasing container {id}: {}", status_line(&s));
        }
    }

    /// The session's id (local sources name it).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Run `meta` in container `id` to its end, its output and exit status going to `out` as
    /// they come (so that what ran is kept when the caller stops waiting). No shell is
    /// involved: `meta.args[0]` is executed as it is.
    pub async fn run(&self, id: &str, meta: Meta, out: &mut ProcessOutput) -> anyhow::Result<()> {
        let (tx, rx) = mpsc::channel::<ExecMessage>(4);
        let process_id = super::new_id();
        tx.send(ExecMessage {
            process_id: process_id.clone(),
            input: Some(ExecInput::Init(InitMessage {
                container_id: id.to_string(),
                meta: Some(meta),
                fds: vec![1, 2],
                ..Default::default()
            })),
        })
        .await
        .map_err(|_| anyhow!("process channel closed"))?;
        let mut stream = self
            .bridge
            .clone()
            .exec_process(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|s| anyhow!("cannot start the process: {}", status_line(&s)))?
            .into_inner();
        loop {
            let msg = match stream.message().await {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(s) => {
                    out.error.get_or_insert_with(|| status_line(&s));
                    break;
                }
            };
            match msg.input {
                Some(ExecInput::File(f)) => {
                    out.output.extend_from_slice(&f.data);
                    match f.fd {
                        1 => out.stdout.extend_from_slice(&f.data),
                        _ => out.stderr.extend_from_slice(&f.data),
                    }
                }
                Some(ExecInput::Exit(e)) => {
                    let err = e.error.filter(|s| s.code != 0).map(|s| s.message);
                    match err {
                        // A status BuildKit could not learn, with the reason it gives.
                        Some(m) if e.code == UNKNOWN_EXIT && !m.contains("exit code") => {
                            out.error = Some(m)
                        }
                        _ => out.exit_code = Some(e.code),
                    }
                }
                Some(ExecInput::Done(_)) => break,
                _ => {}
            }
        }
        // The input side stays open until the process is done: closing it early ends the call.
        drop(tx);
        Ok(())
    }

    /// End the build (see [`GatewayBuild::finish`]); then what the vertex named `name`
    /// printed, and whether it was served from BuildKit's cache.
    pub async fn finish_reading(mut self, name: &str) -> (Vec<u8>, bool) {
        self.end().await;
        let status = std::mem::replace(&mut self.status, tokio::spawn(async {}));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), status).await;
        self.vertex(name)
    }

    /// End the build: tell BuildKit there is nothing to return, and wait for its Solve.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        self.end().await;
        Ok(())
    }

    async fn end(&mut self) {
        let r = self
            .bridge
            .clone()
            .r#return(ReturnRequest {
                result: Some(Default::default()),
                error: None,
            })
            .await;
        if let Err(s) = r {
            tracing::debug!("gateway return: {}", status_line(&s));
        }
        if let Some(solve) = self.solve.take() {
            match tokio::time::timeout(std::time::Duration::from_secs(30), solve).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(s))) => tracing::debug!("gateway build ended: {}", status_line(&s)),
                Ok(Err(e)) => tracing::debug!("gateway build task: {e}"),
                Err(_) => tracing::debug!("gateway build did not end within 30s"),
            }
        }
    }
}

fn is_not_found(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::NotFound
        || s.message().contains("no such file")
        || s.message().contains("not found")
}
