//! Stack promotion (`stackctl tag`): which images go where, the registry promotion (through
//! [`crate::promote::transaction`]), and the files it leaves (artifacts and wiki pages).
//!
//! - quarter: every image of the spec, `<image>:ORIGINAL_TAG` → `<image>:<prefix>-stable`
//!   (prefix = the spec's `tag.prefix` when ORIGINAL_TAG starts with it and a `-`, else
//!   ORIGINAL_TAG up to its first `-`: an older quarter's tag); Home.md gains a row.
//! - global: the images of Home.md's `<prefix>-stable` row (or, without a wiki, the spec's
//!   images with that tag) → `:stable`; Stable_Tag.md is rewritten.
//!
//! Names for people (Home.md, Stable_Tag.md, page names and links, IMAGES_* lists, the lines
//! printed) are the spec's `image_name` as written (`ucsdets/datascience-notebook:...`, as the
//! old tool wrote them); only registry requests use the normalized reference
//! (`docker.io/ucsdets/...`).

use crate::promote::transaction::{self, TagMove, TransactionEnd, Verdict};
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
    /// The run's deadline (`--timeout`).
    pub timeout: std::time::Duration,
    /// Each registry request's timeout; also the settle time after a write that got no
    /// answer, and the time the final read-back may take.
    pub request_timeout: std::time::Duration,
    /// Cancelled on SIGINT or SIGTERM.
    pub cancel: tokio_util::sync::CancellationToken,
    /// The wait before a whole read-back is read again and reported (`--confirm-after`).
    pub confirm_after: std::time::Duration,
    /// What every source must carry (`--require-signature`, `--require-attestation`).
    pub require: crate::promote::evidence::Requirements,
}

/// Source and target full names, in spec (or Home.md) order.
#[derive(Clone, Debug)]
pub struct PromotionPlan {
    /// Names as written in the spec (or Home.md), with their tags; see the module's notes.
    pub pairs: Vec<(String, String)>,
}

/// The quarter prefix of a tag: the spec's prefix when the tag is `<spec prefix>-<rest>`
/// (a prefix may hold a dash: `2026.3-rc`), else what comes before its first `-` (the tag
/// of an older quarter, whose prefix the spec no longer names).
pub fn prefix_of<'a>(original_tag: &'a str, spec_prefix: &str) -> anyhow::Result<&'a str> {
    if let Some(rest) = original_tag
        .strip_prefix(spec_prefix)
        .and_then(|r| r.strip_prefix('-'))
    {
        if !spec_prefix.is_empty() && !rest.is_empty() {
            return Ok(&original_tag[..spec_prefix.len()]);
        }
    }
    match original_tag.split_once('-') {
        Some((p, rest)) if !p.is_empty() && !rest.is_empty() => Ok(p),
        _ => {
            anyhow::bail!("tag {original_tag:?} has no `<prefix>-<branch>` form (e.g. 2026.3-main)")
        }
    }
}

/// `full` (as written: `ucsdets/x:2026.3-stable`, `ucsdets/x`) with its tag replaced by
/// `tag`, still as written. The result is checked as a reference, not normalized.
fn with_tag(full: &str, tag: &str) -> anyhow::Result<String> {
    ImageRef::parse(full)?;
    let name = full.split_once('@').map_or(full, |(n, _)| n);
    let last = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last..].find(':') {
        Some(i) => &name[..last + i],
        None => name,
    };
    let out = format!("{name}:{tag}");
    ImageRef::parse(&out)?;
    Ok(out)
}

/// Work out the pairs to promote.
pub fn plan(spec: &Spec, kind: &Kind, wiki_dir: Option<&Path>) -> anyhow::Result<PromotionPlan> {
    let pairs = match kind {
        Kind::Quarter { original_tag } => {
            let stable = quarter_stable_tag(prefix_of(original_tag, &spec.tag_prefix)?);
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
    Ok(PromotionPlan { pairs })
}

/// What the wiki pages need, checked before the registry is touched.
struct WikiContext {
    dir: PathBuf,
    links: wiki::Links,
    /// The commit a quarter promotion's Home.md row names (empty for a global one).
    sha7: String,
}

/// A promotion checked and ready, before any registry request: its pairs, the tag moves
/// made of them, and what the wiki needs.
pub struct ReadyPromotion<'a> {
    spec: &'a Spec,
    opts: &'a Options,
    pub plan: PromotionPlan,
    moves: Vec<TagMove>,
    wiki: Option<WikiContext>,
}

/// What the registry part of a promotion did.
#[derive(Debug)]
pub enum Promotion {
    /// `--offline --dry-run`: no registry was asked; the pairs as planned.
    Offline(Vec<(String, String)>),
    /// The tag transaction's end, read back from the registry.
    Registry(TransactionEnd),
}

impl Promotion {
    /// Whether the promotion went through (or, for a dry run, was checked): only then are
    /// its files written.
    pub fn succeeded(&self) -> bool {
        match self {
            Promotion::Offline(_) => true,
            Promotion::Registry(end) => {
                matches!(end.verdict, Verdict::Promoted | Verdict::Checked)
            }
        }
    }

    /// One line per image for people, once the promotion succeeded.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Promotion::Offline(pairs) => pairs
                .iter()
                .map(|(s, t)| format!("{s} -> {t} (dry run, offline: not checked)"))
                .collect(),
            Promotion::Registry(end) => end
                .rows
                .iter()
                .map(|r| {
                    if end.verdict == Verdict::Checked {
                        format!(
                            "{} -> {} {} (dry run; target now {})",
                            r.source, r.target, r.intended, r.before
                        )
                    } else {
                        format!(
                            "{} -> {} {} (was {})",
                            r.source, r.target, r.intended, r.before
                        )
                    }
                })
                .collect(),
        }
    }
}

/// Check a promotion: its pairs, their references and what the wiki needs, before the
/// registry is touched.
pub fn prepare<'a>(spec: &'a Spec, opts: &'a Options) -> anyhow::Result<ReadyPromotion<'a>> {
    if opts.offline && !opts.dry_run {
        anyhow::bail!("--offline needs --dry-run");
    }
    let plan = plan(spec, &opts.kind, opts.wiki.as_deref())?;
    let wiki = match &opts.wiki {
        Some(dir) => Some(WikiContext {
            dir: dir.clone(),
            links: wiki::Links::from_env(opts.repo_url.as_deref())?,
            sha7: match opts.kind {
                Kind::Quarter { .. } => wiki::commit_sha7(&opts.repo)?,
                Kind::Global { .. } => String::new(),
            },
        }),
        None => None,
    };
    let mut moves = plan
        .pairs
        .iter()
        .map(|(s, t)| Ok(TagMove::named(s, t)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let parents = parents_of(spec, &moves);
    for (m, p) in moves.iter_mut().zip(parents) {
        m.parent = p;
    }
    Ok(ReadyPromotion {
        spec,
        opts,
        plan,
        moves,
        wiki,
    })
}

impl ReadyPromotion<'_> {
    /// The registry part: the tag transaction (none offline).
    pub async fn promote(&self, client: Option<&RegistryClient>) -> anyhow::Result<Promotion> {
        let opts = self.opts;
        match (client, opts.offline) {
            (_, true) => Ok(Promotion::Offline(self.plan.pairs.clone())),
            (Some(c), false) => {
                let topts = transaction::Options {
                    dry_run: opts.dry_run,
                    deadline: tokio::time::Instant::now() + opts.timeout,
                    settle: opts.request_timeout,
                    read_back_timeout: opts.request_timeout,
                    cancel: opts.cancel.clone(),
                    confirm_after: opts.confirm_after,
                    require: opts.require.clone(),
                };
                Ok(Promotion::Registry(
                    transaction::promote(c, &self.moves, &topts).await?,
                ))
            }
            (None, false) => anyhow::bail!("no registry client"),
        }
    }

    /// The files a promotion that succeeded leaves: `CONTENT_TAGS` (when the registry was
    /// asked), the `IMAGES_*` lists, and the wiki pages.
    pub async fn write_files(
        &self,
        client: Option<&RegistryClient>,
        promotion: &Promotion,
    ) -> anyhow::Result<()> {
        if let (Some(c), Promotion::Registry(end)) = (client, promotion) {
            self.write_content_tags(c, end).await?;
        }
        let sources: Vec<String> = self.plan.pairs.iter().map(|p| p.0.clone()).collect();
        let targets: Vec<String> = self.plan.pairs.iter().map(|p| p.1.clone()).collect();
        let (orig_name, tagged_name) = match self.opts.kind {
            Kind::Quarter { .. } => ("IMAGES_ORIGINAL", "IMAGES_TAGGED"),
            Kind::Global { .. } => ("IMAGES_ORIGINAL_STABLE", "IMAGES_GLOBAL_STABLE"),
        };
        wiki::write_list(&self.opts.artifacts, orig_name, &sources)?;
        wiki::write_list(&self.opts.artifacts, tagged_name, &targets)?;
        if let Some(w) = &self.wiki {
            self.write_wiki(w, &sources, &targets)?;
        }
        Ok(())
    }

    /// Which content tags (spec `tags:`) the promoted images have: an artifact. Not
    /// finding them is a warning, since the promotion is done.
    async fn write_content_tags(
        &self,
        client: &RegistryClient,
        end: &TransactionEnd,
    ) -> anyhow::Result<()> {
        let promoted: Vec<(String, String)> = end
            .rows
            .iter()
            .map(|r| (r.source.clone(), r.target.clone()))
            .collect();
        let digests: Vec<String> = end.rows.iter().map(|r| r.intended.clone()).collect();
        let images: Vec<(&str, &[crate::spec::TagTemplate])> = self
            .spec
            .images
            .values()
            .map(|i| (i.image_name.as_str(), i.tags.as_slice()))
            .collect();
        let found =
            crate::content_tags::promoted::of_promoted(client, &images, &promoted, &digests).await;
        match found {
            Ok(lines) => {
                crate::content_tags::promoted::write(&self.opts.artifacts, &lines)?;
            }
            Err(e) => tracing::warn!("content tags of the promoted images not listed: {e:#}"),
        }
        Ok(())
    }

    /// The stable pages (copied from their sources' pages), and Home.md's new row or
    /// Stable_Tag.md.
    fn write_wiki(
        &self,
        w: &WikiContext,
        sources: &[String],
        targets: &[String],
    ) -> anyhow::Result<()> {
        let dir = &w.dir;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (s, t) in &self.plan.pairs {
            if !wiki::copy_page(dir, s, t)? {
                tracing::warn!(
                    "{}: no page {}.md to copy for {t}; the link will point to a missing page",
                    dir.display(),
                    crate::report::names::page_name(s)
                );
            }
        }
        match self.opts.kind {
            Kind::Quarter { .. } => {
                let home = dir.join("Home.md");
                let old = match std::fs::read_to_string(&home) {
                    Ok(t) => Some(t),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => return Err(e).context(format!("cannot read {}", home.display())),
                };
                let row = wiki::home_row(&w.links, &w.sha7, targets);
                let mut text = wiki::insert_home_row(old.as_deref(), &row);
                if let Some(with_tree) =
                    wiki::with_tree(&text, &stack_tree(self.spec, &self.plan.pairs))
                {
                    text = with_tree;
                }
                std::fs::write(&home, text)
                    .with_context(|| format!("cannot write {}", home.display()))?;
            }
            Kind::Global { .. } => {
                let p = dir.join("Stable_Tag.md");
                std::fs::write(&p, wiki::stable_tag_page(&w.links, targets, sources))
                    .with_context(|| format!("cannot write {}", p.display()))?;
            }
        }
        Ok(())
    }
}

/// Each move's parent move: the move of the spec image its source's image depends on
/// (matched by repository), when that image is promoted too.
fn parents_of(spec: &Spec, moves: &[TagMove]) -> Vec<Option<usize>> {
    let key_of = |m: &TagMove| {
        spec.images
            .values()
            .find(|i| ImageRef::parse(&i.image_name).is_ok_and(|r| r.same_repository(&m.source)))
    };
    let keys: Vec<Option<&str>> = moves
        .iter()
        .map(|m| key_of(m).map(|i| i.key.as_str()))
        .collect();
    moves
        .iter()
        .map(|m| {
            let parent = key_of(m)?.depend_on.as_deref()?;
            keys.iter().position(|k| *k == Some(parent))
        })
        .collect()
}

/// The stack's tree for Home.md (see [`wiki::TREE_MARKER`]): each image with the tag it
/// was promoted to.
fn stack_tree(spec: &Spec, pairs: &[(String, String)]) -> String {
    use crate::report::mermaid::{flowchart, NodeState, TreeNode};
    let nodes: Vec<TreeNode> = spec
        .topological()
        .into_iter()
        .map(|i| {
            let target = pairs
                .iter()
                .find(|(s, _)| s.rsplit_once(':').map(|(n, _)| n) == Some(i.image_name.as_str()))
                .map(|(_, t)| t.clone());
            TreeNode {
                key: i.key.clone(),
                parent: i.depend_on.clone(),
                state: NodeState::Plain,
                notes: target.into_iter().collect(),
            }
        })
        .collect();
    flowchart(&nodes)
}

#[cfg(test)]
mod naming_tests {
    use super::{prefix_of, with_tag};

    #[test]
    fn prefix_with_a_dash_is_split_by_the_spec() {
        assert_eq!(
            prefix_of("2026.3-rc-main", "2026.3-rc").unwrap(),
            "2026.3-rc"
        );
        assert_eq!(prefix_of("2026.3-main", "2026.3").unwrap(), "2026.3");
        // An older quarter's tag: its prefix is up to the first dash.
        assert_eq!(prefix_of("2021.2-dev", "2026.3-rc").unwrap(), "2021.2");
        assert!(prefix_of("main", "2026.3").is_err());
    }

    #[test]
    fn names_stay_as_written() {
        assert_eq!(
            with_tag("ucsdets/datascience-notebook", "2026.3-main").unwrap(),
            "ucsdets/datascience-notebook:2026.3-main"
        );
        assert_eq!(
            with_tag("ucsdets/datascience-notebook:2026.3-stable", "stable").unwrap(),
            "ucsdets/datascience-notebook:stable"
        );
        assert_eq!(
            with_tag("127.0.0.1:5000/a/b:t", "stable").unwrap(),
            "127.0.0.1:5000/a/b:stable"
        );
        assert_eq!(with_tag("busybox", "x").unwrap(), "busybox:x");
        assert!(with_tag("Bad/Name", "x").is_err());
    }
}
