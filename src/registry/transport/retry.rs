//! Retries with exponential backoff and jitter, and a timeout on every request.
//!
//! Retried: 429 (honouring `Retry-After`), 500/502/503/504, and requests that never got an
//! answer (refused or dropped connection, timeout). Everything else is returned at once.

use super::{Call, Transport, TransportError};
use rand::Rng;
use reqwest::{Response, StatusCode};
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The delay before the first retry; it doubles each time (with jitter).
    pub base_delay: Duration,
    /// The longest wait between two attempts (also caps `Retry-After`).
    pub max_delay: Duration,
    /// The timeout of one request that carries no large body (manifests, HEADs, tokens).
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Attempts of one write that were sent but got no answer: such a write may still land
/// later (a proxy or a slow registry can hold it after the client gave up), so its target's
/// state is only known after a settle time.
#[derive(Debug, Default)]
pub struct Unanswered {
    last: std::sync::Mutex<Option<(u32, std::time::Instant)>>,
    in_flight: std::sync::atomic::AtomicBool,
}

impl Unanswered {
    /// Whether an attempt is on its way now (sent or being sent, no answer yet).
    pub fn in_flight(&self) -> bool {
        self.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn set_in_flight(&self, v: bool) {
        self.in_flight.store(v, std::sync::atomic::Ordering::SeqCst);
    }
    /// Note one attempt without an answer, now.
    pub fn note(&self) {
        let mut l = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let n = l.map_or(0, |(n, _)| n);
        *l = Some((n + 1, std::time::Instant::now()));
    }
    /// How many attempts got no answer, and when the last one was given up.
    pub fn get(&self) -> Option<(u32, std::time::Instant)> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub fn retryable_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// Whether a transport error may go away on a second try.
pub fn transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

/// The wait a `Retry-After` header asks for: seconds, or an HTTP date.
pub fn retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let now = chrono::Utc::now();
    let d = when.with_timezone(&chrono::Utc) - now;
    Some(d.to_std().unwrap_or(Duration::ZERO))
}

impl RetryPolicy {
    /// The wait before retry number `n` (1-based): `base * 2^(n-1)`, capped, with jitter
    /// between half and all of it so that concurrent clients do not retry in step.
    pub fn backoff(&self, n: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (n.saturating_sub(1)).min(16));
        let d = exp.min(self.max_delay);
        let ms = d.as_millis() as u64;
        let jittered = rand::rng().random_range(ms / 2..=ms.max(1));
        Duration::from_millis(jittered)
    }
}

/// The retry layer: sends a call again as the module docs say, at most `policy.attempts`
/// times. A call whose body is a stream cannot be copied and is sent once (its caller
/// starts over, as `copy_blob` does).
pub struct Retry<T> {
    inner: T,
    policy: RetryPolicy,
}

impl<T> Retry<T> {
    pub fn new(inner: T, policy: RetryPolicy) -> Self {
        Retry { inner, policy }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<T: Transport> Transport for Retry<T> {
    async fn round_trip(&self, call: Call<'_>) -> Result<Response, TransportError> {
        let what = call.what;
        let unanswered = call.unanswered;
        let attempts = self.policy.attempts.max(1);
        let mut attempt = 1;
        loop {
            let Some(copy) = call.request.try_clone() else {
                return self.inner.round_trip(call).await;
            };
            if let Some(u) = unanswered {
                u.set_in_flight(true);
            }
            let sent = self.inner.round_trip(call.with_request(copy)).await;
            if let Some(u) = unanswered {
                u.set_in_flight(false);
            }
            let last = attempt >= attempts;
            let wait = match sent {
                Ok(resp) if retryable_status(resp.status()) && !last => {
                    let status = resp.status();
                    let asked = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(retry_after);
                    let wait = match asked {
                        Some(d)
                            if status == StatusCode::TOO_MANY_REQUESTS
                                || status == StatusCode::SERVICE_UNAVAILABLE =>
                        {
                            d.min(self.policy.max_delay)
                        }
                        _ => self.policy.backoff(attempt),
                    };
                    tracing::warn!(
                        "{what}: registry answered {status}; retry {attempt}/{} in {:.1}s",
                        attempts - 1,
                        wait.as_secs_f64()
                    );
                    wait
                }
                Ok(resp) => return Ok(resp),
                Err(TransportError::Http(e)) if !e.is_connect() && unanswered.is_some() => {
                    // Only a refused connection proves the request never left.
                    if let Some(u) = unanswered {
                        u.note();
                    }
                    if !transient(&e) || last {
                        return Err(TransportError::Http(e));
                    }
                    let wait = self.policy.backoff(attempt);
                    tracing::warn!(
                        "{what}: {e} (no answer: it may still land); retry {attempt}/{} in {:.1}s",
                        attempts - 1,
                        wait.as_secs_f64()
                    );
                    wait
                }
                Err(e) if e.transient() && !last => {
                    let wait = self.policy.backoff(attempt);
                    tracing::warn!(
                        "{what}: {e}; retry {attempt}/{} in {:.1}s",
                        attempts - 1,
                        wait.as_secs_f64()
                    );
                    wait
                }
                Err(e) => return Err(e),
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::transport::http::Http;
    use crate::registry::transport::test_server;

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(2),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn retries_5xx_and_429_honouring_retry_after() {
        // 429 asking for 1 s, then 503, then 200.
        let srv = test_server::start(|_, n| match n {
            0 => (429, vec![("Retry-After".into(), "1".into())], String::new()),
            1 => (503, vec![], String::new()),
            _ => (200, vec![], "ok".into()),
        })
        .await;
        let t = Retry::new(Http::new().unwrap(), quick(5));
        let req = {
            crate::registry::transport::http::install_crypto_provider();
            reqwest::Client::new()
        }
        .get(format!("{}/v2/", srv.base))
        .build()
        .unwrap();
        let started = std::time::Instant::now();
        let resp = t.round_trip(Call::new(req, &[], "GET")).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(srv.seen().len(), 3);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After ignored"
        );
    }

    #[tokio::test]
    async fn gives_up_after_the_bound_and_never_retries_a_refusal() {
        let srv = test_server::start(|s, _| {
            if s.target.contains("busy") {
                (502, vec![], String::new())
            } else {
                (404, vec![], String::new())
            }
        })
        .await;
        let t = Retry::new(Http::new().unwrap(), quick(3));
        let get = |p: &str| {
            {
                crate::registry::transport::http::install_crypto_provider();
                reqwest::Client::new()
            }
            .get(format!("{}/{p}", srv.base))
            .build()
            .unwrap()
        };
        // 502 three times (the bound), then a 404 once: requests seen in all, 3 then 4.
        for (path, status, seen) in [("busy", 502, 3), ("gone", 404, 4)] {
            let resp = t
                .round_trip(Call::new(get(path), &[], "GET"))
                .await
                .unwrap();
            assert_eq!(resp.status(), status, "{path}");
            assert_eq!(srv.seen().len(), seen, "{path}");
        }
    }

    #[tokio::test]
    async fn an_unanswered_write_is_noted() {
        // A port nobody listens on: refused, so proven not sent, not noted.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap();
        drop(free);
        let t = Retry::new(Http::new().unwrap(), quick(2));
        let u = Unanswered::default();
        let put = |addr: std::net::SocketAddr| {
            let req = {
                crate::registry::transport::http::install_crypto_provider();
                reqwest::Client::new()
            }
            .put(format!("http://{addr}/v2/a/manifests/t"))
            .timeout(Duration::from_millis(200))
            .body("{}")
            .build()
            .unwrap();
            let mut call = Call::new(req, &[], "PUT");
            call.unanswered = Some(&u);
            call
        };
        assert!(t.round_trip(put(addr)).await.is_err());
        assert!(u.get().is_none());
        assert!(!u.in_flight());

        // A server that takes the request and never answers: noted on every attempt.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = vec![];
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        assert!(t.round_trip(put(addr)).await.is_err());
        assert_eq!(u.get().map(|(n, _)| n), Some(2));
        assert!(!u.in_flight());
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..Default::default()
        };
        let d1 = p.backoff(1);
        assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
        let d3 = p.backoff(3);
        assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
        assert!(p.backoff(30) <= Duration::from_millis(1000));
    }
}
