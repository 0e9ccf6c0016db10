//! Which parent each image was built FROM, as the build recorded it in the registry (the
//! OCI annotations `org.opencontainers.image.base.name`/`.digest` on the manifest, or labels
//! of the same names in the config where BuildKit cannot annotate), checked before a
//! promotion: a stack whose child was built FROM another base than the one promoted with it
//! does not fit together, and is not promoted. Only manifests and configs are read.

use crate::registry::{ImageRef, Manifest, RegistryClient};
pub use crate::registry::{BASE_DIGEST_KEY, BASE_NAME_KEY};

/// The parent digest an image records, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// `org.opencontainers.image.base.digest`.
    Digest(String),
    /// No record (an image built before the record was made).
    None,
}

fn annotation(v: &serde_json::Value) -> Option<String> {
    v["annotations"][BASE_DIGEST_KEY]
        .as_str()
        .map(str::to_string)
}

/// The parent digest recorded for the image `m` (the manifest of `r`): the annotation of
/// the manifest (of an index: its own, else its first platform manifest's), else the label
/// in that manifest's config.
pub async fn recorded_base(
    client: &RegistryClient,
    r: &ImageRef,
    m: &Manifest,
) -> anyhow::Result<Recorded> {
    let v: serde_json::Value = serde_json::from_slice(&m.bytes)?;
    if let Some(d) = annotation(&v) {
        return Ok(Recorded::Digest(d));
    }
    let image = match v["manifests"].as_array() {
        Some(list) => {
            // An image index: its first platform image (attestations have no real platform).
            let Some(first) = list
                .iter()
                .find(|e| e["platform"]["os"].as_str().is_some_and(|o| o != "unknown"))
                .and_then(|e| e["digest"].as_str())
            else {
                return Ok(Recorded::None);
            };
            let Some(pm) = client.get_manifest(&r.with_digest(first)).await? else {
                return Ok(Recorded::None);
            };
            let pv: serde_json::Value = serde_json::from_slice(&pm.bytes)?;
            if let Some(d) = annotation(&pv) {
                return Ok(Recorded::Digest(d));
            }
            pv
        }
        None => v,
    };
    let Some(config) = image["config"]["digest"].as_str() else {
        return Ok(Recorded::None);
    };
    let c: serde_json::Value = serde_json::from_slice(&client.get_blob(r, config).await?)?;
    Ok(match c["config"]["Labels"][BASE_DIGEST_KEY].as_str() {
        Some(d) => Recorded::Digest(d.to_string()),
        None => Recorded::None,
    })
}

/// The platform manifests an index lists (empty for an image manifest).
fn listed(m: &Manifest) -> Vec<String> {
    serde_json::from_slice::<serde_json::Value>(&m.bytes)
        .ok()
        .and_then(|v| {
            v["manifests"].as_array().map(|l| {
                l.iter()
                    .filter_map(|e| e["digest"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Whether a child recording `recorded` fits the parent promoted as `parent`: the same
/// digest, or one of the platform images the parent's index lists (a merged split build
/// records its platform's parent image).
pub fn fits(recorded: &str, parent: &Manifest) -> bool {
    recorded == parent.digest || listed(parent).iter().any(|d| d == recorded)
}

/// One child whose record does not fit its promoted parent.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub child: String,
    pub parent: String,
    pub recorded: String,
    pub promoted: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was built FROM {}, but {} is promoted as {}",
            self.child, self.recorded, self.parent, self.promoted
        )
    }
}

/// Check each child (`names[i]`, manifest `manifests[i]`, read from `refs[i]`) against its
/// parent (`parents[i]`, an index into the same lists). Returns the mismatches and the
/// children that record no parent (older builds: a warning, not a refusal).
pub async fn check(
    client: &RegistryClient,
    refs: &[ImageRef],
    names: &[String],
    manifests: &[Manifest],
    parents: &[Option<usize>],
) -> anyhow::Result<(Vec<Mismatch>, Vec<String>)> {
    let mut mismatches = vec![];
    let mut unrecorded = vec![];
    for (i, p) in parents.iter().enumerate() {
        let Some(p) = *p else { continue };
        match recorded_base(client, &refs[i], &manifests[i]).await? {
            Recorded::None => unrecorded.push(names[i].clone()),
            Recorded::Digest(d) if fits(&d, &manifests[p]) => {}
            Recorded::Digest(d) => mismatches.push(Mismatch {
                child: names[i].clone(),
                parent: names[p].clone(),
                recorded: d,
                promoted: manifests[p].digest.clone(),
            }),
        }
    }
    Ok((mismatches, unrecorded))
}
