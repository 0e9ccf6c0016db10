//! Options shared by several commands.

use crate::credentials::{Credential, CredentialStore, Secret};
use crate::registry::{ClientOptions, RegistryClient};
use crate::spec::Spec;
use std::io::Read;
use std::path::PathBuf;

/// Where the stack is: the repository and its spec.
#[derive(Debug, Clone, clap::Args)]
pub struct SpecArgs {
    /// The git repository holding the stack.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,
    /// The spec file [default: DIR/spec.yml, else DIR/images/spec.yml].
    /// Image folders are `images/<key>/` beside it (or around it, in the old layout).
    #[arg(long, value_name = "PATH")]
    pub spec: Option<PathBuf>,
}

impl SpecArgs {
    /// Load and validate the spec, logging its warnings.
    pub fn load(&self) -> anyhow::Result<Spec> {
        let spec = Spec::load(&self.repo, self.spec.as_deref())?;
        for w in &spec.warnings {
            tracing::warn!("{w}");
        }
        Ok(spec)
    }
}

/// How to reach registries.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryArgs {
    /// Registry user name (with --password-stdin). Otherwise Docker's config.json
    /// (DOCKER_CONFIG) is used, and for ghcr.io GITHUB_TOKEN with GITHUB_ACTOR or GITHUB_USER.
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password or token for --username from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Allow plain http to this registry (HOST:PORT); loopback registries are always allowed. Repeatable.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_insecure)]
    pub insecure_registry: Vec<String>,
    /// Set by the commands whose registry work is all through the registry API (exists,
    /// retag, tag) from their `--registry-endpoint` options; see [`RegistryApiArgs`].
    #[arg(skip)]
    pub endpoints: Vec<(String, String)>,
}

/// The registry options with `--registry-endpoint`, for the commands that only talk to
/// registries through the registry API (`exists`, `retag`, `tag`): a build's pushes go
/// through BuildKit, which would not follow it, so `build` and `build-image` do not offer it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryApiArgs {
    /// Send the requests for registry NAME (as in references: docker.io for Docker Hub
    /// names such as ucsdets/notebook, ghcr.io, ...) to HOST:PORT instead: a mirror or a
    /// test registry. Names printed and written (wiki, IMAGES_* lists) stay as written.
    /// Repeatable.
    #[arg(long = "registry-endpoint", value_name = "NAME=HOST:PORT", value_parser = parse_endpoint)]
    pub registry_endpoint: Vec<(String, String)>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl RegistryApiArgs {
    /// The registry options, with these endpoints set.
    pub fn with_endpoints(&self) -> RegistryArgs {
        RegistryArgs {
            endpoints: self.registry_endpoint.clone(),
            ..self.registry.clone()
        }
    }
}

/// Why `h` is not a registry host with an optional port, as a reference's registry part
/// (no scheme, path or user): checked by parsing `<h>/x`.
fn host_problem(h: &str) -> Option<String> {
    if h.is_empty() || h.contains(['/', '@', '=']) {
        return Some(format!("{h:?} is not HOST[:PORT]"));
    }
    match crate::registry::ImageRef::parse(&format!("{h}/x")) {
        Ok(r) if r.registry == h || (h == "index.docker.io" && r.registry == "docker.io") => None,
        Ok(_) => Some(format!(
            "{h:?} is not a registry host (it has no `.` or `:`, nor is localhost)"
        )),
        Err(e) => Some(e.reason),
    }
}

/// `--insecure-registry HOST[:PORT]`.
fn parse_insecure(s: &str) -> Result<String, String> {
    match host_problem(s) {
        None => Ok(s.to_string()),
        Some(why) => Err(format!("expected HOST:PORT: {why}")),
    }
}

/// `NAME=HOST[:PORT]`; `index.docker.io` is Docker Hub's other name, stored as `docker.io`.
fn parse_endpoint(s: &str) -> Result<(String, String), String> {
    let (name, host) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=HOST:PORT (e.g. docker.io=127.0.0.1:5000)"))?;
    if let Some(why) = host_problem(name).or_else(|| host_problem(host)) {
        return Err(format!(
            "{s:?}: expected NAME=HOST:PORT with registry host names (e.g. docker.io=127.0.0.1:5000): {why}"
        ));
    }
    let name = if name == "index.docker.io" {
        "docker.io"
    } else {
        name
    };
    Ok((name.to_string(), host.to_string()))
}

impl RegistryArgs {
    /// The credentials these options and the environment give (reads stdin for
    /// --password-stdin).
    pub fn credentials(&self) -> anyhow::Result<CredentialStore> {
        let explicit = match &self.username {
            Some(user) if self.password_stdin => {
                let mut pw = String::new();
                std::io::stdin()
                    .read_to_string(&mut pw)
                    .map_err(|e| anyhow::anyhow!("cannot read the password from stdin: {e}"))?;
                let pw = pw.trim_end_matches(['\n', '\r']).to_string();
                if pw.is_empty() {
                    anyhow::bail!("--password-stdin: standard input was empty");
                }
                Some(Credential {
                    username: user.clone(),
                    secret: Secret::new(pw),
                    source: "--username/--password-stdin".into(),
                })
            }
            _ => None,
        };
        CredentialStore::from_env(explicit)
    }

    /// A registry client set up from these options.
    pub fn client(&self) -> anyhow::Result<RegistryClient> {
        self.client_with(self.credentials()?)
    }

    /// A registry client with credentials already read (`credentials` reads stdin once).
    pub fn client_with(&self, credentials: CredentialStore) -> anyhow::Result<RegistryClient> {
        RegistryClient::new(credentials, self.client_options())
    }

    /// The client options these flags give.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            insecure_registries: self.insecure_registry.clone(),
            endpoints: self.endpoints.clone(),
            ..Default::default()
        }
    }
}

/// The token cancelled on the first SIGINT or SIGTERM (see [`super::interrupt`]): running
/// tests stop, their containers are removed, and the command returns (writing what it has).
pub fn cancel_on_ctrl_c() -> tokio_util::sync::CancellationToken {
    super::interrupt::token()
}

#[cfg(test)]
mod tests {
    use super::parse_endpoint;

    #[test]
    fn registry_endpoints() {
        assert_eq!(
            parse_endpoint("docker.io=127.0.0.1:5000").unwrap(),
            ("docker.io".to_string(), "127.0.0.1:5000".to_string())
        );
        assert_eq!(
            parse_endpoint("index.docker.io=mirror.lan:443").unwrap().0,
            "docker.io"
        );
        for bad in [
            "docker.io",
            "docker.io=",
            "docker.io=http://127.0.0.1:5000",
            "docker.io=u:p@127.0.0.1:5000",
            "=127.0.0.1:5000",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }
}
