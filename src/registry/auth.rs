//! Registry authentication: anonymous, basic, and the bearer-token challenge
//! (`WWW-Authenticate: Bearer realm=…,service=…,scope=…`, as GHCR and Docker Hub use).
//!
//! Tokens are cached per registry and scope set until shortly before they expire. Neither
//! tokens nor passwords ever go into a log line or an error message: errors name the
//! credential with [`Credential::describe`].

use crate::credentials::{Credential, CredentialStore};
use base64::Engine;
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
        http: &super::http::Http,
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
        http: &super::http::Http,
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
        let http = http
            .for_url(url.as_str())
            .map_err(|reason| AuthError::TokenFailed {
                host: host.into(),
                realm: realm.into(),
                reason,
            })?;
        let send = || {
            let mut rb = http.get(url.clone()).timeout(timeout);
            if let Some(c) = cred {
                rb = rb.header(reqwest::header::AUTHORIZATION, basic_header(c));
            }
            rb
        };
        let policy = super::retry::RetryPolicy::default();
        let resp = policy
            .send(&format!("token for {host}"), send)
            .await
            .map_err(|e| AuthError::TokenFailed {
                host: host.into(),
                realm: realm.into(),
                reason: e.without_url().to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
