//! Content tags (`tags:` in the spec): tags computed from what is inside a built image,
//! such as `python-3.11.8`, pushed next to the run's `<prefix>-<branch>` tag.
//!
//! The templates' syntax is the spec's ([`crate::spec::tag_template`]); here their commands
//! run in the image and their values make the tags.
//!
//! A tag made from a template never moves to another digest once it exists, unless its
//! entry says `moving: true` (see [`publish`]).

pub mod promoted;
pub mod publish;

use std::collections::HashMap;

use crate::spec::tag_template::{is_tag_char, Part, Template};

/// Rendering belongs with the commands that give the values; the syntax is the spec's.
impl Template {
    /// The tag, from the commands' outputs and the built-ins. The error names the
    /// template, the command and what it printed.
    pub fn render(&self, values: &Values<'_>) -> Result<String, String> {
        let mut tag = String::new();
        let mut shown = vec![];
        for p in &self.parts {
            match p {
                Part::Literal(s) => tag.push_str(s),
                Part::Commit => tag.push_str(values.commit),
                Part::Date => tag.push_str(values.date),
                Part::Command(cmd) => {
                    let out = values.outputs.get(cmd).ok_or_else(|| {
                        format!(
                            "tag template {:?}: command `{cmd}` did not run",
                            self.source
                        )
                    })?;
                    let value = match out {
                        Ok(v) => v.trim(),
                        Err(why) => {
                            return Err(format!(
                                "tag template {:?}: command `{cmd}` failed in the image: {}",
                                self.source,
                                why.trim()
                            ))
                        }
                    };
                    if value.is_empty() || !value.chars().all(is_tag_char) {
                        return Err(format!(
                            "tag template {:?}: command `{cmd}` printed {value:?}, which is not a valid \
                             part of a tag (one or more of letters, digits, `_`, `.`, `-`)",
                            self.source
                        ));
                    }
                    shown.push(format!("`{cmd}` printed {value:?}"));
                    tag.push_str(value);
                }
            }
        }
        if !crate::tag::is_valid_tag(&tag) {
            return Err(format!(
                "tag template {:?} gives {tag:?}, which is not a valid tag \
                 ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}){}",
                self.source,
                if shown.is_empty() {
                    String::new()
                } else {
                    format!(": {}", shown.join(", "))
                }
            ));
        }
        Ok(tag)
    }
}

/// What a template's parts are filled with.
pub struct Values<'a> {
    /// The built commit's short sha.
    pub commit: &'a str,
    /// `YYYY-MM-DD` (UTC).
    pub date: &'a str,
    /// Command → its standard output (exit 0), or why it failed.
    pub outputs: &'a HashMap<String, Result<String, String>>,
}

/// Why a rendered tag may not be a content tag: it is one of the tags stackctl itself
/// manages (`<prefix>-<branch>`, `<prefix>-stable`, `stable`, `buildcache-...`).
pub fn reserved_reason(tag: &str, prefix: &str) -> Option<String> {
    if tag == crate::tag::GLOBAL_STABLE_TAG {
        return Some(format!("`{tag}` is the promoted stable tag"));
    }
    if tag.starts_with("buildcache-") {
        return Some(format!("`{tag}` is a build cache tag (`buildcache-...`)"));
    }
    if !prefix.is_empty() && tag.starts_with(&format!("{prefix}-")) {
        return Some(format!(
            "`{tag}` is in the branch tags' namespace (`{prefix}-<branch>`)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(pairs: &[(&str, Result<&str, &str>)]) -> HashMap<String, Result<String, String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string).map_err(str::to_string)))
            .collect()
    }

    #[test]
    fn renders_and_refuses_values_that_are_not_tags() {
        let t = Template::parse("python-{py}-{commit}-{date}").unwrap();
        let out = outputs(&[("py", Ok("3.11.2\n"))]);
        let v = Values {
            commit: "abcdef1",
            date: "2026-03-01",
            outputs: &out,
        };
        assert_eq!(t.render(&v).unwrap(), "python-3.11.2-abcdef1-2026-03-01");

        let out = outputs(&[("py", Ok("Python 3.11.2\n"))]);
        let e = t.render(&Values { outputs: &out, ..v }).unwrap_err();
        assert!(
            e.contains("command `py` printed \"Python 3.11.2\", which is not a valid part"),
            "{e}"
        );
        let out = outputs(&[("py", Ok(""))]);
        assert!(t
            .render(&Values { outputs: &out, ..v })
            .unwrap_err()
            .contains("printed \"\""));
        let out = outputs(&[("py", Err("exit code 127\nsh: py: not found"))]);
        let e = t.render(&Values { outputs: &out, ..v }).unwrap_err();
        assert!(
            e.contains("command `py` failed in the image: exit code 127"),
            "{e}"
        );

        // Each value is fine, the whole is not: starts with `.`, or too long.
        let t2 = Template::parse("{py}").unwrap();
        let out = outputs(&[("py", Ok(".hidden"))]);
        let e = t2.render(&Values { outputs: &out, ..v }).unwrap_err();
        assert!(
            e.contains("not a valid tag") && e.contains("`py` printed \".hidden\""),
            "{e}"
        );
        let long = "x".repeat(130);
        let out = outputs(&[("py", Ok(long.as_str()))]);
        assert!(t2.render(&Values { outputs: &out, ..v }).is_err());
    }

    #[test]
    fn stackctl_tags_are_reserved() {
        assert!(reserved_reason("stable", "2026.3").is_some());
        assert!(reserved_reason("2026.3-main", "2026.3").is_some());
        assert!(reserved_reason("buildcache-x", "2026.3").is_some());
        assert!(reserved_reason("python-3.11", "2026.3").is_none());
    }
}
