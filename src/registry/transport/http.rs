//! The bottom of the transport stack ([`super`]): the HTTP clients, so that start-up reads no certificate: one client
//! without TLS roots for plain-http registries (loopback, --insecure-registry), and one with
//! the system's roots, built on the first https request only (building it reads every file
//! in /etc/ssl/certs, the largest part of a short command's time).

use super::{Call, Transport, TransportError};
use std::sync::OnceLock;
use std::time::Duration;

/// Both clients; cheap to share, `reqwest::Client` clones share one pool.
pub struct Http {
    plain: reqwest::Client,
    tls: OnceLock<Result<reqwest::Client, String>>,
}

/// One TLS crypto provider in the tree: ring, which the buildkitd mTLS code and bollard
/// use. reqwest's `rustls` feature would add aws-lc-rs, a second provider with a C and
/// assembly build of its own, so reqwest is built without one and is given ring here,
/// before any client is built (reqwest panics on a client built with no provider).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is installed already; that one serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        // A stalled transfer fails even when the whole one may take long (big blobs).
        .read_timeout(Duration::from_secs(120))
}

impl Http {
    pub fn new() -> anyhow::Result<Http> {
        Ok(Http {
            // No roots at all: this client never verifies a certificate, it only talks http.
            plain: builder()
                .tls_certs_only(Vec::<reqwest::Certificate>::new())
                .build()?,
            tls: OnceLock::new(),
        })
    }

    /// The client for `url`: the plain one for `http://`, else the TLS one (built now if it
    /// is the first https request).
    pub fn for_url(&self, url: &str) -> Result<&reqwest::Client, String> {
        if url.starts_with("http://") {
            return Ok(&self.plain);
        }
        self.tls
            .get_or_init(|| {
                tracing::debug!("loading the system's TLS roots");
                builder()
                    .build()
                    .map_err(|e| format!("cannot set up TLS (system root certificates): {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The plain-http client (no TLS roots): also what requests are made with.
    pub fn plain(&self) -> &reqwest::Client {
        &self.plain
    }

    /// Whether the TLS client (and the system's roots) was loaded.
    pub fn tls_loaded(&self) -> bool {
        self.tls.get().is_some()
    }
}

impl Transport for Http {
    async fn round_trip(&self, call: Call<'_>) -> Result<reqwest::Response, TransportError> {
        let client = self
            .for_url(call.request.url().as_str())
            .map_err(TransportError::Setup)?;
        Ok(client.execute(call.request).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_loaded_only_for_https() {
        let h = Http::new().unwrap();
        assert!(h.for_url("http://127.0.0.1:5000/v2/").is_ok());
        assert!(!h.tls_loaded());
        let _ = h.for_url("https://ghcr.io/v2/");
        assert!(h.tls_loaded());
    }
}
