//! A real cosign (Debian sid's 3.x, which scripts/dev-env fetches) to check stackctl's
//! signatures with: `STACKCTL_COSIGN`, else /var/cache/stackctl/cosign-sid/usr/bin/cosign.
//! Without one a test is skipped (said on stderr); with `CI=true` it fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn binary(test: &str) -> Option<PathBuf> {
    let p = std::env::var_os("STACKCTL_COSIGN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache =
                std::env::var("STACKCTL_CACHE").unwrap_or_else(|_| "/var/cache/stackctl".into());
            Path::new(&cache).join("cosign-sid/usr/bin/cosign")
        });
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "no cosign at {} (scripts/dev-env fetches it): CI=true",
            p.display()
        );
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: no cosign at {}",
        p.display()
    );
    None
}

/// `cosign generate-key-pair` in `dir` with `password`: (cosign.key, cosign.pub).
pub fn key_pair(cosign: &Path, dir: &Path, password: &str) -> (PathBuf, PathBuf) {
    let o = Command::new(cosign)
        .current_dir(dir)
        .env("COSIGN_PASSWORD", password)
        .arg("generate-key-pair")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cosign generate-key-pair: {}",
        super::outcome(&o)
    );
    (dir.join("cosign.key"), dir.join("cosign.pub"))
}

/// `cosign verify --key PUB` of `reference`, offline (no transparency log), over http.
pub fn verify(cosign: &Path, public: &Path, reference: &str) -> Output {
    Command::new(cosign)
        .arg("verify")
        .arg("--key")
        .arg(public)
        .args([
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            "--output",
            "json",
        ])
        .arg(reference)
        .output()
        .unwrap()
}
