//! The auth layer of the transport stack: anonymous, basic, and the bearer-token challenge
//! (`WWW-Authenticate: Bearer realm=…,service=…,scope=…`, as GHCR and Docker Hub use).
//! A request goes out anonymously until its host has answered a 401; the challenge is
//! learned and the request sent once more with what it asks for. Token requests go through
//! the layers below (retry, log, HTTP).
//!
//! Tokens are cached per registry and scope set until shortly before they expire. Neither
//! tokens nor passwords ever go into a log line or an error message: errors name the
//! credential with [`Credential::describe`].

use super::{authority, Call, Transport, TransportError};
use crate::credentials::{Credential, CredentialStore};
use base64::Engine;
use reqwest::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a registry asked for in its `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` value. Only the two schemes registries use are understood.
/// (Hand-written: the grammar needed is `Scheme k="v", k=v`; no maintained crate covers
/// the header without pulling in a whole HTTP auth framework.)
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    out
}

/// How a registry wants to be spoken to, once known.
#[derive(Clone, Debug)]
enum Scheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

struct CachedToken {
    token: String,
    until: Instant,
}

/// Authentication state shared by all requests of one client.
pub struct Authenticator {
    creds: CredentialStore,
    schemes: Mutex<HashMap<String, Scheme>>,
    tokens: Mutex<HashMap<(String, String), CachedToken>>,
}

/// A failure to authenticate, already worded for the user.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{host}: the token server {realm} refused {credential} (HTTP {status})")]
    TokenRefused {
        host: String,
        realm: String,
        credential: String,
        status: u16,
    },
    #[error("{host}: cannot get a token from {realm}: {reason}")]
    TokenFailed {
        host: String,
        realm: String,
        reason: String,
    },
}

/// Words for the credential used with `host`, for error messages.
pub fn describe(cred: Option<&Credential>) -> String {
    match cred {
        Some(c) => c.describe(),
        None => "no credential (anonymous; give --username/--password-stdin, a Docker config.json entry, or GITHUB_TOKEN for ghcr.io)".into(),
    }
}

fn basic_header(c: &Credential) -> String {
    let raw = format!("{}:{}", c.username, c.secret.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

impl Authenticator {
    pub fn new(creds: CredentialStore) -> Self {
        Authenticator {
            creds,
            schemes: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The credential used for `host`, if any.
    pub fn credential(&self, host: &str) -> Option<&Credential> {
        self.creds.for_host(host)
    }

    /// The `Authorization` header to send to `host` for `scopes`, fetching a token when
    /// the registry is known to want one. `None`: try anonymously first.
    pub async fn header(
        &self,
        http: &impl Transport,
        timeout: Duration,
        host: &str,
        scopes: &[String],
    ) -> Result<Option<String>, AuthError> {
        let scheme = self.schemes.lock().unwrap().get(host).cloned();
        match scheme {
            None => Ok(None),
            Some(Scheme::Basic) => Ok(self.credential(host).map(basic_header)),
            Some(Scheme::Bearer { realm, service }) => {
                let key = (host.to_string(), scopes.join(" "));
                if let Some(t) = self.tokens.lock().unwrap().get(&key) {
                    if t.until > Instant::now() {
                        return Ok(Some(format!("Bearer {}", t.token)));
                    }
                }
                let token = self
                    .fetch_token(http, timeout, host, &realm, service.as_deref(), scopes)
                    .await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Learn from a 401's challenge; drops cached tokens for these scopes (they were refused
    /// or expired). Returns false when the challenge gives nothing new to try.
    pub fn learn(&self, host: &str, challenge: Option<&str>, scopes: &[String]) -> bool {
        let parsed = challenge.and_then(parse_challenge);
        let scheme = match parsed {
            Some(Challenge::Basic) => {
                if self.credential(host).is_none() {
                    return false;
                }
                Scheme::Basic
            }
            Some(Challenge::Bearer { realm, service, .. }) => Scheme::Bearer { realm, service },
            None => return false,
        };
        self.tokens
            .lock()
            .unwrap()
            .remove(&(host.to_string(), scopes.join(" ")));
        self.schemes
            .lock()
            .unwrap()
            .insert(host.to_string(), scheme);
        true
    }

    async fn fetch_token(
        &self,
        http: &impl Transport,
        timeout: Duration,
        host: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, AuthError> {
        let cred = self.credential(host);
        let mut url = url::Url::parse(realm).map_err(|e| AuthError::TokenFailed {
            host: host.into(),
            realm: realm.into(),
            reason: format!("bad realm URL: {e}"),
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        // A bare request: building a `reqwest::Client` here would load the TLS roots.
        let mut request = reqwest::Request::new(reqwest::Method::GET, url.clone());
        *request.timeout_mut() = Some(timeout);
        if let Some(c) = cred {
            let mut v =
                HeaderValue::from_str(&basic_header(c)).map_err(|_| AuthError::TokenFailed {
                    host: host.into(),
                    realm: realm.into(),
                    reason: format!(
                        "the credential ({}) is not a valid header value",
                        c.describe()
                    ),
                })?;
            v.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, v);
        }
        let what = format!("token for {host}");
        let resp = http
            .round_trip(Call::new(request, &[], &what))
            .await
            .map_err(|e| AuthError::TokenFailed {
                host: host.into(),
                realm: realm.into(),
                reason: e.to_string(),
            })?;
        let status = resp.status();
        if status == 401 || status == 403 {
            return Err(AuthError::TokenRefused {
                host: host.into(),
                realm: realm.into(),
                credential: describe(cred),
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            return Err(AuthError::TokenFailed {
                host: host.into(),
                realm: realm.into(),
                reason: format!("HTTP {status}"),
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let body: TokenResponse = resp.json().await.map_err(|e| AuthError::TokenFailed {
            host: host.into(),
            realm: realm.into(),
            reason: format!("unreadable answer: {}", e.without_url()),
        })?;
        let token = body
            .token
            .or(body.access_token)
            .ok_or_else(|| AuthError::TokenFailed {
                host: host.into(),
                realm: realm.into(),
                reason: "answer holds no token".into(),
            })?;
        // The spec's default lifetime is 60 s; refresh 10 s early.
        let life = Duration::from_secs(body.expires_in.unwrap_or(60).max(20) - 10);
        self.tokens.lock().unwrap().insert(
            (host.to_string(), scopes.join(" ")),
            CachedToken {
                token: token.clone(),
                until: Instant::now() + life,
            },
        );
        tracing::debug!("{host}: got a token for {}", scopes.join(" "));
        Ok(token)
    }
}

/// The auth layer over transport `T`.
pub struct Auth<T> {
    inner: T,
    auth: Authenticator,
    /// The timeout of a token request.
    token_timeout: Duration,
}

impl<T> Auth<T> {
    pub fn new(inner: T, creds: CredentialStore, token_timeout: Duration) -> Self {
        Auth {
            inner,
            auth: Authenticator::new(creds),
            token_timeout,
        }
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }
}

impl<T: Transport> Transport for Auth<T> {
    async fn round_trip(&self, call: Call<'_>) -> Result<reqwest::Response, TransportError> {
        let host = authority(call.request.url());
        let Call {
            mut request,
            scopes,
            what,
            unanswered,
        } = call;
        let mut retried = false;
        loop {
            let header = self
                .auth
                .header(&self.inner, self.token_timeout, &host, scopes)
                .await?;
            if let Some(h) = header {
                let mut v = HeaderValue::from_str(&h).map_err(|_| AuthError::TokenFailed {
                    host: host.clone(),
                    realm: String::new(),
                    reason: "the token is not a valid header value".into(),
                })?;
                v.set_sensitive(true);
                request.headers_mut().insert(AUTHORIZATION, v);
            }
            // A streamed body cannot be sent twice: such a call gets one try.
            let again = if retried { None } else { request.try_clone() };
            let resp = self
                .inner
                .round_trip(Call {
                    request,
                    scopes,
                    what,
                    unanswered,
                })
                .await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let Some(again) = again else {
                return Ok(resp);
            };
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok());
            if !self.auth.learn(&host, challenge, scopes) {
                return Ok(resp);
            }
            retried = true;
            request = again;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Secret;
    use crate::registry::transport::http::Http;
    use crate::registry::transport::test_server;
    use std::sync::Arc;

    fn get(url: &str) -> reqwest::Request {
        {
            crate::registry::transport::http::install_crypto_provider();
            reqwest::Client::new()
        }
        .get(url)
        .build()
        .unwrap()
    }

    fn store(user: &str, pass: &str) -> CredentialStore {
        let mut s = CredentialStore::default();
        s.explicit = Some(Credential {
            username: user.into(),
            secret: Secret::new(pass),
            source: "test".into(),
        });
        s
    }

    #[tokio::test]
    async fn bearer_challenge_then_token_cached_per_scope() {
        let realm = Arc::new(std::sync::OnceLock::<String>::new());
        let r = realm.clone();
        let srv = test_server::start(move |s, _| {
            if s.target.starts_with("/token") {
                // One token per scope asked for, named after it.
                let scope = s.target.split("scope=").nth(1).unwrap_or("none");
                let tok = format!("tok-{}", scope.replace(['%', ':', '/'], ""));
                return (
                    200,
                    vec![],
                    format!(r#"{{"token":"{tok}","expires_in":300}}"#),
                );
            }
            match s.header("authorization") {
                Some(a) if a.starts_with("Bearer tok-") => (200, vec![], String::new()),
                _ => (
                    401,
                    vec![(
                        "WWW-Authenticate".into(),
                        format!(r#"Bearer realm="{}/token",service="reg""#, r.get().unwrap()),
                    )],
                    String::new(),
                ),
            }
        })
        .await;
        realm.set(srv.base.clone()).unwrap();
        let t = Auth::new(
            Http::new().unwrap(),
            store("u", "p"),
            Duration::from_secs(5),
        );
        let pull_a = vec!["repository:a:pull".to_string()];
        let pull_b = vec!["repository:b:pull".to_string()];
        let url = format!("{}/v2/a/manifests/t", srv.base);
        for scopes in [&pull_a, &pull_a, &pull_b] {
            let resp = t
                .round_trip(Call::new(get(&url), scopes, "GET"))
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
        }
        let seen: Vec<String> = srv.seen().iter().map(|s| s.target.clone()).collect();
        // 401, token for a, again with it; a from the cache; token for b, then b.
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert!(seen[1].starts_with("/token?service=reg&scope=repository%3Aa%3Apull"));
        assert!(seen[4].contains("scope=repository%3Ab%3Apull"));
        let all = srv.seen();
        // The token request carries the credential (basic), the registry gets the token.
        assert!(all[1]
            .header("authorization")
            .unwrap()
            .starts_with("Basic "));
        assert_eq!(
            all[3].header("authorization"),
            Some("Bearer tok-repository3Aa3Apull")
        );
    }

    #[tokio::test]
    async fn basic_challenge_sends_the_credential_and_no_credential_gets_the_401() {
        let srv = test_server::start(|s, _| match s.header("authorization") {
            // base64("u:p")
            Some("Basic dTpw") => (200, vec![], String::new()),
            _ => (
                401,
                vec![("WWW-Authenticate".into(), r#"Basic realm="r""#.into())],
                String::new(),
            ),
        })
        .await;
        let url = format!("{}/v2/", srv.base);
        let t = Auth::new(
            Http::new().unwrap(),
            store("u", "p"),
            Duration::from_secs(5),
        );
        let resp = t
            .round_trip(Call::new(get(&url), &[], "GET"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(srv.seen().len(), 2);
        let anon = Auth::new(
            Http::new().unwrap(),
            CredentialStore::default(),
            Duration::from_secs(5),
        );
        let resp = anon
            .round_trip(Call::new(get(&url), &[], "GET"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(srv.seen().len(), 3);
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/x:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: Some("repository:o/x:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="test-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }
}
