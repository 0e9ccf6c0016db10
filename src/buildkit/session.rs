//! The client side of a BuildKit session: the services BuildKit calls back during a build.
//!
//! - FileSync `DiffCopy`: sends a local folder (the build context, the Dockerfile's folder) with
//!   fsutil's packet protocol: every entry's `Stat` in walk order, then the bytes of each regular
//!   file the receiver asks for (by its index in the walk), streamed in chunks from disk.
//! - Auth `Credentials`: registry credentials from [`CredentialStore`], so BuildKit can pull
//!   private bases and push. `FetchToken` is not offered: BuildKit then fetches registry tokens
//!   itself with those credentials.
//! - Health `Check`, which BuildKit polls to keep the session alive.
//!
//! bollard has the same services but crate-private and built around a tar upload (no fsutil
//! sender, no per-host credential lookup), hence this module. It reuses bollard's generated
//! protocol types (bollard-buildkit-proto).

use super::context::{walk, Entry, Filter, Patterns};
use super::transport::{engine_upgrade, Address};
use crate::credentials::CredentialStore;
use anyhow::Context as _;
use bollard_buildkit_proto::fsutil::types::packet::PacketType;
use bollard_buildkit_proto::fsutil::types::Packet;
use bollard_buildkit_proto::health::health_check_response::ServingStatus;
use bollard_buildkit_proto::health::health_server::{Health, HealthServer};
use bollard_buildkit_proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use bollard_buildkit_proto::moby::buildkit::v1::control_client::ControlClient;
use bollard_buildkit_proto::moby::buildkit::v1::BytesMessage;
use bollard_buildkit_proto::moby::filesync::packet::file_sync_server::{FileSync, FileSyncServer};
use bollard_buildkit_proto::moby::filesync::v1::auth_server::{Auth, AuthServer};
use bollard_buildkit_proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use bytes::Bytes;
use futures::Stream;
use futures::StreamExt;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::server::Connected;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// Bytes of a file per DATA packet. Large enough to keep the packet count low on big files,
/// well under gRPC's 4 MiB default message limit on BuildKit's side.
const CHUNK: usize = 1 << 20;

/// Files read and sent at the same time.
const SENDERS: usize = 4;

/// A local folder BuildKit may ask for by name (`context`, `dockerfile`).
#[derive(Debug, Clone)]
pub struct LocalDir {
    pub root: PathBuf,
    /// Patterns the client applies (the context's `.dockerignore`); BuildKit's own exclude
    /// patterns replace them only when it says `override-excludes`, as fsutil's client does.
    pub excludes: Vec<String>,
}

impl LocalDir {
    /// A folder with its `.dockerignore` as excludes.
    pub fn with_dockerignore(root: PathBuf) -> anyhow::Result<LocalDir> {
        // Validate the patterns now, so a bad .dockerignore is reported before the build.
        Patterns::from_dockerignore(&root)?;
        let excludes = super::context::dockerignore_lines(&root)?;
        Ok(LocalDir { root, excludes })
    }
}

/// A session: its id and the services behind it.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    /// Shown by BuildKit; the context folder's name.
    pub name: String,
    /// Lets BuildKit reuse what it received for the same folder before (incremental sends).
    pub shared_key: String,
    dirs: Arc<HashMap<String, LocalDir>>,
    creds: Arc<CredentialStore>,
}

/// A running session; the services stop when it is dropped.
pub struct SessionHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Session {
    pub fn new(
        name: &str,
        shared_key: &str,
        dirs: HashMap<String, LocalDir>,
        creds: CredentialStore,
    ) -> Session {
        Session {
            id: super::new_id(),
            name: name.to_string(),
            shared_key: shared_key.to_string(),
            dirs: Arc::new(dirs),
            creds: Arc::new(creds),
        }
    }

    /// The gRPC methods the session offers, announced to BuildKit.
    fn methods() -> Vec<String> {
        [
            "/grpc.health.v1.Health/Check",
            "/moby.filesync.v1.FileSync/DiffCopy",
            "/moby.filesync.v1.Auth/Credentials",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// The headers (or gRPC metadata, lower-cased) that describe the session.
    fn headers(&self) -> Vec<(String, String)> {
        let mut h = vec![
            ("X-Docker-Expose-Session-Uuid".to_string(), self.id.clone()),
            (
                "X-Docker-Expose-Session-Name".to_string(),
                self.name.clone(),
            ),
            (
                "X-Docker-Expose-Session-Sharedkey".to_string(),
                self.shared_key.clone(),
            ),
        ];
        for m in Self::methods() {
            h.push(("X-Docker-Expose-Session-Grpc-Method".to_string(), m));
        }
        h
    }

    fn router(&self) -> tonic::transport::server::Router {
        tonic::transport::Server::builder()
            .add_service(HealthServer::new(HealthService))
            .add_service(FileSyncServer::new(FileSyncService {
                dirs: self.dirs.clone(),
            }))
            .add_service(AuthServer::new(AuthService {
                creds: self.creds.clone(),
            }))
    }

    /// Open the session with BuildKit at `addr`: through the engine's `/session` endpoint, or
    /// inside the Control service's `Session` stream for buildkitd.
    pub async fn attach(
        &self,
        addr: &Address,
        control: &ControlClient<Channel>,
    ) -> anyhow::Result<SessionHandle> {
        let router = self.router();
        let tasks = match addr {
            Address::Engine(sock) => {
                let up = engine_upgrade(sock, "/session", &self.headers())
                    .await
                    .context("opening the build session with the Docker engine")?;
                let io = ServerIo(hyper_util::rt::TokioIo::new(up));
                vec![tokio::spawn(async move {
                    let incoming = one_connection(io);
                    if let Err(e) = router.serve_with_incoming(incoming).await {
                        tracing::debug!("session ended: {e}");
                    }
                })]
            }
            _ => {
                // The session's HTTP/2 runs over the Session stream's messages: what BuildKit
                // sends is read by the server, what the server writes is sent back.
                let (in_tx, in_rx) = mpsc::channel::<Bytes>(64);
                let (out_tx, out_rx) = mpsc::channel::<Bytes>(64);
                let outgoing = tokio_stream::wrappers::ReceiverStream::new(out_rx)
                    .map(|b| BytesMessage { data: b.to_vec() });
                let mut req = Request::new(outgoing);
                for (k, v) in self.headers() {
                    let key = tonic::metadata::MetadataKey::from_bytes(k.to_lowercase().as_bytes())
                        .expect("valid header name");
                    req.metadata_mut()
                        .append(key, v.parse().context("session header value")?);
                }
                let mut inbound = control
                    .clone()
                    .session(req)
                    .await
                    .map_err(|s| anyhow::anyhow!("BuildKit refused the session: {}", s.message()))?
                    .into_inner();
                let pump = tokio::spawn(async move {
                    loop {
                        match inbound.message().await {
                            Ok(Some(m)) => {
                                if in_tx.send(Bytes::from(m.data)).await.is_err() {
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::debug!("session stream failed: {e}");
                                break;
                            }
                        }
                    }
                });
                let io = ChannelIo {
                    rx: in_rx,
                    buf: Bytes::new(),
                    tx: tokio_util::sync::PollSender::new(out_tx),
                };
                let server = tokio::spawn(async move {
                    let incoming = one_connection(ServerIo(io));
                    if let Err(e) = router.serve_with_incoming(incoming).await {
                        tracing::debug!("session ended: {e}");
                    }
                });
                vec![server, pump]
            }
        };
        Ok(SessionHandle { tasks })
    }
}

/// The server's incoming connections: this one, then none, without ending (tonic's server
/// returns when its incoming stream ends, which would close the session).
fn one_connection<T>(io: T) -> impl Stream<Item = Result<T, std::io::Error>> {
    futures::stream::iter([Ok(io)]).chain(futures::stream::pending())
}

/// Bytes carried by messages of a gRPC stream, as a byte stream (reads from `rx`, writes to `tx`).
struct ChannelIo {
    rx: mpsc::Receiver<Bytes>,
    buf: Bytes,
    tx: tokio_util::sync::PollSender<Bytes>,
}

impl AsyncRead for ChannelIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if !self.buf.is_empty() {
                let n = self.buf.len().min(out.remaining());
                let chunk = self.buf.split_to(n);
                out.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match std::task::ready!(self.rx.poll_recv(cx)) {
                Some(b) => self.buf = b,
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl AsyncWrite for ChannelIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let closed = |_| std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        std::task::ready!(self.tx.poll_reserve(cx)).map_err(closed)?;
        self.tx
            .send_item(Bytes::copy_from_slice(buf))
            .map_err(closed)?;
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}

/// A byte stream tonic's server can serve one HTTP/2 connection on.
struct ServerIo<T>(T);

impl<T> Connected for ServerIo<T> {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl<T: AsyncRead + Unpin> AsyncRead for ServerIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ServerIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

struct HealthService;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        _r: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }
    async fn list(
        &self,
        _r: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("not offered"))
    }
    type WatchStream = futures::stream::Empty<Result<HealthCheckResponse, Status>>;
    async fn watch(
        &self,
        _r: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not offered"))
    }
}

struct AuthService {
    creds: Arc<CredentialStore>,
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn credentials(
        &self,
        r: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = &r.get_ref().host;
        let resp = match self.creds.for_host(host) {
            Some(c) => {
                tracing::debug!(
                    "BuildKit asked for credentials for {host}: {}",
                    c.describe()
                );
                CredentialsResponse {
                    username: c.username.clone(),
                    secret: c.secret.expose().to_string(),
                }
            }
            None => {
                tracing::debug!("BuildKit asked for credentials for {host}: none");
                CredentialsResponse::default()
            }
        };
        Ok(Response::new(resp))
    }
    async fn fetch_token(
        &self,
        _r: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("not offered"))
    }
    async fn get_token_authority(
        &self,
        _r: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("not offered"))
    }
    async fn verify_token_authority(
        &self,
        _r: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("not offered"))
    }
}

struct FileSyncService {
    dirs: Arc<HashMap<String, LocalDir>>,
}

fn packet(t: PacketType, id: u32, data: Vec<u8>) -> Packet {
    Packet {
        r#type: t as i32,
        stat: None,
        id,
        data,
    }
}

fn meta_all(r: &Request<Streaming<Packet>>, key: &str) -> Vec<String> {
    r.metadata()
        .get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect()
}

/// What the outgoing stream carries: a packet, or the end of the exchange.
enum Out {
    P(Packet),
    End,
}

type PacketStream = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = PacketStream;
    type TarStreamStream = PacketStream;

    async fn diff_copy(
        &self,
        r: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        let name = meta_all(&r, "dir-name")
            .into_iter()
            .next()
            .unwrap_or_default();
        let Some(dir) = self.dirs.get(&name).cloned() else {
            return Err(Status::not_found(format!(
                "no local folder {name:?} in this session"
            )));
        };
        let mut include = meta_all(&r, "include-patterns");
        // fsutil walks only the follow paths when they are given (the Dockerfile, its .dockerignore).
        include.extend(meta_all(&r, "followpaths"));
        let mut exclude = meta_all(&r, "exclude-patterns");
        let override_excludes = meta_all(&r, "override-excludes")
            .first()
            .is_some_and(|v| v == "true");
        if !dir.excludes.is_empty() && !override_excludes {
            exclude = dir.excludes.clone();
        }
        tracing::debug!(
            "file sync of {name:?} ({}): include {include:?}, exclude {exclude:?}",
            dir.root.display()
        );
        let filter = Filter::new(&include, &exclude)
            .map_err(|e| Status::invalid_argument(format!("{e:#}")))?;
        let root = dir.root.clone();
        let entries = tokio::task::spawn_blocking(move || walk(&root, &filter))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(format!("{e:#}")))?;
        let entries = Arc::new(entries);

        let (tx, rx) = mpsc::channel::<Out>(64);
        let (req_tx, req_rx) = std::sync::mpsc::channel::<u32>();

        // The stats, in walk order, then an empty STAT for the end of the list.
        let stats_tx = tx.clone();
        let stats = entries.clone();
        tokio::spawn(async move {
            for e in stats.iter() {
                let p = Packet {
                    r#type: PacketType::PacketStat as i32,
                    stat: Some(e.stat.clone()),
                    id: 0,
                    data: vec![],
                };
                if stats_tx.send(Out::P(p)).await.is_err() {
                    return;
                }
            }
            let _ = stats_tx
                .send(Out::P(packet(PacketType::PacketStat, 0, vec![])))
                .await;
        });

        // File contents, read on blocking threads, a few files at a time (as fsutil's sender):
        // the receiver asks for many files at once, and one reader would leave it waiting.
        let req_rx = Arc::new(std::sync::Mutex::new(req_rx));
        for _ in 0..SENDERS {
            let data_tx = tx.clone();
            let files = entries.clone();
            let req_rx = req_rx.clone();
            tokio::task::spawn_blocking(move || send_files(&files, &req_rx, data_tx));
        }

        // The receiver's requests, and its FIN at the end.
        let mut inbound = r.into_inner();
        let started = std::time::Instant::now();
        tokio::spawn(async move {
            let mut requests = 0usize;
            let mut first_req: Option<std::time::Duration> = None;
            loop {
                match inbound.message().await {
                    Ok(Some(p)) => match PacketType::try_from(p.r#type) {
                        Ok(PacketType::PacketReq) => {
                            requests += 1;
                            first_req.get_or_insert_with(|| started.elapsed());
                            if req_tx.send(p.id).is_err() {
                                break;
                            }
                        }
                        Ok(PacketType::PacketFin) => {
                            tracing::debug!(
                                "file sync of {name:?} done in {:.2?}: {requests} files asked for, the first after {:.2?}",
                                started.elapsed(),
                                first_req.unwrap_or_default()
                            );
                            let _ = tx
                                .send(Out::P(packet(PacketType::PacketFin, 0, vec![])))
                                .await;
                            let _ = tx.send(Out::End).await;
                            break;
                        }
                        Ok(PacketType::PacketErr) => {
                            tracing::warn!(
                                "BuildKit reported an error receiving files: {}",
                                String::from_utf8_lossy(&p.data)
                            );
                            let _ = tx.send(Out::End).await;
                            break;
                        }
                        _ => {}
                    },
                    Ok(None) | Err(_) => {
                        let _ = tx.send(Out::End).await;
                        break;
                    }
                }
            }
        });

        let out = futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Some(Out::P(p)) => Some((Ok(p), rx)),
                Some(Out::End) | None => None,
            }
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn tar_stream(
        &self,
        _r: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        Err(Status::unimplemented("TarStream is not offered"))
    }
}

/// Send the bytes of each requested file as DATA packets, then an empty DATA for its end.
fn send_files(
    entries: &[Entry],
    reqs: &std::sync::Mutex<std::sync::mpsc::Receiver<u32>>,
    tx: mpsc::Sender<Out>,
) {
    loop {
        let next = match reqs.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok(id) = next else { return };
        let Some(e) = entries.get(id as usize).filter(|e| e.is_regular()) else {
            let msg = format!("invalid file request {id}");
            let _ = tx.blocking_send(Out::P(packet(PacketType::PacketErr, 0, msg.into_bytes())));
            return;
        };
        let mut f = match std::fs::File::open(&e.abs) {
            Ok(f) => f,
            Err(err) => {
                let msg = format!("cannot open {}: {err}", e.stat.path);
                let _ =
                    tx.blocking_send(Out::P(packet(PacketType::PacketErr, 0, msg.into_bytes())));
                return;
            }
        };
        let mut left = e.stat.size.max(0) as usize;
        loop {
            // Read straight into the packet's buffer, sized to what the file still holds.
            let mut buf = vec![0u8; left.clamp(1, CHUNK)];
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    left = left.saturating_sub(n);
                    if tx
                        .blocking_send(Out::P(packet(PacketType::PacketData, id, buf)))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    let msg = format!("cannot read {}: {err}", e.stat.path);
                    let _ = tx.blocking_send(Out::P(packet(
                        PacketType::PacketErr,
                        0,
                        msg.into_bytes(),
                    )));
                    return;
                }
            }
        }
        if tx
            .blocking_send(Out::P(packet(PacketType::PacketData, id, vec![])))
            .is_err()
        {
            return;
        }
    }
}
