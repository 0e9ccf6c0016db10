//! `stackctl merge`: a thin layer over [`crate::promote::assemble`].
use super::common::{RegistryArgs, SpecArgs};
use super::exit::ExitStatus;
use super::GlobalArgs;
use crate::promote::assemble;
use crate::report::github::{self, GithubActions};
use crate::report::{ArtifactDirs, ImageStep};
use crate::wiki::image_page::{self, PageOptions, RegistryAccess};
use std::path::PathBuf;

const AFTER: &str = "\
Split builds: each runner runs `stackctl build --platform OS/ARCH` (its own platforms of the \
spec's `platforms:`); its images are built, tested and pushed by digest without a tag, \
recorded in artifacts/<image>.yaml with `awaiting_merge: true`. `stackctl merge` reads those \
folders (each a run's --artifacts folder, or its artifacts/ folder itself) and, for every \
image awaiting a merge:\n\
  - checks: every run built the commit at --head (HEAD) in --repo, and each artifact's \
`image:` is the spec's image_name with the tag `build` gives that commit on the branch \
(--branch, GITHUB_HEAD_REF, GITHUB_REF_NAME, the checked-out branch): the tag is computed \
here, never taken from the artifacts; every run built the same commit; every platform the spec declares for the image \
is in one of the runs (no other, and each with one digest); no image or platform failed in \
any run. Any problem refuses the whole merge, before any registry write (exit 2);\n\
  - reads each platform's manifest and config (no layer is pulled), makes a Docker manifest \
list (an OCI index when the images are OCI) whose entries carry each platform (os, \
architecture, variant), PUTs it by digest;\n\
  - once every index is in, gives each image its tag and reads the tag back;\n\
  - pushes the content tags the runs computed (spec `tags:`; the runs must agree on them) \
naming the index. (Each split run has run the integration tests against its digest.)\n\
Then it writes into --out: artifacts/<image>.yaml (digest: the index; each platform's digest \
and test result), artifacts/IMAGES_BUILT, and manifests/<page>.md and wiki/<page>.md (one \
section per platform; info commands run in the Docker engine at DOCKER_HOST; --no-pages \
leaves them out).\n\n\
A merge stopped half way (a tag refused, a lost connection) is completed by running it \
again: the same artifacts make the same indexes, the same digests.\n\n\
GitHub Actions (GITHUB_ACTIONS=true): a refusal or failure as an error annotation, a table \
in GITHUB_STEP_SUMMARY, `images` and `tag` in GITHUB_OUTPUT.\n\n\
Exit codes: 0 merged and tagged (or nothing awaited a merge; with --dry-run: checked); 1 \
a content tag or a manifest page failed (the tags are in place, as after a build's push); 2 refused (a missing platform, different \
commits, a failure in a run, bad artifacts), or a registry that refused or could not be \
reached.";

/// `stackctl merge`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER)]
pub struct MergeArgs {
    /// The runs' output folders (`stackctl build --artifacts DIR`), or their artifacts/ folders.
    #[arg(value_name = "ARTIFACT_DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub spec: SpecArgs,
    /// The commit the runs built, in --repo [default: HEAD]. Every artifact must record it.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub head: String,
    /// The branch whose tag the images get (`<prefix>-<branch>`), computed as `build`
    /// computes it. Default: GITHUB_HEAD_REF for a pull request, else GITHUB_REF_NAME,
    /// else the checked-out branch. Every artifact's `image:` must name that tag.
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// Where the merged artifacts/, manifests/ and wiki/ are written.
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".",
        visible_alias = "artifacts"
    )]
    pub out: PathBuf,
    /// Check the runs and make the indexes (registry reads only); PUT, tag and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write no manifest pages (a merge job without a Docker engine).
    #[arg(long)]
    pub no_pages: bool,
    /// Bound on each manifest page's info commands.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub page_timeout: std::time::Duration,
    /// Print one JSON document: {commit, dry_run, images: [{key, image, digest, media_type,
    /// platforms: [{platform, digest, media_type, size}], tagged}]}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub async fn run(a: MergeArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let gha = GithubActions::from_env();
    let annotate = |e: &anyhow::Error| {
        if gha.is_some() {
            eprint!("{}", github::error("stackctl merge", &format!("{e:#}")));
        }
    };
    let result = merge_and_report(&a, gha.as_ref()).await;
    if let Err(e) = &result {
        annotate(e);
    }
    result
}

async fn merge_and_report(
    a: &MergeArgs,
    gha: Option<&GithubActions>,
) -> anyhow::Result<ExitStatus> {
    let spec = a.spec.load()?;
    let runs = a
        .dirs
        .iter()
        .map(|d| assemble::read_run(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let env = crate::plan::github_event::GithubEnv::from_process();
    let event = env
        .event()
        .unwrap_or(crate::plan::github_event::GithubEvent::Push);
    let branch = a
        .branch
        .clone()
        .filter(|b| !b.is_empty())
        .or_else(|| crate::plan::branch_from_env(event, &env));
    let expected = assemble::Expected::new(&spec, &a.spec.repo, &a.head, branch.as_deref())?;
    let plan = assemble::plan(&spec, &runs, &expected)?;
    if plan.images.is_empty() {
        tracing::info!("no image awaits a merge in {} folder(s)", runs.len());
    }
    let credentials = a.registry.credentials()?;
    let client = a.registry.client_with(credentials.clone())?;
    let mut merged = assemble::make_indexes(&client, &plan).await?;
    let mut status = ExitStatus::Success;
    if !a.dry_run {
        assemble::publish(&client, &mut merged, &super::common::cancel_on_ctrl_c()).await?;
        let out = ArtifactDirs::new(&a.out);
        let cancel = super::common::cancel_on_ctrl_c();
        // As in a build, after the tag: content tags, then the page (the split runs have run
        // the integration tests against their digests); a failed step ends the image.
        assemble::content_tags(&client, &mut merged).await;
        if !a.no_pages {
            for m in merged.iter_mut().filter(|m| m.report.success) {
                let opts = PageOptions {
                    out_dir: out.manifests(),
                    wiki_dir: Some(out.wiki()),
                    registry: RegistryAccess {
                        credentials: credentials.clone(),
                        insecure: a.registry.insecure_registry.clone(),
                    },
                    timeout: a.page_timeout,
                    cancel: cancel.clone(),
                    content_tags: m.report.content_tags.clone(),
                    runner: crate::containers::runner::Runner::Engine(credentials.clone()),
                    inventory: false,
                };
                let page = image_page::write_page(&spec, &m.key, &m.image, &opts);
                m.report.run_step(ImageStep::Page, page).await;
            }
        }
        for m in merged.iter().filter(|m| !m.report.success) {
            tracing::error!("{}: {}", m.image, m.report.message);
            if gha.is_some() {
                eprint!("{}", github::error(&m.image, &m.report.message));
            }
            status = ExitStatus::Failed;
        }
        for p in assemble::write_artifacts(&out, &merged)? {
            tracing::debug!("wrote {}", p.display());
        }
    }
    if a.json {
        super::output::print_json(&serde_json::json!({
            "commit": plan.commit,
            "dry_run": a.dry_run,
            "images": merged,
        }))?;
    } else {
        for m in &merged {
            let platforms: Vec<String> =
                m.platforms.iter().map(|p| p.platform.to_string()).collect();
            let what = if m.tagged { "" } else { " (dry run: not put)" };
            outln!("{}@{} {}{what}", m.image, m.digest, platforms.join(","));
        }
    }
    if let Some(gha) = gha {
        if !a.dry_run {
            let mut md = String::from(
                "### stackctl merge\n\n| Image | Index | Platforms |\n|---|---|---|\n",
            );
            for m in &merged {
                let platforms: Vec<String> = m
                    .platforms
                    .iter()
                    .map(|p| format!("{} `{}`", p.platform, p.digest))
                    .collect();
                md.push_str(&format!(
                    "| `{}` | `{}` | {} |\n",
                    m.image,
                    m.digest,
                    platforms.join("<br>")
                ));
            }
            gha.append_summary(&md)?;
            let images: Vec<&str> = merged.iter().map(|m| m.image.as_str()).collect();
            let tag = merged
                .first()
                .and_then(|m| crate::registry::ImageRef::parse(&m.image).ok()?.tag)
                .unwrap_or_default();
            gha.set_outputs(&github::build_outputs(&tag, &images.join("\n")))?;
        }
    }
    Ok(status)
}
