//! Test images built by hand and pushed with stackctl's own client: one of each manifest
//! kind (Docker schema 2, Docker manifest list, OCI manifest, OCI index).

use bytes::Bytes;
use stackctl::registry::client::{
    sha256_digest, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};
use stackctl::registry::{ImageRef, Manifest, RegistryClient};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Docker,
    DockerList,
    Oci,
    OciIndex,
}

pub const ALL_KINDS: [Kind; 4] = [Kind::Docker, Kind::DockerList, Kind::Oci, Kind::OciIndex];

fn manifest(bytes: Vec<u8>, media_type: &str) -> Manifest {
    Manifest {
        digest: sha256_digest(&bytes),
        bytes: Bytes::from(bytes),
        media_type: media_type.into(),
    }
}

/// Push a single-platform image (config + `layers` layers of `layer_size` bytes each, made
/// from `seed`) to `r`'s repository, its manifest by digest; returns the manifest.
pub async fn push_single(
    c: &RegistryClient,
    r: &ImageRef,
    oci: bool,
    seed: &str,
    arch: &str,
    layers: usize,
    layer_size: usize,
) -> Manifest {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..layers {
        let mut data = format!("{seed}-{arch}-{i}-").into_bytes();
        while data.len() < layer_size {
            let more = sha256_digest(&data).into_bytes();
            data.extend_from_slice(&more);
        }
        data.truncate(layer_size.max(1));
        let d = c.push_blob(r, Bytes::from(data.clone())).await.unwrap();
        diff_ids.push(d.clone());
        descs.push(serde_json::json!({
            "mediaType": if oci { "application/vnd.oci.image.layer.v1.tar+gzip" } else { "application/vnd.docker.image.rootfs.diff.tar.gzip" },
            "size": data.len(), "digest": d,
        }));
    }
    let config = serde_json::json!({
        "architecture": arch, "os": "linux", "config": {"Labels": {"seed": seed}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_digest = c.push_blob(r, Bytes::from(config.clone())).await.unwrap();
    let (mt, config_mt) = if oci {
        (OCI_MANIFEST, "application/vnd.oci.image.config.v1+json")
    } else {
        (
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
        )
    };
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": mt,
        "config": {"mediaType": config_mt, "size": config.len(), "digest": config_digest},
        "layers": descs,
    });
    let m = manifest(serde_json::to_vec_pretty(&m).unwrap(), mt);
    c.put_manifest(&r.with_digest(&m.digest), &m).await.unwrap();
    m
}

/// Push an image of `kind` under `r`'s tag; a list or index has two platforms.
pub async fn push_kind(c: &RegistryClient, r: &ImageRef, kind: Kind, seed: &str) -> Manifest {
    let m = match kind {
        Kind::Docker | Kind::Oci => {
            push_single(c, r, kind == Kind::Oci, seed, "amd64", 2, 1024).await
        }
        Kind::DockerList | Kind::OciIndex => {
            let oci = kind == Kind::OciIndex;
            let mut children = Vec::new();
            for arch in ["amd64", "arm64"] {
                let child = push_single(c, r, oci, seed, arch, 2, 1024).await;
                children.push(serde_json::json!({
                    "mediaType": child.media_type, "size": child.bytes.len(),
                    "digest": child.digest, "platform": {"architecture": arch, "os": "linux"},
                }));
            }
            let mt = if oci { OCI_INDEX } else { DOCKER_MANIFEST_LIST };
            let idx =
                serde_json::json!({"schemaVersion": 2, "mediaType": mt, "manifests": children});
            manifest(serde_json::to_vec(&idx).unwrap(), mt)
        }
    };
    let stored = c.put_manifest(r, &m).await.unwrap();
    assert_eq!(stored, m.digest);
    m
}

/// Push a one-layer OCI image whose config records `created` (RFC 3339), under `r`'s tag:
/// the creation time is what orders concurrent promotions.
pub async fn push_created(c: &RegistryClient, r: &ImageRef, seed: &str, created: &str) -> Manifest {
    let layer = format!("{seed}-layer").into_bytes();
    let layer_digest = c.push_blob(r, Bytes::from(layer.clone())).await.unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {"Labels": {"seed": seed}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string();
    let config_digest = c.push_blob(r, Bytes::from(config.clone())).await.unwrap();
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": layer.len(), "digest": layer_digest}],
    });
    let m = manifest(serde_json::to_vec(&m).unwrap(), OCI_MANIFEST);
    assert_eq!(c.put_manifest(r, &m).await.unwrap(), m.digest);
    m
}
