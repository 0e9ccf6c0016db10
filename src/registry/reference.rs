//! Image references: `HOST/REPO:TAG` or `HOST/REPO@DIGEST`, parsed by the distribution
//! grammar (Docker Hub names are normalized as `docker` does), plus the bare-tag shorthand
//! `retag` accepts for its destination.
//!
//! The grammar is parsed by hand rather than with oci-spec's `Reference` (which oci-client
//! re-exports): that one compiles a large Unicode regex on first use, which was most of the
//! CPU time of a `stackctl retag` on a loopback registry, and a reference is small enough to
//! check component by component.

use crate::tag::is_valid_tag;
use std::fmt;

/// One image reference, split into the parts the registry API needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// The registry host as written (`ghcr.io`, `127.0.0.1:5000`, `docker.io`).
    pub registry: String,
    /// The repository inside the registry (`ucsd-ets/datascience-notebook`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// A reference that cannot be parsed; names it.
#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct RefError {
    pub reference: String,
    pub reason: String,
}

impl RefError {
    /// The error for `reference`, which it shows with any user information masked.
    fn new(reference: &str, reason: impl Into<String>) -> RefError {
        RefError {
            reference: shown(reference),
            reason: reason.into(),
        }
    }
}

/// `s` as messages may show it: a `USER:PASSWORD@` before the host (which is no part of a
/// reference, but is what a user may paste from a URL) masked. The `@` of a digest stays.
fn shown(s: &str) -> String {
    if has_userinfo(s) {
        crate::credentials::mask_userinfo(s)
    } else {
        s.to_string()
    }
}

/// Whether the text before `@` is user information rather than a name before a digest:
/// what follows the `@` is not shaped as a digest (`ALGORITHM:` and at least 32 hex
/// digits, no `/`), as `HOST/PATH` or `HOST:PORT` is not.
fn has_userinfo(s: &str) -> bool {
    let Some((_, after)) = s.split_once('@') else {
        return false;
    };
    let digest_like = after.split_once(':').is_some_and(|(algo, hex)| {
        !algo.is_empty()
            && algo.bytes().all(|b| b.is_ascii_alphanumeric())
            && hex.len() >= 32
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    !after.is_empty() && !digest_like
}

impl ImageRef {
    /// Parse a full reference. A reference with neither tag nor digest means `:latest`.
    ///
    /// Refused besides what the distribution grammar refuses (before any request is made): a registry
    /// host with a port but no repository (`127.0.0.1:5000`, which Docker would read as
    /// `docker.io/library/127.0.0.1:5000`), a tag that is not `[A-Za-z0-9_][A-Za-z0-9._-]`
    /// up to 128 characters (no Unicode), a digest that is not `sha256:`/`sha512:` with
    /// lowercase hex of the right length.
    pub fn parse(s: &str) -> Result<ImageRef, RefError> {
        let bad = |reason: String| RefError::new(s, reason);
        if has_userinfo(s) {
            return Err(bad(
                "user information (USER:PASSWORD@) is no part of an image reference, and is not \
                 repeated here; give credentials with --username and --password-stdin or Docker's \
                 config.json"
                    .into(),
            ));
        }
        if looks_like_bare_host(s) {
            return Err(bad(
                "this is a registry host and port without a repository (write HOST:PORT/REPOSITORY:TAG)".into(),
            ));
        }
        let parts = split_reference(s).map_err(bad)?;
        let tag = parts.tag.map(str::to_string);
        let digest = parts.digest.map(str::to_string);
        if let Some(t) = &tag {
            if !is_valid_tag(t) {
                return Err(bad(format!(
                    "tag {t:?} is not a valid tag ({}; at most 128 characters)",
                    TAG_CHARS
                )));
            }
        }
        if let Some(d) = &digest {
            check_digest(d).map_err(bad)?;
        }
        Ok(ImageRef {
            registry: parts.registry,
            repository: parts.repository,
            tag: if tag.is_none() && digest.is_none() {
                Some("latest".into())
            } else {
                tag
            },
            digest,
        })
    }

    /// The destination of `retag`: a full reference, or a bare tag (letters, digits, `_.-`,
    /// no `/`, `:` or `@`) meaning "this tag in the repository of `src`". Anything without
    /// `/`, `:` or `@` is taken as a bare tag, and refused if it is not a valid one (it is
    /// never read as a Docker Hub image `docker.io/library/<it>:latest`).
    pub fn parse_destination(s: &str, src: &ImageRef) -> Result<ImageRef, RefError> {
        if !s.contains(['/', ':', '@']) {
            if is_valid_tag(s) {
                return Ok(src.with_tag(s));
            }
            return Err(RefError::new(
                s,
                format!(
                    "the destination is not a valid tag ({TAG_CHARS}; at most 128 characters) nor a full reference"
                ),
            ));
        }
        let r = ImageRef::parse(s)?;
        if r.digest.is_some() {
            return Err(RefError::new(
                s,
                "a destination must be a tag, not a digest",
            ));
        }
        Ok(r)
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// The same repository addressed by digest.
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// The host to talk to: Docker Hub's API lives at `registry-1.docker.io`.
    pub fn api_host(&self) -> &str {
        match self.registry.as_str() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            h => h,
        }
    }

    /// What goes after `/manifests/`: the digest if there is one, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name as Docker writes it (its "familiar" form), for the engine: no `docker.io/`,
    /// and no `library/` for an official image (`busybox`, `x/y`, `ghcr.io/o/x`).
    pub fn familiar_name(&self) -> String {
        if self.registry != DOCKER_HUB {
            return self.name();
        }
        match self.repository.strip_prefix("library/") {
            Some(official) if !official.contains('/') => official.to_string(),
            _ => self.repository.clone(),
        }
    }

    /// Whether both live in the same repository of the same registry.
    pub fn same_repository(&self, other: &ImageRef) -> bool {
        self.registry == other.registry && self.repository == other.repository
    }
}

/// A reference split into its parts, the registry and repository normalized.
struct Parts<'a> {
    registry: String,
    repository: String,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// Docker Hub's name, which references without a registry part mean.
const DOCKER_HUB: &str = "docker.io";
/// The longest repository name (with its registry) the distribution spec allows.
const NAME_MAX: usize = 255;

/// Split `[HOST[:PORT]/]PATH[:TAG][@DIGEST]` as docker/distribution's reference grammar
/// does: the first component is the registry when there are several and it has a `.` or
/// a `:` or is `localhost`; otherwise the registry is Docker Hub, where a one-component
/// path is an official image (`library/...`). Tags and digests are only cut off here;
/// the caller checks them.
fn split_reference(s: &str) -> Result<Parts<'_>, String> {
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    let (name, tag) = match name_tag.rfind(':') {
        Some(c) if name_tag[c..].find('/').is_none() => (&name_tag[..c], Some(&name_tag[c + 1..])),
        _ => (name_tag, None),
    };
    if tag == Some("") {
        return Err("the tag after `:` is empty".into());
    }
    if digest == Some("") {
        return Err("the digest after `@` is empty".into());
    }
    if name.is_empty() {
        return Err("the repository name is empty".into());
    }
    if name.len() > NAME_MAX {
        return Err(format!(
            "the repository name is longer than {NAME_MAX} characters"
        ));
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            check_registry_host(first)?;
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    };
    for component in path.split('/') {
        check_path_component(component)?;
    }
    let registry = if registry == "index.docker.io" {
        DOCKER_HUB
    } else {
        registry
    };
    let repository = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    Ok(Parts {
        registry: registry.to_string(),
        repository,
        tag,
        digest,
    })
}

/// `HOST[:PORT]`: DNS labels of letters, digits and inner `-`, separated by dots, or an IPv6
/// address in brackets (`[::1]:5000`); the port from 1 to 65535.
fn check_registry_host(h: &str) -> Result<(), String> {
    let (host, port) = if let Some(inner) = h.strip_prefix('[') {
        let Some((v6, after)) = inner.split_once(']') else {
            return Err(format!("registry host {h:?}: `[` without its `]`"));
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "registry host {h:?}: {v6:?} in brackets is not an IPv6 address"
            ));
        }
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None if after.is_empty() => (None, None),
            None => return Err(format!("registry host {h:?}: expected `:PORT` after `]`")),
        }
    } else {
        match h.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(h), None),
        }
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if let Some(host) = host {
        if !host.split('.').all(label_ok) {
            return Err(format!(
                "registry host {h:?} is not a host name (letters, digits, `-` and dots)"
            ));
        }
    }
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("registry port in {h:?} is not a number"));
        }
        if !matches!(p.parse::<u32>(), Ok(1..=65535)) {
            return Err(format!(
                "registry port in {h:?} is not a port number (1 to 65535)"
            ));
        }
    }
    Ok(())
}

/// A path component: lowercase letters and digits, separated by one `.`, one or two `_`,
/// or any number of `-`.
fn check_path_component(c: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "repository path component {c:?} must be lowercase letters and digits, \
             separated by `.`, `_`, `__` or dashes"
        ))
    };
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

/// The characters of a tag, for messages.
const TAG_CHARS: &str = "ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-`";

/// `HOST:PORT` with nothing after it: a host name with a dot, `localhost` or an IP address
/// (v4, or v6 in brackets), then a colon and digits only.
fn looks_like_bare_host(s: &str) -> bool {
    if s.contains(['/', '@']) {
        return false;
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let port_like = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let host_like = host.contains('.')
        || host.eq_ignore_ascii_case("localhost")
        || (host.starts_with('[') && host.ends_with(']'));
    port_like && host_like
}

/// A digest as the registry writes it: `sha256:` and 64 lowercase hex digits (or `sha512:`
/// and 128).
fn check_digest(d: &str) -> Result<(), String> {
    let (algo, hex) = d
        .split_once(':')
        .ok_or_else(|| format!("digest {d:?} has no `algorithm:` part"))?;
    let len = match algo {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(format!("digest {d:?}: algorithm must be sha256 or sha512")),
    };
    if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "digest {d:?} must be {algo}: and {len} lowercase hex digits"
        ));
    }
    Ok(())
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageRef {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_names() {
        let f = |s: &str| ImageRef::parse(s).unwrap().familiar_name();
        assert_eq!(f("busybox:1"), "busybox");
        assert_eq!(f("docker.io/library/busybox"), "busybox");
        assert_eq!(f("index.docker.io/x/y:t"), "x/y");
        assert_eq!(f("library/a/b"), "library/a/b");
        assert_eq!(f("ghcr.io/o/x:t"), "ghcr.io/o/x");
        assert_eq!(
            f("127.0.0.1:5000/stack/base:t"),
            "127.0.0.1:5000/stack/base"
        );
    }

    #[test]
    fn full_and_bare() {
        let r = ImageRef::parse("127.0.0.1:5000/stack/base:2026.3-main").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "stack/base");
        assert_eq!(r.tag.as_deref(), Some("2026.3-main"));
        assert_eq!(r.to_string(), "127.0.0.1:5000/stack/base:2026.3-main");
        let d = ImageRef::parse_destination("2026.3-stable", &r).unwrap();
        assert_eq!(d.to_string(), "127.0.0.1:5000/stack/base:2026.3-stable");
        let d = ImageRef::parse_destination("ghcr.io/o/x:stable", &r).unwrap();
        assert_eq!(d.registry, "ghcr.io");
        assert_eq!(
            ImageRef::parse("busybox").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn bare_host_port_is_refused() {
        for s in [
            "127.0.0.1:5301",
            "localhost:5000",
            "reg.example.org:443",
            "[::1]:5000",
        ] {
            let e = ImageRef::parse(s).unwrap_err().to_string();
            assert!(e.contains(s) && e.contains("without a repository"), "{e}");
        }
        // Docker Hub names with a tag are still fine.
        assert!(ImageRef::parse("busybox:1").is_ok());
        assert!(ImageRef::parse("ubuntu:22.04").is_ok());
        assert!(ImageRef::parse("127.0.0.1:5301/a:1").is_ok());
    }

    #[test]
    fn long_and_unicode_tags_are_refused() {
        let long = format!("h:1/r:{}", "a".repeat(129));
        let e = ImageRef::parse(&long).unwrap_err().to_string();
        assert!(e.contains(&long), "{e}");
        assert!(ImageRef::parse(&format!("h:1/r:{}", "a".repeat(128))).is_ok());
        let e = ImageRef::parse("h:1/r:tägé").unwrap_err().to_string();
        assert!(e.contains("h:1/r:tägé"), "{e}");
        let src = ImageRef::parse("h:1/r:t").unwrap();
        for dst in ["a".repeat(129), "stäble".to_string(), "-x".to_string()] {
            let e = ImageRef::parse_destination(&dst, &src)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&dst) && e.contains("destination"), "{e}");
        }
        let e = ImageRef::parse_destination("127.0.0.1:5301", &src)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("127.0.0.1:5301") && !e.contains("docker.io"),
            "{e}"
        );
    }

    #[test]
    fn digests_are_lowercase_hex() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(ImageRef::parse(&format!("h:1/r@sha256:{hex}")).is_ok());
        let e = ImageRef::parse(&format!("h:1/r@sha256:{}", hex.to_uppercase()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lowercase hex"), "{e}");
        assert!(ImageRef::parse("h:1/r@sha256:abc").is_err());
        assert!(ImageRef::parse(&format!("h:1/r@md5:{hex}")).is_err());
    }

    #[test]
    fn bad_reference_is_named() {
        let e = ImageRef::parse("UPPER/Case:x").unwrap_err().to_string();
        assert!(e.contains("UPPER/Case:x"), "{e}");
        let src = ImageRef::parse("h:1/r:t").unwrap();
        assert!(ImageRef::parse_destination(
            "h:1/r@sha256:0123456789012345678901234567890123456789012345678901234567890123",
            &src
        )
        .is_err());
    }

    #[test]
    fn user_information_is_refused_and_masked() {
        for s in [
            "u:hunter2@127.0.0.1:5000/a/b:t",
            "u:hunter2@ghcr.io/o/x",
            "u:hunter2@host:5000",
            "hunter2@host",
        ] {
            let e = ImageRef::parse(s).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("***@") && e.contains("USER:PASSWORD@"), "{e}");
        }
        let e =
            ImageRef::parse_destination("u:hunter2@h:1/r:t", &ImageRef::parse("h:1/r").unwrap())
                .unwrap_err()
                .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn ipv6_hosts_and_port_ranges() {
        let r = ImageRef::parse("[::1]:5000/a/b:t").unwrap();
        assert_eq!(r.registry, "[::1]:5000");
        assert_eq!(r.to_string(), "[::1]:5000/a/b:t");
        assert!(ImageRef::parse("[fe80::1]/a").is_ok());
        assert!(ImageRef::parse("h:65535/a").is_ok());
        for (bad, why) in [
            ("h:99999/a", "1 to 65535"),
            ("h:0/a", "1 to 65535"),
            ("[::1]:99999/a", "1 to 65535"),
            ("[nope]:5000/a", "IPv6"),
            ("[::1/a", "without its `]`"),
            ("[::1]x/a", "after `]`"),
        ] {
            let e = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn grammar_as_docker_reads_it() {
        let p = |s: &str| ImageRef::parse(s).map(|r| r.to_string());
        assert_eq!(p("ubuntu:22.04").unwrap(), "docker.io/library/ubuntu:22.04");
        assert_eq!(
            p("ucsdets/datascience-notebook:2026.3-stable").unwrap(),
            "docker.io/ucsdets/datascience-notebook:2026.3-stable"
        );
        assert_eq!(
            p("index.docker.io/library/busybox:1").unwrap(),
            "docker.io/library/busybox:1"
        );
        assert_eq!(p("localhost/x/y:t").unwrap(), "localhost/x/y:t");
        assert_eq!(p("localhost:5000/x").unwrap(), "localhost:5000/x:latest");
        assert_eq!(
            p("ghcr.io/ucsd-ets/a.b_c__d---e/f:v1.2").unwrap(),
            "ghcr.io/ucsd-ets/a.b_c__d---e/f:v1.2"
        );
        let hex = "ab".repeat(32);
        assert_eq!(
            p(&format!("reg.io:443/a/b:t@sha256:{hex}")).unwrap(),
            format!("reg.io:443/a/b:t@sha256:{hex}")
        );
        // A first component without a dot, colon or `localhost` is part of the path.
        assert_eq!(p("a/b/c").unwrap(), "docker.io/a/b/c:latest");
        for bad in [
            "",
            "x:",
            "x@",
            "/x",
            "x/",
            "a//b",
            "Upper/case",
            "a/Upper",
            "a/b-:t",
            "a/_b",
            "a/b___c",
            "a/b..c",
            "-reg.io/x",
            "reg-.io/x",
            "reg.io:/x",
            "reg.io:8a/x",
            "a b",
            "a/b:t:u",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("reg.io/{}", "a".repeat(250));
        let e = ImageRef::parse(&long).unwrap_err().to_string();
        assert!(e.contains("255"), "{e}");
    }
}
