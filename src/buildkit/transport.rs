//! Where BuildKit is and how to reach its Control service.
//!
//! Two kinds of address, one protocol:
//! - buildkitd (`tcp://HOST:PORT`, optionally with mTLS, or `unix:///run/buildkit/buildkitd.sock`):
//!   plain gRPC over HTTP/2; the client session rides inside the Control service's `Session` stream.
//! - a Docker engine (`docker://`, `docker-unix:///var/run/docker.sock`, `docker-tcp://HOST:PORT`):
//!   `POST /grpc` upgraded to h2c carries the Control service and `POST /session` (also h2c)
//!   carries the session.
//!
//! bollard speaks `/grpc` and `/session` too, but its upgrade (`Docker::process_upgraded`) and its
//! drivers are crate-private and tie the session to a tar upload; so the HTTP/1.1 → h2c upgrade is
//! done here with hyper's client connection and `hyper::upgrade`, a few lines.

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::{Channel, Endpoint};

/// The Docker socket used when nothing else is configured.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Files for mutual TLS to a remote buildkitd.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate that signed buildkitd's certificate.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Client key (PEM).
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }
}

/// How a Docker engine is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineSocket {
    Unix(PathBuf),
    /// `HOST:PORT`, plain HTTP (a TLS-protected engine is not supported).
    Tcp(String),
}

/// A parsed `--buildkit` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// buildkitd over TCP (`HOST:PORT`), with TLS files when given.
    Tcp { hostport: String, tls: TlsFiles },
    /// buildkitd on a unix socket.
    Unix(PathBuf),
    /// BuildKit inside a Docker engine.
    Engine(EngineSocket),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp { hostport, tls } if tls.is_empty() => write!(f, "tcp://{hostport}"),
            Address::Tcp { hostport, .. } => write!(f, "tcp://{hostport} (TLS)"),
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Engine(EngineSocket::Unix(p)) => write!(f, "docker-unix://{}", p.display()),
            Address::Engine(EngineSocket::Tcp(h)) => write!(f, "docker-tcp://{h}"),
        }
    }
}

impl Address {
    /// Parse an address. `docker://` means the engine DOCKER_HOST names (else the default socket).
    pub fn parse(s: &str, tls: TlsFiles) -> anyhow::Result<Address> {
        let s = s.trim();
        // Messages show the address with any `user:password@` replaced by `***@`.
        let shown = crate::credentials::mask_userinfo(s);
        let addr = if let Some(rest) = s.strip_prefix("tcp://") {
            return Ok(Address::Tcp {
                hostport: host_port("tcp", rest)?,
                tls,
            });
        } else if let Some(rest) = s.strip_prefix("unix://") {
            Address::Unix(PathBuf::from(rest))
        } else if let Some(rest) = s.strip_prefix("docker-unix://") {
            Address::Engine(EngineSocket::Unix(PathBuf::from(rest)))
        } else if let Some(rest) = s.strip_prefix("docker-tcp://") {
            Address::Engine(EngineSocket::Tcp(host_port("docker-tcp", rest)?))
        } else if s == "docker://" || s == "docker" {
            Address::Engine(docker_host_socket()?)
        } else {
            bail!(
                "BuildKit address {shown:?} is not understood: use tcp://HOST:PORT, unix:///PATH, \
                 docker://, docker-unix:///PATH or docker-tcp://HOST:PORT"
            );
        };
        let s = shown;
        if !tls.is_empty() {
            bail!("--buildkit-tls-* options only apply to a tcp:// BuildKit address, not {s:?}");
        }
        Ok(addr)
    }

    /// The address to use when `--buildkit` is not given: BUILDKIT_HOST, else the local Docker
    /// engine (DOCKER_HOST, else /var/run/docker.sock) when its socket exists.
    pub fn from_env(tls: TlsFiles) -> anyhow::Result<Address> {
        if let Ok(h) = std::env::var("BUILDKIT_HOST") {
            if !h.is_empty() {
                return Address::parse(&h, tls).context("in BUILDKIT_HOST");
            }
        }
        let sock = docker_host_socket()?;
        if let EngineSocket::Unix(p) = &sock {
            if !p.exists() {
                bail!(
                    "no BuildKit to talk to: BUILDKIT_HOST is not set and the Docker socket {} does \
                     not exist; give --buildkit ADDR",
                    p.display()
                );
            }
        }
        if !tls.is_empty() {
            bail!("--buildkit-tls-* options only apply to a tcp:// BuildKit address");
        }
        Ok(Address::Engine(sock))
    }
}

/// `HOST:PORT` of a `SCHEME://HOST:PORT` address, checked before any connection: no user
/// information (it would be a secret in messages and logs, and BuildKit does not use it; a
/// buildkitd authenticates clients by TLS certificate), no path, a port from 1 to 65535.
fn host_port(scheme: &str, rest: &str) -> anyhow::Result<String> {
    let hostport = rest.trim_end_matches('/');
    if let Some((_, after)) = hostport.rsplit_once('@') {
        bail!(
            "BuildKit address {scheme}://***@{after}: user information (USER:PASSWORD@) is not \
             supported in an address, and is not repeated here; a buildkitd checks clients by TLS \
             certificate (--buildkit-tls-cert, --buildkit-tls-key)"
        );
    }
    if hostport.contains('/') {
        bail!(
            "BuildKit address {scheme}://{hostport}: expected {scheme}://HOST:PORT, without a path"
        );
    }
    let Some((host, port)) = hostport.rsplit_once(':') else {
        bail!("BuildKit address {scheme}://{hostport}: expected {scheme}://HOST:PORT (the port is missing)");
    };
    if host.is_empty() || host == "[]" {
        bail!("BuildKit address {scheme}://{hostport}: the host is missing");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(hostport.to_string()),
        _ => bail!(
            "BuildKit address {scheme}://{hostport}: port {port:?} is not a port number (1 to 65535)"
        ),
    }
}

/// The engine socket DOCKER_HOST names (unix:// or tcp://), else the default socket.
fn docker_host_socket() -> anyhow::Result<EngineSocket> {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => {
            if let Some(p) = h.strip_prefix("unix://") {
                Ok(EngineSocket::Unix(PathBuf::from(p)))
            } else if let Some(t) = h.strip_prefix("tcp://") {
                Ok(EngineSocket::Tcp(
                    host_port("tcp", t).context("in DOCKER_HOST")?,
                ))
            } else {
                bail!(
                    "DOCKER_HOST={:?} is not understood (expected unix:///PATH or tcp://HOST:PORT)",
                    crate::credentials::mask_userinfo(&h)
                )
            }
        }
        _ => Ok(EngineSocket::Unix(PathBuf::from(DEFAULT_DOCKER_SOCKET))),
    }
}

/// A byte stream to an engine, before the upgrade.
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

async fn dial_engine(sock: &EngineSocket) -> std::io::Result<Box<dyn Io>> {
    Ok(match sock {
        EngineSocket::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
        EngineSocket::Tcp(h) => Box::new(tokio::net::TcpStream::connect(h.as_str()).await?),
    })
}

/// Open a connection to the engine and upgrade `POST path` to h2c with `headers`.
/// Returns the raw upgraded byte stream (HTTP/2 runs on it next).
pub async fn engine_upgrade(
    sock: &EngineSocket,
    path: &str,
    headers: &[(String, String)],
) -> anyhow::Result<Upgraded> {
    let io = dial_engine(sock)
        .await
        .with_context(|| format!("cannot connect to the Docker engine at {}", show(sock)))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .context("HTTP handshake with the Docker engine")?;
    tokio::spawn(async move {
        // Ends when the upgraded stream is dropped.
        let _ = conn.with_upgrades().await;
    });
    let mut req = http::Request::post(path)
        .header(http::header::HOST, "docker")
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "h2c");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Empty::<Bytes>::new())?;
    let resp = sender
        .send_request(req)
        .await
        .with_context(|| format!("POST {path} to the Docker engine"))?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        bail!(
            "the Docker engine at {} answered {} to POST {path} (expected an upgrade to h2c: \
             is it a Docker engine with BuildKit, API 1.31 or later?)",
            show(sock),
            resp.status()
        );
    }
    hyper::upgrade::on(resp)
        .await
        .context("upgrading the Docker engine connection to h2c")
}

fn show(sock: &EngineSocket) -> String {
    match sock {
        EngineSocket::Unix(p) => format!("unix://{}", p.display()),
        EngineSocket::Tcp(h) => format!("tcp://{h}"),
    }
}

/// The gRPC channel to BuildKit's Control service.
pub async fn control_channel(addr: &Address) -> anyhow::Result<Channel> {
    // Endpoint URI is only used for the :authority header when a connector is given.
    let endpoint = Endpoint::from_static("http://buildkit")
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    let channel = match addr {
        Address::Engine(sock) => {
            let sock = sock.clone();
            endpoint
                .connect_with_connector(tower::service_fn(move |_uri: http::Uri| {
                    let sock = sock.clone();
                    async move {
                        engine_upgrade(&sock, "/grpc", &[])
                            .await
                            .map_err(|e| std::io::Error::other(format!("{e:#}")))
                    }
                }))
                .await
        }
        Address::Unix(path) => {
            let path = path.clone();
            endpoint
                .connect_with_connector(tower::service_fn(move |_uri: http::Uri| {
                    let path = path.clone();
                    async move {
                        tokio::net::UnixStream::connect(&path)
                            .await
                            .map(TokioIo::new)
                    }
                }))
                .await
        }
        Address::Tcp { hostport, tls } => {
            if !tls.is_empty() {
                return tls_channel(endpoint, hostport, tls).await;
            }
            let hostport = hostport.clone();
            endpoint
                .connect_with_connector(tower::service_fn(move |_uri: http::Uri| {
                    let hostport = hostport.clone();
                    async move {
                        let s = tokio::net::TcpStream::connect(hostport.as_str()).await?;
                        s.set_nodelay(true)?;
                        Ok::<_, std::io::Error>(TokioIo::new(s))
                    }
                }))
                .await
        }
    };
    channel.map_err(|e| anyhow!("cannot reach BuildKit at {addr}: {}", flatten(&e)))
}

/// The rustls client configuration for a TLS buildkitd: its CA (else the system's roots), and
/// the client certificate and key when given (mutual TLS). HTTP/2 is asked for with ALPN.
pub fn tls_config(tls: &TlsFiles) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            let certs = CertificateDer::pem_file_iter(ca)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow!("--buildkit-tls-ca {}: {e}", ca.display()))?;
            if certs.is_empty() {
                bail!("--buildkit-tls-ca {}: no certificate in it", ca.display());
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| anyhow!("--buildkit-tls-ca {}: {e}", ca.display()))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow!("--buildkit-tls-cert {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| anyhow!("--buildkit-tls-key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| client_cert_error(cert, &e))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!("--buildkit-tls-cert and --buildkit-tls-key go together"),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Why rustls refused a client certificate, in words. A certificate signed with a plain
/// `openssl x509 -req` (no extensions) is X.509 v1, which buildctl accepts and rustls
/// (webpki) does not: that is the usual cause, not a key that does not match.
fn client_cert_error(cert: &std::path::Path, e: &rustls::Error) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("UnsupportedCertVersion") {
        return anyhow!(
            "--buildkit-tls-cert {}: an X.509 v1 certificate (made without extensions, e.g. by \
             a plain `openssl x509 -req`); stackctl (rustls) needs v3: sign it again with \
             extensions, e.g. `openssl x509 -req ... -extfile <(printf \
             'extendedKeyUsage=clientAuth\\n')` (see docs/github-actions.md)",
            cert.display()
        );
    }
    anyhow!(
        "--buildkit-tls-cert {}: the client certificate and key do not go together, or the \
         certificate is not usable: {text}",
        cert.display()
    )
}

/// A channel to buildkitd over TLS (tonic's own TLS is not enabled; tokio-rustls does it here).
async fn tls_channel(
    endpoint: Endpoint,
    hostport: &str,
    tls: &TlsFiles,
) -> anyhow::Result<Channel> {
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls_config(tls)?));
    let host = hostport
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(hostport)
        .to_string();
    let server_name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| anyhow!("tcp://{hostport}: {host:?} is not a TLS server name: {e}"))?;
    let hostport = hostport.to_string();
    let hp = hostport.clone();
    endpoint
        .connect_with_connector(tower::service_fn(move |_uri: http::Uri| {
            let (connector, server_name, hostport) =
                (connector.clone(), server_name.clone(), hp.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(hostport.as_str()).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| {
            anyhow!(
                "cannot reach BuildKit at tcp://{hostport} (TLS): {}",
                flatten(&e)
            )
        })
}

/// An error and its causes on one line (gRPC/hyper errors nest deeply).
pub fn flatten(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            Address::parse("tcp://127.0.0.1:1234", TlsFiles::default()).unwrap(),
            Address::Tcp {
                hostport: "127.0.0.1:1234".into(),
                tls: TlsFiles::default()
            }
        );
        assert_eq!(
            Address::parse("unix:///run/buildkit/buildkitd.sock", TlsFiles::default()).unwrap(),
            Address::Unix("/run/buildkit/buildkitd.sock".into())
        );
        assert_eq!(
            Address::parse("docker-unix:///var/run/docker.sock", TlsFiles::default()).unwrap(),
            Address::Engine(EngineSocket::Unix("/var/run/docker.sock".into()))
        );
        assert!(Address::parse("http://x", TlsFiles::default()).is_err());
        assert!(Address::parse("tcp://nohost", TlsFiles::default()).is_err());
        let e = Address::parse("tcp://user:secret@host:1234", TlsFiles::default())
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret") && !e.contains("user:"), "{e}");
        assert!(
            e.contains("***@host:1234") && e.contains("not supported"),
            "{e}"
        );
        let e = Address::parse("docker-tcp://u:pw@h:1", TlsFiles::default())
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pw"), "{e}");
        let e = Address::parse("https://u:pw@h:1", TlsFiles::default())
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pw") && e.contains("https://***@h:1"), "{e}");
        for bad in [
            "tcp://host:99999",
            "tcp://host:0",
            "tcp://host:http",
            "tcp://host:",
        ] {
            let e = Address::parse(bad, TlsFiles::default())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("is not a port number (1 to 65535)"),
                "{bad}: {e}"
            );
        }
        assert!(Address::parse("tcp://:1234", TlsFiles::default()).is_err());
        assert!(Address::parse("tcp://[::1]:1234", TlsFiles::default()).is_ok());
        let tls = TlsFiles {
            ca: Some("/ca.pem".into()),
            ..Default::default()
        };
        assert!(Address::parse("unix:///x.sock", tls).is_err());
    }
}
