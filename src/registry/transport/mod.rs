//! The transport stack every registry request goes through, in small layers as
//! go-containerregistry's `remote/transport` has them. From the outside in:
//!
//! - [`Auth`](self::auth::Auth): the registry's challenge, basic or bearer, tokens cached
//!   per scope; a 401 is answered once with the credential or token it asks for. Its token
//!   requests go down the layers below it;
//! - [`UserAgent`](self::useragent::UserAgent): names stackctl in `User-Agent`;
//! - [`Retry`](self::retry::Retry): 429/5xx and unanswered requests again, with backoff,
//!   `Retry-After` and a bound;
//! - [`DebugLog`](self::debuglog::DebugLog): one debug line per attempt (method, URL without
//!   its query, status, time), never a header;
//! - [`Http`](self::http::Http): the HTTP clients (TLS roots loaded on the first https
//!   request only).
//!
//! Which scheme a host is spoken to with is decided before, when the URL is made
//! ([`scheme`]). Operation-sized functions (`RegistryClient`) sit on top.

pub mod auth;
pub mod debuglog;
pub mod http;
pub mod retry;
pub mod scheme;
pub mod useragent;

use auth::AuthError;
use retry::Unanswered;
use std::future::Future;

/// One request and what the layers need to know about it.
pub struct Call<'a> {
    pub request: reqwest::Request,
    /// The token scopes the request needs (`repository:NAME:pull`), for the auth layer.
    pub scopes: &'a [String],
    /// Words for log lines (`PUT ghcr.io/o/x:t`); never a secret.
    pub what: &'a str,
    /// Where the retry layer notes attempts of a write that got no answer.
    pub unanswered: Option<&'a Unanswered>,
}

impl<'a> Call<'a> {
    pub fn new(request: reqwest::Request, scopes: &'a [String], what: &'a str) -> Self {
        Call {
            request,
            scopes,
            what,
            unanswered: None,
        }
    }

    /// The same call with another request (a copy for a second attempt).
    pub fn with_request(&self, request: reqwest::Request) -> Call<'a> {
        Call {
            request,
            scopes: self.scopes,
            what: self.what,
            unanswered: self.unanswered,
        }
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No answer from the server (refused, dropped, timed out); the URL is left out.
    #[error("{0}")]
    Http(reqwest::Error),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The client could not be set up (TLS roots).
    #[error("{0}")]
    Setup(String),
}

impl TransportError {
    /// Whether asking again may work: a transport failure that is not a refusal by setup.
    pub fn transient(&self) -> bool {
        matches!(self, TransportError::Http(e) if retry::transient(e))
    }
}

impl From<reqwest::Error> for TransportError {
    fn from(e: reqwest::Error) -> Self {
        TransportError::Http(e.without_url())
    }
}

/// One layer: sends a call on (to the layer below) and gives back the answer.
pub trait Transport: Send + Sync {
    fn round_trip(
        &self,
        call: Call<'_>,
    ) -> impl Future<Output = Result<reqwest::Response, TransportError>> + Send;
}

/// `HOST[:PORT]` of a URL, as credentials and tokens are keyed.
pub fn authority(url: &url::Url) -> String {
    url[url::Position::BeforeHost..url::Position::AfterPort].to_string()
}

/// A tiny HTTP/1.1 server on loopback for the layers' unit tests: a real socket and a real
/// client, answers given by a function of the request seen.
#[cfg(test)]
pub(crate) mod test_server {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A request as the server saw it.
    #[derive(Clone, Debug)]
    pub struct Seen {
        pub method: String,
        /// Path and query.
        pub target: String,
        pub headers: Vec<(String, String)>,
    }

    impl Seen {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    pub struct Server {
        pub base: String,
        pub seen: Arc<Mutex<Vec<Seen>>>,
    }

    /// Start a server; `answer` gets each request and the number of requests before it,
    /// and returns `(status, headers, body)`.
    pub async fn start(
        answer: impl Fn(&Seen, usize) -> (u16, Vec<(String, String)>, String) + Send + Sync + 'static,
    ) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let answer = answer.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap_or("").split(' ');
                    let method = first.next().unwrap_or("").to_string();
                    let target = first.next().unwrap_or("").to_string();
                    let headers: Vec<(String, String)> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .collect();
                    let seen = Seen {
                        method,
                        target,
                        headers,
                    };
                    let len: usize = seen
                        .header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let n = {
                        let mut l = log.lock().unwrap();
                        l.push(seen.clone());
                        l.len() - 1
                    };
                    let (status, headers, body) = answer(&seen, n);
                    let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
                    for (k, v) in headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
                    let _ = sock.write_all(out.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Server { base, seen }
    }

    impl Server {
        pub fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }
}
