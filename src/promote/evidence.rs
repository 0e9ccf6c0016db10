//! What a promotion requires of each source image before any tag moves: a signature by a
//! given key (cosign's `.sig` form), and attestations (provenance, SBOM) for each of its
//! platforms. Only manifests and small blobs are read.

use crate::registry::attestation::{SLSA_PROVENANCE_V02, SLSA_PROVENANCE_V1, SPDX};
use crate::registry::{ImageRef, Manifest, RegistryClient};
use crate::signing::{Verdict, Verifier};

/// An attestation a promotion can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Required {
    Provenance,
    Sbom,
}

impl std::str::FromStr for Required {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "provenance" => Ok(Required::Provenance),
            "sbom" => Ok(Required::Sbom),
            _ => Err(format!("{s:?}: expected provenance or sbom")),
        }
    }
}

impl std::fmt::Display for Required {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Required::Provenance => "provenance",
            Required::Sbom => "sbom",
        })
    }
}

/// What is asked of every source.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    pub signature: Option<Verifier>,
    pub attestations: Vec<Required>,
}

impl Requirements {
    pub fn is_empty(&self) -> bool {
        self.signature.is_none() && self.attestations.is_empty()
    }
}

/// Each source's shortfalls, one line per image and what it lacks (empty: all there).
pub async fn check(
    client: &RegistryClient,
    sources: &[(String, ImageRef)],
    manifests: &[Manifest],
    req: &Requirements,
) -> anyhow::Result<Vec<String>> {
    let mut lacking = vec![];
    for ((name, r), m) in sources.iter().zip(manifests) {
        let mut missing = vec![];
        if let Some(key) = &req.signature {
            match crate::signing::cosign::verify(client, r, &m.digest, key).await? {
                Verdict::Signed => {}
                Verdict::Unsigned => missing.push(format!("no signature of {}", m.digest)),
                Verdict::Invalid(why) => missing.push(format!("a bad signature: {why}")),
            }
        }
        if !req.attestations.is_empty() {
            missing.extend(attestation_gaps(client, r, m, &req.attestations).await?);
        }
        if !missing.is_empty() {
            lacking.push(format!("{name}: {}", missing.join("; ")));
        }
    }
    Ok(lacking)
}

/// For each platform of the index `m`, the required attestations it has not.
async fn attestation_gaps(
    client: &RegistryClient,
    r: &ImageRef,
    m: &Manifest,
    wanted: &[Required],
) -> anyhow::Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(&m.bytes)?;
    let Some(entries) = v["manifests"].as_array() else {
        return Ok(vec![format!(
            "no attestations (one image manifest: BuildKit attests only into an index)"
        )]);
    };
    let at = r.with_digest(&m.digest);
    let found = client.attestations(&at).await?;
    let mut gaps = vec![];
    for e in entries
        .iter()
        .filter(|e| !crate::registry::attestation::is_attestation_entry(e))
    {
        let digest = e["digest"].as_str().unwrap_or_default();
        let platform = format!(
            "{}/{}",
            e["platform"]["os"].as_str().unwrap_or("?"),
            e["platform"]["architecture"].as_str().unwrap_or("?")
        );
        let a = found.iter().find(|a| a.subject == digest);
        for w in wanted {
            let has = a.is_some_and(|a| match w {
                Required::Provenance => a
                    .statement(SLSA_PROVENANCE_V1)
                    .or(a.statement(SLSA_PROVENANCE_V02))
                    .is_some(),
                Required::Sbom => a.statement(SPDX).is_some(),
            });
            if !has {
                gaps.push(format!("no {w} for {platform}"));
            }
        }
    }
    Ok(gaps)
}
