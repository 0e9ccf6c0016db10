//! Stack promotion (`stackctl tag`): which images go where, the registry promotion, and the
//! files it leaves (artifacts and wiki pages).
//!
//! - quarter: every image of the spec, `<image>:ORIGINAL_TAG` → `<image>:<prefix>-stable`
//!   (prefix = ORIGINAL_TAG up to its first `-`); Home.md gains a row.
//! - global: the images of Home.md's `<prefix>-stable` row (or, without a wiki, the spec's
//!   images with that tag) → `:stable`; Stable_Tag.md is rewritten.

use crate::registry::promote::{promote, Step};
use crate::registry::{ImageRef, RegistryClient};
use crate::spec::Spec;
use crate::tag::{quarter_stable_tag, GLOBAL_STABLE_TAG};
use crate::wiki;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// Which promotion.
#[derive(Clone, Debug)]
pub enum Kind {
    Quarter { original_tag: String },
    Global { prefix: String },
}

/// What `stackctl tag` was asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    pub kind: Kind,
    pub dry_run: bool,
    /// Contact no registry (only with `dry_run`).
    pub offline: bool,
    pub wiki: Option<PathBuf>,
    pub artifacts: PathBuf,
    /// The git repository (for the commit when GITHUB_SHA is unset).
    pub repo: PathBuf,
    pub repo_url: Option<String>,
}

/// Source and target full names, in spec (or Home.md) order.
#[derive(Clone, Debug)]
pub struct Plan {
    pub pairs: Vec<(String, String)>,
}

/// The quarter prefix of a tag: what comes before its first `-`.
pub fn prefix_of(original_tag: &str) -> anyhow::Result<&str> {
    match original_tag.split_once('-') {
        Some((p, rest)) if !p.is_empty() && !rest.is_empty() => Ok(p),
        _ => {
            anyhow::bail!("tag {original_tag:?} has no `<prefix>-<branch>` form (e.g. 2026.3-main)")
        }
    }
}

fn with_tag(full: &str, tag: &str) -> anyhow::Result<String> {
    let r = ImageRef::parse(full)?;
    Ok(r.with_tag(tag).to_string())
}

/// Work out the pairs to promote.
pub fn plan(spec: &Spec, kind: &Kind, wiki_dir: Option<&Path>) -> anyhow::Result<Plan> {
    let pairs = match kind {
        Kind::Quarter { original_tag } => {
            let stable = quarter_stable_tag(prefix_of(original_tag)?);
            if original_tag == &stable {
                anyhow::bail!("{original_tag} is already the stable tag; nothing to promote");
            }
            spec.images
                .values()
                .map(|i| {
                    Ok((
                        with_tag(&i.image_name, original_tag).with_context(|| {
                            format!("image {:?} in {}", i.key, spec.path.display())
                        })?,
                        with_tag(&i.image_name, &stable)?,
                    ))
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        }
        Kind::Global { prefix } => {
            let stable = quarter_stable_tag(prefix);
            let sources: Vec<String> = match wiki_dir {
                Some(dir) => {
                    let home = dir.join("Home.md");
                    let text = std::fs::read_to_string(&home)
                        .with_context(|| format!("cannot read {}", home.display()))?;
                    wiki::stable_row_images(&text, prefix).with_context(|| {
                        format!("{} has no row of `{stable}` images", home.display())
                    })?
                }
                None => spec
                    .images
                    .values()
                    .map(|i| with_tag(&i.image_name, &stable))
                    .collect::<anyhow::Result<_>>()?,
            };
            sources
                .into_iter()
                .map(|s| {
                    let t = with_tag(&s, GLOBAL_STABLE_TAG)?;
                    Ok((s, t))
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        }
    };
    Ok(Plan { pairs })
}

/// Run a promotion: registry (unless offline), then artifacts and wiki. Prints one line per
/// image on stdout.
pub async fn run(
    client: Option<&RegistryClient>,
    spec: &Spec,
    opts: &Options,
) -> anyhow::Result<()> {
    if opts.offline && !opts.dry_run {
        anyhow::bail!("--offline needs --dry-run");
    }
    let plan = plan(spec, &opts.kind, opts.wiki.as_deref())?;
    // Everything the wiki needs is checked before the registry is touched.
    let wiki_ctx = match &opts.wiki {
        Some(dir) => Some((
            dir.clone(),
            wiki::Links::from_env(opts.repo_url.as_deref())?,
            match opts.kind {
                Kind::Quarter { .. } => wiki::commit_sha7(&opts.repo)?,
                Kind::Global { .. } => String::new(),
            },
        )),
        None => None,
    };
    let steps = plan
        .pairs
        .iter()
        .map(|(s, t)| {
            Ok(Step {
                source: ImageRef::parse(s)?,
                target: ImageRef::parse(t)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    match (client, opts.offline) {
        (_, true) => {
            for (s, t) in &plan.pairs {
                outln!("{s} -> {t} (dry run, offline: not checked)");
            }
        }
        (Some(c), false) => {
            let done = promote(c, &steps, opts.dry_run).await?;
            for (i, (s, t)) in plan.pairs.iter().enumerate() {
                let before = done.before[i].as_deref().unwrap_or("absent");
                if opts.dry_run {
                    outln!(
                        "{s} -> {t} {} (dry run; target now {before})",
                        done.source_digests[i]
                    );
                } else {
                    outln!("{s} -> {t} {} (was {before})", done.source_digests[i]);
                }
            }
            // Which content tags (spec `tags:`) the promoted images have: an artifact.
            let found = crate::content_tags::promoted::of_promoted(
                c,
                spec,
                &plan.pairs,
                &done.source_digests,
            )
            .await;
            match found {
                Ok(lines) => {
                    crate::content_tags::promoted::write(&opts.artifacts, &lines)?;
                }
                Err(e) => tracing::warn!("content tags of the promoted images not listed: {e:#}"),
            }
        }
        (None, false) => anyhow::bail!("no registry client"),
    }

    let sources: Vec<String> = plan.pairs.iter().map(|p| p.0.clone()).collect();
    let targets: Vec<String> = plan.pairs.iter().map(|p| p.1.clone()).collect();
    let (orig_name, tagged_name) = match opts.kind {
        Kind::Quarter { .. } => ("IMAGES_ORIGINAL", "IMAGES_TAGGED"),
        Kind::Global { .. } => ("IMAGES_ORIGINAL_STABLE", "IMAGES_GLOBAL_STABLE"),
    };
    wiki::write_list(&opts.artifacts, orig_name, &sources)?;
    wiki::write_list(&opts.artifacts, tagged_name, &targets)?;

    if let Some((dir, links, sha7)) = wiki_ctx {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for (s, t) in &plan.pairs {
            if !wiki::copy_page(&dir, s, t)? {
                tracing::warn!(
                    "{}: no page {}.md to copy for {t}; the link will point to a missing page",
                    dir.display(),
                    crate::naming::page_name(s)
                );
            }
        }
        match opts.kind {
            Kind::Quarter { .. } => {
                let home = dir.join("Home.md");
                let old = match std::fs::read_to_string(&home) {
                    Ok(t) => Some(t),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(e).context(format!("cannot read {}", home.display())),
                };
                let row = wiki::home_row(&links, &sha7, &targets);
                std::fs::write(&home, wiki::insert_home_row(old.as_deref(), &row))
                    .with_context(|| format!("cannot write {}", home.display()))?;
            }
            Kind::Global { .. } => {
                let p = dir.join("Stable_Tag.md");
                std::fs::write(&p, wiki::stable_tag_page(&links, &targets, &sources))
                    .with_context(|| format!("cannot write {}", p.display()))?;
            }
        }
    }
    Ok(())
}
