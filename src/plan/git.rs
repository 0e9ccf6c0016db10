//! The git facts a plan needs, read through libgit2 (git2), never a `git` subprocess.
//!
//! Everything here is a tree-to-tree comparison or a lookup of one commit, so it
//! costs the same on a repository with ten commits or ten thousand: no history walk
//! except the merge-base search, which libgit2 does on the commit graph.

use git2::{Delta, DiffFindOptions, DiffOptions, ObjectType, Oid, Repository};
use std::path::Path;
use thiserror::Error;

/// Why a git question could not be answered. Each message is one line naming the
/// repository, revision or commit concerned (the libgit2 detail is folded in).
#[derive(Debug, Error)]
pub enum GitError {
    #[error("{path}: not a git repository (or any parent up to the file system root): {detail}")]
    NotARepository { path: String, detail: String },
    #[error("unknown revision `{rev}` ({what}): {detail}")]
    UnknownRev {
        rev: String,
        what: String,
        detail: String,
    },
    #[error("revision `{rev}` ({what}) is a {kind}, not a commit")]
    NotACommit {
        rev: String,
        what: String,
        kind: String,
    },
    #[error(
        "HEAD is detached (no branch checked out); pass --branch NAME (or set GITHUB_REF_NAME)"
    )]
    DetachedHead,
    #[error("HEAD names branch `{0}`, which has no commit yet")]
    UnbornBranch(String),
    #[error("commits {a} and {b} have no common ancestor, so the pull request's changes cannot be found; pass --base with a commit of the target branch")]
    NoMergeBase { a: String, b: String },
    #[error("git: {0}")]
    Other(String),
}

impl From<git2::Error> for GitError {
    fn from(e: git2::Error) -> Self {
        GitError::Other(e.message().to_string())
    }
}

/// How a file changed between two commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed,
    Copied,
    TypeChanged,
}

/// One changed file. A rename names both paths: a renamed image folder touches the
/// image it left and the image it joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// The path in the newer commit (for a deletion: the path that was deleted).
    pub path: String,
    /// The path in the older commit, when it differs (renames).
    pub old_path: Option<String>,
    pub kind: ChangeKind,
}

impl ChangedFile {
    /// Every path this change touches: the new one, and the old one of a rename.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_str()).chain(self.old_path.as_deref())
    }
}

/// Open the repository holding `path` (searching upwards, like `git` does).
pub fn open(path: &Path) -> Result<Repository, GitError> {
    Repository::discover(path).map_err(|e| GitError::NotARepository {
        path: path.display().to_string(),
        detail: e.message().to_string(),
    })
}

/// Whether `rev` is the all-zero object id GitHub sends as `before` on a branch's first push.
pub fn is_zero_rev(rev: &str) -> bool {
    !rev.is_empty() && rev.len() >= 7 && rev.chars().all(|c| c == '0')
}

/// The commit `rev` names (a sha, a branch, a tag, `HEAD~2`, ...). `what` says which
/// option it came from, for the message (e.g. `--base`).
pub fn resolve_commit(repo: &Repository, rev: &str, what: &str) -> Result<Oid, GitError> {
    let obj = repo.revparse_single(rev).map_err(|e| {
        let mut detail = e.message().to_string();
        if repo.is_shallow() {
            detail.push_str(
                "; this clone is shallow: fetch more history (actions/checkout `fetch-depth: 0`)",
            );
        }
        GitError::UnknownRev {
            rev: rev.to_string(),
            what: what.to_string(),
            detail,
        }
    })?;
    match obj.peel(ObjectType::Commit) {
        Ok(c) => Ok(c.id()),
        Err(_) => Err(GitError::NotACommit {
            rev: rev.to_string(),
            what: what.to_string(),
            kind: obj.kind().map(|k| k.to_string()).unwrap_or_default(),
        }),
    }
}

/// The first parent of `commit`, or `None` for a root commit (or the cut-off commit
/// of a shallow clone, whose parents are not there).
pub fn first_parent(repo: &Repository, commit: Oid) -> Result<Option<Oid>, GitError> {
    let c = repo.find_commit(commit)?;
    if c.parent_count() == 0 {
        return Ok(None);
    }
    let id = c.parent_id(0)?;
    // A shallow clone records the parent's id but not the parent itself.
    if repo.find_commit(id).is_err() {
        return Ok(None);
    }
    Ok(Some(id))
}

/// Whether `commit` has no parent (in this clone).
pub fn is_root(repo: &Repository, commit: Oid) -> Result<bool, GitError> {
    Ok(first_parent(repo, commit)?.is_none())
}

/// Whether `commit` is where a shallow clone's history is cut (its parents were not
/// fetched): listed in `.git/shallow`, or naming a parent that is not there.
pub fn is_shallow_cut(repo: &Repository, commit: Oid) -> Result<bool, GitError> {
    if repo.is_shallow() {
        let listed = std::fs::read_to_string(repo.path().join("shallow")).unwrap_or_default();
        if listed.lines().any(|l| l.trim() == commit.to_string()) {
            return Ok(true);
        }
    }
    let c = repo.find_commit(commit)?;
    Ok(c.parent_ids().any(|p| repo.find_commit(p).is_err()))
}

/// The repository's web URL, for the images' `org.opencontainers.image.source`:
/// GITHUB_SERVER_URL/GITHUB_REPOSITORY in GitHub Actions, else the `origin` remote's.
pub fn source_url(repo: &Repository) -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(server), Some(name)) = (var("GITHUB_SERVER_URL"), var("GITHUB_REPOSITORY")) {
        return Some(format!("{}/{name}", server.trim_end_matches('/')));
    }
    let remote = repo.find_remote("origin").ok()?;
    crate::bases::web_url(remote.url()?)
}

/// The best common ancestor of `a` and `b`.
pub fn merge_base(repo: &Repository, a: Oid, b: Oid) -> Result<Oid, GitError> {
    repo.merge_base(a, b).map_err(|e| {
        if e.code() == git2::ErrorCode::NotFound {
            GitError::NoMergeBase {
                a: a.to_string(),
                b: b.to_string(),
            }
        } else {
            e.into()
        }
    })
}

/// The last commit that changed any of `paths` (relative to the repository root), walking
/// first parents from `head`, and its commit time in seconds since 1970: an image's
/// `SOURCE_DATE_EPOCH`, so that a commit elsewhere leaves its timestamps as they were.
/// A merge counts as the change its branch brought in. None when no commit has the paths.
pub fn last_change(
    repo: &Repository,
    head: Oid,
    paths: &[&Path],
) -> Result<Option<(Oid, i64)>, GitError> {
    let ids = |c: &git2::Commit| -> Result<Vec<Option<Oid>>, GitError> {
        let tree = c.tree()?;
        Ok(paths
            .iter()
            .map(|p| tree.get_path(p).ok().map(|e| e.id()))
            .collect())
    };
    let mut cur = repo.find_commit(head)?;
    let mut cur_ids = ids(&cur)?;
    loop {
        let parent = match first_parent(repo, cur.id())? {
            Some(p) => repo.find_commit(p)?,
            // A root commit (or a shallow clone's cut) brought in whatever it has.
            None => {
                let any = cur_ids.iter().any(Option::is_some);
                return Ok(any.then(|| (cur.id(), cur.time().seconds())));
            }
        };
        let parent_ids = ids(&parent)?;
        if parent_ids != cur_ids {
            return Ok(Some((cur.id(), cur.time().seconds())));
        }
        (cur, cur_ids) = (parent, parent_ids);
    }
}

/// The full message of `commit`.
pub fn message(repo: &Repository, commit: Oid) -> Result<String, GitError> {
    let c = repo.find_commit(commit)?;
    Ok(String::from_utf8_lossy(c.message_bytes()).into_owned())
}

/// The short name of the checked-out branch. A detached HEAD is an error: the
/// caller must be told the branch (`--branch`, GITHUB_REF_NAME).
pub fn current_branch(repo: &Repository) -> Result<String, GitError> {
    if repo.head_detached()? {
        return Err(GitError::DetachedHead);
    }
    match repo.head() {
        Ok(head) => head
            .shorthand()
            .map(str::to_string)
            .ok_or_else(|| GitError::Other("HEAD's branch name is not UTF-8".into())),
        Err(e) if e.code() == git2::ErrorCode::UnbornBranch => {
            // HEAD points at refs/heads/<name> that has no commit yet.
            let name = repo
                .find_reference("HEAD")
                .ok()
                .and_then(|r| r.symbolic_target().map(str::to_string))
                .unwrap_or_default();
            Err(GitError::UnbornBranch(
                name.trim_start_matches("refs/heads/").to_string(),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Above this many added or deleted files, renames are not paired up (each side still
/// counts: a rename is then an addition plus a deletion, touching the same paths).
const RENAME_LIMIT: usize = 1000;

/// The files that differ between the trees of `from` and `to` (`from = None`: the
/// empty tree, i.e. every file of `to`). Sorted by path.
///
/// A tree-to-tree diff: identical sub-trees are skipped by id, so the cost follows
/// the number of changed entries, not the size of the history.
pub fn changed_files(
    repo: &Repository,
    from: Option<Oid>,
    to: Oid,
) -> Result<Vec<ChangedFile>, GitError> {
    let old_tree = match from {
        Some(id) => Some(repo.find_commit(id)?.tree()?),
        None => None,
    };
    let new_tree = repo.find_commit(to)?.tree()?;
    let mut opts = DiffOptions::new();
    opts.ignore_submodules(false).include_typechange(true);
    let mut diff = repo.diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), Some(&mut opts))?;
    if from.is_some() {
        let mut find = DiffFindOptions::new();
        find.renames(true).rename_limit(RENAME_LIMIT);
        diff.find_similar(Some(&mut find))?;
    }
    let mut out = Vec::with_capacity(diff.deltas().len());
    for d in diff.deltas() {
        let path_of = |f: git2::DiffFile| f.path().map(|p| p.to_string_lossy().replace('\\', "/"));
        let new_path = path_of(d.new_file());
        let old_path = path_of(d.old_file());
        let kind = match d.status() {
            Delta::Added => ChangeKind::Added,
            Delta::Deleted => ChangeKind::Deleted,
            Delta::Renamed => ChangeKind::Renamed,
            Delta::Copied => ChangeKind::Copied,
            Delta::Typechange => ChangeKind::TypeChanged,
            _ => ChangeKind::Modified,
        };
        let (path, old_path) = match kind {
            ChangeKind::Deleted => (old_path.or(new_path), None),
            ChangeKind::Renamed => (new_path, old_path),
            _ => (new_path.or(old_path), None),
        };
        if let Some(path) = path {
            out.push(ChangedFile {
                path,
                old_path,
                kind,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::Signature;
    use std::path::PathBuf;

    /// Commit the working files `files` (path, content; `None` deletes) on HEAD.
    fn commit(repo: &Repository, files: &[(&str, Option<&str>)], msg: &str) -> Oid {
        let root = repo.workdir().unwrap().to_path_buf();
        let mut index = repo.index().unwrap();
        for (p, content) in files {
            let full: PathBuf = root.join(p);
            match content {
                Some(c) => {
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, c).unwrap();
                    index.add_path(Path::new(p)).unwrap();
                }
                None => {
                    std::fs::remove_file(&full).unwrap();
                    index.remove_path(Path::new(p)).unwrap();
                }
            }
        }
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Signature::now("t", "t@example.com").unwrap();
        let parents: Vec<git2::Commit> = repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .into_iter()
            .collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &refs)
            .unwrap()
    }

    /// Commit `files` on HEAD with the commit time `time`.
    fn commit_at(repo: &Repository, files: &[(&str, Option<&str>)], time: i64) -> Oid {
        let id = commit(repo, files, "change");
        let c = repo.find_commit(id).unwrap();
        let sig = Signature::new("t", "t@example.com", &git2::Time::new(time, 0)).unwrap();
        let parents: Vec<git2::Commit> = c.parents().collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        // Put the same tree at HEAD again, with the wanted time.
        let tree = c.tree().unwrap();
        let new = repo
            .commit(None, &sig, &sig, "change", &tree, &refs)
            .unwrap();
        repo.head().unwrap().set_target(new, "time").unwrap();
        new
    }

    #[test]
    fn last_change_is_the_last_commit_under_the_paths() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let base = Path::new("images/base");
        let child = Path::new("images/child");
        let c1 = commit_at(&repo, &[("images/base/Dockerfile", Some("FROM a"))], 1000);
        let c2 = commit_at(&repo, &[("images/child/Dockerfile", Some("FROM b"))], 2000);
        let c3 = commit_at(&repo, &[("README.md", Some("docs"))], 3000);
        // A commit elsewhere moves no epoch.
        assert_eq!(last_change(&repo, c3, &[base]).unwrap(), Some((c1, 1000)));
        assert_eq!(
            last_change(&repo, c3, &[child, base]).unwrap(),
            Some((c2, 2000))
        );
        // A change to the parent's folder is a change of the child's inputs.
        let c4 = commit_at(&repo, &[("images/base/x", Some("1"))], 4000);
        let c5 = commit_at(&repo, &[("images/other/x", Some("1"))], 5000);
        assert_eq!(
            last_change(&repo, c5, &[child, base]).unwrap(),
            Some((c4, 4000))
        );
        assert_eq!(last_change(&repo, c5, &[child]).unwrap(), Some((c2, 2000)));
        // Deleting a file is a change too; an older HEAD gives its own answer.
        let c6 = commit_at(&repo, &[("images/child/Dockerfile", None)], 6000);
        assert_eq!(last_change(&repo, c6, &[child]).unwrap(), Some((c6, 6000)));
        assert_eq!(last_change(&repo, c3, &[child]).unwrap(), Some((c2, 2000)));
        // A folder no commit has.
        let none = Path::new("images/none");
        assert_eq!(last_change(&repo, c6, &[none]).unwrap(), None);
    }

    #[test]
    fn root_parent_changes_and_renames() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let c1 = commit(
            &repo,
            &[
                ("images/a/Dockerfile", Some("FROM x\nRUN a\n")),
                ("README", Some("r")),
            ],
            "one",
        );
        assert!(is_root(&repo, c1).unwrap());
        let all = changed_files(&repo, None, c1).unwrap();
        assert_eq!(all.len(), 2);

        // Rename the folder (same content): both paths are named.
        std::fs::create_dir_all(dir.path().join("images/b")).unwrap();
        let c2 = commit(
            &repo,
            &[
                ("images/a/Dockerfile", None),
                ("images/b/Dockerfile", Some("FROM x\nRUN a\n")),
            ],
            "Rename",
        );
        assert_eq!(first_parent(&repo, c2).unwrap(), Some(c1));
        let ch = changed_files(&repo, Some(c1), c2).unwrap();
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].kind, ChangeKind::Renamed);
        assert_eq!(
            ch[0].paths().collect::<Vec<_>>(),
            ["images/b/Dockerfile", "images/a/Dockerfile"]
        );

        let c3 = commit(&repo, &[("README", None)], "del");
        let ch = changed_files(&repo, Some(c2), c3).unwrap();
        assert_eq!(ch[0].path, "README");
        assert_eq!(ch[0].kind, ChangeKind::Deleted);

        assert_eq!(message(&repo, c3).unwrap(), "del");
        assert_eq!(resolve_commit(&repo, "HEAD~2", "--base").unwrap(), c1);
        let err = resolve_commit(&repo, "nope", "--base").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("unknown revision `nope` (--base)"));
        let b = current_branch(&repo).unwrap();
        assert!(b == "master" || b == "main", "{b}");

        repo.set_head_detached(c2).unwrap();
        assert!(matches!(current_branch(&repo), Err(GitError::DetachedHead)));
    }

    #[test]
    fn zero_rev() {
        assert!(is_zero_rev("0000000000000000000000000000000000000000"));
        assert!(!is_zero_rev("0"));
        assert!(!is_zero_rev("00000000a"));
    }
}
