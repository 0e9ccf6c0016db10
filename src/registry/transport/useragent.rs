//! The user-agent layer: every request names stackctl and its version (registries log it;
//! GHCR and Docker Hub ask clients to say who they are).

use super::{Call, Transport, TransportError};
use reqwest::header::{HeaderValue, USER_AGENT};

/// What stackctl calls itself.
pub const AGENT: &str = concat!("stackctl/", env!("CARGO_PKG_VERSION"));

/// Sets `User-Agent` on requests that have none.
pub struct UserAgent<T> {
    inner: T,
}

impl<T> UserAgent<T> {
    pub fn new(inner: T) -> Self {
        UserAgent { inner }
    }
}

impl<T: Transport> Transport for UserAgent<T> {
    async fn round_trip(&self, mut call: Call<'_>) -> Result<reqwest::Response, TransportError> {
        call.request
            .headers_mut()
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(AGENT));
        self.inner.round_trip(call).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::transport::http::Http;
    use crate::registry::transport::test_server;

    #[tokio::test]
    async fn names_stackctl_unless_set() {
        let srv = test_server::start(|_, _| (200, vec![], String::new())).await;
        let t = UserAgent::new(Http::new().unwrap());
        let plain = {
            crate::registry::transport::http::install_crypto_provider();
            reqwest::Client::new()
        };
        let req = plain.get(format!("{}/v2/", srv.base)).build().unwrap();
        t.round_trip(Call::new(req, &[], "GET")).await.unwrap();
        let req = plain
            .get(format!("{}/v2/", srv.base))
            .header(USER_AGENT, "other/1")
            .build()
            .unwrap();
        t.round_trip(Call::new(req, &[], "GET")).await.unwrap();
        let seen = srv.seen();
        assert_eq!(
            (seen[0].method.as_str(), seen[0].target.as_str()),
            ("GET", "/v2/")
        );
        assert_eq!(seen[0].header("user-agent"), Some(AGENT));
        assert!(AGENT.starts_with("stackctl/"));
        assert_eq!(seen[1].header("user-agent"), Some("other/1"));
    }
}
