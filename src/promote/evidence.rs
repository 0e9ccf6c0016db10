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

/// What is attached to one image: its signature (when a key is given) and, for an index,
/// each platform's signature and attestation statements.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evidence {
    pub reference: String,
    pub digest: String,
    /// None: no key given, not checked.
    pub signature: Option<Verdict>,
    pub platforms: Vec<PlatformEvidence>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PlatformEvidence {
    pub platform: String,
    pub digest: String,
    pub signature: Option<Verdict>,
    pub attestations: Vec<crate::registry::attestation::Statement>,
}

/// Read what is attached to `r` (a few manifest GETs and the signature payloads).
pub async fn inspect(
    client: &RegistryClient,
    r: &ImageRef,
    key: Option<&Verifier>,
) -> anyhow::Result<Evidence> {
    let m = client
        .get_manifest(r)
        .await?
        .ok_or_else(|| crate::exit::Failed(format!("{r}: not found in its registry")))?;
    let verdict = |d: String| async move {
        match key {
            Some(k) => crate::signing::cosign::verify(client, r, &d, k)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let signature = verdict(m.digest.clone()).await?;
    let v: serde_json::Value = serde_json::from_slice(&m.bytes)?;
    let mut platforms = vec![];
    if let Some(entries) = v["manifests"].as_array() {
        let found = client.attestations(&r.with_digest(&m.digest)).await?;
        for e in entries
            .iter()
            .filter(|e| !crate::registry::attestation::is_attestation_entry(e))
        {
            let digest = e["digest"].as_str().unwrap_or_default().to_string();
            let mut platform = format!(
                "{}/{}",
                e["platform"]["os"].as_str().unwrap_or("?"),
                e["platform"]["architecture"].as_str().unwrap_or("?")
            );
            if let Some(var) = e["platform"]["variant"].as_str() {
                platform = format!("{platform}/{var}");
            }
            platforms.push(PlatformEvidence {
                signature: verdict(digest.clone()).await?,
                attestations: found
                    .iter()
                    .filter(|a| a.subject == digest)
                    .flat_map(|a| a.statements.clone())
                    .collect(),
                platform,
                digest,
            });
        }
    }
    Ok(Evidence {
        reference: r.to_string(),
        digest: m.digest,
        signature,
        platforms,
    })
}

impl Evidence {
    /// What `req` asks that this image lacks, one line each (empty: nothing).
    pub fn lacking(&self, attestations: &[Required], key_given: bool) -> Vec<String> {
        let mut out = vec![];
        let sig = |s: &Option<Verdict>, what: &str, out: &mut Vec<String>| match s {
            Some(Verdict::Unsigned) if key_given => out.push(format!("{what}: no signature")),
            Some(Verdict::Invalid(why)) => out.push(format!("{what}: a bad signature ({why})")),
            _ => {}
        };
        sig(&self.signature, &self.digest, &mut out);
        for p in &self.platforms {
            sig(&p.signature, &p.platform, &mut out);
            for w in attestations {
                let has = p.attestations.iter().any(|s| match w {
                    Required::Provenance => {
                        s.predicate_type == SLSA_PROVENANCE_V1
                            || s.predicate_type == SLSA_PROVENANCE_V02
                    }
                    Required::Sbom => s.predicate_type == SPDX,
                });
                if !has {
                    out.push(format!("{}: no {w}", p.platform));
                }
            }
        }
        if self.platforms.is_empty() && !attestations.is_empty() {
            out.push(
                "one image manifest: no attestations (BuildKit attests only into an index)".into(),
            );
        }
        out
    }
}
