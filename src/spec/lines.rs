//! Where a key is written in the spec's text, for errors that name its line; a leaf that
//! loading and validation share.

/// The 1-based line where `key:` is written with the given indentation, if found.
pub(super) fn line_of_key(text: &str, key: &str, indent: usize) -> Option<usize> {
    text.lines()
        .position(|l| {
            let trimmed = l.trim_start();
            l.len() - trimmed.len() == indent
                && (trimmed.starts_with(&format!("{key}:"))
                    || trimmed.starts_with(&format!("\"{key}\":"))
                    || trimmed.starts_with(&format!("'{key}':")))
        })
        .map(|i| i + 1)
}
