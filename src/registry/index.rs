//! A multi-platform index put together from images already in a repository, without
//! pulling: each platform's manifest is read (with its small config blob, to check that it
//! is the platform it is said to be), a manifest list or OCI index listing them is made and
//! PUT by digest. `stackctl merge` ([`crate::promote::assemble`]) builds on it.

use super::client::{
    sha256_digest, Manifest, RegistryClient, RegistryError, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST,
    OCI_INDEX, OCI_MANIFEST,
};
use super::reference::ImageRef;
use crate::spec::platform::Platform;
use bytes::Bytes;
use oci_spec::image::{
    Arch, DescriptorBuilder, Digest, ImageIndexBuilder, MediaType, Os, PlatformBuilder,
};
use std::str::FromStr;

/// One platform's image of an index: its manifest's digest, media type and size.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IndexEntry {
    pub platform: Platform,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// An index made by [`RegistryClient::make_index`]: the manifest to PUT and what it lists.
#[derive(Clone, Debug)]
pub struct MadeIndex {
    pub manifest: Manifest,
    pub entries: Vec<IndexEntry>,
    /// Attestation manifests carried over, after the platforms (see
    /// [`RegistryClient::make_index_with`]).
    pub attestations: Vec<CarriedEntry>,
}

/// An index entry taken as it was from another index: an attestation manifest, with its
/// annotations and its `unknown/unknown` platform.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CarriedEntry {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub annotations: std::collections::BTreeMap<String, String>,
}

fn invalid(r: &ImageRef, reason: String) -> RegistryError {
    RegistryError::Invalid {
        reference: r.to_string(),
        reason,
    }
}

/// The index's media type for children of these media types: an OCI index when any child
/// is an OCI manifest, a Docker manifest list when all are Docker manifests.
pub fn index_media_type<'a>(children: impl IntoIterator<Item = &'a str>) -> &'static str {
    if children.into_iter().any(|m| m == OCI_MANIFEST) {
        OCI_INDEX
    } else {
        DOCKER_MANIFEST_LIST
    }
}

impl RegistryClient {
    /// Read the manifest of `repository@digest` for each platform (one GET of the manifest
    /// and one of its config; no layer is read) and make an index of them, in the order
    /// given. Refused when a child is missing, is not one image's manifest, or its config
    /// says another OS or architecture than its platform (the variant is taken from the
    /// config when the platform gives none).
    pub async fn make_index(
        &self,
        repository: &ImageRef,
        children: &[(Platform, String)],
    ) -> Result<MadeIndex, RegistryError> {
        let mut entries = Vec::with_capacity(children.len());
        for (platform, digest) in children {
            let at = repository.with_digest(digest);
            let m = self
                .get_manifest(&at)
                .await?
                .ok_or_else(|| RegistryError::NotFound {
                    reference: at.to_string(),
                })?;
            if m.media_type != DOCKER_MANIFEST && m.media_type != OCI_MANIFEST {
                return Err(invalid(
                    &at,
                    format!(
                        "the {platform} image is a {}, not one platform's image manifest",
                        m.media_type
                    ),
                ));
            }
            let variant = self.check_config(&at, &m, platform).await?;
            entries.push(IndexEntry {
                platform: Platform {
                    variant: platform.variant.clone().or(variant),
                    ..platform.clone()
                },
                digest: m.digest.clone(),
                media_type: m.media_type.clone(),
                size: m.bytes.len() as u64,
            });
        }
        let manifest = index_manifest(repository, &entries, &[])?;
        Ok(MadeIndex {
            manifest,
            entries,
            attestations: vec![],
        })
    }

    /// [`make_index`](Self::make_index), also listing the attestation manifests that the
    /// indexes `sources` (digests in the same repository, as BuildKit pushed them) hold for
    /// these platforms' manifests: the same manifests, by digest, so their bytes and
    /// signatures stay valid.
    pub async fn make_index_with(
        &self,
        repository: &ImageRef,
        children: &[(Platform, String)],
        sources: &[String],
    ) -> Result<MadeIndex, RegistryError> {
        let mut made = self.make_index(repository, children).await?;
        let wanted: Vec<&str> = children.iter().map(|(_, d)| d.as_str()).collect();
        for source in sources {
            let at = repository.with_digest(source);
            let Some(m) = self.get_manifest(&at).await? else {
                return Err(RegistryError::NotFound {
                    reference: at.to_string(),
                });
            };
            if m.media_type != OCI_INDEX && m.media_type != DOCKER_MANIFEST_LIST {
                continue; // one manifest: nothing attached
            }
            let v: serde_json::Value = serde_json::from_slice(&m.bytes)
                .map_err(|e| invalid(&at, format!("the index is not JSON: {e}")))?;
            for (e, subject) in super::attestation::attestation_entries(&v) {
                let digest = e["digest"].as_str().unwrap_or_default().to_string();
                if !wanted.contains(&subject.as_str())
                    || made.attestations.iter().any(|a| a.digest == digest)
                {
                    continue;
                }
                made.attestations.push(CarriedEntry {
                    digest,
                    media_type: e["mediaType"].as_str().unwrap_or(OCI_MANIFEST).to_string(),
                    size: e["size"].as_u64().unwrap_or(0),
                    annotations: e["annotations"]
                        .as_object()
                        .map(|a| {
                            a.iter()
                                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
        made.manifest = index_manifest(repository, &made.entries, &made.attestations)?;
        Ok(made)
    }

    /// The config of manifest `m` (at `at`) must say `platform`'s OS and architecture (and
    /// its variant, when both give one); returns the config's variant.
    async fn check_config(
        &self,
        at: &ImageRef,
        m: &Manifest,
        platform: &Platform,
    ) -> Result<Option<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Desc {
            digest: String,
        }
        #[derive(serde::Deserialize)]
        struct Image {
            config: Desc,
        }
        let image: Image = serde_json::from_slice(&m.bytes)
            .map_err(|e| invalid(at, format!("the manifest has no config: {e}")))?;
        let config = self.get_blob(at, &image.config.digest).await?;
        // An image config holds its platform's fields at its top level.
        let said: Platform = serde_json::from_slice(&config)
            .map_err(|e| invalid(at, format!("its config is not an image config: {e}")))?;
        let variant_differs = matches!(
            (&platform.variant, &said.variant),
            (Some(a), Some(b)) if a != b
        );
        if said.os != platform.os || said.architecture != platform.architecture || variant_differs {
            return Err(invalid(
                at,
                format!("recorded as the {platform} image, but its config says {said}"),
            ));
        }
        Ok(said.variant)
    }

    /// PUT an index made by [`make_index`](Self::make_index) by digest into `repository`
    /// (no tag); the registry must store it under that digest.
    pub async fn put_index(
        &self,
        repository: &ImageRef,
        index: &MadeIndex,
    ) -> Result<ImageRef, RegistryError> {
        let m = &index.manifest;
        let at = repository.with_digest(&m.digest);
        let stored = self.put_manifest(&at, m).await?;
        if stored != m.digest {
            return Err(invalid(
                &at,
                format!("the registry stored the index as {stored}"),
            ));
        }
        Ok(at)
    }
}

/// The index's bytes: `schemaVersion` 2, its media type, one descriptor (with `platform`)
/// per entry.
fn index_manifest(
    repository: &ImageRef,
    entries: &[IndexEntry],
    carried: &[CarriedEntry],
) -> Result<Manifest, RegistryError> {
    let bad =
        |e: oci_spec::OciSpecError| invalid(repository, format!("cannot make the index: {e}"));
    let media_type = index_media_type(entries.iter().map(|e| e.media_type.as_str()));
    let mut manifests = Vec::with_capacity(entries.len());
    for e in entries {
        let mut platform = PlatformBuilder::default()
            .os(Os::from(e.platform.os.as_str()))
            .architecture(Arch::from(e.platform.architecture.as_str()));
        if let Some(v) = &e.platform.variant {
            platform = platform.variant(v.clone());
        }
        let digest = Digest::from_str(&e.digest).map_err(bad)?;
        manifests.push(
            DescriptorBuilder::default()
                .media_type(MediaType::from(e.media_type.as_str()))
                .digest(digest)
                .size(e.size)
                .platform(platform.build().map_err(bad)?)
                .build()
                .map_err(bad)?,
        );
    }
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::from(media_type))
        .manifests(manifests)
        .build()
        .map_err(bad)?;
    let write = |e: serde_json::Error| invalid(repository, format!("cannot write the index: {e}"));
    let mut bytes = serde_json::to_vec(&index).map_err(write)?;
    if !carried.is_empty() {
        // oci-spec keeps annotations in a HashMap, whose order changes from run to run; the
        // same merge must give the same bytes, so these entries are written from sorted maps.
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).map_err(write)?;
        let list = v["manifests"]
            .as_array_mut()
            .ok_or_else(|| invalid(repository, "the index has no manifests".into()))?;
        for c in carried {
            list.push(serde_json::json!({
                "mediaType": c.media_type,
                "digest": c.digest,
                "size": c.size,
                "annotations": c.annotations,
                "platform": {"architecture": "unknown", "os": "unknown"},
            }));
        }
        bytes = serde_json::to_vec(&v).map_err(write)?;
    }
    Ok(Manifest {
        digest: sha256_digest(&bytes),
        bytes: Bytes::from(bytes),
        media_type: media_type.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_print() {
        let p: Platform = "linux/arm64".parse().unwrap();
        assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "arm64"));
        assert_eq!(p.variant, None);
        assert_eq!(p.to_string(), "linux/arm64");
        let v: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(v.variant.as_deref(), Some("v7"));
        assert_eq!(v.to_string(), "linux/arm/v7");
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/arm/v7/x",
            "linux/aarch64",
            "",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_index_lists_each_platform_with_its_descriptor() {
        let r = ImageRef::parse("127.0.0.1:5000/stack/base").unwrap();
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let entries = vec![
            IndexEntry {
                platform: "linux/amd64".parse().unwrap(),
                digest: d('a'),
                media_type: DOCKER_MANIFEST.into(),
                size: 100,
            },
            IndexEntry {
                platform: Platform {
                    variant: Some("v8".into()),
                    ..("linux/arm64".parse().unwrap())
                },
                digest: d('b'),
                media_type: DOCKER_MANIFEST.into(),
                size: 200,
            },
        ];
        let m = index_manifest(&r, &entries, &[]).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST_LIST);
        assert_eq!(m.digest, sha256_digest(&m.bytes));
        let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], DOCKER_MANIFEST_LIST);
        let list = v["manifests"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["digest"], d('a').as_str());
        assert_eq!(list[0]["size"], 100);
        assert_eq!(list[0]["mediaType"], DOCKER_MANIFEST);
        assert_eq!(
            list[0]["platform"],
            serde_json::json!({"os": "linux", "architecture": "amd64"})
        );
        assert_eq!(
            list[1]["platform"],
            serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})
        );
        // One OCI child makes it an OCI index.
        let mut oci = entries.clone();
        oci[1].media_type = OCI_MANIFEST.into();
        assert_eq!(index_manifest(&r, &oci, &[]).unwrap().media_type, OCI_INDEX);
    }
}
