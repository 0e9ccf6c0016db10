//! A real standalone `buildkitd` for the tests: its own `--root` in a temp dir, one
//! loopback `tcp://` address with mutual TLS (certificates made here with rcgen, X.509 v3)
//! and one `unix://` socket. Stopped (SIGTERM, then SIGKILL) when dropped.
//!
//! The binary: `STACKCTL_BUILDKITD`, else `buildkitd` on PATH, else the current release
//! `<repo>/../shared/tools/buildkit-v0.32.2/buildkitd`, else v0.25.2 at
//! `<repo>/../shared/tools/buildkit/buildkitd`. Tests where the two releases store things
//! differently (attestations, caches) ask for one by [`Release`]. With none, [`Buildkitd::start`] returns None
//! after printing that the test is skipped and why; with `CI=true` it panics instead, in
//! one line, since CI must run these tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the tests look for buildkitd, for messages.
pub const WHERE: &str = "STACKCTL_BUILDKITD, else buildkitd on PATH, else <repo>/../shared/tools/buildkit-v0.32.2/buildkitd, else <repo>/../shared/tools/buildkit/buildkitd";

/// Which BuildKit release a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Whatever [`binary`] finds (the current release when the shared tools are there).
    Default,
    /// v0.25.2: attestations as plain image manifests, SLSA v0.2 provenance.
    V0_25,
    /// v0.32.2: attestations as OCI artifacts, SLSA v1 provenance.
    V0_32,
}

impl Release {
    /// The binary: `STACKCTL_BUILDKITD_V025` / `_V032`, else the shared tools' copy.
    pub fn binary(self) -> Option<PathBuf> {
        let (var, folder) = match self {
            Release::Default => return binary(),
            Release::V0_25 => ("STACKCTL_BUILDKITD_V025", "buildkit"),
            Release::V0_32 => ("STACKCTL_BUILDKITD_V032", "buildkit-v0.32.2"),
        };
        if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        shared(folder)
    }
}

fn shared(folder: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared/tools")
        .join(folder)
        .join("buildkitd");
    p.is_file().then_some(p)
}

/// The buildkitd binary, if one is found.
pub fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STACKCTL_BUILDKITD").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "STACKCTL_BUILDKITD={}: no such file",
            p.display()
        );
        return Some(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("buildkitd");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    shared("buildkit-v0.32.2").or_else(|| shared("buildkit"))
}

/// A running buildkitd.
pub struct Buildkitd {
    /// Holds `root/`, `certs/`, the socket and the daemon's log.
    pub dir: tempfile::TempDir,
    /// `tcp://127.0.0.1:PORT` (mutual TLS: see [`Buildkitd::tls_args`]).
    pub tcp: String,
    /// `unix:///…/buildkitd.sock` (no TLS).
    pub unix: String,
    child: Child,
    /// Set by [`Buildkitd::kill`]: the process is gone.
    killed: bool,
}

impl Buildkitd {
    /// Start a buildkitd for `test`, or None (the test is skipped, said on stderr) when no
    /// binary is found outside CI.
    pub fn start(test: &str) -> Option<Buildkitd> {
        Self::start_release(test, Release::Default)
    }

    /// [`Buildkitd::start`] of one release.
    pub fn start_release(test: &str, release: Release) -> Option<Buildkitd> {
        let Some(bin) = release.binary() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("no buildkitd found ({WHERE}): CI=true, so the buildkitd tests cannot be skipped");
            }
            // Straight to the process's stderr: the test harness captures eprintln!.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no buildkitd of {release:?} found ({WHERE})"
            );
            return None;
        };
        Some(Self::start_with(&bin))
    }

    fn start_with(bin: &Path) -> Buildkitd {
        let mut dir = tempfile::Builder::new()
            .prefix("stackctl-buildkitd-")
            .tempdir()
            .unwrap();
        let certs = dir.path().join("certs");
        make_certs(&certs);
        // Every buildkitd serves a trace socket, by default /run/buildkit/otel-grpc.sock:
        // daemons started side by side race to remove and chown that one file, and the
        // loser exits. Each gets its own.
        let config = dir.path().join("buildkitd.toml");
        std::fs::write(
            &config,
            format!(
                "[otel]\n  socketPath = {:?}\n",
                dir.path().join("otel-grpc.sock").display().to_string()
            ),
        )
        .unwrap();
        // free_port() lets the port go before buildkitd binds it, so a test starting at the
        // same time may take it first: then buildkitd exits with "address already in use",
        // and it is started again on another port. Any other early exit fails at once.
        let mut attempt = 1;
        loop {
            let port = super::free_port();
            let tcp = format!("tcp://127.0.0.1:{port}");
            let sock = dir.path().join("buildkitd.sock");
            let unix = format!("unix://{}", sock.display());
            let log = std::fs::File::create(dir.path().join("buildkitd.log")).unwrap();
            let child = Command::new(bin)
                .arg("--config")
                .arg(&config)
                .arg("--root")
                .arg(dir.path().join("root"))
                .args(["--addr", &unix, "--addr", &tcp])
                .arg("--tlscacert")
                .arg(certs.join("ca.pem"))
                .arg("--tlscert")
                .arg(certs.join("server.pem"))
                .arg("--tlskey")
                .arg(certs.join("server.key"))
                .args(["--oci-worker=true", "--containerd-worker=false"])
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut d = Buildkitd {
                dir,
                tcp,
                unix,
                child,
                killed: false,
            };
            // Ready when it says it serves on both addresses.
            let deadline = Instant::now() + Duration::from_secs(60);
            let tcp_line = format!("running server on 127.0.0.1:{port}");
            let unix_line = format!("running server on {}", sock.display());
            loop {
                let log = d.log();
                if log.contains(&tcp_line) && log.contains(&unix_line) {
                    return d;
                }
                if let Ok(Some(status)) = d.child.try_wait() {
                    if attempt < 3 && log.contains("address already in use") {
                        break;
                    }
                    panic!("buildkitd exited ({status}) before serving:\n{log}");
                }
                assert!(
                    Instant::now() < deadline,
                    "buildkitd did not start in 60s:\n{log}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("buildkitd: port {port} was taken before it bound it; another port");
            attempt += 1;
            // The exited daemon gives back its folder (certificates and root) for the next try.
            d.killed = true;
            dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("buildkitd.log")).unwrap_or_default()
    }

    /// A file of the test PKI: `ca.pem`, `client.pem`, `client.key` (and the server's).
    pub fn cert(&self, name: &str) -> String {
        self.dir
            .path()
            .join("certs")
            .join(name)
            .to_string_lossy()
            .into_owned()
    }

    /// `--buildkit tcp://… --buildkit-tls-ca … --buildkit-tls-cert … --buildkit-tls-key …`.
    pub fn tcp_args(&self) -> Vec<String> {
        vec![
            "--buildkit".into(),
            self.tcp.clone(),
            "--buildkit-tls-ca".into(),
            self.cert("ca.pem"),
            "--buildkit-tls-cert".into(),
            self.cert("client.pem"),
            "--buildkit-tls-key".into(),
            self.cert("client.key"),
        ]
    }
}

impl Buildkitd {
    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:PORT` of the tcp address.
    pub fn hostport(&self) -> &str {
        self.tcp.trim_start_matches("tcp://")
    }

    /// Kill the daemon at once (SIGKILL: a node lost, not stopped), and unmount what its
    /// running steps left mounted under its root.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.killed = true;
        unmount_under(self.dir.path());
    }

    /// Put this node's client TLS files in `dir/127.0.0.1:PORT/` (ca.pem, cert.pem,
    /// key.pem), the layout of `--buildkit-tls-dir`.
    pub fn write_tls_dir(&self, dir: &Path) {
        let sub = dir.join(self.hostport());
        std::fs::create_dir_all(&sub).unwrap();
        for (from, to) in [
            ("ca.pem", "ca.pem"),
            ("client.pem", "cert.pem"),
            ("client.key", "key.pem"),
        ] {
            std::fs::copy(self.cert(from), sub.join(to)).unwrap();
        }
    }
}

/// Lazily unmount every mount below `dir` or of a folder of it (deepest first), as a killed
/// buildkitd leaves them: its running steps' mounts, and the `/tmp/containerd-mount*` bind
/// mounts of its snapshots.
fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            // Field 4 is the mounted folder (within its filesystem), 5 the mount point.
            let (source, point) = (*f.get(3)?, *f.get(4)?);
            (point.starts_with(&prefix) || source.starts_with(&prefix)).then_some(point)
        })
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount")
            .args(["-l", p])
            .stderr(Stdio::null())
            .status();
        if p.starts_with("/tmp/containerd-mount") {
            let _ = std::fs::remove_dir(p);
        }
    }
}

impl Drop for Buildkitd {
    fn drop(&mut self) {
        if self.killed {
            return;
        }
        // SIGTERM lets it unmount and close its databases; SIGKILL if it lingers.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all X.509 v3 (rustls
/// refuses v1 certificates), PEM files in `dir`.
pub fn make_certs(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "stackctl-test-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    write("ca.pem", ca_cert.pem());
    for (who, sans, usage) in [
        (
            "server",
            vec!["127.0.0.1".to_string()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        ("client", vec![], ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, who);
        p.extended_key_usages = vec![usage];
        let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
        write(&format!("{who}.pem"), cert.pem());
        write(&format!("{who}.key"), key.serialize_pem());
    }
}
