//! The debug-log layer: one line per attempt with its method, URL, status and time
//! (`RUST_LOG=stackctl::registry=debug`). Never a header, and the URL without its query
//! (upload URLs carry the registry's upload state; token URLs the scopes asked for).

use super::{Call, Transport, TransportError};
use std::time::{Duration, Instant};

pub struct DebugLog<T> {
    inner: T,
}

impl<T> DebugLog<T> {
    pub fn new(inner: T) -> Self {
        DebugLog { inner }
    }
}

/// The line for one attempt: `GET http://host/v2/x/manifests/t → 200 in 3 ms`.
pub fn line(method: &str, url: &url::Url, outcome: &str, took: Duration) -> String {
    format!(
        "{method} {}{} → {outcome} in {} ms",
        &url[..url::Position::BeforePath],
        url.path(),
        took.as_millis()
    )
}

impl<T: Transport> Transport for DebugLog<T> {
    async fn round_trip(&self, call: Call<'_>) -> Result<reqwest::Response, TransportError> {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return self.inner.round_trip(call).await;
        }
        let method = call.request.method().to_string();
        let url = call.request.url().clone();
        let started = Instant::now();
        let out = self.inner.round_trip(call).await;
        let outcome = match &out {
            Ok(r) => r.status().as_u16().to_string(),
            Err(e) => format!("no answer ({e})"),
        };
        tracing::debug!("{}", line(&method, &url, &outcome, started.elapsed()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::transport::http::Http;
    use crate::registry::transport::test_server;
    use std::sync::{Arc, Mutex};

    /// A writer for the test's subscriber: everything logged, in one buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn logs_method_url_status_and_time_without_secrets() {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || w.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(sub);
        let srv = test_server::start(|_, _| (201, vec![], String::new())).await;
        let t = DebugLog::new(Http::new().unwrap());
        let req = {
            crate::registry::transport::http::install_crypto_provider();
            reqwest::Client::new()
        }
        .put(format!(
            "{}/v2/a/blobs/uploads/1?_state=SECRETSTATE",
            srv.base
        ))
        .header("authorization", "Bearer SECRETTOKEN")
        .build()
        .unwrap();
        t.round_trip(Call::new(req, &[], "PUT")).await.unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains(&format!("PUT {}/v2/a/blobs/uploads/1 → 201 in ", srv.base)),
            "{text}"
        );
        assert!(text.contains(" ms"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
    }
}
