//! A fault-injecting HTTP proxy in front of a test registry: it can fail the Nth manifest
//! PUT (to break a promotion in the middle) or refuse cross-repository mounts (the registry
//! then answers with a plain upload session, as registries that do not mount do).
//!
//! Std networking, one request per connection (`Connection: close` is forced), so the
//! request and response bodies can be copied through as bytes without parsing them.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Answer 400 to the Nth manifest PUT (1-based).
    FailManifestPut(usize),
    /// Drop `mount`/`from` from blob upload POSTs.
    RefuseMounts,
    /// The first three requests fail: 429 with `Retry-After: 1`, a dropped connection, 503.
    Flaky,
}

pub struct Proxy {
    pub port: u16,
    pub manifest_puts: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
}

impl Proxy {
    pub fn start(upstream_port: u16, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let puts = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let p = puts.clone();
        let n = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let p = p.clone();
                let n = n.clone();
                std::thread::spawn(move || handle(conn, upstream_port, fault, &p, &n));
            }
        });
        Proxy {
            port,
            manifest_puts: puts,
            requests,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn handle(
    mut client: TcpStream,
    upstream: u16,
    fault: Fault,
    puts: &AtomicUsize,
    requests: &AtomicUsize,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_string();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let mut path = parts.next().unwrap_or("").to_string();
    let version = parts.next().unwrap_or("HTTP/1.1").to_string();
    let headers: Vec<&str> = lines
        .filter(|l| !l.is_empty())
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    let content_length: usize = headers
        .iter()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);

    let nth = requests.fetch_add(1, Ordering::SeqCst) + 1;
    if matches!(fault, Fault::Flaky) && nth <= 3 {
        let status = match nth {
            1 => "429 Too Many Requests\r\nRetry-After: 1",
            2 => return, // dropped without an answer
            _ => "503 Service Unavailable",
        };
        let _ = write!(
            client,
            "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    if method == "PUT" && path.contains("/manifests/") {
        let n = puts.fetch_add(1, Ordering::SeqCst) + 1;
        if matches!(fault, Fault::FailManifestPut(k) if k == n) {
            let mut body = vec![0u8; content_length];
            let _ = client.read_exact(&mut body);
            let msg = r#"{"errors":[{"code":"MANIFEST_INVALID","message":"injected failure"}]}"#;
            let _ = write!(
                client,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                msg.len()
            );
            return;
        }
    }
    if matches!(fault, Fault::RefuseMounts) && method == "POST" && path.contains("mount=") {
        path = path.split('?').next().unwrap_or(&path).to_string();
    }

    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let mut new_head = format!("{method} {path} {version}\r\n");
    for h in headers {
        new_head.push_str(h);
        new_head.push_str("\r\n");
    }
    new_head.push_str("Connection: close\r\n\r\n");
    if up.write_all(new_head.as_bytes()).is_err() {
        return;
    }
    let mut c2 = client.try_clone().unwrap();
    let mut u2 = up.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut up, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = t.join();
}
