//! `stackctl plan` as a user runs it: the upstream layout, JSON output, errors, help.

use crate::support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use support::git_repo::TestRepo;
use support::{stackctl, text};

const UPSTREAM: &str = "/work/shared/reference/upstream";
const UPSTREAM_IMAGES: [&str; 3] = [
    "datascience-notebook",
    "rstudio-notebook",
    "scipy-ml-notebook",
];

/// The upstream repository layout: `images/spec.yml`, `images/change_ignore.json`,
/// one folder per image, `images/tests_common/`, `images/conftest.py`.
fn upstream_repo(branch: &str) -> TestRepo {
    let r = TestRepo::new(branch);
    let spec = std::fs::read_to_string(Path::new(UPSTREAM).join("spec.yml")).unwrap();
    let rules = std::fs::read_to_string(Path::new(UPSTREAM).join("change_ignore.json")).unwrap();
    r.write("images/spec.yml", &spec)
        .write("images/change_ignore.json", &rules)
        .write("images/conftest.py", "# fixtures\n")
        .write("images/tests_common/test_python.py", "def test_x(): pass\n")
        .write("README.md", "# stacks\n")
        .write(".github/workflows/main.yml", "on: push\n");
    for k in UPSTREAM_IMAGES {
        r.write(
            &format!("images/{k}/Dockerfile"),
            &format!("FROM scratch\n# {k}\n"),
        )
        .write(
            &format!("images/{k}/test/test_{k}.py"),
            "def test(): pass\n",
        );
    }
    r.commit("initial");
    r
}

/// The old tool's rule (scripts/git_helper.py `get_changed_images` and tree.py
/// `build_tree`, as deployed): for each file changed by HEAD^..HEAD under `images/`,
/// `images/<x>` with x in BuildAll, or branch `main`, or "full rebuild" in the message
/// (lower-cased) selects every image; else x not in ChangeIgnore is selected; then
/// every image below a selected one rebuilds. (Tag-existence checks are off, as with
/// --no-registry.)
fn old_tool(changed: &[&str], branch: &str, message: &str) -> BTreeSet<String> {
    let rules: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(UPSTREAM).join("change_ignore.json")).unwrap(),
    )
    .unwrap();
    let list = |k: &str| -> Vec<String> {
        rules[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let (build_all, ignore) = (list("BuildAll"), list("ChangeIgnore"));
    let mut selected = BTreeSet::new();
    for f in changed {
        let parts: Vec<&str> = f.split('/').collect();
        if parts[0] != "images" {
            continue;
        }
        let x = parts[1].to_string();
        if build_all.contains(&x)
            || branch == "main"
            || message.to_lowercase().contains("full rebuild")
        {
            selected.extend(UPSTREAM_IMAGES.iter().map(|s| s.to_string()));
            break;
        }
        if !ignore.contains(&x) {
            selected.insert(x);
        }
    }
    // The upstream tree: datascience-notebook is the parent of the two others.
    if selected.contains("datascience-notebook") {
        selected.extend(UPSTREAM_IMAGES.iter().map(|s| s.to_string()));
    }
    selected.retain(|k| UPSTREAM_IMAGES.contains(&k.as_str()));
    selected
}

fn plan_json(repo: &Path, extra: &[&str]) -> Value {
    let out = stackctl()
        .args(["plan", "--no-registry", "--json", "--repo"])
        .arg(repo)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    // Exactly one JSON document on stdout.
    let docs: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(docs.len(), 1, "{text}");
    docs.into_iter().next().unwrap()
}

fn rebuilt(plan: &Value) -> BTreeSet<String> {
    plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["rebuild"].as_bool().unwrap())
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn upstream_layout_gives_the_old_tools_rebuild_set() {
    // (files to change, branch, commit message)
    let cases: &[(&[&str], &str, &str)] = &[
        (&["images/rstudio-notebook/Dockerfile"], "dev", "rstudio"),
        (&["images/scipy-ml-notebook/Dockerfile"], "dev", "scipy"),
        (
            &[
                "images/rstudio-notebook/test/test_rstudio-notebook.py",
                "images/scipy-ml-notebook/Dockerfile",
            ],
            "dev",
            "two children",
        ),
        (&["images/datascience-notebook/Dockerfile"], "dev", "base"),
        (
            &["images/tests_common/test_python.py"],
            "dev",
            "common tests",
        ),
        (&["images/spec.yml"], "dev", "spec"),
        (&["images/change_ignore.json"], "dev", "rules"),
        (&["images/conftest.py"], "dev", "conftest"),
        (
            &["README.md", ".github/workflows/main.yml"],
            "dev",
            "outside",
        ),
        (&["images/README.md"], "dev", "loose file under images"),
        (
            &["images/rstudio-notebook/Dockerfile"],
            "dev",
            "Full Rebuild now",
        ),
        (&["images/rstudio-notebook/Dockerfile"], "main", "on main"),
    ];
    for (files, branch, msg) in cases {
        let r = upstream_repo(branch);
        for f in *files {
            let old = std::fs::read_to_string(r.path().join(f)).unwrap_or_default();
            let change = if f.ends_with(".json") {
                "\n"
            } else {
                "# change\n"
            };
            r.write(f, &format!("{old}{change}"));
        }
        r.commit(msg);
        let plan = plan_json(r.path(), &[]);
        assert_eq!(
            rebuilt(&plan),
            old_tool(files, branch, msg),
            "files {files:?} on {branch} with {msg:?}"
        );
        assert_eq!(plan["branch"], *branch);
        assert_eq!(plan["tag"], format!("2026.3-{branch}"));
    }
}

#[test]
fn upstream_layout_where_the_rules_are_stricter_than_the_old_tool() {
    // The old tool only looked at `main` and "full rebuild" inside its loop over files
    // under images/, so a commit touching nothing there rebuilt nothing. The rules
    // (docs/plan.md) rebuild everything on main and on "full rebuild" regardless.
    for (branch, msg) in [("main", "docs"), ("dev", "docs, full rebuild")] {
        let r = upstream_repo(branch);
        r.write("README.md", "changed\n").commit(msg);
        assert!(old_tool(&["README.md"], branch, msg).is_empty());
        let plan = plan_json(r.path(), &[]);
        assert_eq!(rebuilt(&plan).len(), 3, "{branch} {msg}");
    }
}

#[test]
fn json_document_has_the_documented_fields() {
    let r = upstream_repo("dev");
    r.write("images/rstudio-notebook/Dockerfile", "FROM scratch\n# v2\n");
    let head = r.commit("rstudio");
    let plan = plan_json(r.path(), &[]);
    let obj = plan.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    for k in [
        "tag_prefix",
        "branch",
        "tag",
        "event",
        "base",
        "head",
        "full_rebuild",
        "changed_files",
        "registry_check",
        "images",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert_eq!(plan["tag_prefix"], "2026.3");
    assert_eq!(plan["event"], "push");
    assert_eq!(plan["head"], head.to_string());
    assert_eq!(plan["full_rebuild"], false);
    assert_eq!(plan["registry_check"], "skipped");
    assert_eq!(
        plan["changed_files"],
        serde_json::json!(["images/rstudio-notebook/Dockerfile"])
    );
    let images = plan["images"].as_array().unwrap();
    let order: Vec<&str> = images.iter().map(|i| i["key"].as_str().unwrap()).collect();
    assert_eq!(
        order, UPSTREAM_IMAGES,
        "topological, spec order among siblings"
    );
    let rs = &images[1];
    let mut fields: Vec<&str> = rs.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "build_args",
            "image",
            "key",
            "parent",
            "reasons",
            "rebuild",
            "ref"
        ]
    );
    assert_eq!(rs["image"], "ghcr.io/ucsd-ets/rstudio-notebook");
    assert_eq!(rs["ref"], "ghcr.io/ucsd-ets/rstudio-notebook:2026.3-dev");
    assert_eq!(rs["parent"], "datascience-notebook");
    assert_eq!(rs["rebuild"], true);
    assert_eq!(
        rs["reasons"],
        serde_json::json!(["changed: images/rstudio-notebook/Dockerfile"])
    );
    assert_eq!(
        rs["build_args"],
        serde_json::json!({"BASE_TAG": "2026.3-dev"})
    );
    let ds = &images[0];
    assert_eq!(ds["parent"], Value::Null);
    assert_eq!(ds["rebuild"], false);
    assert_eq!(ds["build_args"]["PY_VER_SHORT"], "3.11");
}

#[test]
fn github_actions_variables_are_read() {
    let r = upstream_repo("dev");
    let c1 = r.repo.head().unwrap().target().unwrap();
    r.write(
        "images/scipy-ml-notebook/Dockerfile",
        "FROM scratch\n# v2\n",
    )
    .commit("scipy");
    r.write("README.md", "x\n").commit("docs");
    let payload = r.path().join("event.json");
    std::fs::write(&payload, format!(r#"{{"before":"{c1}"}}"#)).unwrap();
    let out = stackctl()
        .args(["plan", "--no-registry", "--json", "--repo"])
        .arg(r.path())
        .env("GITHUB_EVENT_NAME", "push")
        .env("GITHUB_REF_NAME", "feature-x")
        .env("GITHUB_HEAD_REF", "")
        .env("GITHUB_EVENT_PATH", &payload)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["branch"], "feature-x");
    assert_eq!(plan["base"], c1.to_string());
    assert_eq!(
        rebuilt(&plan),
        BTreeSet::from(["scipy-ml-notebook".to_string()])
    );
}

#[test]
fn human_output_shows_the_tree_refs_verdicts_and_reasons() {
    let r = upstream_repo("dev");
    r.write(
        "images/datascience-notebook/Dockerfile",
        "FROM scratch\n# v2\n",
    )
    .commit("base");
    let out = stackctl()
        .args(["plan", "--no-registry", "--repo"])
        .arg(r.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line_of = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in\n{text}"))
    };
    assert!(line_of("ghcr.io/ucsd-ets/datascience-notebook:2026.3-dev")
        .starts_with("datascience-notebook "));
    let rs = line_of("ghcr.io/ucsd-ets/rstudio-notebook:2026.3-dev");
    assert!(
        rs.starts_with("  rstudio-notebook"),
        "children are indented: {rs:?}"
    );
    assert!(rs.contains("REBUILD"));
    line_of("- changed: images/datascience-notebook/Dockerfile");
    line_of("- parent rebuilds (datascience-notebook)");
    line_of("registry check: skipped");
    line_of("3 of 3 image(s) rebuild");
}

/// `--format mermaid`: the tree as a flowchart, the rebuilt child amber with its reason,
/// the kept ones grey; `--format json` is `--json`.
#[test]
fn mermaid_format_draws_the_tree() {
    let r = upstream_repo("dev");
    r.write("images/rstudio-notebook/Dockerfile", "FROM scratch\n# v2\n")
        .commit("child");
    let run = |format: &str| {
        let out = stackctl()
            .args(["plan", "--no-registry", "--format", format, "--repo"])
            .arg(r.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run("mermaid");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "flowchart TD");
    assert_eq!(
        lines[1],
        "    n0[\"<b>datascience-notebook</b><br/>keep\"]:::keep"
    );
    assert_eq!(
        lines[2],
        "    n1[\"<b>rstudio-notebook</b><br/>REBUILD<br/>changed: images/rstudio-notebook/Dockerfile\"]:::rebuild"
    );
    assert!(lines.contains(&"    n0 --> n1"), "{text}");
    assert!(lines.contains(&"    n0 --> n2"), "{text}");
    assert!(
        lines.iter().any(|l| l.starts_with("    classDef rebuild ")),
        "{text}"
    );
    let json: Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(json["tag"], "2026.3-dev");
}

/// Runs `stackctl plan` expecting exit 2 and one line on stderr that contains `want`.
fn fails_with_one_line(args: &[&str], repo: &Path, want: &str) {
    let out = stackctl()
        .arg("plan")
        .arg("--repo")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(want), "{err}");
}

#[test]
fn bad_input_exits_2_with_one_clear_line() {
    let r = upstream_repo("dev");
    fails_with_one_line(
        &["--head", "nope"],
        r.path(),
        "unknown revision `nope` (--head)",
    );
    fails_with_one_line(
        &["--base", "v9.9"],
        r.path(),
        "unknown revision `v9.9` (--base)",
    );
    fails_with_one_line(&["--json", "--head", "nope"], r.path(), "nope");

    let empty = tempfile::tempdir().unwrap();
    fails_with_one_line(&[], empty.path(), "no spec found");

    let bad = upstream_repo("dev");
    bad.write("images/spec.yml", "images:\n  a: [unclosed\n");
    fails_with_one_line(&[], bad.path(), "images/spec.yml");

    let not_git = tempfile::tempdir().unwrap();
    std::fs::copy(
        r.path().join("images/spec.yml"),
        not_git.path().join("spec.yml"),
    )
    .unwrap();
    for k in UPSTREAM_IMAGES {
        std::fs::create_dir_all(not_git.path().join("images").join(k)).unwrap();
        std::fs::write(
            not_git.path().join("images").join(k).join("Dockerfile"),
            "FROM x\n",
        )
        .unwrap();
    }
    fails_with_one_line(&[], not_git.path(), "not a git repository");

    // Detached HEAD without --branch.
    let head = r.repo.head().unwrap().target().unwrap();
    r.repo.set_head_detached(head).unwrap();
    fails_with_one_line(&[], r.path(), "--branch");
}

#[test]
fn help_documents_options_and_github_variables() {
    let out = stackctl().args(["plan", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "GITHUB_EVENT_NAME",
        "GITHUB_HEAD_REF",
        "GITHUB_REF_NAME",
        "GITHUB_EVENT_PATH",
        "--repo",
        "--spec",
        "--head",
        "--base",
        "--branch",
        "--event",
        "--full-rebuild",
        "--no-registry",
        "--json",
        "pull_request",
    ] {
        assert!(help.contains(word), "{word} not in --help:\n{help}");
    }
}

#[test]
fn a_reader_that_goes_away_is_no_crash() {
    // `stackctl plan --json | head -c0`: the pipe is closed before stackctl writes.
    let r = upstream_repo("dev");
    let mut child = stackctl()
        .args(["plan", "--no-registry", "--json", "--repo"])
        .arg(r.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
