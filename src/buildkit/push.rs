//! Pushing an image the engine's BuildKit left in the Docker engine, with the engine's API
//! (bollard's `push_image`), credentials sent as X-Registry-Auth.

use super::transport::EngineSocket;
use crate::credentials::CredentialStore;
use crate::registry::ImageRef;
use anyhow::{anyhow, Context as _};
use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptions;
use bollard::Docker;
use futures::StreamExt;

/// A bollard client for the engine behind `sock`.
pub fn docker(sock: &EngineSocket) -> anyhow::Result<Docker> {
    match sock {
        EngineSocket::Unix(p) => {
            Docker::connect_with_unix(&p.to_string_lossy(), 600, bollard::API_DEFAULT_VERSION)
        }
        EngineSocket::Tcp(h) => {
            Docker::connect_with_http(&format!("tcp://{h}"), 600, bollard::API_DEFAULT_VERSION)
        }
    }
    .context("cannot set up a Docker engine client")
}

/// Push `reference` from the engine and return the manifest digest the registry got.
/// The engine gets the familiar name (`x` for the Docker Hub image `docker.io/library/x`).
pub async fn push_from_engine(
    sock: &EngineSocket,
    reference: &ImageRef,
    creds: &CredentialStore,
) -> anyhow::Result<String> {
    let docker = docker(sock)?;
    let tag = match (&reference.tag, &reference.digest) {
        (Some(t), None) => t,
        _ => {
            return Err(anyhow!(
                "pushing {reference}: a push needs a tag, not a digest"
            ))
        }
    };
    let host = reference.registry.as_str();
    let auth = creds.for_host(host).map(|c| DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.secret.expose().to_string()),
        serveraddress: Some(host.to_string()),
        ..Default::default()
    });
    let opts = PushImageOptions {
        tag: Some(tag.to_string()),
        platform: None,
    };
    let mut stream = docker.push_image(&reference.familiar_name(), Some(opts), auth);
    let digest_re = regex::Regex::new(r"digest: (sha256:[0-9a-f]{64})").expect("valid regex");
    let mut digest = None;
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| anyhow!("pushing {reference}: {e}"))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(anyhow!("pushing {reference}: {err}"));
        }
        if let Some(status) = &info.status {
            if let Some(c) = digest_re.captures(status) {
                digest = Some(c[1].to_string());
            }
        }
    }
    digest.ok_or_else(|| anyhow!("pushing {reference}: the engine reported no digest"))
}

/// Whether a push error says the registry refused access (wrong or missing credentials), as
/// the engine and BuildKit word it: such a push is unavailable (refused access), not failed
/// work.
pub fn is_access_refused(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "unauthorized",
        "authentication required",
        "access denied",
        "requested access to the resource is denied",
        "401 unauthorized",
        "403 forbidden",
        "insufficient_scope",
    ]
    .iter()
    .any(|w| m.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_access() {
        assert!(is_access_refused(
            "pushing h/a:t: unauthorized: authentication required"
        ));
        assert!(is_access_refused("failed to authorize: 401 Unauthorized"));
        assert!(!is_access_refused("pushing h/a:t: connection refused"));
    }
}
