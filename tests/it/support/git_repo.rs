//! Real git repositories in temp dirs, made with git2, for plan tests.
#![allow(dead_code)]

use git2::{Oid, Repository, Signature};
use std::path::{Path, PathBuf};

pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub repo: Repository,
}

impl TestRepo {
    /// An empty repository whose first branch is `branch`.
    pub fn new(branch: &str) -> TestRepo {
        Self::new_at(branch, tempfile::tempdir().unwrap())
    }

    /// Like [`TestRepo::new`], in memory (/dev/shm) when the machine has it: for tests that
    /// write thousands of files, which a slow disk makes take many seconds.
    pub fn new_in_memory(branch: &str) -> TestRepo {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        Self::new_at(branch, dir)
    }

    fn new_at(branch: &str, dir: tempfile::TempDir) -> TestRepo {
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head(branch);
        let repo = Repository::init_opts(dir.path(), &opts).unwrap();
        TestRepo { dir, repo }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    pub fn remove(&self, rel: &str) -> &Self {
        let p = self.path().join(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
        self
    }

    pub fn rename(&self, from: &str, to: &str) -> &Self {
        let t: PathBuf = self.path().join(to);
        std::fs::create_dir_all(t.parent().unwrap()).unwrap();
        std::fs::rename(self.path().join(from), t).unwrap();
        self
    }

    fn stage_all(&self) -> Oid {
        let mut index = self.repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        index.write_tree().unwrap()
    }

    /// Commit the whole work tree on HEAD's branch; returns the commit.
    pub fn commit(&self, msg: &str) -> Oid {
        let parents: Vec<Oid> = self
            .repo
            .head()
            .ok()
            .and_then(|h| h.target())
            .into_iter()
            .collect();
        self.commit_with_parents(msg, &parents)
    }

    /// Commit the whole work tree with these parents, moving HEAD's branch.
    pub fn commit_with_parents(&self, msg: &str, parents: &[Oid]) -> Oid {
        self.commit_full(msg, parents, 1_700_000_000)
    }

    /// Commit the whole work tree on HEAD's branch at commit time `time` (seconds).
    pub fn commit_at(&self, msg: &str, time: i64) -> Oid {
        let parents: Vec<Oid> = self
            .repo
            .head()
            .ok()
            .and_then(|h| h.target())
            .into_iter()
            .collect();
        self.commit_full(msg, &parents, time)
    }

    fn commit_full(&self, msg: &str, parents: &[Oid], time: i64) -> Oid {
        let tree = self.repo.find_tree(self.stage_all()).unwrap();
        let sig = Signature::new("Test", "test@example.com", &git2::Time::new(time, 0)).unwrap();
        let parents: Vec<git2::Commit> = parents
            .iter()
            .map(|p| self.repo.find_commit(*p).unwrap())
            .collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, msg, &tree, &refs)
            .unwrap()
    }

    /// Create branch `name` at `at` and check it out (work tree and index follow).
    pub fn branch(&self, name: &str, at: Oid) {
        let c = self.repo.find_commit(at).unwrap();
        self.repo.branch(name, &c, true).unwrap();
        self.switch(name);
    }

    /// Check out an existing branch, forcing the work tree to it.
    pub fn switch(&self, name: &str) {
        let refname = format!("refs/heads/{name}");
        self.repo.set_head(&refname).unwrap();
        let mut co = git2::build::CheckoutBuilder::new();
        co.force().remove_untracked(true);
        self.repo.checkout_head(Some(&mut co)).unwrap();
    }

    /// Merge `other` into the current branch as a merge commit; the tree is the union
    /// of both sides (the tests never change the same file on both).
    pub fn merge(&self, other: Oid, msg: &str) -> Oid {
        let head = self.repo.head().unwrap().target().unwrap();
        let ours = self.repo.find_commit(head).unwrap();
        let theirs = self.repo.find_commit(other).unwrap();
        let mut idx = self.repo.merge_commits(&ours, &theirs, None).unwrap();
        assert!(!idx.has_conflicts());
        let tree = self
            .repo
            .find_tree(idx.write_tree_to(&self.repo).unwrap())
            .unwrap();
        let sig = Signature::new(
            "Test",
            "test@example.com",
            &git2::Time::new(1_700_000_000, 0),
        )
        .unwrap();
        let id = self
            .repo
            .commit(Some("HEAD"), &sig, &sig, msg, &tree, &[&ours, &theirs])
            .unwrap();
        let mut co = git2::build::CheckoutBuilder::new();
        co.force().remove_untracked(true);
        self.repo.checkout_head(Some(&mut co)).unwrap();
        id
    }
}
