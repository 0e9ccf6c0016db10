//! Image references: `HOST/REPO:TAG` or `HOST/REPO@DIGEST`, parsed by oci-client's
//! [`oci_client::Reference`] (Docker Hub names are normalized as `docker` does), plus the
//! bare-tag shorthand `retag` accepts for its destination.

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

impl ImageRef {
    /// Parse a full reference. A reference with neither tag nor digest means `:latest`.
    ///
    /// Refused besides what oci-client refuses (before any request is made): a registry
    /// host with a port but no repository (`127.0.0.1:5000`, which Docker would read as
    /// `docker.io/library/127.0.0.1:5000`), a tag that is not `[A-Za-z0-9_][A-Za-z0-9._-]`
    /// up to 128 characters (no Unicode), a digest that is not `sha256:`/`sha512:` with
    /// lowercase hex of the right length.
    pub fn parse(s: &str) -> Result<ImageRef, RefError> {
        let bad = |reason: String| RefError {
            reference: s.to_string(),
            reason,
        };
        if looks_like_bare_host(s) {
            return Err(bad(
                "this is a registry host and port without a repository (write HOST:PORT/REPOSITORY:TAG)".into(),
            ));
        }
        let r: oci_client::Reference = s.parse().map_err(|e| bad(format!("{e}")))?;
        let tag = r.tag().map(str::to_string);
        let digest = r.digest().map(str::to_string);
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
            registry: r.registry().to_string(),
            repository: r.repository().to_string(),
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
            return Err(RefError {
                reference: s.to_string(),
                reason: format!(
                    "the destination is not a valid tag ({TAG_CHARS}; at most 128 characters) nor a full reference"
                ),
            });
        }
        let r = ImageRef::parse(s)?;
        if r.digest.is_some() {
            return Err(RefError {
                reference: s.to_string(),
                reason: "a destination must be a tag, not a digest".into(),
            });
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

    /// Whether both live in the same repository of the same registry.
    pub fn same_repository(&self, other: &ImageRef) -> bool {
        self.registry == other.registry && self.repository == other.repository
    }
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
}
