//! BuildKit's attestations, read from an image index without pulling: each platform's
//! attestation manifest (an index entry with platform `unknown/unknown` and the annotation
//! `vnd.docker.reference.type: attestation-manifest`), its in-toto statements, and the
//! SLSA provenance among them (v0.2 from BuildKit before v0.28, v1 after).
//!
//! BuildKit v0.32 writes the attestation manifest as an OCI artifact (`artifactType`,
//! `subject`, an empty config); v0.25 writes a plain image manifest. Both carry the same
//! index annotations, which is what is read here.

use super::client::{RegistryClient, RegistryError};
use super::reference::ImageRef;
use serde_json::Value;
use std::collections::BTreeMap;

/// The index entry annotation that marks an attestation manifest, and its value.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// The index entry annotation naming the platform manifest an attestation describes.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The layer annotation giving a statement's predicate type.
pub const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
pub const SPDX: &str = "https://spdx.dev/Document";

/// One attestation manifest of an index, as its entry and its manifest give it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attestation {
    /// The platform manifest it describes.
    pub subject: String,
    /// The attestation manifest itself.
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub statements: Vec<Statement>,
}

/// One in-toto statement (a layer of an attestation manifest).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Statement {
    pub predicate_type: String,
    pub digest: String,
    pub size: u64,
}

impl Attestation {
    pub fn statement(&self, predicate_type: &str) -> Option<&Statement> {
        self.statements
            .iter()
            .find(|s| s.predicate_type == predicate_type)
    }

    /// The provenance statement, of either SLSA version.
    pub fn provenance(&self) -> Option<&Statement> {
        self.statement(SLSA_PROVENANCE_V1)
            .or_else(|| self.statement(SLSA_PROVENANCE_V02))
    }

    pub fn sbom(&self) -> Option<&Statement> {
        self.statement(SPDX)
    }
}

/// What a provenance statement says of a build, for a person to read.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Provenance {
    /// `SLSA v0.2` or `SLSA v1`.
    pub format: String,
    pub builder_id: Option<String>,
    pub frontend: Option<String>,
    /// The repository and commit the context came from (`vcs:source`, `vcs:revision`).
    pub source: Option<String>,
    pub revision: Option<String>,
    /// The frontend's arguments (`build-arg:X`, `target`, …), which `mode=max` includes.
    pub parameters: BTreeMap<String, String>,
}

/// An index entry (as JSON) that is an attestation manifest, not a platform's image.
pub fn is_attestation_entry(entry: &Value) -> bool {
    entry["annotations"][REFERENCE_TYPE] == ATTESTATION_MANIFEST
        || (entry["platform"]["os"] == "unknown" && entry["platform"]["architecture"] == "unknown")
}

/// The attestation entries of an index's JSON: (entry, subject digest).
pub fn attestation_entries(index: &Value) -> Vec<(&Value, String)> {
    index["manifests"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|e| is_attestation_entry(e))
                .map(|e| {
                    let subject = e["annotations"][REFERENCE_DIGEST]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    (e, subject)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Read what a provenance statement says; None when it is not SLSA provenance.
pub fn parse_provenance(statement: &Value) -> Option<Provenance> {
    let p = &statement["predicate"];
    let s = |v: &Value| v.as_str().map(str::to_string);
    let (format, builder, request, vcs) = match statement["predicateType"].as_str()? {
        SLSA_PROVENANCE_V02 => (
            "SLSA v0.2",
            &p["builder"]["id"],
            &p["invocation"]["parameters"],
            &p["metadata"]["https://mobyproject.org/buildkit@v1#metadata"]["vcs"],
        ),
        SLSA_PROVENANCE_V1 => (
            "SLSA v1",
            &p["runDetails"]["builder"]["id"],
            &p["buildDefinition"]["externalParameters"]["request"],
            &p["runDetails"]["metadata"]["buildkit_metadata"]["vcs"],
        ),
        _ => return None,
    };
    let parameters = request["args"]
        .as_object()
        .map(|args| {
            args.iter()
                .filter(|(k, _)| !k.starts_with("vcs:") && !k.starts_with("attest:"))
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Some(Provenance {
        format: format.into(),
        builder_id: s(builder),
        frontend: s(&request["frontend"]),
        source: s(&vcs["source"]),
        revision: s(&vcs["revision"]),
        parameters,
    })
}

impl RegistryClient {
    /// The attestations in the index `r` names, each with its statements (one GET of the
    /// index and one per attestation manifest; no statement is read). Empty when `r` is one
    /// image manifest: BuildKit attests only into an index.
    pub async fn attestations(&self, r: &ImageRef) -> Result<Vec<Attestation>, RegistryError> {
        let m = self
            .get_manifest(r)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                reference: r.to_string(),
            })?;
        let index: Value = serde_json::from_slice(&m.bytes).map_err(|e| invalid(r, e))?;
        let mut out = vec![];
        for (entry, subject) in attestation_entries(&index) {
            let Some(digest) = entry["digest"].as_str() else {
                continue;
            };
            let at = r.with_digest(digest);
            let am = self
                .get_manifest(&at)
                .await?
                .ok_or_else(|| RegistryError::NotFound {
                    reference: at.to_string(),
                })?;
            let v: Value = serde_json::from_slice(&am.bytes).map_err(|e| invalid(&at, e))?;
            let statements = v["layers"]
                .as_array()
                .map(|ls| {
                    ls.iter()
                        .map(|l| Statement {
                            predicate_type: l["annotations"][PREDICATE_TYPE]
                                .as_str()
                                .unwrap_or("unknown")
                                .to_string(),
                            digest: l["digest"].as_str().unwrap_or_default().to_string(),
                            size: l["size"].as_u64().unwrap_or(0),
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Attestation {
                subject,
                digest: am.digest,
                media_type: am.media_type,
                size: am.bytes.len() as u64,
                statements,
            });
        }
        Ok(out)
    }

    /// The provenance `a` carries, read from its statement blob in `r`'s repository.
    pub async fn provenance(
        &self,
        r: &ImageRef,
        a: &Attestation,
    ) -> Result<Option<Provenance>, RegistryError> {
        let Some(st) = a.provenance() else {
            return Ok(None);
        };
        let at = r.with_digest(&a.digest);
        let blob = self.get_blob(&at, &st.digest).await?;
        let v: Value = serde_json::from_slice(&blob).map_err(|e| invalid(&at, e))?;
        Ok(parse_provenance(&v))
    }
}

fn invalid(r: &ImageRef, e: serde_json::Error) -> RegistryError {
    RegistryError::Invalid {
        reference: r.to_string(),
        reason: format!("not valid JSON: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attestation_entries_are_not_platforms() {
        let index = json!({"manifests": [
            {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": "sha256:b", "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {REFERENCE_TYPE: ATTESTATION_MANIFEST, REFERENCE_DIGEST: "sha256:a"}},
        ]});
        let found = attestation_entries(&index);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, "sha256:a");
        assert!(!is_attestation_entry(&index["manifests"][0]));
    }

    #[test]
    fn both_slsa_versions_are_read() {
        let v02 = json!({"predicateType": SLSA_PROVENANCE_V02, "predicate": {
            "builder": {"id": "https://ci/run/1"},
            "invocation": {"parameters": {"frontend": "dockerfile.v0",
                "args": {"build-arg:X": "2", "vcs:source": "s"}}},
            "metadata": {"https://mobyproject.org/buildkit@v1#metadata":
                {"vcs": {"source": "https://git/r", "revision": "abc"}}}}});
        let p = parse_provenance(&v02).unwrap();
        assert_eq!(p.format, "SLSA v0.2");
        assert_eq!(p.builder_id.as_deref(), Some("https://ci/run/1"));
        assert_eq!(p.frontend.as_deref(), Some("dockerfile.v0"));
        assert_eq!(p.revision.as_deref(), Some("abc"));
        assert_eq!(p.parameters.len(), 1);
        let v1 = json!({"predicateType": SLSA_PROVENANCE_V1, "predicate": {
            "buildDefinition": {"externalParameters": {"request": {
                "frontend": "dockerfile.v0", "args": {"build-arg:X": "2"}}}},
            "runDetails": {"builder": {"id": "https://ci/run/2"},
                "metadata": {"buildkit_metadata": {"vcs": {"source": "https://git/r", "revision": "def"}}}}}});
        let p = parse_provenance(&v1).unwrap();
        assert_eq!(p.format, "SLSA v1");
        assert_eq!(p.builder_id.as_deref(), Some("https://ci/run/2"));
        assert_eq!(p.source.as_deref(), Some("https://git/r"));
        assert_eq!(p.revision.as_deref(), Some("def"));
        assert_eq!(p.parameters["build-arg:X"], "2");
        assert_eq!(parse_provenance(&json!({"predicateType": SPDX})), None);
    }
}
