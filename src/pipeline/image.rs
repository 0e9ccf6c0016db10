//! One image's work in `stackctl build`: build → basic tests → push → integration
//! tests → manifest page, each step timed and recorded in its
//! [`ImageReport`]. A failed step ends the image's work; the report says which.
//! Through a buildkitd, "build" pushes by digest and "push" is the manifest PUT that gives
//! the tested digest its tag.

use crate::buildkit::{self, Address, BuildError, BuildRequest, Progress, ProgressMode};
use crate::credentials::CredentialStore;
use crate::imagetest::{self, Outcome as TestOutcome, Suite, SuiteResult};
use crate::manifest_page::{self, PageOptions, RegistryAccess};
use crate::plan::PlannedImage;
use crate::registry::{ImageRef, RegistryClient};
use crate::report::{ArtifactDirs, ImageReport, Step, TestCounts};
use crate::spec::Spec;
use anyhow::anyhow;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What every image of a run shares.
pub struct ImageJobContext<'a> {
    pub spec: &'a Spec,
    pub registry: &'a RegistryClient,
    pub credentials: &'a CredentialStore,
    pub insecure_registries: &'a [String],
    pub dirs: &'a ArtifactDirs,
    /// Push images (and then run integration tests and write manifest pages).
    pub push: bool,
    /// The run's tag (`<prefix>-<branch>`).
    pub tag: String,
    /// The run's `<prefix>-stable` tag, a default cache source.
    pub stable_tag: String,
    /// Image key → the manifest digest its children build FROM: set at the start for the
    /// images that do not rebuild (the digest their tag names), and when an image of the
    /// run has passed its basic tests (and, through an engine, been pushed).
    pub digests: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// References the registry check found, usable as `--cache-from` without pulling.
    pub existing: &'a HashSet<String>,
    pub test_timeout: Duration,
    pub cancel: CancellationToken,
    /// Set when BuildKit could not be reached during the run: the run then exits 2.
    pub service_error: std::sync::Mutex<Option<String>>,
    /// The commit built (content tags' `{commit}`).
    pub commit: String,
    /// When the run started (content tags' `{date}`).
    pub build_time: chrono::DateTime<chrono::Utc>,
    /// `--platform`: build only these of each image's platforms (empty: all it declares).
    pub platforms: Vec<String>,
}

impl ImageJobContext<'_> {
    fn digest_of(&self, key: &str) -> Option<String> {
        let m = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key).cloned()
    }

    fn record_digest(&self, key: &str, digest: &str) {
        let mut m = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(key.to_string(), digest.to_string());
    }
}

/// Run every step of one image, built on the BuildKit `node`, and return its report (never
/// an error: failures are in it).
pub async fn run_image(
    ctx: &ImageJobContext<'_>,
    planned: &PlannedImage,
    node: &buildkit::Client,
) -> ImageReport {
    let t0 = Instant::now();
    let mut report = ImageReport::started(&planned.key, &planned.reference);
    report.builder = Some(node.address().to_string());
    report.commit = Some(ctx.commit.clone()).filter(|c| !c.is_empty());
    run_steps(ctx, planned, node, &mut report).await;
    report.finish(t0.elapsed());
    report
}

async fn run_steps(
    ctx: &ImageJobContext<'_>,
    planned: &PlannedImage,
    node: &buildkit::Client,
    report: &mut ImageReport,
) {
    let spec = ctx.spec;
    let Some(image) = spec.image(&planned.key) else {
        report.fail(
            Step::Build,
            format!("no image `{}` in the spec", planned.key),
        );
        return;
    };
    // An interrupt (SIGINT/SIGTERM) starts no step: the image is reported interrupted.
    if ctx.cancel.is_cancelled() {
        report.fail(Step::Build, "interrupted before it started");
        return;
    }
    let full = planned.reference.clone();
    let engine = match node.address() {
        Address::Engine(sock) => Some(sock.clone()),
        _ => None,
    };
    // Through a buildkitd (not an engine's BuildKit), BuildKit pushes the image itself,
    // without a tag (`push-by-digest`); the tests pull `<repository>@<digest>`, and only a
    // tested image gets its tag, by a manifest PUT. No tag ever has to be taken back. An
    // engine's BuildKit leaves the image in the engine, where the tests find it.
    let by_digest = !node.is_moby_worker();
    let selection = super::platforms::select(image, &ctx.platforms).and_then(|s| {
        let addr = node.address().to_string();
        super::platforms::check_builder(&planned.key, &s, !by_digest, &addr).map(|_| s)
    });
    let Ok(selection) = selection.map_err(|e| report.fail(Step::Build, e)) else {
        return;
    };

    // Cache sources, in order: the registry caches (this branch's, the quarter's stable
    // one, main's; a missing one is skipped by a buildkitd, so only through one), then the
    // image's own tag and its quarter-stable tag (inline cache) when they exist.
    let mut cache_from = if by_digest {
        image.cache.imports(&ctx.tag, &spec.tag_prefix)
    } else {
        vec![]
    };
    for r in [
        full.clone(),
        format!("{}:{}", image.image_name, ctx.stable_tag),
    ] {
        if ctx.existing.contains(&r) && !cache_from.contains(&r) {
            cache_from.push(r);
        }
    }
    // The exact parent: BASE_TAG (when stackctl sets it) names the parent's digest too.
    let mut build_args = planned.build_args.clone();
    if let Some(parent) = &image.depend_on {
        let digest = ctx.digest_of(parent);
        match (&digest, image.build_args.contains_key("BASE_TAG")) {
            (Some(d), false) => {
                build_args.insert("BASE_TAG".into(), format!("{}@{d}", ctx.tag));
                report.parent_digest = digest.clone();
            }
            (Some(_), true) => tracing::info!(
                "[{}] BASE_TAG is set in the spec: the parent {parent} is taken as it names it",
                planned.key
            ),
            (None, _) => tracing::info!(
                "[{}] the digest of the parent {parent} is not known (no registry check, or \
                 not pushed): built FROM its tag",
                planned.key
            ),
        }
    }
    let req = BuildRequest {
        label: planned.key.clone(),
        context: image.dir(spec),
        dockerfile: None,
        tags: vec![if by_digest {
            image.image_name.clone()
        } else {
            full.clone()
        }],
        build_args,
        target: None,
        platforms: selection.platforms.clone(),
        cache_from,
        no_cache: false,
        push: by_digest,
        push_by_digest: by_digest,
        cache_to: image.cache.export(&ctx.tag),
        credentials: ctx.credentials.clone(),
        log: Some(ctx.dirs.build_log(&full)),
    };
    // Concurrent builds share the terminal: their steps go to the build log only; the
    // run prints one line per image.
    let mut progress = Progress::new(ProgressMode::Quiet);
    // The node went away during the build: the scheduler may build it again on another.
    let node_lost = std::cell::Cell::new(false);
    // An interrupt drops the build: that ends the Solve call (BuildKit cancels the solve
    // and its RUN steps) and the session.
    let built = report
        .run_step(Step::Build, async {
            let build = tokio::select! {
                r = node.build(&req, &mut progress) => r,
                _ = ctx.cancel.cancelled() => {
                    return Err(anyhow!("interrupted: the BuildKit solve was cancelled"));
                }
            };
            let outcome = build.map_err(|e| match e {
                BuildError::Failed(m) => anyhow!(m),
                BuildError::NodeLost(m) => {
                    node_lost.set(true);
                    anyhow!(m)
                }
                BuildError::Unavailable(m) => {
                    let mut first = ctx.service_error.lock().unwrap_or_else(|p| p.into_inner());
                    first.get_or_insert_with(|| m.clone());
                    anyhow!(m)
                }
            })?;
            if by_digest && outcome.digest.is_none() {
                return Err(anyhow!(
                    "BuildKit at {} pushed {} but reported no digest",
                    node.address(),
                    image.image_name
                ));
            }
            Ok(outcome)
        })
        .await;
    report.node_lost = node_lost.get();
    let Some(outcome) = built else { return };
    report.built = true;
    tracing::info!(
        "[{}] built in {:.1}s ({} of {} steps cached); log: {}",
        planned.key,
        outcome.seconds,
        outcome.cached_steps,
        outcome.total_steps,
        ctx.dirs.build_log(&full).display()
    );
    // What the tests run: the image in the engine, or the pushed manifest by digest.
    let pushed_digest = outcome.digest.clone().filter(|_| by_digest);
    let test_ref = match &pushed_digest {
        Some(d) => format!("{}@{d}", image.image_name),
        None => full.clone(),
    };
    // Each built platform's manifest in the pushed index (none: the builder's own platform).
    let manifests = match (&pushed_digest, selection.platforms.is_empty()) {
        (Some(d), false) => {
            let read = super::platforms::pushed_manifests(
                ctx.registry,
                &image.image_name,
                d,
                &selection.platforms,
            );
            match read.await {
                Ok(m) => m,
                Err(e) => return report.fail(Step::Build, format!("build failed: {e:#}")),
            }
        }
        _ => vec![],
    };

    if ctx.cancel.is_cancelled() {
        report.fail(Step::BasicTests, "interrupted: no later step was run");
        return;
    }
    // Basic tests, before the image gets its tag.
    let passed = if manifests.is_empty() {
        let basic = run_suite(ctx, planned, &test_ref, Suite::Basic).await;
        record_suite(report, Step::BasicTests, basic)
    } else {
        let (repo, suite) = (&image.image_name, Suite::Basic);
        super::platforms::run_tests(ctx, planned, repo, &manifests, suite, report).await
    };
    if !passed {
        return;
    }
    super::platforms::record_single(report, &selection);
    if let Some(d) = &pushed_digest {
        // Children build FROM this digest, tagged or not.
        ctx.record_digest(&planned.key, d);
    }
    let native = super::platforms::native_ref(&image.image_name, &manifests, &test_ref);
    let Some(content_tags) =
        super::content_tag_steps::compute_step(ctx, &image.tags, &native, report).await
    else {
        return;
    };
    if selection.split {
        let on =
            super::platforms::split_integration_targets(&image.integration_platforms, &manifests);
        if image.integration_tests && !on.is_empty() {
            let (repo, suite) = (&image.image_name, Suite::Integration);
            if !super::platforms::run_tests(ctx, planned, repo, &on, suite, report).await {
                return;
            }
        }
        return super::platforms::await_merge(report, &planned.key, pushed_digest.as_deref());
    }

    if ctx.push && ctx.cancel.is_cancelled() {
        report.fail(Step::Push, "interrupted: nothing was pushed");
        return;
    }
    if ctx.push {
        let pushed = report
            .run_step(Step::Push, async {
                let push = async {
                    match (&engine, &pushed_digest) {
                    (_, Some(d)) => tag_tested(ctx.registry, &image.image_name, d, &full).await,
                    (Some(sock), None) => {
                        buildkit::push::push_from_engine(sock, &planned.image_ref, ctx.credentials).await
                    }
                    (None, None) => Err(anyhow!(
                        "BuildKit at {} is a Docker engine's, reached without the engine's API: \
                         it cannot push; reach it with docker:// (or docker-unix://, docker-tcp://)",
                        node.address()
                    )),
                    }
                };
                // Dropped on an interrupt before its manifest is written: no tag is made.
                tokio::select! {
                    r = push => r,
                    _ = ctx.cancel.cancelled() => Err(anyhow!("interrupted: the push was stopped")),
                }
            })
            .await;
        let Some(digest) = pushed else { return };
        report.pushed = true;
        ctx.record_digest(&planned.key, &digest);
        report.digest = Some(digest);
        super::platforms::record_single(report, &selection);

        if image.integration_tests {
            // On the spec's `integration_platforms`, else once on the native platform.
            let on: Vec<_> = manifests
                .iter()
                .filter(|(p, _)| image.integration_platforms.contains(p))
                .cloned()
                .collect();
            let passed = if on.is_empty() {
                let integ = run_suite(ctx, planned, &full, Suite::Integration).await;
                record_suite(report, Step::IntegrationTests, integ)
            } else {
                let (repo, suite) = (&image.image_name, Suite::Integration);
                super::platforms::run_tests(ctx, planned, repo, &on, suite, report).await
            };
            if !passed {
                return;
            }
        }

        if !super::content_tag_steps::publish_step(ctx, &image.image_name, &content_tags, report)
            .await
        {
            return;
        }

        let page_opts = PageOptions {
            out_dir: ctx.dirs.manifests(),
            wiki_dir: Some(ctx.dirs.wiki()),
            registry: RegistryAccess {
                credentials: ctx.credentials.clone(),
                insecure: ctx.insecure_registries.to_vec(),
            },
            timeout: ctx.test_timeout,
            cancel: ctx.cancel.clone(),
            content_tags: report.content_tags.clone(),
        };
        // A failed page is recorded in the report by run_step; it is the last step.
        report
            .run_step(
                Step::Manifest,
                manifest_page::write_page(spec, &planned.key, &full, &page_opts),
            )
            .await;
    }
}

/// The log and JUnit paths of an image's suite.
pub(super) fn suite_files(
    dirs: &ArtifactDirs,
    full: &str,
    suite: Suite,
) -> (std::path::PathBuf, std::path::PathBuf) {
    match suite {
        Suite::Basic => (dirs.basic_tests_log(full), dirs.basic_tests_junit(full)),
        Suite::Integration => (
            dirs.integration_tests_log(full),
            dirs.integration_tests_junit(full),
        ),
    }
}

async fn run_suite(
    ctx: &ImageJobContext<'_>,
    planned: &PlannedImage,
    image_ref: &str,
    suite: Suite,
) -> anyhow::Result<SuiteResult> {
    let (log, junit) = suite_files(ctx.dirs, &planned.reference, suite);
    let opts = imagetest::Options {
        timeout: ctx.test_timeout,
        log_file: Some(log),
        junit_file: Some(junit),
        cancel: ctx.cancel.clone(),
    };
    imagetest::run_suite(ctx.spec, &planned.key, image_ref, suite, &opts).await
}

/// Record a suite's counts in the report, and its failure if it did not pass ("no tests"
/// passes). Returns whether the image's work goes on.
fn record_suite(report: &mut ImageReport, step: Step, result: anyhow::Result<SuiteResult>) -> bool {
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            report.fail(step, format!("{step} failed: {e:#}"));
            return false;
        }
    };
    report.step_took(step, Duration::from_secs_f64(r.seconds));
    let counts = TestCounts::of_suite(&r.counts, r.seconds);
    if step == Step::IntegrationTests {
        report.tests.integration = Some(counts);
    } else {
        report.tests.basic = Some(counts);
    }
    match r.outcome {
        TestOutcome::Passed | TestOutcome::NoTests => true,
        TestOutcome::Failed | TestOutcome::CouldNotRun => {
            // The suite's message names the failing tests and their messages.
            report.fail(step, format!("{step} failed: {}", r.message));
            false
        }
    }
}

/// Give the tested image (`<repository>@<digest>`) its tag, read back before it is
/// reported: the tag must name the tested digest.
async fn tag_tested(
    client: &RegistryClient,
    repository: &str,
    digest: &str,
    full: &str,
) -> anyhow::Result<String> {
    let src = ImageRef::parse(&format!("{repository}@{digest}"))?;
    let dst = ImageRef::parse(full)?;
    client.tag_digest(&src, &dst, full).await
}
