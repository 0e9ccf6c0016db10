//! End to end: `stackctl build` on the built-in example stack through dockerd's BuildKit
//! and a loopback Distribution registry, then `stackctl tag` (quarter, then global), and
//! the runs that follow: no change rebuilds nothing, a change in one child rebuilds only
//! it, a failing test stops one child while its sibling completes with --keep-going.

use crate::support;

use serde_json::Value;
use stackctl::credentials::CredentialStore;
use stackctl::registry::{ClientOptions, ImageRef, RegistryClient};
use std::path::Path;
use support::buildkitd::Buildkitd;
use support::e2e::{Builder, Stack};
use support::example::ExampleRepo;
use support::git_repo::TestRepo;
use support::{stackctl, text};

const PREFIX: &str = "2026.3";
const BRANCH: &str = "qa";

/// `stackctl build --json` in `out`; returns the exit code and the JSON summary.
fn build(ex: &ExampleRepo, out: &Path, extra: &[&str]) -> (i32, Value) {
    let (code, json, _) = build_env(ex, out, extra, &[]);
    (code, json)
}

/// `build` with extra environment variables; also returns stderr.
fn build_env(
    ex: &ExampleRepo,
    out: &Path,
    extra: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> (i32, Value, String) {
    build_through(
        ex.path(),
        out,
        &["--buildkit", "docker-unix:///var/run/docker.sock"],
        &[&["--branch", BRANCH], extra].concat(),
        env,
    )
}

/// `stackctl build --json` through the BuildKit `buildkit` names (`--buildkit ...` and its
/// TLS options); `extra` names the branch. Exit code, JSON summary, stderr.
fn build_through(
    repo: &Path,
    out: &Path,
    buildkit: &[&str],
    extra: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> (i32, Value, String) {
    let mut cmd = stackctl();
    cmd.current_dir(out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd
        .args(["build", "--json", "--repo"])
        .arg(repo)
        .args(buildkit)
        .args(extra)
        .output()
        .unwrap();
    let stderr = text(&o.stderr);
    let json: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("build printed no JSON ({e}); stderr:\n{stderr}"));
    (o.status.code().unwrap_or(-1), json, stderr)
}

fn status_of<'a>(summary: &'a Value, key: &str) -> &'a str {
    summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {summary}"))["status"]
        .as_str()
        .unwrap()
}

fn digest_in_registry(reference: &str) -> Option<String> {
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let r = ImageRef::parse(reference).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(client.head_manifest(&r))
        .unwrap()
        .map(|d| d.digest)
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

fn safe(full: &str) -> String {
    stackctl::report::names::safe_name(full)
}

fn page(full: &str) -> String {
    stackctl::report::names::page_name(full)
}

#[test]
fn stack_builds_promotes_and_rebuilds_only_what_changed() {
    let s = Stack::builder("stack_builds_promotes_and_rebuilds_only_what_changed")
        .example()
        .build()
        .unwrap();
    let (ex, out) = (&s.repo, &s.out);
    let keys = ["base", "analysis", "service"];
    let tag = format!("{PREFIX}-{BRANCH}");
    let full = |k: &str| format!("{}:{tag}", ex.image_name(k));

    // 1. A first build: nothing is in the registry, every image builds, tests and pushes.
    let (code, summary) = build(ex, out.path(), &["--base", "HEAD"]);
    assert_eq!(code, 0, "{summary:#}");
    assert_eq!(summary["tag"], tag.as_str());
    for k in keys {
        assert_eq!(status_of(&summary, k), "done", "{summary:#}");
        let report = &summary["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["key"] == k)
            .unwrap()["report"];
        let digest = report["digest"].as_str().unwrap();
        assert_eq!(digest_in_registry(&full(k)).as_deref(), Some(digest), "{k}");
        assert!(
            report["tests"]["basic"]["passed"].as_u64().unwrap() > 0,
            "{k}: {report}"
        );
        assert_eq!(report["tests"]["basic"]["failed"], 0);

        // Every artifact of docs/formats.md.
        let a = out.path();
        let yaml: serde_yaml::Value = serde_yaml::from_str(&read(
            a.join("artifacts").join(format!("{}.yaml", safe(&full(k)))),
        ))
        .unwrap();
        assert_eq!(yaml["success"], serde_yaml::Value::Bool(true));
        assert_eq!(yaml["pushed"], serde_yaml::Value::Bool(true));
        assert_eq!(yaml["image"].as_str(), Some(full(k).as_str()));
        assert_eq!(yaml["digest"].as_str(), Some(digest));
        let build_log = read(a.join("logs").join(format!("{}.build.log", safe(&full(k)))));
        assert!(
            build_log.contains("FROM") || build_log.contains("[internal]"),
            "{build_log}"
        );
        let tests_log = read(
            a.join("logs")
                .join(format!("{}.basic-tests.log", safe(&full(k)))),
        );
        assert!(tests_log.contains("passed"), "{tests_log}");
        let manifest = read(a.join("manifests").join(format!("{}.md", page(&full(k)))));
        assert!(
            manifest.contains("| Created | Command | Size |"),
            "{manifest}"
        );
        assert!(manifest.contains("## Python Version"), "{manifest}");
        assert_eq!(
            manifest,
            read(a.join("wiki").join(format!("{}.md", page(&full(k)))))
        );
    }
    let integration = &summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "service")
        .unwrap()["report"]["tests"]["integration"];
    assert!(integration["passed"].as_u64().unwrap() > 0, "{integration}");
    let built = read(out.path().join("artifacts/IMAGES_BUILT"));
    assert_eq!(built.lines().collect::<Vec<_>>(), keys.map(full).to_vec());
    let run_log = read(out.path().join("logs/run.log"));
    assert!(run_log.contains("registry check: done"), "{run_log}");

    // 2. Quarter promotion, then global promotion, with the wiki pages.
    let wiki = out.path().join("wiki");
    std::fs::write(
        wiki.join("Home.md"),
        "# Images\n\nFree text stays.\n\n| Commit | Image | Manifest |\n|--------|-------|----------|\n|[`aaaaaaa`](https://github.com/o/r/commit/aaaaaaa)|`old:2026.2-stable`|[Link](https://github.com/o/r/wiki/old-2026.2-stable)|\n\nTrailing text.\n",
    )
    .unwrap();
    let tag_cmd = |args: &[&str]| {
        let o = stackctl()
            .current_dir(out.path())
            .env("GITHUB_REPOSITORY", "o/r")
            .env("GITHUB_SHA", "0123456789abcdef")
            .arg("tag")
            .args(args)
            .arg("--spec")
            .arg(ex.path().join("spec.yml"))
            .arg("--wiki")
            .arg(&wiki)
            .output()
            .unwrap();
        assert!(o.status.success(), "tag {args:?}: {}", text(&o.stderr));
    };
    tag_cmd(&[&tag]);
    for k in keys {
        assert_eq!(
            digest_in_registry(&format!("{}:{PREFIX}-stable", ex.image_name(k))),
            digest_in_registry(&full(k)),
            "{k}: quarter stable = the built image"
        );
    }
    let home = read(wiki.join("Home.md"));
    let lines: Vec<&str> = home.lines().collect();
    let divider = lines
        .iter()
        .position(|l| l.starts_with("|--------"))
        .unwrap();
    let new_row = lines[divider + 1];
    assert!(
        new_row.starts_with("|[`0123456`](https://github.com/o/r/commit/0123456)|"),
        "{home}"
    );
    for k in keys {
        let stable = format!("{}:{PREFIX}-stable", ex.image_name(k));
        assert!(new_row.contains(&format!("`{stable}`")), "{new_row}");
        // The stable page is a copy of the built image's page.
        assert_eq!(
            read(wiki.join(format!("{}.md", page(&stable)))),
            read(wiki.join(format!("{}.md", page(&full(k)))))
        );
    }
    assert!(home.contains("Free text stays.") && home.contains("Trailing text."));
    assert!(home.contains("|[`aaaaaaa`]"), "older rows stay");
    assert_eq!(
        read(out.path().join("artifacts/IMAGES_TAGGED"))
            .lines()
            .count(),
        3
    );

    tag_cmd(&["--global-stable", PREFIX]);
    for k in keys {
        assert_eq!(
            digest_in_registry(&format!("{}:stable", ex.image_name(k))),
            digest_in_registry(&full(k)),
            "{k}: global stable = the built image"
        );
    }
    let stable_page = read(wiki.join("Stable_Tag.md"));
    assert!(
        stable_page.contains("| Image | Based On | Manifest |"),
        "{stable_page}"
    );
    for k in keys {
        assert!(
            stable_page.contains(&format!("{}:stable", ex.image_name(k))),
            "{stable_page}"
        );
        assert!(stable_page.contains(&format!("{}:{PREFIX}-stable", ex.image_name(k))));
    }

    // 3. No change: the plan and the registry check find everything in place.
    let (code, summary) = build(ex, out.path(), &["--base", "HEAD"]);
    assert_eq!(code, 0, "{summary:#}");
    for k in keys {
        assert_eq!(status_of(&summary, k), "up-to-date", "{summary:#}");
    }
    assert_eq!(summary["built"], serde_json::json!([]));

    // 4. A change in one child rebuilds only it (the push compares HEAD with its parent).
    let before_service = digest_in_registry(&full("service"));
    ex.append(
        "images/analysis/stackstats.py",
        "# a comment",
        "analysis: comment",
    );
    let (code, summary) = build(ex, out.path(), &[]);
    assert_eq!(code, 0, "{summary:#}");
    assert_eq!(status_of(&summary, "analysis"), "done");
    assert_eq!(status_of(&summary, "base"), "up-to-date");
    assert_eq!(status_of(&summary, "service"), "up-to-date");
    assert_eq!(digest_in_registry(&full("service")), before_service);
    // The unchanged parent is used by the digest its tag named when the run started.
    assert_eq!(
        artifact(out.path(), &full("analysis"))["parent_digest"].as_str(),
        digest_in_registry(&full("base")).as_deref(),
        "analysis built FROM base's digest"
    );
    // Through the engine too, the rebuild is compared with its quarter's stable tag, whose
    // inventory the first build attached: a comment changed, no package did.
    let changes = &summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "analysis")
        .unwrap()["report"]["changes"];
    let stable = format!("{}:{PREFIX}-stable", ex.image_name("analysis"));
    assert_eq!(
        changes["old"]["reference"].as_str(),
        Some(stable.as_str()),
        "{changes:#}"
    );
    let p = &changes["platforms"][0];
    assert_eq!(p["packages_from"]["old"], "attached", "{p:#}");
    for kind in ["added", "removed", "upgraded", "downgraded"] {
        assert_eq!(p["packages"][kind], serde_json::json!([]), "{kind}: {p:#}");
    }
    assert!(p["size"]["shared_layers"].as_u64().unwrap() >= 1, "{p:#}");
    drop(s);
}

#[test]
fn failing_test_stops_one_child_and_its_sibling_completes_with_keep_going() {
    let s =
        Stack::builder("failing_test_stops_one_child_and_its_sibling_completes_with_keep_going")
            .example()
            .build()
            .unwrap();
    let (ex, out) = (&s.repo, &s.out);
    let tag = format!("{PREFIX}-{BRANCH}");
    ex.change(
        "images/analysis/test/test_broken.py",
        "def test_broken_on_purpose():\n    assert 1 + 1 == 3, 'arithmetic is off'\n",
        "analysis: a failing test",
    );
    // As on GitHub Actions: groups, an annotation, the job summary and the step outputs.
    let summary_md = out.path().join("step-summary.md");
    let outputs = out.path().join("github-output");
    let (code, summary, stderr) = build_env(
        ex,
        out.path(),
        &["--base", "HEAD", "--keep-going"],
        &[
            ("GITHUB_ACTIONS", "true".as_ref()),
            ("GITHUB_STEP_SUMMARY", summary_md.as_os_str()),
            ("GITHUB_OUTPUT", outputs.as_os_str()),
        ],
    );
    assert_eq!(code, 1, "{summary:#}");
    assert!(
        stderr.contains("::group::[analysis] failed at basic-tests"),
        "{stderr}"
    );
    assert!(stderr.contains("::endgroup::"), "{stderr}");
    assert!(
        stderr.contains("::error title=analysis%3A basic-tests failed::"),
        "{stderr}"
    );
    let md = read(&summary_md);
    assert!(
        md.contains("analysis") && md.contains("basic-tests"),
        "{md}"
    );
    let gh_out = read(&outputs);
    assert!(gh_out.contains(&format!("tag={tag}")), "{gh_out}");
    assert!(
        gh_out.contains(&format!("{}:{tag}", ex.image_name("service"))),
        "{gh_out}"
    );
    assert_eq!(status_of(&summary, "base"), "done");
    assert_eq!(status_of(&summary, "analysis"), "failed");
    assert_eq!(status_of(&summary, "service"), "done");

    let analysis = format!("{}:{tag}", ex.image_name("analysis"));
    assert_eq!(
        digest_in_registry(&analysis),
        None,
        "a failed child is not pushed"
    );
    assert!(digest_in_registry(&format!("{}:{tag}", ex.image_name("service"))).is_some());

    let yaml: serde_yaml::Value = serde_yaml::from_str(&read(
        out.path()
            .join("artifacts")
            .join(format!("{}.yaml", safe(&analysis))),
    ))
    .unwrap();
    assert_eq!(yaml["success"], serde_yaml::Value::Bool(false));
    assert_eq!(yaml["failed_step"].as_str(), Some("basic-tests"));
    assert_eq!(yaml["pushed"], serde_yaml::Value::Bool(false));
    let message = yaml["message"].as_str().unwrap();
    assert!(message.contains("test_broken_on_purpose"), "{message}");
    let built = read(out.path().join("artifacts/IMAGES_BUILT"));
    assert!(!built.contains(&analysis), "{built}");
    assert!(!out
        .path()
        .join("manifests")
        .join(format!("{}.md", page(&analysis)))
        .exists());
}

#[test]
fn unreachable_buildkit_is_exit_2_naming_the_address() {
    let ex = ExampleRepo::create("127.0.0.1:5999");
    let out = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let o = stackctl()
        .current_dir(out.path())
        .args([
            "build",
            "--no-registry",
            "--branch",
            BRANCH,
            "--buildkit",
            &addr,
            "--repo",
        ])
        .arg(ex.path())
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

// ---- Through a standalone buildkitd (tests/support/buildkitd.rs): BuildKit pushes by
// digest, the engine only runs the tests, a tested image gets its tag by a manifest PUT.

const KEYS: [&str; 3] = ["base", "analysis", "service"];

/// The tags a repository has, without the referrers tags (`sha256-<hex>`) that list the
/// package inventories attached to its tested platform manifests.
fn tags_of(host: &str, repository: &str) -> Vec<String> {
    all_tags_of(host, repository)
        .into_iter()
        .filter(|t| !is_referrers_tag(t))
        .collect()
}

fn is_referrers_tag(t: &str) -> bool {
    t.strip_prefix("sha256-")
        .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Every tag a repository has (empty when the registry does not know it).
fn all_tags_of(host: &str, repository: &str) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = support::http()
            .get(format!("http://{host}/v2/{repository}/tags/list"))
            .send()
            .await
            .unwrap();
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return vec![];
        }
        let v: Value = r.json().await.unwrap();
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    })
}

/// The manifest of `reference` as JSON, with the reference it was read at: an index of one
/// platform (BuildKit's attestations make one) stands for that platform's manifest.
fn image_manifest(reference: &str) -> (ImageRef, Value) {
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let mut r = ImageRef::parse(reference).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt.block_on(client.get_manifest(&r)).unwrap().unwrap();
    let mut v: Value = serde_json::from_slice(&m.bytes).unwrap();
    let images: Vec<Value> = v["manifests"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| !stackctl::registry::attestation::is_attestation_entry(e))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if let [one] = images.as_slice() {
        r = r.with_digest(one["digest"].as_str().unwrap());
        let m = rt.block_on(client.get_manifest(&r)).unwrap().unwrap();
        v = serde_json::from_slice(&m.bytes).unwrap();
    }
    (r, v)
}

/// The layer digests of a manifest.
fn layers_of(reference: &str) -> Vec<String> {
    let (_, v) = image_manifest(reference);
    v["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("{reference} is not a single manifest: {v}"))
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn artifact(out: &Path, full: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(
        out.join("artifacts").join(format!("{}.yaml", safe(full))),
    ))
    .unwrap()
}

fn report_digest(summary: &Value, key: &str) -> String {
    summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == key)
        .unwrap()["report"]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("{key} has no digest: {summary:#}"))
        .to_string()
}

/// Remove this test's references from the engine (those of `host`, its own registry port).
/// By reference, not by image ID: a fully cached example image has the same ID in every
/// test, and removing the ID would untag the image another test is about to push.
fn remove_engine_images_of(host: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let d = support::images::docker().await;
        let all = d
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .unwrap();
        let prefix = format!("{host}/");
        for i in all {
            for r in i.repo_tags.iter().chain(i.repo_digests.iter()) {
                if r.starts_with(&prefix) {
                    support::images::remove_tag(r).await;
                }
            }
        }
    });
}

/// Every image through a buildkitd over tcp with mutual TLS; no change; a parent change
/// whose children provably build FROM the new parent digest; a failing child with
/// --keep-going on a new branch, for which no tag appears.
#[test]
fn stack_through_buildkitd_pushes_by_digest_and_tags_only_tested_images() {
    let Some(s) =
        Stack::builder("stack_through_buildkitd_pushes_by_digest_and_tags_only_tested_images")
            .buildkitd()
            .example()
            .build()
    else {
        return;
    };
    let (bk, reg, ex, out) = (&s.nodes[0], &s.registry, &s.repo, &s.out);
    let host = reg.host();
    let tls = bk.tcp_args();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let tag = format!("{PREFIX}-{BRANCH}");
    let full = |k: &str| format!("{}:{tag}", ex.image_name(k));
    let repo = |k: &str| format!("stackctl-example/{k}");

    // 1. Every image: built, tested by digest, tagged; only the real tag in the registry.
    let (code, summary, stderr) = build_through(
        ex.path(),
        out.path(),
        &tls,
        &["--branch", BRANCH, "--base", "HEAD"],
        &[],
    );
    assert_eq!(code, 0, "{summary:#}\n{stderr}\n{}", bk.log());
    for k in KEYS {
        assert_eq!(status_of(&summary, k), "done", "{summary:#}");
        let digest = report_digest(&summary, k);
        assert_eq!(
            digest_in_registry(&full(k)).as_deref(),
            Some(digest.as_str())
        );
        assert_eq!(
            tags_of(&host, &repo(k)),
            vec![tag.clone()],
            "{k}: no staging tag"
        );
        let tests_log = read(
            out.path()
                .join("logs")
                .join(format!("{}.basic-tests.log", safe(&full(k)))),
        );
        assert!(tests_log.contains("passed"), "{tests_log}");
    }
    assert!(!stderr.contains("-untested"), "{stderr}");
    // Children are built FROM the base's one platform manifest in the index its
    // attestations made (that digest does not change with the provenance's times).
    let base_digest = report_digest(&summary, "base");
    let (base_platform, _) = image_manifest(&format!("{}@{base_digest}", ex.image_name("base")));
    for k in ["analysis", "service"] {
        assert_eq!(
            artifact(out.path(), &full(k))["parent_digest"].as_str(),
            base_platform.digest.as_deref(),
            "{k} records the parent digest it was built FROM"
        );
    }
    let service = &summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "service")
        .unwrap()["report"]["tests"]["integration"];
    assert!(service["passed"].as_u64().unwrap() > 0, "{service}");

    // 2. No change: nothing rebuilds.
    let (code, summary, _) = build_through(
        ex.path(),
        out.path(),
        &tls,
        &["--branch", BRANCH, "--base", "HEAD"],
        &[],
    );
    assert_eq!(code, 0, "{summary:#}");
    for k in KEYS {
        assert_eq!(status_of(&summary, k), "up-to-date", "{summary:#}");
    }

    // 3. The parent changes: the children build FROM the new parent's digest, over unix.
    ex.append("images/base/stack-info", "# a new base", "base: comment");
    let unix = ["--buildkit", bk.unix.as_str()];
    let (code, summary, stderr) =
        build_through(ex.path(), out.path(), &unix, &["--branch", BRANCH], &[]);
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    let new_base = report_digest(&summary, "base");
    assert_ne!(new_base, base_digest, "the base changed");
    let base_layers = layers_of(&format!("{}@{new_base}", ex.image_name("base")));
    let (new_platform, _) = image_manifest(&format!("{}@{new_base}", ex.image_name("base")));
    let new_from = new_platform.digest.clone().unwrap();
    for k in ["analysis", "service"] {
        assert_eq!(status_of(&summary, k), "done", "{summary:#}");
        assert_eq!(
            artifact(out.path(), &full(k))["parent_digest"].as_str(),
            Some(new_from.as_str())
        );
        let log = read(
            out.path()
                .join("logs")
                .join(format!("{}.build.log", safe(&full(k)))),
        );
        assert!(
            log.contains(&format!("{}@{new_from}", full("base"))),
            "{k}: its build names the new parent digest:\n{log}"
        );
        let child = layers_of(&full(k));
        assert_eq!(
            &child[..base_layers.len()],
            &base_layers[..],
            "{k}: its first layers are the new base's"
        );
    }

    // 4. A failing child with --keep-going on a new branch: no tag appears for it.
    let before = tags_of(&host, &repo("analysis"));
    ex.change(
        "images/analysis/test/test_broken.py",
        "def test_broken_on_purpose():\n    assert 1 + 1 == 3\n",
        "analysis: a failing test",
    );
    let (code, summary, _) = build_through(
        ex.path(),
        out.path(),
        &tls,
        &["--branch", "qa-broken", "--keep-going"],
        &[],
    );
    assert_eq!(code, 1, "{summary:#}");
    assert_eq!(status_of(&summary, "analysis"), "failed");
    assert_eq!(status_of(&summary, "service"), "done");
    assert_eq!(
        tags_of(&host, &repo("analysis")),
        before,
        "no new tag for a failed image"
    );
    let broken = format!("{}:{PREFIX}-qa-broken", ex.image_name("analysis"));
    let yaml = artifact(out.path(), &broken);
    assert_eq!(yaml["failed_step"].as_str(), Some("basic-tests"));
    assert_eq!(yaml["pushed"], serde_yaml::Value::Bool(false));
    assert!(tags_of(&host, &repo("service")).contains(&format!("{PREFIX}-qa-broken")));
    remove_engine_images_of(&host);
}

/// A registry cache (`cache: {type: registry}`) exported by a build on main is what a
/// build on another branch on a fresh buildkitd root takes its unchanged layers from, on
/// both BuildKit releases (they store the cache's attestation-free manifests alike, but
/// report downloads from it differently).
#[test]
fn registry_cache_serves_a_fresh_buildkitd() {
    registry_cache_serves_a_fresh_node_of(support::buildkitd::Release::V0_25);
}

#[test]
fn registry_cache_serves_a_fresh_buildkitd_v0_32() {
    registry_cache_serves_a_fresh_node_of(support::buildkitd::Release::V0_32);
}

fn registry_cache_serves_a_fresh_node_of(release: support::buildkitd::Release) {
    let Some(Stack {
        mut nodes,
        registry: reg,
        repo: ex,
        out,
        ..
    }) = Stack::builder("registry_cache_serves_a_fresh_buildkitd")
        .buildkitd()
        .release(release)
        .example()
        .build()
    else {
        return;
    };
    let first = nodes.remove(0);
    let host = reg.host();
    ex.append(
        "spec.yml",
        "cache:\n  type: registry\n  mode: max\n",
        "registry cache",
    );
    let unix = ["--buildkit", first.unix.as_str()];
    let (code, summary, stderr) = build_through(
        ex.path(),
        out.path(),
        &unix,
        &["--branch", "main", "--base", "HEAD"],
        &[],
    );
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    let main_cache = format!("buildcache-{PREFIX}-main");
    for k in KEYS {
        let tags = tags_of(&host, &format!("stackctl-example/{k}"));
        assert!(tags.contains(&main_cache), "{k}: {tags:?}");
    }
    drop(first);

    // A fresh root: nothing local. Branch qa has neither images nor cache of its own, nor a
    // stable tag: main's registry cache is the only source.
    let second = Buildkitd::start_release("registry_cache_serves_a_fresh_buildkitd", release)
        .expect("started once already");
    let unix = ["--buildkit", second.unix.as_str()];
    let (code, summary, stderr) = build_through(
        ex.path(),
        out.path(),
        &unix,
        &["--branch", BRANCH, "--base", "HEAD"],
        &[],
    );
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    let tag = format!("{PREFIX}-{BRANCH}");
    for k in KEYS {
        assert_eq!(status_of(&summary, k), "done", "{summary:#}");
        let full = format!("{}:{tag}", ex.image_name(k));
        let log = read(
            out.path()
                .join("logs")
                .join(format!("{}.build.log", safe(&full))),
        );
        assert!(
            log.contains(&format!("{}:{main_cache}", ex.image_name(k))),
            "{k}: imports main's cache:\n{log}"
        );
        // Every RUN step came from the cache (the log's closing table: time, state, step).
        let runs: Vec<&str> = log
            .lines()
            .skip_while(|l| !l.starts_with("Time each step took:"))
            .filter(|l| l.contains("RUN "))
            .collect();
        assert!(!runs.is_empty(), "{log}");
        assert!(
            runs.iter().all(|l| l.contains("CACHED")),
            "{k}: every RUN step cached:\n{log}"
        );
        let tags = tags_of(&host, &format!("stackctl-example/{k}"));
        assert!(tags.contains(&format!("buildcache-{tag}")), "{k}: {tags:?}");
    }
    remove_engine_images_of(&host);
}

/// A child whose `deps` stage (FROM the parent, a RUN writing a file) is copied into its
/// final stage: built with a `mode: max` registry cache on one buildkitd, then, after a
/// change to a file only the final stage copies, on a fresh one. The `deps` stage comes from
/// the registry cache: its RUN is not run again (the file it wrote, with a random line, is
/// the same layer), and the build says that step came from the registry cache.
#[test]
fn a_deps_stage_comes_from_the_registry_cache_on_a_fresh_buildkitd() {
    let test = "a_deps_stage_comes_from_the_registry_cache_on_a_fresh_buildkitd";
    let Some(Stack {
        mut nodes,
        registry: reg,
        repo: git,
        out,
        ..
    }) = Stack::builder(test)
        .buildkitd()
        .busybox_platforms()
        .repo(|host, base| {
            let git = TestRepo::new("main");
            git.write(
                "spec.yml",
                &format!(
                    "root: base\nimages:\n  base:\n    image_name: {host}/rc/base\n  app:\n    image_name: {host}/rc/app\n    depend_on: base\n    build_args:\n      BASE_IMAGE: {host}/rc/base\ntag:\n  prefix: \"{PREFIX}\"\ncache:\n  type: registry\n  mode: max\n"
                ),
            )
            .write(
                "images/base/Dockerfile",
                &format!("FROM {host}/stackctl-local/busybox:static@{base}\nRUN echo base > /base.txt\n"),
            )
            .write(
                "images/app/Dockerfile",
                "ARG BASE_IMAGE\nARG BASE_TAG\nFROM ${BASE_IMAGE}:${BASE_TAG} AS deps\nRUN cat /proc/sys/kernel/random/uuid > /deps.txt\n\nFROM ${BASE_IMAGE}:${BASE_TAG}\nCOPY app.txt /app.txt\nCOPY --from=deps /deps.txt /deps.txt\n",
            )
            .write("images/app/app.txt", "one\n");
            git.commit("a two-stage child");
            git
        })
        .build()
    else {
        return;
    };
    let host = reg.host();
    let first = nodes.remove(0);
    let unix = ["--buildkit", first.unix.as_str()];
    let (code, summary, stderr) = build_through(
        git.path(),
        out.path(),
        &unix,
        &["--branch", "main", "--base", "HEAD"],
        &[],
    );
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    let before = format!("{host}/rc/app:{PREFIX}-main");
    drop(first);

    git.write("images/app/app.txt", "two\n");
    git.commit("app: another app.txt");
    let second = Buildkitd::start(test).expect("started once already");
    let unix = ["--buildkit", second.unix.as_str()];
    let (code, summary, stderr) = build_through(
        git.path(),
        out.path(),
        &unix,
        &["--branch", BRANCH, "--base", "HEAD~1"],
        &[],
    );
    assert_eq!(code, 0, "{summary:#}\n{stderr}\n{}", second.log());
    assert_eq!(status_of(&summary, "app"), "done", "{summary:#}");
    let after = format!("{host}/rc/app:{PREFIX}-{BRANCH}");
    let log = read(
        out.path()
            .join("logs")
            .join(format!("{}.build.log", safe(&after))),
    );
    // The file copied from the deps stage is the one its RUN wrote in the first build.
    let deps = |r: &str| {
        let layers = layers_of(r);
        file_in_layer(r, &layers[layers.len() - 1], "deps.txt")
    };
    let first_deps = deps(&before);
    assert_eq!(first_deps.trim().len(), 36, "a random UUID: {first_deps:?}");
    assert_eq!(
        deps(&after),
        first_deps,
        "the deps stage is the first build's, not run again:\n{log}"
    );
    let layers = layers_of(&after);
    assert_eq!(
        file_in_layer(&after, &layers[layers.len() - 2], "app.txt"),
        "two\n"
    );
    let run = log
        .lines()
        .skip_while(|l| !l.starts_with("Time each step took:"))
        .find(|l| l.contains("RUN cat /proc/sys/kernel/random/uuid"))
        .unwrap_or_else(|| panic!("no RUN step in the table:\n{log}"));
    assert!(
        run.contains("CACHED") && run.contains("(from the registry cache)"),
        "the deps RUN step is cached, from the registry cache:\n{log}"
    );
    // The summary line counts it among the cached steps, and says where it came from.
    let line = stderr
        .lines()
        .find(|l| l.contains("[app] built in"))
        .unwrap_or_else(|| panic!("no build line for app:\n{stderr}"));
    let cached: usize = line
        .split_once('(')
        .and_then(|(_, r)| r.split_whitespace().next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(cached >= 2, "the FROM and RUN steps at least: {line}");
    assert!(
        line.contains(" steps cached, 1 from the registry cache)"),
        "the summary names the registry cache: {line}"
    );
}

/// The content of `file` in the layer `digest` (a gzip tar) of the image `reference`.
fn file_in_layer(reference: &str, digest: &str, file: &str) -> String {
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let r = ImageRef::parse(reference).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let blob = rt.block_on(client.get_blob(&r, digest)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tgz = dir.path().join("layer.tar.gz");
    std::fs::write(&tgz, &blob).unwrap();
    let o = std::process::Command::new("tar")
        .arg("-xzOf")
        .arg(&tgz)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{file} in {reference} layer {digest}: {o:?}"
    );
    text(&o.stdout)
}

// ---- Content tags (`tags:` in the spec): computed in the built image, pushed by manifest
// PUT, never moved unless `moving: true`.

/// What `python3` in the test base image says its version is (`3.11.2`), asked directly.
fn base_python_version(parts: usize) -> String {
    let local = support::images::base_image();
    let o = std::process::Command::new("docker")
        .args(["run", "--rm", "--entrypoint", "python3", &local, "-c"])
        .arg(format!(
            "import sys; print('.'.join(str(v) for v in sys.version_info[:{parts}]))"
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn image_of<'a>(summary: &'a Value, key: &str) -> &'a Value {
    summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {summary:#}"))
}

fn content_tag<'a>(summary: &'a Value, key: &str, tag: &str) -> &'a Value {
    image_of(summary, key)["content_tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == tag)
        .unwrap_or_else(|| panic!("no content tag {tag} in {summary:#}"))
}

/// The example's base alone (its content tags are appended by the tests).
fn base_only_spec(ex: &ExampleRepo) -> String {
    format!(
        "root: base\nimages:\n  base:\n    image_name: {}\n    build_args:\n      BASE_IMAGE: {}\n    info_cmds: [PY_VER]\ntag:\n  prefix: \"{PREFIX}\"\nall_info_cmds:\n  PY_VER: {{description: Python Version, command: python3 --version}}\n",
        ex.image_name("base"),
        ex.base_image()
    )
}

#[test]
fn content_tags_come_from_the_image_and_never_move_unless_moving() {
    let s = Stack::builder("content_tags_come_from_the_image_and_never_move_unless_moving")
        .example()
        .build()
        .unwrap();
    let (ex, out) = (&s.repo, &s.out);
    let full = format!("{}:{PREFIX}-{BRANCH}", ex.image_name("base"));
    let python = base_python_version(3);
    let major = base_python_version(1);
    // The base alone, with content tags for every image of the stack.
    let spec = base_only_spec(ex);
    ex.change(
        "spec.yml",
        &format!("{spec}tags:\n  - \"python-{{python3 -c 'import sys; print(\\\"%d.%d.%d\\\" % sys.version_info[:3])'}}\"\n  - template: \"py{{python3 -c 'import sys; print(sys.version_info[0])'}}-newest\"\n    moving: true\n  - \"{{commit}}-{{date}}\"\n"),
        "content tags",
    );
    let fixed = format!("python-{python}");
    let moving = format!("py{major}-newest");
    let at = |tag: &str| format!("{}:{tag}", ex.image_name("base"));
    let sha7 =
        |ex: &ExampleRepo| ex.repo.head().unwrap().target().unwrap().to_string()[..7].to_string();
    let today = || chrono::Utc::now().format("%Y-%m-%d").to_string();

    // 0. --no-push: the content tags are computed (a bad value would fail here already)
    // and recorded as not pushed; none reaches the registry.
    let (code, summary) = build(
        ex,
        out.path(),
        &["--base", "HEAD", "--only", "base", "--no-push"],
    );
    assert_eq!(code, 0, "{summary:#}");
    let t = content_tag(&summary, "base", &fixed);
    assert_eq!(t["state"], "not-pushed", "{t}");
    assert_eq!(digest_in_registry(&at(&fixed)), None);

    // 1. First build: every content tag is created on the tested digest.
    let day_before = today();
    let (code, summary) = build(ex, out.path(), &["--base", "HEAD", "--only", "base"]);
    let day_after = today();
    assert_eq!(code, 0, "{summary:#}");
    let first = report_digest(&summary, "base");
    let dated = [&day_before, &day_after].map(|d| format!("{}-{d}", sha7(ex)));
    for tag in [&fixed, &moving] {
        let t = content_tag(&summary, "base", tag);
        assert_eq!(t["state"], "created", "{t}");
        assert_eq!(t["digest"], first.as_str());
        assert_eq!(
            digest_in_registry(&at(tag)).as_deref(),
            Some(first.as_str())
        );
    }
    let tags: Vec<String> = image_of(&summary, "base")["content_tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap().to_string())
        .collect();
    assert!(
        dated.iter().any(|d| tags.contains(d)),
        "{{commit}}-{{date}}: {tags:?} {dated:?}"
    );
    // In the artifact and on the manifest page too.
    let yaml = artifact(out.path(), &full);
    assert_eq!(
        yaml["content_tags"][0]["tag"].as_str(),
        Some(fixed.as_str())
    );
    assert_eq!(yaml["content_tags"][0]["state"].as_str(), Some("created"));
    let manifest = read(
        out.path()
            .join("manifests")
            .join(format!("{}.md", page(&full))),
    );
    assert!(manifest.contains("## Content Tags"), "{manifest}");
    assert!(
        manifest.contains(&format!("| `{fixed}` | `{first}` | created |")),
        "{manifest}"
    );

    // The build's row in this month's history page, and the index.
    let wiki = out.path().join("wiki");
    let month = &day_after[..7];
    let history = read(wiki.join("history").join(format!("{month}.md")));
    let row = history.lines().last().unwrap();
    assert!(
        row.contains(&format!(
            "| `{}` | `{PREFIX}-{BRANCH}` | `{full}` `{first}` [page]({}) |",
            sha7(ex),
            page(&full)
        )),
        "{history}"
    );
    assert!(read(wiki.join("History.md")).contains(&format!("- [{month}]({month})")));

    // Old manifest pages in the wiki: one linked from Home.md's stable row, two not.
    let old_page = |name: &str| {
        let p = wiki.join(format!("{}.md", page(name)));
        std::fs::write(&p, format!("# {name}\n\nManifest digest: `sha256:00`\n")).unwrap();
        p
    };
    let linked = old_page("h/old:2025.4-stable");
    let stale = [old_page("h/old:2025.4-a"), old_page("h/old:2025.4-b")];
    std::fs::write(
        wiki.join("Home.md"),
        format!("| Commit | Image | Manifest |\n|--------|-------|----------|\n|[`1111111`](https://github.com/o/r/commit/1111111)|`h/old:2025.4-stable`|[Link](https://github.com/o/r/wiki/{})|\n", page("h/old:2025.4-stable")),
    )
    .unwrap();

    // 2. Other content, same python: the fixed tag stays on the first image (a warning, not
    // a failure); the moving one follows the new build. At most 2 manifest pages stay.
    ex.append(
        "images/base/stack-info",
        "# other content",
        "base: other content",
    );
    let (code, summary, stderr) = build_env(
        ex,
        out.path(),
        &["--only", "base", "--wiki-max-pages", "2"],
        &[],
    );
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    assert_eq!(status_of(&summary, "base"), "done");
    let second = report_digest(&summary, "base");
    assert_ne!(second, first, "other content");
    assert_eq!(digest_in_registry(&full).as_deref(), Some(second.as_str()));
    let kept = content_tag(&summary, "base", &fixed);
    assert_eq!(kept["state"], "kept", "{kept}");
    assert_eq!(
        kept["digest"],
        first.as_str(),
        "records where the tag points"
    );
    assert_eq!(
        digest_in_registry(&at(&fixed)).as_deref(),
        Some(first.as_str())
    );
    let moved = content_tag(&summary, "base", &moving);
    assert_eq!(moved["state"], "moved", "{moved}");
    assert_eq!(moved["previous"], first.as_str());
    assert_eq!(
        digest_in_registry(&at(&moving)).as_deref(),
        Some(second.as_str())
    );
    let warnings = image_of(&summary, "base")["report"]["warnings"].to_string();
    assert!(
        warnings.contains(&at(&fixed)) && warnings.contains(&first),
        "{warnings}"
    );
    assert!(stderr.contains("already names"), "{stderr}");
    for p in &stale {
        assert!(!p.exists(), "{} removed", p.display());
    }
    assert!(linked.is_file(), "a page linked from Home.md stays");
    assert!(
        wiki.join(format!("{}.md", page(&full))).is_file(),
        "this build's page stays"
    );
    let removed = read(out.path().join("artifacts/WIKI_PAGES_REMOVED"));
    assert_eq!(removed.lines().count(), 2, "{removed}");
    assert!(stderr.contains("removed the old manifest page"), "{stderr}");
    let history = read(wiki.join("history").join(format!("{month}.md")));
    assert!(
        history.lines().last().unwrap().contains(&second),
        "a second row: {history}"
    );

    // Promotion lists the content tags that name the promoted digest: the moving one and
    // this commit's dated one, not the fixed one (it stayed on the first build).
    let o = stackctl()
        .current_dir(out.path())
        .args(["tag", &format!("{PREFIX}-{BRANCH}"), "--spec"])
        .arg(ex.path().join("spec.yml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let stable = format!("{}:{PREFIX}-stable", ex.image_name("base"));
    let lines = read(out.path().join("artifacts/CONTENT_TAGS"));
    let mut lines: Vec<&str> = lines.lines().collect();
    lines.sort();
    let dated: Vec<String> = [&day_before, &day_after]
        .iter()
        .map(|d| format!("{stable} {}", at(&format!("{}-{d}", sha7(ex)))))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(dated.iter().any(|d| d == lines[0]), "{lines:?} {dated:?}");
    assert_eq!(lines[1], format!("{stable} {}", at(&moving)), "{lines:?}");
    assert!(
        image_of(&summary, "base")["report"]["message"]
            .as_str()
            .unwrap()
            .contains("1 warning"),
        "{summary:#}"
    );

    // 3. A value that is not a tag (`Python 3.11.2`, with a space) fails the image before
    // it gets its tag: the branch tag stays on the second build.
    let spec = read(ex.path().join("spec.yml"));
    let spec = format!(
        "{}tags: [\"py-{{python3 --version}}\"]\n",
        &spec[..spec.find("\ntags:").unwrap() + 1]
    );
    ex.change("spec.yml", &spec, "a bad content tag");
    ex.append(
        "images/base/stack-info",
        "# third content",
        "base: third content",
    );
    let (code, summary) = build(ex, out.path(), &["--only", "base"]);
    assert_eq!(code, 1, "{summary:#}");
    let report = &image_of(&summary, "base")["report"];
    assert_eq!(report["failed_step"], "content-tags", "{report}");
    let message = report["message"].as_str().unwrap();
    assert!(
        message.contains("`python3 --version`") && message.contains(&format!("Python {python}")),
        "names the command and its output: {message}"
    );
    assert_eq!(digest_in_registry(&full).as_deref(), Some(second.as_str()));
    remove_engine_images_of(&ex.registry);
}

/// Through a buildkitd the content tag commands run in the image pulled by digest, and the
/// content tag is a manifest PUT of that digest: the only tags are the run's and it.
#[test]
fn content_tags_through_buildkitd_name_the_tested_digest() {
    let Some(s) = Stack::builder("content_tags_through_buildkitd_name_the_tested_digest")
        .buildkitd()
        .example()
        .build()
    else {
        return;
    };
    let (bk, reg, ex, out) = (&s.nodes[0], &s.registry, &s.repo, &s.out);
    let python = base_python_version(2);
    ex.change(
        "spec.yml",
        &format!(
            "{}tags: [\"python-{{python3 -c 'import sys; print(\\\"%d.%d\\\" % sys.version_info[:2])'}}\"]\n",
            base_only_spec(ex)
        ),
        "content tags",
    );
    let (code, summary, stderr) = build_through(
        ex.path(),
        out.path(),
        &["--buildkit", bk.unix.as_str()],
        &["--branch", BRANCH, "--base", "HEAD"],
        &[],
    );
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    let digest = report_digest(&summary, "base");
    let tag = format!("python-{python}");
    let t = content_tag(&summary, "base", &tag);
    assert_eq!(t["state"], "created", "{t}");
    assert_eq!(t["digest"], digest.as_str());
    let reference = format!("{}:{tag}", ex.image_name("base"));
    assert_eq!(
        digest_in_registry(&reference).as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(
        tags_of(&reg.host(), "stackctl-example/base"),
        vec![format!("{PREFIX}-{BRANCH}"), tag],
        "no staging tag"
    );
    remove_engine_images_of(&reg.host());
}

// ---- A pool of two buildkitd nodes, each with its own root and its own CA
// (--buildkit-tls-dir): which node builds what, a node lost during a build, none answering.

/// The two nodes of a pool set up with `buildkitds(2)`.
fn two(nodes: Vec<Buildkitd>) -> [Buildkitd; 2] {
    nodes
        .try_into()
        .unwrap_or_else(|n: Vec<_>| panic!("{} nodes, not 2", n.len()))
}

/// `--buildkit A --buildkit B --buildkit-tls-dir DIR`.
fn pool_args(a: &Buildkitd, b: &Buildkitd, tls: &Path) -> Vec<String> {
    vec![
        "--buildkit".into(),
        a.tcp.clone(),
        "--buildkit".into(),
        b.tcp.clone(),
        "--buildkit-tls-dir".into(),
        tls.to_string_lossy().into_owned(),
    ]
}

/// How the artifacts name a node (`builder:`): its address, TLS.
fn node_name(node: &Buildkitd) -> String {
    format!("{} (TLS)", node.tcp)
}

fn builder_of(out: &Path, full: &str) -> String {
    artifact(out, full)["builder"]
        .as_str()
        .unwrap_or_else(|| panic!("{full}: no builder in its artifact"))
        .to_string()
}

#[test]
fn pool_spreads_siblings_and_a_child_follows_its_parent() {
    let Some(Stack {
        nodes,
        registry: reg,
        repo: ex,
        out,
        tls_dir: Some(tls),
        ..
    }) = Stack::builder("pool_spreads_siblings_and_a_child_follows_its_parent")
        .buildkitds(2)
        .example()
        .build()
    else {
        return;
    };
    let [a, b] = two(nodes);
    // A third node that does not answer: left out with a warning, the run goes on.
    let dead = format!("tcp://127.0.0.1:{}", support::free_port());
    let mut args = pool_args(&a, &b, tls.path());
    args.extend(["--buildkit".to_string(), dead.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // `buildkit info` prints every node that answers.
    let o = stackctl()
        .args(["buildkit", "info", "--json"])
        .args(&args)
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let info: Value = serde_json::from_slice(&o.stdout).unwrap();
    let shown: Vec<&str> = info
        .as_array()
        .unwrap_or_else(|| panic!("a list: {info}"))
        .iter()
        .map(|n| n["address"].as_str().unwrap())
        .collect();
    assert_eq!(shown, vec![node_name(&a), node_name(&b)], "{err}");
    assert!(
        err.contains(&format!("BuildKit node {dead} is left out of this run")),
        "{err}"
    );

    let (code, summary, stderr) = build_through(
        ex.path(),
        out.path(),
        &args,
        &["--branch", BRANCH, "--base", "HEAD"],
        &[],
    );
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    assert!(
        stderr.contains(&format!("BuildKit node {dead} is left out of this run")),
        "{stderr}"
    );
    let tag = format!("{PREFIX}-{BRANCH}");
    let full = |k: &str| format!("{}:{tag}", ex.image_name(k));
    for k in KEYS {
        assert_eq!(status_of(&summary, k), "done", "{summary:#}");
    }
    let nodes = [node_name(&a), node_name(&b)];
    let base = builder_of(out.path(), &full("base"));
    assert!(nodes.contains(&base), "{base} is one of {nodes:?}");
    // analysis comes first: base's node is idle, it goes there; service, its sibling
    // started at the same time, goes to the other node.
    assert_eq!(
        builder_of(out.path(), &full("analysis")),
        base,
        "a child goes to its parent's node when that node is free"
    );
    let service = builder_of(out.path(), &full("service"));
    assert!(nodes.contains(&service) && service != base, "{service}");
    let run_log = read(out.path().join("logs/run.log"));
    for (k, node) in [("base", &base), ("analysis", &base), ("service", &service)] {
        assert!(
            run_log.contains(&format!("[{k}] builds on BuildKit node {node}")),
            "{k}:\n{run_log}"
        );
    }
    remove_engine_images_of(&reg.host());
}

#[test]
fn a_node_killed_during_a_build_moves_its_image_and_the_run_succeeds() {
    let Some(Stack {
        nodes,
        registry: reg,
        repo: ex,
        out,
        tls_dir: Some(tls),
        ..
    }) = Stack::builder("a_node_killed_during_a_build_moves_its_image_and_the_run_succeeds")
        .buildkitds(2)
        .example()
        .build()
    else {
        return;
    };
    let [mut a, mut b] = two(nodes);
    // A slow last step, so that the build is still running when its node is killed.
    ex.append("images/base/Dockerfile", "RUN sleep 8", "base: a slow step");
    let stdout = std::fs::File::create(out.path().join("stdout.json")).unwrap();
    let stderr = std::fs::File::create(out.path().join("stderr.txt")).unwrap();
    let mut child = stackctl()
        .current_dir(out.path())
        .args(["build", "--json", "--repo"])
        .arg(ex.path())
        .args(pool_args(&a, &b, tls.path()))
        .args(["--branch", BRANCH, "--base", "HEAD"])
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    // Which node took base: the run log says so when the build starts.
    let run_log = out.path().join("logs/run.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let victim = loop {
        let log = std::fs::read_to_string(&run_log).unwrap_or_default();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("[base] builds on BuildKit node"))
        {
            break if line.contains(a.hostport()) {
                'a'
            } else {
                'b'
            };
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "stackctl ended:\n{log}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "base never started:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (lost, kept) = if victim == 'a' {
        a.kill();
        (node_name(&a), node_name(&b))
    } else {
        b.kill();
        (node_name(&b), node_name(&a))
    };
    // Bounded: base again (with its sleep) and two children on the node left.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("stackctl did not end in 10 minutes");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let stderr = read(out.path().join("stderr.txt"));
    let summary: Value = serde_json::from_str(&read(out.path().join("stdout.json")))
        .unwrap_or_else(|e| panic!("no JSON ({e}):\n{stderr}"));
    assert_eq!(status.code(), Some(0), "{summary:#}\n{stderr}");
    let tag = format!("{PREFIX}-{BRANCH}");
    let full = |k: &str| format!("{}:{tag}", ex.image_name(k));
    for k in KEYS {
        assert_eq!(status_of(&summary, k), "done", "{summary:#}");
        assert_eq!(builder_of(out.path(), &full(k)), kept, "{k}");
    }
    let base = artifact(out.path(), &full("base"));
    assert_eq!(
        base["lost_builders"],
        serde_yaml::Value::Sequence(vec![serde_yaml::Value::String(lost.clone())]),
        "{base:?}"
    );
    assert!(
        stderr.contains("[base]") && stderr.contains("built again on another node"),
        "{stderr}"
    );
    assert!(stderr.contains(&lost), "{stderr}");
    remove_engine_images_of(&reg.host());
}

#[test]
fn a_pool_whose_nodes_are_all_down_exits_2_with_one_line() {
    let ex = ExampleRepo::create("127.0.0.1:5999");
    let out = tempfile::tempdir().unwrap();
    let ports = [support::free_port(), support::free_port()];
    let o = stackctl()
        .current_dir(out.path())
        .args(["build", "--no-registry", "--branch", BRANCH, "--repo"])
        .arg(ex.path())
        .args(["--buildkit", &format!("tcp://127.0.0.1:{}", ports[0])])
        .env("BUILDKIT_HOST", "unused-when---buildkit-is-given")
        .args(["--buildkit", &format!("tcp://127.0.0.1:{}", ports[1])])
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let about: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("BuildKit") || l.contains("127.0.0.1"))
        .collect();
    assert_eq!(about.len(), 1, "one line:\n{err}");
    assert!(
        about[0].contains("none of the 2 BuildKit nodes answers"),
        "{err}"
    );
    for p in ports {
        assert!(about[0].contains(&format!("127.0.0.1:{p}")), "{err}");
    }

    // The same list in BUILDKIT_HOST.
    let o = stackctl()
        .current_dir(out.path())
        .args(["build", "--no-registry", "--branch", BRANCH, "--repo"])
        .arg(ex.path())
        .env(
            "BUILDKIT_HOST",
            format!("tcp://127.0.0.1:{},tcp://127.0.0.1:{}", ports[0], ports[1]),
        )
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("none of the 2 BuildKit nodes answers"),
        "{err}"
    );
}

// ---- Multi-platform stacks: linux/amd64 + linux/arm64 through a buildkitd,
// arm64 run through qemu-user-static's binfmt handler (scripts/dev-env).

const PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64"];

/// A two-platform stack (`base` FROM the two-platform python base, `kid` FROM base) in a
/// git repository; each image writes `uname -m` at build time, and its tests check that it
/// runs on the machine it was built for. `kid_test` is the kid's test file.
fn two_platform_stack(host: &str, kid_test: &str) -> TestRepo {
    let git = TestRepo::new("main");
    git.write(
        "spec.yml",
        &format!(
            "platforms: [linux/amd64, linux/arm64]
images:
  base:
    image_name: {host}/mp/base
    build_args:
      BASE_IMAGE: {host}/stackctl-local/debian-python:bookworm
    info_cmds: [MACHINE]
  kid:
    image_name: {host}/mp/kid
    depend_on: base
    build_args:
      BASE_IMAGE: {host}/mp/base
    info_cmds: [MACHINE]
tag:
  prefix: \"{PREFIX}\"
all_info_cmds:
  MACHINE:
    description: Machine
    command: uname -m
"
        ),
    )
    .write(
        "images/base/Dockerfile",
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN uname -m > /base-arch\n",
    )
    .write(
        "images/base/test/test_base.py",
        "import platform\n\ndef test_built_for_this_machine():\n    assert open('/base-arch').read().strip() == platform.machine()\n",
    )
    .write(
        "images/kid/Dockerfile",
        "ARG BASE_IMAGE\nARG BASE_TAG=none\nFROM ${BASE_IMAGE}:${BASE_TAG}\nRUN uname -m > /kid-arch\n",
    )
    .write("images/kid/test/test_kid.py", kid_test);
    git.commit("a two-platform stack");
    git
}

const KID_TEST: &str = "import platform

def test_parent_and_child_built_for_this_machine():
    machine = platform.machine()
    assert open('/base-arch').read().strip() == machine
    assert open('/kid-arch').read().strip() == machine
";

/// A buildkitd, a registry with the two-platform python base, and the stack.
fn two_platform_setup(test: &str, kid_test: &'static str) -> Builder<TestRepo> {
    Stack::builder(test)
        .buildkitd()
        .python_platforms()
        .repo(move |host, _| two_platform_stack(host, kid_test))
}

/// `stackctl build --json` of a repository through the buildkitd's tcp address.
fn build_repo(repo: &Path, out: &Path, bk: &Buildkitd, extra: &[&str]) -> (i32, Value, String) {
    let tls = bk.tcp_args();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    build_through(
        repo,
        out,
        &tls,
        &[&["--branch", BRANCH, "--base", "HEAD"], extra].concat(),
        &[],
    )
}

/// The platforms of an index in the registry: `linux/arm64` → its manifest digest.
fn index_platforms(reference: &str) -> Vec<(String, String)> {
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let r = ImageRef::parse(reference).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt.block_on(client.get_manifest(&r)).unwrap().unwrap();
    let v: Value = serde_json::from_slice(&m.bytes).unwrap();
    v["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("{reference} is not an index: {v}"))
        .iter()
        .filter(|e| e["platform"]["os"] != "unknown")
        .map(|e| {
            (
                format!(
                    "{}/{}",
                    e["platform"]["os"].as_str().unwrap(),
                    e["platform"]["architecture"].as_str().unwrap()
                ),
                e["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The artifact's `platforms` list as (platform, digest, success).
fn artifact_platforms(yaml: &serde_yaml::Value) -> Vec<(String, String, bool)> {
    yaml["platforms"]
        .as_sequence()
        .unwrap_or_else(|| panic!("no platforms in {yaml:?}"))
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_string(),
                p["digest"].as_str().unwrap_or_default().to_string(),
                p["success"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// A root and a child built for two platforms through a buildkitd: each tag names an index
/// of both platforms, the tests ran on each platform (arm64 through qemu), each platform of
/// the child has its parent's layers of that platform, and the manifest page has a section
/// per platform with that platform's layers.
#[test]
fn two_platform_stack_is_built_tested_on_each_platform_and_pushed_as_indexes() {
    let test = "two_platform_stack_is_built_tested_on_each_platform_and_pushed_as_indexes";
    let Some(s) = two_platform_setup(test, KID_TEST).build() else {
        return;
    };
    let (bk, reg, git, out) = (&s.nodes[0], &s.registry, &s.repo, &s.out);
    let host = reg.host();
    with_kid_integration(git, Some("linux/arm64"));
    let (code, summary, stderr) = build_repo(git.path(), out.path(), bk, &[]);
    assert_eq!(code, 0, "{summary:#}\n{stderr}\n{}", bk.log());
    let tag = format!("{PREFIX}-{BRANCH}");
    let full = |k: &str| format!("{host}/mp/{k}:{tag}");
    let mut per_platform = std::collections::HashMap::new();
    for k in ["base", "kid"] {
        assert_eq!(status_of(&summary, k), "done", "{summary:#}");
        let index = report_digest(&summary, k);
        assert_eq!(
            digest_in_registry(&full(k)).as_deref(),
            Some(index.as_str())
        );
        let listed = index_platforms(&full(k));
        let names: Vec<&str> = listed.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names, PLATFORMS,
            "{k}: the tag names an index of both platforms"
        );
        let yaml = artifact(out.path(), &full(k));
        let recorded = artifact_platforms(&yaml);
        for ((p, d), (rp, rd, ok)) in listed.iter().zip(&recorded) {
            assert_eq!((p, d, ok), (rp, rd, &true), "{k}: {yaml:?}");
            // Each platform's tests ran, in their own log and JUnit file.
            let stem = format!("{}.{}", safe(&full(k)), p.replace('/', "-"));
            let log = read(
                out.path()
                    .join("logs")
                    .join(format!("{stem}.basic-tests.log")),
            );
            assert!(log.contains("1 passed"), "{p}: {log}");
            let junit = read(
                out.path()
                    .join("logs")
                    .join(format!("{stem}.basic-tests.xml")),
            );
            assert!(junit.contains(&format!("name=\"basic {p}\"")), "{junit}");
        }
        let basic = &yaml["tests"]["basic"];
        assert_eq!(
            basic["passed"].as_u64(),
            Some(2),
            "one test on each platform"
        );
        assert_eq!(yaml["commit"].as_str().map(str::len), Some(40), "{yaml:?}");
        assert_eq!(
            digest_in_registry(&format!("{host}/mp/{k}:arch-x86_64")).as_deref(),
            Some(index.as_str()),
            "{k}: the content tag, computed on amd64, names the index"
        );
        per_platform.insert(k, listed);
    }
    // The child FROM the parent's index: each platform has the parent's layers of that
    // platform below its own.
    assert_eq!(
        artifact(out.path(), &full("kid"))["parent_digest"].as_str(),
        Some(report_digest(&summary, "base").as_str())
    );
    for ((p, base_m), (_, kid_m)) in per_platform["base"].iter().zip(&per_platform["kid"]) {
        let base_layers = layers_of(&format!("{host}/mp/base@{base_m}"));
        let kid_layers = layers_of(&format!("{host}/mp/kid@{kid_m}"));
        assert_eq!(
            &kid_layers[..base_layers.len()],
            &base_layers[..],
            "{p}: the child is built on the parent's {p} image"
        );
        assert_eq!(kid_layers.len(), base_layers.len() + 1);
    }
    let (amd, arm) = (&per_platform["kid"][0].1, &per_platform["kid"][1].1);
    let kid = artifact(out.path(), &full("kid"));
    assert_eq!(
        kid["tests"]["integration"]["passed"].as_u64(),
        Some(1),
        "{kid:?}"
    );
    let integ_log = out.path().join("logs").join(format!(
        "{}.linux-arm64.integration-tests.log",
        safe(&full("kid"))
    ));
    assert!(read(integ_log).contains("1 passed"));
    assert_ne!(
        layers_of(&format!("{host}/mp/kid@{amd}")),
        layers_of(&format!("{host}/mp/kid@{arm}"))
    );

    // The manifest page: a section per platform, each with its own digest and machine.
    let page_text = read(
        out.path()
            .join("manifests")
            .join(format!("{}.md", page(&full("kid")))),
    );
    let amd_at = page_text.find("\n## linux/amd64\n").expect(&page_text);
    let arm_at = page_text.find("\n## linux/arm64\n").expect(&page_text);
    assert!(amd_at < arm_at, "{page_text}");
    let (amd_section, arm_section) = (&page_text[amd_at..arm_at], &page_text[arm_at..]);
    assert!(
        amd_section.contains(&format!("Manifest digest: `{amd}`")),
        "{page_text}"
    );
    assert!(
        arm_section.contains(&format!("Manifest digest: `{arm}`")),
        "{page_text}"
    );
    assert!(
        amd_section.contains("### Machine\n\n```\nx86_64\n```"),
        "{page_text}"
    );
    assert!(
        arm_section.contains("### Machine\n\n```\naarch64\n```"),
        "{page_text}"
    );
    assert!(page_text.contains(&format!(
        "Index digest: `{}`",
        report_digest(&summary, "kid")
    )));
    remove_engine_images_of(&host);
}

/// Give the kid a service (a CMD that says `ready`) and an integration test that asserts
/// it runs on arm64; `integration_platforms` in its spec when given. A content tag
/// `arch-<uname -m>` for the stack. Committed.
fn with_kid_integration(git: &TestRepo, integration_platforms: Option<&str>) {
    let on = integration_platforms
        .map(|p| format!("    integration_platforms: [{p}]\n"))
        .unwrap_or_default();
    // A content tag is computed on the native platform and names the index.
    let spec = format!(
        "tags: [\"arch-{{uname -m}}\"]\n{}",
        read(git.path().join("spec.yml"))
    );
    let spec = spec.replace(
        "    info_cmds: [MACHINE]\ntag:",
        &format!("    info_cmds: [MACHINE]\n    integration_tests: true\n{on}    tests:\n      integration: {{wait_log: ready}}\ntag:"),
    );
    git.write("spec.yml", &spec)
        .write(
            "images/kid/Dockerfile",
            &format!(
                "{}CMD [\"python3\", \"-c\", \"print('ready', flush=True); import time; time.sleep(600)\"]\n",
                read(git.path().join("images/kid/Dockerfile"))
            ),
        )
        .write(
            "images/kid/integration_tests/test_service.py",
            "import os, platform\n\ndef test_runs_on_arm64():\n    assert os.environ['SERVICE_NAME']\n    assert platform.machine() == 'aarch64'\n",
        );
    git.commit("kid: integration tests");
}

/// A test that fails only on arm64 fails the image: its report names the arm64 failure,
/// amd64's result is recorded as passed, and no tag appears for it (its parent, which
/// passed on both, is tagged).
#[test]
fn a_test_failing_only_on_arm64_fails_the_image_and_no_tag_appears() {
    let test = "a_test_failing_only_on_arm64_fails_the_image_and_no_tag_appears";
    let kid_test =
        "import platform\n\ndef test_only_on_x86():\n    assert platform.machine() == 'x86_64'\n";
    let Some(s) = two_platform_setup(test, kid_test).build() else {
        return;
    };
    let (bk, reg, git, out) = (&s.nodes[0], &s.registry, &s.repo, &s.out);
    let host = reg.host();
    let (code, summary, stderr) = build_repo(git.path(), out.path(), bk, &[]);
    assert_eq!(code, 1, "{summary:#}\n{stderr}");
    assert_eq!(status_of(&summary, "base"), "done", "{summary:#}");
    assert_eq!(status_of(&summary, "kid"), "failed", "{summary:#}");
    let tag = format!("{PREFIX}-{BRANCH}");
    assert_eq!(tags_of(&host, "mp/base"), vec![tag.clone()]);
    assert!(
        all_tags_of(&host, "mp/kid").is_empty(),
        "no tag for the failed image, no inventory attached either"
    );
    assert_eq!(
        all_tags_of(&host, "mp/base")
            .iter()
            .filter(|t| is_referrers_tag(t))
            .count(),
        2,
        "the passed parent's two platforms have their inventories attached"
    );

    let kid = artifact(out.path(), &format!("{host}/mp/kid:{tag}"));
    assert_eq!(kid["failed_step"].as_str(), Some("basic-tests"));
    let message = kid["message"].as_str().unwrap();
    assert!(
        message.contains("failed on 1 of 2 platforms: linux/arm64: failed:"),
        "{message}"
    );
    assert!(!message.contains("linux/amd64"), "{message}");
    let recorded = artifact_platforms(&kid);
    assert_eq!(recorded[0].0, "linux/amd64");
    assert!(recorded[0].2, "amd64 passed: {kid:?}");
    assert_eq!(recorded[1].0, "linux/arm64");
    assert!(!recorded[1].2, "arm64 failed: {kid:?}");
    let failures = kid["tests"]["basic"]["failures"].as_sequence().unwrap();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0]["name"]
            .as_str()
            .unwrap()
            .starts_with("[linux/arm64] "),
        "{failures:?}"
    );
    remove_engine_images_of(&host);
}

/// `--platform linux/arm64` of a two-platform stack is a split build: each image is
/// pushed by digest (arm64 only) and tested, gets no tag, and its artifact says what
/// `stackctl merge` needs (commit, the platform's digest and result, awaiting_merge).
/// The child is built FROM the parent's untagged arm64 image.
#[test]
fn a_split_build_pushes_by_digest_leaves_no_tag_and_records_the_platform() {
    let test = "a_split_build_pushes_by_digest_leaves_no_tag_and_records_the_platform";
    let Some(s) = two_platform_setup(test, KID_TEST).build() else {
        return;
    };
    let (bk, reg, git, out) = (&s.nodes[0], &s.registry, &s.repo, &s.out);
    let host = reg.host();
    // The kid's integration tests: this (amd64) runner does not build its native platform,
    // so they run once on the arm64 image it built.
    with_kid_integration(git, None);
    let (code, summary, stderr) =
        build_repo(git.path(), out.path(), bk, &["--platform", "linux/arm64"]);
    assert_eq!(code, 0, "{summary:#}\n{stderr}\n{}", bk.log());
    let tag = format!("{PREFIX}-{BRANCH}");
    let head = git.repo.head().unwrap().target().unwrap().to_string();
    let mut digests = vec![];
    for k in ["base", "kid"] {
        assert_eq!(status_of(&summary, k), "done", "{summary:#}");
        assert!(tags_of(&host, &format!("mp/{k}")).is_empty(), "{k}: no tag");
        let yaml = artifact(out.path(), &format!("{host}/mp/{k}:{tag}"));
        assert_eq!(yaml["awaiting_merge"].as_bool(), Some(true), "{yaml:?}");
        assert_eq!(yaml["pushed"].as_bool(), Some(false), "{yaml:?}");
        assert_eq!(yaml["commit"].as_str(), Some(head.as_str()));
        let recorded = artifact_platforms(&yaml);
        assert_eq!(recorded.len(), 1, "{yaml:?}");
        let (p, d, ok) = &recorded[0];
        assert_eq!((p.as_str(), *ok), ("linux/arm64", true));
        // What the run pushed: an index of that platform and its attestation.
        let pushed = yaml["digest"].as_str().unwrap();
        assert_eq!(
            index_platforms(&format!("{host}/mp/{k}@{pushed}")),
            vec![("linux/arm64".to_string(), d.clone())]
        );
        let basic = &yaml["platforms"][0]["basic"];
        assert_eq!(basic["passed"].as_u64(), Some(1), "{yaml:?}");
        // The platform's manifest is in the registry, by digest, and is arm64's.
        let config = config_of(&format!("{host}/mp/{k}@{d}"));
        assert_eq!(config["architecture"], "arm64");
        digests.push(d.clone());
    }
    let kid = artifact(out.path(), &format!("{host}/mp/kid:{tag}"));
    assert_eq!(kid["parent_digest"].as_str(), Some(digests[0].as_str()));
    assert_eq!(
        read(out.path().join("artifacts/IMAGES_BUILT")),
        "",
        "no tag to list"
    );
    assert!(
        !out.path().join("manifests").exists()
            || std::fs::read_dir(out.path().join("manifests"))
                .unwrap()
                .next()
                .is_none(),
        "no manifest page for an untagged image"
    );
    remove_engine_images_of(&host);
}

/// The config of a single image manifest (or of an index's one platform).
fn config_of(reference: &str) -> Value {
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let (r, v) = image_manifest(reference);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = v["config"]["digest"].as_str().unwrap();
    serde_json::from_slice(&rt.block_on(client.get_blob(&r, c)).unwrap()).unwrap()
}

/// Through the engine's BuildKit (v0.8 worker), two platforms, or a split build, are bad
/// input: exit 2 before anything is built, naming the image and the alternative.
#[test]
fn two_platforms_through_the_engine_is_exit_2_naming_a_buildkitd() {
    let s = Stack::builder("two_platforms_through_the_engine_is_exit_2_naming_a_buildkitd")
        .repo(|host, _| two_platform_stack(host, KID_TEST))
        .build()
        .unwrap();
    let (git, out) = (&s.repo, &s.out);
    for extra in [&[][..], &["--platform", "linux/arm64"][..]] {
        let o = stackctl()
            .current_dir(out.path())
            .args(["build", "--no-registry", "--repo"])
            .arg(git.path())
            .args(["--buildkit", "docker-unix:///var/run/docker.sock"])
            .args(["--branch", BRANCH])
            .args(extra)
            .output()
            .unwrap();
        let stderr = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains("image `base`"), "{stderr}");
        assert!(
            stderr.contains("use a buildkitd: --buildkit tcp://"),
            "{stderr}"
        );
        assert!(
            !out.path().join("logs").exists()
                || std::fs::read_dir(out.path().join("logs"))
                    .unwrap()
                    .all(|e| !e
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".build.log")),
            "nothing was built"
        );
    }
    // A bad --platform is refused by the argument parser (exit 2), naming the value.
    let o = stackctl()
        .args(["build", "--platform", "linux/aarch64"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("(write arm64)"));
}

/// The no-python case on both platforms: an image FROM the two-platform busybox-static
/// base builds for amd64 and arm64 (its RUN step through qemu on arm64), and its basic
/// tests cannot run on either platform (no python): the image fails naming both, untagged.
#[test]
fn a_two_platform_image_without_python_fails_on_each_platform() {
    let test = "a_two_platform_image_without_python_fails_on_each_platform";
    let Some(s) = Stack::builder(test)
        .buildkitd()
        .busybox_platforms()
        .repo(|host, base| {
            let git = TestRepo::new("main");
            git.write(
                "spec.yml",
                &format!(
                    "platforms: [linux/amd64, linux/arm64]\nimages:\n  tiny:\n    image_name: {host}/mp/tiny\ntag:\n  prefix: \"{PREFIX}\"\n"
                ),
            )
            .write(
                "images/tiny/Dockerfile",
                &format!("FROM {host}/stackctl-local/busybox:static@{base}\nRUN uname -m > /arch\n"),
            )
            .write("images/tiny/test/test_tiny.py", "def test_x():\n    pass\n");
            git.commit("a busybox image");
            git
        })
        .build()
    else {
        return;
    };
    let (bk, reg, git, out) = (&s.nodes[0], &s.registry, &s.repo, &s.out);
    let host = reg.host();
    let (code, summary, stderr) = build_repo(git.path(), out.path(), bk, &[]);
    assert_eq!(code, 1, "{summary:#}\n{stderr}\n{}", bk.log());
    let yaml = artifact(out.path(), &format!("{host}/mp/tiny:{PREFIX}-{BRANCH}"));
    let message = yaml["message"].as_str().unwrap();
    assert!(message.contains("failed on 2 of 2 platforms"), "{message}");
    for p in PLATFORMS {
        assert!(message.contains(&format!("{p}: ")), "{message}");
    }
    assert!(message.contains("python3"), "{message}");
    let recorded = artifact_platforms(&yaml);
    assert_eq!(recorded.len(), 2);
    for (p, d, ok) in &recorded {
        assert!(!ok, "{p}");
        let config = config_of(&format!("{host}/mp/tiny@{d}"));
        assert_eq!(
            format!("linux/{}", config["architecture"].as_str().unwrap()),
            *p
        );
    }
    assert!(tags_of(&host, "mp/tiny").is_empty());
    remove_engine_images_of(&host);
}

// ---- Split builds (one run per platform) merged by `stackctl merge`.

/// A two-image stack for linux/amd64 and linux/arm64 without RUN steps (no emulation
/// needed to build it) and without tests: `base` copies a file named after the target
/// architecture, so each platform's layer differs; `child` is built FROM it.
fn two_platform_repo(host: &str) -> TestRepo {
    let repo = TestRepo::new("main");
    repo.write(
        "spec.yml",
        &format!(
            "root: base\nimages:\n  base:\n    image_name: {host}/split/base\n  child:\n    image_name: {host}/split/child\n    depend_on: base\n    build_args:\n      BASE_IMAGE: {host}/split/base\nplatforms: [linux/amd64, linux/arm64]\ntag:\n  prefix: \"{PREFIX}\"\n"
        ),
    )
    .write(
        "images/base/Dockerfile",
        "FROM scratch\nARG TARGETARCH\nCOPY arch-${TARGETARCH}.txt /arch.txt\n",
    )
    .write("images/base/arch-amd64.txt", "amd64\n")
    .write("images/base/arch-arm64.txt", "arm64\n")
    .write(
        "images/child/Dockerfile",
        "ARG BASE_IMAGE\nARG BASE_TAG\nFROM ${BASE_IMAGE}:${BASE_TAG}\nCOPY child.txt /child.txt\n",
    )
    .write("images/child/child.txt", "child\n");
    repo.commit("two-platform stack");
    repo
}

/// `stackctl merge --json --repo REPO --out OUT DIRS...`: exit code, stdout, stderr.
fn merge(repo: &Path, out: &Path, dirs: &[&Path]) -> (i32, String, String) {
    let o = stackctl()
        .args(["merge", "--json", "--repo"])
        .arg(repo)
        .arg("--out")
        .arg(out)
        .args(dirs)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout),
        text(&o.stderr),
    )
}

/// Two split builds of one commit through a buildkitd (`build --platform linux/amd64`, then
/// `--platform linux/arm64`, two output folders) leave no tag; `stackctl merge` of one
/// folder is refused (exit 2, the missing platform named) and tags nothing; of both, each
/// tag names an index listing exactly the digests the runs recorded, each child platform
/// built FROM its parent's image of that platform.
#[test]
fn split_builds_are_merged_and_a_missing_platform_is_refused() {
    let Some(s) = Stack::builder("split_builds_are_merged_and_a_missing_platform_is_refused")
        .buildkitd()
        .repo(|host, _| two_platform_repo(host))
        .build()
    else {
        return;
    };
    let (bk, reg, repo) = (&s.nodes[0], &s.registry, &s.repo);
    let host = reg.host();
    let tls = bk.tcp_args();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let tag = format!("{PREFIX}-main");
    let full = |k: &str| format!("{host}/split/{k}:{tag}");
    let commit = repo.repo.head().unwrap().target().unwrap().to_string();

    let runs = tempfile::tempdir().unwrap();
    let mut recorded: std::collections::BTreeMap<(String, String), String> = Default::default();
    for arch in ["amd64", "arm64"] {
        let out = runs.path().join(arch);
        std::fs::create_dir_all(&out).unwrap();
        let mut cmd = stackctl();
        let o = cmd
            .current_dir(&out)
            .args(["build", "--json", "--repo"])
            .arg(repo.path())
            .args(&tls)
            .args(["--branch", "main", "--platform", &format!("linux/{arch}")])
            .output()
            .unwrap();
        let stderr = text(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{stderr}\n{}", bk.log());
        for k in ["base", "child"] {
            let a = artifact(&out, &full(k));
            assert_eq!(a["awaiting_merge"], true, "{k}: {a:?}");
            assert_eq!(a["commit"].as_str(), Some(commit.as_str()), "{k}");
            let p = &a["platforms"][0];
            assert_eq!(
                p["platform"].as_str(),
                Some(format!("linux/{arch}").as_str())
            );
            recorded.insert(
                (k.to_string(), arch.to_string()),
                p["digest"].as_str().unwrap().to_string(),
            );
            assert_eq!(
                digest_in_registry(&full(k)),
                None,
                "{k}: a split build tags nothing"
            );
        }
    }
    // Each platform's child was built FROM its parent's image of that platform.
    for arch in ["amd64", "arm64"] {
        let at = |k: &str| {
            format!(
                "{host}/split/{k}@{}",
                recorded[&(k.to_string(), arch.to_string())]
            )
        };
        assert_eq!(
            layers_of(&at("child"))[0],
            layers_of(&at("base"))[0],
            "{arch}"
        );
    }
    assert_ne!(
        layers_of(&format!(
            "{host}/split/base@{}",
            recorded[&("base".into(), "amd64".into())]
        )),
        layers_of(&format!(
            "{host}/split/base@{}",
            recorded[&("base".into(), "arm64".into())]
        )),
    );

    // One folder only: refused, nothing tagged, nothing written.
    let amd = runs.path().join("amd64");
    let arm = runs.path().join("arm64");
    let merged = tempfile::tempdir().unwrap();
    let (code, _, stderr) = merge(repo.path(), merged.path(), &[&amd]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{}: platform linux/arm64", full("base")))
            && stderr.contains(&amd.display().to_string()),
        "{stderr}"
    );
    for k in ["base", "child"] {
        assert_eq!(digest_in_registry(&full(k)), None, "{k}");
    }
    assert!(!merged.path().join("artifacts").exists());

    // Both: one index per image, tagged.
    let (code, stdout, stderr) = merge(repo.path(), merged.path(), &[&amd, &arm]);
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["commit"].as_str(), Some(commit.as_str()));
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (i, k) in ["base", "child"].into_iter().enumerate() {
        let index = rt
            .block_on(client.get_manifest(&ImageRef::parse(&full(k)).unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(json["images"][i]["key"], k);
        assert_eq!(
            json["images"][i]["digest"].as_str(),
            Some(index.digest.as_str())
        );
        let v: Value = serde_json::from_slice(&index.bytes).unwrap();
        // Each platform's attestation manifest, as each run pushed it, names that platform.
        let carried: Vec<&str> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
            .map(|m| {
                m["annotations"]["vnd.docker.reference.digest"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        let platform_digests: Vec<&str> = ["amd64", "arm64"]
            .iter()
            .map(|a| recorded[&(k.to_string(), a.to_string())].as_str())
            .collect();
        assert_eq!(
            carried, platform_digests,
            "{k}: both attestations carried: {v:#}"
        );
        let listed: Vec<(String, String)> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["platform"]["os"] != "unknown")
            .map(|m| {
                (
                    format!(
                        "{}/{}",
                        m["platform"]["os"].as_str().unwrap(),
                        m["platform"]["architecture"].as_str().unwrap()
                    ),
                    m["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = ["amd64", "arm64"]
            .iter()
            .map(|a| {
                (
                    format!("linux/{a}"),
                    recorded[&(k.to_string(), a.to_string())].clone(),
                )
            })
            .collect();
        assert_eq!(listed, want, "{k}");
        let a = artifact(merged.path(), &full(k));
        assert_eq!(a["digest"].as_str(), Some(index.digest.as_str()), "{k}");
        assert_eq!(a["pushed"], true);
        assert!(a.get("awaiting_merge").is_none() || a["awaiting_merge"] == false);
        assert_eq!(a["platforms"].as_sequence().unwrap().len(), 2);
        assert_eq!(tags_of(&host, &format!("split/{k}")), vec![tag.clone()]);
        // The manifest page: the index, then a section per platform with its digest.
        let page = read(
            merged
                .path()
                .join("manifests")
                .join(format!("{}.md", page(&full(k)))),
        );
        assert!(
            page.contains(&format!("Index digest: `{}`", index.digest)),
            "{page}"
        );
        for (p, d) in &want {
            let at = page
                .find(&format!("\n## {p}\n"))
                .unwrap_or_else(|| panic!("{page}"));
            assert!(page[at..].contains(d.as_str()), "{p}: {page}");
        }
    }
    // The child's parent is the base's index (each platform FROM that platform's base).
    assert_eq!(
        artifact(merged.path(), &full("child"))["parent_digest"].as_str(),
        json["images"][0]["digest"].as_str()
    );
    assert_eq!(
        read(merged.path().join("artifacts/IMAGES_BUILT")),
        format!("{}\n{}\n", full("base"), full("child"))
    );
}

/// Content tags wait for the merge: the split builds of a small image (FROM the
/// two-platform python base, no RUN) compute them and push none; `stackctl merge` gives
/// them to the index.
#[test]
fn merge_gives_the_content_tags_split_builds_left_to_the_index() {
    let test = "merge_gives_the_content_tags_split_builds_left_to_the_index";
    let Some(s) = Stack::builder(test)
        .buildkitd()
        .python_platforms()
        .repo(|host, base| {
            let repo = TestRepo::new("main");
            repo.write(
                "spec.yml",
                &format!(
                    "images:\n  svc:\n    image_name: {host}/split/svc\nplatforms: [linux/amd64, linux/arm64]\ntags: [\"svc-{{commit}}\"]\ntag:\n  prefix: \"{PREFIX}\"\n"
                ),
            )
            .write(
                "images/svc/Dockerfile",
                &format!(
                    "FROM {host}/stackctl-local/debian-python:bookworm@{base}\nARG TARGETARCH\nCOPY arch-${{TARGETARCH}}.txt /www/arch.txt\nCMD [\"python3\", \"-m\", \"http.server\", \"8000\", \"--directory\", \"/www\"]\n"
                ),
            )
            .write("images/svc/arch-amd64.txt", "amd64\n")
            .write("images/svc/arch-arm64.txt", "arm64\n");
            repo.commit("a service");
            repo
        })
        .build()
    else {
        return;
    };
    let (bk, reg, repo) = (&s.nodes[0], &s.registry, &s.repo);
    let host = reg.host();
    let tls = bk.tcp_args();
    let full = format!("{host}/split/svc:{PREFIX}-main");
    let runs = tempfile::tempdir().unwrap();
    let mut dirs = vec![];
    for arch in ["amd64", "arm64"] {
        let out = runs.path().join(arch);
        std::fs::create_dir_all(&out).unwrap();
        let o = stackctl()
            .current_dir(&out)
            .args(["build", "--repo"])
            .arg(repo.path())
            .args(&tls)
            .args(["--branch", "main", "--platform", &format!("linux/{arch}")])
            .output()
            .unwrap();
        let stderr = text(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{stderr}\n{}", bk.log());
        let a = artifact(&out, &full);
        assert_eq!(a["awaiting_merge"], true, "{a:?}");
        assert_eq!(
            a["content_tags"][0]["state"].as_str(),
            Some("not-pushed"),
            "{a:?}"
        );
        dirs.push(out);
    }
    let merged = tempfile::tempdir().unwrap();
    let (code, _, stderr) = merge(
        repo.path(),
        merged.path(),
        &dirs.iter().map(|d| d.as_path()).collect::<Vec<_>>(),
    );
    assert_eq!(code, 0, "{stderr}");
    let a = artifact(merged.path(), &full);
    assert_eq!(a["success"], true, "{a:?}");
    let commit: String = repo.repo.head().unwrap().target().unwrap().to_string()[..7].into();
    let index = digest_in_registry(&full).unwrap();
    assert_eq!(a["digest"].as_str(), Some(index.as_str()));
    assert_eq!(
        digest_in_registry(&format!("{host}/split/svc:svc-{commit}")).as_deref(),
        Some(index.as_str()),
        "the content tag names the index"
    );
    assert_eq!(
        a["content_tags"][0]["state"].as_str(),
        Some("created"),
        "{a:?}"
    );
    remove_engine_images_of(&host);
}

// ---- The BuildKit runner: through a buildkitd, the basic tests, info commands and content
// tags run on the node; a Docker engine is contacted only when an image needs one.

/// A unix socket that records every connection made to it (and closes it at once): a
/// DOCKER_HOST nothing should talk to.
struct RecordingSocket {
    dir: tempfile::TempDir,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl RecordingSocket {
    fn start() -> RecordingSocket {
        let dir = tempfile::tempdir().unwrap();
        let listener =
            std::os::unix::net::UnixListener::bind(dir.path().join("docker.sock")).unwrap();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(s);
            }
        });
        RecordingSocket { dir, count }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    fn connections(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The example's base and analysis (no integration tests), with a content tag computed in
/// the image.
fn no_engine_spec(ex: &ExampleRepo) -> String {
    format!(
        "{}  analysis:\n    image_name: {}\n    depend_on: base\n    build_args:\n      BASE_IMAGE: {}\n    info_cmds: [PY_VER]\ntags: [\"py-{{python3 -c 'import sys; print(sys.version_info[0])'}}\"]\n",
        base_only_spec(ex).replace("tag:\n", "__TAG__").split("__TAG__").next().unwrap(),
        ex.image_name("analysis"),
        ex.image_name("base"),
    ) + &format!(
        "tag:\n  prefix: \"{PREFIX}\"\nall_info_cmds:\n  PY_VER: {{description: Python Version, command: python3 --version}}\n"
    )
}

#[test]
fn a_stack_through_buildkitd_is_tested_and_tagged_without_a_docker_engine() {
    let test = "a_stack_through_buildkitd_is_tested_and_tagged_without_a_docker_engine";
    let Some(s) = Stack::builder(test).buildkitd().example().build() else {
        return;
    };
    let (bk, ex, out) = (&s.nodes[0], &s.repo, &s.out);
    ex.change("spec.yml", &no_engine_spec(ex), "no integration tests");
    let docker = RecordingSocket::start();
    let host_env = docker.host();
    let (code, summary, stderr) = build_through(
        ex.path(),
        out.path(),
        &["--buildkit", bk.unix.as_str()],
        &["--branch", BRANCH, "--base", "HEAD"],
        &[("DOCKER_HOST", std::ffi::OsStr::new(&host_env))],
    );
    assert_eq!(code, 0, "{summary:#}\n{stderr}\n{}", bk.log());
    assert_eq!(
        docker.connections(),
        0,
        "the engine was contacted\n{stderr}"
    );
    let tag = format!("{PREFIX}-{BRANCH}");
    for k in ["base", "analysis"] {
        let full = format!("{}:{tag}", ex.image_name(k));
        let digest = report_digest(&summary, k);
        assert_eq!(digest_in_registry(&full).as_deref(), Some(digest.as_str()));
        let log = read(
            out.path()
                .join("logs")
                .join(format!("{}.basic-tests.log", safe(&full))),
        );
        assert!(log.contains("passed"), "{log}");
        let xml = read(
            out.path()
                .join("logs")
                .join(format!("{}.basic-tests.xml", safe(&full))),
        );
        assert!(xml.contains("<testcase"), "{xml}");
        let manifest = read(
            out.path()
                .join("manifests")
                .join(format!("{}.md", page(&full))),
        );
        assert!(manifest.contains("## Python Version"), "{manifest}");
        assert!(manifest.contains("Python 3."), "{manifest}");
        let t = content_tag(&summary, k, "py-3");
        assert_eq!(t["digest"], digest.as_str(), "{t}");
    }
    // `stackctl manifest` runs the info commands on the buildkitd too.
    let full = format!("{}:{tag}", ex.image_name("analysis"));
    let pages = tempfile::tempdir().unwrap();
    let o = stackctl()
        .env("DOCKER_HOST", &host_env)
        .args(["manifest", "--repo"])
        .arg(ex.path())
        .args([
            "analysis",
            "--ref",
            &full,
            "--buildkit",
            bk.unix.as_str(),
            "--out",
        ])
        .arg(pages.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let manifest = read(pages.path().join(format!("{}.md", page(&full))));
    assert!(manifest.contains("Python 3."), "{manifest}");
    assert_eq!(docker.connections(), 0, "manifest contacted the engine");
}

#[test]
fn a_failing_basic_test_through_buildkit_fails_its_image_and_gives_no_tag() {
    let test = "a_failing_basic_test_through_buildkit_fails_its_image_and_gives_no_tag";
    let Some(s) = Stack::builder(test).buildkitd().example().build() else {
        return;
    };
    let (bk, reg, ex, out) = (&s.nodes[0], &s.registry, &s.repo, &s.out);
    ex.change("spec.yml", &no_engine_spec(ex), "no integration tests");
    ex.change(
        "images/analysis/test/test_broken.py",
        "def test_broken():\n    assert 'apple' == 'pear', 'fruit mismatch in buildkit'\n",
        "a failing test",
    );
    let docker = RecordingSocket::start();
    let host_env = docker.host();
    let (code, summary, stderr) = build_through(
        ex.path(),
        out.path(),
        &["--buildkit", bk.unix.as_str()],
        &["--branch", BRANCH, "--base", "HEAD"],
        &[("DOCKER_HOST", std::ffi::OsStr::new(&host_env))],
    );
    assert_eq!(code, 1, "{summary:#}\n{stderr}");
    assert_eq!(docker.connections(), 0, "{stderr}");
    assert_eq!(status_of(&summary, "base"), "done", "{summary:#}");
    assert_eq!(status_of(&summary, "analysis"), "failed", "{summary:#}");
    assert!(
        tags_of(&reg.host(), "stackctl-example/analysis").is_empty(),
        "no tag for a failed image"
    );
    let full = format!("{}:{PREFIX}-{BRANCH}", ex.image_name("analysis"));
    let log = read(
        out.path()
            .join("logs")
            .join(format!("{}.basic-tests.log", safe(&full))),
    );
    assert!(log.contains("fruit mismatch in buildkit"), "{log}");
    let xml = read(
        out.path()
            .join("logs")
            .join(format!("{}.basic-tests.xml", safe(&full))),
    );
    assert!(xml.contains("fruit mismatch in buildkit"), "{xml}");
    // Its page's facts were gathered beside the tests, and no page is written.
    let page_file = out
        .path()
        .join("manifests")
        .join(format!("{}.md", page(&full)));
    assert!(!page_file.exists(), "a page for a failed image");
}

#[test]
fn integration_tests_without_an_engine_exit_2_before_building() {
    let test = "integration_tests_without_an_engine_exit_2_before_building";
    let Some(s) = Stack::builder(test).buildkitd().example().build() else {
        return;
    };
    let (bk, reg, ex, out) = (&s.nodes[0], &s.registry, &s.repo, &s.out);
    let gone = tempfile::tempdir().unwrap();
    let o = stackctl()
        .current_dir(out.path())
        .env(
            "DOCKER_HOST",
            format!("unix://{}", gone.path().join("docker.sock").display()),
        )
        .args(["build", "--repo"])
        .arg(ex.path())
        .args([
            "--buildkit",
            bk.unix.as_str(),
            "--branch",
            BRANCH,
            "--base",
            "HEAD",
        ])
        .output()
        .unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("service (integration tests)"), "{stderr}");
    assert!(
        !stderr.contains("analysis ("),
        "only the image that needs it: {stderr}"
    );
    for k in KEYS {
        assert!(
            tags_of(&reg.host(), &format!("stackctl-example/{k}")).is_empty(),
            "{k}: nothing is built or pushed"
        );
    }
    assert!(
        !out.path().join("logs").exists()
            || std::fs::read_dir(out.path().join("logs"))
                .unwrap()
                .all(|e| !e
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".build.log")),
        "no build started"
    );
}

/// The parent digest a child records: the manifest's annotation, else its config's label.
fn recorded_base(reference: &str) -> (Option<String>, Option<String>) {
    let key = stackctl::registry::BASE_DIGEST_KEY;
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let r = ImageRef::parse(reference).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt.block_on(client.get_manifest(&r)).unwrap().unwrap();
    let v: Value = serde_json::from_slice(&m.bytes).unwrap();
    let annotation = v["annotations"][key].as_str().map(str::to_string);
    let label = config_of(reference)["config"]["Labels"][key]
        .as_str()
        .map(str::to_string);
    (annotation, label)
}

/// Build the example stack through `buildkit`, then only its base again on the same tag
/// (its children still record the old base): `stackctl tag` refuses with exit 2 naming
/// each child, the parent, the recorded and the promoted digest, and moves nothing. Before
/// the rebuild the stack fits (a dry run passes). `annotated`: the record is an annotation
/// on the manifest (a buildkitd), else a config label (the engine's BuildKit v0.8).
fn a_rebuilt_base_alone_is_not_promoted(
    s: &Stack<ExampleRepo>,
    buildkit: &[&str],
    annotated: bool,
) {
    let (ex, out) = (&s.repo, &s.out);
    let tag = format!("{PREFIX}-{BRANCH}");
    let full = |k: &str| format!("{}:{tag}", ex.image_name(k));
    let stable = |k: &str| format!("{}:{PREFIX}-stable", ex.image_name(k));
    let args = [&["--branch", BRANCH, "--base", "HEAD"][..]].concat();
    let (code, summary, stderr) = build_through(ex.path(), out.path(), buildkit, &args, &[]);
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    let old_base = digest_in_registry(&full("base")).unwrap();
    let mut recorded_of = std::collections::HashMap::new();
    for k in ["analysis", "service"] {
        let (annotation, label) = recorded_base(&full(k));
        let recorded = if annotated { annotation } else { label };
        // The base's tag, or its one platform's manifest in the index it names.
        let (at, _) = image_manifest(&full("base"));
        let fits = [Some(old_base.clone()), at.digest.clone()];
        assert!(
            fits.contains(&recorded),
            "{k}: {recorded:?} is none of {fits:?}"
        );
        recorded_of.insert(k, recorded.unwrap());
    }
    let tag_cmd = |extra: &[&str]| {
        stackctl()
            .current_dir(out.path())
            .env("GITHUB_SHA", "0123456789abcdef")
            .args(["tag", &tag, "--spec"])
            .arg(ex.path().join("spec.yml"))
            .args(extra)
            .output()
            .unwrap()
    };
    let o = tag_cmd(&["--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    ex.append("images/base/stack-info", "# rebuilt alone", "base: rebuilt");
    // Against the commit before (the base's files changed), only the base may rebuild.
    let only = ["--branch", BRANCH, "--only", "base"];
    let (code, summary, stderr) = build_through(ex.path(), out.path(), buildkit, &only, &[]);
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    let new_base = digest_in_registry(&full("base")).unwrap();
    assert_ne!(new_base, old_base);

    let o = tag_cmd(&[]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for k in ["analysis", "service"] {
        assert!(
            err.contains(&format!(
                "{} was built FROM {}, but {} is promoted as {new_base}",
                full(k),
                recorded_of[k],
                full("base")
            )),
            "{k}: {err}"
        );
    }
    for k in ["base", "analysis", "service"] {
        assert_eq!(digest_in_registry(&stable(k)), None, "{k}: nothing moved");
    }
}

#[test]
fn tag_refuses_a_base_rebuilt_alone_through_a_buildkitd() {
    let Some(s) = Stack::builder("tag_refuses_a_base_rebuilt_alone_through_a_buildkitd")
        .buildkitd()
        .example()
        .build()
    else {
        return;
    };
    let tls = s.nodes[0].tcp_args();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    a_rebuilt_base_alone_is_not_promoted(&s, &tls, true);
}

#[test]
fn tag_refuses_a_base_rebuilt_alone_through_the_engine() {
    let s = Stack::builder("tag_refuses_a_base_rebuilt_alone_through_the_engine")
        .example()
        .build()
        .unwrap();
    a_rebuilt_base_alone_is_not_promoted(
        &s,
        &["--buildkit", "docker-unix:///var/run/docker.sock"],
        false,
    );
}

/// Every cache record of the buildkitd at `unix`, as `buildctl du` lists them.
fn cache_records(unix: &str) -> Vec<bollard_buildkit_proto::moby::buildkit::v1::UsageRecord> {
    use stackctl::buildkit::{Address, TlsFiles};
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let addr = Address::parse(unix, TlsFiles::default()).unwrap();
        let client = stackctl::buildkit::connect(&addr).await.unwrap();
        let req = bollard_buildkit_proto::moby::buildkit::v1::DiskUsageRequest::default();
        client
            .control()
            .disk_usage(req)
            .await
            .unwrap()
            .into_inner()
            .record
    })
}

#[test]
fn prune_on_a_buildkitd_keeps_what_the_run_used() {
    let test = "prune_on_a_buildkitd_keeps_what_the_run_used";
    let Some(s) = Stack::builder(test).buildkitd().example().build() else {
        return;
    };
    let (bk, ex, out) = (&s.nodes[0], &s.repo, &s.out);
    ex.change("spec.yml", &no_engine_spec(ex), "no integration tests");
    let bk_args = ["--buildkit", bk.unix.as_str()];
    let (code, summary, stderr) = build_through(
        ex.path(),
        out.path(),
        &bk_args,
        &["--branch", BRANCH, "--base", "HEAD"],
        &[],
    );
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    // A second run: only analysis rebuilds (FROM the base's layers, in the node's cache),
    // and prunes after it.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let spec = no_engine_spec(ex).replace(
        "info_cmds: [PY_VER]\n",
        "info_cmds: [PY_VER]\n    prune: true\n",
    );
    ex.change("spec.yml", &spec, "prune after analysis");
    ex.append(
        "images/analysis/stackstats.py",
        "# changed",
        "change analysis",
    );
    let second = chrono::Utc::now();
    let before = cache_records(&bk.unix);
    let (code, summary, stderr) = build_through(
        ex.path(),
        out.path(),
        &bk_args,
        &["--branch", BRANCH, "--base", "HEAD~1"],
        &[],
    );
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    assert_eq!(status_of(&summary, "base"), "up-to-date", "{summary:#}");
    let reclaimed = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "analysis")
        .unwrap()["report"]["reclaimed_bytes"]
        .clone();
    assert!(reclaimed.is_u64(), "no prune ran: {summary:#}");
    let after = cache_records(&bk.unix);
    // Older records this run did not use are gone...
    let stale: Vec<_> = after
        .iter()
        .filter(|r| {
            !r.in_use && r.last_used_at.as_ref().map_or(0, |t| t.seconds) < second.timestamp() - 1
        })
        .map(|r| &r.description)
        .collect();
    assert!(
        stale.is_empty(),
        "records the run did not use were kept: {stale:?}"
    );
    assert!(
        before.iter().any(|r| !after.iter().any(|a| a.id == r.id)),
        "the prune dropped nothing"
    );
    // ...and those of the first run that the second one used (the base) are kept.
    let kept = after
        .iter()
        .filter(|r| r.created_at.as_ref().map_or(0, |t| t.seconds) < second.timestamp())
        .count();
    assert!(kept > 0, "the base's records were pruned: {after:#?}");
}

/// SIGINT while the tag PUT is in flight: the proxy forwards the PUT (it lands) and holds
/// the registry's answer. The run must read the tag back and report what the registry
/// holds: `pushed: true` with the digest the tag names, never "the push was stopped".
#[test]
fn an_interrupted_tag_put_that_landed_is_reported_pushed() {
    use support::proxy::{Proxy, Rule};
    let test = "an_interrupted_tag_put_that_landed_is_reported_pushed";
    let Some(s) = Stack::builder(test)
        .buildkitd()
        .repo(|host, _| {
            let port: u16 = host.rsplit(':').next().unwrap().parse().unwrap();
            let proxy = Proxy::with_rules(port, vec![]);
            let repo = TestRepo::new("main");
            repo.write(
                "spec.yml",
                &format!(
                    "images:\n  solo:\n    image_name: {}/i7/solo\ntag:\n  prefix: \"{PREFIX}\"\n",
                    proxy.host()
                ),
            )
            .write(
                "images/solo/Dockerfile",
                "FROM scratch\nCOPY a.txt /a.txt\n",
            )
            .write("images/solo/a.txt", "a\n");
            repo.commit("one image");
            (repo, proxy)
        })
        .build()
    else {
        return;
    };
    let (bk, reg, (repo, proxy), out) = (&s.nodes[0], &s.registry, &s.repo, &s.out);
    let put = format!("i7/solo/manifests/{PREFIX}-{BRANCH}");
    proxy.set_rules(vec![Rule::HoldAnswer {
        path: put.clone(),
        hold: std::time::Duration::from_secs(60),
    }]);
    let tls = bk.tcp_args();
    let child = stackctl()
        .current_dir(out.path())
        .args(["build", "--json", "--repo"])
        .arg(repo.path())
        .args(&tls)
        .args(["--branch", BRANCH, "--base", "HEAD"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    while proxy.forwarded_to(&put) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no tag PUT\n{}",
            bk.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let sent = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(
        sent.elapsed() < std::time::Duration::from_secs(20),
        "{stderr}"
    );
    // What the registry holds, read directly.
    let direct = format!("{}/i7/solo:{PREFIX}-{BRANCH}", reg.host());
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let held = rt
        .block_on(client.head_manifest(&ImageRef::parse(&direct).unwrap()))
        .unwrap()
        .expect("the PUT landed")
        .digest;
    let yaml = artifact(
        out.path(),
        &format!("{}/i7/solo:{PREFIX}-{BRANCH}", proxy.host()),
    );
    assert_eq!(
        yaml["pushed"],
        serde_yaml::Value::Bool(true),
        "{yaml:?}\n{stderr}"
    );
    assert_eq!(yaml["digest"].as_str(), Some(held.as_str()), "{yaml:?}");
    let message = yaml["message"].as_str().unwrap();
    assert!(message.contains("the tag was written"), "{message}");
    assert!(!message.contains("push was stopped"), "{message}");
}
