//! What `stackctl build-image` builds, from its command line's words: the image's tag (as
//! `plan` makes it) and the [`Overrides`] of its request.

use super::request::Overrides;
use crate::buildkit::{cache, CacheExport};
use crate::spec::platform::Platform;
use crate::spec::{ImageSpec, Spec};
use crate::tag::TagSuffix;
use anyhow::{bail, Context as _};
use std::path::Path;

/// The options of `build-image` that change the request, as given.
#[derive(Debug, Clone, Default)]
pub struct OverrideArgs {
    /// `--build-arg K=V`, or a bare `NAME` whose value comes from the environment.
    pub build_args: Vec<String>,
    /// `--cache-from`: buildx syntax or a bare reference.
    pub cache_from: Vec<String>,
    /// `--cache-to`, in buildx syntax.
    pub cache_to: Option<String>,
    pub target: Option<String>,
    pub platforms: Vec<Platform>,
    pub no_cache: bool,
}

/// The image `key` of the spec; an unknown key is named with the spec's keys.
pub fn image<'a>(spec: &'a Spec, key: &str) -> anyhow::Result<&'a ImageSpec> {
    match spec.image(key) {
        Some(i) => Ok(i),
        None => bail!(
            "no image {:?} in {} (images: {})",
            key,
            spec.path.display(),
            spec.images.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The branch a build is for, as `plan` finds it: GITHUB_HEAD_REF (pull request),
/// GITHUB_REF_NAME, else the repository's checked-out branch.
pub fn current_branch(repo: &Path) -> anyhow::Result<String> {
    let opts = crate::plan::resolve_options(
        &crate::plan::PlanRequest::default(),
        &crate::plan::github_event::GithubEnv::from_process(),
    )?;
    match opts.branch {
        Some(b) => Ok(b),
        None => Ok(
            crate::plan::git::current_branch(&crate::plan::git::open(repo)?)
                .context("no branch to make the tag from; give --tag")?,
        ),
    }
}

/// The tag the image gets: `given` (checked), else the one `plan` gives a build of the
/// repository at `repo`: `<prefix>-<branch>`, or with `tag.suffix: commit` the checked-out
/// commit's `<prefix>-<short commit>`.
/// The commit at HEAD of `repo`, for the provenance; None outside a repository.
pub fn head_commit(repo: &Path) -> Option<String> {
    let git = crate::plan::git::open(repo).ok()?;
    crate::plan::git::resolve_commit(&git, "HEAD", "HEAD")
        .ok()
        .map(|o| o.to_string())
}

pub fn image_tag(spec: &Spec, repo: &Path, given: Option<&str>) -> anyhow::Result<String> {
    if let Some(t) = given {
        if !crate::tag::is_valid_tag(t) {
            bail!("--tag {t:?} is not a valid tag");
        }
        return Ok(t.to_string());
    }
    Ok(match spec.tag_suffix {
        TagSuffix::Branch => crate::tag::branch_tag(&spec.tag_prefix, &current_branch(repo)?)?,
        TagSuffix::Commit => {
            let git = crate::plan::git::open(repo)?;
            let head = crate::plan::git::resolve_commit(&git, "HEAD", "HEAD")
                .context("no commit to make the tag from; give --tag")?;
            crate::tag::commit_tag(&spec.tag_prefix, &head.to_string())?
        }
    })
}

/// `K=V`, or `NAME` with its value from the environment, as docker takes `--build-arg`.
fn parse_build_arg(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => match std::env::var(s) {
            Ok(v) if !s.is_empty() => Ok((s.to_string(), v)),
            _ => bail!("--build-arg {s:?}: expected K=V"),
        },
    }
}

/// The overrides the options ask for; a bad one is named by its option.
pub fn overrides(a: &OverrideArgs) -> anyhow::Result<Overrides> {
    let mut o = Overrides {
        target: a.target.clone(),
        platforms: a.platforms.clone(),
        no_cache: a.no_cache,
        ..Default::default()
    };
    for s in &a.build_args {
        o.build_args.push(parse_build_arg(s)?);
    }
    for c in &a.cache_from {
        o.cache_from
            .push(cache::parse_import(c).with_context(|| format!("--cache-from {c}"))?);
    }
    if let Some(c) = &a.cache_to {
        o.cache_to = Some(
            c.parse::<CacheExport>()
                .with_context(|| format!("--cache-to {c}"))?,
        );
    }
    Ok(o)
}
