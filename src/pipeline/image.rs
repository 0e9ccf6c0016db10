//! One image's work in `stackctl build`: build → basic tests → content-tag values → push
//! (publish) → integration tests → content tags → manifest page, each step timed and
//! recorded in its [`ImageReport`]. A failed step ends the image's work; the report says
//! which. Through a buildkitd, "build" pushes by digest and "push" is the manifest PUT that
//! gives the tested digest its tag.
//!
//! The step order (`run_steps`) runs against the small traits of [`super::steps`]
//! (`Builder`, `TestRunner`, `Publisher`, `PageWriter`): [`super::services`] has the real
//! ones (BuildKit, the registry, containers, manifest pages); the unit tests
//! (`image/tests.rs`) drive it with test doubles.

use super::content_tag_steps;
use super::platform_steps;
use super::platforms;
use super::steps::{Builder, ImageJob, PageWriter, Parts, Publisher, RunState, TestRunner};
use crate::buildkit::BuildError;
use crate::containers::suite::{Suite, SuiteResult, TestOutcome};
use crate::report::{ImageReport, ImageStep, TestCounts};
use anyhow::anyhow;
use std::time::Duration;

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
    // An unchanged rebuild keeps the tag it would replace: no push, page or history row.
    // Its children build FROM what the tag names.
    if let Some(d) = &built.unchanged {
        report.unchanged = true;
        report.digest = Some(d.clone());
        report.rebuilt_digest = built.pushed_digest.clone();
        if job.skip_unchanged {
            run.record_digest(job.key, d);
            return;
        }
    }
    // The page's facts of a digest already in the registry are gathered beside the tests
    // (its info commands need only the image), and dropped if the tests fail.
    let early = built
        .pushed_digest
        .as_deref()
        .filter(|_| job.push && !job.selection.split && built.unchanged.is_none());
    let gather = async {
        match early {
            Some(d) => Some(parts.pages.gather(d).await),
            None => None,
        }
    };
    tokio::pin!(gather);
    let mut facts = None;
    // Basic tests, before the image gets its tag.
    let passed = {
        let tests = async {
            if manifests.is_empty() {
                let basic = parts.tests.run_suite(Suite::Basic, test_ref, None).await;
                record_suite(report, ImageStep::BasicTests, basic)
            } else {
                let (repo, suite) = (job.repository, Suite::Basic);
                platform_steps::run_tests(parts.tests, repo, &manifests, suite, report).await
            }
        };
        tokio::pin!(tests);
        loop {
            tokio::select! {
                passed = &mut tests => break passed,
                f = &mut gather, if facts.is_none() => facts = Some(f),
            }
        }
    };
    if !passed {
        return;
    }
    platform_steps::record_single(report, job.selection);
    if let Some(d) = &built.unchanged {
        // Its platform manifests are this build's: one of them stands for it as before.
        run.record_digest(job.key, built.base_digest.as_deref().unwrap_or(d));
        return;
    }
    if let Some(d) = built.parent_of_children() {
        // Children build FROM this digest, tagged or not.
        run.record_digest(job.key, d);
    }
    let native = platforms::native_ref(job.repository, &manifests, test_ref);
    let content_tags = content_tag_steps::compute_step(job, parts.tests, &native, report);
    let (content_tags, facts) = match facts {
        Some(f) => (content_tags.await, f),
        None => tokio::join!(content_tags, &mut gather),
    };
    let Some(content_tags) = content_tags else {
        return;
    };
    if job.selection.split {
        let on = platforms::split_integration_targets(job.integration_platforms, &manifests);
        if job.integration_tests && !on.is_empty() {
            let (repo, suite) = (job.repository, Suite::Integration);
            if !platform_steps::run_tests(parts.tests, repo, &on, suite, report).await {
                return;
            }
        }
        let digest = built.pushed_digest.as_deref();
        return platform_steps::await_merge(report, job.key, digest);
    }

    if job.push && job.cancel.is_cancelled() {
        report.fail(ImageStep::Push, "interrupted: nothing was pushed");
        return;
    }
    let mut facts = facts;
    if job.push {
        // Through a buildkitd the comparison and the size budget come before the tag.
        if let Some(d) = &built.pushed_digest {
            if !review_step(parts.pages, d, &mut facts, report, false).await {
                return;
            }
        }
        // Through a buildkitd the tested image is signed before its tag names it.
        if let Some(d) = &built.pushed_digest {
            let mut children: Vec<String> = manifests.iter().map(|(_, d)| d.clone()).collect();
            children.extend(built.base_digest.clone());
            match parts.publisher.sign(d, &children).await {
                Ok(signed) => report.signed = signed,
                Err(e) => return report.fail(ImageStep::Push, format!("signing failed: {e:#}")),
            }
        }
        let t0 = std::time::Instant::now();
        let pushed = tokio::select! {
            r = parts.publisher.publish(&built) => Some(r),
            _ = job.cancel.cancelled() => None,
        };
        let pushed = match pushed {
            Some(r) => {
                report.step_took(ImageStep::Push, t0.elapsed());
                match r {
                    Ok(d) => d,
                    Err(e) => return report.fail(ImageStep::Push, format!("push failed: {e:#}")),
                }
            }
            // The interrupt dropped the push, maybe after its tag PUT was sent: what is
            // reported is what the registry holds.
            None => {
                let read = parts.publisher.read_back_tag(&built).await;
                report.step_took(ImageStep::Push, t0.elapsed());
                return interrupted_push(report, run, job.key, read);
            }
        };
        let digest = pushed;
        report.pushed = true;
        if built.pushed_digest.is_none() {
            // The engine's push gave the digest only now.
            match parts.publisher.sign(&digest, &[]).await {
                Ok(signed) => report.signed = signed,
                Err(e) => {
                    report.digest = Some(digest);
                    return report.fail(ImageStep::Push, format!("signing failed: {e:#}"));
                }
            }
        }
        if built.pushed_digest.is_none() {
            // Through the engine the size is known only once pushed, and so under its tag.
            facts = Some(parts.pages.gather(&digest).await);
            if !review_step(parts.pages, &digest, &mut facts, report, true).await {
                report.digest = Some(digest.clone());
                return;
            }
        }
        run.record_digest(
            job.key,
            built
                .base_digest
                .as_deref()
                .filter(|_| built.pushed_digest.as_deref() == Some(&digest))
                .unwrap_or(&digest),
        );
        report.digest = Some(digest);
        platform_steps::record_single(report, job.selection);

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
                platform_steps::run_tests(parts.tests, repo, &on, suite, report).await
            };
            if !passed {
                return;
            }
        }

        if !content_tag_steps::publish_step(parts.publisher, &content_tags, report).await {
            return;
        }

        // A failed page is recorded in the report by run_step; it is the last step.
        let content_tags = report.content_tags.clone();
        report
            .run_step(
                ImageStep::Page,
                parts.pages.write_page(&content_tags, facts),
            )
            .await;
    }
}

/// Compare the image with the one it replaces, check its size budget and attach its
/// inventories (`tagged`: the engine's push already gave it its tag). Returns whether the
/// image goes on.
async fn review_step<M: PageWriter>(
    pages: &M,
    digest: &str,
    facts: &mut Option<anyhow::Result<M::Facts>>,
    report: &mut ImageReport,
    tagged: bool,
) -> bool {
    let t0 = std::time::Instant::now();
    let review = pages.review(digest, facts).await;
    report.step_took(ImageStep::SizeBudget, t0.elapsed());
    report.changes = review.changes;
    report.warnings.extend(review.warnings);
    if !review.breaches.is_empty() {
        let what = format!("over its size budget: {}", review.breaches.join(" | "));
        if review.fail {
            let after = if tagged {
                " (its tag was already pushed: the engine's push is what gives the compressed size)"
            } else {
                "; not tagged"
            };
            report.fail(ImageStep::SizeBudget, format!("{what}{after}"));
            return false;
        }
        tracing::warn!("[{}] {what}", report.key);
        report.warnings.push(what);
    }
    match pages.attach_inventories(facts).await {
        Ok(d) => report.inventories = d,
        Err(e) => report
            .warnings
            .push(format!("the package inventories were not attached: {e:#}")),
    }
    true
}

/// An interrupted push, as the registry's read-back (`read`) says: the tag names the tested
/// image (pushed, no later step run), or it does not (not pushed; a PUT still in flight
/// may land, and a failed read-back says so).
fn interrupted_push(
    report: &mut ImageReport,
    run: &RunState<'_>,
    key: &str,
    read: anyhow::Result<Option<String>>,
) {
    match read {
        Ok(Some(d)) => {
            report.pushed = true;
            run.record_digest(key, &d);
            let message = format!(
                "interrupted during the push: the tag was written (read back: it names {d}); \
                 no later step was run"
            );
            report.digest = Some(d);
            report.fail(ImageStep::Push, message);
        }
        Ok(None) => report.fail(
            ImageStep::Push,
            "push failed: interrupted: the push was stopped; read back, the tag does not name \
             the tested image (a PUT still in flight may land later)",
        ),
        Err(e) => report.fail(
            ImageStep::Push,
            format!(
                "push failed: interrupted: the push was stopped; the tag could not be read \
                 back ({e:#}): it may name the tested image"
            ),
        ),
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
