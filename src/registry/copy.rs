//! Copy and retag, above the client's operations: a manifest given another reference
//! byte for byte, with the blobs it refers to made present first (nothing, a
//! cross-repository mount, or a stream through this process). Promotion
//! ([`crate::promote::transaction`]) is built on these.

use super::client::{Manifest, RegistryClient, RegistryError};
use super::reference::ImageRef;
use super::transport::retry::Unanswered;
use futures::StreamExt;

/// How a blob got into the target repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobCopy {
    /// Already there.
    Present,
    /// Cross-repository mounted by the registry (no data moved).
    Mounted,
    /// Streamed through this process (mount refused, or another registry).
    Streamed,
}

/// Counts of what a copy did with blobs.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BlobStats {
    pub present: usize,
    pub mounted: usize,
    pub streamed: usize,
    pub streamed_bytes: u64,
}

impl BlobStats {
    fn add(&mut self, c: BlobCopy, size: u64) {
        match c {
            BlobCopy::Present => self.present += 1,
            BlobCopy::Mounted => self.mounted += 1,
            BlobCopy::Streamed => {
                self.streamed += 1;
                self.streamed_bytes += size;
            }
        }
    }
    fn merge(&mut self, o: &BlobStats) {
        self.present += o.present;
        self.mounted += o.mounted;
        self.streamed += o.streamed;
        self.streamed_bytes += o.streamed_bytes;
    }
}

/// What a retag did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RetagReport {
    pub source: String,
    pub target: String,
    pub digest: String,
    pub media_type: String,
    pub blobs: BlobStats,
}

impl RegistryClient {
    /// Make blob `digest` present in `dst`: nothing if it is there, a cross-repository mount
    /// when both are on one registry, else (or when the mount is refused) stream it.
    pub async fn copy_blob(
        &self,
        src: &ImageRef,
        dst: &ImageRef,
        digest: &str,
        size: u64,
    ) -> Result<BlobCopy, RegistryError> {
        if self.blob_exists(dst, digest).await? {
            return Ok(BlobCopy::Present);
        }
        let same_registry = self.host(src) == self.host(dst);
        let mount = (same_registry && !self.no_mount()).then_some((digest, src));
        let mut loc = match self.start_upload(dst, mount).await? {
            None => return Ok(BlobCopy::Mounted),
            Some(loc) => loc,
        };
        let mut attempt = 1;
        loop {
            match self.stream_blob(src, dst, digest, size, loc.clone()).await {
                Ok(()) => return Ok(BlobCopy::Streamed),
                Err(e @ RegistryError::Network { .. })
                    if attempt < self.retry_policy().attempts =>
                {
                    tracing::warn!("{e}; streaming {digest} again");
                    tokio::time::sleep(self.retry_policy().backoff(attempt)).await;
                    attempt += 1;
                    loc = self
                        .start_upload(dst, None)
                        .await?
                        .expect("a plain upload is never a mount");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Copy everything manifest `m` (of `src`) refers to into `dst`'s repository: blobs of an
    /// image manifest; child manifests (PUT by digest) and their blobs for an index.
    fn copy_referenced<'a>(
        &'a self,
        src: &'a ImageRef,
        dst: &'a ImageRef,
        m: &'a Manifest,
    ) -> futures::future::BoxFuture<'a, Result<BlobStats, RegistryError>> {
        Box::pin(async move {
            #[derive(serde::Deserialize)]
            struct Desc {
                digest: String,
                #[serde(default)]
                size: u64,
                #[serde(rename = "mediaType", default)]
                media_type: String,
                #[serde(default)]
                urls: Vec<String>,
            }
            #[derive(serde::Deserialize)]
            struct Any {
                config: Option<Desc>,
                #[serde(default)]
                layers: Vec<Desc>,
                #[serde(default)]
                manifests: Vec<Desc>,
            }
            let parsed: Any =
                serde_json::from_slice(&m.bytes).map_err(|e| RegistryError::Invalid {
                    reference: src.to_string(),
                    reason: format!("manifest is not valid JSON: {e}"),
                })?;
            let mut stats = BlobStats::default();
            // Children of an index first: each must be in the repository before the index.
            for child in &parsed.manifests {
                let child_src = src.with_digest(&child.digest);
                let cm = self.get_manifest(&child_src).await?.ok_or_else(|| {
                    RegistryError::NotFound {
                        reference: child_src.to_string(),
                    }
                })?;
                stats.merge(&self.copy_referenced(&child_src, dst, &cm).await?);
                self.put_manifest(&dst.with_digest(&child.digest), &cm)
                    .await?;
            }
            // Foreign layers (with `urls`) are not in the registry: nothing to copy.
            let blobs: Vec<(String, u64)> = parsed
                .config
                .iter()
                .chain(parsed.layers.iter())
                .filter(|d| d.urls.is_empty() || !d.media_type.contains("foreign"))
                .map(|d| (d.digest.clone(), d.size))
                .collect();
            let futs: Vec<_> = blobs
                .into_iter()
                .map(|(digest, size)| async move {
                    self.copy_blob(src, dst, &digest, size)
                        .await
                        .map(|c| (c, size))
                })
                .collect();
            let results: Vec<Result<(BlobCopy, u64), RegistryError>> = futures::stream::iter(futs)
                .buffer_unordered(4)
                .collect()
                .await;
            for r in results {
                let (c, size) = r?;
                stats.add(c, size);
            }
            Ok(stats)
        })
    }

    /// Put manifest `m` (fetched from `src`) under `dst`, byte for byte; copies blobs first
    /// when `dst` is another repository. Verifies the stored digest equals `m`'s.
    pub async fn retag_manifest(
        &self,
        src: &ImageRef,
        m: &Manifest,
        dst: &ImageRef,
    ) -> Result<RetagReport, RegistryError> {
        self.retag_manifest_noting(src, m, dst, None).await
    }

    /// [`retag_manifest`](Self::retag_manifest), noting manifest PUT attempts without an
    /// answer in `unanswered`. The stored digest is the PUT answer's `Docker-Content-Digest`,
    /// checked against the sha256 of the bytes sent: no HEAD afterwards.
    pub async fn retag_manifest_noting(
        &self,
        src: &ImageRef,
        m: &Manifest,
        dst: &ImageRef,
        unanswered: Option<&Unanswered>,
    ) -> Result<RetagReport, RegistryError> {
        let blobs = if src.same_repository(dst) {
            BlobStats::default()
        } else {
            self.copy_referenced(src, dst, m).await?
        };
        let digest = self.put_manifest_noting(dst, m, unanswered).await?;
        if digest != m.digest {
            return Err(RegistryError::Invalid {
                reference: dst.to_string(),
                reason: format!(
                    "the registry stored digest {digest}, not the source's {}",
                    m.digest
                ),
            });
        }
        Ok(RetagReport {
            source: src.to_string(),
            target: dst.to_string(),
            digest,
            media_type: m.media_type.clone(),
            blobs,
        })
    }

    /// Give `src`'s manifest the reference `dst` without pulling: one GET of the manifest,
    /// one PUT of the same bytes (plus blob mounts when `dst` is another repository).
    pub async fn retag(
        &self,
        src: &ImageRef,
        dst: &ImageRef,
    ) -> Result<RetagReport, RegistryError> {
        let m = self
            .get_manifest(src)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                reference: src.to_string(),
            })?;
        self.retag_manifest(src, &m, dst).await
    }

    /// Read `dst` back after a write: it must name `digest` (a registry has no transactions;
    /// another run may have tagged it meanwhile). `label` names `dst` in messages, as the
    /// caller writes it for people.
    pub async fn expect_digest(
        &self,
        dst: &ImageRef,
        label: &str,
        digest: &str,
    ) -> anyhow::Result<String> {
        use anyhow::Context as _;
        let now = self
            .head_manifest(dst)
            .await
            .with_context(|| format!("reading back {label}"))?
            .map(|d| d.digest);
        match now {
            Some(d) if d == digest => Ok(d),
            other => anyhow::bail!(
                "{label} names {} after tagging, not the tested {digest} (another run tagged it?)",
                other.as_deref().unwrap_or("nothing")
            ),
        }
    }

    /// Give the manifest `src` (a `<repository>@<digest>` reference) the tag `dst` (a
    /// manifest GET and PUT, no blob moves), then read `dst` back ([`Self::expect_digest`]).
    pub async fn tag_digest(
        &self,
        src: &ImageRef,
        dst: &ImageRef,
        label: &str,
    ) -> anyhow::Result<String> {
        use anyhow::Context as _;
        let digest = src
            .digest
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("{src} is not a digest reference"))?;
        self.retag(src, dst)
            .await
            .with_context(|| format!("tagging {src} as {label}"))?;
        self.expect_digest(dst, label, digest).await
    }
}
