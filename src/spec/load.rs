//! Reading `spec.yml` and `change_ignore.json` into a [`Spec`].

use super::attest::RawAttest;
use super::cache::{CacheSpec, RawCache};
use super::lines::line_of_key;
use super::model::{ChangeRules, ImageSpec, InfoCmd, Spec, TestSpec};
use super::platform::Platform;
use super::validate;
use crate::tag::TagSuffix;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_yaml::Value;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a spec could not be used. Every variant names the file.
#[derive(Debug, Error)]
pub enum SpecError {
    #[error("no spec found: neither {} nor {} exists (use --spec PATH)", .root.display(), .images.display())]
    NotFound { root: PathBuf, images: PathBuf },
    #[error("{}: the spec must be a regular file, and this is {kind}", .path.display())]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {message}", .path.display(), .line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// One or more semantic problems, each already prefixed with file, key and line.
    #[error("{}", .problems.join("\n"))]
    Invalid { problems: Vec<String> },
}

/// `spec.yml` at the repository root, else `images/spec.yml`.
pub fn default_spec_path(repo: &Path) -> Result<PathBuf, SpecError> {
    let root = repo.join("spec.yml");
    let images = repo.join("images").join("spec.yml");
    // The first that exists, whatever it is: a folder or fifo named spec.yml is refused
    // by name, not passed over.
    if root.exists() {
        Ok(root)
    } else if images.exists() {
        Ok(images)
    } else {
        Err(SpecError::NotFound { root, images })
    }
}

/// Refuse what is not a regular file (links followed) before opening it: reading a fifo
/// would block, and /dev/zero never ends.
fn check_regular_file(path: &Path) -> Result<(), SpecError> {
    use std::os::unix::fs::FileTypeExt;
    let md = std::fs::metadata(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let t = md.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(SpecError::NotAFile {
        path: path.to_path_buf(),
        kind,
    })
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A YAML mapping whose keys must be unique: YAML's own rule, which serde_yaml leaves to
/// the target type (an `IndexMap` would keep the last entry without a word).
#[derive(Debug)]
struct UniqueKeys<V>(IndexMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueKeys<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Visit<V> {
            type Value = UniqueKeys<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping of image keys")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = IndexMap::new();
                while let Some(k) = m.next_key::<String>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom(format!(
                            "image key `{k}` appears twice in `images`"
                        )));
                    }
                    let v = m.next_value()?;
                    out.insert(k, v);
                }
                Ok(UniqueKeys(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
struct RawSpec {
    #[serde(default)]
    root: Option<OneOrMany>,
    #[serde(default)]
    images: Option<UniqueKeys<RawImage>>,
    #[serde(default)]
    tag: Option<RawTag>,
    #[serde(default)]
    all_info_cmds: IndexMap<String, InfoCmd>,
    #[serde(default)]
    changes: Option<RawChanges>,
    #[serde(default)]
    cache: Option<RawCache>,
    /// Attestations (see super::attest).
    #[serde(default)]
    attest: Option<Value>,
    /// The signing key (`sign: {key: PATH}`).
    #[serde(default)]
    sign: Option<RawSign>,
    /// Content tag templates (see super::tag_template).
    #[serde(default)]
    tags: Option<Value>,
    /// Target platforms (see super::platform).
    #[serde(default)]
    platforms: Option<Value>,
    #[serde(default)]
    integration_platforms: Option<Value>,
    /// Defaults of every image's `tests:`.
    #[serde(default)]
    tests: Option<super::model::StackTestSpec>,
    /// Reproducible builds (see ImageSpec::reproducible).
    #[serde(default)]
    reproducible: Option<bool>,
    /// Package managers and size budget (see super::compare).
    #[serde(default)]
    packages: Option<Value>,
    #[serde(default)]
    size_budget: Option<Value>,
    #[serde(flatten)]
    unknown: IndexMap<String, Value>,
}

/// `sign: {key: PATH}`: a cosign or PEM private key, relative to the spec's folder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSign {
    key: String,
}

#[derive(Debug, Deserialize)]
struct RawTag {
    prefix: Value,
    #[serde(default)]
    suffix: Option<Value>,
    #[serde(flatten)]
    unknown: IndexMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct RawChanges {
    #[serde(default)]
    ignore: Vec<String>,
    #[serde(default)]
    build_all: Vec<String>,
    #[serde(flatten)]
    unknown: IndexMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct RawImage {
    image_name: Option<String>,
    #[serde(default)]
    depend_on: Option<String>,
    #[serde(default)]
    build_args: Option<IndexMap<String, Value>>,
    #[serde(default)]
    info_cmds: Option<Vec<String>>,
    #[serde(default)]
    integration_tests: bool,
    #[serde(default)]
    prune: bool,
    #[serde(default = "yes")]
    prepull: bool,
    #[serde(default)]
    tests: Option<TestSpec>,
    #[serde(default)]
    cache: Option<RawCache>,
    /// Attestations (see super::attest).
    #[serde(default)]
    attest: Option<Value>,
    /// Content tag templates (see super::tag_template).
    #[serde(default)]
    tags: Option<Value>,
    /// Target platforms (see super::platform).
    #[serde(default)]
    platforms: Option<Value>,
    #[serde(default)]
    integration_platforms: Option<Value>,
    #[serde(default)]
    reproducible: Option<bool>,
    #[serde(default)]
    packages: Option<Value>,
    #[serde(default)]
    size_budget: Option<Value>,
    #[serde(flatten)]
    unknown: IndexMap<String, Value>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct RawChangeIgnore {
    #[serde(rename = "ChangeIgnore", default)]
    change_ignore: Vec<String>,
    #[serde(rename = "BuildAll", default)]
    build_all: Vec<String>,
    #[serde(flatten)]
    unknown: IndexMap<String, serde_json::Value>,
}

/// A YAML scalar as the string a build arg gets (`3.11` stays `3.11`).
fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The 1-based line of each `key:` written with the given indentation (first one wins),
/// quoted or not: [`line_of_key`] for all keys at once.
fn lines_of_keys(text: &str, indent: usize) -> std::collections::HashMap<&str, usize> {
    let mut out = std::collections::HashMap::new();
    for (i, l) in text.lines().enumerate() {
        let trimmed = l.trim_start();
        if l.len() - trimmed.len() != indent {
            continue;
        }
        let key = if let Some(rest) = trimmed.strip_prefix('"') {
            rest.split_once("\":").map(|(k, _)| k)
        } else if let Some(rest) = trimmed.strip_prefix('\'') {
            rest.split_once("':").map(|(k, _)| k)
        } else {
            trimmed.split_once(':').map(|(k, _)| k)
        };
        if let Some(k) = key {
            out.entry(k).or_insert(i + 1);
        }
    }
    out
}

/// The 1-based line of `key:` inside the block of the image whose key is on line
/// `image_line` (the lines below it that are indented deeper).
fn line_in_image(text: &str, image_line: Option<usize>, key: &str) -> Option<usize> {
    let start = image_line?;
    let mut lines = text.lines().enumerate().skip(start - 1);
    let (_, head) = lines.next()?;
    let indent = head.len() - head.trim_start().len();
    for (i, l) in lines {
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if l.len() - trimmed.len() <= indent {
            break;
        }
        if trimmed.starts_with(&format!("{key}:")) {
            return Some(i + 1);
        }
    }
    None
}

/// What kind of YAML value this is, for messages.
fn describe_value(v: &Value) -> String {
    match v {
        Value::Null => "an empty value".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

/// The indentation of the entries under `images:` (two spaces in most files).
fn image_indent(text: &str) -> usize {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with("images:"))
        .skip(1);
    lines
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| l.len() - l.trim_start().len())
        .unwrap_or(2)
}

impl Spec {
    /// Load the spec at `path` (or the default one under `repo`) and validate it.
    pub fn load(repo: &Path, path: Option<&Path>) -> Result<Spec, SpecError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => default_spec_path(repo)?,
        };
        check_regular_file(&path)?;
        let text = std::fs::read_to_string(&path).map_err(|source| SpecError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_str_at(&text, &path)
    }

    /// Parse and validate spec text as if read from `path` (whose folder decides `images/`).
    pub fn from_str_at(text: &str, path: &Path) -> Result<Spec, SpecError> {
        // A byte order mark, as some Windows editors write, is no part of the YAML.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let raw: RawSpec = serde_yaml::from_str(text).map_err(|e| SpecError::Syntax {
            path: path.to_path_buf(),
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })?;
        let (spec_dir, images_dir) = layout(path);
        let mut l = Loader {
            text,
            path,
            warnings: vec![],
            problems: vec![],
        };
        for k in raw.unknown.keys() {
            let at = l.at(line_of_key(text, k, 0));
            l.warnings.push(format!("{at}: unknown key `{k}` ignored"));
        }
        let (tag_prefix, tag_suffix) = l.tag(raw.tag.as_ref());
        let stack = StackDefaults {
            tags: l.stack_tags(raw.tags.as_ref()),
            platforms: l.stack_platforms("platforms", raw.platforms.as_ref()),
            integration_platforms: l
                .stack_platforms("integration_platforms", raw.integration_platforms.as_ref()),
            cache: raw.cache,
            attest: raw.attest.as_ref().and_then(|v| {
                RawAttest::parse(v, "attest")
                    .map_err(|e| {
                        let at = l.at(line_of_key(text, "attest", 0));
                        l.problems.push(format!("{at}: {e}"));
                    })
                    .ok()
            }),
            tests: raw.tests.unwrap_or_default(),
            reproducible: raw.reproducible.unwrap_or(true),
            packages: raw.packages.as_ref().and_then(|v| {
                super::compare::parse_packages(v, "packages")
                    .map_err(|e| {
                        let at = l.at(line_of_key(text, "packages", 0));
                        l.problems.push(format!("{at}: {e}"));
                    })
                    .ok()
            }),
            size_budget: raw.size_budget.as_ref().and_then(|v| {
                super::compare::RawBudget::parse(v, "size_budget")
                    .map_err(|e| {
                        let at = l.at(line_of_key(text, "size_budget", 0));
                        l.problems.push(format!("{at}: {e}"));
                    })
                    .ok()
            }),
        };
        let images = l.images(raw.images, &stack);
        let declared_roots = match raw.root {
            None => vec![],
            Some(OneOrMany::One(s)) => vec![s],
            Some(OneOrMany::Many(v)) => v,
        };
        if let Some(c) = &raw.changes {
            for k in c.unknown.keys() {
                let at = l.at(line_of_key(text, k, 2));
                l.warnings.push(format!(
                    "{at}: unknown key `changes.{k}` ignored (known: ignore, build_all)"
                ));
            }
        }
        let Loader {
            mut warnings,
            mut problems,
            ..
        } = l;
        let changes = load_change_rules(&spec_dir, raw.changes, &mut warnings)?;

        let mut spec = Spec {
            path: path.to_path_buf(),
            images_dir,
            roots: vec![],
            images,
            tag_prefix,
            tag_suffix,
            all_info_cmds: raw.all_info_cmds,
            changes,
            warnings,
            sign_key: raw.sign.map(|s| spec_dir.join(s.key)),
        };
        validate::validate(&mut spec, text, &declared_roots, &mut problems);
        if problems.is_empty() {
            Ok(spec)
        } else {
            Err(SpecError::Invalid { problems })
        }
    }
}

/// The spec's folder and the images' folder: old layout, the spec lives in `images/`; new
/// layout, `images/` is beside the spec.
fn layout(path: &Path) -> (PathBuf, PathBuf) {
    let spec_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let spec_dir = if spec_dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        spec_dir
    };
    let images_dir = if spec_dir.file_name().is_some_and(|n| n == "images") {
        spec_dir.clone()
    } else {
        spec_dir.join("images")
    };
    (spec_dir, images_dir)
}

/// What the stack's top level gives every image that does not say otherwise.
struct StackDefaults {
    /// Content tags: the stack's list, which an image's own `tags:` replaces.
    tags: Vec<super::TagTemplate>,
    /// The stack's platform lists, which an image's own lists replace.
    platforms: Vec<Platform>,
    integration_platforms: Vec<Platform>,
    /// The stack's `cache:`, merged key by key with an image's.
    cache: Option<RawCache>,
    /// The stack's `attest:`, merged key by key with an image's.
    attest: Option<RawAttest>,
    /// The stack's `tests:` (runner, cache), which an image's own keys replace.
    tests: super::model::StackTestSpec,
    /// The stack's `reproducible:` (default true), which an image's own replaces.
    reproducible: bool,
    /// The stack's `packages:`, which an image's own replaces.
    packages: Option<Vec<String>>,
    /// The stack's `size_budget:`, merged key by key with an image's.
    size_budget: Option<super::compare::RawBudget>,
}

/// One spec text being read: the remarks and problems found so far, each naming the file
/// (and line, when known).
struct Loader<'a> {
    text: &'a str,
    path: &'a Path,
    warnings: Vec<String>,
    problems: Vec<String>,
}

impl Loader<'_> {
    /// `path:line`, or the path alone.
    fn at(&self, line: Option<usize>) -> String {
        match line {
            Some(l) => format!("{}:{l}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    /// The `tag:` section: the prefix and the suffix.
    fn tag(&mut self, tag: Option<&RawTag>) -> (String, TagSuffix) {
        let text = self.text;
        let Some(t) = tag else {
            let missing = format!("{}: missing `tag.prefix`", self.path.display());
            self.problems.push(missing);
            return (String::new(), TagSuffix::default());
        };
        let mut tag_suffix = TagSuffix::default();
        match &t.suffix {
            None => {}
            Some(Value::String(s)) if s == "branch" => tag_suffix = TagSuffix::Branch,
            Some(Value::String(s)) if s == "commit" => tag_suffix = TagSuffix::Commit,
            Some(v) => {
                let at = self.at(line_of_key(text, "suffix", 2));
                self.problems.push(format!(
                    "{at}: `tag.suffix` must be `branch` or `commit`, not {}",
                    describe_value(v)
                ))
            }
        }
        for k in t.unknown.keys() {
            let at = self.at(line_of_key(text, k, 2));
            self.warnings
                .push(format!("{at}: unknown key `tag.{k}` ignored"));
        }
        let prefix_at = self.at(line_of_key(text, "prefix", 2));
        if t.prefix.is_number() {
            // YAML reads `2026.10` as the number 2026.1: the tag would lose the 0.
            self.warnings.push(format!(
                "{prefix_at}: `tag.prefix` is a number ({}); quote it (\"...\") so YAML keeps it as written",
                scalar_string(&t.prefix).unwrap_or_default()
            ));
        }
        let prefix = match &t.prefix {
            Value::String(s) if s.is_empty() => {
                self.problems.push(format!(
                    "{prefix_at}: `tag.prefix` is empty (give the quarter, e.g. \"2026.3\")"
                ));
                String::new()
            }
            Value::String(_) | Value::Number(_) => scalar_string(&t.prefix).unwrap_or_default(),
            v => {
                self.problems.push(format!(
                    "{prefix_at}: `tag.prefix` must be a string such as \"2026.3\", not {}",
                    describe_value(v)
                ));
                String::new()
            }
        };
        (prefix, tag_suffix)
    }

    /// The stack's `tags:` list.
    fn stack_tags(&mut self, v: Option<&Value>) -> Vec<super::TagTemplate> {
        let Some(v) = v else { return vec![] };
        super::tag_template::parse_list(v, "tags").unwrap_or_else(|errs| {
            let here = self.at(line_of_key(self.text, "tags", 0));
            self.problems
                .extend(errs.into_iter().map(|e| format!("{here}: {e}")));
            vec![]
        })
    }

    /// One of the stack's platform lists (`platforms:`, `integration_platforms:`).
    fn stack_platforms(&mut self, key: &str, v: Option<&Value>) -> Vec<Platform> {
        let Some(v) = v else { return vec![] };
        super::platform::parse_list(v, key).unwrap_or_else(|errs| {
            let here = self.at(line_of_key(self.text, key, 0));
            self.problems
                .extend(errs.into_iter().map(|e| format!("{here}: {e}")));
            vec![]
        })
    }

    /// The `images:` section, each image with the stack's defaults applied.
    fn images(
        &mut self,
        raw: Option<UniqueKeys<RawImage>>,
        stack: &StackDefaults,
    ) -> IndexMap<String, ImageSpec> {
        let mut images = IndexMap::new();
        let m = match raw {
            None => {
                let missing = format!("{}: missing `images`", self.path.display());
                self.problems.push(missing);
                return images;
            }
            Some(m) if m.0.is_empty() => {
                let empty = format!("{}: `images` is empty", self.path.display());
                self.problems.push(empty);
                return images;
            }
            Some(m) => m,
        };
        // One pass over the text for every key's line (a search per image made loading
        // 8,000 images take seconds).
        let key_lines = lines_of_keys(self.text, image_indent(self.text));
        for (key, ri) in m.0 {
            let line = key_lines.get(key.as_str()).copied();
            let image = self.image(key.clone(), ri, line, stack);
            images.insert(key, image);
        }
        images
    }

    /// One image, its key on `line`.
    fn image(
        &mut self,
        key: String,
        ri: RawImage,
        line: Option<usize>,
        stack: &StackDefaults,
    ) -> ImageSpec {
        let at = self.at(line);
        for k in ri.unknown.keys() {
            self.warnings
                .push(format!("{at}: image `{key}`: unknown key `{k}` ignored"));
        }
        let mut build_args = IndexMap::new();
        for (k, v) in ri.build_args.unwrap_or_default() {
            match scalar_string(&v) {
                Some(s) => {
                    build_args.insert(k, s);
                }
                None => self.problems.push(format!(
                    "{at}: image `{key}`: build arg `{k}` must be a string, number or boolean"
                )),
            }
        }
        let image_name = match ri.image_name {
            Some(n) if n.trim().is_empty() => {
                self.problems.push(format!(
                    "{at}: image `{key}`: `image_name` is empty (give the repository, e.g. ghcr.io/owner/{key})"
                ));
                String::new()
            }
            Some(n) => n,
            None => {
                self.problems
                    .push(format!("{at}: image `{key}`: missing `image_name`"));
                String::new()
            }
        };
        let cache = CacheSpec::resolve(stack.cache.as_ref(), ri.cache.as_ref(), &key, &image_name)
            .unwrap_or_else(|e| {
                self.problems.push(format!("{at}: image `{key}`: {e}"));
                CacheSpec::default()
            });
        let attest = match &ri.attest {
            None => None,
            Some(v) => RawAttest::parse(v, &format!("images.{key}.attest"))
                .map_err(|e| {
                    let here = self.at(line_in_image(self.text, line, "attest").or(line));
                    self.problems.push(format!("{here}: image `{key}`: {e}"));
                })
                .ok(),
        };
        let attest = RawAttest::resolve(stack.attest.as_ref(), attest.as_ref());
        let packages = match &ri.packages {
            None => stack.packages.clone().unwrap_or_default(),
            Some(v) => super::compare::parse_packages(v, &format!("images.{key}.packages"))
                .unwrap_or_else(|e| {
                    let here = self.at(line_in_image(self.text, line, "packages").or(line));
                    self.problems.push(format!("{here}: image `{key}`: {e}"));
                    vec![]
                }),
        };
        let budget = ri.size_budget.as_ref().and_then(|v| {
            super::compare::RawBudget::parse(v, &format!("images.{key}.size_budget"))
                .map_err(|e| {
                    let here = self.at(line_in_image(self.text, line, "size_budget").or(line));
                    self.problems.push(format!("{here}: image `{key}`: {e}"));
                })
                .ok()
        });
        let size_budget =
            super::compare::RawBudget::resolve(stack.size_budget.as_ref(), budget.as_ref());
        let tags = match &ri.tags {
            Some(v) => super::tag_template::parse_list(v, &format!("images.{key}.tags"))
                .unwrap_or_else(|errs| {
                    self.problems.extend(
                        errs.into_iter()
                            .map(|e| format!("{at}: image `{key}`: {e}")),
                    );
                    vec![]
                }),
            None => stack.tags.clone(),
        };
        let platforms =
            self.image_platforms(&key, line, "platforms", &ri.platforms, &stack.platforms);
        let integration_platforms = self.image_platforms(
            &key,
            line,
            "integration_platforms",
            &ri.integration_platforms,
            &stack.integration_platforms,
        );
        self.check_integration_platforms(&key, line, &platforms, &integration_platforms);
        ImageSpec {
            key,
            image_name,
            depend_on: ri.depend_on,
            build_args,
            info_cmds: ri.info_cmds.unwrap_or_default(),
            integration_tests: ri.integration_tests,
            prune: ri.prune,
            prepull: ri.prepull,
            tests: {
                let mut t = ri.tests.unwrap_or_default();
                t.runner = t.runner.or(stack.tests.runner);
                t.cache = t.cache.or(stack.tests.cache);
                t.skip_unchanged = t.skip_unchanged.or(stack.tests.skip_unchanged);
                t
            },
            reproducible: ri.reproducible.unwrap_or(stack.reproducible),
            cache,
            attest,
            packages,
            size_budget,
            tags,
            platforms,
            integration_platforms,
            line,
        }
    }

    /// An image's platform list `name`: its own, else the stack's.
    fn image_platforms(
        &mut self,
        key: &str,
        line: Option<usize>,
        name: &str,
        v: &Option<Value>,
        stack: &[Platform],
    ) -> Vec<Platform> {
        let Some(v) = v else { return stack.to_vec() };
        super::platform::parse_list(v, &format!("images.{key}.{name}")).unwrap_or_else(|errs| {
            let here = self.at(line_in_image(self.text, line, name).or(line));
            self.problems.extend(
                errs.into_iter()
                    .map(|e| format!("{here}: image `{key}`: {e}")),
            );
            vec![]
        })
    }

    /// Integration tests run on platforms the image is built for.
    fn check_integration_platforms(
        &mut self,
        key: &str,
        line: Option<usize>,
        platforms: &[Platform],
        integration_platforms: &[Platform],
    ) {
        let text = self.text;
        for p in integration_platforms {
            if !platforms.contains(p) {
                let l = line_in_image(text, line, "integration_platforms")
                    .or_else(|| line_of_key(text, "integration_platforms", 0))
                    .or(line);
                let at = self.at(l);
                self.problems.push(format!(
                    "{at}: image `{key}`: `integration_platforms` names {p}, which is not in its `platforms` ({})",
                    if platforms.is_empty() { "none: the builder's own".to_string() } else { super::platform::list(platforms, ", ") }
                ));
            }
        }
    }
}

/// The change rules: the spec's `changes:` section, else `change_ignore.json` beside the spec.
fn load_change_rules(
    spec_dir: &Path,
    from_spec: Option<RawChanges>,
    warnings: &mut Vec<String>,
) -> Result<ChangeRules, SpecError> {
    let json_path = spec_dir.join("change_ignore.json");
    if let Some(c) = from_spec {
        if json_path.is_file() {
            warnings.push(format!(
                "{}: ignored, the spec's `changes:` section takes precedence",
                json_path.display()
            ));
        }
        return Ok(ChangeRules {
            ignore: c.ignore,
            build_all: c.build_all,
            source: None,
        });
    }
    if !json_path.is_file() {
        return Ok(ChangeRules::default());
    }
    let text = std::fs::read_to_string(&json_path).map_err(|source| SpecError::Read {
        path: json_path.clone(),
        source,
    })?;
    let raw: RawChangeIgnore = serde_json::from_str(&text).map_err(|e| SpecError::Syntax {
        path: json_path.clone(),
        line: Some(e.line()),
        message: e.to_string(),
    })?;
    for k in raw.unknown.keys() {
        warnings.push(format!(
            "{}: unknown key `{k}` ignored (known: ChangeIgnore, BuildAll)",
            json_path.display()
        ));
    }
    Ok(ChangeRules {
        ignore: raw.change_ignore,
        build_all: raw.build_all,
        source: Some(json_path),
    })
}
