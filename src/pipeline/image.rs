//! One image's work in `stackctl build`: build → basic tests → content-tag values → push
//! (publish) → integration tests → content tags → manifest page, each step timed and
//! recorded in its [`ImageReport`]. A failed step ends the image's work; the report says
//! which. Through a buildkitd, "build" pushes by digest and "push" is the manifest PUT that
//! gives the tested digest its tag.
//!
//! The step order (`run_steps`) runs against small traits (`Builder`, `TestRunner`,
//! `Publisher`, `PageWriter`): [`super::services`] has the real ones (BuildKit, the registry,
//! containers, manifest pages); the unit tests (`image/tests.rs`) drive it with test doubles.

use super::platforms::Selection;
use crate::buildkit::BuildError;
use crate::containers::suite::{Outcome as TestOutcome, Suite, SuiteResult};
use crate::content_tags::publish::{Record, Rendered};
use crate::content_tags::TagTemplate;
use crate::credentials::CredentialStore;
use crate::plan::PlannedImage;
use crate::registry::RegistryClient;
use crate::report::{ArtifactDirs, ImageReport, ImageStep, TestCounts};
use crate::spec::Spec;
use anyhow::anyhow;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
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
    /// Image key → the manifest digest its children build FROM: set at the start for the
    /// images that do not rebuild (the digest their tag names), and when an image of the
    /// run has passed its basic tests (and, through an engine, been pushed).
    pub digests: Mutex<HashMap<String, String>>,
    /// References the registry check found (and the quarter-stable tags that exist), usable
    /// as `--cache-from` without pulling.
    pub existing: &'a HashSet<String>,
    pub test_timeout: Duration,
    pub cancel: CancellationToken,
    /// Set when BuildKit could not be reached during the run: the run then could not be
    /// done (a service error).
    pub service_error: Mutex<Option<String>>,
    /// The commit built (content tags' `{commit}`).
    pub commit: String,
    /// When the run started (content tags' `{date}`).
    pub build_time: chrono::DateTime<chrono::Utc>,
    /// `--platform`: build only these of each image's platforms (empty: all it declares).
    pub platforms: Vec<String>,
}

impl ImageJobContext<'_> {
    pub(crate) fn digest_of(&self, key: &str) -> Option<String> {
        let m = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key).cloned()
    }
}

/// Run every step of one image, built on the BuildKit `node`, and return its report (never
/// an error: failures are in it).
pub async fn run_image(
    ctx: &ImageJobContext<'_>,
    planned: &PlannedImage,
    node: &crate::buildkit::Client,
) -> ImageReport {
    let t0 = Instant::now();
    let mut report = ImageReport::started(&planned.key, &planned.reference);
    report.builder = Some(node.address().to_string());
    report.commit = Some(ctx.commit.clone()).filter(|c| !c.is_empty());
    let Some(image) = ctx.spec.image(&planned.key) else {
        report.fail(
            ImageStep::Build,
            format!("no image `{}` in the spec", planned.key),
        );
        report.finish(t0.elapsed());
        return report;
    };
    // The platforms it builds in this run, and whether this node can build them.
    let selection = super::platforms::select(image, &ctx.platforms).and_then(|s| {
        let addr = node.address().to_string();
        super::platforms::check_builder(&planned.key, &s, node.kind().is_engine(), &addr).map(|_| s)
    });
    match selection {
        Ok(selection) => {
            let parts = super::services::Real::new(ctx, planned, image, node, &selection);
            let job = ImageJob {
                key: &planned.key,
                reference: &planned.reference,
                repository: &image.image_name,
                push: ctx.push,
                integration_tests: image.integration_tests,
                content_tags: &image.tags,
                selection: &selection,
                integration_platforms: &image.integration_platforms,
                cancel: &ctx.cancel,
            };
            let run = RunState {
                digests: &ctx.digests,
                service_error: &ctx.service_error,
            };
            run_steps(&job, &parts.parts(), &run, &mut report).await;
        }
        Err(e) => report.fail(ImageStep::Build, e),
    }
    report.finish(t0.elapsed());
    report
}

/// What the steps know of one image (plain data; the services are the [`Parts`]).
pub(crate) struct ImageJob<'a> {
    pub key: &'a str,
    /// `<repository>:<tag>`, the tag the tested image gets.
    pub reference: &'a str,
    /// The repository, without a tag.
    pub repository: &'a str,
    /// Push the image (and then run integration tests, push content tags, write the page).
    pub push: bool,
    pub integration_tests: bool,
    /// The content tag templates (`tags:`).
    pub content_tags: &'a [TagTemplate],
    /// The platforms built in this run, and whether the build is split (`--platform`).
    pub selection: &'a Selection,
    /// The platforms the integration tests run on (`integration_platforms:`).
    pub integration_platforms: &'a [String],
    pub cancel: &'a CancellationToken,
}

/// What the images of a run share while they run.
pub(crate) struct RunState<'a> {
    /// Image key → the digest its children build FROM (see [`ImageJobContext::digests`]).
    pub digests: &'a Mutex<HashMap<String, String>>,
    /// The first "BuildKit cannot be reached" of the run (the run then could not be done).
    pub service_error: &'a Mutex<Option<String>>,
}

impl RunState<'_> {
    fn record_digest(&self, key: &str, digest: &str) {
        let mut m = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(key.to_string(), digest.to_string());
    }

    fn service_unavailable(&self, message: &str) {
        let mut first = self.service_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| message.to_string());
    }
}

/// A built image.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    /// The digest BuildKit pushed it by, without a tag (through a buildkitd); None when it
    /// is in the engine.
    pub pushed_digest: Option<String>,
    /// What the tests run: the image in the engine, or the pushed manifest by digest.
    pub test_ref: String,
}

/// Builds the image (BuildKit).
pub(crate) trait Builder {
    /// The parent digest the request's `BASE_TAG` names (recorded in the report, also when
    /// the build fails).
    fn parent_digest(&self) -> Option<String>;
    /// Build the image: it is then in the engine, or pushed by digest.
    async fn build(&self) -> Result<Built, BuildError>;
}

/// Runs what runs in containers of the image: its test suites, its content tags' commands.
pub(crate) trait TestRunner {
    /// Run `suite` against `image_ref`: one platform's manifest of a multi-platform build
    /// (`platform`: its log and JUnit file are that platform's), else the image itself.
    async fn run_suite(
        &self,
        suite: Suite,
        image_ref: &str,
        platform: Option<&str>,
    ) -> anyhow::Result<SuiteResult>;
    /// Run the templates' commands in `image_ref` and render the content tags.
    async fn content_tag_values(
        &self,
        image_ref: &str,
        templates: &[TagTemplate],
    ) -> anyhow::Result<Vec<Rendered>>;
}

/// The registry side (or the engine's push): reads a pushed image back, gives the tested
/// image its tag and its content tags.
pub(crate) trait Publisher {
    /// Give the tested image its tag: through an engine, the engine pushes it; through a
    /// buildkitd, a manifest PUT tags the tested digest. Returns the digest the tag names,
    /// read back.
    async fn publish(&self, built: &Built) -> anyhow::Result<String>;
    /// Each of `platforms`' manifest digest in the image BuildKit pushed as
    /// `<repository>@<digest>`, read back from the registry.
    async fn pushed_manifests(
        &self,
        digest: &str,
        platforms: &[String],
    ) -> anyhow::Result<Vec<(String, String)>>;
    /// Push the content tags for the tested `digest`: the records and the warnings (a tag
    /// kept on another digest).
    async fn content_tags(
        &self,
        digest: &str,
        tags: &[Rendered],
    ) -> anyhow::Result<(Vec<Record>, Vec<String>)>;
}

/// Writes the image's manifest page.
pub(crate) trait PageWriter {
    /// Write the page of the pushed image, with its content tags.
    async fn write_page(&self, content_tags: &[Record]) -> anyhow::Result<()>;
}

/// The services the steps run against.
pub(crate) struct Parts<'a, B, T, P, M> {
    pub builder: &'a B,
    pub tests: &'a T,
    pub publisher: &'a P,
    pub pages: &'a M,
}

/// The step order of one image. A failed step is recorded in `report` and ends the work;
/// no step that tags anything runs after a failure.
pub(crate) async fn run_steps<B: Builder, T: TestRunner, P: Publisher, M: PageWriter>(
    job: &ImageJob<'_>,
    parts: &Parts<'_, B, T, P, M>,
    run: &RunState<'_>,
    report: &mut ImageReport,
) {
    // An interrupt (SIGINT/SIGTERM) starts no step: the image is reported interrupted.
    if job.cancel.is_cancelled() {
        report.fail(ImageStep::Build, "interrupted before it started");
        return;
    }
    report.parent_digest = parts.builder.parent_digest();
    // The node went away during the build: the scheduler may build it again on another.
    let node_lost = std::cell::Cell::new(false);
    // An interrupt drops the build: that ends the Solve call (BuildKit cancels the solve
    // and its RUN steps) and the session.
    let built = report
        .run_step(ImageStep::Build, async {
            let build = tokio::select! {
                r = parts.builder.build() => r,
                _ = job.cancel.cancelled() => {
                    return Err(anyhow!("interrupted: the BuildKit solve was cancelled"));
                }
            };
            build.map_err(|e| match e {
                BuildError::Failed(m) => anyhow!(m),
                BuildError::NodeLost(m) => {
                    node_lost.set(true);
                    anyhow!(m)
                }
                BuildError::Unavailable(m) => {
                    run.service_unavailable(&m);
                    anyhow!(m)
                }
            })
        })
        .await;
    report.node_lost = node_lost.get();
    let Some(built) = built else { return };
    report.built = true;
    let test_ref = &built.test_ref;
    let platforms = &job.selection.platforms;
    // Each built platform's manifest in the pushed index (none: the builder's own platform).
    let manifests = match (&built.pushed_digest, platforms.is_empty()) {
        (Some(d), false) => match parts.publisher.pushed_manifests(d, platforms).await {
            Ok(m) => m,
            Err(e) => return report.fail(ImageStep::Build, format!("build failed: {e:#}")),
        },
        _ => vec![],
    };

    if job.cancel.is_cancelled() {
        report.fail(ImageStep::BasicTests, "interrupted: no later step was run");
        return;
    }
    // Basic tests, before the image gets its tag.
    let passed = if manifests.is_empty() {
        let basic = parts.tests.run_suite(Suite::Basic, test_ref, None).await;
        record_suite(report, ImageStep::BasicTests, basic)
    } else {
        let (repo, suite) = (job.repository, Suite::Basic);
        super::platforms::run_tests(parts.tests, repo, &manifests, suite, report).await
    };
    if !passed {
        return;
    }
    super::platforms::record_single(report, job.selection);
    if let Some(d) = &built.pushed_digest {
        // Children build FROM this digest, tagged or not.
        run.record_digest(job.key, d);
    }
    let native = super::platforms::native_ref(job.repository, &manifests, test_ref);
    let content_tags = super::content_tag_steps::compute_step(job, parts.tests, &native, report);
    let Some(content_tags) = content_tags.await else {
        return;
    };
    if job.selection.split {
        let on = super::platforms::split_integration_targets(job.integration_platforms, &manifests);
        if job.integration_tests && !on.is_empty() {
            let (repo, suite) = (job.repository, Suite::Integration);
            if !super::platforms::run_tests(parts.tests, repo, &on, suite, report).await {
                return;
            }
        }
        let digest = built.pushed_digest.as_deref();
        return super::platforms::await_merge(report, job.key, digest);
    }

    if job.push && job.cancel.is_cancelled() {
        report.fail(ImageStep::Push, "interrupted: nothing was pushed");
        return;
    }
    if job.push {
        let pushed = report
            .run_step(ImageStep::Push, async {
                // Dropped on an interrupt before its manifest is written: no tag is made.
                tokio::select! {
                    r = parts.publisher.publish(&built) => r,
                    _ = job.cancel.cancelled() => Err(anyhow!("interrupted: the push was stopped")),
                }
            })
            .await;
        let Some(digest) = pushed else { return };
        report.pushed = true;
        run.record_digest(job.key, &digest);
        report.digest = Some(digest);
        super::platforms::record_single(report, job.selection);

        if job.integration_tests {
            // On the spec's `integration_platforms`, else once on the native platform.
            let on: Vec<_> = manifests
                .iter()
                .filter(|(p, _)| job.integration_platforms.contains(p))
                .cloned()
                .collect();
            let passed = if on.is_empty() {
                let integ = parts
                    .tests
                    .run_suite(Suite::Integration, job.reference, None)
                    .await;
                record_suite(report, ImageStep::IntegrationTests, integ)
            } else {
                let (repo, suite) = (job.repository, Suite::Integration);
                super::platforms::run_tests(parts.tests, repo, &on, suite, report).await
            };
            if !passed {
                return;
            }
        }

        if !super::content_tag_steps::publish_step(parts.publisher, &content_tags, report).await {
            return;
        }

        // A failed page is recorded in the report by run_step; it is the last step.
        let content_tags = report.content_tags.clone();
        report
            .run_step(ImageStep::Page, parts.pages.write_page(&content_tags))
            .await;
    }
}

/// Record a suite's counts in the report, and its failure if it did not pass ("no tests"
/// passes). Returns whether the image's work goes on.
fn record_suite(
    report: &mut ImageReport,
    step: ImageStep,
    result: anyhow::Result<SuiteResult>,
) -> bool {
    let r = match result {
        Ok(r) => r,
        Err(e) => {
            report.fail(step, format!("{step} failed: {e:#}"));
            return false;
        }
    };
    report.step_took(step, Duration::from_secs_f64(r.seconds));
    let counts = TestCounts::of_suite(&r.counts, r.seconds);
    if step == ImageStep::IntegrationTests {
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

#[cfg(test)]
mod tests;
