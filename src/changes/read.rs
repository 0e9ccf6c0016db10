//! An image's side of a comparison, from its registry alone: its manifests and configs
//! (sizes, layers, the steps that made them), and each platform's inventory from an
//! attached artifact or an SBOM attestation. No layer is read.

use super::diff::{ImageSide, Layer, PlatformImage};
use super::inventory::{self, Inventory};
use crate::registry::client::{DOCKER_MANIFEST_LIST, OCI_INDEX};
use crate::registry::referrers::Subject;
use crate::registry::{ImageRef, RegistryClient};
use anyhow::Context as _;
use serde_json::Value;
use std::collections::BTreeMap;

/// The artifact type of an inventory stackctl attaches to a platform manifest.
pub const INVENTORY_TYPE: &str = "application/vnd.stackctl.inventory.v1+json";

/// What `r` names, platform by platform, with the inventories attached to it (or its SBOM
/// attestation's); None when it is not in its registry.
pub async fn read_image(
    client: &RegistryClient,
    r: &ImageRef,
) -> anyhow::Result<Option<ImageSide>> {
    let Some(m) = client.get_manifest(r).await? else {
        return Ok(None);
    };
    let mut platforms = vec![];
    // Platform manifest → its attestation manifest, where an SBOM may be.
    let mut attestations: BTreeMap<String, String> = BTreeMap::new();
    if m.media_type == OCI_INDEX || m.media_type == DOCKER_MANIFEST_LIST {
        let index: Value = serde_json::from_slice(&m.bytes)
            .with_context(|| format!("{r}: the index is not JSON"))?;
        for e in index["manifests"].as_array().into_iter().flatten() {
            let Some(d) = e["digest"].as_str() else {
                continue;
            };
            if crate::registry::attestation::is_attestation_entry(e) {
                if let Some(subject) =
                    e["annotations"][crate::registry::attestation::REFERENCE_DIGEST].as_str()
                {
                    attestations.insert(subject.to_string(), d.to_string());
                }
                continue;
            }
            let p = &e["platform"];
            if p["os"] == "unknown" {
                continue;
            }
            let mut name = format!(
                "{}/{}",
                p["os"].as_str().unwrap_or("?"),
                p["architecture"].as_str().unwrap_or("?")
            );
            if let Some(v) = p["variant"].as_str() {
                name = format!("{name}/{v}");
            }
            platforms.push(read_platform(client, &r.with_digest(d), Some(name)).await?);
        }
    } else {
        platforms.push(read_platform(client, &r.with_digest(&m.digest), None).await?);
    }
    for p in &mut platforms {
        let attached = read_inventory(client, r, &p.digest).await;
        match attached {
            Ok(Some(inv)) => {
                p.inventory = Some(inv);
                p.inventory_source = "attached".into();
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                p.inventory_source = format!("the attached inventory could not be read: {e:#}")
            }
        }
        if let Some(attestation) = attestations.get(&p.digest) {
            match sbom_inventory(client, &r.with_digest(attestation)).await {
                Ok(Some(inv)) => {
                    p.inventory = Some(inv);
                    p.inventory_source = "sbom".into();
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("the SBOM of {r} ({}) not read: {e:#}", p.platform),
            }
        }
    }
    Ok(Some(ImageSide {
        reference: r.to_string(),
        digest: m.digest,
        platforms,
    }))
}

/// One platform manifest's layers, with the steps of its config's history.
async fn read_platform(
    client: &RegistryClient,
    at: &ImageRef,
    platform: Option<String>,
) -> anyhow::Result<PlatformImage> {
    let m = client
        .get_manifest(at)
        .await?
        .with_context(|| format!("{at}: listed but not found"))?;
    let v: Value = serde_json::from_slice(&m.bytes).with_context(|| format!("{at}: not JSON"))?;
    let config_digest = v["config"]["digest"].as_str().unwrap_or_default();
    let config: Value = match client.get_blob(at, config_digest).await {
        Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
        Err(e) => {
            tracing::warn!("{at}: its config not read: {e}");
            Value::Null
        }
    };
    let steps = layer_steps(&config);
    let layers = v["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, l)| Layer {
            digest: l["digest"].as_str().unwrap_or_default().to_string(),
            size: l["size"].as_u64().unwrap_or(0),
            created_by: steps.get(i).cloned().flatten(),
        })
        .collect();
    let platform = platform.unwrap_or_else(|| config_platform(&config));
    Ok(PlatformImage {
        platform,
        digest: m.digest,
        layers,
        inventory: None,
        inventory_source: "none attached".into(),
    })
}

/// The steps of a config's history that made a layer, in layer order.
pub fn layer_steps(config: &Value) -> Vec<Option<String>> {
    config["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| !h["empty_layer"].as_bool().unwrap_or(false))
        .map(|h| h["created_by"].as_str().map(str::to_string))
        .collect()
}

/// `linux/arm64/v8`: the platform an image config names.
pub fn config_platform(config: &Value) -> String {
    let mut p = format!(
        "{}/{}",
        config["os"].as_str().unwrap_or("?"),
        config["architecture"].as_str().unwrap_or("?")
    );
    if let Some(v) = config["variant"].as_str() {
        p = format!("{p}/{v}");
    }
    p
}

/// The newest inventory attached to the platform manifest `digest` in `r`'s repository.
pub async fn read_inventory(
    client: &RegistryClient,
    r: &ImageRef,
    digest: &str,
) -> anyhow::Result<Option<Inventory>> {
    let found = client.referrers(r, digest, Some(INVENTORY_TYPE)).await?;
    let Some(newest) = found.last() else {
        return Ok(None);
    };
    let data = client.artifact_data(r, &newest.digest).await?;
    let inv: Inventory = serde_json::from_slice(&data).with_context(|| {
        format!(
            "{}: the inventory is not valid",
            r.with_digest(&newest.digest)
        )
    })?;
    Ok(Some(inv))
}

/// Packages from the SPDX statement of the attestation manifest `at`, if it has one.
async fn sbom_inventory(
    client: &RegistryClient,
    at: &ImageRef,
) -> anyhow::Result<Option<Inventory>> {
    let Some(m) = client.get_manifest(at).await? else {
        return Ok(None);
    };
    let v: Value = serde_json::from_slice(&m.bytes)?;
    let Some(layer) = v["layers"].as_array().into_iter().flatten().find(|l| {
        l["annotations"][crate::registry::attestation::PREDICATE_TYPE]
            == crate::registry::attestation::SPDX
    }) else {
        return Ok(None);
    };
    let blob = client
        .get_blob(at, layer["digest"].as_str().unwrap_or_default())
        .await?;
    let statement: Value = serde_json::from_slice(&blob)?;
    Ok(Some(inventory::from_spdx(&statement["predicate"])))
}

/// Attach `inventory` to the platform manifest `subject` of `repository`.
pub async fn attach_inventory(
    client: &RegistryClient,
    repository: &ImageRef,
    subject: &Subject,
    inventory: &Inventory,
) -> anyhow::Result<String> {
    let data = serde_json::to_vec(inventory)?;
    let annotations = BTreeMap::from([(
        "org.opencontainers.image.created".to_string(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )]);
    Ok(client
        .attach(
            repository,
            subject,
            INVENTORY_TYPE,
            data.into(),
            &annotations,
        )
        .await?)
}
