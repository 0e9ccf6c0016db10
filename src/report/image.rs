//! One started image's result, written to `artifacts/<safe name>.yaml`.
//!
//! The per-image work of `stackctl build` fills an [`ImageReport`] as it goes
//! (each step's time, the test counts, the digest) and returns it; the
//! scheduler reads [`ImageOutcome::succeeded`] from it, the postwork writes it.

use super::dirs::{with_path, ArtifactDirs};
use crate::containers::suite::JunitReport;
use crate::report::outcome::ImageOutcome;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The steps of one image, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageStep {
    Build,
    BasicTests,
    /// The comparison with the image it replaces, and its size budget (`size_budget:`).
    SizeBudget,
    Push,
    IntegrationTests,
    /// Content tags (`tags:`): computed after the basic tests, pushed after the last test.
    ContentTags,
    /// The image's manifest page (and its wiki copy) is written.
    #[serde(rename = "manifest")]
    Page,
    Prune,
}

impl ImageStep {
    /// The name used in artifacts and messages (`basic-tests`).
    pub fn name(self) -> &'static str {
        match self {
            ImageStep::Build => "build",
            ImageStep::BasicTests => "basic-tests",
            ImageStep::SizeBudget => "size-budget",
            ImageStep::Push => "push",
            ImageStep::IntegrationTests => "integration-tests",
            ImageStep::ContentTags => "content-tags",
            ImageStep::Page => "manifest",
            ImageStep::Prune => "prune",
        }
    }
}

impl std::fmt::Display for ImageStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed test: its id (`test/test_x.py::test_y`) and message, as the JUnit report gave it.
pub use crate::containers::suite::TestFailure;

/// The counts of one test suite (from pytest's JUnit XML).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestCounts {
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    /// How long the suite took, in seconds (millisecond precision).
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<TestFailure>,
}

impl TestCounts {
    /// The counts of a suite's JUnit report that took `seconds` (errors counted with failed).
    pub fn of_suite(junit: &JunitReport, seconds: f64) -> Self {
        TestCounts {
            passed: junit.passed,
            failed: junit.failed_or_errored(),
            skipped: junit.skipped,
            seconds,
            failures: junit.failures.clone(),
        }
    }

    /// `3 passed, 1 failed, 0 skipped`.
    pub fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

/// The test results of one image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TestResults {
    pub basic: Option<TestCounts>,
    pub integration: Option<TestCounts>,
}

/// One platform's result in a multi-platform build (or a build with `--platform`): what
/// `stackctl merge` reads to put an image's index together from split builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformReport {
    /// `os/arch[/variant]`, e.g. `linux/arm64`.
    pub platform: String,
    /// That platform's image manifest in the image's repository (`sha256:...`), once pushed.
    pub digest: Option<String>,
    /// Whether this platform's basic tests passed.
    pub success: bool,
    /// This platform's basic test counts, when they ran.
    pub basic: Option<TestCounts>,
}

/// How long one step took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTime {
    pub step: ImageStep,
    pub seconds: f64,
}

/// One started image's result: the content of `artifacts/<safe name>.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageReport {
    /// The image's key in the spec.
    pub key: String,
    /// The full image name with its tag.
    pub image: String,
    /// Whether every step ran and passed.
    pub success: bool,
    /// One line for people: what happened, or what failed and why.
    pub message: String,
    /// Whether the image was built.
    pub built: bool,
    /// Whether the image was pushed to its registry.
    pub pushed: bool,
    /// Rebuilt, and its platform manifests are those its tag already named: the tag was
    /// left as it was (`digest` is what it names), with no new page or history row.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
    /// An unchanged rebuild's own digest, pushed without a tag (an index's digest may
    /// differ from the tag's by its provenance alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuilt_digest: Option<String>,
    /// The step that failed, if one did.
    pub failed_step: Option<ImageStep>,
    /// The pushed image's digest: for a multi-platform build, the index's (what the tag
    /// names); each platform's manifest is in `platforms`.
    pub digest: Option<String>,
    /// The full git commit the run built, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Each built platform's manifest digest and basic test result, for a build with declared
    /// platforms or `--platform` (empty for a build of the builder's own platform).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformReport>,
    /// A split build's image (`--platform` named only some of its platforms) that passed:
    /// pushed by digest, untagged, waiting for `stackctl merge`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_merge: bool,
    /// The digest of the parent image this one was built FROM (`BASE_TAG=<tag>@<digest>`):
    /// the parent built and tested in this run, or the one its tag named when the run
    /// started. None for a root image, or when the parent's digest was not known.
    pub parent_digest: Option<String>,
    /// The external images it was built from (its Dockerfile's `FROM`s and `COPY --from`s
    /// outside the stack), with the digest each named when it was built.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bases: Vec<crate::bases::Base>,
    /// The time of each step that ran, in order.
    pub steps: Vec<StepTime>,
    /// The whole image's time, in seconds.
    pub seconds: f64,
    pub tests: TestResults,
    /// Bytes the prune step reclaimed (images with `prune: true`).
    pub reclaimed_bytes: Option<u64>,
    /// The digests signed (cosign's `.sig` tags) before the image got its tag: the pushed
    /// digest and each platform's manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signed: Vec<String>,
    /// What changed since the image it replaces (sizes, layers, packages per platform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<crate::changes::Changes>,
    /// The package inventories attached to its platform manifests (their digests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventories: Vec<String>,
    /// The content tags (`tags:` in the spec): which tag names which digest, and what the
    /// build did (created, unchanged, kept on another digest, moved).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content_tags: Vec<crate::content_tags::publish::ContentTag>,
    /// What did not fail the image but needs a look (a content tag kept on another digest).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The BuildKit node that built it (or last tried to), e.g. `tcp://buildkitd-1:1234 (TLS)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<String>,
    /// BuildKit nodes lost during its build, before it was built again on `builder`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost_builders: Vec<String>,
    /// This attempt failed because its node was lost (the scheduler may run it again).
    #[serde(skip)]
    pub node_lost: bool,
}

/// Seconds with millisecond precision (so artifacts do not carry float noise).
fn secs(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

impl ImageReport {
    /// A started image: nothing done yet.
    pub fn started(key: impl Into<String>, image: impl Into<String>) -> Self {
        ImageReport {
            key: key.into(),
            image: image.into(),
            success: false,
            message: "started".into(),
            built: false,
            pushed: false,
            unchanged: false,
            rebuilt_digest: None,
            failed_step: None,
            digest: None,
            commit: None,
            platforms: vec![],
            awaiting_merge: false,
            parent_digest: None,
            bases: vec![],
            steps: vec![],
            seconds: 0.0,
            tests: TestResults::default(),
            reclaimed_bytes: None,
            content_tags: vec![],
            signed: vec![],
            changes: None,
            inventories: vec![],
            warnings: vec![],
            builder: None,
            lost_builders: vec![],
            node_lost: false,
        }
    }

    /// Record that `step` took `took` (also for a failed step).
    pub fn step_took(&mut self, step: ImageStep, took: Duration) {
        self.steps.push(StepTime {
            step,
            seconds: secs(took),
        });
    }

    /// The time recorded for `step`.
    pub fn step_time(&self, step: ImageStep) -> Option<Duration> {
        self.steps
            .iter()
            .find(|s| s.step == step)
            .map(|s| Duration::from_secs_f64(s.seconds))
    }

    /// Mark the image failed at `step`, with a message saying why.
    pub fn fail(&mut self, step: ImageStep, message: impl Into<String>) {
        self.success = false;
        self.failed_step = Some(step);
        self.message = message.into();
    }

    /// Run one step, recording its time; on error mark the image failed at `step`
    /// (message `<step> failed: <error>`, with the error's causes) and return None.
    pub async fn run_step<T, E, F>(&mut self, step: ImageStep, fut: F) -> Option<T>
    where
        F: std::future::Future<Output = Result<T, E>>,
        E: Into<anyhow::Error>,
    {
        let t0 = std::time::Instant::now();
        let result = fut.await;
        self.step_took(step, t0.elapsed());
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                let e: anyhow::Error = e.into();
                self.fail(step, format!("{step} failed: {e:#}"));
                None
            }
        }
    }

    /// Mark the image done: success unless a step failed. `total` is the whole image's time.
    pub fn finish(&mut self, total: Duration) {
        self.seconds = secs(total);
        if self.failed_step.is_none() {
            self.success = true;
            self.message = match (self.built, self.pushed) {
                (true, false) if self.unchanged => "rebuilt, unchanged".into(),
                (true, true) => "built, tested and pushed".into(),
                (true, false) if self.awaiting_merge => {
                    "built, tested and pushed by digest (awaiting merge)".into()
                }
                (true, false) => "built and tested (not pushed)".into(),
                _ => "done".into(),
            };
            if !self.warnings.is_empty() {
                let n = self.warnings.len();
                self.message = format!(
                    "{} ({n} warning{})",
                    self.message,
                    if n == 1 { "" } else { "s" }
                );
            }
        }
    }

    /// The YAML text of the artifact.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("an ImageReport always serializes")
    }

    /// Write `artifacts/<safe name>.yaml`; returns its path.
    pub fn write(&self, dirs: &ArtifactDirs) -> std::io::Result<PathBuf> {
        let path = dirs.image_yaml(&self.image);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| with_path(e, parent))?;
        }
        std::fs::write(&path, self.to_yaml()).map_err(|e| with_path(e, &path))?;
        Ok(path)
    }

    /// Read an artifact back (for tests and tools that look at a build's output).
    pub fn read(path: &std::path::Path) -> anyhow::Result<ImageReport> {
        let text = std::fs::read_to_string(path).map_err(|e| with_path(e, path))?;
        serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

impl ImageOutcome for ImageReport {
    fn succeeded(&self) -> bool {
        self.success
    }

    fn node_lost(&self) -> bool {
        !self.success && self.node_lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_analysis() -> ImageReport {
        let mut r = ImageReport::started(
            "analysis",
            "127.0.0.1:5111/stackctl-example/analysis:2026.3-main",
        );
        r.built = true;
        r.step_took(ImageStep::Build, Duration::from_millis(12_345));
        r.step_took(ImageStep::BasicTests, Duration::from_millis(3_210));
        r.tests.basic = Some(TestCounts {
            passed: 3,
            failed: 1,
            skipped: 0,
            seconds: 3.21,
            failures: vec![TestFailure {
                name: "test/test_stats.py::test_summary_of_numbers".into(),
                message: "assert 2.0 == 2.5".into(),
            }],
        });
        r.fail(
            ImageStep::BasicTests,
            "basic tests failed: 1 of 4 (test/test_stats.py::test_summary_of_numbers)",
        );
        r.finish(Duration::from_millis(15_600));
        r
    }

    #[test]
    fn a_failed_image_as_yaml() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = ArtifactDirs::new(tmp.path());
        let path = failed_analysis().write(&dirs).unwrap();
        assert_eq!(
            path,
            tmp.path()
                .join("artifacts/127.0.0.1-5111-stackctl-example-analysis-2026.3-main.yaml")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "\
key: analysis
image: 127.0.0.1:5111/stackctl-example/analysis:2026.3-main
success: false
message: 'basic tests failed: 1 of 4 (test/test_stats.py::test_summary_of_numbers)'
built: true
pushed: false
failed_step: basic-tests
digest: null
parent_digest: null
steps:
- step: build
  seconds: 12.345
- step: basic-tests
  seconds: 3.21
seconds: 15.6
tests:
  basic:
    passed: 3
    failed: 1
    skipped: 0
    seconds: 3.21
    failures:
    - name: test/test_stats.py::test_summary_of_numbers
      message: assert 2.0 == 2.5
  integration: null
reclaimed_bytes: null
"
        );
        assert_eq!(ImageReport::read(&path).unwrap(), failed_analysis());
    }

    #[test]
    fn a_successful_image() {
        let mut r =
            ImageReport::started("base", "127.0.0.1:5111/stackctl-example/base:2026.3-main");
        r.built = true;
        r.pushed = true;
        r.digest = Some(format!("sha256:{}", "ab".repeat(32)));
        r.step_took(ImageStep::Build, Duration::from_secs(2));
        r.step_took(ImageStep::Push, Duration::from_millis(500));
        r.tests.basic = Some(TestCounts {
            passed: 7,
            ..Default::default()
        });
        assert!(!r.succeeded(), "not done until finished");
        r.finish(Duration::from_millis(2_600));
        assert!(r.succeeded());
        assert_eq!(r.message, "built, tested and pushed");
        assert_eq!(
            r.step_time(ImageStep::Push),
            Some(Duration::from_millis(500))
        );
        assert_eq!(r.step_time(ImageStep::Page), None);
        let yaml = r.to_yaml();
        assert!(yaml.contains("success: true\n"));
        assert!(yaml.contains(&format!("digest: sha256:{}\n", "ab".repeat(32))));
        // No failures list when there are none.
        assert!(!yaml.contains("failures"));
    }

    #[test]
    fn a_split_build_lists_its_platforms_and_awaits_merge() {
        let mut r = ImageReport::started("base", "127.0.0.1:5111/ex/base:2026.3-main");
        r.built = true;
        r.commit = Some("ab".repeat(20));
        r.awaiting_merge = true;
        r.platforms.push(PlatformReport {
            platform: "linux/arm64".into(),
            digest: Some(format!("sha256:{}", "cd".repeat(32))),
            success: true,
            basic: Some(TestCounts {
                passed: 2,
                ..Default::default()
            }),
        });
        r.finish(Duration::from_secs(1));
        assert_eq!(
            r.message,
            "built, tested and pushed by digest (awaiting merge)"
        );
        let yaml = r.to_yaml();
        assert!(
            yaml.contains(&format!("commit: {}\n", "ab".repeat(20))),
            "{yaml}"
        );
        assert!(yaml.contains("awaiting_merge: true\n"), "{yaml}");
        assert!(
            yaml.contains(&format!(
                "platforms:\n- platform: linux/arm64\n  digest: sha256:{}\n  success: true\n  basic:\n    passed: 2\n",
                "cd".repeat(32)
            )),
            "{yaml}"
        );
        let back: ImageReport = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back, r);
        // A one-platform build of the builder's own platform keeps the old shape.
        let plain = failed_analysis().to_yaml();
        assert!(!plain.contains("platforms") && !plain.contains("awaiting_merge"));
    }

    #[tokio::test]
    async fn steps_are_timed_and_the_first_error_marks_the_failure() {
        let mut r = ImageReport::started("base", "x/base:t");
        let digest = r
            .run_step(ImageStep::Build, async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok::<_, std::io::Error>("sha256:ab".to_string())
            })
            .await;
        assert_eq!(digest.as_deref(), Some("sha256:ab"));
        assert!(r.step_time(ImageStep::Build).unwrap() >= Duration::from_millis(30));
        let pushed = r
            .run_step(ImageStep::Push, async {
                Err::<(), _>(anyhow::anyhow!("connection refused").context("PUT manifest"))
            })
            .await;
        assert!(pushed.is_none());
        assert_eq!(r.failed_step, Some(ImageStep::Push));
        assert_eq!(r.message, "push failed: PUT manifest: connection refused");
        r.finish(Duration::from_millis(40));
        assert!(!r.success);
        assert_eq!(r.message, "push failed: PUT manifest: connection refused");
        assert_eq!(r.steps.len(), 2);
    }

    #[test]
    fn writing_into_a_missing_folder_creates_it_and_a_bad_root_names_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = ArtifactDirs::new(tmp.path().join("fresh"));
        assert!(failed_analysis().write(&dirs).unwrap().is_file());
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = failed_analysis()
            .write(&ArtifactDirs::new(&file))
            .unwrap_err();
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
    }
}
