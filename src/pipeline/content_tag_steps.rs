//! The build's content tag steps (`tags:` in the spec): [`crate::content_tags::publish`]'s
//! work for one image of the run, through the step order's traits, its result recorded in
//! the image's report.

use super::steps::{ImageJob, Publisher, TestRunner};
use crate::content_tags::publish::{ContentTag, ContentTagState, Rendered};
use crate::report::{ImageReport, ImageStep};

/// The build's step after the basic tests: compute the image's content tags in the tested
/// image `test_ref`, record them as not pushed yet. None: the image failed (recorded).
pub(crate) async fn compute_step(
    job: &ImageJob<'_>,
    tests: &impl TestRunner,
    test_ref: &str,
    report: &mut ImageReport,
) -> Option<Vec<Rendered>> {
    if job.content_tags.is_empty() {
        return Some(vec![]);
    }
    let rendered = report
        .run_step(
            ImageStep::ContentTags,
            tests.content_tag_values(test_ref, job.content_tags),
        )
        .await?;
    report.content_tags = rendered
        .iter()
        .map(|r| ContentTag {
            tag: r.tag.clone(),
            digest: None,
            state: ContentTagState::NotPushed,
            moving: r.moving,
            previous: None,
        })
        .collect();
    Some(rendered)
}

/// The build's step once the image has its tag: push its content tags. False: failed
/// (recorded in the report).
pub(crate) async fn publish_step(
    publisher: &impl Publisher,
    tags: &[Rendered],
    report: &mut ImageReport,
) -> bool {
    if tags.is_empty() {
        return true;
    }
    let Some(digest) = report.digest.clone() else {
        report.fail(
            ImageStep::ContentTags,
            "content tags: the pushed digest is not known",
        );
        return false;
    };
    match report
        .run_step(
            ImageStep::ContentTags,
            publisher.content_tags(&digest, tags),
        )
        .await
    {
        Some((records, warnings)) => {
            report.content_tags = records;
            report.warnings.extend(warnings);
            true
        }
        None => false,
    }
}
