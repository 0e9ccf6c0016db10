//! Build-time facts for `stackctl --version`: the git commit, whether the tree had changes,
//! and the version of the generated BuildKit protocol crate. Only local `git` and
//! Cargo.lock are read: no network.
use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
    // A new commit, or a change to the sources (which rebuilds the crate anyway), runs this
    // again. Git's index is not watched: `git status` touches it without changing anything.
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-env-changed=STACKCTL_BUILD_COMMIT");
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        let git_dir = Path::new(&git_dir);
        println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
        println!(
            "cargo:rerun-if-changed={}",
            git_dir.join("packed-refs").display()
        );
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let common = git(&["rev-parse", "--git-common-dir"]).unwrap_or_default();
            println!(
                "cargo:rerun-if-changed={}",
                Path::new(&common).join(head_ref).display()
            );
        }
    }

    // A source archive without .git (e.g. a crate download) may say which commit it is.
    let commit = std::env::var("STACKCTL_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=7", "HEAD"]))
        .unwrap_or_else(|| "unknown commit".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    println!("cargo:rustc-env=STACKCTL_GIT_COMMIT={commit}");

    // The protocol crate stackctl itself depends on: Cargo.lock names it with its version
    // in stackctl's dependency list when several versions are locked (bollard has its own).
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let packages: Vec<&str> = lock.split("[[package]]").collect();
    let ours = packages
        .iter()
        .find(|p| p.contains("name = \"stackctl\""))
        .and_then(|p| {
            p.lines()
                .map(|l| l.trim().trim_matches(|c| c == '"' || c == ','))
                .find(|l| l.starts_with("bollard-buildkit-proto"))
        })
        .and_then(|dep| dep.split_whitespace().nth(1).map(str::to_string));
    let proto = ours.unwrap_or_else(|| {
        packages
            .iter()
            .find(|p| p.contains("name = \"bollard-buildkit-proto\""))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    });
    // The BuildKit release whose .proto files the crate was generated from (its
    // provenance.lock.toml says so); a newer crate must be added here.
    let api = match proto.as_str() {
        "0.9.2" => "BuildKit API v0.29".to_string(),
        other => format!("BuildKit API of bollard-buildkit-proto {other}"),
    };
    let commit = if dirty {
        format!("{commit}, dirty")
    } else {
        commit
    };
    println!("cargo:rustc-env=STACKCTL_BUILDKIT_API={api}");
    println!(
        "cargo:rustc-env=STACKCTL_LONG_VERSION={} ({commit}, {api})",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
}
