//! The per-platform part of one image's steps: the tests run once per platform of a
//! multi-platform image, through the step order's `TestRunner`, folded into the image's
//! report, and the report's per-platform entries.

use super::platforms::Selection;
use super::steps::TestRunner;
use crate::containers::suite::{Suite, SuiteResult, TestOutcome};
use crate::report::{ImageReport, ImageStep, PlatformReport, TestCounts};
use crate::spec::platform::Platform;
use std::time::Instant;

/// Run `suite` once per platform, each in a container of that platform's manifest
/// (`<repository>@<digest>`; the engine runs a foreign one through qemu-user-static's
/// binfmt handler), concurrently. The results go into `report.platforms` and the image's
/// counts (summed, failures prefixed with the platform); the image passes only if every
/// platform passed. Returns whether it goes on.
pub(crate) async fn run_tests(
    tests: &impl TestRunner,
    repository: &str,
    manifests: &[(Platform, String)],
    suite: Suite,
    report: &mut ImageReport,
) -> bool {
    let step = match suite {
        Suite::Basic => ImageStep::BasicTests,
        Suite::Integration => ImageStep::IntegrationTests,
    };
    let t0 = Instant::now();
    let runs = manifests.iter().map(|(p, d)| async move {
        let image_ref = format!("{repository}@{d}");
        tests.run_suite(suite, &image_ref, Some(p)).await
    });
    let results = futures::future::join_all(runs).await;
    report.step_took(step, t0.elapsed());

    let mut total = TestCounts::default();
    let mut failed: Vec<String> = vec![];
    for ((p, d), r) in manifests.iter().zip(results) {
        let (counts, ok, why) = match r {
            Ok(r) => {
                let counts = counts_of(&r, p);
                let ok = matches!(r.outcome, TestOutcome::Passed | TestOutcome::NoTests);
                (Some(counts), ok, r.message)
            }
            Err(e) => (None, false, format!("{e:#}")),
        };
        if let Some(c) = &counts {
            total.passed += c.passed;
            total.failed += c.failed;
            total.skipped += c.skipped;
            total.seconds = total.seconds.max(c.seconds);
            total.failures.extend(c.failures.iter().cloned());
        }
        if !ok {
            failed.push(format!("{p}: {why}"));
        }
        let entry = platform_entry(report, p);
        entry.digest = Some(d.clone());
        match suite {
            Suite::Basic => {
                entry.basic = counts;
                entry.success = ok;
            }
            Suite::Integration => entry.success &= ok,
        }
    }
    match suite {
        Suite::Basic => report.tests.basic = Some(total),
        Suite::Integration => report.tests.integration = Some(total),
    }
    if failed.is_empty() {
        return true;
    }
    report.fail(
        step,
        format!(
            "{step} failed on {} of {} platforms: {}",
            failed.len(),
            manifests.len(),
            failed.join("; ")
        ),
    );
    false
}

/// The report's entry for platform `p`, made when missing.
fn platform_entry<'a>(report: &'a mut ImageReport, p: &Platform) -> &'a mut PlatformReport {
    let name = p.to_string();
    let i = match report.platforms.iter().position(|e| e.platform == name) {
        Some(i) => i,
        None => {
            report.platforms.push(PlatformReport {
                platform: name,
                digest: None,
                success: false,
                basic: None,
            });
            report.platforms.len() - 1
        }
    };
    &mut report.platforms[i]
}

/// One platform's image through an engine's BuildKit (one declared platform): tested the
/// usual way; its entry is recorded from the image's own results (the digest once pushed).
pub fn record_single(report: &mut ImageReport, sel: &Selection) {
    if let [p] = sel.platforms.as_slice() {
        let basic = report.tests.basic.clone();
        let digest = report.digest.clone();
        let e = platform_entry(report, p);
        e.success = true;
        e.basic = basic;
        e.digest = e.digest.clone().or(digest);
    }
}

/// A split build's image that passed its tests: pushed by digest, no tag; it waits for
/// `stackctl merge`, which reads `awaiting_merge` and `platforms` from its artifact.
pub fn await_merge(report: &mut ImageReport, key: &str, digest: Option<&str>) {
    report.awaiting_merge = true;
    report.digest = digest.map(str::to_string);
    tracing::info!(
        "[{key}] split build: pushed by digest ({}), no tag; waiting for `stackctl merge`",
        digest.unwrap_or("?")
    );
}

/// One suite's counts, failures prefixed with the platform.
fn counts_of(r: &SuiteResult, p: &Platform) -> TestCounts {
    let mut counts = TestCounts::of_suite(&r.counts, (r.seconds * 1000.0).round() / 1000.0);
    for f in &mut counts.failures {
        f.name = format!("[{p}] {}", f.name);
    }
    counts
}
