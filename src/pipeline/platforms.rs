//! The per-platform part of one image's work (issue 13), kept apart from the step order
//! in [`super::image`]: which platforms an image builds in this run (its `platforms:`,
//! narrowed by `--platform`), whether the builder can, each platform's manifest in the
//! pushed index, and the tests run once per platform, folded into the image's report.

use super::image::{ImageJobContext, TestRunner};
use crate::containers::suite::{self, Outcome as TestOutcome, Suite, SuiteResult};
use crate::plan::PlannedImage;
use crate::registry::index::Platform;
use crate::registry::{ImageRef, RegistryClient};
use crate::report::{ImageReport, ImageStep, PlatformReport, TestCounts};
use crate::spec::{platform, ImageSpec};
use anyhow::{anyhow, Context as _};
use std::time::Instant;

/// The platforms one image builds in this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Passed to BuildKit; empty: the builder's own platform (nothing declared).
    pub platforms: Vec<String>,
    /// `--platform` named only some of the image's platforms: the image is pushed by
    /// digest and tested, and gets no tag (it waits for `stackctl merge`).
    pub split: bool,
}

/// The platforms of `image` this run builds: all it declares, or those of `wanted`
/// (`--platform`). An error names the image and what it declares.
pub fn select(image: &ImageSpec, wanted: &[String]) -> Result<Selection, String> {
    if wanted.is_empty() {
        return Ok(Selection {
            platforms: image.platforms.clone(),
            split: false,
        });
    }
    if image.platforms.is_empty() {
        return Err(format!(
            "--platform {}: image `{}` declares no `platforms:` in the spec (declare them for \
             the stack or the image, so that a split build knows what the merge must find)",
            wanted.join(","),
            image.key
        ));
    }
    let platforms: Vec<String> = image
        .platforms
        .iter()
        .filter(|p| wanted.contains(p))
        .cloned()
        .collect();
    if platforms.is_empty() {
        return Err(format!(
            "--platform {}: image `{}` is not built for it (its platforms: {})",
            wanted.join(","),
            image.key,
            image.platforms.join(", ")
        ));
    }
    Ok(Selection {
        split: platforms.len() < image.platforms.len(),
        platforms,
    })
}

/// Whether the builder can build `sel`: the engine's v0.8 worker (moby exporter) loads
/// one platform's image into the engine and cannot push by digest, so more than one
/// platform, or a split build, needs a buildkitd. The message names the alternative.
pub fn check_builder(
    key: &str,
    sel: &Selection,
    moby_worker: bool,
    address: &str,
) -> Result<(), String> {
    if !moby_worker {
        return Ok(());
    }
    if sel.platforms.len() > 1 {
        return Err(format!(
            "image `{key}` is built for {} platforms ({}): the Docker engine's BuildKit at \
             {address} builds one platform into the engine and cannot push an index; use a \
             buildkitd: --buildkit tcp://HOST:PORT (or unix:///run/buildkit/buildkitd.sock)",
            sel.platforms.len(),
            sel.platforms.join(", ")
        ));
    }
    if sel.split {
        return Err(format!(
            "image `{key}`: a split build (--platform {}) pushes by digest without a tag, which \
             the Docker engine's BuildKit at {address} cannot; use a buildkitd: --buildkit \
             tcp://HOST:PORT (or unix:///run/buildkit/buildkitd.sock)",
            sel.platforms.join(",")
        ));
    }
    Ok(())
}

/// Each wanted platform's image manifest digest in the pushed `repository@digest`: the
/// index's entries, or the manifest itself when one platform was built. Read back from the
/// registry, so that what is reported is what is there.
pub async fn pushed_manifests(
    registry: &RegistryClient,
    repository: &str,
    digest: &str,
    wanted: &[String],
) -> anyhow::Result<Vec<(String, String)>> {
    let r = ImageRef::parse(&format!("{repository}@{digest}"))?;
    let m = registry
        .get_manifest(&r)
        .await?
        .with_context(|| format!("{r}: pushed by BuildKit but not found in the registry"))?;
    let is_index = m.media_type == crate::registry::client::OCI_INDEX
        || m.media_type == crate::registry::client::DOCKER_MANIFEST_LIST;
    if !is_index {
        return match wanted {
            [one] => Ok(vec![(one.clone(), m.digest)]),
            _ => Err(anyhow!(
                "{r} is one image manifest ({}), not an index of {}",
                m.media_type,
                wanted.join(", ")
            )),
        };
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        digest: String,
        platform: Option<Platform>,
    }
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Entry>,
    }
    let index: Index =
        serde_json::from_slice(&m.bytes).with_context(|| format!("{r}: the index is not JSON"))?;
    let mut out = vec![];
    for p in wanted {
        let want: Platform = p.parse().map_err(|e: String| anyhow!(e))?;
        let found = index
            .manifests
            .iter()
            .find(|e| e.platform.as_ref().is_some_and(|q| q.is(&want)))
            .with_context(|| {
                format!(
                    "{r}: the pushed index has no manifest for {p} (it lists: {})",
                    index
                        .manifests
                        .iter()
                        .map(|e| e.platform.as_ref().map_or("?/?".into(), |q| q.to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        out.push((p.clone(), found.digest.clone()));
    }
    Ok(out)
}

/// Run `suite` once per platform, each in a container of that platform's manifest
/// (`<repository>@<digest>`; the engine runs a foreign one through qemu-user-static's
/// binfmt handler), concurrently. The results go into `report.platforms` and the image's
/// counts (summed, failures prefixed with the platform); the image passes only if every
/// platform passed. Returns whether it goes on.
pub(crate) async fn run_tests(
    tests: &impl TestRunner,
    repository: &str,
    manifests: &[(String, String)],
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

/// One platform's run of `suite` in `image_ref` (the real [`TestRunner`]'s): its log and
/// JUnit file carry the platform in their names, and the JUnit suite is named
/// `<suite> <platform>`.
pub(crate) async fn run_platform_suite(
    ctx: &ImageJobContext<'_>,
    planned: &PlannedImage,
    image_ref: &str,
    suite: Suite,
    p: &str,
) -> anyhow::Result<SuiteResult> {
    let part = platform::file_part(p);
    let (log, junit) = ctx
        .dirs
        .suite_files(&planned.reference, &suite.to_string(), Some(&part));
    let opts = suite::Options {
        timeout: ctx.test_timeout,
        log_file: Some(log),
        junit_file: Some(junit),
        junit_suite_name: Some(format!("{suite} {p}")),
        cancel: ctx.cancel.clone(),
    };
    suite::run_suite(ctx.spec, &planned.key, image_ref, suite, &opts).await
}

/// The report's entry for platform `p`, made when missing.
fn platform_entry<'a>(report: &'a mut ImageReport, p: &str) -> &'a mut PlatformReport {
    let i = match report.platforms.iter().position(|e| e.platform == p) {
        Some(i) => i,
        None => {
            report.platforms.push(PlatformReport {
                platform: p.to_string(),
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

/// What content tags are computed in: the native platform's manifest of a multi-platform
/// image (else its first platform's, when it is not built for this machine), or `test_ref`.
pub fn native_ref(repository: &str, manifests: &[(String, String)], test_ref: &str) -> String {
    let native = platform::native();
    match manifests
        .iter()
        .find(|(p, _)| *p == native)
        .or(manifests.first())
    {
        Some((_, d)) => format!("{repository}@{d}"),
        None => test_ref.to_string(),
    }
}

/// Where a split build runs the integration tests (no tag to run them against): on the
/// spec's `integration_platforms` built in this run (none built here: they run on the
/// runner that builds them), else once, on the native platform's manifest, or the first
/// platform's when this run does not build the native one.
pub fn split_integration_targets(
    integration_platforms: &[String],
    manifests: &[(String, String)],
) -> Vec<(String, String)> {
    if !integration_platforms.is_empty() {
        return manifests
            .iter()
            .filter(|(p, _)| integration_platforms.contains(p))
            .cloned()
            .collect();
    }
    let native = platform::native();
    manifests
        .iter()
        .find(|(p, _)| *p == native)
        .or(manifests.first())
        .into_iter()
        .cloned()
        .collect()
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
fn counts_of(r: &SuiteResult, p: &str) -> TestCounts {
    let mut counts = TestCounts::of_suite(&r.counts, (r.seconds * 1000.0).round() / 1000.0);
    for f in &mut counts.failures {
        f.name = format!("[{p}] {}", f.name);
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(platforms: &[&str]) -> ImageSpec {
        let text = "tag: {prefix: \"1\"}\nimages:\n  base:\n    image_name: r/base\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images/base")).unwrap();
        std::fs::write(dir.path().join("images/base/Dockerfile"), "FROM scratch\n").unwrap();
        let spec = crate::spec::Spec::from_str_at(text, &dir.path().join("spec.yml")).unwrap();
        let mut i = spec.images["base"].clone();
        i.platforms = platforms.iter().map(|s| s.to_string()).collect();
        i
    }

    #[test]
    fn selections() {
        let both = image(&["linux/amd64", "linux/arm64"]);
        let s = |w: &[&str]| select(&both, &w.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&[]).unwrap().platforms, ["linux/amd64", "linux/arm64"]);
        assert!(!s(&[]).unwrap().split);
        let arm = s(&["linux/arm64"]).unwrap();
        assert_eq!(
            (arm.platforms.as_slice(), arm.split),
            (&["linux/arm64".to_string()][..], true)
        );
        assert!(!s(&["linux/arm64", "linux/amd64"]).unwrap().split);
        let e = s(&["linux/s390x"]).unwrap_err();
        assert!(
            e.contains(
                "image `base` is not built for it (its platforms: linux/amd64, linux/arm64)"
            ),
            "{e}"
        );
        let e = select(&image(&[]), &["linux/arm64".into()]).unwrap_err();
        assert!(e.contains("declares no `platforms:`"), "{e}");
    }

    #[test]
    fn the_engine_builds_one_platform() {
        let two = Selection {
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            split: false,
        };
        let e =
            check_builder("base", &two, true, "docker-unix:///var/run/docker.sock").unwrap_err();
        assert!(e.contains("--buildkit tcp://"), "{e}");
        assert!(check_builder("base", &two, false, "tcp://x:1").is_ok());
        let split = Selection {
            platforms: vec!["linux/arm64".into()],
            split: true,
        };
        assert!(check_builder("base", &split, true, "docker")
            .unwrap_err()
            .contains("split build"));
        let one = Selection {
            platforms: vec!["linux/arm64".into()],
            split: false,
        };
        assert!(check_builder("base", &one, true, "docker").is_ok());
    }

    #[test]
    fn content_tags_run_on_the_native_platform() {
        let native = platform::native();
        let m = vec![
            ("linux/s390x".to_string(), "sha256:1".to_string()),
            (native, "sha256:2".to_string()),
        ];
        assert_eq!(native_ref("r/x", &m, "r/x@sha256:i"), "r/x@sha256:2");
        assert_eq!(native_ref("r/x", &m[..1], "r/x@sha256:i"), "r/x@sha256:1");
        assert_eq!(native_ref("r/x", &[], "r/x@sha256:i"), "r/x@sha256:i");
    }

    #[test]
    fn a_split_builds_integration_tests() {
        let native = platform::native();
        let m = |ps: &[&str]| -> Vec<(String, String)> {
            ps.iter()
                .map(|p| (p.to_string(), format!("sha256:{p}")))
                .collect()
        };
        let both = m(&["linux/s390x", &native]);
        assert_eq!(split_integration_targets(&[], &both), m(&[&native]));
        assert_eq!(split_integration_targets(&[], &both[..1]), both[..1]);
        let on = vec!["linux/s390x".to_string()];
        assert_eq!(split_integration_targets(&on, &both), both[..1]);
        assert!(split_integration_targets(&on, &both[1..]).is_empty());
    }

    #[test]
    fn index_entries() {
        let is = |entry: &str, wanted: &str| {
            serde_json::from_str::<Platform>(entry)
                .unwrap()
                .is(&wanted.parse().unwrap())
        };
        assert!(is(
            r#"{"os":"linux","architecture":"arm64"}"#,
            "linux/arm64"
        ));
        assert!(is(
            r#"{"os":"linux","architecture":"arm64"}"#,
            "linux/arm64/v8"
        ));
        assert!(is(
            r#"{"os":"linux","architecture":"arm","variant":"v7"}"#,
            "linux/arm/v7"
        ));
        assert!(!is(
            r#"{"os":"linux","architecture":"arm","variant":"v6"}"#,
            "linux/arm/v7"
        ));
        assert!(!is(
            r#"{"os":"unknown","architecture":"unknown"}"#,
            "linux/amd64"
        ));
    }
}
