//! The rebuild plan: which images of the stack rebuild, and why, decided from git.
//!
//! The rules are those of docs/plan.md, "The rules":
//! - the changed files are `base..head` for a push and `merge-base(base, head)..head`
//!   for a pull request (base defaults to the first parent of head);
//! - a changed `images/<x>/...` rebuilds image `<x>`, unless `<x>` is in the change
//!   rules' `ignore` list; `<x>` in `build_all` rebuilds every image; files outside
//!   `images/` rebuild nothing (except the spec's own files, see [`classify`]);
//! - every image rebuilds on branch `main`, with "full rebuild" in the head commit's
//!   message (any case), with `--full-rebuild`, on a root commit, and on the first push
//!   of a branch (GitHub's all-zero `before`);
//! - a rebuilt image rebuilds all its descendants;
//! - an image whose tag is missing from the registry rebuilds (see [`Plan::mark_missing`]);
//! - an image whose recorded external base now names another digest rebuilds (see
//!   [`Plan::check_bases`]);
//! - a scheduled run (`schedule` event) counts no file as changed and applies neither the
//!   branch nor the commit rules: only the two above rebuild.
//!
//! [`make_plan`] does the git work and the decisions; [`resolve_options`] turns command
//! line choices plus GitHub Actions variables ([`GithubEnv`], from [`crate::plan::github_event`])
//! into [`PlanOptions`].

pub mod git;
pub mod github_event;

use crate::plan::github_event::{payload_base, PayloadBase, PayloadError};
use crate::plan::github_event::{GithubEnv, GithubEvent};
use crate::registry::ImageRef;
use crate::spec::Spec;
use crate::tag::{build_tag, TagError, MAIN_BRANCH};
use git::{ChangedFile, GitError};
use git2::{Oid, Repository};
use indexmap::IndexMap;
use serde::Serialize;
use std::fmt;
use std::path::Path;
use thiserror::Error;

/// How many changed files a `changed:` reason names before "and N more".
const SHOWN_FILES: usize = 3;

/// Reason texts, shared with callers that test for them.
pub mod reason {
    pub const FULL_REBUILD_FLAG: &str = "--full-rebuild";
    pub const COMMIT_MESSAGE: &str = "full rebuild requested in commit message";
    pub const BRANCH_MAIN: &str = "branch main";
    pub const ROOT_COMMIT: &str = "root commit";
    pub const SHALLOW: &str =
        "shallow clone: the parent commit is not fetched, nothing to compare with";
    pub const NEW_BRANCH: &str = "first push of the branch (no previous commit to compare with)";
    pub const TAG_MISSING: &str = "tag missing from registry";
    /// `base <name> moved: sha256:<12 hex>… → sha256:<12 hex>…`.
    pub fn base_moved(name: &str, recorded: &str, current: &str) -> String {
        let short = |d: &str| {
            let (algo, hex) = d.split_once(':').unwrap_or(("", d));
            let cut = hex.get(..12).unwrap_or(hex);
            format!("{algo}:{cut}\u{2026}")
        };
        format!(
            "base {name} moved: {} \u{2192} {}",
            short(recorded),
            short(current)
        )
    }
    /// `parent rebuilds (<parent key>)`.
    pub fn parent_rebuilds(parent: &str) -> String {
        format!("parent rebuilds ({parent})")
    }
    /// `change to <entry> rebuilds all`.
    pub fn build_all(entry: &str) -> String {
        format!("change to {entry} rebuilds all")
    }
    /// `changed: a, b, c and N more`.
    pub fn changed(files: &[&str]) -> String {
        let shown = files.len().min(super::SHOWN_FILES);
        let mut s = format!("changed: {}", files[..shown].join(", "));
        if files.len() > shown {
            s.push_str(&format!(" and {} more", files.len() - shown));
        }
        s
    }
}

/// Where the comparison starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// The first parent of head (the previous commit of a push; the target branch
    /// for the merge commit GitHub checks out for a pull request).
    FirstParent,
    /// A revision; `origin` names where it came from, for messages (`--base`, ...).
    Rev { rev: String, origin: String },
    /// A branch's first push (GitHub sends an all-zero `before`): nothing to compare
    /// with, every image rebuilds.
    NewBranch,
}

/// Everything [`make_plan`] needs besides the spec and the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// The commit being built (a revision; `HEAD` by default).
    pub head: String,
    pub base: Base,
    /// The branch whose tag the images get; `None`: the checked-out branch.
    pub branch: Option<String>,
    pub event: GithubEvent,
    /// Rebuild every image.
    pub full_rebuild: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            head: "HEAD".into(),
            base: Base::FirstParent,
            branch: None,
            event: GithubEvent::Push,
            full_rebuild: false,
        }
    }
}

/// The choices made on the command line; `None` means "use the default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanRequest {
    pub head: Option<String>,
    pub base: Option<String>,
    pub branch: Option<String>,
    pub event: Option<GithubEvent>,
    pub full_rebuild: bool,
}

/// Why a plan could not be made. Each message is one line.
#[derive(Debug, Error)]
pub enum PlanError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Tag(#[from] TagError),
    /// An image name and tag that do not make a reference (the spec checks names, so rare).
    #[error(transparent)]
    Reference(#[from] crate::registry::reference::RefError),
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

/// Explicit choices win; then GitHub Actions variables; then the local defaults
/// (push, base = first parent of head, branch = the checked-out branch).
///
/// - event: `--event`, else GITHUB_EVENT_NAME (`pull_request_target` is a pull request).
/// - branch: `--branch`, else GITHUB_HEAD_REF for a pull request, else GITHUB_REF_NAME.
/// - base: `--base`, else from the payload at GITHUB_EVENT_PATH: `before` for a push
///   (all zeros: the branch's first push, everything rebuilds), `pull_request.base.sha`
///   for a pull request.
pub fn resolve_options(req: &PlanRequest, env: &GithubEnv) -> Result<PlanOptions, PlanError> {
    let nonempty = |s: &Option<String>| s.clone().filter(|v| !v.is_empty());
    let event = req.event.or(env.event()).unwrap_or(GithubEvent::Push);
    let branch = nonempty(&req.branch).or_else(|| branch_from_env(event, env));
    let base = match nonempty(&req.base) {
        Some(rev) if git::is_zero_rev(&rev) => Base::NewBranch,
        Some(rev) => Base::Rev {
            rev,
            origin: "--base".into(),
        },
        None => match &env.event_path {
            Some(p) if env.event().is_some() => base_from_payload(p, event)?,
            _ => Base::FirstParent,
        },
    };
    Ok(PlanOptions {
        head: nonempty(&req.head).unwrap_or_else(|| "HEAD".into()),
        base,
        branch,
        event,
        full_rebuild: req.full_rebuild,
    })
}

/// The branch GitHub Actions names: GITHUB_HEAD_REF for a pull request (else
/// GITHUB_REF_NAME), GITHUB_REF_NAME for a push.
pub fn branch_from_env(event: GithubEvent, env: &GithubEnv) -> Option<String> {
    let nonempty = |s: &Option<String>| s.clone().filter(|v| !v.is_empty());
    match event {
        GithubEvent::PullRequest => nonempty(&env.head_ref).or_else(|| nonempty(&env.ref_name)),
        GithubEvent::Push | GithubEvent::Schedule => nonempty(&env.ref_name),
    }
}

/// The base a plan takes from the event payload (see [`payload_base`]).
fn base_from_payload(path: &Path, event: GithubEvent) -> Result<Base, PlanError> {
    Ok(match payload_base(path, event)? {
        Some(PayloadBase { sha, .. }) if git::is_zero_rev(&sha) => Base::NewBranch,
        Some(PayloadBase { sha, origin }) => Base::Rev {
            rev: sha,
            origin: origin.to_string(),
        },
        None => Base::FirstParent,
    })
}

/// Whether the registry was asked which tags exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryCheck {
    /// Not asked (`--no-registry`, or no registry module): missing tags are not found.
    Skipped,
    /// Asked; images with a missing tag were marked with [`Plan::mark_missing`].
    Done,
}

/// Whether the bases recorded in the images were looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BaseCheck {
    /// Not asked (`--no-base-check`, or no registry module).
    Skipped,
    /// Asked; images whose base moved were marked with [`Plan::mark_moved`].
    Done,
}

/// A base whose tag names another digest than the one an image recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovedBase {
    pub name: String,
    /// The digest the image was built from.
    pub recorded: String,
    /// The digest the tag names now.
    pub current: String,
}

/// One image of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedImage {
    /// The image's key in the spec (its folder under `images/`).
    pub key: String,
    /// The repository, without a tag.
    pub image: String,
    /// The full reference built or kept: `<image>:<tag>`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// `reference` parsed and normalized: what registry requests and pushes use.
    #[serde(skip)]
    pub image_ref: ImageRef,
    /// The parent image's key.
    pub parent: Option<String>,
    pub rebuild: bool,
    /// Why it rebuilds (empty when kept).
    pub reasons: Vec<String>,
    /// The build arguments: the spec's, plus `BASE_TAG=<parent's tag>` for a child
    /// unless the spec sets it.
    pub build_args: IndexMap<String, String>,
    /// How deep in the tree (roots: 0).
    #[serde(skip)]
    pub depth: usize,
    /// Its external bases whose tags moved since it was built.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved_bases: Vec<MovedBase>,
}

/// The plan: each image of the stack, parents before children, with whether and
/// why it rebuilds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub tag_prefix: String,
    pub branch: String,
    pub tag: String,
    pub event: GithubEvent,
    /// The commit compared with (for a pull request: the target branch's commit);
    /// `None` when there is none (root commit, first push of a branch).
    pub base: Option<String>,
    /// The commit built.
    pub head: String,
    /// Whether every image rebuilds because of the branch, commit, flag or a `build_all` entry.
    pub full_rebuild: bool,
    /// Every path changed between the compared commits (both paths of a rename).
    pub changed_files: Vec<String>,
    pub registry_check: RegistryCheck,
    pub base_check: BaseCheck,
    /// What did not stop the plan but needs a look (a base registry that cannot be reached).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Parents first, spec order among siblings.
    pub images: Vec<PlannedImage>,
    /// The commit the changed files were counted from (the merge-base for a pull request).
    #[serde(skip)]
    pub diff_from: Option<String>,
    /// The reasons every image rebuilds (empty unless `full_rebuild`).
    #[serde(skip)]
    pub full_rebuild_reasons: Vec<String>,
    /// The repository's web URL, recorded in the images (see [`git::source_url`]).
    #[serde(skip)]
    pub source: Option<String>,
}

/// What a changed path means for the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Outside the images folder: no image rebuilds.
    Outside,
    /// An entry in the `ignore` rules.
    Ignored,
    /// An entry in the `build_all` rules (named as shown in the reason, e.g. `images/tests_common`).
    BuildAll(String),
    /// A file of this image.
    Image(String),
    /// Under the images folder but neither an image nor a rule entry (e.g. a removed image).
    Unowned,
}

/// Paths, relative to the repository root, that the rules speak about.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The images folder (`images`).
    pub images: String,
    /// The spec file and the change rules file, when they live outside the images folder.
    pub own_files: Vec<String>,
}

impl Layout {
    /// Where the spec's images folder and files are inside the repository's work tree.
    pub fn of(spec: &Spec, repo: &Repository) -> Layout {
        let workdir = repo.workdir().and_then(|w| w.canonicalize().ok());
        let rel = |p: &Path| -> Option<String> {
            let w = workdir.as_ref()?;
            let p = p.canonicalize().ok()?;
            let r = p.strip_prefix(w).ok()?;
            Some(
                r.components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            )
        };
        let images = rel(&spec.images_dir).unwrap_or_else(|| "images".into());
        let mut own_files = vec![];
        for p in std::iter::once(&spec.path).chain(spec.changes.source.as_ref()) {
            if let Some(r) = rel(p) {
                if !r.starts_with(&format!("{images}/")) {
                    own_files.push(r);
                }
            }
        }
        Layout { images, own_files }
    }
}

/// What a changed `path` does, under the spec's change rules.
///
/// The rules name entries directly under the images folder. The spec file and
/// `change_ignore.json` are matched by their file name even when the spec lives at
/// the repository root, so that a rule such as `BuildAll: [spec.yml]` keeps its
/// meaning in that layout; every other file outside the images folder rebuilds nothing.
pub fn classify(spec: &Spec, layout: &Layout, path: &str) -> Effect {
    let prefix = format!("{}/", layout.images);
    let (entry, shown, under_images) = if let Some(rest) = path.strip_prefix(&prefix) {
        let entry = rest.split('/').next().unwrap_or_default();
        (entry, format!("{prefix}{entry}"), true)
    } else if layout.own_files.iter().any(|f| f == path) {
        (
            path.rsplit('/').next().unwrap_or(path),
            path.to_string(),
            false,
        )
    } else {
        return Effect::Outside;
    };
    let rules = &spec.changes;
    if rules.build_all.iter().any(|e| e == entry) {
        Effect::BuildAll(shown)
    } else if rules.ignore.iter().any(|e| e == entry) {
        Effect::Ignored
    } else if !under_images {
        Effect::Outside
    } else if spec.images.contains_key(entry) {
        Effect::Image(entry.to_string())
    } else {
        Effect::Unowned
    }
}

/// Decide which images rebuild for `opts.head` on `opts.branch`.
pub fn make_plan(spec: &Spec, repo: &Repository, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let head = git::resolve_commit(repo, &opts.head, "--head")?;
    let branch = match &opts.branch {
        Some(b) => b.clone(),
        None => git::current_branch(repo)?,
    };
    let tag = build_tag(
        &spec.tag_prefix,
        spec.tag_suffix,
        &branch,
        &head.to_string(),
    )?;
    let message = git::message(repo, head)?;
    let parent = git::first_parent(repo, head)?;

    // The commits to compare.
    let base: Option<Oid> = match &opts.base {
        Base::FirstParent => parent,
        Base::NewBranch => None,
        Base::Rev { rev, origin } => Some(git::resolve_commit(repo, rev, origin)?),
    };
    let scheduled = opts.event == GithubEvent::Schedule;
    let diff_from: Option<Oid> = match (&opts.base, opts.event, base) {
        // Nothing changed since the commit was built: only missing tags and moved bases.
        (_, GithubEvent::Schedule, _) => Some(head),
        (Base::NewBranch, _, _) => parent,
        (_, GithubEvent::PullRequest, Some(b)) => Some(git::merge_base(repo, b, head)?),
        (_, _, b) => b,
    };
    let changes: Vec<ChangedFile> = git::changed_files(repo, diff_from, head)?;
    let mut changed_files: Vec<String> = changes
        .iter()
        .flat_map(|c| c.paths().map(str::to_string))
        .collect();
    changed_files.sort();
    changed_files.dedup();

    // Reasons that rebuild everything.
    let mut all = vec![];
    if opts.full_rebuild {
        all.push(reason::FULL_REBUILD_FLAG.to_string());
    }
    if !scheduled && message.to_lowercase().contains("full rebuild") {
        all.push(reason::COMMIT_MESSAGE.to_string());
    }
    if !scheduled && branch == MAIN_BRANCH {
        all.push(reason::BRANCH_MAIN.to_string());
    }
    // A root commit (or a shallow cut) has nothing to compare with, unless a base was given.
    if parent.is_none() && diff_from.is_none() {
        if git::is_shallow_cut(repo, head)? {
            all.push(reason::SHALLOW.to_string());
        } else {
            all.push(reason::ROOT_COMMIT.to_string());
        }
    }
    if !scheduled && opts.base == Base::NewBranch {
        all.push(reason::NEW_BRANCH.to_string());
    }

    // Per-image changed files, and build_all entries touched.
    // Without a commit to compare with, every file counts as changed: the reasons
    // above say why everything rebuilds, per-file reasons would only be noise.
    let layout = Layout::of(spec, repo);
    let mut touched: IndexMap<&str, Vec<&str>> = IndexMap::new();
    let compared = if diff_from.is_some() {
        &changed_files[..]
    } else {
        &[]
    };
    for path in compared {
        match classify(spec, &layout, path) {
            Effect::BuildAll(entry) => {
                let r = reason::build_all(&entry);
                if !all.contains(&r) {
                    all.push(r);
                }
            }
            Effect::Image(key) => {
                let key = spec.images.get_key_value(&key).map(|(k, _)| k.as_str());
                if let Some(k) = key {
                    touched.entry(k).or_default().push(path);
                }
            }
            Effect::Outside | Effect::Ignored | Effect::Unowned => {}
        }
    }

    let mut images: Vec<PlannedImage> = vec![];
    // Depth from the parent's, which comes first in topological order.
    let mut depths: std::collections::HashMap<&str, usize> = Default::default();
    for img in spec.topological() {
        let depth = img
            .depend_on
            .as_deref()
            .and_then(|p| depths.get(p))
            .map_or(0, |d| d + 1);
        depths.insert(img.key.as_str(), depth);
        let (build_args, _) = img.build_args_for(&tag, None);
        let mut reasons = all.clone();
        if let Some(files) = touched.get(img.key.as_str()) {
            reasons.push(reason::changed(files));
        }
        let reference = format!("{}:{tag}", img.image_name);
        images.push(PlannedImage {
            key: img.key.clone(),
            image: img.image_name.clone(),
            image_ref: ImageRef::parse(&reference)?,
            reference,
            parent: img.depend_on.clone(),
            rebuild: !reasons.is_empty(),
            reasons,
            build_args,
            depth,
            moved_bases: vec![],
        });
    }

    let mut plan = Plan {
        tag_prefix: spec.tag_prefix.clone(),
        branch,
        tag,
        event: opts.event,
        base: base.map(|b| b.to_string()),
        head: head.to_string(),
        full_rebuild: !all.is_empty(),
        changed_files,
        registry_check: RegistryCheck::Skipped,
        base_check: BaseCheck::Skipped,
        warnings: vec![],
        images,
        diff_from: diff_from.map(|d| d.to_string()),
        full_rebuild_reasons: all,
        source: git::source_url(repo),
    };
    plan.propagate();
    Ok(plan)
}

impl Plan {
    /// The image with this key.
    pub fn image(&self, key: &str) -> Option<&PlannedImage> {
        self.images.iter().find(|i| i.key == key)
    }

    /// Keys of the images that rebuild, in plan order.
    pub fn rebuilt_keys(&self) -> Vec<&str> {
        self.images
            .iter()
            .filter(|i| i.rebuild)
            .map(|i| i.key.as_str())
            .collect()
    }

    /// Ask the registry whether each image's tag exists (one HEAD each, all concurrent)
    /// and mark the missing ones, with their descendants, as rebuilt. A check that
    /// fails (auth, network) is an error naming the reference: a plan must not guess.
    /// Returns what the registry said of each image, in plan order.
    pub async fn check_registry(
        &mut self,
        client: &crate::registry::RegistryClient,
        within: std::time::Duration,
    ) -> anyhow::Result<Vec<crate::registry::ExistsResult>> {
        let refs: Vec<ImageRef> = self.images.iter().map(|i| i.image_ref.clone()).collect();
        let results = crate::registry::exists_within(client, &refs, within)
            .await
            .map_err(|e| anyhow::anyhow!("registry check: {e}"))?;
        let mut missing = vec![];
        for (img, r) in self.images.iter().zip(&results) {
            if let Some(e) = &r.error {
                anyhow::bail!("registry check of {} failed: {e}", r.reference);
            }
            if !r.exists {
                tracing::info!("{} is not in the registry", r.reference);
                missing.push(img.key.clone());
            }
        }
        self.mark_missing(&missing);
        Ok(results)
    }

    /// Mark the images whose tag the registry lacks (by key) as rebuilt with reason
    /// `tag missing from registry`, and their descendants with `parent rebuilds`. Keys
    /// that are not in the plan are ignored. Sets `registry_check` to `done`.
    pub fn mark_missing(&mut self, keys_missing: &[String]) {
        let keys_missing: std::collections::HashSet<&str> =
            keys_missing.iter().map(String::as_str).collect();
        for img in &mut self.images {
            if keys_missing.contains(img.key.as_str())
                && !img.reasons.iter().any(|r| r == reason::TAG_MISSING)
            {
                img.reasons.push(reason::TAG_MISSING.to_string());
                img.rebuild = true;
            }
        }
        self.registry_check = RegistryCheck::Done;
        self.propagate();
    }

    /// Look up the bases recorded in each image that does not rebuild yet (read from its
    /// tag's manifest, or config), with one HEAD per base (each once, all concurrently, all
    /// within `within`), and mark the images whose base moved, with their descendants. A
    /// registry that cannot be asked is a warning in [`Plan::warnings`], not an error.
    pub async fn check_bases(
        &mut self,
        client: &crate::registry::RegistryClient,
        within: std::time::Duration,
    ) {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + within;
        let late = |what: &str| {
            format!(
                "base check: {what} did not answer within {}",
                humantime::format_duration(within)
            )
        };
        let kept: Vec<(String, ImageRef)> = self
            .images
            .iter()
            .filter(|i| !i.rebuild)
            .map(|i| (i.key.clone(), i.image_ref.clone()))
            .collect();
        let read: Vec<_> = futures::stream::iter(&kept)
            .map(|(_, r)| tokio::time::timeout_at(deadline, crate::bases::recorded(client, r)))
            .buffered(16)
            .collect()
            .await;
        let mut warnings = vec![];
        let mut recorded: Vec<(String, Vec<crate::bases::Base>)> = vec![];
        for ((key, r), got) in kept.iter().zip(read) {
            match got {
                Ok(Ok(Some(b))) => recorded.push((key.clone(), b)),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => warnings.push(format!("base check of {r}: {e:#}")),
                Err(_) => warnings.push(late(&format!("registry {}", r.registry))),
            }
        }
        let mut names: Vec<String> = recorded
            .iter()
            .flat_map(|(_, b)| b.iter().map(|b| b.name.clone()))
            .filter(|n| !crate::bases::is_pinned(n))
            .collect();
        names.sort();
        names.dedup();
        let answers: Vec<_> = futures::stream::iter(&names)
            .map(|n| async move {
                let one = crate::bases::resolve(client, std::slice::from_ref(n));
                match tokio::time::timeout_at(deadline, one).await {
                    Ok(mut v) => v.pop().unwrap_or(Ok(None)),
                    Err(_) => Err(late(&format!(
                        "the registry of {n} ({})",
                        ImageRef::parse(n).map(|r| r.registry).unwrap_or_default()
                    ))),
                }
            })
            .buffered(16)
            .collect()
            .await;
        let mut current = std::collections::HashMap::new();
        for (n, a) in names.iter().zip(answers) {
            match a {
                Ok(Some(d)) => {
                    current.insert(n.as_str(), d);
                }
                Ok(None) => warnings.push(format!(
                    "base {n} is no longer in its registry: images built from it are kept"
                )),
                Err(e) => warnings.push(format!("base {n} not checked: {e}")),
            }
        }
        let mut moved = vec![];
        for (key, bases) in &recorded {
            for b in bases {
                match current.get(b.name.as_str()) {
                    Some(d) if *d != b.digest => moved.push((
                        key.clone(),
                        MovedBase {
                            name: b.name.clone(),
                            recorded: b.digest.clone(),
                            current: d.clone(),
                        },
                    )),
                    _ => {}
                }
            }
        }
        self.warnings.extend(warnings);
        self.mark_moved(moved);
    }

    /// Mark the images (by key) whose base moved as rebuilt, with reason `base <name>
    /// moved: …`, and their descendants. Sets `base_check` to `done`.
    pub fn mark_moved(&mut self, moved: Vec<(String, MovedBase)>) {
        for (key, m) in moved {
            if let Some(img) = self.images.iter_mut().find(|i| i.key == key) {
                img.reasons
                    .push(reason::base_moved(&m.name, &m.recorded, &m.current));
                img.rebuild = true;
                img.moved_bases.push(m);
            }
        }
        self.base_check = BaseCheck::Done;
        self.propagate();
    }

    /// Give every child of a rebuilt image the reason `parent rebuilds (<parent>)`.
    /// One pass suffices: images are in topological order.
    fn propagate(&mut self) {
        let mut rebuilds: std::collections::HashMap<String, bool> = Default::default();
        for img in &mut self.images {
            if let Some(parent) = &img.parent {
                let r = reason::parent_rebuilds(parent);
                if rebuilds.get(parent).copied().unwrap_or(false) && !img.reasons.contains(&r) {
                    img.reasons.push(r);
                    img.rebuild = true;
                }
            }
            rebuilds.insert(img.key.clone(), img.rebuild);
        }
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The human form: a header, then the image tree (indented by depth), each image with
/// its reference, REBUILD or keep, and its reasons.
/// The deepest level the text plan indents.
const DRAWN_DEPTH: usize = 16;

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "branch {} -> tag {}", self.branch, self.tag)?;
        let from = match (&self.base, &self.diff_from) {
            (Some(b), Some(d)) if b != d => {
                format!("{} (merge-base of base {})", short(d), short(b))
            }
            (_, Some(d)) => short(d).to_string(),
            (_, None) => "nothing (every file counts)".to_string(),
        };
        writeln!(
            f,
            "{}: changes from {} to {}: {} file(s)",
            self.event,
            from,
            short(&self.head),
            self.changed_files.len()
        )?;
        match self.registry_check {
            RegistryCheck::Skipped => writeln!(
                f,
                "registry check: skipped (images whose tag is missing are not detected)"
            )?,
            RegistryCheck::Done => writeln!(f, "registry check: done")?,
        }
        match self.base_check {
            BaseCheck::Skipped => {
                writeln!(f, "base check: skipped (moved bases are not detected)")?
            }
            BaseCheck::Done => writeln!(f, "base check: done")?,
        }
        if self.full_rebuild {
            writeln!(f, "full rebuild: {}", self.full_rebuild_reasons.join("; "))?;
        }
        writeln!(f)?;
        // Indented by depth up to DRAWN_DEPTH; a deeper image is drawn there with its depth
        // in brackets, so that the text stays linear in the images (a chain of 8,000 drawn
        // fully indented was 176 MB).
        let drawn = |i: &PlannedImage| {
            let indent = "  ".repeat(i.depth.min(DRAWN_DEPTH));
            if i.depth > DRAWN_DEPTH {
                format!("{indent}[{}] {}", i.depth, i.key)
            } else {
                format!("{indent}{}", i.key)
            }
        };
        let width = self
            .images
            .iter()
            .map(|i| drawn(i).len())
            .max()
            .unwrap_or(0);
        for img in &self.images {
            let indent = "  ".repeat(img.depth.min(DRAWN_DEPTH));
            let name = drawn(img);
            let verdict = if img.rebuild { "REBUILD" } else { "keep" };
            writeln!(f, "{name:width$}  {verdict:7}  {}", img.reference)?;
            for r in &img.reasons {
                writeln!(f, "{indent}    - {r}")?;
            }
        }
        let n = self.images.iter().filter(|i| i.rebuild).count();
        write!(f, "\n{n} of {} image(s) rebuild", self.images.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_base_rebuilds_its_image_and_children() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        assert_eq!(
            reason::base_moved("ubuntu:24.04", &d('a'), &d('c')),
            "base ubuntu:24.04 moved: sha256:aaaaaaaaaaaa\u{2026} \u{2192} sha256:cccccccccccc\u{2026}"
        );
        let img = |key: &str, parent: Option<&str>| PlannedImage {
            key: key.into(),
            image: format!("r.io/{key}"),
            reference: format!("r.io/{key}:t"),
            image_ref: ImageRef::parse(&format!("r.io/{key}:t")).unwrap(),
            parent: parent.map(str::to_string),
            rebuild: false,
            reasons: vec![],
            build_args: Default::default(),
            depth: 0,
            moved_bases: vec![],
        };
        let mut plan = Plan {
            tag_prefix: "p".into(),
            branch: "b".into(),
            tag: "t".into(),
            event: GithubEvent::Push,
            base: None,
            head: "h".into(),
            full_rebuild: false,
            changed_files: vec![],
            registry_check: RegistryCheck::Skipped,
            base_check: BaseCheck::Skipped,
            warnings: vec![],
            images: vec![img("a", None), img("b", Some("a")), img("c", None)],
            diff_from: None,
            full_rebuild_reasons: vec![],
            source: None,
        };
        let moved = MovedBase {
            name: "ubuntu:24.04".into(),
            recorded: d('a'),
            current: d('c'),
        };
        plan.mark_moved(vec![("a".into(), moved)]);
        assert_eq!(plan.rebuilt_keys(), ["a", "b"]);
        assert_eq!(plan.base_check, BaseCheck::Done);
        assert_eq!(plan.images[1].reasons, [reason::parent_rebuilds("a")]);
    }

    #[test]
    fn changed_reason_is_capped() {
        assert_eq!(reason::changed(&["a"]), "changed: a");
        assert_eq!(
            reason::changed(&["a", "b", "c", "d", "e"]),
            "changed: a, b, c and 2 more"
        );
    }

    fn env(event: &str, payload: Option<&str>) -> (GithubEnv, Option<tempfile::NamedTempFile>) {
        let file = payload.map(|p| {
            let f = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(f.path(), p).unwrap();
            f
        });
        (
            GithubEnv {
                event_name: Some(event.into()),
                head_ref: Some("feature/x".into()),
                ref_name: Some("42/merge".into()),
                event_path: file.as_ref().map(|f| f.path().to_path_buf()),
            },
            file,
        )
    }

    #[test]
    fn push_env() {
        let (e, _f) = env("push", Some(r#"{"before":"abc1234"}"#));
        let o = resolve_options(&PlanRequest::default(), &e).unwrap();
        assert_eq!(o.event, GithubEvent::Push);
        assert_eq!(o.branch.as_deref(), Some("42/merge"));
        assert_eq!(
            o.base,
            Base::Rev {
                rev: "abc1234".into(),
                origin: "`before` in GITHUB_EVENT_PATH".into()
            }
        );
        let (e, _f) = env(
            "push",
            Some(&format!(r#"{{"before":"{}"}}"#, "0".repeat(40))),
        );
        assert_eq!(
            resolve_options(&PlanRequest::default(), &e).unwrap().base,
            Base::NewBranch
        );
    }

    #[test]
    fn pull_request_env_and_flags_win() {
        let (e, _f) = env(
            "pull_request_target",
            Some(r#"{"pull_request":{"base":{"sha":"def"}}}"#),
        );
        let o = resolve_options(&PlanRequest::default(), &e).unwrap();
        assert_eq!(o.event, GithubEvent::PullRequest);
        assert_eq!(o.branch.as_deref(), Some("feature/x"));
        assert!(matches!(o.base, Base::Rev { ref rev, .. } if rev == "def"));

        let req = PlanRequest {
            head: Some("h".into()),
            base: Some("b".into()),
            branch: Some("mine".into()),
            event: Some(GithubEvent::Push),
            full_rebuild: true,
        };
        let o = resolve_options(&req, &e).unwrap();
        assert_eq!(o.event, GithubEvent::Push);
        assert_eq!(o.branch.as_deref(), Some("mine"));
        assert_eq!(o.head, "h");
        assert!(
            matches!(o.base, Base::Rev { ref rev, ref origin } if rev == "b" && origin == "--base")
        );
        assert!(o.full_rebuild);
    }

    #[test]
    fn no_env_means_local_defaults() {
        let o = resolve_options(&PlanRequest::default(), &GithubEnv::default()).unwrap();
        assert_eq!(o, PlanOptions::default());
    }

    #[test]
    fn bad_payload_names_the_file() {
        let (e, f) = env("push", Some("{not json"));
        let err = resolve_options(&PlanRequest::default(), &e).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&f.unwrap().path().display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("GITHUB_EVENT_PATH"), "{msg}");
    }
}
