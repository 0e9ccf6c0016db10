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
    #[error("commit {0:?} is not a hexadecimal commit id")]
    BadCommit(String),
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
    // Cut first, then check: a long prefix can cut `stable-feature` down to `stable`.
    tag.truncate(MAX_TAG_LEN);
    if tag == quarter_stable_tag(prefix) || tag == GLOBAL_STABLE_TAG {
        return Err(TagError::Reserved {
            branch: branch.to_string(),
            tag,
        });
    }
    Ok(tag)
}

/// What follows the prefix in the tags a build gives (`tag.suffix` in the spec).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagSuffix {
    /// `<prefix>-<branch>` (the current tool's form).
    #[default]
    Branch,
    /// `<prefix>-<first 7 hex digits of the commit built>` (the old tool's early form).
    Commit,
}

/// How many hex digits of the commit a `commit` suffix carries (as the old tool's tags).
pub const SHORT_COMMIT_LEN: usize = 7;

/// The tag a build of `commit` on `branch` gives, by the spec's `suffix`.
pub fn build_tag(
    prefix: &str,
    suffix: TagSuffix,
    branch: &str,
    commit: &str,
) -> Result<String, TagError> {
    match suffix {
        TagSuffix::Branch => branch_tag(prefix, branch),
        TagSuffix::Commit => commit_tag(prefix, commit),
    }
}

/// `<prefix>-<short commit>`, e.g. `2026.3-5c83aa3`.
pub fn commit_tag(prefix: &str, commit: &str) -> Result<String, TagError> {
    if !is_valid_tag(prefix) {
        return Err(TagError::BadPrefix(prefix.to_string()));
    }
    let short = &commit[..commit.len().min(SHORT_COMMIT_LEN)];
    if short.is_empty() || !short.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TagError::BadCommit(commit.to_string()));
    }
    let mut tag = format!("{prefix}-{}", short.to_ascii_lowercase());
    tag.truncate(MAX_TAG_LEN);
    Ok(tag)
}

/// The quarter's stable tag: `<prefix>-stable`.
pub fn quarter_stable_tag(prefix: &str) -> String {
    format!("{prefix}-stable")
}

/// The global stable tag.
pub const GLOBAL_STABLE_TAG: &str = "stable";

/// The branch whose builds always rebuild everything (they may go to production), and
/// whose `<prefix>-main` registry cache every branch imports.
pub const MAIN_BRANCH: &str = "main";

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
    fn reserved_tag_is_checked_after_the_cut() {
        let prefix = "p".repeat(121);
        // 121 + "-" + "stable-feature" is cut to 128: `<prefix>-stable`.
        assert_eq!(
            branch_tag(&prefix, "stable-feature"),
            Err(TagError::Reserved {
                branch: "stable-feature".into(),
                tag: format!("{prefix}-stable"),
            })
        );
        assert_eq!(
            branch_tag(&prefix, "feature-stable").unwrap(),
            format!("{prefix}-featur")
        );
    }

    #[test]
    fn commit_suffix() {
        assert_eq!(
            build_tag("2026.3", TagSuffix::Commit, "main", "5C83AA3f00d").unwrap(),
            "2026.3-5c83aa3"
        );
        assert_eq!(
            build_tag("2026.3", TagSuffix::Branch, "main", "5c83aa3").unwrap(),
            "2026.3-main"
        );
        assert!(matches!(
            commit_tag("2026.3", "not-hex"),
            Err(TagError::BadCommit(_))
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
