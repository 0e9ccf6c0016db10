//! Containers stackctl starts (tests, services, info commands), through testcontainers.
//!
//! Every container and network carries the label `stackctl=1` and a per-run label
//! `stackctl.run=<id>`. testcontainers removes a container when its handle is dropped,
//! but a container whose start failed (e.g. "executable file not found") is created
//! and never handed out; [`RunScope::cleanup`] therefore also removes whatever still
//! carries the run's label. Callers run it after their work, whatever its outcome.

pub mod commands;
pub mod in_buildkit;
pub mod pull;
pub mod runner;
pub mod suite;

use crate::registry::ImageRef;
use anyhow::Context;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;
use testcontainers::core::client::docker_client_instance;
use testcontainers::core::error::{ClientError, TestcontainersError};
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The label on every container and network stackctl creates.
pub const LABEL: &str = "stackctl";
/// The label naming the run (one `test` or `manifest` invocation) a container belongs to.
pub const RUN_LABEL: &str = "stackctl.run";

/// One run's containers and network: labels, names, cleanup.
#[derive(Debug, Clone)]
pub struct RunScope {
    pub id: String,
}

impl Default for RunScope {
    fn default() -> Self {
        Self::new()
    }
}

impl RunScope {
    pub fn new() -> Self {
        RunScope {
            id: format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff),
        }
    }

    /// The labels to put on a container or network of this run.
    pub fn labels(&self, role: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL.to_string(), "1".to_string()),
            (RUN_LABEL.to_string(), self.id.clone()),
            ("stackctl.role".to_string(), role.to_string()),
        ])
    }

    /// A container request for `image` with this run's labels.
    pub fn request(&self, image: &ImageRef, role: &str) -> ContainerRequest<GenericImage> {
        generic_image(image).with_labels(self.labels(role))
    }

    /// A user-defined network for this run (containers on it reach each other by name).
    pub async fn create_network(&self) -> anyhow::Result<String> {
        let docker = docker().await?;
        let name = format!("stackctl-{}", self.id);
        docker
            .create_network(bollard::models::NetworkCreateRequest {
                name: name.clone(),
                labels: Some(self.labels("network")),
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot create the Docker network {name}"))?;
        Ok(name)
    }

    /// Remove every container and network still labelled with this run (forcefully).
    /// Errors are logged, not returned: cleanup must not hide the run's result.
    pub async fn cleanup(&self) {
        let Ok(docker) = docker().await else {
            return;
        };
        let filter = HashMap::from([(
            "label".to_string(),
            vec![format!("{RUN_LABEL}={}", self.id)],
        )]);
        // A container whose create or start was in flight when the run was interrupted can
        // appear after the first listing, or outlive one removal (the engine finishes the
        // request it got): list at least twice, 300 ms apart, and until none is left.
        for round in 0..5 {
            if round > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            let opts = ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filter)
                .build();
            let Ok(list) = docker.list_containers(Some(opts)).await else {
                break;
            };
            if list.is_empty() && round > 0 {
                break;
            }
            for c in list {
                let Some(id) = c.id else { continue };
                tracing::debug!("removing leftover container {id}");
                let rm = RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build();
                if let Err(e) = docker.remove_container(&id, Some(rm)).await {
                    tracing::warn!("cannot remove container {id}: {e}");
                }
            }
        }
        let nopts = ListNetworksOptionsBuilder::new().filters(&filter).build();
        if let Ok(list) = docker.list_networks(Some(nopts)).await {
            for n in list {
                let Some(name) = n.name else { continue };
                if let Err(e) = docker.remove_network(&name).await {
                    tracing::warn!("cannot remove network {name}: {e}");
                }
            }
        }
    }
}

/// A bollard client for the engine testcontainers talks to (DOCKER_HOST honoured).
pub async fn docker() -> anyhow::Result<bollard::Docker> {
    docker_client_instance()
        .await
        .context("cannot reach the Docker engine (DOCKER_HOST, else /var/run/docker.sock)")
}

/// testcontainers' image for `r`. testcontainers names an image `NAME:TAG`; a digest
/// reference is given as name `REPO@ALGO` and tag `HEX`, which it writes back as the
/// reference. The engine gets the familiar name (`busybox`, as `docker` writes it).
pub fn generic_image(r: &ImageRef) -> GenericImage {
    match &r.digest {
        Some(d) => {
            let (algo, hex) = d.split_once(':').unwrap_or(("sha256", d));
            GenericImage::new(format!("{}@{algo}", r.familiar_name()), hex.to_string())
        }
        None => GenericImage::new(
            r.familiar_name(),
            r.tag.clone().unwrap_or_else(|| "latest".into()),
        ),
    }
}

/// Why work in containers stopped early.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    #[error("timed out")]
    Timeout,
    #[error("interrupted")]
    Cancelled,
    #[error("{0}")]
    Error(String),
}

/// Run `fut` until it ends, the deadline passes or `cancel` fires.
pub async fn bounded<T>(
    deadline: Instant,
    cancel: &CancellationToken,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Stop> {
    tokio::select! {
        v = fut => Ok(v),
        _ = tokio::time::sleep_until(deadline) => Err(Stop::Timeout),
        _ = cancel.cancelled() => Err(Stop::Cancelled),
    }
}

/// Start a container, turning testcontainers' errors into messages naming the image.
pub async fn start(
    req: ContainerRequest<GenericImage>,
    image_ref: &str,
    program: &str,
) -> Result<ContainerAsync<GenericImage>, Stop> {
    use testcontainers::runners::AsyncRunner;
    req.start()
        .await
        .map_err(|e| Stop::Error(describe_start_error(&e, image_ref, program)))
}

/// A start error in words: missing image, missing program, or the engine's message.
pub fn describe_start_error(e: &TestcontainersError, image_ref: &str, program: &str) -> String {
    let text = e.to_string();
    match e {
        TestcontainersError::Client(ClientError::PullImage { err, .. }) => format!(
            "image {image_ref} is not in the Docker engine and could not be pulled from its registry: {err}"
        ),
        _ if text.contains("executable file not found") || text.contains("no such file or directory") => {
            format!("cannot run `{program}` in {image_ref}: it is not in the image ({text})")
        }
        _ => format!("cannot start a container of {image_ref}: {text}"),
    }
}

/// Wait until the container has exited; its exit code.
pub async fn wait_exit(c: &ContainerAsync<GenericImage>) -> Result<i64, Stop> {
    loop {
        match c.exit_code().await {
            Ok(Some(code)) => return Ok(code),
            Ok(None) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => return Err(Stop::Error(format!("cannot inspect container: {e}"))),
        }
    }
}

/// The container's stdout and stderr so far, interleaved as the engine recorded them.
pub async fn logs(id: &str) -> String {
    let Ok(docker) = docker().await else {
        return String::new();
    };
    let opts = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .follow(false)
        .build();
    let mut out = Vec::new();
    let mut stream = docker.logs(id, Some(opts));
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(f) => out.extend_from_slice(&f.into_bytes()),
            Err(e) => {
                tracing::debug!("log stream of {id}: {e}");
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The IP address of a container on a network.
pub async fn ip_on_network(id: &str, network: &str) -> anyhow::Result<String> {
    let docker = docker().await?;
    let info = docker.inspect_container(id, None).await?;
    info.network_settings
        .and_then(|n| n.networks)
        .and_then(|mut n| n.remove(network))
        .and_then(|e| e.ip_address)
        .filter(|ip| !ip.is_empty())
        .with_context(|| format!("container {id} has no address on network {network}"))
}

#[cfg(test)]
mod tests {
    use super::generic_image;
    use crate::registry::ImageRef;
    use testcontainers::Image;

    #[test]
    fn images_of_references() {
        let d = |r: &str| {
            let i = generic_image(&ImageRef::parse(r).unwrap());
            format!("{}:{}", i.name(), i.tag())
        };
        assert_eq!(
            d("127.0.0.1:5000/stack/base:t1"),
            "127.0.0.1:5000/stack/base:t1"
        );
        assert_eq!(
            d("127.0.0.1:5000/stack/base"),
            "127.0.0.1:5000/stack/base:latest"
        );
        assert_eq!(d("busybox"), "busybox:latest");
        assert_eq!(d("docker.io/x/y:2"), "x/y:2");
        let hex = "a".repeat(64);
        assert_eq!(
            d(&format!("r.io/x@sha256:{hex}")),
            format!("r.io/x@sha256:{hex}")
        );
    }
}
