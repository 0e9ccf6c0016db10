//! The step order of one image, driven with test doubles (no Docker, no BuildKit, no
//! registry): for every way an image can fail or be interrupted, which steps ran, in which
//! order, what its report says, and that nothing was tagged after the failure. The real
//! parts are covered by the integration tests (tests/e2e_build.rs, tests/buildkit.rs).

use super::*;
use crate::containers::suite::{Suite, SuiteResult, TestOutcome};
use crate::content_tags::publish::{ContentTag, ContentTagState, Rendered};
use crate::pipeline::platforms::Selection;
use crate::pipeline::steps::{Built, Review};
use crate::spec::platform::Platform;
use crate::spec::{TagTemplate, Template};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

const REFERENCE: &str = "reg.example/stack/child:2026.3-feat";
const REPOSITORY: &str = "reg.example/stack/child";
const BUILT_DIGEST: &str = "sha256:b0";
const PUSHED_DIGEST: &str = "sha256:e0";
const OLD_DIGEST: &str = "sha256:01d";

/// Where a fake makes the image's work go wrong.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Trouble {
    None,
    BuildFails,
    BuildUnavailable,
    NodeLost,
    BasicTests(TestOutcome),
    BasicTestsError,
    ContentTagValues,
    Publish,
    IntegrationTests(TestOutcome),
    ContentTags,
    Manifest,
    /// The pushed index lacks a platform's manifest.
    PushedManifests,
    /// The basic tests fail on this platform only.
    BasicTestsOn(&'static str),
    /// The rebuild's platform manifests are those the tag names (it names OLD_DIGEST).
    Unchanged,
    /// An interrupt arrives while the step runs (the step then never ends on its own).
    CancelDuringBuild,
    /// An interrupt arrives while the content tags' values are computed (which succeeds).
    CancelBeforePush,
    CancelDuringPublish,
    /// An interrupt arrives while the tag PUT is in flight, and the PUT lands.
    CancelDuringPublishLanded,
    /// The image is over its size budget, `on_exceed: fail` (true) or `warn` (false).
    OverBudget(bool),
}

/// Every part of the step order in one test double; it records each call, and every tag
/// it is asked to give.
struct Fake {
    trouble: Trouble,
    /// BuildKit pushes by digest (a buildkitd), else the image stays in the engine.
    by_digest: bool,
    cancel: CancellationToken,
    calls: RefCell<Vec<String>>,
    tags: RefCell<Vec<String>>,
}

impl Fake {
    fn new(trouble: Trouble) -> Fake {
        Fake {
            trouble,
            by_digest: true,
            cancel: CancellationToken::new(),
            calls: RefCell::new(vec![]),
            tags: RefCell::new(vec![]),
        }
    }

    fn call(&self, what: String) {
        self.calls.borrow_mut().push(what);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn tags(&self) -> Vec<String> {
        self.tags.borrow().clone()
    }
}

fn suite(suite: Suite, image: &str, outcome: TestOutcome) -> SuiteResult {
    let failed = matches!(outcome, TestOutcome::Failed) as u32;
    SuiteResult {
        suite,
        image: image.into(),
        outcome,
        counts: crate::containers::suite::JunitReport {
            passed: 2,
            failed,
            errors: 0,
            skipped: 1,
            failures: (failed > 0)
                .then(|| crate::containers::suite::TestFailure {
                    name: "test/test_x.py::test_y".into(),
                    message: "assert 1 == 2".into(),
                })
                .into_iter()
                .collect(),
        },
        message: match outcome {
            TestOutcome::Failed => "1 failed: test/test_x.py::test_y".into(),
            TestOutcome::CouldNotRun => "could not run: no python in the image".into(),
            _ => "2 passed".into(),
        },
        notices: vec![],
        exit_code: Some(failed as i64),
        cached: false,
        seconds: 0.5,
        output: String::new(),
        junit_xml: None,
    }
}

impl Builder for Fake {
    fn parent_digest(&self) -> Option<String> {
        Some("sha256:parent".into())
    }

    async fn build(&self) -> Result<Built, BuildError> {
        self.call("build".into());
        match self.trouble {
            Trouble::BuildFails => return Err(BuildError::Failed("RUN make: exit 2".into())),
            Trouble::BuildUnavailable => {
                return Err(BuildError::Unavailable(
                    "BuildKit at tcp://x: refused".into(),
                ))
            }
            Trouble::NodeLost => return Err(BuildError::NodeLost("tcp://x went away".into())),
            Trouble::CancelDuringBuild => {
                self.cancel.cancel();
                std::future::pending::<()>().await;
            }
            _ => {}
        }
        let pushed_digest = self.by_digest.then(|| BUILT_DIGEST.to_string());
        let test_ref = match &pushed_digest {
            Some(d) => format!("{REPOSITORY}@{d}"),
            None => REFERENCE.to_string(),
        };
        Ok(Built {
            pushed_digest,
            test_ref,
            base_digest: None,
            unchanged: (self.trouble == Trouble::Unchanged).then(|| OLD_DIGEST.to_string()),
        })
    }
}

impl TestRunner for Fake {
    async fn run_suite(
        &self,
        s: Suite,
        image_ref: &str,
        platform: Option<&Platform>,
    ) -> anyhow::Result<SuiteResult> {
        let name = match s {
            Suite::Basic => "basic-tests",
            Suite::Integration => "integration-tests",
        };
        match platform {
            Some(p) => self.call(format!("{name} {image_ref} on {p}")),
            None => self.call(format!("{name} {image_ref}")),
        }
        let outcome = match (s, self.trouble) {
            (Suite::Basic, Trouble::BasicTestsOn(p)) if platform.is_some_and(|q| *q == p) => {
                TestOutcome::Failed
            }
            (Suite::Basic, Trouble::BasicTests(o)) => o,
            (Suite::Basic, Trouble::BasicTestsError) => {
                anyhow::bail!("the Docker engine cannot be reached")
            }
            (Suite::Integration, Trouble::IntegrationTests(o)) => o,
            _ => TestOutcome::Passed,
        };
        Ok(suite(s, image_ref, outcome))
    }

    async fn content_tag_values(
        &self,
        image_ref: &str,
        templates: &[TagTemplate],
    ) -> anyhow::Result<Vec<Rendered>> {
        self.call(format!("content-tag-values {image_ref}"));
        match self.trouble {
            Trouble::ContentTagValues => anyhow::bail!("python3: not found"),
            Trouble::CancelBeforePush => self.cancel.cancel(),
            _ => {}
        }
        Ok(templates
            .iter()
            .map(|t| Rendered {
                tag: t.template.source.clone(),
                moving: t.moving,
            })
            .collect())
    }
}

impl Publisher for Fake {
    async fn publish(&self, built: &Built) -> anyhow::Result<String> {
        self.call(format!(
            "publish {}",
            built.pushed_digest.as_deref().unwrap_or("from the engine")
        ));
        match self.trouble {
            Trouble::Publish => anyhow::bail!("PUT {REFERENCE}: 500 Internal Server Error"),
            Trouble::CancelDuringPublish | Trouble::CancelDuringPublishLanded => {
                if self.trouble == Trouble::CancelDuringPublishLanded {
                    self.tags.borrow_mut().push(REFERENCE.into());
                }
                self.cancel.cancel();
                std::future::pending::<()>().await;
            }
            _ => {}
        }
        self.tags.borrow_mut().push(REFERENCE.into());
        Ok(built.pushed_digest.clone().unwrap_or(PUSHED_DIGEST.into()))
    }

    async fn read_back_tag(&self, built: &Built) -> anyhow::Result<Option<String>> {
        self.call("read-back".into());
        let landed = self.tags.borrow().iter().any(|t| t == REFERENCE);
        Ok(built.pushed_digest.clone().filter(|_| landed))
    }

    async fn pushed_manifests(
        &self,
        digest: &str,
        platforms: &[Platform],
    ) -> anyhow::Result<Vec<(Platform, String)>> {
        self.call(format!("pushed-manifests {digest}"));
        if self.trouble == Trouble::PushedManifests {
            anyhow::bail!("the pushed index has no manifest for linux/arm64");
        }
        Ok(platforms
            .iter()
            .map(|p| (p.clone(), format!("sha256:{}", p.file_part())))
            .collect())
    }

    async fn content_tags(
        &self,
        digest: &str,
        tags: &[Rendered],
    ) -> anyhow::Result<(Vec<ContentTag>, Vec<String>)> {
        self.call(format!("content-tags {digest}"));
        if self.trouble == Trouble::ContentTags {
            anyhow::bail!("PUT {REPOSITORY}:py-3.11: 403 Forbidden");
        }
        let mut records = vec![];
        for r in tags {
            self.tags
                .borrow_mut()
                .push(format!("{REPOSITORY}:{}", r.tag));
            records.push(ContentTag {
                tag: r.tag.clone(),
                digest: Some(digest.into()),
                state: ContentTagState::Created,
                moving: r.moving,
                previous: None,
            });
        }
        Ok((records, vec![]))
    }
}

impl PageWriter for Fake {
    type Facts = ();
    async fn gather(&self, _digest: &str) -> anyhow::Result<()> {
        Ok(())
    }
    async fn review(&self, _digest: &str, _facts: &mut Option<anyhow::Result<()>>) -> Review {
        match self.trouble {
            Trouble::OverBudget(fail) => Review {
                breaches: vec!["linux/amd64: 9.0 GB compressed, over its max of 8.0 GB".into()],
                fail,
                ..Default::default()
            },
            _ => Review::default(),
        }
    }
    async fn write_page(
        &self,
        content_tags: &[ContentTag],
        _facts: Option<anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        let tags: Vec<&str> = content_tags.iter().map(|r| r.tag.as_str()).collect();
        self.call(format!("manifest [{}]", tags.join(",")));
        if self.trouble == Trouble::Manifest {
            anyhow::bail!("writing manifests/child.md: No space left on device");
        }
        Ok(())
    }
}

/// What one image's run left.
struct Ran {
    report: ImageReport,
    calls: Vec<String>,
    tags: Vec<String>,
    digests: HashMap<String, String>,
    service_error: Option<String>,
}

struct Options {
    push: bool,
    by_digest: bool,
    cancelled: bool,
    /// The platforms built (empty: the builder's own), and whether the build is split.
    platforms: &'static [&'static str],
    split: bool,
    integration_platforms: &'static [&'static str],
    skip_unchanged: bool,
}

const DEFAULT: Options = Options {
    push: true,
    by_digest: true,
    cancelled: false,
    platforms: &[],
    split: false,
    integration_platforms: &[],
    skip_unchanged: false,
};

const TWO: &[&str] = &["linux/amd64", "linux/arm64"];

async fn run_with(trouble: Trouble, o: Options) -> Ran {
    let mut fake = Fake::new(trouble);
    fake.by_digest = o.by_digest;
    if o.cancelled {
        fake.cancel.cancel();
    }
    let templates = vec![TagTemplate {
        template: Template::parse("py-3.11").unwrap(),
        moving: false,
    }];
    let parsed = |l: &[&str]| {
        l.iter()
            .map(|p| p.parse().unwrap())
            .collect::<Vec<Platform>>()
    };
    let selection = Selection {
        platforms: parsed(o.platforms),
        split: o.split,
    };
    let integration_platforms = parsed(o.integration_platforms);
    let job = ImageJob {
        key: "child",
        reference: REFERENCE,
        repository: REPOSITORY,
        push: o.push,
        integration_tests: true,
        content_tags: &templates,
        selection: &selection,
        integration_platforms: &integration_platforms,
        skip_unchanged: o.skip_unchanged,
        cancel: &fake.cancel,
    };
    let digests = Mutex::new(HashMap::new());
    let service_error = Mutex::new(None);
    let run = RunState {
        digests: &digests,
        service_error: &service_error,
    };
    let parts = Parts {
        builder: &fake,
        tests: &fake,
        publisher: &fake,
        pages: &fake,
    };
    let mut report = ImageReport::started("child", REFERENCE);
    run_steps(&job, &parts, &run, &mut report).await;
    report.finish(Duration::from_secs(1));
    Ran {
        report,
        calls: fake.calls(),
        tags: fake.tags(),
        digests: digests.into_inner().unwrap(),
        service_error: service_error.into_inner().unwrap(),
    }
}

async fn run(trouble: Trouble) -> Ran {
    run_with(trouble, DEFAULT).await
}

const TESTED: &str = "reg.example/stack/child@sha256:b0";

fn basic() -> String {
    format!("basic-tests {TESTED}")
}
fn values() -> String {
    format!("content-tag-values {TESTED}")
}
fn publish() -> String {
    format!("publish {BUILT_DIGEST}")
}
fn integration() -> String {
    format!("integration-tests {REFERENCE}")
}
fn content_tags() -> String {
    format!("content-tags {BUILT_DIGEST}")
}

/// The report says the image failed at `step` with a message starting with `message`.
fn assert_failed(r: &Ran, step: ImageStep, message: &str) {
    assert!(!r.report.success, "{:?}", r.report);
    assert_eq!(r.report.failed_step, Some(step), "{:?}", r.report);
    assert!(
        r.report.message.starts_with(message),
        "{:?} does not start with {message:?}",
        r.report.message
    );
}

/// The steps' times are recorded in the order they ran.
fn timed_steps(r: &Ran) -> Vec<ImageStep> {
    r.report.steps.iter().map(|s| s.step).collect()
}

/// An unchanged rebuild is tested, then left as its tag names it: no push, no content
/// tags, no page; its children build FROM what the tag names.
#[tokio::test]
async fn an_unchanged_rebuild_is_tested_and_keeps_its_tag() {
    let r = run(Trouble::Unchanged).await;
    assert_eq!(r.calls, ["build".into(), basic()]);
    assert!(r.tags.is_empty(), "{:?}", r.tags);
    let rep = &r.report;
    assert!(
        rep.success && rep.built && !rep.pushed && rep.unchanged,
        "{rep:?}"
    );
    assert_eq!(rep.message, "rebuilt, unchanged");
    assert_eq!(rep.digest.as_deref(), Some(OLD_DIGEST));
    assert_eq!(r.digests["child"], OLD_DIGEST);

    let r = run_with(
        Trouble::Unchanged,
        Options {
            skip_unchanged: true,
            ..DEFAULT
        },
    )
    .await;
    assert_eq!(r.calls, ["build".to_string()]);
    assert_eq!(r.report.message, "rebuilt, unchanged");
    assert_eq!(r.digests["child"], OLD_DIGEST);
}

#[tokio::test]
async fn every_step_runs_in_order_and_the_tested_digest_gets_its_tags() {
    let r = run(Trouble::None).await;
    assert_eq!(
        r.calls,
        [
            "build".into(),
            basic(),
            values(),
            publish(),
            integration(),
            content_tags(),
            "manifest [py-3.11]".to_string(),
        ]
    );
    assert_eq!(
        timed_steps(&r),
        [
            ImageStep::Build,
            ImageStep::BasicTests,
            ImageStep::ContentTags,
            ImageStep::SizeBudget,
            ImageStep::Push,
            ImageStep::IntegrationTests,
            ImageStep::ContentTags,
            ImageStep::Page
        ]
    );
    let rep = &r.report;
    assert!(rep.success && rep.built && rep.pushed, "{rep:?}");
    assert_eq!(rep.failed_step, None);
    assert_eq!(rep.message, "built, tested and pushed");
    assert_eq!(rep.digest.as_deref(), Some(BUILT_DIGEST));
    assert_eq!(rep.parent_digest.as_deref(), Some("sha256:parent"));
    assert_eq!(rep.tests.basic.as_ref().unwrap().passed, 2);
    assert_eq!(rep.tests.integration.as_ref().unwrap().skipped, 1);
    assert_eq!(rep.content_tags.len(), 1);
    assert_eq!(rep.content_tags[0].state, ContentTagState::Created);
    assert_eq!(r.tags, [REFERENCE, "reg.example/stack/child:py-3.11"]);
    assert_eq!(r.digests["child"], BUILT_DIGEST);
}

#[tokio::test]
async fn through_an_engine_the_tests_run_the_engines_image_and_the_engine_pushes() {
    let r = run_with(
        Trouble::None,
        Options {
            by_digest: false,
            ..DEFAULT
        },
    )
    .await;
    assert_eq!(
        r.calls,
        [
            "build".to_string(),
            format!("basic-tests {REFERENCE}"),
            format!("content-tag-values {REFERENCE}"),
            "publish from the engine".into(),
            integration(),
            format!("content-tags {PUSHED_DIGEST}"),
            "manifest [py-3.11]".into(),
        ]
    );
    assert!(r.report.success && r.report.pushed);
    assert_eq!(r.report.digest.as_deref(), Some(PUSHED_DIGEST));
    // Children build FROM the digest the push gave.
    assert_eq!(r.digests["child"], PUSHED_DIGEST);
}

#[tokio::test]
async fn without_push_the_image_is_built_tested_and_never_tagged() {
    let r = run_with(
        Trouble::None,
        Options {
            push: false,
            ..DEFAULT
        },
    )
    .await;
    assert_eq!(r.calls, ["build".to_string(), basic(), values()]);
    assert!(r.report.success && !r.report.pushed, "{:?}", r.report);
    assert_eq!(r.report.message, "built and tested (not pushed)");
    assert_eq!(r.report.content_tags[0].state, ContentTagState::NotPushed);
    assert!(r.tags.is_empty(), "{:?}", r.tags);
}

#[tokio::test]
async fn a_failed_build_runs_nothing_else() {
    let r = run(Trouble::BuildFails).await;
    assert_eq!(r.calls, ["build"]);
    assert_failed(&r, ImageStep::Build, "build failed: RUN make: exit 2");
    assert!(!r.report.built && !r.report.pushed && !r.report.node_lost);
    assert_eq!(timed_steps(&r), [ImageStep::Build]);
    // The parent it was built FROM is known before the build.
    assert_eq!(r.report.parent_digest.as_deref(), Some("sha256:parent"));
    assert!(r.tags.is_empty() && r.digests.is_empty());
    assert_eq!(r.service_error, None);
}

#[tokio::test]
async fn buildkit_out_of_reach_is_the_runs_service_error() {
    let r = run(Trouble::BuildUnavailable).await;
    assert_eq!(r.calls, ["build"]);
    assert_failed(
        &r,
        ImageStep::Build,
        "build failed: BuildKit at tcp://x: refused",
    );
    assert_eq!(
        r.service_error.as_deref(),
        Some("BuildKit at tcp://x: refused")
    );
    assert!(r.tags.is_empty());
}

#[tokio::test]
async fn a_lost_node_is_said_so_for_the_scheduler() {
    let r = run(Trouble::NodeLost).await;
    assert_eq!(r.calls, ["build"]);
    assert_failed(&r, ImageStep::Build, "build failed: tcp://x went away");
    assert!(r.report.node_lost && !r.report.built);
    assert_eq!(r.service_error, None);
    assert!(r.tags.is_empty());
}

#[tokio::test]
async fn failed_basic_tests_stop_the_image_before_any_tag() {
    let r = run(Trouble::BasicTests(TestOutcome::Failed)).await;
    assert_eq!(r.calls, ["build".to_string(), basic()]);
    assert_failed(
        &r,
        ImageStep::BasicTests,
        "basic-tests failed: 1 failed: test/test_x.py::test_y",
    );
    assert!(r.report.built && !r.report.pushed);
    let counts = r.report.tests.basic.as_ref().unwrap();
    assert_eq!((counts.passed, counts.failed, counts.skipped), (2, 1, 1));
    assert_eq!(counts.failures[0].name, "test/test_x.py::test_y");
    assert_eq!(timed_steps(&r), [ImageStep::Build, ImageStep::BasicTests]);
    // Not tagged, and no child builds FROM it.
    assert!(r.tags.is_empty() && r.digests.is_empty());
}

#[tokio::test]
async fn basic_tests_that_could_not_run_stop_the_image() {
    let r = run(Trouble::BasicTests(TestOutcome::CouldNotRun)).await;
    assert_eq!(r.calls, ["build".to_string(), basic()]);
    assert_failed(
        &r,
        ImageStep::BasicTests,
        "basic-tests failed: could not run: no python in the image",
    );
    assert!(r.report.tests.basic.is_some());
    assert!(r.tags.is_empty() && r.digests.is_empty());

    // A runner that cannot even start (no engine) fails the same step, without counts.
    let r = run(Trouble::BasicTestsError).await;
    assert_eq!(r.calls, ["build".to_string(), basic()]);
    assert_failed(
        &r,
        ImageStep::BasicTests,
        "basic-tests failed: the Docker engine cannot be reached",
    );
    assert!(r.report.tests.basic.is_none());
    assert!(r.tags.is_empty() && r.digests.is_empty());
}

#[tokio::test]
async fn basic_tests_with_no_tests_pass() {
    let r = run(Trouble::BasicTests(TestOutcome::NoTests)).await;
    assert!(r.report.success, "{:?}", r.report);
    assert_eq!(r.calls.len(), 7);
}

#[tokio::test]
async fn a_bad_content_tag_value_fails_the_image_before_it_is_tagged() {
    let r = run(Trouble::ContentTagValues).await;
    assert_eq!(r.calls, ["build".to_string(), basic(), values()]);
    assert_failed(
        &r,
        ImageStep::ContentTags,
        "content-tags failed: python3: not found",
    );
    assert!(!r.report.pushed && r.report.content_tags.is_empty());
    assert!(r.tags.is_empty());
    // Tested: children may build FROM its digest; it has no tag.
    assert_eq!(r.digests["child"], BUILT_DIGEST);
}

#[tokio::test]
async fn a_failed_publish_leaves_no_tag_and_runs_nothing_after() {
    let r = run(Trouble::Publish).await;
    assert_eq!(r.calls, ["build".to_string(), basic(), values(), publish()]);
    assert_failed(
        &r,
        ImageStep::Push,
        "push failed: PUT reg.example/stack/child:2026.3-feat: 500",
    );
    assert!(!r.report.pushed && r.report.digest.is_none());
    assert_eq!(r.report.content_tags[0].state, ContentTagState::NotPushed);
    assert!(r.tags.is_empty(), "{:?}", r.tags);
}

#[tokio::test]
async fn failed_integration_tests_stop_before_content_tags_and_page() {
    let r = run(Trouble::IntegrationTests(TestOutcome::Failed)).await;
    assert_eq!(
        r.calls,
        [
            "build".to_string(),
            basic(),
            values(),
            publish(),
            integration()
        ]
    );
    assert_failed(
        &r,
        ImageStep::IntegrationTests,
        "integration-tests failed: 1 failed",
    );
    // Pushed before the integration tests (they run against the tag), then nothing more.
    assert!(r.report.pushed);
    assert_eq!(r.report.tests.integration.as_ref().unwrap().failed, 1);
    assert_eq!(r.tags, [REFERENCE]);
    assert_eq!(r.report.content_tags[0].state, ContentTagState::NotPushed);

    let r = run(Trouble::IntegrationTests(TestOutcome::CouldNotRun)).await;
    assert_failed(
        &r,
        ImageStep::IntegrationTests,
        "integration-tests failed: could not run",
    );
    assert_eq!(r.tags, [REFERENCE]);
}

#[tokio::test]
async fn failed_content_tags_stop_before_the_page() {
    let r = run(Trouble::ContentTags).await;
    assert_eq!(
        r.calls,
        [
            "build".to_string(),
            basic(),
            values(),
            publish(),
            integration(),
            content_tags()
        ]
    );
    assert_failed(&r, ImageStep::ContentTags, "content-tags failed: PUT");
    assert!(r.report.pushed);
    assert_eq!(r.tags, [REFERENCE]);
}

#[tokio::test]
async fn an_image_over_its_size_budget_gets_no_tag_unless_it_only_warns() {
    let r = run(Trouble::OverBudget(true)).await;
    assert_eq!(r.calls, ["build".to_string(), basic(), values()]);
    assert_failed(
        &r,
        ImageStep::SizeBudget,
        "over its size budget: linux/amd64: 9.0 GB",
    );
    assert!(
        r.report.message.ends_with("; not tagged"),
        "{}",
        r.report.message
    );
    assert!(r.tags.is_empty() && !r.report.pushed);

    let r = run(Trouble::OverBudget(false)).await;
    assert!(r.report.success, "{:?}", r.report);
    assert_eq!(r.tags, [REFERENCE, "reg.example/stack/child:py-3.11"]);
    assert!(
        r.report
            .warnings
            .iter()
            .any(|w| w.contains("over its size budget")),
        "{:?}",
        r.report.warnings
    );
}

#[tokio::test]
async fn a_failed_manifest_page_fails_the_image_after_every_tag() {
    let r = run(Trouble::Manifest).await;
    assert_eq!(r.calls.len(), 7);
    assert_eq!(r.calls[6], "manifest [py-3.11]");
    assert_failed(
        &r,
        ImageStep::Page,
        "manifest failed: writing manifests/child.md",
    );
    assert!(r.report.pushed);
    assert_eq!(r.tags, [REFERENCE, "reg.example/stack/child:py-3.11"]);
}

#[tokio::test]
async fn cancelled_before_the_start_runs_no_step() {
    let r = run_with(
        Trouble::None,
        Options {
            cancelled: true,
            ..DEFAULT
        },
    )
    .await;
    assert!(r.calls.is_empty(), "{:?}", r.calls);
    assert_failed(&r, ImageStep::Build, "interrupted before it started");
    assert!(r.report.steps.is_empty() && !r.report.built);
    assert!(r.tags.is_empty() && r.digests.is_empty());
}

#[tokio::test]
async fn cancelled_during_the_build_drops_it() {
    let r = run(Trouble::CancelDuringBuild).await;
    assert_eq!(r.calls, ["build"]);
    assert_failed(
        &r,
        ImageStep::Build,
        "build failed: interrupted: the BuildKit solve was cancelled",
    );
    assert!(!r.report.built);
    assert!(r.tags.is_empty() && r.digests.is_empty());
}

#[tokio::test]
async fn cancelled_before_the_push_pushes_nothing() {
    let r = run(Trouble::CancelBeforePush).await;
    assert_eq!(r.calls, ["build".to_string(), basic(), values()]);
    assert_failed(&r, ImageStep::Push, "interrupted: nothing was pushed");
    assert!(r.report.built && !r.report.pushed);
    assert!(r.tags.is_empty());
}

/// The calls of a run interrupted during the tag PUT: build, tests, values, the PUT, and
/// the read-back of the tag.
fn up_to_the_read_back() -> [String; 5] {
    let read_back = "read-back".to_string();
    ["build".to_string(), basic(), values(), publish(), read_back]
}

#[tokio::test]
async fn cancelled_during_the_push_stops_it_untagged() {
    let r = run(Trouble::CancelDuringPublish).await;
    assert_eq!(r.calls, up_to_the_read_back());
    assert_failed(
        &r,
        ImageStep::Push,
        "push failed: interrupted: the push was stopped; read back, the tag does not name",
    );
    assert!(!r.report.pushed);
    assert!(r.tags.is_empty());
}

/// The interrupt came with the tag PUT in flight, and it landed: the read-back says so,
/// the image is reported pushed with the digest, and no later step runs.
#[tokio::test]
async fn cancelled_push_that_landed_is_reported_pushed() {
    let r = run(Trouble::CancelDuringPublishLanded).await;
    assert_eq!(r.calls, up_to_the_read_back());
    assert_failed(
        &r,
        ImageStep::Push,
        &format!(
            "interrupted during the push: the tag was written (read back: it names {BUILT_DIGEST})"
        ),
    );
    assert!(r.report.pushed);
    assert_eq!(r.report.digest.as_deref(), Some(BUILT_DIGEST));
}

#[tokio::test]
async fn each_platform_is_tested_on_its_own_manifest() {
    let native = crate::spec::platform::native();
    assert!(
        TWO.contains(&native.to_string().as_str()),
        "a test machine is amd64 or arm64"
    );
    let r = run_with(
        Trouble::None,
        Options {
            platforms: TWO,
            integration_platforms: &["linux/arm64"],
            ..DEFAULT
        },
    )
    .await;
    assert_eq!(
        r.calls,
        [
            "build".to_string(),
            format!("pushed-manifests {BUILT_DIGEST}"),
            format!("basic-tests {REPOSITORY}@sha256:linux-amd64 on linux/amd64"),
            format!("basic-tests {REPOSITORY}@sha256:linux-arm64 on linux/arm64"),
            // In the native platform's manifest.
            format!(
                "content-tag-values {REPOSITORY}@sha256:{}",
                native.file_part()
            ),
            publish(),
            format!("integration-tests {REPOSITORY}@sha256:linux-arm64 on linux/arm64"),
            content_tags(),
            "manifest [py-3.11]".into(),
        ]
    );
    assert!(r.report.success, "{:?}", r.report);
    let platforms: Vec<(&str, bool)> = r
        .report
        .platforms
        .iter()
        .map(|p| (p.platform.as_str(), p.success))
        .collect();
    assert_eq!(platforms, [("linux/amd64", true), ("linux/arm64", true)]);
    assert_eq!(r.report.tests.basic.as_ref().unwrap().passed, 4);
    assert_eq!(r.tags, [REFERENCE, "reg.example/stack/child:py-3.11"]);
}

#[tokio::test]
async fn one_failing_platform_fails_the_image_before_any_tag() {
    let r = run_with(
        Trouble::BasicTestsOn("linux/arm64"),
        Options {
            platforms: TWO,
            ..DEFAULT
        },
    )
    .await;
    assert_eq!(r.calls.len(), 4, "{:?}", r.calls);
    assert_failed(
        &r,
        ImageStep::BasicTests,
        "basic-tests failed on 1 of 2 platforms: linux/arm64: 1 failed",
    );
    let arm = r
        .report
        .platforms
        .iter()
        .find(|p| p.platform == "linux/arm64");
    assert!(!arm.unwrap().success);
    assert_eq!(
        r.report.tests.basic.as_ref().unwrap().failures[0].name,
        "[linux/arm64] test/test_x.py::test_y"
    );
    assert!(r.tags.is_empty() && r.digests.is_empty());
}

#[tokio::test]
async fn a_pushed_index_without_a_platform_fails_the_build() {
    let r = run_with(
        Trouble::PushedManifests,
        Options {
            platforms: TWO,
            ..DEFAULT
        },
    )
    .await;
    assert_eq!(
        r.calls,
        [
            "build".to_string(),
            format!("pushed-manifests {BUILT_DIGEST}")
        ]
    );
    assert_failed(
        &r,
        ImageStep::Build,
        "build failed: the pushed index has no manifest for linux/arm64",
    );
    assert!(r.tags.is_empty() && r.digests.is_empty());
}

#[tokio::test]
async fn a_split_build_is_tested_and_never_tagged() {
    let r = run_with(
        Trouble::None,
        Options {
            platforms: &["linux/arm64"],
            split: true,
            ..DEFAULT
        },
    )
    .await;
    assert_eq!(
        r.calls,
        [
            "build".to_string(),
            format!("pushed-manifests {BUILT_DIGEST}"),
            format!("basic-tests {REPOSITORY}@sha256:linux-arm64 on linux/arm64"),
            format!("content-tag-values {REPOSITORY}@sha256:linux-arm64"),
            // No tag to run them against: on the pushed manifest.
            format!("integration-tests {REPOSITORY}@sha256:linux-arm64 on linux/arm64"),
        ]
    );
    assert!(r.report.success && r.report.awaiting_merge && !r.report.pushed);
    assert_eq!(r.report.digest.as_deref(), Some(BUILT_DIGEST));
    assert!(r.tags.is_empty(), "{:?}", r.tags);
}

#[tokio::test]
async fn a_split_build_failing_its_integration_tests_does_not_await_the_merge() {
    let r = run_with(
        Trouble::IntegrationTests(TestOutcome::Failed),
        Options {
            platforms: &["linux/arm64"],
            split: true,
            ..DEFAULT
        },
    )
    .await;
    assert_eq!(r.calls.len(), 5, "{:?}", r.calls);
    assert_failed(
        &r,
        ImageStep::IntegrationTests,
        "integration-tests failed on 1 of 1 platforms: linux/arm64: 1 failed",
    );
    assert!(!r.report.awaiting_merge && !r.report.pushed);
    assert!(r.tags.is_empty(), "{:?}", r.tags);
}
