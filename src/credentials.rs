//! Registry credentials: where they come from, and a secret type that never prints.
//!
//! Sources, first match wins: an explicit `--username` with `--password-stdin`;
//! Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`,
//! its `auths` entries); for `ghcr.io`, `GITHUB_TOKEN` with `GITHUB_ACTOR` or `GITHUB_USER`.

use base64::Engine;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// A password or token. Its `Debug` and `Display` print `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself: only for putting on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `s` with any user information (`USER:PASSWORD@`) before its host replaced by `***`, for
/// messages about addresses and references that a user may have written with a password in
/// them: `tcp://u:pw@h:1` gives `tcp://***@h:1`, `u:pw@host/repo:tag` gives `***@host/repo:tag`.
pub fn mask_userinfo(s: &str) -> String {
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, s),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match scheme {
            Some(scheme) => format!("{scheme}://***{}", &rest[at..]),
            None => format!("***{}", &rest[at..]),
        },
        None => s.to_string(),
    }
}

/// A username and secret for one registry, and where they were found (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: Secret,
    /// Human-readable source, e.g. `docker config /root/.docker/config.json` or `GITHUB_TOKEN`.
    pub source: String,
}

impl Credential {
    /// `user "NAME" from SOURCE`: what a message may say about the credential.
    pub fn describe(&self) -> String {
        format!("user {:?} from {}", self.username, self.source)
    }
}

/// Where to look for credentials.
#[derive(Clone, Debug, Default)]
pub struct CredentialStore {
    /// Given on the command line, used for every registry.
    pub explicit: Option<Credential>,
    /// Entries of Docker's config.json, keyed by registry host.
    docker: HashMap<String, Credential>,
    /// `GITHUB_TOKEN` with its user, used for ghcr.io.
    github: Option<Credential>,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// The registry host of a key in `auths` (`https://index.docker.io/v1/` → `index.docker.io`).
fn auth_key_host(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    normalize_host(host)
}

/// Docker Hub answers to several names; they share credentials.
fn normalize_host(host: &str) -> String {
    match host {
        "docker.io" | "registry-1.docker.io" | "index.docker.io" => "docker.io".into(),
        h => h.to_ascii_lowercase(),
    }
}

impl CredentialStore {
    /// Read Docker's config and the GitHub variables from the environment.
    /// A config file that cannot be parsed is an error naming it.
    pub fn from_env(explicit: Option<Credential>) -> anyhow::Result<Self> {
        let mut store = CredentialStore {
            explicit,
            ..Default::default()
        };
        if let Some(path) = docker_config_path() {
            if path.is_file() {
                store.docker = read_docker_config(&path)?;
            }
        }
        if let Ok(token) = std::env::var("GITHUB_TOKEN") {
            let user = std::env::var("GITHUB_ACTOR")
                .or_else(|_| std::env::var("GITHUB_USER"))
                .ok();
            if let (Some(user), false) = (user, token.is_empty()) {
                store.github = Some(Credential {
                    username: user,
                    secret: Secret::new(token),
                    source: "GITHUB_TOKEN".into(),
                });
            }
        }
        Ok(store)
    }

    /// The credential to use for `host` (e.g. `ghcr.io`, `127.0.0.1:5000`), if any.
    pub fn for_host(&self, host: &str) -> Option<&Credential> {
        if let Some(c) = &self.explicit {
            return Some(c);
        }
        let h = normalize_host(host);
        if let Some(c) = self.docker.get(&h) {
            return Some(c);
        }
        if h == "ghcr.io" {
            return self.github.as_ref();
        }
        None
    }

    /// A store with one credential for one host (tests, embedding).
    pub fn with_host(mut self, host: &str, cred: Credential) -> Self {
        self.docker.insert(normalize_host(host), cred);
        self
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

fn read_docker_config(path: &std::path::Path) -> anyhow::Result<HashMap<String, Credential>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    let cfg: DockerConfig = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a valid Docker config: {e}", path.display()))?;
    let source = format!("docker config {}", path.display());
    let mut out = HashMap::new();
    for (key, a) in cfg.auths {
        let (user, pass) = if let (Some(u), Some(p)) = (&a.username, &a.password) {
            (u.clone(), p.clone())
        } else if let Some(auth) = &a.auth {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|s| s.split_once(':')) {
                Some((u, p)) => (u.to_string(), p.to_string()),
                None => anyhow::bail!(
                    "{}: the `auth` entry for {key:?} is not base64 of user:password",
                    path.display()
                ),
            }
        } else if let Some(tok) = &a.identitytoken {
            // An identity token is sent as the password of the `<token>` user.
            ("<token>".to_string(), tok.clone())
        } else {
            continue;
        };
        out.insert(
            auth_key_host(&key),
            Credential {
                username: user,
                secret: Secret::new(pass),
                source: source.clone(),
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let c = Credential {
            username: "u".into(),
            secret: Secret::new("hunter2"),
            source: "test".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.describe().contains("hunter2"));
        assert_eq!(c.secret.expose(), "hunter2");
    }

    #[test]
    fn user_information_is_masked() {
        for (given, shown) in [
            ("tcp://u:pw@h:1234", "tcp://***@h:1234"),
            ("tcp://h:1234", "tcp://h:1234"),
            ("u:pw@127.0.0.1:5000/a/b:t", "***@127.0.0.1:5000/a/b:t"),
            ("ghcr.io/a/b@sha256:00", "ghcr.io/a/b@sha256:00"),
            ("docker-tcp://a@b:c@h:1/x", "docker-tcp://***@h:1/x"),
        ] {
            assert_eq!(mask_userinfo(given), shown);
        }
    }

    #[test]
    fn docker_config_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:pw1");
        std::fs::write(
            &p,
            format!(
                r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}},
                 "127.0.0.1:5000": {{"username": "bob", "password": "pw2"}}}}}}"#
            ),
        )
        .unwrap();
        let m = read_docker_config(&p).unwrap();
        assert_eq!(m["docker.io"].username, "alice");
        assert_eq!(m["docker.io"].secret.expose(), "pw1");
        assert_eq!(m["127.0.0.1:5000"].username, "bob");
    }

    #[test]
    fn bad_docker_config_names_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, "{not json").unwrap();
        let e = read_docker_config(&p).unwrap_err().to_string();
        assert!(e.contains("config.json"), "{e}");
    }
}
