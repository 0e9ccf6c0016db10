//! The whole main job: from a plan to the files a run leaves.

use super::image::{run_image, ImageJobContext};
use super::schedule::{
    run_schedule_placed, Event, Job, ScheduleOptions, Scheduled, ScheduledImage,
};
use crate::buildkit;
use crate::credentials::CredentialStore;
use crate::plan::Plan;
use crate::registry::{exists_within, ImageRef, RegistryClient};
use crate::report::github::{self, GithubActions};
use crate::report::{self, ArtifactDirs, ImageReport, PostworkOutput, Step};
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
    pub platforms: Vec<String>,
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
    for k in &opts.only {
        if spec.image(k).is_none() {
            anyhow::bail!(
                "--only {k}: no such image in {} (images: {})",
                spec.path.display(),
                spec.images.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let stable_tag = crate::tag::quarter_stable_tag(&spec.tag_prefix);
    let mut existing = HashSet::new();
    let mut digests = HashMap::new();
    if opts.registry_check {
        let results = plan.check_registry(registry, opts.registry_timeout).await?;
        for (img, r) in plan.images.iter().zip(results) {
            // An image that does not rebuild is used by the digest its tag names now.
            let rebuilds = img.rebuild && (opts.only.is_empty() || opts.only.contains(&img.key));
            if let (false, Some(d)) = (rebuilds, &r.digest) {
                digests.insert(img.key.clone(), d.clone());
            }
            if r.exists {
                existing.insert(r.reference);
            }
        }
        // The quarter-stable tags are cache sources too, when they exist.
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
    }
    tracing::info!("plan:\n{plan}");

    let rebuild = |key: &str| {
        plan.image(key).is_some_and(|i| i.rebuild)
            && (opts.only.is_empty() || opts.only.iter().any(|k| k == key))
    };
    // Platforms: what `--platform` asks of each image that rebuilds, and whether every node
    // can build it, checked before anything is built (bad input: exit 2).
    for img in spec.images.values().filter(|i| rebuild(&i.key)) {
        let sel = super::platforms::select(img, &opts.platforms).map_err(anyhow::Error::msg)?;
        for node in &pool.nodes {
            let addr = node.address().to_string();
            super::platforms::check_builder(&img.key, &sel, node.kind().is_engine(), &addr)
                .map_err(anyhow::Error::msg)?;
        }
    }
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
        build_time: opts.build_time,
        platforms: opts.platforms.clone(),
    };
    let gha = GithubActions::from_env();
    let full_name = |key: &str| {
        plan.image(key)
            .map(|i| i.reference.clone())
            .unwrap_or_else(|| key.to_string())
    };
    let plan_ref = &plan;
    let ctx_ref = &ctx;
    // Image key -> the nodes lost during its build (work futures share this task).
    let lost = std::cell::RefCell::new(HashMap::<String, Vec<String>>::new());
    let lost_ref = &lost;
    let images = run_schedule_placed(
        &jobs,
        opts.schedule,
        pool.nodes.len(),
        |key: String, node: usize| async move {
            let planned = plan_ref.image(&key).expect("jobs come from the plan");
            let client = &pool.nodes[node];
            if pool.nodes.len() > 1 {
                tracing::info!("[{key}] builds on BuildKit node {}", client.address());
            }
            let mut report = run_image(ctx_ref, planned, client).await;
            let mut lost = lost_ref.borrow_mut();
            let lost = lost.entry(key).or_default();
            if report.node_lost {
                lost.push(client.address().to_string());
            }
            report.lost_builders = lost.clone();
            report
        },
        |ev| announce(&ev, &full_name(event_key(&ev)), gha.is_some(), &opts.dirs),
    )
    .await?;

    let mut images = images;
    if !ctx.cancel.is_cancelled() {
        reclaim_space(spec, pool, &mut images).await;
    }
    // A node lost with no other node to build the image again: the run could not be done
    // (exit 2), as when BuildKit cannot be reached at all.
    for i in &images {
        if let Some(r) = i.result.outcome().filter(|r| r.node_lost) {
            let mut first = ctx.service_error.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| {
                format!(
                    "{} (no other BuildKit node was left to build it again)",
                    r.message
                )
            });
        }
    }

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

/// Reclaim builder space for the images with `prune: true` that passed, once no build of
/// the run is in flight (a BuildKit prune racing builds can bring Docker 20.10's BuildKit
/// down). A failure here is a warning: the images are done.
async fn reclaim_space(
    spec: &Spec,
    pool: &buildkit::Pool,
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
        let t0 = std::time::Instant::now();
        match super::prune::reclaim(buildkit, engine.as_ref(), &outcome.image, outcome.pushed).await
        {
            Ok(bytes) => {
                outcome.step_took(Step::Prune, t0.elapsed());
                outcome.reclaimed_bytes = Some(bytes);
                tracing::info!(
                    "[{}] reclaimed {} of builder space",
                    s.key,
                    crate::report::sizes::human_size(bytes)
                );
            }
            Err(e) => tracing::warn!(
                "[{}] reclaiming builder space failed (the image is done): {e:#}",
                s.key
            ),
        }
    }
}

fn event_key<'a, T>(ev: &Event<'a, T>) -> &'a str {
    match ev {
        Event::UpToDate { key }
        | Event::Started { key }
        | Event::Finished { key, .. }
        | Event::Skipped { key, .. }
        | Event::Retried { key, .. } => key,
    }
}

/// One line per image event on stderr. On GitHub Actions a finished image also gets a
/// collapsible group with its steps and the end of its logs, and a failure an annotation.
fn announce(ev: &Event<'_, ImageReport>, full: &str, actions: bool, dirs: &ArtifactDirs) {
    let line = report::progress::line(ev, full);
    let mut err = std::io::stderr().lock();
    if !actions {
        let _ = writeln!(err, "{line}");
        return;
    }
    match ev {
        Event::Finished { outcome, .. } => {
            let _ = writeln!(err, "{}", github::group(&line));
            for s in &outcome.steps {
                let _ = writeln!(err, "  {}: {:.1}s", s.step, s.seconds);
            }
            for log in [dirs.build_log(full), dirs.basic_tests_log(full)] {
                if let Ok(text) = std::fs::read_to_string(&log) {
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(40)..];
                    let _ = writeln!(err, "--- {} (last {} lines)", log.display(), tail.len());
                    for l in tail {
                        let _ = writeln!(err, "{l}");
                    }
                }
            }
            let _ = writeln!(err, "{}", github::end_group());
            if let Some(a) = report::progress::failure_annotation(outcome) {
                let _ = writeln!(err, "{a}");
            }
            // A content tag kept on another digest: a warning annotation, not a failure.
            for w in &outcome.warnings {
                let _ = write!(err, "{}", github::warning(&outcome.key, w));
            }
        }
        _ => {
            let _ = writeln!(err, "{line}");
        }
    }
}
