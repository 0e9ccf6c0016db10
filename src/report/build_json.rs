//! The JSON document `stackctl build --format json` prints: the run's tag, the images it
//! built and passed, and for each image of the plan what was planned and what happened.

use super::image::ImageReport;
use super::outcome::{Scheduled, ScheduledImage};
use crate::content_tags::publish::ContentTag;
use crate::plan::Plan;
use serde::Serialize;

/// The whole document.
#[derive(Debug, Serialize)]
pub struct BuildDocument<'a> {
    pub tag: &'a str,
    /// The images built and passed (IMAGES_BUILT's lines).
    pub built: &'a [String],
    pub images: Vec<BuildImage<'a>>,
}

/// One image: its plan and its result.
#[derive(Debug, Serialize)]
pub struct BuildImage<'a> {
    pub key: &'a str,
    /// The full name with its tag, when the plan has the image.
    #[serde(rename = "ref")]
    pub reference: Option<&'a str>,
    pub rebuild: bool,
    pub reasons: &'a [String],
    /// `up-to-date`, `done`, `rebuilt, unchanged`, `failed`, or why it was skipped.
    pub status: String,
    pub content_tags: &'a [ContentTag],
    /// The image's artifact, when its work ran.
    pub report: Option<&'a ImageReport>,
}

impl<'a> BuildDocument<'a> {
    pub fn new(
        plan: &'a Plan,
        built: &'a [String],
        images: &'a [ScheduledImage<ImageReport>],
    ) -> Self {
        let images = images
            .iter()
            .map(|i| {
                let planned = plan.image(&i.key);
                let report = i.result.outcome();
                BuildImage {
                    key: &i.key,
                    reference: planned.map(|p| p.reference.as_str()),
                    rebuild: planned.is_some_and(|p| p.rebuild),
                    reasons: planned.map_or(&[], |p| p.reasons.as_slice()),
                    status: match &i.result {
                        Scheduled::UpToDate => "up-to-date".to_string(),
                        Scheduled::Skipped(s) => s.to_string(),
                        Scheduled::Ran { outcome, .. } if outcome.success && outcome.unchanged => {
                            "rebuilt, unchanged".into()
                        }
                        Scheduled::Ran { outcome, .. } if outcome.success => "done".into(),
                        Scheduled::Ran { .. } => "failed".into(),
                    },
                    content_tags: report.map_or(&[], |r| r.content_tags.as_slice()),
                    report,
                }
            })
            .collect();
        BuildDocument {
            tag: &plan.tag,
            built,
            images,
        }
    }

    /// The document as pretty JSON. It goes through a `serde_json::Value`, so every
    /// object's keys come in alphabetical order, at every level, as the document has
    /// always been printed.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(&serde_json::to_value(self)?)
    }
}
