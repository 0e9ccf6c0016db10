//! Where commands run in an image: in a Docker engine's containers (the engine pulls the
//! image, by digest, with stackctl's credentials) or on the BuildKit node that built it
//! ([`super::in_buildkit`]).

use super::commands::{run_info_commands, InfoOutput};
use super::in_buildkit::Node;
use super::Stop;
use crate::credentials::CredentialStore;
use crate::registry::ImageRef;
use crate::spec::InfoCmd;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where a command of an image runs.
#[derive(Clone)]
pub enum Runner {
    /// Containers of the Docker engine at DOCKER_HOST; what they run is pulled first with
    /// these credentials.
    Engine(CredentialStore),
    /// The BuildKit node.
    BuildKit(Node),
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Runner::Engine(_) => f.write_str("the Docker engine"),
            Runner::BuildKit(n) => write!(f, "BuildKit at {}", n.address()),
        }
    }
}

impl Default for Runner {
    fn default() -> Self {
        Runner::Engine(CredentialStore::default())
    }
}

impl Runner {
    /// `cmds` through `/bin/sh -c` in `image` (on `platform`, for the BuildKit node; the
    /// engine runs a platform's manifest by its digest): see
    /// [`super::commands::run_info_commands`] for what a failure gives.
    pub async fn info_commands(
        &self,
        image: &ImageRef,
        platform: Option<&str>,
        cmds: &[InfoCmd],
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Vec<InfoOutput>, Stop> {
        match self {
            Runner::Engine(creds) => {
                if !cmds.is_empty() {
                    prepull(image, creds).await;
                }
                run_info_commands(image, cmds, timeout, cancel).await
            }
            Runner::BuildKit(node) => {
                node.info_commands(&image.to_string(), platform, cmds, timeout, cancel)
                    .await
            }
        }
    }
}

/// Pull `image` into the engine with `creds` unless it is there; a failure is left to the
/// container's start, which says it in the result.
pub async fn prepull(image: &ImageRef, creds: &CredentialStore) {
    if let Err(e) = super::pull::ensure(image, creds).await {
        tracing::debug!("{e:#}");
    }
}
