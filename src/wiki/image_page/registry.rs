//! The one place the manifest page reads the registry: an image's manifest (for this
//! machine's platform when the reference is an index) and its config blob, through the
//! crate's registry client ([`crate::registry::RegistryClient`]).

use crate::credentials::CredentialStore;
use crate::registry::{ClientOptions, ImageRef, RegistryClient};
use anyhow::Context;
use oci_spec::image::{Arch, ImageIndex, ImageManifest, Os};

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
    /// Their digests, in the same order.
    pub layer_digests: Vec<String>,
    /// The image config (JSON).
    pub config: serde_json::Value,
    /// The digest of the (platform) manifest.
    pub digest: String,
}

impl ImageMeta {
    /// Its layers, each with the step that made it.
    pub fn layers(&self) -> Vec<crate::changes::diff::Layer> {
        let steps = crate::changes::read::layer_steps(&self.config);
        self.layer_digests
            .iter()
            .zip(&self.layer_sizes)
            .enumerate()
            .map(|(i, (d, s))| crate::changes::diff::Layer {
                digest: d.clone(),
                size: *s,
                created_by: steps.get(i).cloned().flatten(),
            })
            .collect()
    }
}

impl RegistryAccess {
    /// A registry client with these credentials and plain-http hosts.
    fn client(&self) -> anyhow::Result<RegistryClient> {
        RegistryClient::new(
            self.credentials.clone(),
            ClientOptions {
                insecure_registries: self.insecure.clone(),
                ..Default::default()
            },
        )
    }
}

/// Fetch the manifest and config of `r` without pulling its layers.
pub async fn fetch_image(r: &ImageRef, access: &RegistryAccess) -> anyhow::Result<ImageMeta> {
    let client = access.client()?;
    let mut m = client
        .get_manifest(r)
        .await?
        .with_context(|| format!("{r}: not found in its registry"))?;
    let mut at = r.clone();
    if is_index(&m.media_type) {
        let index = ImageIndex::from_reader(&m.bytes[..])
            .with_context(|| format!("the image index of {r} is not valid"))?;
        let (os, arch) = (Os::default(), Arch::default());
        let child = index
            .manifests()
            .iter()
            .find(|d| {
                d.platform()
                    .as_ref()
                    .is_some_and(|p| *p.os() == os && *p.architecture() == arch)
            })
            .with_context(|| format!("{r} has no image for {os}/{arch}"))?;
        at = r.with_digest(child.digest().as_ref());
        m = client
            .get_manifest(&at)
            .await?
            .with_context(|| format!("{at}: listed in the index of {r} but not found"))?;
    }
    let manifest = ImageManifest::from_reader(&m.bytes[..])
        .with_context(|| format!("the manifest of {at} is not an image manifest"))?;
    let config = client
        .get_blob(&at, manifest.config().digest().as_ref())
        .await?;
    let config: serde_json::Value = serde_json::from_slice(&config)
        .with_context(|| format!("the config of {r} is not JSON"))?;
    Ok(ImageMeta {
        layer_sizes: manifest.layers().iter().map(|l| l.size()).collect(),
        layer_digests: manifest
            .layers()
            .iter()
            .map(|l| l.digest().to_string())
            .collect(),
        config,
        digest: m.digest,
    })
}

/// Each platform's manifest and config when `r` names an image index (`linux/arm64` →
/// its [`ImageMeta`], in the index's order; entries without a real platform, such as
/// attestations, are left out), with the index's digest. None when `r` is one manifest.
pub async fn fetch_platforms(
    r: &ImageRef,
    access: &RegistryAccess,
) -> anyhow::Result<Option<(String, Vec<(String, ImageMeta)>)>> {
    let client = access.client()?;
    let m = client
        .get_manifest(r)
        .await?
        .with_context(|| format!("{r}: not found in its registry"))?;
    if !is_index(&m.media_type) {
        return Ok(None);
    }
    let index = ImageIndex::from_reader(&m.bytes[..])
        .with_context(|| format!("the image index of {r} is not valid"))?;
    let mut out = vec![];
    for d in index.manifests() {
        let Some(p) = d.platform() else { continue };
        if p.os().to_string() == "unknown" {
            continue;
        }
        let mut name = format!("{}/{}", p.os(), p.architecture());
        if let Some(v) = p.variant() {
            name.push('/');
            name.push_str(v);
        }
        let at = r.with_digest(d.digest().as_ref());
        out.push((name, fetch_image(&at, access).await?));
    }
    Ok(Some((m.digest, out)))
}

/// The attestations of the index `r` names (none when it is one manifest), each named by
/// the platform of its subject (`platforms`: manifest digest → platform name), with what
/// its provenance says. A statement that cannot be read is a warning, not a failed page.
pub(super) async fn fetch_attestations(
    r: &ImageRef,
    access: &RegistryAccess,
    platforms: &[(String, String)],
) -> anyhow::Result<Vec<super::AttestationFacts>> {
    let client = access.client()?;
    let found = match client.attestations(r).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("attestations of {r} not read: {e}");
            return Ok(vec![]);
        }
    };
    let mut out = vec![];
    for attestation in found {
        let platform = platforms
            .iter()
            .find(|(d, _)| *d == attestation.subject)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| format!("`{}`", attestation.subject));
        let provenance = client
            .provenance(r, &attestation)
            .await
            .inspect_err(|e| tracing::warn!("provenance of {r} not read: {e}"))
            .ok()
            .flatten();
        out.push(super::AttestationFacts {
            platform,
            attestation,
            provenance,
        });
    }
    Ok(out)
}

fn is_index(media_type: &str) -> bool {
    media_type == crate::registry::client::OCI_INDEX
        || media_type == crate::registry::client::DOCKER_MANIFEST_LIST
}
