//! Retries with exponential backoff and jitter, and a timeout on every request.
//!
//! Retried: 429 (honouring `Retry-After`), 500/502/503/504, and requests that never got an
//! answer (refused or dropped connection, timeout). Everything else is returned at once.

use rand::Rng;
use reqwest::{RequestBuilder, Response, StatusCode};
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

    /// Send the request `build` makes, retrying as described in the module docs.
    /// `what` names the request in log lines (never a secret: no headers).
    pub async fn send(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, reqwest::Error> {
        self.send_noting(what, build, None).await
    }

    /// [`send`](Self::send), noting in `unanswered` every attempt that may have reached the
    /// server but got no answer (a timeout, a connection dropped after the request went out).
    pub async fn send_noting(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder,
        unanswered: Option<&Unanswered>,
    ) -> Result<Response, reqwest::Error> {
        let mut attempt = 1;
        loop {
            if let Some(u) = unanswered {
                u.set_in_flight(true);
            }
            let sent = build().send().await;
            if let Some(u) = unanswered {
                u.set_in_flight(false);
            }
            match sent {
                Ok(resp) if retryable_status(resp.status()) && attempt < self.attempts => {
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
                            d.min(self.max_delay)
                        }
                        _ => self.backoff(attempt),
                    };
                    tracing::warn!(
                        "{what}: registry answered {status}; retry {attempt}/{} in {:.1}s",
                        self.attempts - 1,
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
                Ok(resp) => return Ok(resp),
                Err(e) if !e.is_connect() && unanswered.is_some() => {
                    // Only a refused connection proves the request never left.
                    if let Some(u) = unanswered {
                        u.note();
                    }
                    if !(transient(&e) && attempt < self.attempts) {
                        return Err(e);
                    }
                    let wait = self.backoff(attempt);
                    tracing::warn!(
                        "{what}: {e} (no answer: it may still land); retry {attempt}/{} in {:.1}s",
                        self.attempts - 1,
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) if transient(&e) && attempt < self.attempts => {
                    let wait = self.backoff(attempt);
                    tracing::warn!(
                        "{what}: {e}; retry {attempt}/{} in {:.1}s",
                        self.attempts - 1,
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
