//! The content tags of promoted images (`stackctl tag`): `artifacts/CONTENT_TAGS`, one
//! `<promoted ref> <content tag ref>` line for each content tag that names the promoted
//! digest, so a user sees which `python-...` tag a stable image has.
//!
//! The tags are found by listing the repository's tags, keeping those the image's
//! templates can give (their literal parts, see [`super::Template::matcher`]), and one
//! HEAD each to compare digests. No data moves.

use crate::registry::{exists_many, ImageRef, RegistryClient};
use crate::spec::TagTemplate;
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// The artifact's name.
pub const CONTENT_TAGS: &str = "CONTENT_TAGS";

/// For each promoted `(source, target)` whose source has `digest`: the content tags of
/// the source's repository that name that digest, as `(target, content tag ref)`.
/// `images` are the spec's images as `(image_name, tag templates)`.
pub async fn of_promoted(
    client: &RegistryClient,
    images: &[(&str, &[TagTemplate])],
    pairs: &[(String, String)],
    digests: &[String],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = vec![];
    for ((source, target), digest) in pairs.iter().zip(digests) {
        let src = ImageRef::parse(source)?;
        let name = src.name();
        let Some((_, templates)) = images.iter().find(|(image_name, _)| {
            *image_name == name || ImageRef::parse(image_name).is_ok_and(|r| r.name() == name)
        }) else {
            continue;
        };
        if templates.is_empty() {
            continue;
        }
        let matchers: Vec<regex::Regex> = templates.iter().map(|t| t.template.matcher()).collect();
        let tags = client
            .list_tags(&src)
            .await
            .with_context(|| format!("listing the tags of {name}"))?;
        let candidates: Vec<ImageRef> = tags
            .iter()
            .filter(|t| matchers.iter().any(|m| m.is_match(t)))
            .map(|t| src.with_tag(t))
            .collect();
        for r in exists_many(client, &candidates).await {
            if let Some(e) = r.error {
                anyhow::bail!("checking {}: {e}", r.reference);
            }
            if r.digest.as_deref() == Some(digest.as_str()) {
                out.push((target.clone(), r.reference));
            }
        }
    }
    Ok(out)
}

/// Write `<artifacts>/CONTENT_TAGS` (one `<target> <content tag ref>` a line).
pub fn write(artifacts: &Path, lines: &[(String, String)]) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(artifacts)
        .with_context(|| format!("cannot create {}", artifacts.display()))?;
    let p = artifacts.join(CONTENT_TAGS);
    let text: String = lines.iter().map(|(t, c)| format!("{t} {c}\n")).collect();
    std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    Ok(p)
}
