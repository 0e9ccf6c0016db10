//! A content tag template as the spec writes it (`tags:`): literal text with `{COMMAND}`
//! parts. A part's value is the trimmed standard output of COMMAND, run with `/bin/sh -c` in
//! the built image (see [`crate::content_tags`], which runs and renders them). Braces inside a
//! part must balance (`{python3 -c 'print({1: 2}[1])'}` is one part). Two names are
//! built-ins, not commands: `{commit}` (the built commit's short sha, 7 characters) and
//! `{date}` (the build date, `YYYY-MM-DD`, UTC).

use serde_yaml::Value;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied into the tag as it is.
    Literal(String),
    /// A command run in the image; its trimmed output.
    Command(String),
    /// `{commit}`: the built commit's short sha.
    Commit,
    /// `{date}`: the build date (UTC).
    Date,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The template as written in the spec.
    pub source: String,
    pub parts: Vec<Part>,
}

/// One entry of a `tags:` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    pub template: Template,
    /// Whether an existing tag of this template may be moved to a newer build.
    pub moving: bool,
}

/// Whether `c` may appear in a tag (after its first character).
pub(crate) fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

impl Template {
    /// Parse a template; the error says what is wrong (the caller names file and key).
    pub fn parse(source: &str) -> Result<Template, String> {
        if source.trim().is_empty() {
            return Err("empty template".into());
        }
        let mut parts = vec![];
        let mut literal = String::new();
        let mut chars = source.char_indices();
        while let Some((start, c)) = chars.next() {
            match c {
                '{' => {
                    let mut depth = 1;
                    let mut end = None;
                    for (i, c) in chars.by_ref() {
                        match c {
                            '{' => depth += 1,
                            '}' => {
                                depth -= 1;
                                if depth == 0 {
                                    end = Some(i);
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    let Some(end) = end else {
                        return Err(format!(
                            "unbalanced braces in template {source:?}: the `{{` at character {} is never closed",
                            source[..start].chars().count() + 1
                        ));
                    };
                    let inner = source[start + 1..end].trim();
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(match inner {
                        "" => return Err(format!("empty `{{}}` in template {source:?}")),
                        "commit" => Part::Commit,
                        "date" => Part::Date,
                        cmd => Part::Command(cmd.to_string()),
                    });
                }
                '}' => {
                    return Err(format!(
                        "unbalanced braces in template {source:?}: a `}}` at character {} closes nothing",
                        source[..start].chars().count() + 1
                    ))
                }
                c if is_tag_char(c) => literal.push(c),
                c => {
                    return Err(format!(
                        "template {source:?}: {c:?} outside `{{...}}` cannot be part of a tag \
                         (letters, digits, `_`, `.`, `-`)"
                    ))
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        // What no command output can mend is refused now, not at the first push.
        if let Some(Part::Literal(first)) = parts.first() {
            if first.starts_with(['.', '-']) {
                return Err(format!(
                    "template {source:?} starts with {:?}, and a tag cannot (it starts with a letter, digit or `_`)",
                    &first[..1]
                ));
            }
        }
        let shortest: usize = parts
            .iter()
            .map(|p| match p {
                Part::Literal(s) => s.len(),
                Part::Commit => 7,
                Part::Date => 10,
                Part::Command(_) => 1,
            })
            .sum();
        if shortest > crate::tag::MAX_TAG_LEN {
            return Err(format!(
                "template {source:?} gives tags of at least {shortest} characters; a tag has at most {}",
                crate::tag::MAX_TAG_LEN
            ));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The commands of the template, in order.
    pub fn commands(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Command(c) => Some(c.as_str()),
            _ => None,
        })
    }

    /// A pattern matching every tag the template can give: the literal parts as written,
    /// any tag characters for the other parts. Promotion finds content tags with it.
    pub fn matcher(&self) -> regex::Regex {
        let mut re = String::from("^");
        for p in &self.parts {
            match p {
                Part::Literal(s) => re.push_str(&regex::escape(s)),
                Part::Date => re.push_str(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
                Part::Commit => re.push_str(r"[0-9a-f]{7}"),
                Part::Command(_) => re.push_str(r"[A-Za-z0-9_.-]+"),
            }
        }
        re.push('$');
        regex::Regex::new(&re).expect("escaped literals and fixed classes make a valid pattern")
    }
}

/// The `tags:` list as written (`Value`), parsed. `key` names the list in errors
/// (`tags`, or `images.<key>.tags`); each error names the entry (`tags[1]`).
pub fn parse_list(value: &Value, key: &str) -> Result<Vec<TagTemplate>, Vec<String>> {
    let Value::Sequence(items) = value else {
        return Err(vec![format!(
            "`{key}` must be a list of templates (strings, or {{template: STRING, moving: true}})"
        )]);
    };
    let mut out = vec![];
    let mut errors = vec![];
    for (i, item) in items.iter().enumerate() {
        let at = format!("`{key}[{i}]`");
        let (text, moving) = match item {
            Value::String(s) => (s.clone(), false),
            Value::Mapping(m) => {
                let mut text = None;
                let mut moving = false;
                let mut bad = false;
                for (k, v) in m {
                    match (k.as_str(), v) {
                        (Some("template"), Value::String(s)) => text = Some(s.clone()),
                        (Some("moving"), Value::Bool(b)) => moving = *b,
                        (Some("template"), _) => {
                            errors.push(format!("{at}: `template` must be a string"));
                            bad = true;
                        }
                        (Some("moving"), _) => {
                            errors.push(format!("{at}: `moving` must be true or false"));
                            bad = true;
                        }
                        (other, _) => {
                            errors.push(format!(
                                "{at}: unknown key {} (known: template, moving)",
                                other
                                    .map(|k| format!("`{k}`"))
                                    .unwrap_or_else(|| format!("{k:?}"))
                            ));
                            bad = true;
                        }
                    }
                }
                match text {
                    Some(t) if !bad => (t, moving),
                    Some(_) => continue,
                    None => {
                        errors.push(format!("{at}: missing `template`"));
                        continue;
                    }
                }
            }
            _ => {
                errors.push(format!(
                    "{at}: must be a template string or {{template: STRING, moving: true}}"
                ));
                continue;
            }
        };
        match Template::parse(&text) {
            Ok(template) => out.push(TagTemplate { template, moving }),
            Err(e) => errors.push(format!("{at}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_literals_commands_and_builtins() {
        let t =
            Template::parse("python-{python3 -c 'print({1: 2}[1])'}-{commit}.{ date }").unwrap();
        assert_eq!(
            t.parts,
            vec![
                Part::Literal("python-".into()),
                Part::Command("python3 -c 'print({1: 2}[1])'".into()),
                Part::Literal("-".into()),
                Part::Commit,
                Part::Literal(".".into()),
                Part::Date,
            ]
        );
        assert_eq!(
            t.commands().collect::<Vec<_>>(),
            ["python3 -c 'print({1: 2}[1])'"]
        );
        assert_eq!(
            Template::parse("latest").unwrap().parts,
            vec![Part::Literal("latest".into())]
        );
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        assert_eq!(Template::parse("  ").unwrap_err(), "empty template");
        let e = Template::parse("py-{python3 --version").unwrap_err();
        assert!(
            e.contains("unbalanced braces") && e.contains("character 4"),
            "{e}"
        );
        let e = Template::parse("py-{a{b}").unwrap_err();
        assert!(e.contains("unbalanced"), "{e}");
        let e = Template::parse("py}").unwrap_err();
        assert!(e.contains("closes nothing"), "{e}");
        assert!(Template::parse("a-{}").unwrap_err().contains("empty `{}`"));
        assert!(Template::parse("a b-{x}").unwrap_err().contains("' '"));
    }

    #[test]
    fn matchers_find_the_tags_of_a_template() {
        let m = Template::parse("python-{py}").unwrap().matcher();
        assert!(m.is_match("python-3.11"));
        assert!(!m.is_match("python-"));
        assert!(!m.is_match("2026.3-main"));
        let m = Template::parse("{commit}-{date}").unwrap().matcher();
        assert!(m.is_match("abcdef1-2026-03-01"));
        assert!(!m.is_match("abcdef1-latest"));
    }

    #[test]
    fn lists_name_the_entry_at_fault() {
        let v: Value = serde_yaml::from_str(
            "[\"py-{x}\", {template: \"{date}\", moving: true}, \"\", {moving: true}, {template: a, color: red}, 3]",
        )
        .unwrap();
        let errs = parse_list(&v, "images.base.tags").unwrap_err();
        assert_eq!(
            errs,
            vec![
                "`images.base.tags[2]`: empty template",
                "`images.base.tags[3]`: missing `template`",
                "`images.base.tags[4]`: unknown key `color` (known: template, moving)",
                "`images.base.tags[5]`: must be a template string or {template: STRING, moving: true}",
            ]
        );
        let v: Value =
            serde_yaml::from_str("[\"py-{x}\", {template: \"{date}\", moving: true}]").unwrap();
        let ok = parse_list(&v, "tags").unwrap();
        assert_eq!(ok.len(), 2);
        assert!(!ok[0].moving && ok[1].moving);
        assert!(
            parse_list(&Value::String("x".into()), "tags").unwrap_err()[0]
                .contains("must be a list")
        );
    }
}
