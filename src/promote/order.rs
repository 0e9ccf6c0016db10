//! Which of two promotions racing for the same targets is newer: the one whose newest
//! source image was created last (the `created` time of its config, as the build wrote
//! it), ties broken by the digest so that both runs come to the same answer. The registry
//! has no lock and no conditional PUT: ordering the runs is what lets them converge on one
//! whole set instead of a mix (see [`crate::promote::transaction`]).

use crate::registry::{ImageRef, Manifest, RegistryClient};
use chrono::{DateTime, Utc};
use std::fmt;

/// The age of one image: its config's `created` (None when it records none: older than
/// any that does), then its digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Age {
    pub created: Option<DateTime<Utc>>,
    pub digest: String,
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.created {
            Some(t) => write!(f, "{} (created {})", self.digest, t.to_rfc3339()),
            None => write!(f, "{} (no creation time)", self.digest),
        }
    }
}

/// The `created` time recorded for the image `m` read from `r`: its config's, or for an
/// index its first platform image's. None when there is none or it cannot be read.
pub async fn created(client: &RegistryClient, r: &ImageRef, m: &Manifest) -> Option<DateTime<Utc>> {
    let v: serde_json::Value = serde_json::from_slice(&m.bytes).ok()?;
    let image = match v["manifests"].as_array() {
        Some(list) => {
            let first = list
                .iter()
                .find(|e| e["platform"]["os"].as_str().is_some_and(|o| o != "unknown"))
                .and_then(|e| e["digest"].as_str())?;
            let pm = client.get_manifest(&r.with_digest(first)).await.ok()??;
            serde_json::from_slice(&pm.bytes).ok()?
        }
        None => v,
    };
    let config = image["config"]["digest"].as_str()?;
    let c: serde_json::Value =
        serde_json::from_slice(&client.get_blob(r, config).await.ok()?).ok()?;
    DateTime::parse_from_rfc3339(c["created"].as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The age of the image `digest` in `r`'s repository (read by digest).
pub async fn age_of(client: &RegistryClient, r: &ImageRef, digest: &str) -> Age {
    let at = r.with_digest(digest);
    let created = match client.get_manifest(&at).await {
        Ok(Some(m)) => created(client, &at, &m).await,
        _ => None,
    };
    Age {
        created,
        digest: digest.to_string(),
    }
}

/// The age of a set: its newest image's.
pub fn newest(ages: impl IntoIterator<Item = Age>) -> Option<Age> {
    ages.into_iter().max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(t: Option<&str>, d: &str) -> Age {
        Age {
            created: t.map(|t| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)),
            digest: d.into(),
        }
    }

    #[test]
    fn later_creation_wins_then_the_digest_breaks_ties() {
        let old = age(Some("2026-01-01T00:00:00Z"), "sha256:ff");
        let new = age(Some("2026-01-02T00:00:00Z"), "sha256:00");
        assert!(new > old);
        assert!(
            age(None, "sha256:ff") < old,
            "no time is older than any time"
        );
        assert!(age(Some("2026-01-01T00:00:00Z"), "sha256:fe") < old);
        assert_eq!(newest([old.clone(), new.clone()]), Some(new));
    }
}
