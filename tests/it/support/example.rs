//! The built-in example stack (`spec.yml`, `images/`) copied into a temp git
//! repository, its loopback registry address rewritten to a test registry's port,
//! so end-to-end tests can build it, change it and build it again.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The registry address the example names in spec.yml and its Dockerfiles.
pub const EXAMPLE_REGISTRY: &str = "127.0.0.1:5111";

/// A copy of the example stack in a git repository (branch `main`, one commit).
pub struct ExampleRepo {
    git: super::git_repo::TestRepo,
    /// The repository, for tests that look at its history.
    pub repo: git2::Repository,
    /// `127.0.0.1:<port>`: where the copy's images and base live.
    pub registry: String,
}

impl ExampleRepo {
    /// Copy the example stack with every `127.0.0.1:5111/` made `<registry>/`, and commit it.
    pub fn create(registry: &str) -> ExampleRepo {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"));
        let git = super::git_repo::TestRepo::new("main");
        let from = format!("{EXAMPLE_REGISTRY}/");
        let to = format!("{registry}/");
        copy_rewritten(
            &src.join("spec.yml"),
            &git.path().join("spec.yml"),
            &from,
            &to,
        );
        copy_tree(&src.join("images"), &git.path().join("images"), &from, &to);
        git.commit("example stack");
        let repo = git2::Repository::open(git.path()).unwrap();
        ExampleRepo {
            git,
            repo,
            registry: registry.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.git.path()
    }

    /// The image the spec's base is built FROM, to push before a build
    /// (`<registry>/stackctl-local/debian-python:bookworm`).
    pub fn base_image(&self) -> String {
        format!("{}/stackctl-local/debian-python:bookworm", self.registry)
    }

    /// `<registry>/stackctl-example/<key>`.
    pub fn image_name(&self, key: &str) -> String {
        format!("{}/stackctl-example/{key}", self.registry)
    }

    /// Write `rel` (relative to the repository) and commit every change; returns the commit id.
    pub fn change(&self, rel: &str, content: &str, message: &str) -> git2::Oid {
        self.git.write(rel, content).commit(message)
    }

    /// Append a line to `rel` and commit.
    pub fn append(&self, rel: &str, line: &str, message: &str) -> git2::Oid {
        let mut text = std::fs::read_to_string(self.path().join(rel)).unwrap();
        text.push_str(line);
        text.push('\n');
        self.change(rel, &text, message)
    }

    /// Stage everything (deletions too) and commit on HEAD.
    pub fn commit_all(&self, message: &str) -> git2::Oid {
        self.git.commit(message)
    }
}

fn copy_rewritten(from: &Path, to: &Path, old: &str, new: &str) {
    let bytes = std::fs::read(from).unwrap();
    let out = match String::from_utf8(bytes) {
        Ok(text) => text.replace(old, new).into_bytes(),
        Err(e) => e.into_bytes(),
    };
    std::fs::write(to, out).unwrap();
    let mode = std::fs::metadata(from).unwrap().permissions();
    std::fs::set_permissions(to, mode).unwrap();
}

fn copy_tree(from: &Path, to: &Path, old: &str, new: &str) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        // Python's caches from running the tests locally are not part of the stack.
        if rel.components().any(|c| c.as_os_str() == "__pycache__") {
            continue;
        }
        let dest: PathBuf = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            copy_rewritten(entry.path(), &dest, old, new);
        }
    }
}
