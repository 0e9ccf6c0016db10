//! The whole main job: from a plan to the files a run leaves.

use super::schedule::{
    run_schedule_placed, Job, ScheduleEvent, ScheduleOptions, Scheduled, ScheduledImage,
};
use super::services::run_image;
use super::steps::ImageJobContext;
use crate::buildkit;
use crate::credentials::CredentialStore;
use crate::plan::Plan;
use crate::registry::{exists_within, ImageRef, RegistryClient};
use crate::report::github::{self, GithubActions};
use crate::report::{self, ArtifactDirs, ImageReport, ImageStep, PostworkOutput};
use crate::spec::platform::Platform;
use crate::spec::Spec;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How a run goes, beyond the plan.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Ask the registry which tags exist (missing ones rebuild, existing ones serve as cache).
    pub registry_check: bool,
    /// Look up the bases the images recorded (a moved one rebuilds its image).
    pub base_check: bool,
    /// The deadline of the registry check, all of its requests together.
    pub registry_timeout: Duration,
    /// Only these images may rebuild (empty: all).
    pub only: Vec<String>,
    /// Push images; without it nothing is pushed, and integration tests and manifest
    /// pages (which need the image in its registry) are left out.
    pub push: bool,
    pub schedule: ScheduleOptions,
    /// Where `artifacts/`, `logs/`, `manifests/` and `wiki/` are written.
    pub dirs: ArtifactDirs,
    pub test_timeout: Duration,
    pub insecure_registries: Vec<String>,
    /// When the run started: content tags' `{date}`, the build history's month and time.
    pub build_time: chrono::DateTime<chrono::Utc>,
    /// At most this many manifest pages stay in the wiki folder (the oldest go).
    pub wiki_max_pages: usize,
    /// `--platform`: build only these of each image's platforms (empty: all it declares).
    pub platforms: Vec<crate::spec::platform::Platform>,
    /// The key that signs each tested image (`--sign-key`, else the spec's `sign.key`).
    pub signer: Option<crate::signing::Signer>,
    /// `--no-cache`: build every step again, with no cache import.
    pub no_cache: bool,
}

/// What a run did.
#[derive(Debug)]
pub struct RunSummary {
    pub plan: Plan,
    pub images: Vec<ScheduledImage<ImageReport>>,
    pub postwork: PostworkOutput,
    /// BuildKit could not be reached during the run (the first such message).
    pub service_error: Option<String>,
}

impl RunSummary {
    /// Whether an image failed or could not be started.
    pub fn failed(&self) -> bool {
        self.images.iter().any(|i| i.result.is_failure())
    }
}

/// Check the registry (unless told not to), then run every image that rebuilds on the
/// nodes of `pool` (see [`super::schedule`] for which goes where), and write the artifacts
/// whatever happened. Errors are for what stops a run before any image starts (a registry
/// that cannot be asked, bad `--only` keys).
pub async fn run(
    spec: &Spec,
    mut plan: Plan,
    pool: &buildkit::Pool,
    registry: &RegistryClient,
    credentials: &CredentialStore,
    opts: &RunOptions,
    cancel: CancellationToken,
) -> anyhow::Result<RunSummary> {
    check_only(spec, &opts.only)?;
    let (existing, digests) = if opts.registry_check {
        registry_facts(spec, &mut plan, registry, opts).await?
    } else {
        (HashSet::new(), HashMap::new())
    };
    tracing::info!("plan:\n{plan}");

    let rebuild = |key: &str| {
        plan.image(key).is_some_and(|i| i.rebuild)
            && (opts.only.is_empty() || opts.only.iter().any(|k| k == key))
    };
    check_platforms(spec, pool, &opts.platforms, rebuild)?;
    check_engine(spec, pool, opts.push, rebuild).await?;
    let jobs = Job::from_spec(spec, rebuild);
    opts.dirs.create()?;
    let ctx = ImageJobContext {
        spec,
        registry,
        credentials,
        insecure_registries: &opts.insecure_registries,
        dirs: &opts.dirs,
        push: opts.push,
        tag: plan.tag.clone(),
        digests: std::sync::Mutex::new(digests),
        existing: &existing,
        test_timeout: opts.test_timeout,
        cancel,
        service_error: std::sync::Mutex::new(None),
        commit: plan.head.clone(),
        source: plan.source.clone(),
        build_time: opts.build_time,
        platforms: opts.platforms.clone(),
        signer: opts.signer.as_ref(),
        no_cache: opts.no_cache,
    };
    let gha = GithubActions::from_env();
    let mut images = schedule_images(&jobs, &plan, pool, &ctx, opts, gha.is_some()).await?;
    if !ctx.cancel.is_cancelled() {
        reclaim_space(spec, pool, opts.build_time, &mut images).await;
    }
    note_lost_nodes(&images, &ctx.service_error);

    let title = format!("stackctl build: {}", plan.tag);
    let postwork = report::write_postwork(
        &opts.dirs,
        &plan.tag,
        &title,
        &images,
        |key| {
            spec.image(key)
                .map(|i| i.image_name.clone())
                .unwrap_or_default()
        },
        |key| spec.image(key).and_then(|i| i.depend_on.clone()),
        gha.as_ref(),
    )?;
    if let Some(p) = postwork.files.iter().find(|p| p.ends_with("changes.md")) {
        tracing::info!("what changed since the images replaced: {}", p.display());
    }
    crate::wiki::history::after_build(
        &opts.dirs,
        opts.build_time,
        &plan.head,
        &plan.tag,
        images.iter().filter_map(|s| s.result.outcome()),
        opts.wiki_max_pages,
    );
    let service_error = ctx
        .service_error
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    Ok(RunSummary {
        plan,
        images,
        postwork,
        service_error,
    })
}

/// Run the jobs on the nodes of `pool` (see [`super::schedule`] for which goes where),
/// announcing each image's events on stderr (`actions`: as GitHub Actions groups). An
/// image whose node was lost is built again on another, which its report lists.
async fn schedule_images(
    jobs: &[Job],
    plan: &Plan,
    pool: &buildkit::Pool,
    ctx: &ImageJobContext<'_>,
    opts: &RunOptions,
    actions: bool,
) -> anyhow::Result<Vec<ScheduledImage<ImageReport>>> {
    let full_name = |key: &str| {
        plan.image(key)
            .map(|i| i.reference.clone())
            .unwrap_or_else(|| key.to_string())
    };
    // Image key -> the nodes lost during its build (work futures share this task).
    let lost = std::cell::RefCell::new(HashMap::<String, Vec<String>>::new());
    let lost_ref = &lost;
    Ok(run_schedule_placed(
        jobs,
        opts.schedule,
        pool.nodes.len(),
        |key: String, node: usize| async move {
            let planned = plan.image(&key).expect("jobs come from the plan");
            let client = &pool.nodes[node];
            if pool.nodes.len() > 1 {
                tracing::info!("[{key}] builds on BuildKit node {}", client.address());
            }
            let mut report = run_image(ctx, planned, client).await;
            let mut lost = lost_ref.borrow_mut();
            let lost = lost.entry(key).or_default();
            if report.node_lost {
                lost.push(client.address().to_string());
            }
            report.lost_builders = lost.clone();
            report
        },
        |ev| announce(&ev, &full_name(event_key(&ev)), actions, &opts.dirs),
    )
    .await?)
}

/// `--only`'s keys must name images of the spec.
fn check_only(spec: &Spec, only: &[String]) -> anyhow::Result<()> {
    for k in only {
        if spec.image(k).is_none() {
            anyhow::bail!(
                "--only {k}: no such image in {} (images: {})",
                spec.path.display(),
                spec.images.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(())
}

/// What the registry says before the run: the references that exist (the plan's tags and
/// the quarter-stable tags, cache sources when they exist), and the digest each image that
/// does not rebuild is used by (the one its tag names now). Marks the plan's missing tags.
async fn registry_facts(
    spec: &Spec,
    plan: &mut Plan,
    registry: &RegistryClient,
    opts: &RunOptions,
) -> anyhow::Result<(HashSet<String>, HashMap<String, String>)> {
    let only = &opts.only;
    let mut existing = HashSet::new();
    let mut digests = HashMap::new();
    let results = plan.check_registry(registry, opts.registry_timeout).await?;
    if opts.base_check {
        plan.check_bases(registry, opts.registry_timeout).await;
        for w in &plan.warnings {
            tracing::warn!("{w}");
        }
    }
    for (img, r) in plan.images.iter().zip(results) {
        let rebuilds = img.rebuild && (only.is_empty() || only.contains(&img.key));
        if let (false, Some(d)) = (rebuilds, &r.digest) {
            digests.insert(img.key.clone(), d.clone());
        }
        if r.exists {
            existing.insert(r.reference);
        }
    }
    let stable_tag = crate::tag::quarter_stable_tag(&spec.tag_prefix);
    let stable: Vec<ImageRef> = spec
        .images
        .values()
        .map(|i| ImageRef::parse(&format!("{}:{stable_tag}", i.image_name)))
        .collect::<Result<_, _>>()?;
    let stable = exists_within(registry, &stable, opts.registry_timeout)
        .await
        .map_err(|e| anyhow::anyhow!("registry check: {e}"))?;
    for r in stable {
        if r.exists {
            existing.insert(r.reference);
        }
    }
    Ok((existing, digests))
}

/// What `--platform` asks of each image that rebuilds, and whether every node can build
/// it, checked before anything is built (bad input).
fn check_platforms(
    spec: &Spec,
    pool: &buildkit::Pool,
    platforms: &[Platform],
    rebuild: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    for img in spec.images.values().filter(|i| rebuild(&i.key)) {
        let sel = super::platforms::select(img, platforms).map_err(anyhow::Error::msg)?;
        for node in &pool.nodes {
            let addr = node.address().to_string();
            super::platforms::check_builder(&img.key, &sel, node.kind().is_engine(), &addr)
                .map_err(anyhow::Error::msg)?;
        }
    }
    Ok(())
}

/// Whether each image that rebuilds can run its tests where the spec says, and, through
/// buildkitd nodes, that a Docker engine answers when an image needs one (integration tests,
/// `tests.runner: engine`): checked before anything is built (bad input, or an unreachable
/// service). No engine is contacted when no image needs one.
async fn check_engine(
    spec: &Spec,
    pool: &buildkit::Pool,
    push: bool,
    rebuild: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let images: Vec<_> = spec.images.values().filter(|i| rebuild(&i.key)).collect();
    for node in &pool.nodes {
        let addr = node.address().to_string();
        for img in &images {
            super::engine::check_runner(img, node.kind().is_engine(), &addr)
                .map_err(anyhow::Error::msg)?;
        }
    }
    if push {
        if let Some(node) = pool.nodes.iter().find(|n| n.kind().is_engine()) {
            let addr = node.address().to_string();
            if let Some(line) = super::engine::attest_check(images.iter().copied(), &addr)
                .map_err(anyhow::Error::msg)?
            {
                tracing::warn!("{line}");
            }
        }
    }
    // Through an engine's BuildKit the engine has answered already.
    if pool.nodes.iter().all(|n| n.kind().is_engine()) {
        return Ok(());
    }
    let needs: Vec<(String, String)> = images
        .iter()
        .filter_map(|i| super::engine::engine_need(i, false, push).map(|w| (i.key.clone(), w)))
        .collect();
    if needs.is_empty() {
        return Ok(());
    }
    match super::engine::engine_unreachable().await {
        Some(cause) => Err(anyhow::anyhow!(super::engine::no_engine_error(
            &needs, &cause
        ))),
        None => Ok(()),
    }
}

/// A node lost with no other node to build the image again: the run could not be done,
/// as when BuildKit cannot be reached at all (the first such message is kept).
fn note_lost_nodes(
    images: &[ScheduledImage<ImageReport>],
    service_error: &std::sync::Mutex<Option<String>>,
) {
    for i in images {
        if let Some(r) = i.result.outcome().filter(|r| r.node_lost) {
            let mut first = service_error.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| {
                format!(
                    "{} (no other BuildKit node was left to build it again)",
                    r.message
                )
            });
        }
    }
}

/// Reclaim builder space for the images with `prune: true` that passed, once no build of
/// the run is in flight (a BuildKit prune racing builds can bring Docker 20.10's BuildKit
/// down). A failure here is a warning: the images are done.
async fn reclaim_space(
    spec: &Spec,
    pool: &buildkit::Pool,
    started: chrono::DateTime<chrono::Utc>,
    images: &mut [ScheduledImage<ImageReport>],
) {
    for s in images.iter_mut() {
        let Scheduled::Ran { outcome, .. } = &mut s.result else {
            continue;
        };
        if !outcome.success || !spec.image(&s.key).is_some_and(|i| i.prune) {
            continue;
        }
        // On the node that built it, where its layers are.
        let Some(buildkit) = outcome.builder.as_deref().and_then(|a| pool.by_address(a)) else {
            continue;
        };
        let engine = match buildkit.kind() {
            buildkit::Kind::Engine(sock) => Some(sock),
            _ => None,
        };
        // A standalone buildkitd serves the next run too (a CI's remote BuildKit): what this
        // run used is the next one's cache, so only older records go; its own gc policy
        // bounds the rest. The engine's BuildKit is the runner's disk: all unused records go.
        let keep = match engine {
            Some(_) => None,
            None => Some((chrono::Utc::now() - started).to_std().unwrap_or_default()),
        };
        let t0 = std::time::Instant::now();
        let (image, pushed) = (&outcome.image, outcome.pushed);
        match super::prune::reclaim(buildkit, engine.as_ref(), image, pushed, keep).await {
            Ok(bytes) => {
                outcome.step_took(ImageStep::Prune, t0.elapsed());
                outcome.reclaimed_bytes = Some(bytes);
                tracing::info!(
                    "[{}] reclaimed {} of builder space",
                    s.key,
                    crate::sizes::human_size(bytes)
                );
            }
            Err(e) => tracing::warn!(
                "[{}] reclaiming builder space failed (the image is done): {e:#}",
                s.key
            ),
        }
    }
}

fn event_key<'a, T>(ev: &ScheduleEvent<'a, T>) -> &'a str {
    match ev {
        ScheduleEvent::UpToDate { key }
        | ScheduleEvent::Started { key }
        | ScheduleEvent::Finished { key, .. }
        | ScheduleEvent::Skipped { key, .. }
        | ScheduleEvent::Retried { key, .. } => key,
    }
}

/// One line per image event on stderr. On GitHub Actions a finished image also gets a
/// collapsible group with its steps and the end of its logs, and a failure an annotation
/// (see [`github::finished_image`]).
fn announce(ev: &ScheduleEvent<'_, ImageReport>, full: &str, actions: bool, dirs: &ArtifactDirs) {
    let line = report::progress::line(ev, full);
    let text = match ev {
        ScheduleEvent::Finished { outcome, .. } if actions => github::finished_image(
            &line,
            outcome,
            &[dirs.build_log(full), dirs.basic_tests_log(full)],
        ),
        _ => format!("{line}\n"),
    };
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
