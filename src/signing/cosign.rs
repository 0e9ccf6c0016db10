//! cosign's signature storage, which needs no referrers API (GHCR, Docker Hub and
//! Distribution have none): the signatures of `repo@sha256:<hex>` are the layers of an OCI
//! manifest tagged `sha256-<hex>.sig` in the same repository. Each layer is a "simple
//! signing" payload naming the digest, with the base64 signature in its annotation.
//! `cosign verify --key` (2.x and 3.x) reads this form.

use super::key::{Signer, Verifier};
use crate::registry::client::{sha256_digest, OCI_MANIFEST};
use crate::registry::{ImageRef, Manifest, RegistryClient, RegistryError};
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosignproject.cosign/simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The tag that holds the signatures of `digest` (`sha256:<hex>` → `sha256-<hex>.sig`).
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// The payload cosign signs: the repository and the manifest digest.
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .unwrap_or_default()
}

/// What checking one digest's signatures found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum Verdict {
    /// At least one signature by the key over this digest.
    Signed,
    /// No `.sig` tag, or none of its signatures is over this digest.
    Unsigned,
    /// Signatures there, none by this key (or damaged).
    Invalid(String),
}

/// Sign `repository@digest` with `signer` and store the signature under its `.sig` tag,
/// keeping signatures already there; read back before it is reported. Returns the
/// signature manifest's digest.
pub async fn sign(
    client: &RegistryClient,
    repository: &ImageRef,
    digest: &str,
    signer: &Signer,
) -> Result<String, RegistryError> {
    let name = repository.name();
    let body = payload(&name, digest);
    let signature = base64::engine::general_purpose::STANDARD.encode(signer.sign(&body));
    let payload_digest = client
        .push_blob(repository, Bytes::from(body.clone()))
        .await?;
    let tag = repository.with_tag(&signature_tag(digest));
    let mut layers: Vec<Value> = match client.get_manifest(&tag).await? {
        Some(m) => serde_json::from_slice::<Value>(&m.bytes)
            .ok()
            .and_then(|v| v["layers"].as_array().cloned())
            .unwrap_or_default(),
        None => vec![],
    };
    let layer = json!({
        "mediaType": SIMPLE_SIGNING,
        "size": body.len(),
        "digest": payload_digest,
        "annotations": {SIGNATURE_ANNOTATION: signature},
    });
    if !layers.contains(&layer) {
        layers.push(layer);
    }
    let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "", "os": "", "config": {},
        "created": "0001-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap_or_default();
    let config_size = config.len();
    let config_digest = client.push_blob(repository, Bytes::from(config)).await?;
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "size": config_size, "digest": config_digest},
        "layers": layers,
    }))
    .unwrap_or_default();
    let m = Manifest {
        digest: sha256_digest(&bytes),
        media_type: OCI_MANIFEST.into(),
        bytes: Bytes::from(bytes),
    };
    client.put_manifest(&tag, &m).await?;
    match client.head_manifest(&tag).await? {
        Some(d) if d.digest == m.digest => Ok(m.digest),
        other => Err(RegistryError::Invalid {
            reference: tag.to_string(),
            reason: format!(
                "the signature was written, but the tag reads back as {}",
                other.map_or("missing".into(), |d| d.digest)
            ),
        }),
    }
}

/// Copy the signatures of `digest` (in `src`'s repository), and of each manifest it lists
/// when it is an index, to `dst`'s repository, children first and the index last, so a
/// copy of the image verifies there too. Returns the `.sig` tags copied.
pub async fn copy_signatures(
    client: &RegistryClient,
    src: &ImageRef,
    dst: &ImageRef,
    digest: &str,
) -> Result<Vec<String>, RegistryError> {
    let at = src.with_digest(digest);
    let m = client
        .get_manifest(&at)
        .await?
        .ok_or_else(|| RegistryError::NotFound {
            reference: at.to_string(),
        })?;
    let v: Value = serde_json::from_slice(&m.bytes).unwrap_or_default();
    let mut digests: Vec<String> = v["manifests"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|e| e["digest"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    digests.push(digest.to_string());
    let mut copied = vec![];
    for d in digests {
        let tag = signature_tag(&d);
        let from = src.with_tag(&tag);
        let Some(sig) = client.get_manifest(&from).await? else {
            continue;
        };
        client
            .retag_manifest(&from, &sig, &dst.with_tag(&tag))
            .await?;
        copied.push(tag);
    }
    Ok(copied)
}

/// Check the signatures of `repository@digest` against `verifier`.
pub async fn verify(
    client: &RegistryClient,
    repository: &ImageRef,
    digest: &str,
    verifier: &Verifier,
) -> Result<Verdict, RegistryError> {
    let tag = repository.with_tag(&signature_tag(digest));
    let Some(m) = client.get_manifest(&tag).await? else {
        return Ok(Verdict::Unsigned);
    };
    let v: Value = serde_json::from_slice(&m.bytes).unwrap_or_default();
    let mut over_digest = 0;
    for l in v["layers"].as_array().into_iter().flatten() {
        if l["mediaType"] != SIMPLE_SIGNING {
            continue;
        }
        let (Some(d), Some(sig)) = (
            l["digest"].as_str(),
            l["annotations"][SIGNATURE_ANNOTATION].as_str(),
        ) else {
            continue;
        };
        let body = client.get_blob(&tag, d).await?;
        let p: Value = serde_json::from_slice(&body).unwrap_or_default();
        if p["critical"]["image"]["docker-manifest-digest"] != digest {
            continue;
        }
        over_digest += 1;
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(sig) else {
            continue;
        };
        if verifier.verify(&body, &sig) {
            return Ok(Verdict::Signed);
        }
    }
    Ok(if over_digest == 0 {
        Verdict::Unsigned
    } else {
        Verdict::Invalid(format!(
            "{over_digest} signature(s) over {digest} at {tag}, none by this key"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sig_tag_and_payload_are_cosigns() {
        assert_eq!(signature_tag("sha256:ab12"), "sha256-ab12.sig");
        let p: Value = serde_json::from_slice(&payload("r.io/o/x", "sha256:ab")).unwrap();
        assert_eq!(
            p["critical"]["image"]["docker-manifest-digest"],
            "sha256:ab"
        );
        assert_eq!(p["critical"]["identity"]["docker-reference"], "r.io/o/x");
        assert_eq!(p["critical"]["type"], "cosign container image signature");
    }
}
