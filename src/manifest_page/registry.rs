//! The one place the manifest page reads the registry: an image's manifest (for this
//! machine's platform when the reference is an index) and its config blob.
//! Kept to [`fetch_image`] so a fuller registry client can replace it.

use crate::credentials::CredentialStore;
use anyhow::Context;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    pub credentials: CredentialStore,
    /// `HOST:PORT`s reached over plain http (loopback hosts always are).
    pub insecure: Vec<String>,
}

/// What the page needs of an image in its registry.
#[derive(Debug, Clone)]
pub struct ImageMeta {
    /// Compressed layer sizes, bottom layer first.
    pub layer_sizes: Vec<u64>,
    /// The image config (JSON).
    pub config: serde_json::Value,
    /// The digest of the (platform) manifest.
    pub digest: String,
}

/// Whether `host` (`HOST[:PORT]`) is on the loopback interface.
pub fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Fetch the manifest and config of `image_ref` without pulling its layers.
pub async fn fetch_image(image_ref: &str, access: &RegistryAccess) -> anyhow::Result<ImageMeta> {
    let reference: Reference = image_ref
        .parse()
        .with_context(|| format!("{image_ref:?} is not a valid image reference"))?;
    let host = reference.resolve_registry().to_string();
    let mut plain: Vec<String> = access.insecure.clone();
    if is_loopback(&host) {
        plain.push(host.clone());
    }
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain),
        ..Default::default()
    });
    let auth = match access.credentials.for_host(reference.registry()) {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.secret.expose().to_string()),
        None => RegistryAuth::Anonymous,
    };
    let (manifest, digest, config) = client
        .pull_manifest_and_config(&reference, &auth)
        .await
        .with_context(|| {
            format!("cannot read the manifest and config of {image_ref} from {host}")
        })?;
    let config: serde_json::Value = serde_json::from_str(&config)
        .with_context(|| format!("the config of {image_ref} is not JSON"))?;
    Ok(ImageMeta {
        layer_sizes: manifest
            .layers
            .iter()
            .map(|l| l.size.max(0) as u64)
            .collect(),
        config,
        digest,
    })
}
