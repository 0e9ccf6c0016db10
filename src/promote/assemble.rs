//! `stackctl merge`: split builds (`stackctl build --platform …` on several runners, each
//! pushing its platform's images by digest, untagged) put together. The runs' artifacts
//! are read and checked against each other and the spec ([`plan`]); then each image's
//! index is made from the recorded digests and PUT by digest ([`make_indexes`],
//! [`publish`]: no image is pulled), and only then tagged, each tag read back.

use crate::content_tags::publish::{ContentTagState, Rendered};
use crate::registry::index::{IndexEntry, MadeIndex};
use crate::registry::{ImageRef, RegistryClient};
use crate::report::image::PlatformReport;
use crate::report::{ArtifactDirs, ImageReport};
use crate::spec::platform::Platform;
use crate::spec::{ImageSpec, Spec};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One run's artifacts: the folder given, and each image's report with its file.
#[derive(Debug, Clone)]
pub struct RunArtifacts {
    /// The folder as given on the command line (a run's output folder or its `artifacts/`).
    pub dir: PathBuf,
    pub reports: Vec<(PathBuf, ImageReport)>,
}

/// Read `dir/artifacts/*.yaml`, or `dir/*.yaml` when `dir` is the `artifacts/` folder itself.
pub fn read_run(dir: &Path) -> anyhow::Result<RunArtifacts> {
    if !dir.is_dir() {
        anyhow::bail!("{}: no such folder", dir.display());
    }
    let inner = dir.join("artifacts");
    let folder = if inner.is_dir() {
        inner
    } else {
        dir.to_path_buf()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .with_context(|| format!("cannot read {}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        anyhow::bail!(
            "{}: no image artifacts (artifacts/<image>.yaml) in it: not the output of `stackctl build`",
            dir.display()
        );
    }
    let mut reports = Vec::with_capacity(files.len());
    for f in files {
        let r = ImageReport::read(&f)?;
        reports.push((f, r));
    }
    Ok(RunArtifacts {
        dir: dir.to_path_buf(),
        reports,
    })
}

/// What every artifact must say, computed as `build` computes it: the commit checked out at
/// `--repo` (`--head`) and the tag a build of that commit on the branch gives. The
/// artifacts' own `image:` and `commit:` are only compared with it, never used: a tampered
/// artifact must not choose what is tagged.
pub struct Expected {
    /// The commit (full hex).
    pub commit: String,
    pub branch: String,
    /// The tag every image gets (`tag::build_tag`).
    pub tag: String,
    /// Where the commit came from, for messages: `HEAD in /path`.
    pub origin: String,
    repo: git2::Repository,
}

impl Expected {
    /// The commit `head` names in the repository at `repo_dir`, and the tag a build of it
    /// on `branch` gets (`None`: the checked-out branch).
    pub fn new(
        spec: &Spec,
        repo_dir: &Path,
        head: &str,
        branch: Option<&str>,
    ) -> anyhow::Result<Expected> {
        let repo = crate::plan::git::open(repo_dir)?;
        let commit = crate::plan::git::resolve_commit(&repo, head, "--head")?;
        let branch = match branch {
            Some(b) => b.to_string(),
            None => crate::plan::git::current_branch(&repo)?,
        };
        let tag = crate::tag::build_tag(
            &spec.tag_prefix,
            spec.tag_suffix,
            &branch,
            &commit.to_string(),
        )?;
        Ok(Expected {
            commit: commit.to_string(),
            branch,
            tag,
            origin: format!("{head} in {}", repo_dir.display()),
            repo,
        })
    }

    /// Whether `commit` (full hex) is a commit of the repository.
    fn knows(&self, commit: &str) -> bool {
        commit.len() == 40
            && git2::Oid::from_str(commit)
                .ok()
                .and_then(|o| self.repo.find_commit(o).ok())
                .is_some()
    }
}

/// One image to merge: its platforms' digests in the spec's order, and the report to write.
#[derive(Debug, Clone)]
pub struct ImageMerge {
    pub key: String,
    /// The parent's key (`depend_on`).
    pub parent: Option<String>,
    /// The spec's `image_name` (the repository, as written).
    pub repository: String,
    /// The content tags the runs computed (`tags:`), pushed once the index is tested.
    pub content_tags: Vec<Rendered>,
    /// The full image name with its tag: the spec's `image_name` and [`Expected::tag`].
    pub image: String,
    pub platforms: Vec<(Platform, String)>,
    /// What each run pushed (its index, with the attestations of its platforms), whose
    /// attestation entries the merged index carries over.
    pub sources: Vec<String>,
    /// The merged report (written once the index is tagged).
    pub report: ImageReport,
}

/// What the runs' artifacts say is to be merged.
#[derive(Debug, Clone)]
pub struct MergePlan {
    /// The commit every run built.
    pub commit: String,
    /// Parents before children (the spec's order).
    pub images: Vec<ImageMerge>,
}

/// The folders, for messages: `a, b`.
fn dir_list(dirs: &[&Path]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Check the runs against each other and the spec, and say what is merged. Every problem
/// found is listed in one error (a refusal: nothing is written anywhere):
/// - a report without `commit`, or runs of different commits, or a commit that is not
///   [`Expected::commit`] (not in the repository, or not the one checked out);
/// - an `image:` that is not the spec's `image_name` with [`Expected::tag`];
/// - an image that failed in a run (or one of its platforms did);
/// - an image awaiting merge that the spec does not have, or that declares no platforms;
/// - a declared platform in none of the runs, a platform the spec does not declare, one
///   platform with two digests, a platform without a digest.
pub fn plan(spec: &Spec, runs: &[RunArtifacts], expected: &Expected) -> anyhow::Result<MergePlan> {
    let mut problems: Vec<String> = vec![];
    let all_dirs: Vec<&Path> = runs.iter().map(|r| r.dir.as_path()).collect();
    commits_of(runs, &mut problems);
    check_commits(runs, expected, &mut problems);
    let awaiting = awaiting_of(spec, runs, &mut problems);
    let mut images = vec![];
    for image_spec in spec.topological() {
        if let Some(found) = awaiting.get(image_spec.key.as_str()) {
            images.extend(image_merge(
                spec,
                image_spec,
                found,
                &all_dirs,
                expected,
                &mut problems,
            ));
        }
    }
    if !problems.is_empty() {
        anyhow::bail!(
            "refusing to merge ({} problem{}):\n  {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.join("\n  ")
        );
    }
    Ok(MergePlan {
        commit: expected.commit.clone(),
        images,
    })
}

/// Every report's `commit:` must be the commit checked out, which the tag is computed from.
fn check_commits(runs: &[RunArtifacts], expected: &Expected, problems: &mut Vec<String>) {
    for run in runs {
        for (file, r) in &run.reports {
            let Some(c) = r.commit.as_deref() else {
                continue;
            };
            if c == expected.commit {
                continue;
            }
            if expected.knows(c) {
                problems.push(format!(
                    "{}: commit: {c} is not {}, the commit at {} (the one the tag {} is computed from)",
                    file.display(),
                    expected.commit,
                    expected.origin,
                    expected.tag
                ));
            } else {
                problems.push(format!(
                    "{}: commit: {c} is not a commit of the repository ({})",
                    file.display(),
                    expected.origin
                ));
            }
        }
    }
}

/// One run's report of an image awaiting a merge: the run's folder, the report's file,
/// the report.
type Found<'a> = (&'a Path, &'a Path, &'a ImageReport);

/// Each commit the runs built, with the folders that built it; a report without one, or
/// more than one commit, is a problem.
fn commits_of<'a>(
    runs: &'a [RunArtifacts],
    problems: &mut Vec<String>,
) -> BTreeMap<&'a str, Vec<&'a Path>> {
    let mut commits: BTreeMap<&str, Vec<&Path>> = BTreeMap::new();
    for run in runs {
        for (file, r) in &run.reports {
            match r.commit.as_deref() {
                Some(c) => {
                    let dirs = commits.entry(c).or_default();
                    if !dirs.contains(&run.dir.as_path()) {
                        dirs.push(&run.dir);
                    }
                }
                None => problems.push(format!(
                    "{}: {} records no commit (not written by a split build of this stackctl)",
                    file.display(),
                    r.image
                )),
            }
        }
    }
    if commits.len() > 1 {
        let each: Vec<String> = commits
            .iter()
            .map(|(c, d)| format!("{c} ({})", dir_list(d)))
            .collect();
        problems.push(format!(
            "the runs built different commits: {}",
            each.join(" and ")
        ));
    }
    commits
}

/// The images awaiting a merge, by key, with each run's report of them. An image that
/// failed in a run, or one the spec does not have, is a problem.
fn awaiting_of<'a>(
    spec: &Spec,
    runs: &'a [RunArtifacts],
    problems: &mut Vec<String>,
) -> BTreeMap<&'a str, Vec<Found<'a>>> {
    let mut awaiting: BTreeMap<&str, Vec<Found<'a>>> = BTreeMap::new();
    for run in runs {
        for (file, r) in &run.reports {
            if !r.success {
                let failed: Vec<&str> = r
                    .platforms
                    .iter()
                    .filter(|p| !p.success)
                    .map(|p| p.platform.as_str())
                    .collect();
                let which = if failed.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", failed.join(", "))
                };
                problems.push(format!(
                    "{}: failed{which} in {} ({})",
                    r.image,
                    run.dir.display(),
                    r.message
                ));
            } else if r.awaiting_merge {
                awaiting
                    .entry(r.key.as_str())
                    .or_default()
                    .push((&run.dir, file, r));
            }
        }
    }
    for key in awaiting.keys() {
        if spec.image(key).is_none() {
            problems.push(format!(
                "image {key:?} awaits a merge but is not in {}",
                spec.path.display()
            ));
        }
    }
    awaiting
}

/// One image's merge from the runs' reports of it (`found`, at least one), or None when
/// it cannot be merged at all; what is wrong goes to `problems`.
fn image_merge(
    spec: &Spec,
    image_spec: &ImageSpec,
    found: &[Found<'_>],
    all_dirs: &[&Path],
    expected: &Expected,
    problems: &mut Vec<String>,
) -> Option<ImageMerge> {
    let key = &image_spec.key;
    let first = found[0].2;
    let image = format!("{}:{}", image_spec.image_name, expected.tag);
    let want = ImageRef::parse(&image).ok();
    for (_, file, r) in found {
        if want.is_none() || ImageRef::parse(&r.image).ok() != want {
            problems.push(format!(
                "{}: image: {} is not {image} (images.{key}.image_name in {} with the tag of commit {} on branch {})",
                file.display(),
                r.image,
                spec.path.display(),
                &expected.commit[..expected.commit.len().min(12)],
                expected.branch
            ));
        }
    }
    want.as_ref()?;
    if image_spec.platforms.is_empty() {
        problems.push(format!(
            "{image}: awaits a merge, but images.{key} in {} declares no `platforms:` to merge",
            spec.path.display()
        ));
        return None;
    }
    let got = platform_digests(&image, found, problems);
    for p in got.keys() {
        if !image_spec.platforms.iter().any(|d| d == p) {
            problems.push(format!(
                "{image}: platform {p} was built, but images.{key} in {} does not declare it (declared: {})",
                spec.path.display(),
                crate::spec::platform::list(&image_spec.platforms, ", ")
            ));
        }
    }
    let mut platforms = vec![];
    let mut reports = vec![];
    for declared in &image_spec.platforms {
        match got.get(declared.to_string().as_str()) {
            None => problems.push(format!(
                "{image}: platform {declared}, which {} declares, is in none of the runs read ({})",
                spec.path.display(),
                dir_list(all_dirs)
            )),
            Some((digest, _, p)) => {
                platforms.push((declared.clone(), digest.to_string()));
                reports.push((*p).clone());
            }
        }
    }
    let content_tags = agreed_content_tags(&image, found, problems);
    let mut sources: Vec<String> = vec![];
    for d in found.iter().filter_map(|(_, _, r)| r.digest.clone()) {
        if !sources.contains(&d) {
            sources.push(d);
        }
    }
    let mut report = first.clone();
    report.image = image.clone();
    report.platforms = reports;
    Some(ImageMerge {
        key: key.clone(),
        parent: image_spec.depend_on.clone(),
        repository: image_spec.image_name.clone(),
        content_tags: content_tags
            .into_iter()
            .map(|(tag, moving)| Rendered { tag, moving })
            .collect(),
        image,
        platforms,
        sources,
        report,
    })
}

/// Each platform's digest in the runs, and the run it came from. A platform without a
/// digest, one that failed, or one with two digests is a problem.
fn platform_digests<'a>(
    image: &str,
    found: &[Found<'a>],
    problems: &mut Vec<String>,
) -> BTreeMap<&'a str, (&'a str, &'a Path, &'a PlatformReport)> {
    let mut got: BTreeMap<&str, (&str, &Path, &PlatformReport)> = BTreeMap::new();
    for &(dir, _, r) in found {
        if r.platforms.is_empty() {
            problems.push(format!(
                "{image}: awaits a merge in {} but lists no platforms",
                dir.display()
            ));
        }
        for p in &r.platforms {
            let Some(digest) = p.digest.as_deref() else {
                problems.push(format!(
                    "{image}: platform {} has no digest in {}",
                    p.platform,
                    dir.display()
                ));
                continue;
            };
            if !p.success {
                problems.push(format!(
                    "{image}: platform {} failed in {}",
                    p.platform,
                    dir.display()
                ));
            }
            match got.get(p.platform.as_str()) {
                Some((d, other, _)) if *d != digest => problems.push(format!(
                    "{image}: platform {} is {d} in {} but {digest} in {}",
                    p.platform,
                    other.display(),
                    dir.display()
                )),
                Some(_) => {}
                None => {
                    got.insert(&p.platform, (digest, dir, p));
                }
            }
        }
    }
    got
}

/// The content tags the runs computed, as `(tag, moving)`: computed in each run's own
/// platform image, they must agree (one tag names the one index).
fn agreed_content_tags(
    image: &str,
    found: &[Found<'_>],
    problems: &mut Vec<String>,
) -> Vec<(String, bool)> {
    let tags_of = |r: &ImageReport| -> Vec<(String, bool)> {
        let mut t: Vec<(String, bool)> = r
            .content_tags
            .iter()
            .filter(|c| c.state == ContentTagState::NotPushed)
            .map(|c| (c.tag.clone(), c.moving))
            .collect();
        t.sort();
        t
    };
    let content_tags = tags_of(found[0].2);
    for (dir, _, r) in &found[1..] {
        let other = tags_of(r);
        if other != content_tags {
            let list = |t: &[(String, bool)]| {
                t.iter()
                    .map(|(t, _)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            problems.push(format!(
                "{image}: the runs computed different content tags: [{}] in {}, [{}] in {}",
                list(&content_tags),
                found[0].0.display(),
                list(&other),
                dir.display()
            ));
        }
    }
    content_tags
}

/// An image's index, made and (unless a dry run) tagged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Merged {
    pub key: String,
    #[serde(skip)]
    parent: Option<String>,
    #[serde(skip)]
    repository: String,
    #[serde(skip)]
    content_tags: Vec<Rendered>,
    /// The full image name with its tag.
    pub image: String,
    /// The index's digest (what the tag names).
    pub digest: String,
    pub media_type: String,
    pub platforms: Vec<IndexEntry>,
    /// Whether the tag names the index (false in a dry run).
    pub tagged: bool,
    #[serde(skip)]
    pub report: ImageReport,
    #[serde(skip)]
    index: MadeIndex,
}

/// `<repository>` of the image's full name (its tag dropped).
fn repository_of(image: &str) -> anyhow::Result<ImageRef> {
    let r = ImageRef::parse(image)?;
    if r.tag.is_none() {
        anyhow::bail!("{image}: the artifact's image has no tag");
    }
    Ok(r)
}

/// Make every image's index from the platforms' manifests (registry reads only).
pub async fn make_indexes(
    client: &RegistryClient,
    plan: &MergePlan,
) -> anyhow::Result<Vec<Merged>> {
    let mut out = Vec::with_capacity(plan.images.len());
    for m in &plan.images {
        let r = repository_of(&m.image)?;
        let index = client
            .make_index_with(&r, &m.platforms, &m.sources)
            .await
            .with_context(|| format!("{}: cannot make its index", m.image))?;
        out.push(Merged {
            key: m.key.clone(),
            parent: m.parent.clone(),
            repository: m.repository.clone(),
            content_tags: m.content_tags.clone(),
            image: m.image.clone(),
            digest: index.manifest.digest.clone(),
            media_type: index.manifest.media_type.clone(),
            platforms: index.entries.clone(),
            tagged: false,
            report: m.report.clone(),
            index,
        });
    }
    Ok(out)
}

/// PUT every index by digest, then (only when all are in) give each image its tag, read
/// back before it is reported ([`RegistryClient::tag_digest`]). A tag that fails leaves the
/// images tagged so far as they are: the same merge run again completes it (the indexes are
/// the same bytes, so the same digests). Once `cancel` is cancelled (SIGINT, SIGTERM), no
/// further tag is given.
pub async fn publish(
    client: &RegistryClient,
    merged: &mut [Merged],
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let mut at = Vec::with_capacity(merged.len());
    for m in merged.iter() {
        let r = repository_of(&m.image)?;
        let by_digest = client
            .put_index(&r, &m.index)
            .await
            .with_context(|| format!("{}: PUT of its index by digest", m.image))?;
        tracing::info!("{}: index {} put by digest", m.image, m.digest);
        at.push((by_digest, r));
    }
    let mut indexes: BTreeMap<String, String> = BTreeMap::new();
    for (m, (src, dst)) in merged.iter_mut().zip(at) {
        if cancel.is_cancelled() {
            anyhow::bail!("interrupted before {} was tagged", m.image);
        }
        let digest = client
            .tag_digest(&src, &dst, &m.image)
            .await
            .with_context(|| {
                format!(
                    "{}: tagging its index (run the same merge again to complete it)",
                    m.image
                )
            })?;
        m.tagged = true;
        let report = &mut m.report;
        report.digest = Some(digest);
        report.awaiting_merge = false;
        report.pushed = true;
        report.success = true;
        // Each platform was built FROM the parent's image of that platform: merged here,
        // the parent's index holds them all.
        if let Some(d) = m.parent.as_ref().and_then(|p| indexes.get(p)) {
            report.parent_digest = Some(d.clone());
        }
        report.message = format!(
            "merged: {} platforms in one index, tagged",
            m.platforms.len()
        );
        tracing::info!("{} -> {}", m.image, m.digest);
        indexes.insert(m.key.clone(), m.digest.clone());
    }
    Ok(())
}

/// Push the content tags the runs computed (`tags:` in the spec) for each tagged image that
/// passed its tests, naming the index ([`crate::content_tags::publish::publish`]: an
/// existing tag on another digest is kept unless it is `moving`). A failure is recorded in
/// the report; returns whether every image's tags went through. (Each split run has run
/// the integration tests already, against its pushed digest.)
pub async fn content_tags(client: &RegistryClient, merged: &mut [Merged]) -> bool {
    let mut all = true;
    for m in merged
        .iter_mut()
        .filter(|m| m.tagged && m.report.success && !m.content_tags.is_empty())
    {
        let push = crate::content_tags::publish::publish(
            client,
            &m.repository,
            &m.digest,
            &m.content_tags,
        );
        match m
            .report
            .run_step(crate::report::ImageStep::ContentTags, push)
            .await
        {
            Some((records, warnings)) => {
                m.report.content_tags = records;
                m.report.warnings.extend(warnings);
            }
            None => all = false,
        }
    }
    all
}

/// Write the merged images' artifacts into `out`: each `artifacts/<safe name>.yaml` (the
/// index digest, every platform's result) and `artifacts/IMAGES_BUILT` (the images tagged
/// whose content tags and page went through, as a build lists them).
pub fn write_artifacts(out: &ArtifactDirs, merged: &[Merged]) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = vec![];
    for m in merged {
        written.push(m.report.write(out)?);
    }
    let images: Vec<&str> = merged
        .iter()
        .filter(|m| m.tagged && m.report.success)
        .map(|m| m.image.as_str())
        .collect();
    written.push(crate::report::lists::write_image_list(
        out,
        crate::report::lists::IMAGES_BUILT,
        &images,
    )?);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "\
root: base
images:
  base:
    image_name: 127.0.0.1:5999/ex/base
  child:
    image_name: 127.0.0.1:5999/ex/child
    depend_on: base
    platforms: [linux/amd64]
platforms: [linux/amd64, linux/arm64]
tag:
  prefix: '2026.3'
";

    /// The spec in a git repository of one commit on `main`, and what a merge expects there.
    fn spec(dir: &Path) -> (Spec, Expected) {
        std::fs::write(dir.join("spec.yml"), SPEC).unwrap();
        for k in ["base", "child"] {
            std::fs::create_dir_all(dir.join("images").join(k)).unwrap();
            std::fs::write(
                dir.join("images").join(k).join("Dockerfile"),
                "FROM scratch\n",
            )
            .unwrap();
        }
        let repo = git2::Repository::init(dir).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        let mut index = repo.index().unwrap();
        index
            .add_all(["spec.yml", "images"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "stack", &tree, &[])
            .unwrap();
        let spec = Spec::load(dir, None).unwrap();
        let ex = Expected::new(&spec, dir, "HEAD", None).unwrap();
        assert_eq!(ex.tag, "2026.3-main");
        (spec, ex)
    }

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    /// A split run's report of `key` for `platform` (digest made of `c`).
    fn report(key: &str, platform: &str, c: char, commit: &str) -> ImageReport {
        let mut r = ImageReport::started(key, format!("127.0.0.1:5999/ex/{key}:2026.3-main"));
        r.built = true;
        r.commit = Some(commit.into());
        r.awaiting_merge = true;
        r.platforms.push(PlatformReport {
            platform: platform.into(),
            digest: Some(digest(c)),
            success: true,
            basic: None,
        });
        r.finish(std::time::Duration::from_secs(1));
        r
    }

    /// A run folder holding these reports, as `stackctl build` leaves them.
    fn run(root: &Path, name: &str, reports: &[ImageReport]) -> RunArtifacts {
        let dir = root.join(name);
        let dirs = ArtifactDirs::new(&dir);
        for r in reports {
            r.write(&dirs).unwrap();
        }
        read_run(&dir).unwrap()
    }

    fn refusal(spec: &Spec, runs: &[RunArtifacts], ex: &Expected) -> String {
        format!("{:#}", plan(spec, runs, ex).unwrap_err())
    }

    #[test]
    fn two_runs_merge_in_the_specs_platform_order() {
        let tmp = tempfile::tempdir().unwrap();
        let (spec, ex) = spec(tmp.path());
        let c = ex.commit.clone();
        let arm = run(tmp.path(), "arm", &[report("base", "linux/arm64", 'b', &c)]);
        let amd = run(
            tmp.path(),
            "amd",
            &[
                report("base", "linux/amd64", 'a', &c),
                report("child", "linux/amd64", 'c', &c),
            ],
        );
        // The artifacts/ folder itself is read as well as the run's folder.
        let arm_artifacts = read_run(&tmp.path().join("arm/artifacts")).unwrap();
        assert_eq!(arm_artifacts.reports.len(), 1);
        let p = plan(&spec, &[arm, amd], &ex).unwrap();
        assert_eq!(p.commit, c);
        let keys: Vec<&str> = p.images.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["base", "child"]);
        let base: Vec<(String, String)> = p.images[0]
            .platforms
            .iter()
            .map(|(p, d)| (p.to_string(), d.clone()))
            .collect();
        assert_eq!(
            base,
            [
                ("linux/amd64".to_string(), digest('a')),
                ("linux/arm64".to_string(), digest('b'))
            ]
        );
        assert_eq!(p.images[0].report.platforms.len(), 2);
    }

    #[test]
    fn a_missing_platform_is_refused_naming_image_platform_and_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let (spec, ex) = spec(tmp.path());
        let c = ex.commit.clone();
        let amd = run(tmp.path(), "amd", &[report("base", "linux/amd64", 'a', &c)]);
        let e = refusal(&spec, &[amd], &ex);
        assert!(
            e.contains("127.0.0.1:5999/ex/base:2026.3-main: platform linux/arm64")
                && e.contains(&tmp.path().join("amd").display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn different_commits_are_refused_naming_both() {
        let tmp = tempfile::tempdir().unwrap();
        let (spec, ex) = spec(tmp.path());
        let (c1, c2) = (ex.commit.clone(), "2".repeat(40));
        let amd = run(
            tmp.path(),
            "amd",
            &[report("base", "linux/amd64", 'a', &c1)],
        );
        let arm = run(
            tmp.path(),
            "arm",
            &[report("base", "linux/arm64", 'b', &c2)],
        );
        let e = refusal(&spec, &[amd, arm], &ex);
        assert!(e.contains("different commits"), "{e}");
        for (c, d) in [(&c1, "amd"), (&c2, "arm")] {
            assert!(
                e.contains(&format!("{c} ({})", tmp.path().join(d).display())),
                "{e}"
            );
        }
    }

    #[test]
    fn one_platform_with_two_digests_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (spec, ex) = spec(tmp.path());
        let c = ex.commit.clone();
        let a = run(tmp.path(), "a", &[report("base", "linux/amd64", 'a', &c)]);
        let b = run(tmp.path(), "b", &[report("base", "linux/amd64", 'e', &c)]);
        let arm = run(tmp.path(), "arm", &[report("base", "linux/arm64", 'b', &c)]);
        let e = refusal(&spec, &[a, b, arm], &ex);
        assert!(
            e.contains(&format!(
                "platform linux/amd64 is {} in {}",
                digest('a'),
                tmp.path().join("a").display()
            )) && e.contains(&format!("but {} in", digest('e'))),
            "{e}"
        );
    }

    #[test]
    fn a_failed_platform_and_an_undeclared_one_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (spec, ex) = spec(tmp.path());
        let c = ex.commit.clone();
        let mut failed = report("base", "linux/arm64", 'b', &c);
        failed.awaiting_merge = false;
        failed.platforms[0].success = false;
        failed.fail(
            crate::report::ImageStep::BasicTests,
            "basic-tests failed: 1 of 3",
        );
        let amd = run(
            tmp.path(),
            "amd",
            &[
                report("base", "linux/amd64", 'a', &c),
                report("child", "linux/arm64", 'c', &c),
            ],
        );
        let arm = run(tmp.path(), "arm", &[failed]);
        let e = refusal(&spec, &[amd, arm], &ex);
        assert!(
            e.contains("127.0.0.1:5999/ex/base:2026.3-main: failed on linux/arm64 in"),
            "{e}"
        );
        assert!(
            e.contains("127.0.0.1:5999/ex/child:2026.3-main: platform linux/arm64 was built, but images.child"),
            "{e}"
        );
    }

    #[test]
    fn runs_that_computed_different_content_tags_are_refused() {
        use crate::content_tags::publish::ContentTag;
        let tmp = tempfile::tempdir().unwrap();
        let (spec, ex) = spec(tmp.path());
        let c = ex.commit.clone();
        let tagged = |platform: &str, d: char, tag: &str| {
            let mut r = report("base", platform, d, &c);
            r.content_tags.push(ContentTag {
                tag: tag.into(),
                digest: None,
                state: ContentTagState::NotPushed,
                moving: false,
                previous: None,
            });
            r
        };
        let same = [
            run(tmp.path(), "a", &[tagged("linux/amd64", 'a', "py-3.11")]),
            run(tmp.path(), "b", &[tagged("linux/arm64", 'b', "py-3.11")]),
        ];
        let p = plan(&spec, &same, &ex).unwrap();
        assert_eq!(p.images[0].content_tags.len(), 1);
        let differ = [
            run(tmp.path(), "c", &[tagged("linux/amd64", 'a', "py-3.11")]),
            run(tmp.path(), "d", &[tagged("linux/arm64", 'b', "py-3.12")]),
        ];
        let e = refusal(&spec, &differ, &ex);
        assert!(
            e.contains("different content tags: [py-3.11] in") && e.contains("[py-3.12] in"),
            "{e}"
        );
    }

    /// The tag and repository come from the spec, the commit and the branch: an artifact
    /// whose `image:` names another tag or repository, or whose `commit:` is not the one
    /// checked out (even when the runs agree on it), is refused naming the file and field.
    #[test]
    fn tampered_image_and_commit_fields_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (spec, ex) = spec(tmp.path());
        let c = ex.commit.clone();
        for image in [
            "127.0.0.1:5999/ex/base:stable",
            "127.0.0.1:5999/ex/base:2026.3-stable",
            "127.0.0.1:5999/ex/base:evil",
            "127.0.0.1:5999/other/base:2026.3-main",
        ] {
            let tamper = |mut r: ImageReport| {
                r.image = image.into();
                r
            };
            let name = image.replace([':', '/'], "_");
            let a = run(
                tmp.path(),
                &format!("a{name}"),
                &[tamper(report("base", "linux/amd64", 'a', &c))],
            );
            let b = run(
                tmp.path(),
                &format!("b{name}"),
                &[tamper(report("base", "linux/arm64", 'b', &c))],
            );
            let file = a.reports[0].0.display().to_string();
            let e = refusal(&spec, &[a, b], &ex);
            assert!(
                e.contains(&format!(
                    "{file}: image: {image} is not 127.0.0.1:5999/ex/base:2026.3-main"
                )),
                "{e}"
            );
        }
        let other = "3".repeat(40);
        let a = run(
            tmp.path(),
            "ca",
            &[report("base", "linux/amd64", 'a', &other)],
        );
        let b = run(
            tmp.path(),
            "cb",
            &[report("base", "linux/arm64", 'b', &other)],
        );
        let file = a.reports[0].0.display().to_string();
        let e = refusal(&spec, &[a, b], &ex);
        assert!(
            e.contains(&format!(
                "{file}: commit: {other} is not a commit of the repository"
            )),
            "{e}"
        );
        // A real commit, but not the one checked out.
        let repo = git2::Repository::open(tmp.path()).unwrap();
        let head = repo.head().unwrap().peel_to_commit().unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let next = repo
            .commit(
                Some("HEAD"),
                &sig,
                &sig,
                "next",
                &head.tree().unwrap(),
                &[&head],
            )
            .unwrap()
            .to_string();
        let ex2 = Expected::new(&spec, tmp.path(), "HEAD~1", Some("main")).unwrap();
        let a = run(
            tmp.path(),
            "da",
            &[report("base", "linux/amd64", 'a', &next)],
        );
        let b = run(
            tmp.path(),
            "db",
            &[report("base", "linux/arm64", 'b', &next)],
        );
        let file = a.reports[0].0.display().to_string();
        let e = refusal(&spec, &[a, b], &ex2);
        assert!(
            e.contains(&format!(
                "{file}: commit: {next} is not {c}, the commit at HEAD~1"
            )),
            "{e}"
        );
        // Another branch gives another tag, which the artifacts do not name.
        let ex3 = Expected::new(&spec, tmp.path(), "HEAD~1", Some("feature")).unwrap();
        let a = run(tmp.path(), "ea", &[report("base", "linux/amd64", 'a', &c)]);
        let e = refusal(&spec, &[a], &ex3);
        assert!(
            e.contains("image: 127.0.0.1:5999/ex/base:2026.3-main is not 127.0.0.1:5999/ex/base:2026.3-feature"),
            "{e}"
        );
    }

    #[test]
    fn a_folder_without_artifacts_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let e = read_run(&tmp.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("nope: no such folder"), "{e}");
        let e = read_run(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("no image artifacts"), "{e}");
    }
}
