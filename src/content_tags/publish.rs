//! One image's content tags in `stackctl build`.
//!
//! - [`compute`], right after the basic tests: the templates' commands run in one
//!   container of the tested image, the tags are rendered and checked. A bad value fails
//!   the image before it gets any tag (so no tag has to be taken back).
//! - [`publish`], once the image passed every test and has its tag: each content tag
//!   is a manifest PUT of the tested digest (`<repository>@<digest>`, no data moves), read
//!   back before it is reported. An existing tag that names another digest is kept,
//!   unless its template says `moving: true`; the image is not failed, it gets a warning.
//!
//! The build's steps that call them, recording in the image's report, are
//! [`crate::pipeline::content_tag_steps`].

use super::{reserved_reason, Values};
use crate::registry::{ImageRef, RegistryClient};
use crate::spec::InfoCmd;
use crate::spec::TagTemplate;
use anyhow::{anyhow, Context as _};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What happened to one content tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContentTagState {
    /// Computed, but the run pushes nothing (`--no-push`), or the image stopped before.
    NotPushed,
    /// The tag did not exist; it names this build now.
    Created,
    /// The tag already named this build's digest.
    Unchanged,
    /// The tag names another digest and does not move: it was left as it is.
    Kept,
    /// A `moving: true` tag moved from another digest to this build.
    Moved,
}

impl ContentTagState {
    pub fn name(self) -> &'static str {
        match self {
            ContentTagState::NotPushed => "not-pushed",
            ContentTagState::Created => "created",
            ContentTagState::Unchanged => "unchanged",
            ContentTagState::Kept => "kept",
            ContentTagState::Moved => "moved",
        }
    }
}

/// One content tag of an image, as the artifacts record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentTag {
    /// The tag alone (`python-3.11`); the repository is the image's.
    pub tag: String,
    /// The digest the tag names now. For `kept`: the other image it still names.
    pub digest: Option<String>,
    pub state: ContentTagState,
    /// Whether its template says `moving: true`.
    #[serde(default)]
    pub moving: bool,
    /// For `moved`: the digest it named before this build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// A rendered tag, before it is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub tag: String,
    pub moving: bool,
}

/// The commands the templates run in the image, each once, in order (they run where the
/// caller runs them; their outputs go to [`render`]).
pub fn commands(templates: &[TagTemplate]) -> Vec<InfoCmd> {
    let mut commands: Vec<&str> = vec![];
    for t in templates {
        for c in t.template.commands() {
            if !commands.contains(&c) {
                commands.push(c);
            }
        }
    }
    commands
        .iter()
        .map(|c| InfoCmd {
            description: "content tag".into(),
            command: c.to_string(),
        })
        .collect()
}

/// Render the tags from the [`commands`]' `outputs` (command → its standard output, or why
/// it failed): one per distinct tag; a tag two templates give moves only if both say so.
/// `prefix` is the spec's tag prefix: a tag in stackctl's own namespace is refused.
pub fn render(
    templates: &[TagTemplate],
    outputs: &HashMap<String, Result<String, String>>,
    commit: &str,
    date: &str,
    prefix: &str,
) -> anyhow::Result<Vec<Rendered>> {
    let values = Values {
        commit,
        date,
        outputs,
    };
    let mut out: Vec<Rendered> = vec![];
    for t in templates {
        let tag = t.template.render(&values).map_err(|e| anyhow!(e))?;
        if let Some(why) = reserved_reason(&tag, prefix) {
            anyhow::bail!(
                "tag template {:?} gives {why}: a content tag cannot be one of the tags stackctl manages",
                t.template.source
            );
        }
        match out.iter_mut().find(|r| r.tag == tag) {
            Some(r) => r.moving &= t.moving,
            None => out.push(Rendered {
                tag,
                moving: t.moving,
            }),
        }
    }
    Ok(out)
}

/// Push `tags` for the tested `<repository>@<digest>`; returns the records and the
/// warnings (one per tag kept on another digest).
pub async fn publish(
    client: &RegistryClient,
    repository: &str,
    digest: &str,
    tags: &[Rendered],
) -> anyhow::Result<(Vec<ContentTag>, Vec<String>)> {
    let src = ImageRef::parse(&format!("{repository}@{digest}"))?;
    let mut records = vec![];
    let mut warnings = vec![];
    for r in tags {
        let full = format!("{repository}:{}", r.tag);
        let dst = ImageRef::parse(&full)?;
        let before = client
            .head_manifest(&dst)
            .await
            .with_context(|| format!("checking {full}"))?
            .map(|d| d.digest);
        let (state, previous) = match &before {
            Some(d) if d == digest => (ContentTagState::Unchanged, None),
            Some(other) if !r.moving => {
                let w = format!(
                    "content tag {full} already names {other}, not this build ({digest}): kept \
                     there (content tags never move; `moving: true` lets one follow new builds)"
                );
                tracing::warn!("{w}");
                warnings.push(w);
                records.push(ContentTag {
                    tag: r.tag.clone(),
                    digest: Some(other.clone()),
                    state: ContentTagState::Kept,
                    moving: false,
                    previous: None,
                });
                continue;
            }
            Some(other) => (ContentTagState::Moved, Some(other.clone())),
            None => (ContentTagState::Created, None),
        };
        if state == ContentTagState::Unchanged {
            client.expect_digest(&dst, &full, digest).await?;
        } else {
            client.tag_digest(&src, &dst, &full).await?;
        }
        if state == ContentTagState::Moved {
            tracing::info!(
                "content tag {full} moved from {} to {digest} (moving: true)",
                previous.as_deref().unwrap_or_default()
            );
        }
        records.push(ContentTag {
            tag: r.tag.clone(),
            digest: Some(digest.to_string()),
            state,
            moving: r.moving,
            previous,
        });
    }
    Ok((records, warnings))
}
