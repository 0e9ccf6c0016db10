//! A fault-injecting HTTP proxy in front of a test registry: it can fail the Nth manifest
//! PUT (to break a promotion in the middle) or refuse cross-repository mounts (the registry
//! then answers with a plain upload session, as registries that do not mount do).
//!
//! Besides the fixed [`Fault`]s, [`Rule`]s can be changed while the proxy runs (a rerun
//! without faults): a persistent status for PUTs of one manifest, a PUT held past the
//! client's timeout and then forwarded (a late PUT), a hook run before a PUT is answered
//! (another writer), a delay on every manifest PUT (races).
//!
//! Std networking, one request per connection (`Connection: close` is forced), so the
//! request and response bodies can be copied through as bytes without parsing them.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fault on the manifest PUTs whose path ends with `path` (e.g. `img1/manifests/2026.3-stable`).
#[derive(Clone)]
pub enum Rule {
    /// Answer `status` to each of them (a registry that keeps failing on one manifest).
    FailPut { path: String, status: u16 },
    /// Hold the first one for `hold`, then forward it: it lands after the client gave up.
    HoldFirstPut { path: String, hold: Duration },
    /// Run `hook` before forwarding the first one, then answer it with `status` without
    /// forwarding it (another writer acts while this PUT fails).
    HookThenFail {
        path: String,
        status: u16,
        hook: Arc<dyn Fn() + Send + Sync>,
    },
    /// Drop the connection of the first one without an answer: before forwarding it (it
    /// never lands), or after (it landed, the client cannot know).
    DropFirstPut { path: String, forward: bool },
    /// Let the first one through; hold every later one for `hold`, then forward it (a
    /// restore that lands after the client gave up on it).
    HoldLaterPuts { path: String, hold: Duration },
    /// Forward each of them at once, then hold the registry's answer for `hold`: the PUT
    /// has landed while the client still waits (an interrupt then cuts a write that is done).
    HoldAnswer { path: String, hold: Duration },
    /// Delay every manifest PUT by 0..`max_ms` milliseconds (pseudo-random).
    DelayPuts { max_ms: u64 },
    /// Hold every request, of any method and path, for `hold` before handling it (a
    /// registry that stalls).
    StallAll { hold: Duration },
}

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
    /// The rules in force; change them at any time.
    pub rules: Arc<Mutex<Vec<Rule>>>,
    /// Paths of the manifest PUTs the registry answered, in order, with its status.
    pub forwarded_puts: Arc<Mutex<Vec<(String, u16)>>>,
    /// How many times a rule failed, held or dropped a request (delays not counted).
    pub injected: Arc<AtomicUsize>,
    used: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<std::collections::HashMap<String, usize>>>,
}

/// What one connection's handler shares with the others.
#[derive(Clone)]
struct Shared {
    fault: Option<Fault>,
    puts: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    rules: Arc<Mutex<Vec<Rule>>>,
    forwarded: Arc<Mutex<Vec<(String, u16)>>>,
    /// Paths whose one-time rule was used.
    used: Arc<Mutex<Vec<String>>>,
    /// Manifest PUTs seen per path.
    seen: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    injected: Arc<AtomicUsize>,
}

impl Proxy {
    pub fn start(upstream_port: u16, fault: Fault) -> Proxy {
        Self::spawn(upstream_port, Some(fault), Vec::new())
    }

    /// A proxy with `rules` (and no fixed fault).
    pub fn with_rules(upstream_port: u16, rules: Vec<Rule>) -> Proxy {
        Self::spawn(upstream_port, None, rules)
    }

    fn spawn(upstream_port: u16, fault: Option<Fault>, rules: Vec<Rule>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Shared {
            fault,
            puts: Arc::new(AtomicUsize::new(0)),
            requests: Arc::new(AtomicUsize::new(0)),
            rules: Arc::new(Mutex::new(rules)),
            forwarded: Arc::new(Mutex::new(Vec::new())),
            used: Arc::new(Mutex::new(Vec::new())),
            seen: Arc::default(),
            injected: Arc::default(),
        };
        let sh = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let sh = sh.clone();
                std::thread::spawn(move || handle(conn, upstream_port, &sh));
            }
        });
        Proxy {
            port,
            manifest_puts: shared.puts,
            requests: shared.requests,
            rules: shared.rules,
            forwarded_puts: shared.forwarded,
            injected: shared.injected,
            used: shared.used,
            seen: shared.seen,
        }
    }

    /// Replace the rules (an empty list: a plain proxy); one-time rules count afresh.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        let mut r = self.rules.lock().unwrap();
        self.used.lock().unwrap().clear();
        self.seen.lock().unwrap().clear();
        *r = rules;
    }

    /// Manifest PUTs answered by the registry whose path ends with `path`.
    pub fn forwarded_to(&self, path: &str) -> usize {
        self.forwarded_puts
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.ends_with(path))
            .count()
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn respond(client: &mut TcpStream, status: u16, content_length: usize) {
    let mut body = vec![0u8; content_length];
    let _ = client.read_exact(&mut body);
    let msg =
        format!(r#"{{"errors":[{{"code":"UNKNOWN","message":"injected failure {status}"}}]}}"#);
    let _ = write!(
        client,
        "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
        msg.len()
    );
}

fn handle(mut client: TcpStream, upstream: u16, sh: &Shared) {
    let fault = sh.fault;
    let puts = &sh.puts;
    let requests = &sh.requests;
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
    let stall = sh.rules.lock().unwrap().iter().find_map(|r| match r {
        Rule::StallAll { hold } => Some(*hold),
        _ => None,
    });
    if let Some(hold) = stall {
        std::thread::sleep(hold);
    }
    if matches!(fault, Some(Fault::Flaky)) && nth <= 3 {
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
        if matches!(fault, Some(Fault::FailManifestPut(k)) if k == n) {
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
    if matches!(fault, Some(Fault::RefuseMounts)) && method == "POST" && path.contains("mount=") {
        path = path.split('?').next().unwrap_or(&path).to_string();
    }
    // What goes upstream: the request as it came, on a connection of its own.
    let mut upstream_head = format!("{method} {path} {version}\r\n");
    for h in &headers {
        upstream_head.push_str(h);
        upstream_head.push_str("\r\n");
    }
    upstream_head.push_str("Connection: close\r\n\r\n");
    let is_manifest_put = method == "PUT" && path.contains("/manifests/");
    let mut hold = None;
    let mut hold_answer = None;
    if is_manifest_put {
        let nth_on_path = {
            let mut seen = sh.seen.lock().unwrap();
            let n = seen.entry(path.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let rules = sh.rules.lock().unwrap().clone();
        for rule in rules {
            match rule {
                Rule::FailPut { path: p, status } if path.ends_with(&p) => {
                    sh.injected.fetch_add(1, Ordering::SeqCst);
                    respond(&mut client, status, content_length);
                    return;
                }
                Rule::HoldFirstPut { path: p, hold: h } if path.ends_with(&p) => {
                    let mut used = sh.used.lock().unwrap();
                    if !used.contains(&p) {
                        used.push(p);
                        hold = Some(h);
                    }
                }
                Rule::DropFirstPut { path: p, forward } if path.ends_with(&p) => {
                    let first = {
                        let mut used = sh.used.lock().unwrap();
                        let first = !used.contains(&p);
                        used.push(p);
                        first
                    };
                    if first {
                        sh.injected.fetch_add(1, Ordering::SeqCst);
                        let mut body = vec![0u8; content_length];
                        if client.read_exact(&mut body).is_err() || !forward {
                            let _ = client.shutdown(Shutdown::Both);
                            return;
                        }
                        if let Some(answer) = forward_whole(upstream, &upstream_head, &body) {
                            sh.forwarded
                                .lock()
                                .unwrap()
                                .push((path.clone(), status_of(&answer)));
                        }
                        let _ = client.shutdown(Shutdown::Both);
                        return;
                    }
                }
                Rule::HookThenFail {
                    path: p,
                    status,
                    hook,
                } if path.ends_with(&p) => {
                    let first = {
                        let mut used = sh.used.lock().unwrap();
                        let first = !used.contains(&p);
                        used.push(p);
                        first
                    };
                    if first {
                        sh.injected.fetch_add(1, Ordering::SeqCst);
                        hook();
                        respond(&mut client, status, content_length);
                        return;
                    }
                }
                Rule::HoldLaterPuts { path: p, hold: h }
                    if path.ends_with(&p) && nth_on_path > 1 =>
                {
                    hold = Some(h);
                }
                Rule::HoldAnswer { path: p, hold: h } if path.ends_with(&p) => {
                    hold_answer = Some(h);
                }
                Rule::DelayPuts { max_ms } => {
                    let pseudo = (std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .subsec_nanos() as u64
                        ^ (nth as u64).wrapping_mul(0x9E37_79B9))
                        % max_ms.max(1);
                    std::thread::sleep(Duration::from_millis(pseudo));
                }
                _ => {}
            }
        }
    }
    if let Some(h) = hold {
        sh.injected.fetch_add(1, Ordering::SeqCst);
        // Take the whole request first, then wait: the client gives up meanwhile, and the
        // PUT is forwarded anyway, as a slow proxy or registry would.
        let mut body = vec![0u8; content_length];
        if client.read_exact(&mut body).is_err() {
            return;
        }
        std::thread::sleep(h);
        let Some(answer) = forward_whole(upstream, &upstream_head, &body) else {
            return;
        };
        let status = status_of(&answer);
        sh.forwarded.lock().unwrap().push((path, status));
        let _ = client.write_all(&answer);
        return;
    }

    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if up.write_all(upstream_head.as_bytes()).is_err() {
        return;
    }
    let mut c2 = client.try_clone().unwrap();
    let mut u2 = up.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(Shutdown::Write);
    });
    if is_manifest_put {
        // Read the whole answer to note its status, then pass it on.
        let mut answer = Vec::new();
        let _ = up.read_to_end(&mut answer);
        sh.forwarded
            .lock()
            .unwrap()
            .push((path.clone(), status_of(&answer)));
        if let Some(h) = hold_answer {
            std::thread::sleep(h);
        }
        let _ = client.write_all(&answer);
    } else {
        let _ = std::io::copy(&mut up, &mut client);
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = t.join();
}

/// Send a whole request (its head and its body) upstream and read the whole answer; None
/// when upstream cannot be reached.
fn forward_whole(upstream: u16, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    let _ = up.write_all(head.as_bytes());
    let _ = up.write_all(body);
    let mut answer = Vec::new();
    let _ = up.read_to_end(&mut answer);
    Some(answer)
}

/// The status code of an HTTP answer's first line (0 if there is none).
fn status_of(answer: &[u8]) -> u16 {
    String::from_utf8_lossy(&answer[..answer.len().min(32)])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
