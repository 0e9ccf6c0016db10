//! `stackctl build`: the main job, a thin layer over [`crate::pipeline::run`].
use super::buildkit::BuildkitArgs;
use super::common::{RegistryArgs, SpecArgs};
use super::exit::ExitStatus;
use super::output::{self, Format};
use super::plan::PlanSelection;
use super::GlobalArgs;
use crate::pipeline::run::{run as run_stack, RunOptions};
use crate::pipeline::schedule::ScheduleOptions;
use crate::report::build_json::BuildDocument;
use crate::report::{table, ArtifactDirs, RunLog};
use crate::spec::platform::Platform;
use std::path::PathBuf;

const AFTER: &str = "\
For every image that rebuilds (see `stackctl plan`), parents before children:
  build (BuildKit) -> basic tests (images/tests_common, images/<key>/test) -> content tags
  computed (spec tags:) -> push -> integration tests (integration_tests: true) -> content
  tags pushed -> manifest page -> reclaim space (prune: true)
Siblings whose parent is ready run together (--jobs). A failed step stops that image and
its descendants; other branches of the tree go on only with --keep-going.

Files left in --artifacts DIR (also on failure):
  artifacts/<safe name>.yaml per started image, artifacts/IMAGES_BUILT,
  logs/run.log, logs/<safe name>.build.log, logs/<safe name>.basic-tests.log (and .xml,
  JUnit), logs/<safe name>.integration-tests.log (and .xml),
  manifests/<page>.md and wiki/<page>.md for each image that passed (on every branch:
  whether the wiki is pushed is the workflow's choice).
  wiki/history/YYYY-MM.md (a row per build that pushed) and wiki/History.md; manifest
  pages beyond --wiki-max-pages removed (artifacts/WIKI_PAGES_REMOVED).

Content tags (spec `tags:`): computed in the tested image after the basic tests (a bad
value fails the image before it gets a tag), pushed after the last test as manifest PUTs
of the tested digest; an existing one on another digest is kept (a warning) unless its
entry says `moving: true`.

Where things run: BuildKit at --buildkit builds; with several nodes (--buildkit repeated,
or BUILDKIT_HOST=ADDR,ADDR) an image goes to the node that built its parent in this run
when that node is idle, else to the node with the fewest images running (--jobs on each
node); artifacts/<name>.yaml says which (builder). A node that does not answer at the
start is left out; a node lost during a build has its image built again on another node,
once; with no node left the run exits 2. Through the engine's own BuildKit the image is
tested in that engine (DOCKER_HOST, default /var/run/docker.sock) and pushed with its API.
Through a buildkitd (tcp://, unix://) BuildKit pushes the image by digest, without a tag;
the basic tests, info commands and content tag commands run on the buildkitd against
`<repository>@<digest>` (spec `tests.runner: engine` moves them to the engine), and only a
tested image gets `<tag>` in the registry (a manifest PUT, no data moved). Integration
tests run in the engine; no engine is contacted when no image needs one, and one needed
that does not answer is exit 2 before anything is built. No other tag is made but the spec's content tags. A child builds FROM
its parent's digest (BASE_TAG=<tag>@<digest>), recorded as parent_digest in its artifact.
The spec's `cache:` section may add a registry cache (<image>:buildcache-<tag>).

Platforms (spec `platforms:`, docs/spec.md): through a buildkitd, an image with several
platforms is one build pushed as an index; its basic tests run once per platform (a
foreign one through qemu-user-static), each with its own log and JUnit file
(logs/<safe name>.<os>-<arch>.basic-tests.log/.xml), and it passes only if every platform
passed; artifacts/<name>.yaml lists each platform's manifest digest and result. The
engine's BuildKit builds one platform (more is exit 2). --platform builds only some of
them: a split build pushes by digest, tests, and tags nothing (awaiting_merge: true in
the artifact) until `stackctl merge`.

GitHub Actions (GITHUB_ACTIONS=true): a collapsible group per image, failures as
annotations, a table in GITHUB_STEP_SUMMARY, `images` and `tag` in GITHUB_OUTPUT.

Interrupts: SIGINT (Ctrl-C) and SIGTERM alike. The running BuildKit solve is cancelled
(its Solve call and session end), running tests stop and their containers are removed, no
later step runs, nothing more is pushed or tagged; the artifacts written so far are kept and
the summary written. Exit 130 within seconds; a second signal exits at once.

Exit codes: 0 all done; 1 an image failed (build, test, push or content tag) or was skipped because
of a failure; 2 bad input or an unreachable service (BuildKit, registry); 130 interrupted.";

/// `stackctl build`: run the whole stack.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER)]
pub struct BuildArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub select: PlanSelection,
    #[command(flatten)]
    pub buildkit: BuildkitArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Only these images may rebuild (others are left as they are). Repeatable.
    #[arg(long, value_name = "KEY")]
    pub only: Vec<String>,
    /// Build and test, but push nothing under the image's tag (integration tests and
    /// manifest pages, which need the image in its registry, are left out). Through a
    /// buildkitd the image still goes to its registry by digest (no tag) for the tests.
    #[arg(long)]
    pub no_push: bool,
    /// At most this many images at a time on each BuildKit node (an image holds its node's
    /// place from its build to its last step).
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = at_least_one)]
    pub jobs: usize,
    /// After a failure, go on with the images that do not descend from it.
    #[arg(long)]
    pub keep_going: bool,
    /// Where artifacts/, logs/, manifests/ and wiki/ are written.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub artifacts: PathBuf,
    /// Time limit of each test suite (e.g. 30m, 90s).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub test_timeout: std::time::Duration,
    /// Keep at most N manifest pages in the wiki folder: the oldest beyond N are removed
    /// (listed in artifacts/WIKI_PAGES_REMOVED), never one linked from Home.md or
    /// Stable_Tag.md. A GitHub wiki renders at most 5,000 pages.
    #[arg(long, value_name = "N", default_value_t = 4500)]
    pub wiki_max_pages: usize,
    /// Build and test only these of each image's `platforms:` (e.g. linux/arm64; repeatable
    /// or a comma list). Naming only some of an image's platforms is a split build: its
    /// images are pushed by digest and tested, get no tag, and wait for `stackctl merge`
    /// (needs a buildkitd).
    #[arg(long, value_name = "OS/ARCH", value_delimiter = ',', value_parser = parse_platform)]
    pub platform: Vec<Platform>,
    /// How the summary is printed on stdout: text (a table for the terminal), json (one
    /// document: tag, built, and images with key, ref, rebuild, reasons, status,
    /// content_tags and report) or markdown (the table of GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FORMAT", default_value = "text",
          value_parser = output::formats(&[Format::Text, Format::Json, Format::Markdown]))]
    pub format: Format,
    /// Build every step again, with no cache import at all (no registry cache, no inline
    /// cache of earlier tags), as `docker buildx build --no-cache` does.
    #[arg(long)]
    pub no_cache: bool,
    /// Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Sign each tested image with this key before it gets its tag (cosign's `.sig`
    /// form; `cosign verify --key cosign.pub` accepts it): cosign's key file (its password
    /// in COSIGN_PASSWORD) or a PEM ECDSA P-256 key [default: the spec's `sign.key`].
    #[arg(long, value_name = "PATH", env = "STACKCTL_SIGN_KEY")]
    pub sign_key: Option<PathBuf>,
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    s.parse()
}

pub async fn run(args: BuildArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let spec = args.spec.load()?;
    let plan = args.select.plan(&spec, &args.spec.repo)?;
    let dirs = ArtifactDirs::new(&args.artifacts);
    dirs.create()?;
    let _run_log = RunLog::global().start(&dirs.run_log())?;
    let signer = match args.sign_key.as_ref().or(spec.sign_key.as_ref()) {
        Some(path) => {
            let password = std::env::var("COSIGN_PASSWORD").ok();
            Some(crate::signing::Signer::load(path, password.as_deref())?)
        }
        None => None,
    };
    let credentials = args.registry.credentials()?;
    let registry = args.registry.client_with(credentials.clone())?;
    // Every node of the pool; those that do not answer are left out with a warning.
    let buildkit = args.buildkit.pool().await?;

    // SIGINT/SIGTERM: the solve is cancelled, running tests stop and their containers are
    // removed, no later step runs; the artifacts are written (exit 130).
    let cancel = super::common::cancel_on_ctrl_c();

    let opts = RunOptions {
        registry_check: !args.select.no_registry,
        base_check: !args.select.no_base_check,
        registry_timeout: args.select.registry_timeout,
        only: args.only.clone(),
        push: !args.no_push,
        schedule: ScheduleOptions {
            jobs: args.jobs,
            keep_going: args.keep_going,
        },
        dirs: dirs.clone(),
        test_timeout: args.test_timeout,
        insecure_registries: args.registry.insecure_registry.clone(),
        build_time: chrono::Utc::now(),
        wiki_max_pages: args.wiki_max_pages,
        platforms: args.platform.clone(),
        signer,
        no_cache: args.no_cache,
    };
    let summary = run_stack(
        &spec,
        plan,
        &buildkit,
        &registry,
        &credentials,
        &opts,
        cancel,
    )
    .await?;

    let rows = &summary.postwork.rows;
    match Format::chosen(args.json, args.format) {
        Format::Json => {
            let doc = BuildDocument::new(&summary.plan, &summary.postwork.built, &summary.images);
            outln!("{}", doc.to_json()?);
        }
        Format::Markdown => {
            let title = format!("stackctl build: {}", summary.plan.tag);
            out!("{}", table::markdown(&title, rows));
        }
        Format::Text | Format::Mermaid => out!("{}", table::terminal(rows)),
    }
    eprintln!(
        "artifacts: {}/artifacts, logs: {}/logs, manifests: {}/manifests",
        dirs.root().display(),
        dirs.root().display(),
        dirs.root().display()
    );
    if let Some(e) = &summary.service_error {
        eprintln!("error: BuildKit could not be reached during the run: {e}");
        return Ok(ExitStatus::Error);
    }
    Ok(if summary.failed() {
        ExitStatus::Failed
    } else {
        ExitStatus::Success
    })
}

/// `--jobs`: a count of at least 1 (0 would build nothing and wait forever).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
