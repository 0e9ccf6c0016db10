//! Shared test helpers. This file: a real Distribution registry on a free loopback port
//! (Debian's `docker-registry`, which `.ci/run` installs; its own storage and config in a
//! temp dir, killed when dropped) and the Docker engine's socket. Submodules:
//! - [`action_runner`]: runs action.yml's steps as a GitHub runner would;
//! - [`cli`]: the stackctl binary with a clean environment, its output as text;
//! - [`buildkitd`]: a standalone buildkitd (tcp with mutual TLS, unix), or a skip;
//! - [`e2e`]: the set-up of an end-to-end build (nodes, registry, base, repository);
//! - [`git_repo`]: git repositories built with git2 in temp dirs;
//! - [`example`]: the built-in example stack copied into such a repository;
//! - [`images`]: test images made through the engine (debootstrap base, busybox, builds);
//! - [`packages`]: a `.deb` and a wheel made here, and images that install them;
//! - [`hand_made`]: images written blob by blob with stackctl's registry client;
//! - [`proxy`]: a fault-injecting proxy in front of a registry;
//! - [`token_server`]: a GHCR-like token server for the registry's token auth.

pub mod action_runner;
pub mod buildkitd;
pub mod cli;
pub mod cosign;
pub mod e2e;
pub mod example;
pub mod git_repo;
pub mod hand_made;
pub mod images;
pub mod packages;
pub mod platforms;
pub mod proxy;
pub mod sbom;
pub mod token_server;

pub use cli::{outcome, stackctl, text};

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
/// A plain HTTP client for reading a registry directly. reqwest needs rustls' provider
/// installed first; without this, a test run alone (before any other test installed it)
/// panics.
pub fn http() -> reqwest::Client {
    stackctl::registry::transport::http::install_crypto_provider();
    reqwest::Client::new()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How the registry checks clients.
pub enum RegistryAuth {
    None,
    /// htpasswd (bcrypt) with one user.
    Basic {
        user: String,
        password: String,
    },
    /// Extra YAML for the `auth:` section (e.g. a token realm), written as is.
    Raw(String),
}

/// A running registry. Killed on drop.
pub struct Registry {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    pub fn start(auth: RegistryAuth) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let auth_yaml = match &auth {
            RegistryAuth::None => String::new(),
            RegistryAuth::Basic { user, password } => {
                let hash = bcrypt::hash(password, 5).unwrap();
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, format!("{user}:{hash}\n")).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                    path.display()
                )
            }
            RegistryAuth::Raw(s) => s.clone(),
        };
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\n{auth_yaml}",
            storage.display()
        );
        let cfg_path = dir.path().join("config.yml");
        std::fs::File::create(&cfg_path)
            .unwrap()
            .write_all(config.as_bytes())
            .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("docker-registry must be installed (apt-get install docker-registry; .ci/run does it)");
        let reg = Registry { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start: {}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything the registry logged so far (access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Docker engine's socket, or a panic that says how to get one.
pub fn docker_socket() -> PathBuf {
    let p = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    assert!(
        Path::new(&p).exists(),
        "no Docker engine at {}: run scripts/dev-env (or .ci/run) first",
        p.display()
    );
    p
}
