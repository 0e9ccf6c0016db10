//! Pulling what an engine's containers run before they start, with the credentials stackctl
//! was given (`--username/--password-stdin` as well as Docker's config.json): testcontainers
//! would pull a missing image with config.json's credentials only.

use crate::credentials::CredentialStore;
use crate::registry::ImageRef;
use anyhow::anyhow;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;

/// Have `image` (best by digest: then exactly that image, and nothing else) in the engine:
/// pulled unless it is there already.
pub async fn ensure(image: &ImageRef, creds: &CredentialStore) -> anyhow::Result<()> {
    let docker = super::docker().await?;
    // The name as the engine writes it (what testcontainers then asks for).
    let name = match (&image.digest, &image.tag) {
        (Some(d), _) => format!("{}@{d}", image.familiar_name()),
        (None, Some(t)) => format!("{}:{t}", image.familiar_name()),
        (None, None) => format!("{}:latest", image.familiar_name()),
    };
    if docker.inspect_image(&name).await.is_ok() {
        return Ok(());
    }
    let host = image.registry.as_str();
    let auth = creds.for_host(host).map(|c| DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.secret.expose().to_string()),
        serveraddress: Some(host.to_string()),
        ..Default::default()
    });
    let opts = CreateImageOptionsBuilder::new().from_image(&name).build();
    let mut stream = docker.create_image(Some(opts), None, auth);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| anyhow!("the engine cannot pull {name}: {e}"))?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(anyhow!("the engine cannot pull {name}: {err}"));
        }
    }
    Ok(())
}
