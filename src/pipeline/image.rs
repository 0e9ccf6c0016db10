//! One image's work in `stackctl build`: build → basic tests → push → integration
//! tests → manifest page, each step timed and recorded in its
//! [`ImageReport`]. A failed step ends the image's work; the report says which.

use crate::buildkit::{self, Address, BuildError, BuildRequest, Progress, ProgressMode};
use crate::credentials::CredentialStore;
use crate::imagetest::{self, Outcome as TestOutcome, Suite, SuiteResult};
use crate::manifest_page::{self, PageOptions, RegistryAccess};
use crate::plan::PlannedImage;
use crate::registry::{ImageRef, RegistryClient};
use crate::report::{ArtifactDirs, ImageReport, Step, TestCounts, TestFailure};
use crate::spec::Spec;
use anyhow::{anyhow, Context as _};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What every image of a run shares.
pub struct ImageJobContext<'a> {
    pub spec: &'a Spec,
    pub buildkit: &'a buildkit::Client,
    pub registry: &'a RegistryClient,
    pub credentials: &'a CredentialStore,
    pub insecure_registries: &'a [String],
    pub dirs: &'a ArtifactDirs,
    /// Push images (and then run integration tests and write manifest pages).
    pub push: bool,
    /// The run's `<prefix>-stable` tag, a default cache source.
    pub stable_tag: String,
    /// References the registry check found, usable as `--cache-from` without pulling.
    pub existing: &'a HashSet<String>,
    pub test_timeout: Duration,
    pub cancel: CancellationToken,
    /// Set when BuildKit could not be reached during the run: the run then exits 2.
    pub service_error: std::sync::Mutex<Option<String>>,
}

/// Run every step of one image and return its report (never an error: failures are in it).
pub async fn run_image(ctx: &ImageJobContext<'_>, planned: &PlannedImage) -> ImageReport {
    let t0 = Instant::now();
    let mut report = ImageReport::started(&planned.key, &planned.reference);
    run_steps(ctx, planned, &mut report).await;
    report.finish(t0.elapsed());
    report
}

async fn run_steps(ctx: &ImageJobContext<'_>, planned: &PlannedImage, report: &mut ImageReport) {
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
    let engine = match ctx.buildkit.address() {
        Address::Engine(sock) => Some(sock.clone()),
        _ => None,
    };
    // Through a buildkitd (not an engine's BuildKit), BuildKit pushes the image itself; the
    // tests then need it in a registry, so it goes to a staging tag first and is retagged (a
    // few requests, no pull) to the real tag only after its basic tests passed. An engine's
    // BuildKit leaves the image in the engine, where the tests find it.
    let staging = (!ctx.buildkit.is_moby_worker()).then(|| format!("{full}-untested"));
    let build_ref = staging.clone().unwrap_or_else(|| full.clone());

    // The image's own tag and its quarter-stable tag serve as cache when they exist.
    let mut cache_from = vec![];
    for r in [
        full.clone(),
        format!("{}:{}", image.image_name, ctx.stable_tag),
    ] {
        if ctx.existing.contains(&r) {
            cache_from.push(r);
        }
    }
    let req = BuildRequest {
        label: planned.key.clone(),
        context: image.dir(spec),
        dockerfile: None,
        tags: vec![build_ref.clone()],
        build_args: planned.build_args.clone(),
        target: None,
        platforms: vec![],
        cache_from,
        no_cache: false,
        push: staging.is_some(),
        credentials: ctx.credentials.clone(),
        log: Some(ctx.dirs.build_log(&full)),
    };
    // Concurrent builds share the terminal: their steps go to the build log only; the
    // run prints one line per image.
    let mut progress = Progress::new(ProgressMode::Quiet);
    // An interrupt drops the build: that ends the Solve call (BuildKit cancels the solve
    // and its RUN steps) and the session.
    let built = report
        .run_step(Step::Build, async {
            let build = tokio::select! {
                r = ctx.buildkit.build(&req, &mut progress) => r,
                _ = ctx.cancel.cancelled() => {
                    return Err(anyhow!("interrupted: the BuildKit solve was cancelled"));
                }
            };
            build.map_err(|e| match e {
                BuildError::Failed(m) => anyhow!(m),
                BuildError::Unavailable(m) => {
                    let mut first = ctx.service_error.lock().unwrap_or_else(|p| p.into_inner());
                    first.get_or_insert_with(|| m.clone());
                    anyhow!(m)
                }
            })
        })
        .await;
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

    if ctx.cancel.is_cancelled() {
        report.fail(Step::BasicTests, "interrupted: no later step was run");
        return;
    }
    // Basic tests, before anything is pushed under the real tag.
    let basic = run_suite(ctx, planned, &build_ref, Suite::Basic).await;
    let passed = record_suite(report, Step::BasicTests, basic);
    if let (Some(staging), false) = (&staging, ctx.push && passed) {
        // Nothing goes under the real tag: the staging tag has served its purpose.
        drop_tag(ctx.registry, staging).await;
    }
    if !passed {
        return;
    }

    if ctx.push && ctx.cancel.is_cancelled() {
        report.fail(Step::Push, "interrupted: nothing was pushed");
        return;
    }
    if ctx.push {
        let pushed = report
            .run_step(Step::Push, async {
                let push = async {
                    match (&engine, &staging) {
                    (Some(sock), _) => {
                        buildkit::push::push_from_engine(sock, &full, ctx.credentials).await
                    }
                    (None, Some(staging)) => promote_staging(ctx.registry, staging, &full).await,
                    (None, None) => Err(anyhow!(
                        "BuildKit at {} is a Docker engine's, reached without the engine's API: \
                         it cannot push; reach it with docker:// (or docker-unix://, docker-tcp://)",
                        ctx.buildkit.address()
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
        report.digest = Some(digest);

        if image.integration_tests {
            let integ = run_suite(ctx, planned, &full, Suite::Integration).await;
            if !record_suite(report, Step::IntegrationTests, integ) {
                return;
            }
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

async fn run_suite(
    ctx: &ImageJobContext<'_>,
    planned: &PlannedImage,
    image_ref: &str,
    suite: Suite,
) -> anyhow::Result<SuiteResult> {
    let full = &planned.reference;
    let (log, junit) = match suite {
        Suite::Basic => (
            ctx.dirs.basic_tests_log(full),
            ctx.dirs.basic_tests_junit(full),
        ),
        Suite::Integration => (
            ctx.dirs.integration_tests_log(full),
            ctx.dirs.integration_tests_junit(full),
        ),
    };
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
    let counts = TestCounts {
        passed: r.passed,
        failed: r.failed + r.errors,
        skipped: r.skipped,
        seconds: r.seconds,
        failures: r
            .failures
            .iter()
            .map(|f| TestFailure {
                name: f.name.clone(),
                message: f.message.clone(),
            })
            .collect(),
    };
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

/// Give the tested image its real tag (a manifest PUT, no blob moves) and drop the staging
/// tag where the registry allows it.
async fn promote_staging(
    client: &RegistryClient,
    staging: &str,
    full: &str,
) -> anyhow::Result<String> {
    let src = ImageRef::parse(staging)?;
    let dst = ImageRef::parse(full)?;
    let report = client
        .retag(&src, &dst)
        .await
        .with_context(|| format!("retagging {staging} as {full}"))?;
    drop_tag(client, staging).await;
    Ok(report.digest)
}

/// Delete a staging tag; a registry that refuses (GHCR, Distribution 2.8) gets a warning.
async fn drop_tag(client: &RegistryClient, reference: &str) {
    let result = match ImageRef::parse(reference) {
        Ok(r) => client.delete_tag(&r).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(Ok(())) => {}
        Ok(Err(why)) | Err(why) => tracing::warn!("{reference} stays in the registry: {why}"),
    }
}
