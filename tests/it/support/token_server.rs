//! A tiny token server like GHCR's: checks basic credentials and signs ES256 JWTs that
//! Distribution verifies against a self-signed certificate (`rootcertbundle`), the
//! certificate travelling in the JWT's `x5c` header.
//!
//! Plain std networking, one request per connection: enough for tests, no framework.

use base64::Engine;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub const SERVICE: &str = "test-registry";
pub const ISSUER: &str = "test-token-issuer";

pub struct TokenServer {
    pub port: u16,
    pub cert_path: PathBuf,
    /// Token requests served (granted or not).
    pub requests: Arc<AtomicUsize>,
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

struct Signer {
    key: EcdsaKeyPair,
    x5c: String,
    user: String,
    password: String,
}

impl Signer {
    fn token(&self, subject: &str, access: serde_json::Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": subject, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now - 10,
            "jti": format!("{now}-{}", rand_id()), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .unwrap();
        format!("{signing_input}.{}", b64url(sig.as_ref()))
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

impl TokenServer {
    /// Start on a free loopback port; grants what is asked to `user`/`password`, nothing to
    /// anonymous requests, and answers 401 to wrong credentials.
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["token-issuer".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let cert_path = dir.join("token-cert.pem");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        let signer = Arc::new(Signer {
            key: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &ring::rand::SystemRandom::new(),
            )
            .unwrap(),
            x5c: base64::engine::general_purpose::STANDARD.encode(cert.der()),
            user: user.into(),
            password: password.into(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let s = signer.clone();
                let c = count.clone();
                std::thread::spawn(move || handle(conn, &s, &c));
            }
        });
        TokenServer {
            port,
            cert_path,
            requests,
        }
    }

    /// The registry's `auth:` section for this server.
    pub fn auth_yaml(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            self.cert_path.display()
        )
    }
}

fn read_head(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn respond(conn: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn handle(mut conn: TcpStream, signer: &Signer, count: &AtomicUsize) {
    let head = read_head(&mut conn);
    count.fetch_add(1, Ordering::SeqCst);
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let url = url::Url::parse(&format!("http://token{target}")).unwrap();
    let auth = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("authorization")
                .then(|| v.trim().to_string())
        })
        .and_then(|v| v.strip_prefix("Basic ").map(str::to_string))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let subject = match auth {
        Some(pair) if pair == format!("{}:{}", signer.user, signer.password) => {
            Some(signer.user.clone())
        }
        Some(_) => {
            respond(
                &mut conn,
                "401 Unauthorized",
                r#"{"details":"bad credentials"}"#,
            );
            return;
        }
        None => None,
    };
    let mut access = Vec::new();
    if subject.is_some() {
        for (k, v) in url.query_pairs() {
            if k != "scope" {
                continue;
            }
            for scope in v.split(' ') {
                let mut parts = scope.splitn(2, ':');
                let typ = parts.next().unwrap_or("");
                let rest = parts.next().unwrap_or("");
                let Some((name, actions)) = rest.rsplit_once(':') else {
                    continue;
                };
                access.push(serde_json::json!({
                    "type": typ, "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }));
            }
        }
    }
    let token = signer.token(
        subject.as_deref().unwrap_or(""),
        serde_json::Value::Array(access),
    );
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
    respond(&mut conn, "200 OK", &body.to_string());
}
