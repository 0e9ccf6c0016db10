//! The rebuild plan on real git repositories (git2, temp dirs).
//!
//! The stack used here (spec at the repository root):
//! ```text
//! base            (root)
//!   child-a
//!     grandchild  (sets BASE_TAG itself)
//!   child-b
//! other           (a second root)
//! ```
//! Change rules: `ignore: [docs]`, `build_all: [tests_common, conftest.py]`.

use crate::support;

use stackctl::plan::github_event::{GithubEnv, GithubEvent};
use stackctl::plan::{
    make_plan, reason, resolve_options, Base, Plan, PlanOptions, PlanRequest, RegistryCheck,
};
use stackctl::spec::Spec;
use support::git_repo::TestRepo;

const SPEC: &str = r#"
root: [base, other]
images:
  base:
    image_name: localhost:5000/stack/base
    build_args: {PYTHON_VERSION: "3.11"}
  child-a:
    image_name: localhost:5000/stack/child-a
    depend_on: base
  grandchild:
    image_name: localhost:5000/stack/grandchild
    depend_on: child-a
    build_args: {BASE_TAG: pinned}
  child-b:
    image_name: localhost:5000/stack/child-b
    depend_on: base
  other:
    image_name: localhost:5000/stack/other
tag:
  prefix: "2026.3"
changes:
  ignore: [docs]
  build_all: [tests_common, conftest.py]
"#;

const ALL: [&str; 5] = ["base", "child-a", "grandchild", "child-b", "other"];

/// A repository with the stack committed once on `branch`; returns it and that commit.
fn stack(branch: &str) -> (TestRepo, git2::Oid) {
    let r = TestRepo::new(branch);
    r.write("spec.yml", SPEC)
        .write("README.md", "# stack\n")
        .write("images/tests_common/test_common.py", "def test_x(): pass\n")
        .write("images/conftest.py", "# fixtures\n")
        .write("images/docs/notes.md", "notes\n");
    for k in ALL {
        r.write(
            &format!("images/{k}/Dockerfile"),
            &format!("FROM scratch\n# {k}\n"),
        );
    }
    let c = r.commit("initial stack");
    (r, c)
}

fn plan_with(r: &TestRepo, opts: &PlanOptions) -> Plan {
    let spec = Spec::load(r.path(), None).unwrap();
    make_plan(&spec, &r.repo, opts).unwrap()
}

/// The plan of HEAD on `branch`, compared with HEAD's first parent (a push).
fn plan_push(r: &TestRepo, branch: &str) -> Plan {
    plan_with(
        r,
        &PlanOptions {
            branch: Some(branch.into()),
            ..PlanOptions::default()
        },
    )
}

fn reasons<'a>(p: &'a Plan, key: &str) -> &'a [String] {
    &p.image(key).unwrap().reasons
}

#[test]
fn root_commit_rebuilds_everything_with_every_file_changed() {
    let (r, c) = stack("feature");
    let p = plan_push(&r, "feature");
    assert_eq!(p.rebuilt_keys(), ALL);
    assert!(p.full_rebuild);
    assert_eq!(p.base, None);
    assert_eq!(p.head, c.to_string());
    assert!(p.changed_files.contains(&"spec.yml".to_string()));
    assert!(p
        .changed_files
        .contains(&"images/other/Dockerfile".to_string()));
    for k in ALL {
        assert!(
            reasons(&p, k).contains(&reason::ROOT_COMMIT.to_string()),
            "{k}"
        );
    }
}

#[test]
fn root_commit_with_an_explicit_base_compares_with_it() {
    // `--base HEAD` on a root commit: nothing changed, so nothing rebuilds for git's
    // reasons (the registry check alone then decides, as scripts/local-stack uses it).
    let (r, c) = stack("feature");
    let p = plan_with(
        &r,
        &PlanOptions {
            branch: Some("feature".into()),
            base: Base::Rev {
                rev: c.to_string(),
                origin: "--base".into(),
            },
            ..PlanOptions::default()
        },
    );
    assert!(p.rebuilt_keys().is_empty(), "{p}");
    assert!(p.changed_files.is_empty());
    assert!(!p.full_rebuild);
}

#[test]
fn image_order_refs_tags_and_build_args() {
    let (r, _) = stack("feature");
    r.write("README.md", "changed\n").commit("docs only");
    // A branch name git refuses can still come from --branch or GitHub's variables.
    let p = plan_push(&r, "feature/new:thing");
    let keys: Vec<&str> = p.images.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        keys, ALL,
        "parents first, spec order among siblings, roots in `root` order"
    );
    assert_eq!(p.tag, "2026.3-feature-new-thing");
    assert_eq!(p.tag_prefix, "2026.3");
    let base = p.image("base").unwrap();
    assert_eq!(
        base.reference,
        "localhost:5000/stack/base:2026.3-feature-new-thing"
    );
    assert_eq!(base.parent, None);
    assert_eq!(
        base.build_args.get("PYTHON_VERSION").map(String::as_str),
        Some("3.11")
    );
    assert!(
        !base.build_args.contains_key("BASE_TAG"),
        "a root gets no BASE_TAG"
    );
    let a = p.image("child-a").unwrap();
    assert_eq!(a.parent.as_deref(), Some("base"));
    assert_eq!(
        a.build_args.get("BASE_TAG").map(String::as_str),
        Some("2026.3-feature-new-thing")
    );
    let g = p.image("grandchild").unwrap();
    assert_eq!(
        g.build_args.get("BASE_TAG").map(String::as_str),
        Some("pinned"),
        "the spec's wins"
    );
    assert_eq!(p.registry_check, RegistryCheck::Skipped);
}

#[test]
fn files_outside_images_rebuild_nothing() {
    let (r, c1) = stack("feature");
    r.write("README.md", "more\n")
        .write(".github/workflows/main.yml", "on: push\n")
        .write("scripts/x.sh", "echo\n");
    let c2 = r.commit("outside");
    let p = plan_push(&r, "feature");
    assert!(p.rebuilt_keys().is_empty(), "{:?}", p.images);
    assert!(!p.full_rebuild);
    assert_eq!(p.base, Some(c1.to_string()));
    assert_eq!(p.head, c2.to_string());
    assert_eq!(
        p.changed_files,
        [".github/workflows/main.yml", "README.md", "scripts/x.sh"]
    );
}

#[test]
fn child_only_change_rebuilds_the_child_alone() {
    let (r, _) = stack("feature");
    r.write("images/grandchild/Dockerfile", "FROM scratch\n# changed\n")
        .commit("grandchild");
    let p = plan_push(&r, "feature");
    assert_eq!(p.rebuilt_keys(), ["grandchild"]);
    assert_eq!(
        reasons(&p, "grandchild"),
        ["changed: images/grandchild/Dockerfile"]
    );
}

#[test]
fn a_rebuilt_image_rebuilds_its_descendants() {
    let (r, _) = stack("feature");
    r.write("images/child-a/extra.txt", "x\n").commit("child-a");
    let p = plan_push(&r, "feature");
    assert_eq!(p.rebuilt_keys(), ["child-a", "grandchild"]);
    assert_eq!(
        reasons(&p, "child-a"),
        ["changed: images/child-a/extra.txt"]
    );
    assert_eq!(reasons(&p, "grandchild"), ["parent rebuilds (child-a)"]);

    // The base: its whole tree, but not the other root.
    r.write("images/base/Dockerfile", "FROM scratch\n# v2\n")
        .write("images/base/a", "1")
        .write("images/base/b", "2")
        .write("images/base/c", "3")
        .write("images/base/d", "4");
    r.commit("base");
    let p = plan_push(&r, "feature");
    assert_eq!(
        p.rebuilt_keys(),
        ["base", "child-a", "grandchild", "child-b"]
    );
    assert_eq!(
        reasons(&p, "base"),
        ["changed: images/base/Dockerfile, images/base/a, images/base/b and 2 more"]
    );
    assert_eq!(reasons(&p, "child-b"), ["parent rebuilds (base)"]);
    assert!(!p.image("other").unwrap().rebuild);
}

#[test]
fn several_roots_are_independent() {
    let (r, _) = stack("feature");
    r.write("images/other/Dockerfile", "FROM scratch\n# v2\n")
        .commit("other");
    let p = plan_push(&r, "feature");
    assert_eq!(p.rebuilt_keys(), ["other"]);
}

#[test]
fn build_all_entries_rebuild_everything() {
    for (file, entry) in [
        ("images/tests_common/test_common.py", "images/tests_common"),
        ("images/tests_common/new/test_new.py", "images/tests_common"),
        ("images/conftest.py", "images/conftest.py"),
    ] {
        let (r, _) = stack("feature");
        r.write(file, "# changed\n").commit("common");
        let p = plan_push(&r, "feature");
        assert_eq!(p.rebuilt_keys(), ALL, "{file}");
        assert!(p.full_rebuild);
        let want = format!("change to {entry} rebuilds all");
        for k in ALL {
            assert!(reasons(&p, k).contains(&want), "{k}: {:?}", reasons(&p, k));
        }
        assert_eq!(reason::build_all(entry), want);
    }
}

#[test]
fn change_ignore_entries_rebuild_nothing() {
    let (r, _) = stack("feature");
    r.write("images/docs/notes.md", "more notes\n")
        .write("images/docs/new.md", "new\n")
        .commit("docs");
    let p = plan_push(&r, "feature");
    assert!(p.rebuilt_keys().is_empty());
    assert_eq!(
        p.changed_files,
        ["images/docs/new.md", "images/docs/notes.md"]
    );
}

#[test]
fn full_rebuild_in_the_commit_message_any_case() {
    for msg in [
        "full rebuild",
        "Fix the thing\n\nFULL REBUILD please",
        "chore: Full Rebuild",
    ] {
        let (r, _) = stack("feature");
        r.write("README.md", "x\n").commit(msg);
        let p = plan_push(&r, "feature");
        assert_eq!(p.rebuilt_keys(), ALL, "{msg:?}");
        assert_eq!(reasons(&p, "other"), [reason::COMMIT_MESSAGE]);
        assert_eq!(
            reasons(&p, "child-a"),
            [reason::COMMIT_MESSAGE, "parent rebuilds (base)"]
        );
    }
    let (r, _) = stack("feature");
    r.write("README.md", "x\n")
        .commit("a fuller rebuild is not asked for");
    assert!(plan_push(&r, "feature").rebuilt_keys().is_empty());
}

#[test]
fn branch_main_and_the_flag_rebuild_everything() {
    let (r, _) = stack("main");
    r.write("README.md", "x\n").commit("docs");
    // The checked-out branch is used when none is given.
    let p = plan_with(&r, &PlanOptions::default());
    assert_eq!(p.branch, "main");
    assert_eq!(p.tag, "2026.3-main");
    assert_eq!(p.rebuilt_keys(), ALL);
    assert_eq!(reasons(&p, "base"), [reason::BRANCH_MAIN]);

    let p = plan_with(
        &r,
        &PlanOptions {
            branch: Some("dev".into()),
            full_rebuild: true,
            ..PlanOptions::default()
        },
    );
    assert_eq!(p.rebuilt_keys(), ALL);
    assert_eq!(reasons(&p, "base"), [reason::FULL_REBUILD_FLAG]);
}

#[test]
fn push_of_several_commits_counts_every_commit() {
    let (r, c1) = stack("feature");
    r.write("images/child-b/Dockerfile", "FROM scratch\n# b2\n");
    r.commit("child-b");
    r.write("images/other/x", "x").commit("other");
    r.write("README.md", "x\n").commit("docs");

    // Locally: only the last commit.
    assert!(plan_push(&r, "feature").rebuilt_keys().is_empty());

    // GitHub push payload: `before` is the commit before the push.
    let payload = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        payload.path(),
        format!(r#"{{"before":"{c1}","after":"x"}}"#),
    )
    .unwrap();
    let env = GithubEnv {
        event_name: Some("push".into()),
        head_ref: None,
        ref_name: Some("feature".into()),
        event_path: Some(payload.path().to_path_buf()),
    };
    let opts = resolve_options(&PlanRequest::default(), &env).unwrap();
    let p = plan_with(&r, &opts);
    assert_eq!(p.event, GithubEvent::Push);
    assert_eq!(p.base, Some(c1.to_string()));
    assert_eq!(p.rebuilt_keys(), ["child-b", "other"]);

    // --base wins over the payload.
    let req = PlanRequest {
        base: Some("HEAD~2".into()),
        ..PlanRequest::default()
    };
    let opts = resolve_options(&req, &env).unwrap();
    assert_eq!(plan_with(&r, &opts).rebuilt_keys(), ["other"]);
}

#[test]
fn first_push_of_a_branch_rebuilds_everything() {
    let (r, _) = stack("feature");
    r.write("README.md", "x\n").commit("docs");
    let payload = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        payload.path(),
        format!(r#"{{"before":"{}"}}"#, "0".repeat(40)),
    )
    .unwrap();
    let env = GithubEnv {
        event_name: Some("push".into()),
        head_ref: None,
        ref_name: Some("feature".into()),
        event_path: Some(payload.path().to_path_buf()),
    };
    let opts = resolve_options(&PlanRequest::default(), &env).unwrap();
    assert_eq!(opts.base, Base::NewBranch);
    let p = plan_with(&r, &opts);
    assert_eq!(p.rebuilt_keys(), ALL);
    assert_eq!(p.base, None);
    assert_eq!(reasons(&p, "other"), [reason::NEW_BRANCH]);
}

/// main: c1 -- m2 (other changes)
///         \
/// feature: f1 (child-a) -- f2 (child-b) -- f3 (README)
fn pull_request_repo() -> (TestRepo, git2::Oid, git2::Oid, git2::Oid) {
    let (r, c1) = stack("main");
    r.write("images/other/Dockerfile", "FROM scratch\n# main moved\n");
    let m2 = r.commit("main moves on");
    r.branch("feature", c1);
    r.write("images/child-a/Dockerfile", "FROM scratch\n# a2\n")
        .commit("f1");
    r.write("images/child-b/Dockerfile", "FROM scratch\n# b2\n")
        .commit("f2");
    r.write("README.md", "readme\n");
    let f3 = r.commit("f3");
    (r, c1, m2, f3)
}

#[test]
fn pull_request_with_several_commits_counts_all_of_them() {
    let (r, _c1, m2, f3) = pull_request_repo();
    let payload = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        payload.path(),
        format!(r#"{{"pull_request":{{"base":{{"sha":"{m2}"}},"head":{{"sha":"{f3}"}}}}}}"#),
    )
    .unwrap();
    let env = GithubEnv {
        event_name: Some("pull_request".into()),
        head_ref: Some("feature".into()),
        ref_name: Some("7/merge".into()),
        event_path: Some(payload.path().to_path_buf()),
    };
    let opts = resolve_options(&PlanRequest::default(), &env).unwrap();
    assert_eq!(opts.event, GithubEvent::PullRequest);
    assert_eq!(opts.branch.as_deref(), Some("feature"));
    let p = plan_with(&r, &opts);
    // child-a and child-b changed in the pull request; `other` changed on main only.
    assert_eq!(p.rebuilt_keys(), ["child-a", "grandchild", "child-b"]);
    assert_eq!(p.base, Some(m2.to_string()));
    assert_eq!(p.tag, "2026.3-feature");
    assert!(!p.changed_files.iter().any(|f| f.contains("other")));

    // The same commits planned as a push from main's tip would count main's change too.
    let push = plan_with(
        &r,
        &PlanOptions {
            base: Base::Rev {
                rev: m2.to_string(),
                origin: "--base".into(),
            },
            branch: Some("feature".into()),
            ..PlanOptions::default()
        },
    );
    assert!(push.image("other").unwrap().rebuild);
}

#[test]
fn pull_request_merge_commit_as_github_checks_it_out() {
    let (r, _c1, m2, f3) = pull_request_repo();
    // GitHub checks out refs/pull/N/merge: main's tip merged with the branch.
    r.branch("pr-merge", m2);
    let merge = r.merge(f3, "Merge f3 into m2");
    let p = plan_with(
        &r,
        &PlanOptions {
            head: merge.to_string(),
            base: Base::FirstParent,
            branch: Some("feature".into()),
            event: GithubEvent::PullRequest,
            full_rebuild: false,
        },
    );
    assert_eq!(p.rebuilt_keys(), ["child-a", "grandchild", "child-b"]);
    assert_eq!(p.base, Some(m2.to_string()));
}

#[test]
fn merge_commit_pushed_counts_the_merged_branch() {
    let (r, c1) = stack("develop");
    r.write("README.md", "dev\n");
    let d2 = r.commit("develop moves");
    r.branch("topic", c1);
    r.write("images/grandchild/new-file", "x").commit("t1");
    let t2 = r.write("images/other/y", "y").commit("t2");
    r.switch("develop");
    let merge = r.merge(t2, "Merge branch 'topic' into develop");
    // A push of the merge: base = develop before the push = the merge's first parent.
    let p = plan_push(&r, "develop");
    assert_eq!(p.base, Some(d2.to_string()));
    assert_eq!(p.head, merge.to_string());
    assert_eq!(p.rebuilt_keys(), ["grandchild", "other"]);
}

#[test]
fn renamed_image_folder_counts_old_and_new_paths() {
    let (r, _) = stack("feature");
    // child-b becomes child-c (spec updated in the same commit).
    r.rename("images/child-b", "images/child-c")
        .write("spec.yml", &SPEC.replace("child-b", "child-c"));
    r.commit("rename child-b to child-c");
    let p = plan_push(&r, "feature");
    assert!(p
        .changed_files
        .contains(&"images/child-b/Dockerfile".to_string()));
    assert!(p
        .changed_files
        .contains(&"images/child-c/Dockerfile".to_string()));
    assert_eq!(p.rebuilt_keys(), ["child-c"]);

    // A file moved from one image folder to another touches both images.
    r.write(
        "images/child-a/moved.txt",
        "some content that is long enough\n",
    )
    .commit("add");
    r.rename("images/child-a/moved.txt", "images/other/moved.txt")
        .commit("move between images");
    let p = plan_push(&r, "feature");
    assert_eq!(
        p.changed_files,
        ["images/child-a/moved.txt", "images/other/moved.txt"]
    );
    assert_eq!(p.rebuilt_keys(), ["child-a", "grandchild", "other"]);
}

#[test]
fn deleted_files_and_folders_count() {
    let (r, _) = stack("feature");
    r.write("images/child-a/old.txt", "x").commit("add");
    r.remove("images/child-a/old.txt")
        .commit("delete a file of child-a");
    let p = plan_push(&r, "feature");
    assert_eq!(p.changed_files, ["images/child-a/old.txt"]);
    assert_eq!(p.rebuilt_keys(), ["child-a", "grandchild"]);

    // An image removed from the stack: its files changed, no remaining image rebuilds.
    r.remove("images/child-b").write(
        "spec.yml",
        &SPEC.replace(
            "  child-b:\n    image_name: localhost:5000/stack/child-b\n    depend_on: base\n",
            "",
        ),
    );
    r.commit("drop child-b");
    let p = plan_push(&r, "feature");
    assert!(p.image("child-b").is_none());
    assert!(p
        .changed_files
        .contains(&"images/child-b/Dockerfile".to_string()));
    assert!(p.rebuilt_keys().is_empty());
}

#[test]
fn root_spec_file_matches_a_build_all_rule_by_name() {
    let (r, _) = stack("feature");
    let spec = SPEC.replace(
        "build_all: [tests_common, conftest.py]",
        "build_all: [tests_common, conftest.py, spec.yml]",
    );
    r.write("spec.yml", &spec).commit("rules");
    let p = plan_push(&r, "feature");
    assert_eq!(p.rebuilt_keys(), ALL);
    assert_eq!(reasons(&p, "base"), ["change to spec.yml rebuilds all"]);
}

#[test]
fn mark_missing_rebuilds_the_image_and_its_descendants() {
    let (r, _) = stack("feature");
    r.write("README.md", "x\n").commit("docs");
    let mut p = plan_push(&r, "feature");
    assert!(p.rebuilt_keys().is_empty());
    p.mark_missing(&["child-a".into(), "not-an-image".into()]);
    assert_eq!(p.registry_check, RegistryCheck::Done);
    assert_eq!(p.rebuilt_keys(), ["child-a", "grandchild"]);
    assert_eq!(reasons(&p, "child-a"), [reason::TAG_MISSING]);
    assert_eq!(reasons(&p, "grandchild"), ["parent rebuilds (child-a)"]);
    // Idempotent.
    let before = p.clone();
    p.mark_missing(&["child-a".into()]);
    assert_eq!(p, before);
}

#[test]
fn unknown_revisions_and_detached_head_are_clear_errors() {
    let (r, c1) = stack("feature");
    r.write("README.md", "x\n").commit("docs");
    let spec = Spec::load(r.path(), None).unwrap();
    for (opts, want) in [
        (
            PlanOptions {
                head: "no-such-rev".into(),
                ..PlanOptions::default()
            },
            "unknown revision `no-such-rev` (--head)",
        ),
        (
            PlanOptions {
                base: Base::Rev {
                    rev: "deadbeef".into(),
                    origin: "--base".into(),
                },
                ..PlanOptions::default()
            },
            "unknown revision `deadbeef` (--base)",
        ),
    ] {
        let err = stackctl::plan::make_plan(&spec, &r.repo, &opts)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(want), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    r.repo.set_head_detached(c1).unwrap();
    let err = make_plan(&spec, &r.repo, &PlanOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("detached") && err.contains("--branch"),
        "{err}"
    );
    let p = make_plan(
        &spec,
        &r.repo,
        &PlanOptions {
            branch: Some("feature".into()),
            ..PlanOptions::default()
        },
    )
    .unwrap();
    assert_eq!(p.head, c1.to_string());
}

#[test]
fn stable_branch_is_refused() {
    let (r, _) = stack("stable");
    let spec = Spec::load(r.path(), None).unwrap();
    let err = make_plan(&spec, &r.repo, &PlanOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("stable"), "{err}");
}

#[test]
fn shallow_clone_without_the_parent_rebuilds_everything() {
    let (r, _) = stack("feature");
    r.write("README.md", "x\n").commit("docs");
    // libgit2's local transport cannot fetch shallow; make the clone shallow the way
    // git records it: `.git/shallow` lists the commits whose parents are cut off.
    let dest = tempfile::tempdir().unwrap();
    let url = format!("file://{}", r.path().display());
    let head = git2::Repository::clone(&url, dest.path())
        .unwrap()
        .head()
        .unwrap()
        .target()
        .unwrap();
    std::fs::write(dest.path().join(".git/shallow"), format!("{head}\n")).unwrap();
    let clone = git2::Repository::open(dest.path()).unwrap();
    assert!(clone.is_shallow());
    let spec = Spec::load(dest.path(), None).unwrap();
    let p = make_plan(&spec, &clone, &PlanOptions::default()).unwrap();
    assert_eq!(p.rebuilt_keys(), ALL);
    assert_eq!(reasons(&p, "base"), [reason::SHALLOW]);
    // A base that was not fetched: the error says how to fix it.
    let err = make_plan(
        &spec,
        &clone,
        &PlanOptions {
            base: Base::Rev {
                rev: "HEAD~1".into(),
                origin: "--base".into(),
            },
            ..PlanOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("fetch-depth"), "{err}");
}

#[test]
fn stack_in_a_subfolder_of_the_repository() {
    // A monorepo: the stack lives in stacks/, the git repository is one level up.
    let r = TestRepo::new("feature");
    r.write("stacks/spec.yml", SPEC)
        .write("images/base/Dockerfile", "not the stack's\n");
    for k in ALL {
        r.write(&format!("stacks/images/{k}/Dockerfile"), "FROM scratch\n");
    }
    r.commit("initial");
    r.write("images/base/Dockerfile", "still not the stack's\n")
        .write("stacks/images/child-b/Dockerfile", "FROM scratch\n# v2\n")
        .commit("change");
    let spec = Spec::load(&r.path().join("stacks"), None).unwrap();
    let repo = stackctl::plan::git::open(&r.path().join("stacks")).unwrap();
    let p = make_plan(
        &spec,
        &repo,
        &PlanOptions {
            branch: Some("feature".into()),
            ..PlanOptions::default()
        },
    )
    .unwrap();
    assert_eq!(p.rebuilt_keys(), ["child-b"]);
    assert_eq!(
        reasons(&p, "child-b"),
        ["changed: stacks/images/child-b/Dockerfile"]
    );
}

#[test]
fn commit_suffix_tags_images_with_the_short_commit() {
    let r = TestRepo::new("feature");
    r.write(
        "spec.yml",
        &SPEC.replace(
            "  prefix: \"2026.3\"\n",
            "  prefix: \"2026.3\"\n  suffix: commit\n",
        ),
    );
    for k in ALL {
        r.write(&format!("images/{k}/Dockerfile"), "FROM scratch\n");
    }
    r.commit("stack");
    let head = r
        .write("images/child-a/Dockerfile", "FROM scratch\n# v2\n")
        .commit("change child-a");
    let p = plan_push(&r, "feature");
    let tag = format!("2026.3-{}", &head.to_string()[..7]);
    assert_eq!(p.tag, tag);
    assert_eq!(
        p.image("child-a").unwrap().reference,
        format!("localhost:5000/stack/child-a:{tag}")
    );
    assert_eq!(p.image("child-a").unwrap().build_args["BASE_TAG"], tag);
    assert_eq!(p.rebuilt_keys(), ["child-a", "grandchild"]);
}

/// 8,000 images (the tree of scripts/bench-plan: image i depends on image (i-1)/3, and a
/// chain of 200 at the end) load and plan in well under a second once the work is linear.
/// Quadratic loading (a text search per image key), tree walks (a scan of every image per
/// parent) and propagation took tens of seconds here; the bound is loose on purpose (a
/// shared machine), figures come from scripts/bench-plan --images.
#[test]
fn eight_thousand_images_plan_in_linear_time() {
    const N: usize = 8000;
    const CHAIN: usize = 200;
    let r = TestRepo::new_in_memory("feature");
    let mut spec = String::from("images:\n");
    for i in 0..N {
        spec.push_str(&format!(
            "  img{i:05}:\n    image_name: localhost:5000/bench/img{i:05}\n"
        ));
        if i >= N - CHAIN {
            spec.push_str(&format!("    depend_on: img{:05}\n", i - 1));
        } else if i > 0 {
            spec.push_str(&format!("    depend_on: img{:05}\n", (i - 1) / 3));
        }
    }
    spec.push_str("tag:\n  prefix: \"2026.3\"\n");
    r.write("spec.yml", &spec)
        .write("images/img00042/Dockerfile", "FROM scratch\n");
    r.commit("stack");
    r.write("images/img00042/Dockerfile", "FROM scratch\n# v2\n")
        .commit("change one image");
    // The other folders only need to exist (the spec checks them): left untracked, which
    // keeps the test's git work small.
    for i in 0..N {
        let d = r.path().join(format!("images/img{i:05}"));
        std::fs::create_dir_all(&d).unwrap();
        if i != 42 {
            std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        }
    }

    let started = std::time::Instant::now();
    let loaded = Spec::load(r.path(), None).unwrap();
    let p = make_plan(
        &loaded,
        &r.repo,
        &PlanOptions {
            branch: Some("feature".into()),
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let took = started.elapsed();
    eprintln!("8000 images: loaded and planned in {took:?}");
    assert_eq!(p.images.len(), N);
    assert_eq!(loaded.image("img07999").unwrap().line, Some(3 * 7999 + 1));
    // img00042's subtree: 42 -> 127..129 -> 382..390 -> ... (its descendants rebuild).
    let rebuilt = p.rebuilt_keys();
    assert_eq!(rebuilt[0], "img00042");
    assert!(rebuilt.contains(&"img00127") && rebuilt.contains(&"img00390"));
    assert!(!rebuilt.contains(&"img00043"));
    assert_eq!(reasons(&p, "img00127"), ["parent rebuilds (img00042)"]);
    let last = p.image("img07999").unwrap();
    assert!(last.depth >= CHAIN, "{}", last.depth);
    assert!(
        took < std::time::Duration::from_secs(10),
        "8000 images took {took:?} to load and plan"
    );
}

/// A scheduled run rebuilds nothing for its branch, commit message or changed files, even
/// on main (only missing tags and moved bases do, which need a registry).
#[test]
fn a_scheduled_plan_rebuilds_nothing_from_git() {
    let (r, _) = stack("main");
    r.write("images/base/Dockerfile", "FROM scratch\n# changed\n");
    r.commit("full rebuild please");
    let opts = |event| PlanOptions {
        event,
        ..PlanOptions::default()
    };
    let p = plan_with(&r, &opts(GithubEvent::Schedule));
    assert!(p.rebuilt_keys().is_empty(), "{p}");
    assert!(!p.full_rebuild);
    assert!(p.changed_files.is_empty());
    // The same commit as a push rebuilds everything.
    assert_eq!(plan_with(&r, &opts(GithubEvent::Push)).rebuilt_keys(), ALL);
    let env = GithubEnv {
        event_name: Some("schedule".into()),
        ..GithubEnv::default()
    };
    let o = resolve_options(&PlanRequest::default(), &env).unwrap();
    assert_eq!(o.event, GithubEvent::Schedule);
}
