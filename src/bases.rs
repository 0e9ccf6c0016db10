//! The external images an image is built from: named in its Dockerfile (each `FROM` that
//! is not an earlier stage, each `COPY --from=<image>`), resolved to a digest when it is
//! built, recorded in the image, and read back from the registry, so that a plan can tell
//! when a base's tag moved without any file of the stack changing.

use crate::registry::{ImageRef, RegistryClient};
use futures::StreamExt;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The annotation (or, where BuildKit cannot annotate, the config label) listing every
/// external base with its digest, as JSON: `[{"name": "ubuntu:24.04", "digest": "sha256:…"}]`.
pub const BASES_KEY: &str = "io.github.stackctl.bases";
/// The repository the image was built from (GHCR links a package to it).
pub const SOURCE_KEY: &str = "org.opencontainers.image.source";
/// The commit the image was built from.
pub const REVISION_KEY: &str = "org.opencontainers.image.revision";
/// When the image's inputs last changed (a reproducible build's epoch), RFC 3339.
pub const CREATED_KEY: &str = "org.opencontainers.image.created";

/// An external base and the manifest digest its reference named when the image was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// The reference as the Dockerfile names it, build arguments substituted.
    pub name: String,
    pub digest: String,
}

/// What a Dockerfile builds from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerfileBases {
    /// Every external image the built stage needs, in the order written, once each.
    pub images: Vec<String>,
    /// The external image the built stage starts from, followed through earlier stages.
    pub final_base: Option<String>,
}

/// One stage: where it starts and what it copies from.
struct Stage {
    name: Option<String>,
    from: Source,
    copies: Vec<Source>,
}

enum Source {
    Stage(usize),
    Image(String),
    Scratch,
}

/// The Dockerfile's instructions: continuation lines joined, comments and blank lines left out.
fn instructions(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(more) => {
                cur.push_str(more);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`
/// replaced from `vars` (an unset name is empty, as in the Dockerfile frontend).
pub fn expand(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'$') => out.push(chars.next().unwrap_or('$')),
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    inner.push(c);
                }
                let name_end = inner
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(inner.len());
                let (name, op) = inner.split_at(name_end);
                let value = vars.get(name);
                let set = value.is_some();
                let nonempty = value.is_some_and(|v| !v.is_empty());
                let word = |w: &str| expand(w, vars);
                out.push_str(&match op {
                    "" => value.cloned().unwrap_or_default(),
                    _ if op.starts_with(":-") => {
                        if nonempty {
                            value.cloned().unwrap_or_default()
                        } else {
                            word(&op[2..])
                        }
                    }
                    _ if op.starts_with(":+") => {
                        if nonempty {
                            word(&op[2..])
                        } else {
                            String::new()
                        }
                    }
                    _ if op.starts_with('-') => {
                        if set {
                            value.cloned().unwrap_or_default()
                        } else {
                            word(&op[1..])
                        }
                    }
                    _ if op.starts_with('+') => {
                        if set {
                            word(&op[1..])
                        } else {
                            String::new()
                        }
                    }
                    _ => value.cloned().unwrap_or_default(),
                });
            }
            '$' if chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_') =>
            {
                let mut name = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(vars.get(&name).map(String::as_str).unwrap_or_default());
            }
            c => out.push(c),
        }
    }
    out
}

/// `ARG A=1 B` → (name, default) pairs, quotes taken off the defaults.
fn arg_decls(rest: &str) -> Vec<(String, Option<String>)> {
    rest.split_whitespace()
        .map(|d| match d.split_once('=') {
            Some((k, v)) => (
                k.to_string(),
                Some(v.trim_matches(|c| c == '"' || c == '\'').to_string()),
            ),
            None => (d.to_string(), None),
        })
        .collect()
}

/// The external images a Dockerfile builds `target` (the last stage when `None`) from,
/// with `build_args` given to the build. A `FROM` is expanded with the ARGs declared
/// before the first `FROM`; a `COPY --from` with those and the stage's own ARGs.
pub fn dockerfile_bases(
    text: &str,
    build_args: &IndexMap<String, String>,
    target: Option<&str>,
) -> DockerfileBases {
    let value = |name: &str, default: Option<String>, vars: &HashMap<String, String>| {
        build_args
            .get(name)
            .cloned()
            .or_else(|| default.map(|d| expand(&d, vars)))
    };
    let mut global: HashMap<String, String> = HashMap::new();
    let mut stages: Vec<Stage> = vec![];
    let mut stage_vars: HashMap<String, String> = HashMap::new();
    let stage_named = |stages: &[Stage], r: &str| -> Option<usize> {
        stages
            .iter()
            .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(r)))
    };
    for ins in instructions(text) {
        let (word, rest) = ins.split_once(char::is_whitespace).unwrap_or((&ins, ""));
        let rest = rest.trim();
        match word.to_ascii_uppercase().as_str() {
            "ARG" => {
                for (k, d) in arg_decls(rest) {
                    if stages.is_empty() {
                        if let Some(v) = value(&k, d, &global) {
                            global.insert(k, v);
                        }
                    } else {
                        // A stage sees a global ARG it declares again, with its value.
                        let v = value(&k, d, &stage_vars).or_else(|| global.get(&k).cloned());
                        if let Some(v) = v {
                            stage_vars.insert(k, v);
                        }
                    }
                }
            }
            "FROM" => {
                let words: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let Some(image) = words.first() else { continue };
                let image = expand(image, &global);
                let name = match words.get(1..3) {
                    Some([as_, n]) if as_.eq_ignore_ascii_case("as") => Some(n.to_string()),
                    _ => None,
                };
                let from = if image.eq_ignore_ascii_case("scratch") {
                    Source::Scratch
                } else if let Some(i) = stage_named(&stages, &image) {
                    Source::Stage(i)
                } else {
                    Source::Image(image)
                };
                stages.push(Stage {
                    name,
                    from,
                    copies: vec![],
                });
                stage_vars = HashMap::new();
            }
            "COPY" => {
                let Some(from) = rest
                    .split_whitespace()
                    .take_while(|w| w.starts_with("--"))
                    .find_map(|w| w.strip_prefix("--from="))
                else {
                    continue;
                };
                let mut vars = global.clone();
                vars.extend(stage_vars.clone());
                let from = expand(from.trim_matches('"'), &vars);
                let n = stages.len();
                let source = match (stage_named(&stages, &from), from.parse::<usize>()) {
                    (Some(i), _) => Source::Stage(i),
                    (None, Ok(i)) if i + 1 < n => Source::Stage(i),
                    _ => Source::Image(from),
                };
                if let Some(s) = stages.last_mut() {
                    s.copies.push(source);
                }
            }
            _ => {}
        }
    }
    let built = match target {
        Some(t) => stage_named(&stages, t),
        None => stages.len().checked_sub(1),
    };
    let Some(built) = built else {
        return DockerfileBases::default();
    };
    // The stages the built one needs, depth first in the order written.
    let mut needed = vec![false; stages.len()];
    let mut todo = vec![built];
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut needed[i], true) {
            continue;
        }
        for s in std::iter::once(&stages[i].from).chain(&stages[i].copies) {
            if let Source::Stage(j) = s {
                if *j < i {
                    todo.push(*j);
                }
            }
        }
    }
    let mut images: Vec<String> = vec![];
    for (_, s) in stages.iter().enumerate().filter(|(i, _)| needed[*i]) {
        for src in std::iter::once(&s.from).chain(&s.copies) {
            if let Source::Image(r) = src {
                if !images.contains(r) {
                    images.push(r.clone());
                }
            }
        }
    }
    let mut at = built;
    let final_base = loop {
        match &stages[at].from {
            Source::Stage(j) if *j < at => at = *j,
            Source::Image(r) => break Some(r.clone()),
            _ => break None,
        }
    };
    DockerfileBases { images, final_base }
}

/// Whether a reference names a digest: what it names cannot move.
pub fn is_pinned(name: &str) -> bool {
    name.contains('@')
}

/// The digest each reference names now: one HEAD each, all concurrently (at most 16 in
/// flight), in the order given. `Ok(None)`: not in its registry.
pub async fn resolve(
    client: &RegistryClient,
    names: &[String],
) -> Vec<Result<Option<String>, String>> {
    futures::stream::iter(names)
        .map(|n| async move {
            let r = ImageRef::parse(n).map_err(|e| e.to_string())?;
            client
                .head_manifest(&r)
                .await
                .map(|d| d.map(|d| d.digest))
                .map_err(|e| e.to_string())
        })
        .buffered(16)
        .collect()
        .await
}

/// The bases recorded in the image `r` names (the [`BASES_KEY`] annotation of its
/// manifest; of an index, its own or its first platform manifest's; else the label in the
/// config). `None`: the image records none (built before the record was made).
pub async fn recorded(client: &RegistryClient, r: &ImageRef) -> anyhow::Result<Option<Vec<Base>>> {
    let Some(m) = client.get_manifest(r).await? else {
        return Ok(None);
    };
    let parse = |s: &str| -> anyhow::Result<Vec<Base>> {
        serde_json::from_str(s).map_err(|e| anyhow::anyhow!("{r}: {BASES_KEY}: {e}"))
    };
    let mut v: serde_json::Value = serde_json::from_slice(&m.bytes)?;
    if let Some(s) = v["annotations"][BASES_KEY].as_str() {
        return parse(s).map(Some);
    }
    if let Some(list) = v["manifests"].as_array() {
        // An index: its first platform image (attestations have no real platform).
        let Some(first) = list
            .iter()
            .find(|e| e["platform"]["os"].as_str().is_some_and(|o| o != "unknown"))
            .and_then(|e| e["digest"].as_str())
        else {
            return Ok(None);
        };
        let Some(pm) = client.get_manifest(&r.with_digest(first)).await? else {
            return Ok(None);
        };
        v = serde_json::from_slice(&pm.bytes)?;
        if let Some(s) = v["annotations"][BASES_KEY].as_str() {
            return parse(s).map(Some);
        }
    }
    let Some(config) = v["config"]["digest"].as_str() else {
        return Ok(None);
    };
    let c: serde_json::Value = serde_json::from_slice(&client.get_blob(r, config).await?)?;
    c["config"]["Labels"][BASES_KEY]
        .as_str()
        .map(parse)
        .transpose()
}

/// `https://github.com/o/r` from a remote URL (`git@github.com:o/r.git`,
/// `https://github.com/o/r.git`, `ssh://git@host/o/r`); credentials are left out.
pub fn web_url(remote: &str) -> Option<String> {
    let r = remote.trim().trim_end_matches('/');
    let r = r.strip_suffix(".git").unwrap_or(r);
    let (host, path) = if let Some(rest) = r
        .strip_prefix("https://")
        .or_else(|| r.strip_prefix("http://"))
        .or_else(|| r.strip_prefix("ssh://"))
        .or_else(|| r.strip_prefix("git://"))
    {
        rest.split_once('/')?
    } else if let Some((user_host, path)) = r.split_once(':') {
        (user_host, path)
    } else {
        return None;
    };
    let host = host.rsplit('@').next()?;
    let host = host.split(':').next()?;
    if host.is_empty() || path.is_empty() {
        return None;
    }
    Some(format!("https://{host}/{}", path.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[(&str, &str)]) -> IndexMap<String, String> {
        a.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stages_are_not_bases_and_the_final_base_is_followed() {
        let d = "\
# syntax=docker/dockerfile:1
FROM --platform=$BUILDPLATFORM golang:1.22 AS build
RUN go build \\
    -o /app .
FROM ubuntu:24.04 AS runtime
COPY --from=build /app /app
FROM runtime
COPY --from=busybox:1.36 /bin/sh /bin/sh
";
        let b = dockerfile_bases(d, &args(&[]), None);
        assert_eq!(b.images, ["golang:1.22", "ubuntu:24.04", "busybox:1.36"]);
        assert_eq!(b.final_base.as_deref(), Some("ubuntu:24.04"));
    }

    #[test]
    fn args_before_from_are_substituted_and_build_args_win() {
        let d = "\
ARG BASE_IMAGE=quay.io/x/base
ARG BASE_TAG=latest
FROM ${BASE_IMAGE}:${BASE_TAG}
ARG BASE_TAG
ARG TOOLS=ghcr.io/o/tools
COPY --from=${TOOLS}:$BASE_TAG /t /t
";
        let b = dockerfile_bases(d, &args(&[("BASE_TAG", "2026.3-qa")]), None);
        assert_eq!(
            b.images,
            ["quay.io/x/base:2026.3-qa", "ghcr.io/o/tools:2026.3-qa"]
        );
        let b = dockerfile_bases(d, &args(&[]), None);
        assert_eq!(b.final_base.as_deref(), Some("quay.io/x/base:latest"));
        let v = HashMap::from([("A".to_string(), String::new())]);
        assert_eq!(expand("${A:-d}/${B-e}/${A+x}/${B:+y}", &v), "d/e/x/");
    }

    #[test]
    fn copy_from_a_stage_by_name_or_index_is_no_base() {
        let d = "\
from alpine:3 as Tools
FROM scratch
COPY --from=tools /a /a
COPY --from=0 /b /b
COPY --chown=1:1 --from=nginx:1 /c /c
";
        let b = dockerfile_bases(d, &args(&[]), None);
        assert_eq!(b.images, ["alpine:3", "nginx:1"]);
        assert_eq!(b.final_base, None, "scratch has no base");
    }

    #[test]
    fn only_the_stages_the_target_needs_count() {
        let d = "\
FROM debian:12 AS a
FROM ubuntu:24.04 AS b
FROM a AS c
";
        let b = dockerfile_bases(d, &args(&[]), Some("c"));
        assert_eq!(b.images, ["debian:12"]);
        assert_eq!(b.final_base.as_deref(), Some("debian:12"));
        assert_eq!(
            dockerfile_bases(d, &args(&[]), Some("b")).images,
            ["ubuntu:24.04"]
        );
    }

    #[test]
    fn remote_urls_become_web_urls() {
        for r in [
            "git@github.com:o/r.git",
            "https://github.com/o/r.git",
            "https://token@github.com/o/r",
            "ssh://git@github.com:22/o/r.git",
        ] {
            assert_eq!(web_url(r).as_deref(), Some("https://github.com/o/r"), "{r}");
        }
        assert_eq!(web_url("/local/path"), None);
    }
}
