//! The build's content tag steps (`tags:` in the spec): [`crate::content_tags::publish`]'s
//! work for one image of the run, its result recorded in the image's report.

use super::image::ImageJobContext;
use crate::content_tags::publish::{compute, publish, Record, Rendered, State};
use crate::content_tags::TagTemplate;
use crate::report::{ImageReport, Step};

/// The build's step after the basic tests: compute the image's content tags in the tested
/// image `test_ref`, record them as not pushed yet. None: the image failed (recorded).
pub async fn compute_step(
    ctx: &ImageJobContext<'_>,
    templates: &[TagTemplate],
    test_ref: &str,
    report: &mut ImageReport,
) -> Option<Vec<Rendered>> {
    if templates.is_empty() {
        return Some(vec![]);
    }
    let commit: String = ctx.commit.chars().take(7).collect();
    let date = ctx.build_time.format("%Y-%m-%d").to_string();
    let rendered = report
        .run_step(
            Step::ContentTags,
            compute(
                test_ref,
                templates,
                &commit,
                &date,
                &ctx.spec.tag_prefix,
                ctx.test_timeout,
                &ctx.cancel,
            ),
        )
        .await?;
    report.content_tags = rendered
        .iter()
        .map(|r| Record {
            tag: r.tag.clone(),
            digest: None,
            state: State::NotPushed,
            moving: r.moving,
            previous: None,
        })
        .collect();
    Some(rendered)
}

/// The build's step once the image has its tag: push its content tags. False: failed
/// (recorded in the report).
pub async fn publish_step(
    ctx: &ImageJobContext<'_>,
    repository: &str,
    tags: &[Rendered],
    report: &mut ImageReport,
) -> bool {
    if tags.is_empty() {
        return true;
    }
    let Some(digest) = report.digest.clone() else {
        report.fail(
            Step::ContentTags,
            "content tags: the pushed digest is not known",
        );
        return false;
    };
    match report
        .run_step(
            Step::ContentTags,
            publish(ctx.registry, repository, &digest, tags),
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
