//! Test images made locally through the Docker engine (bollard): the debootstrap
//! base image with python3 and pytest, a busybox rootfs without python, images built
//! from a Dockerfile with the engine's legacy builder, pushed to a loopback registry.
#![allow(dead_code)]

use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    PushImageOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// The engine at DOCKER_HOST (or the default socket), version negotiated.
pub async fn docker() -> Docker {
    super::docker_socket();
    Docker::connect_with_defaults()
        .expect("docker client")
        .negotiate_version()
        .await
        .expect("Docker engine answers")
}

/// `stackctl-local/debian-python:bookworm` (python3 + pytest), made by scripts/base-image
/// when missing (debootstrap, cached in /var/cache/stackctl).
pub fn base_image() -> String {
    // One debootstrap at a time: the tests of one binary ask for it concurrently.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/base-image"))
        .output()
        .expect("run scripts/base-image");
    assert!(
        out.status.success(),
        "scripts/base-image failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A tar of `dir`'s content (made by tar(1)).
pub fn tar_dir(dir: &Path) -> Vec<u8> {
    let out = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .expect("tar");
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A busybox image without python, `name:tag`, imported from a rootfs of /bin/busybox
/// (with the applets the tests' scripts and Dockerfiles use, and a root user).
pub async fn busybox_image(name: &str, tag: &str) -> String {
    let d = docker().await;
    let full = format!("{name}:{tag}");
    if d.inspect_image(&full).await.is_ok() {
        return full;
    }
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for dir in ["tmp", "etc", "root"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    std::fs::write(
        root.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
    )
    .unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("/bin/busybox (busybox-static)");
    for applet in [
        "sh",
        "sleep",
        "echo",
        "cat",
        "ls",
        "seq",
        "dd",
        "mkdir",
        "rm",
        "true",
        "false",
        "head",
        "wc",
        "env",
        "stat",
        "sha256sum",
        "test",
        "find",
        "sort",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let tar = tar_dir(root.path());
    let opts = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(name)
        .tag(tag)
        .changes(vec![
            "ENV PATH=/bin".to_string(),
            "CMD [\"sh\"]".to_string(),
        ])
        .build();
    let mut s = d.create_image(Some(opts), Some(bollard::body_full(tar.into())), None);
    while let Some(r) = s.next().await {
        r.expect("import busybox rootfs");
    }
    full
}

/// Build `dockerfile` (with `files` beside it) with the engine's legacy builder as `tag`.
pub async fn build(tag: &str, dockerfile: &str, files: &[(&str, &str)]) -> String {
    let d = docker().await;
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, text) in files {
        std::fs::write(ctx.path().join(name), text).unwrap();
    }
    let opts = BuildImageOptionsBuilder::new()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .build();
    let mut s = d.build_image(
        opts,
        None,
        Some(bollard::body_full(tar_dir(ctx.path()).into())),
    );
    let mut log = String::new();
    while let Some(r) = s.next().await {
        match r {
            Ok(info) => {
                if let Some(e) = info.error_detail {
                    panic!("build of {tag} failed: {e:?}\n{log}");
                }
                log.push_str(&info.stream.unwrap_or_default());
            }
            Err(e) => panic!("build of {tag} failed: {e}\n{log}"),
        }
    }
    tag.to_string()
}

/// Tag `local` as `host/repo:tag`, push it, and (unless `keep_local`) drop the local
/// registry tag so the engine has to pull it back from the registry. The pushed reference.
pub async fn push(local: &str, host: &str, repo: &str, tag: &str, keep_local: bool) -> String {
    let d = docker().await;
    let target = format!("{host}/{repo}");
    d.tag_image(
        local,
        Some(TagImageOptionsBuilder::new().repo(&target).tag(tag).build()),
    )
    .await
    .expect("tag");
    // The engine's progress stream is cut now and then when several tests push at once
    // ("bytes remaining on stream"); a push is idempotent, so it is tried again.
    for attempt in 1..=3 {
        let mut s = d.push_image(
            &target,
            Some(PushImageOptionsBuilder::new().tag(tag).build()),
            None,
        );
        let mut cut = None;
        while let Some(r) = s.next().await {
            match r {
                Ok(info) => {
                    if let Some(e) = info.error_detail {
                        panic!("push of {target}:{tag} failed: {e:?}");
                    }
                }
                Err(e) => {
                    cut = Some(e);
                    break;
                }
            }
        }
        match cut {
            None => break,
            Some(e) if attempt < 3 => {
                eprintln!("push of {target}:{tag}: {e}; trying again");
            }
            Some(e) => panic!("push of {target}:{tag}: {e}"),
        }
    }
    let full = format!("{target}:{tag}");
    if !keep_local {
        remove_tag(&full).await;
    }
    full
}

/// Remove one tag from the engine (the image stays under its other tags).
pub async fn remove_tag(r: &str) {
    let d = docker().await;
    let _ = d
        .remove_image(r, Some(RemoveImageOptionsBuilder::new().build()), None)
        .await;
}

/// Containers (running or not) carrying `label` (`key` or `key=value`).
pub async fn containers_with_label(label: &str) -> Vec<String> {
    let d = docker().await;
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let opts = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    d.list_containers(Some(opts))
        .await
        .expect("list containers")
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// Networks carrying `label`.
pub async fn networks_with_label(label: &str) -> Vec<String> {
    let d = docker().await;
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let opts = bollard::query_parameters::ListNetworksOptionsBuilder::new()
        .filters(&filters)
        .build();
    d.list_networks(Some(opts))
        .await
        .expect("list networks")
        .into_iter()
        .filter_map(|n| n.name)
        .collect()
}

/// The `stackctl=1` networks made since `before` that are still there with no container
/// attached. Other tests of this binary run at the same time and make such networks too,
/// so one that is in use, or that goes away within a few seconds, is theirs; a network a
/// test leaked stays empty for good.
pub async fn networks_left_since(before: &[String]) -> Vec<String> {
    let d = docker().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let mut left = vec![];
        for name in networks_with_label("stackctl=1").await {
            if before.contains(&name) {
                continue;
            }
            let Ok(n) = d.inspect_network(&name, None).await else {
                continue; // removed meanwhile
            };
            if n.containers.as_ref().is_none_or(|c| c.is_empty()) {
                left.push(name);
            }
        }
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// A stack repository in a temp dir: `spec.yml`, a placeholder Dockerfile for each
/// image of the spec, and files under it (`images/...`).
pub fn repo(spec_yaml: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.yml"), spec_yaml).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(spec_yaml).unwrap();
    if let Some(imgs) = v.get("images").and_then(|i| i.as_mapping()) {
        for key in imgs.keys().filter_map(|k| k.as_str()) {
            let d = dir.path().join("images").join(key);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        }
    }
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}
