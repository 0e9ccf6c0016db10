//! The spec's `cache:` section: where a build's cache goes and comes from. At the stack's
//! top level it applies to every image; an image's own `cache:` overrides it key by key.
//!
//! ```yaml
//! cache:
//!   type: registry          # or inline (the default)
//!   ref: ghcr.io/org/cache  # a repository; at the top level the image key is appended
//!   mode: max               # or min
//! ```
//!
//! The cache of a run with tag T is `<repository>:buildcache-T`; the repository defaults to
//! the image's own. A build imports, in order, this branch's cache, then the quarter's
//! stable one (`buildcache-<prefix>-stable`), then main's (`buildcache-<prefix>-main`).

use std::fmt;

/// How a build's cache is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheType {
    /// In the image's config (the default).
    #[default]
    Inline,
    /// A cache manifest in a registry.
    Registry,
}

/// Which layers a registry cache keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Every layer of every stage.
    #[default]
    Max,
    /// Only the final image's layers.
    Min,
}

impl fmt::Display for CacheMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CacheMode::Max => "max",
            CacheMode::Min => "min",
        })
    }
}

/// A `cache:` section as written.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    #[serde(rename = "type", default)]
    pub kind: Option<CacheType>,
    #[serde(rename = "ref", default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub mode: Option<CacheMode>,
}

/// One image's cache settings, the stack's and the image's merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheSpec {
    pub kind: CacheType,
    /// The repository the cache tags go to.
    pub repository: String,
    pub mode: CacheMode,
}

impl CacheSpec {
    /// Merge the stack's and the image's sections; an error names the bad key.
    pub fn resolve(
        stack: Option<&RawCache>,
        image: Option<&RawCache>,
        key: &str,
        image_name: &str,
    ) -> Result<CacheSpec, String> {
        let repository = match (
            image.and_then(|c| c.reference.clone()),
            stack.and_then(|c| c.reference.clone()),
        ) {
            (Some(r), _) => check_repository(&r, "cache.ref")?,
            (None, Some(r)) => format!("{}/{key}", check_repository(&r, "cache.ref (top level)")?),
            (None, None) => image_name.to_string(),
        };
        Ok(CacheSpec {
            kind: image
                .and_then(|c| c.kind)
                .or(stack.and_then(|c| c.kind))
                .unwrap_or_default(),
            repository,
            mode: image
                .and_then(|c| c.mode)
                .or(stack.and_then(|c| c.mode))
                .unwrap_or_default(),
        })
    }

    /// `<repository>:buildcache-<tag>`.
    pub fn reference(&self, tag: &str) -> String {
        format!("{}:buildcache-{tag}", self.repository)
    }

    /// The registry caches a build tagged `tag` imports, in order: its own, the quarter's
    /// stable one, main's (none for inline cache: the images themselves are the sources).
    pub fn imports(&self, tag: &str, prefix: &str) -> Vec<String> {
        if self.kind == CacheType::Inline {
            return vec![];
        }
        let mut out: Vec<String> = vec![];
        for t in [
            tag.to_string(),
            crate::tag::quarter_stable_tag(prefix),
            format!("{prefix}-{}", crate::tag::MAIN_BRANCH),
        ] {
            let r = self.reference(&t);
            if !out.contains(&r) {
                out.push(r);
            }
        }
        out
    }
}

/// A repository without tag or digest.
fn check_repository(r: &str, what: &str) -> Result<String, String> {
    let last = r.rsplit('/').next().unwrap_or(r);
    if r.is_empty() || r.contains('@') || last.contains(':') || r.contains(char::is_whitespace) {
        return Err(format!(
            "`{what}` must be a repository without tag or digest (e.g. ghcr.io/org/cache), not {r:?}"
        ));
    }
    if !super::repository::is_valid_repository(r) {
        return Err(format!(
            "`{what}` {r:?} is not a valid repository name (lower-case path, optional registry \
             HOST[:PORT] with a port from 1 to 65535, no scheme such as http://)"
        ));
    }
    Ok(r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: Option<CacheType>, r: Option<&str>, mode: Option<CacheMode>) -> RawCache {
        RawCache {
            kind,
            reference: r.map(str::to_string),
            mode,
        }
    }

    #[test]
    fn defaults_next_to_the_image_and_image_overrides_stack() {
        let c = CacheSpec::resolve(None, None, "base", "r/s/base").unwrap();
        assert_eq!(c.kind, CacheType::Inline);
        assert!(c.imports("2026.3-qa", "2026.3").is_empty());

        let stack = raw(Some(CacheType::Registry), Some("r/cache"), None);
        let c = CacheSpec::resolve(Some(&stack), None, "base", "r/s/base").unwrap();
        assert_eq!(c.reference("t"), "r/cache/base:buildcache-t");
        assert_eq!(c.mode, CacheMode::Max);
        assert_eq!(
            c.imports("2026.3-qa", "2026.3"),
            [
                "r/cache/base:buildcache-2026.3-qa",
                "r/cache/base:buildcache-2026.3-stable",
                "r/cache/base:buildcache-2026.3-main"
            ]
        );
        let img = raw(None, None, Some(CacheMode::Min));
        let c = CacheSpec::resolve(Some(&stack), Some(&img), "base", "r/s/base").unwrap();
        assert_eq!((c.kind, c.mode), (CacheType::Registry, CacheMode::Min));
        let img = raw(Some(CacheType::Inline), Some("r/own"), None);
        let c = CacheSpec::resolve(Some(&stack), Some(&img), "base", "r/s/base").unwrap();
        assert_eq!(
            (c.kind, c.repository.as_str()),
            (CacheType::Inline, "r/own")
        );
        // Main's build imports its own cache once.
        let c = CacheSpec::resolve(Some(&stack), None, "base", "r/s/base").unwrap();
        assert_eq!(c.imports("2026.3-main", "2026.3").len(), 2);
    }

    #[test]
    fn ref_must_be_a_repository() {
        for bad in ["r/cache:tag", "r/cache@sha256:00", ""] {
            let s = raw(None, Some(bad), None);
            let e = CacheSpec::resolve(None, Some(&s), "base", "r/s/base").unwrap_err();
            assert!(e.contains("cache.ref"), "{e}");
        }
        let s = raw(None, Some("127.0.0.1:5000/cache"), None);
        assert!(CacheSpec::resolve(None, Some(&s), "base", "r/s/base").is_ok());
    }

    #[test]
    fn spec_section_loads_and_bad_values_name_the_file() {
        use crate::spec::Spec;
        let text = "images:\n  a:\n    image_name: r/s/a\n  b:\n    image_name: r/s/b\n    depend_on: a\n    cache:\n      type: inline\ncache:\n  type: registry\n  mode: min\ntag:\n  prefix: \"2026.3\"\n";
        let dir = tempfile::tempdir().unwrap();
        for k in ["a", "b"] {
            let d = dir.path().join("images").join(k);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        }
        let at = dir.path().join("spec.yml");
        let spec = Spec::from_str_at(text, &at).unwrap();
        let a = &spec.image("a").unwrap().cache;
        assert_eq!((a.kind, a.mode), (CacheType::Registry, CacheMode::Min));
        assert_eq!(a.reference("t"), "r/s/a:buildcache-t");
        assert_eq!(spec.image("b").unwrap().cache.kind, CacheType::Inline);

        let bad = text.replace("type: registry", "type: local");
        let e = Spec::from_str_at(&bad, &at).unwrap_err().to_string();
        assert!(
            e.contains(&*at.to_string_lossy()) && e.contains("local"),
            "{e}"
        );
        let bad = text.replace("mode: min", "mode: min\n  ref: r/c:t");
        let e = Spec::from_str_at(&bad, &at).unwrap_err().to_string();
        assert!(
            e.contains(&*at.to_string_lossy()) && e.contains("cache.ref"),
            "{e}"
        );
    }
}
