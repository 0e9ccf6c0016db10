//! Build cache: where BuildKit leaves a build's cache (`--cache-to`, the spec's `cache:`)
//! and where it looks for one (`--cache-from`), in buildx's `type=registry,ref=…,mode=max`
//! syntax.
//!
//! - `inline`: the cache metadata rides in the image's config; any pushed image serves as a
//!   cache source. Every BuildKit can do it, the engine's v0.8 too.
//! - `registry`: a separate cache manifest under its own reference; with `mode=max` it
//!   holds every intermediate layer (multi-stage builds too). A buildkitd can export it; the
//!   engine's v0.8 moby worker cannot (stackctl then says so once and uses inline).

use anyhow::{anyhow, bail};
use bollard_buildkit_proto::moby::buildkit::v1::CacheOptionsEntry;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::spec::cache::CacheMode;

/// Where a build's cache goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CacheExport {
    /// Inline cache metadata in the image (always added; this is the whole export).
    #[default]
    Inline,
    /// A registry cache under `reference` (`registry/repo:tag`).
    Registry { reference: String, mode: CacheMode },
}

impl fmt::Display for CacheExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheExport::Inline => f.write_str("type=inline"),
            CacheExport::Registry { reference, mode } => {
                write!(f, "type=registry,ref={reference},mode={mode}")
            }
        }
    }
}

/// `k=v,k=v` (buildx's CSV form) into pairs; a value may not contain a comma.
fn attrs(s: &str) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("{part:?} is not KEY=VALUE"))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

impl FromStr for CacheExport {
    type Err = anyhow::Error;

    /// `type=registry,ref=R[,mode=max|min]` or `type=inline`.
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let a = attrs(s)?;
        for k in a.keys() {
            if !matches!(k.as_str(), "type" | "ref" | "mode") {
                bail!("{s:?}: unknown key {k:?} (expected type, ref, mode)");
            }
        }
        match a.get("type").map(String::as_str) {
            Some("inline") => Ok(CacheExport::Inline),
            Some("registry") => {
                let reference = a
                    .get("ref")
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| anyhow!("{s:?}: type=registry needs ref=REGISTRY/REPO:TAG"))?
                    .clone();
                let mode = match a.get("mode").map(String::as_str) {
                    None | Some("max") => CacheMode::Max,
                    Some("min") => CacheMode::Min,
                    Some(m) => bail!("{s:?}: mode={m} (expected max or min)"),
                };
                Ok(CacheExport::Registry { reference, mode })
            }
            Some(t) => bail!("{s:?}: type={t} (stackctl exports type=registry or type=inline)"),
            None => bail!("{s:?}: no type= (e.g. type=registry,ref=REGISTRY/REPO:TAG,mode=max)"),
        }
    }
}

/// A cache source: `type=registry,ref=R`, or a bare reference. Both a registry cache and an
/// image with inline cache are read this way.
pub fn parse_import(s: &str) -> anyhow::Result<String> {
    if !s.contains('=') {
        return Ok(s.to_string());
    }
    let a = attrs(s)?;
    match (a.get("type").map(String::as_str), a.get("ref")) {
        (Some("registry") | None, Some(r)) if !r.is_empty() => Ok(r.clone()),
        (Some(t), _) if t != "registry" => {
            bail!("{s:?}: type={t} (stackctl reads type=registry cache sources)")
        }
        _ => bail!("{s:?}: no ref= (e.g. type=registry,ref=REGISTRY/REPO:TAG)"),
    }
}

/// The Solve's cache exports: the inline one always (so every pushed image is a cache
/// source), the registry one when asked for. A failed registry export does not fail the
/// build (`ignore-error`); the build reports it as a warning.
pub fn export_entries(export: &CacheExport) -> Vec<CacheOptionsEntry> {
    let mut out = vec![];
    if let CacheExport::Registry { reference, mode } = export {
        out.push(CacheOptionsEntry {
            r#type: "registry".into(),
            attrs: HashMap::from([
                ("ref".to_string(), reference.clone()),
                ("mode".to_string(), mode.to_string()),
                ("ignore-error".to_string(), "true".to_string()),
            ]),
        });
    }
    out.push(CacheOptionsEntry {
        r#type: "inline".into(),
        attrs: HashMap::new(),
    });
    out
}

/// The Solve's cache imports, in order.
pub fn import_entries(refs: &[String]) -> Vec<CacheOptionsEntry> {
    refs.iter()
        .map(|r| CacheOptionsEntry {
            r#type: "registry".into(),
            attrs: HashMap::from([("ref".to_string(), r.clone())]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_syntax() {
        assert_eq!(
            "type=registry,ref=127.0.0.1:5000/a:buildcache-t,mode=min"
                .parse::<CacheExport>()
                .unwrap(),
            CacheExport::Registry {
                reference: "127.0.0.1:5000/a:buildcache-t".into(),
                mode: CacheMode::Min
            }
        );
        let e: CacheExport = "type=registry,ref=r/a:c".parse().unwrap();
        assert_eq!(e.to_string(), "type=registry,ref=r/a:c,mode=max");
        assert_eq!(
            "type=inline".parse::<CacheExport>().unwrap(),
            CacheExport::Inline
        );
        for bad in [
            "type=registry",
            "type=local,dest=/x",
            "ref=r/a:c",
            "type=registry,ref=r/a:c,mode=all",
            "type=registry,ref=r/a:c,compression=zstd",
            "registry",
        ] {
            assert!(bad.parse::<CacheExport>().is_err(), "{bad}");
        }
        assert_eq!(parse_import("r/a:c").unwrap(), "r/a:c");
        assert_eq!(parse_import("type=registry,ref=r/a:c").unwrap(), "r/a:c");
        assert!(parse_import("type=local,src=/x").is_err());
        assert!(parse_import("type=registry").is_err());
    }

    #[test]
    fn registry_export_ignores_its_errors_and_keeps_inline() {
        let e = export_entries(&CacheExport::Registry {
            reference: "r/a:c".into(),
            mode: CacheMode::Max,
        });
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].r#type, "registry");
        assert_eq!(e[0].attrs["mode"], "max");
        assert_eq!(e[0].attrs["ignore-error"], "true");
        assert_eq!(e[1].r#type, "inline");
        assert_eq!(export_entries(&CacheExport::Inline).len(), 1);
    }
}
