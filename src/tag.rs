//! Image tags: `<prefix>-<branch made a valid tag>`.

use thiserror::Error;

/// Characters the old tool replaced by `-` in a branch name.
const OLD_TOOL_REPLACED: &str = "~!@#$%^&*()+`=[]{}|\\;:'\",<>/?";

/// The longest tag the OCI distribution spec allows.
pub const MAX_TAG_LEN: usize = 128;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TagError {
    #[error("branch {branch:?} gives the tag `{tag}`, which is reserved for promoted images; use another branch name")]
    Reserved { branch: String, tag: String },
    #[error("branch name is empty")]
    EmptyBranch,
    #[error("tag prefix {0:?} is not a valid start of a tag (allowed: letters, digits, `_`, `.`, `-`, not starting with `.` or `-`)")]
    BadPrefix(String),
}

/// Whether `tag` is a valid OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    tag.len() <= MAX_TAG_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The branch part of a tag: what the old tool replaced becomes `-`, and so
/// does anything else a tag cannot hold.
pub fn sanitize_branch(branch: &str) -> String {
    branch
        .chars()
        .map(|c| {
            if OLD_TOOL_REPLACED.contains(c)
                || !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            {
                '-'
            } else {
                c
            }
        })
        .collect()
}

/// The tag images of `branch` get: `<prefix>-<sanitized branch>`, cut to 128 characters.
///
/// A branch whose tag part is `stable` is refused: `<prefix>-stable` is the
/// quarter's promoted tag, and a build must never overwrite it.
pub fn branch_tag(prefix: &str, branch: &str) -> Result<String, TagError> {
    if branch.is_empty() {
        return Err(TagError::EmptyBranch);
    }
    if !is_valid_tag(prefix) {
        return Err(TagError::BadPrefix(prefix.to_string()));
    }
    let part = sanitize_branch(branch);
    let mut tag = format!("{prefix}-{part}");
    if part == "stable" || tag == "stable" {
        return Err(TagError::Reserved {
            branch: branch.to_string(),
            tag,
        });
    }
    tag.truncate(MAX_TAG_LEN);
    Ok(tag)
}

/// The quarter's stable tag: `<prefix>-stable`.
pub fn quarter_stable_tag(prefix: &str) -> String {
    format!("{prefix}-stable")
}

/// The global stable tag.
pub const GLOBAL_STABLE_TAG: &str = "stable";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_branch() {
        assert_eq!(branch_tag("2026.3", "main").unwrap(), "2026.3-main");
    }

    #[test]
    fn old_tool_characters_become_dashes() {
        assert_eq!(
            branch_tag("2026.3", "feature/new:thing@x").unwrap(),
            "2026.3-feature-new-thing-x"
        );
        assert_eq!(sanitize_branch("a~b!c\"d'e"), "a-b-c-d-e");
    }

    #[test]
    fn non_ascii_becomes_dash_and_result_is_valid() {
        let t = branch_tag("2026.3", "fix-ümlaut branch").unwrap();
        assert_eq!(t, "2026.3-fix--mlaut-branch");
        assert!(is_valid_tag(&t));
    }

    #[test]
    fn long_branch_is_cut_to_128() {
        let t = branch_tag("2026.3", &"x".repeat(300)).unwrap();
        assert_eq!(t.len(), 128);
        assert!(is_valid_tag(&t));
    }

    #[test]
    fn stable_branch_is_refused() {
        assert!(matches!(
            branch_tag("2026.3", "stable"),
            Err(TagError::Reserved { .. })
        ));
    }

    #[test]
    fn bad_prefix_is_refused() {
        assert!(matches!(
            branch_tag("-x", "main"),
            Err(TagError::BadPrefix(_))
        ));
        assert!(matches!(
            branch_tag("", "main"),
            Err(TagError::BadPrefix(_))
        ));
    }

    #[test]
    fn tag_validity() {
        assert!(is_valid_tag("2026.3-main"));
        assert!(is_valid_tag("_x"));
        assert!(!is_valid_tag(".x"));
        assert!(!is_valid_tag("-x"));
        assert!(!is_valid_tag("a/b"));
        assert!(!is_valid_tag(&"a".repeat(129)));
    }
}
