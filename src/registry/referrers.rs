//! Artifacts that name an image as their `subject` (OCI 1.1), and the referrers tag schema
//! that lists them on registries without the referrers API (GHCR, Docker Hub,
//! Distribution): an index under the tag `sha256-<hex>` of the subject, one entry per
//! artifact, with its `artifactType` and annotations.
//!
//! A registry has no conditional PUT: two writers of one subject's list can lose an entry.
//! Each write reads the list, adds its entry, PUTs it and reads it back; a lost entry is
//! reported, and writing again restores it.

use super::client::{
    sha256_digest, Manifest, RegistryClient, RegistryError, OCI_INDEX, OCI_MANIFEST,
};
use super::reference::ImageRef;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The empty config of an artifact (`{}`), as image-spec 1.1 gives it.
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// One artifact the referrers list names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Referrer {
    pub digest: String,
    pub artifact_type: String,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
}

/// The tag the referrers of `digest` are listed under: `sha256-<hex>`.
pub fn referrers_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// What an artifact is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

impl RegistryClient {
    /// Push `data` as a one-layer artifact of `artifact_type` whose subject is `subject`,
    /// in `repository`, and list it under the subject's referrers tag; read back before it
    /// is reported. Returns the artifact's digest.
    pub async fn attach(
        &self,
        repository: &ImageRef,
        subject: &Subject,
        artifact_type: &str,
        data: Bytes,
        annotations: &BTreeMap<String, String>,
    ) -> Result<String, RegistryError> {
        let size = data.len();
        let blob = self.push_blob(repository, data).await?;
        let empty = self
            .push_blob(repository, Bytes::from_static(b"{}"))
            .await?;
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY_CONFIG, "digest": empty, "size": 2},
            "layers": [{"mediaType": artifact_type, "digest": blob, "size": size}],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest,
                        "size": subject.size},
        });
        if !annotations.is_empty() {
            m["annotations"] = json!(annotations);
        }
        let bytes = serde_json::to_vec(&m).unwrap_or_default();
        let artifact = Manifest {
            digest: sha256_digest(&bytes),
            media_type: OCI_MANIFEST.into(),
            bytes: Bytes::from(bytes),
        };
        let at = repository.with_digest(&artifact.digest);
        self.put_manifest(&at, &artifact).await?;
        let entry = Referrer {
            digest: artifact.digest.clone(),
            artifact_type: artifact_type.to_string(),
            size: artifact.bytes.len() as u64,
            annotations: annotations.clone(),
        };
        self.list_referrer(repository, &subject.digest, &entry)
            .await?;
        Ok(artifact.digest)
    }

    /// Add `entry` to the referrers index of `subject` (kept as it is when there), and read
    /// the tag back.
    async fn list_referrer(
        &self,
        repository: &ImageRef,
        subject: &str,
        entry: &Referrer,
    ) -> Result<(), RegistryError> {
        let tag = repository.with_tag(&referrers_tag(subject));
        let mut entries: Vec<Value> = match self.get_manifest(&tag).await? {
            Some(m) => serde_json::from_slice::<Value>(&m.bytes)
                .ok()
                .and_then(|v| v["manifests"].as_array().cloned())
                .unwrap_or_default(),
            None => vec![],
        };
        if entries.iter().any(|e| e["digest"] == entry.digest.as_str()) {
            return Ok(());
        }
        let mut e = json!({
            "mediaType": OCI_MANIFEST,
            "digest": entry.digest,
            "size": entry.size,
            "artifactType": entry.artifact_type,
        });
        if !entry.annotations.is_empty() {
            e["annotations"] = json!(entry.annotations);
        }
        entries.push(e);
        let bytes = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": entries,
        }))
        .unwrap_or_default();
        let index = Manifest {
            digest: sha256_digest(&bytes),
            media_type: OCI_INDEX.into(),
            bytes: Bytes::from(bytes),
        };
        self.put_manifest(&tag, &index).await?;
        match self.head_manifest(&tag).await? {
            Some(d) if d.digest == index.digest => Ok(()),
            other => Err(RegistryError::Invalid {
                reference: tag.to_string(),
                reason: format!(
                    "the referrers list was written, but the tag reads back as {} (another \
                     writer at the same time?)",
                    other.map_or("missing".into(), |d| d.digest)
                ),
            }),
        }
    }

    /// The artifacts listed as referrers of `subject` in `repository` (one GET), those of
    /// `artifact_type` only when given. Empty when none is listed.
    pub async fn referrers(
        &self,
        repository: &ImageRef,
        subject: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, RegistryError> {
        let tag = repository.with_tag(&referrers_tag(subject));
        let Some(m) = self.get_manifest(&tag).await? else {
            return Ok(vec![]);
        };
        let v: Value = serde_json::from_slice(&m.bytes).map_err(|e| RegistryError::Invalid {
            reference: tag.to_string(),
            reason: format!("the referrers list is not JSON: {e}"),
        })?;
        Ok(v["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some(Referrer {
                    digest: e["digest"].as_str()?.to_string(),
                    artifact_type: e["artifactType"].as_str().unwrap_or_default().to_string(),
                    size: e["size"].as_u64().unwrap_or(0),
                    annotations: serde_json::from_value(e["annotations"].clone())
                        .unwrap_or_default(),
                })
            })
            .filter(|r| artifact_type.is_none_or(|t| r.artifact_type == t))
            .collect())
    }

    /// The one layer of the artifact `repository@digest` (a manifest GET and a blob GET).
    pub async fn artifact_data(
        &self,
        repository: &ImageRef,
        digest: &str,
    ) -> Result<Bytes, RegistryError> {
        let at = repository.with_digest(digest);
        let m = self
            .get_manifest(&at)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                reference: at.to_string(),
            })?;
        let v: Value = serde_json::from_slice(&m.bytes).map_err(|e| RegistryError::Invalid {
            reference: at.to_string(),
            reason: format!("not valid JSON: {e}"),
        })?;
        let Some(layer) = v["layers"][0]["digest"].as_str() else {
            return Err(RegistryError::Invalid {
                reference: at.to_string(),
                reason: "the artifact has no layer".into(),
            });
        };
        self.get_blob(&at, layer).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tag_of_a_digest() {
        assert_eq!(super::referrers_tag("sha256:abc"), "sha256-abc");
    }
}
