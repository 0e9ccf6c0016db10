//! Two-platform test bases: rootfs tarballs of amd64 and arm64 (debootstrap's
//! python base through scripts/base-image, cached in /var/cache/stackctl; busybox-static of
//! each architecture) pushed to a test registry as one image index, blob and manifest
//! PUTs through stackctl's own registry client (no engine, no BuildKit needed).
#![allow(dead_code)]

use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};
use stackctl::credentials::CredentialStore;
use stackctl::registry::client::{Manifest, OCI_INDEX, OCI_MANIFEST};
use stackctl::registry::{ClientOptions, ImageRef, RegistryClient};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One platform of a base: `linux/arm64` and the rootfs tarball that is its only layer.
pub struct Layer {
    pub platform: &'static str,
    pub tar: PathBuf,
}

/// One test binary makes a cached file at a time (several tests ask at once).
static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The debootstrap python base's rootfs tarball for a Debian architecture (`amd64`,
/// `arm64`), made by `scripts/base-image --rootfs ARCH` when not cached. A cold arm64
/// one takes minutes (debootstrap's second stage runs through qemu-user-static).
pub fn python_rootfs(arch: &str) -> PathBuf {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/base-image"))
        .args(["--rootfs", arch])
        .output()
        .expect("run scripts/base-image --rootfs");
    assert!(
        out.status.success(),
        "scripts/base-image --rootfs {arch} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A busybox rootfs tarball (no python) for a Debian architecture: `busybox-static:ARCH`
/// from Debian (`apt-get download`, needs `dpkg --add-architecture ARCH`, which
/// scripts/dev-env does for arm64), unpacked with `dpkg -x`, cached beside the python base.
pub fn busybox_rootfs(arch: &str) -> PathBuf {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let cache = PathBuf::from(
        std::env::var("STACKCTL_CACHE").unwrap_or_else(|_| "/var/cache/stackctl".into()),
    );
    let tar = cache.join(format!("busybox-static-{arch}.tar"));
    if tar.is_file() {
        return tar;
    }
    let work = tempfile::tempdir().unwrap();
    let dl = Command::new("apt-get")
        .current_dir(work.path())
        .args(["download", &format!("busybox-static:{arch}")])
        .output()
        .expect("apt-get download");
    assert!(
        dl.status.success(),
        "apt-get download busybox-static:{arch} (scripts/dev-env adds the architecture): {}",
        String::from_utf8_lossy(&dl.stderr)
    );
    let deb = std::fs::read_dir(work.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("the downloaded .deb");
    let rootfs = work.path().join("rootfs");
    let x = Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(x.success(), "dpkg -x {}", deb.display());
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    for applet in [
        "sh", "cat", "echo", "ls", "uname", "true", "false", "env", "sleep",
    ] {
        let link = rootfs.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
    let tmp = cache.join(format!("busybox-static-{arch}.tar.{}", std::process::id()));
    let t = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tmp)
        .arg(".")
        .status()
        .unwrap();
    assert!(t.success(), "tar of the busybox rootfs");
    std::fs::rename(&tmp, &tar).unwrap();
    tar
}

/// `<tar>.gz` beside `tar` (gzip -1 -n: the same bytes each time), made when missing.
fn gzipped(tar: &Path) -> PathBuf {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let gz = PathBuf::from(format!("{}.gz", tar.display()));
    let fresh = |gz: &Path| {
        let (a, b) = (std::fs::metadata(gz), std::fs::metadata(tar));
        matches!((a, b), (Ok(a), Ok(b)) if a.modified().unwrap() >= b.modified().unwrap())
    };
    if !fresh(&gz) {
        let tmp = PathBuf::from(format!("{}.{}", gz.display(), std::process::id()));
        let out = std::fs::File::create(&tmp).unwrap();
        let ok = Command::new("gzip")
            .args(["-1", "-n", "-c"])
            .arg(tar)
            .stdout(out)
            .status()
            .unwrap();
        assert!(ok.success(), "gzip {}", tar.display());
        std::fs::rename(&tmp, &gz).unwrap();
    }
    gz
}

fn sha256_file(p: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(p).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    format!("sha256:{:x}", h.finalize())
}

/// Push `layers` (one per platform) as `<host>/<repo>:<tag>`, an OCI index of one image
/// manifest per platform, each with its rootfs as its one layer and `env`/`cmd` in its
/// config. Returns the index digest, read back from the registry.
pub async fn push_index(
    host: &str,
    repo: &str,
    tag: &str,
    layers: &[Layer],
    env: &[&str],
    cmd: &[&str],
) -> String {
    push_index_with(host, repo, tag, layers, json!({"Env": env, "Cmd": cmd})).await
}

/// [`push_index`] with the image config's `config` as given (`User`, `WorkingDir`, ...).
pub async fn push_index_with(
    host: &str,
    repo: &str,
    tag: &str,
    layers: &[Layer],
    image_config: serde_json::Value,
) -> String {
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let target = ImageRef::parse(&format!("{host}/{repo}:{tag}")).unwrap();
    let mut entries = vec![];
    for l in layers {
        let gz = gzipped(&l.tar);
        let diff_id = sha256_file(&l.tar);
        let blob = Bytes::from(std::fs::read(&gz).unwrap());
        let size = blob.len();
        let layer_digest = client.push_blob(&target, blob).await.unwrap();
        let (os, arch) = l.platform.split_once('/').unwrap();
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": os,
            "config": image_config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": format!("rootfs {}", l.tar.display())}],
        }))
        .unwrap();
        let config_size = config.len();
        let config_digest = client
            .push_blob(&target, Bytes::from(config))
            .await
            .unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": size}],
        }))
        .unwrap();
        let m = Manifest {
            digest: stackctl::registry::client::sha256_digest(&manifest),
            media_type: OCI_MANIFEST.into(),
            bytes: Bytes::from(manifest),
        };
        let at = target.with_digest(&m.digest);
        let d = client.put_manifest(&at, &m).await.unwrap();
        entries.push(json!({
            "mediaType": OCI_MANIFEST, "digest": d, "size": m.bytes.len(),
            "platform": {"os": os, "architecture": arch},
        }));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries,
    }))
    .unwrap();
    let m = Manifest {
        digest: stackctl::registry::client::sha256_digest(&index),
        media_type: OCI_INDEX.into(),
        bytes: Bytes::from(index),
    };
    client.put_manifest(&target, &m).await.unwrap();
    let back = client.head_manifest(&target).await.unwrap().unwrap();
    assert_eq!(
        back.digest, m.digest,
        "{target} names the index just pushed"
    );
    m.digest
}

/// The python base (amd64 + arm64) as `<host>/stackctl-local/debian-python:bookworm`.
pub async fn push_python_base(host: &str) -> String {
    let layers = [
        Layer {
            platform: "linux/amd64",
            tar: python_rootfs("amd64"),
        },
        Layer {
            platform: "linux/arm64",
            tar: python_rootfs("arm64"),
        },
    ];
    push_index(
        host,
        "stackctl-local/debian-python",
        "bookworm",
        &layers,
        &[
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG=C.UTF-8",
        ],
        &["/bin/bash"],
    )
    .await
}

/// busybox-static (amd64 + arm64, no python) as `<host>/stackctl-local/busybox:static`.
pub async fn push_busybox_base(host: &str) -> String {
    let layers = [
        Layer {
            platform: "linux/amd64",
            tar: busybox_rootfs("amd64"),
        },
        Layer {
            platform: "linux/arm64",
            tar: busybox_rootfs("arm64"),
        },
    ];
    push_index(
        host,
        "stackctl-local/busybox",
        "static",
        &layers,
        &["PATH=/bin"],
        &["sh"],
    )
    .await
}
