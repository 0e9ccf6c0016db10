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
    pub fn parse(s: &str) -> Result<ImageRef, RefError> {
        let r: oci_client::Reference = s.parse().map_err(|e| RefError {
            reference: s.to_string(),
            reason: format!("{e}"),
        })?;
        let tag = r.tag().map(str::to_string);
        let digest = r.digest().map(str::to_string);
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
    /// no `/`, `:` or `@`) meaning "this tag in the repository of `src`".
    pub fn parse_destination(s: &str, src: &ImageRef) -> Result<ImageRef, RefError> {
        if is_valid_tag(s) && !s.contains(['/', ':', '@']) {
            return Ok(src.with_tag(s));
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
