//! All-or-nothing promotion of a stack: retag every source to its target, or leave every
//! target where it was.
//!
//! 1. every source is checked (all missing ones are reported, not just the first);
//! 2. what every target pointed to is recorded (exact bytes and media type, or absent);
//! 3. all retags run concurrently (targets that already exist first, new ones after them,
//!    as a new tag often cannot be deleted again), and each target's digest is verified;
//! 4. on any failure every target is put back: its old bytes re-PUT, or — when it did not
//!    exist — its tag deleted where the registry allows it.

use super::client::{Manifest, RegistryClient, RegistryError, RetagReport};
use super::reference::ImageRef;
use crate::error::Failed;
use futures::future::join_all;

/// One retag of a promotion.
#[derive(Clone, Debug)]
pub struct Step {
    pub source: ImageRef,
    pub target: ImageRef,
}

/// What a target pointed to before the promotion.
#[derive(Clone, Debug)]
pub struct Before {
    pub target: ImageRef,
    pub manifest: Option<Manifest>,
}

/// The outcome of a promotion that went through (or of a dry run).
#[derive(Debug)]
pub struct Promoted {
    /// Source digest per step, in order.
    pub source_digests: Vec<String>,
    /// What each target held before (digest or absent), in order.
    pub before: Vec<Option<String>>,
    /// Empty on a dry run; in the order they finished.
    pub retags: Vec<RetagReport>,
}

/// Promote. With `dry_run` the registry is only read. A missing source or a failed
/// retag is a [`Failed`] error (exit 1) whose message says what was restored.
pub async fn promote(
    client: &RegistryClient,
    steps: &[Step],
    dry_run: bool,
) -> anyhow::Result<Promoted> {
    // 1. Sources: fetch each manifest once (its bytes are what gets PUT).
    let sources = join_all(steps.iter().map(|s| client.get_manifest(&s.source))).await;
    let mut missing = Vec::new();
    let mut errors = Vec::new();
    let mut manifests = Vec::new();
    for (s, r) in steps.iter().zip(sources) {
        match r {
            Ok(Some(m)) => manifests.push(m),
            Ok(None) => missing.push(s.source.to_string()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "cannot read the sources; nothing was changed:\n  {}",
            errors.join("\n  ")
        );
    }
    if !missing.is_empty() {
        return Err(Failed(format!(
            "{} of {} source images are missing; nothing was changed:\n  {}",
            missing.len(),
            steps.len(),
            missing.join("\n  ")
        ))
        .into());
    }

    // 2. Targets as they are now.
    let targets = join_all(steps.iter().map(|s| client.get_manifest(&s.target))).await;
    let mut before = Vec::new();
    for (s, r) in steps.iter().zip(targets) {
        match r {
            Ok(m) => before.push(Before {
                target: s.target.clone(),
                manifest: m,
            }),
            Err(e) => anyhow::bail!("cannot read target {}; nothing was changed: {e}", s.target),
        }
    }
    let before_digests: Vec<Option<String>> = before
        .iter()
        .map(|b| b.manifest.as_ref().map(|m| m.digest.clone()))
        .collect();
    let source_digests: Vec<String> = manifests.iter().map(|m| m.digest.clone()).collect();
    if dry_run {
        return Ok(Promoted {
            source_digests,
            before: before_digests,
            retags: Vec::new(),
        });
    }

    // 3. Retag, then verify each target with a fresh HEAD. Targets that exist go first
    //    (all concurrently): they can always be put back. New targets, whose tags most
    //    registries cannot delete (GHCR and Distribution answer 405), are created only
    //    once all the others went through.
    let retag_one = |i: usize| {
        let s = &steps[i];
        let m = &manifests[i];
        async move {
            let rep = client.retag_manifest(&s.source, m, &s.target).await?;
            match client.head_manifest(&s.target).await? {
                Some(d) if d.digest == m.digest => Ok(rep),
                Some(d) => Err(RegistryError::Invalid {
                    reference: s.target.to_string(),
                    reason: format!("now points to {}, not {}", d.digest, m.digest),
                }),
                None => Err(RegistryError::NotFound {
                    reference: s.target.to_string(),
                }),
            }
        }
    };
    let (existing, new): (Vec<usize>, Vec<usize>) =
        (0..steps.len()).partition(|&i| before[i].manifest.is_some());
    let mut failures = Vec::new();
    let mut retags = Vec::new();
    for phase in [existing, new] {
        if !failures.is_empty() {
            break;
        }
        for r in join_all(phase.into_iter().map(retag_one)).await {
            match r {
                Ok(rep) => retags.push(rep),
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    if failures.is_empty() {
        return Ok(Promoted {
            source_digests,
            before: before_digests,
            retags,
        });
    }

    // 4. Put every target back.
    let restored = restore(client, &before).await;
    let all_ok = restored.iter().all(|(ok, _)| *ok);
    let lines: Vec<String> = restored.into_iter().map(|(_, l)| l).collect();
    let msg = format!(
        "promotion failed:\n  {}\n{}:\n  {}",
        failures.join("\n  "),
        if all_ok {
            "every target was put back where it was"
        } else {
            "NOT every target could be put back"
        },
        lines.join("\n  ")
    );
    Err(Failed(msg).into())
}

/// Put each target back as `before` says. Returns (fully restored?, what was done) per target.
pub async fn restore(client: &RegistryClient, before: &[Before]) -> Vec<(bool, String)> {
    join_all(before.iter().map(|b| async move {
        let t = &b.target;
        match &b.manifest {
            Some(m) => match client.put_manifest(t, m).await {
                Ok(d) if d == m.digest => (true, format!("{t}: restored to {}", m.digest)),
                Ok(d) => (
                    false,
                    format!("{t}: re-PUT of {} stored {d} instead", m.digest),
                ),
                Err(e) => (false, format!("{t}: could not restore {}: {e}", m.digest)),
            },
            None => match client.head_manifest(t).await {
                Ok(None) => (true, format!("{t}: absent before, still absent")),
                Ok(Some(now)) => match client.delete_tag(t).await {
                    Ok(Ok(())) => (true, format!("{t}: absent before, new tag deleted")),
                    Ok(Err(why)) => (
                        false,
                        format!(
                            "{t}: absent before; the registry refused to delete the tag ({why}), it now points to {}",
                            now.digest
                        ),
                    ),
                    Err(e) => (false, format!("{t}: absent before; deleting the new tag failed: {e}")),
                },
                Err(e) => (false, format!("{t}: absent before; cannot check it now: {e}")),
            },
        }
    }))
    .await
}
