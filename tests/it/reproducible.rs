//! Reproducible builds through buildkitd: one commit built with `--no-cache` on two fresh
//! buildkitd roots gives the same platform manifests, and so does a later commit that
//! changes nothing under `images/`; such a rebuild is reported "rebuilt, unchanged" and
//! leaves the tags, the manifest pages and the history as they were.

use crate::support;

use serde_json::Value;
use stackctl::credentials::CredentialStore;
use stackctl::registry::{ClientOptions, ImageRef, RegistryClient};
use std::path::Path;
use support::buildkitd::Buildkitd;
use support::e2e::Stack;
use support::git_repo::TestRepo;
use support::{stackctl, text};

const TAG: &str = "2026.3-main";

/// root FROM a busybox of the stack's registry, child FROM root: their RUNs write files,
/// whose times differ from build to build unless rewritten.
fn stack_repo(host: &str) -> TestRepo {
    let r = TestRepo::new("main");
    r.write(
        "spec.yml",
        &format!(
            "root: root\nimages:\n  root:\n    image_name: {host}/s/root\n  child:\n    image_name: {host}/s/child\n    depend_on: root\n    build_args: {{BASE_IMAGE: {host}/s/root}}\ntag: {{prefix: \"2026.3\"}}\n"
        ),
    );
    r.write(
        "images/root/Dockerfile",
        &format!("FROM {host}/lib/busybox:1\nRUN mkdir /made && echo root > /made/root.txt\n"),
    );
    r.write(
        "images/child/Dockerfile",
        "ARG BASE_IMAGE\nARG BASE_TAG\nFROM ${BASE_IMAGE}:${BASE_TAG}\nRUN echo child > /child.txt\nCOPY hello.txt /hello.txt\n",
    );
    r.write("images/child/hello.txt", "hello\n");
    r.commit_at("initial", 1_700_000_000);
    r
}

/// `stackctl build` of `repo` on `node`, with the run's files in `out`: exit code, stdout,
/// stderr.
fn build(repo: &Path, out: &Path, node: &Buildkitd, extra: &[&str]) -> (i32, String, String) {
    let o = stackctl()
        .current_dir(out)
        .args(["build", "--branch", "main", "--base", "HEAD", "--repo"])
        .arg(repo)
        .args(node.tcp_args())
        .args(extra)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout),
        text(&o.stderr),
    )
}

fn json_build(repo: &Path, out: &Path, node: &Buildkitd, extra: &[&str]) -> Value {
    let (code, stdout, stderr) = build(repo, out, node, &[&["--json"], extra].concat());
    assert_eq!(code, 0, "{stdout}\n{stderr}\n{}", node.log());
    serde_json::from_str(&stdout).unwrap()
}

fn image<'a>(summary: &'a Value, key: &str) -> &'a Value {
    summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {summary:#}"))
}

/// What `reference` names in the registry: its digest, and its platform manifests
/// (attestations left out), read with a client of its own.
fn platform_manifests(reference: &str) -> (String, Vec<String>) {
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let r = ImageRef::parse(reference).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt
        .block_on(client.get_manifest(&r))
        .unwrap()
        .unwrap_or_else(|| panic!("{reference} is not in the registry"));
    let v: Value = serde_json::from_slice(&m.bytes).unwrap();
    let Some(entries) = v["manifests"].as_array() else {
        return (m.digest.clone(), vec![m.digest]);
    };
    let mut out: Vec<String> = entries
        .iter()
        .filter(|e| {
            e["annotations"]["vnd.docker.reference.type"] != "attestation-manifest"
                && e["platform"]["os"] != "unknown"
        })
        .map(|e| e["digest"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    (m.digest, out)
}

fn dump(reference: &str) {
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let r = ImageRef::parse(reference).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt.block_on(client.get_manifest(&r)).unwrap().unwrap();
    eprintln!("== {reference}\n{}", String::from_utf8_lossy(&m.bytes));
    let v: Value = serde_json::from_slice(&m.bytes).unwrap();
    let mut cfgs = vec![v["config"]["digest"].as_str().map(str::to_string)];
    for e in v["manifests"].as_array().into_iter().flatten() {
        let sub = ImageRef::parse(&format!(
            "{}@{}",
            reference.split('@').next().unwrap(),
            e["digest"].as_str().unwrap()
        ))
        .unwrap();
        let m = rt.block_on(client.get_manifest(&sub)).unwrap().unwrap();
        eprintln!("-- {}\n{}", e["digest"], String::from_utf8_lossy(&m.bytes));
        let v: Value = serde_json::from_slice(&m.bytes).unwrap();
        cfgs.push(v["config"]["digest"].as_str().map(str::to_string));
    }
    let host = reference.split('/').next().unwrap();
    let repo = reference
        .split('@')
        .next()
        .unwrap()
        .split_once('/')
        .unwrap()
        .1;
    for c in cfgs.into_iter().flatten() {
        let body = rt.block_on(async {
            support::http()
                .get(format!("http://{host}/v2/{repo}/blobs/{c}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        eprintln!("-- config {c}\n{body}");
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}

/// The rebuild of the run in `summary` was found unchanged: reported so, its tag still
/// names `tagged`, and what it pushed by digest has the same platform manifests.
fn assert_unchanged(summary: &Value, key: &str, full: &str, tagged: &(String, Vec<String>)) {
    let i = image(summary, key);
    if i["status"] != "rebuilt, unchanged" {
        let repository = full.rsplit_once(':').unwrap().0;
        for d in [i["report"]["digest"].as_str().unwrap(), tagged.0.as_str()] {
            dump(&format!("{repository}@{d}"));
        }
    }
    assert_eq!(i["status"], "rebuilt, unchanged", "{i:#}");
    let report = &i["report"];
    assert_eq!(report["unchanged"], true, "{report:#}");
    assert_eq!(report["pushed"], false, "{report:#}");
    assert_eq!(report["digest"], tagged.0.as_str(), "{report:#}");
    // The tests still ran.
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"basic-tests"), "{steps:?}");
    let rebuilt = report["rebuilt_digest"].as_str().unwrap();
    let repository = full.rsplit_once(':').unwrap().0;
    let again = platform_manifests(&format!("{repository}@{rebuilt}"));
    assert_eq!(again.1, tagged.1, "{key}: the rebuild's platform manifests");
    assert_eq!(&platform_manifests(full), tagged, "{key}: its tag moved");
}

#[test]
fn one_commit_on_two_fresh_buildkitds_gives_the_same_platform_manifests() {
    let test = "one_commit_on_two_fresh_buildkitds_gives_the_same_platform_manifests";
    let Some(s) = Stack::builder(test).buildkitds(2).build() else {
        return;
    };
    let host = s.registry.host();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let local = rt.block_on(support::images::busybox_image(
        "stackctl-test/busybox",
        "static",
    ));
    rt.block_on(support::images::push(
        &local,
        &host,
        "lib/busybox",
        "1",
        true,
    ));
    let repo = stack_repo(&host);
    let full = |k: &str| format!("{host}/s/{k}:{TAG}");
    let (a, b) = (&s.nodes[0], &s.nodes[1]);

    // 1. Built on a fresh root, with no cache.
    let out1 = tempfile::tempdir().unwrap();
    let first = json_build(repo.path(), out1.path(), a, &["--no-cache"]);
    let mut tagged = std::collections::HashMap::new();
    for k in ["root", "child"] {
        assert_eq!(image(&first, k)["status"], "done", "{first:#}");
        tagged.insert(k, platform_manifests(&full(k)));
    }
    let pages1 = files_under(&out1.path().join("manifests"));
    assert_eq!(pages1.len(), 2, "{pages1:?}");
    assert_eq!(files_under(&out1.path().join("wiki/history")).len(), 1);

    // 2. The same commit on the other fresh root: the same platform manifests, so the
    // tags stay, and no page nor history row is written.
    let out2 = tempfile::tempdir().unwrap();
    let second = json_build(
        repo.path(),
        out2.path(),
        b,
        &["--no-cache", "--full-rebuild"],
    );
    for k in ["root", "child"] {
        assert_unchanged(&second, k, &full(k), &tagged[k]);
    }
    assert!(
        files_under(&out2.path().join("manifests")).is_empty(),
        "no new page"
    );
    assert!(
        files_under(&out2.path().join("wiki/history")).is_empty(),
        "no history row"
    );

    // 3. A later commit that changes nothing under images/ (a later commit time): the
    // images' inputs last changed with the first commit, so the digests stay; the text
    // table says so.
    repo.write("README.md", "docs\n");
    repo.commit_at("docs", 1_800_000_000);
    let out3 = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = build(
        repo.path(),
        out3.path(),
        a,
        &["--no-cache", "--full-rebuild", "--format", "text"],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(
        stdout.matches("rebuilt, unchanged").count(),
        2,
        "{stdout}\n{stderr}"
    );
    for k in ["root", "child"] {
        assert_eq!(
            platform_manifests(&full(k)),
            tagged[k],
            "{k}: its tag moved"
        );
    }
    assert!(files_under(&out3.path().join("manifests")).is_empty());
    assert!(files_under(&out3.path().join("wiki/history")).is_empty());

    // 4. A change to the root's folder changes both images: new digests, tagged.
    repo.write("images/root/extra.txt", "x\n");
    repo.commit_at("root changes", 1_800_000_100);
    let out4 = tempfile::tempdir().unwrap();
    let fourth = json_build(repo.path(), out4.path(), a, &[]);
    for k in ["root", "child"] {
        assert_eq!(image(&fourth, k)["status"], "done", "{fourth:#}");
        assert_ne!(platform_manifests(&full(k)).1, tagged[k].1, "{k}");
    }
}

/// The engine's BuildKit (v0.8) cannot rewrite timestamps: the run says so once, for all its
/// images, and builds them as before.
#[test]
fn the_engines_buildkit_warns_once_and_builds_without() {
    let registry = support::Registry::start(support::RegistryAuth::None);
    let host = registry.host();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let local = rt.block_on(support::images::busybox_image(
        "stackctl-test/busybox",
        "static",
    ));
    rt.block_on(support::images::push(
        &local,
        &host,
        "lib/busybox",
        "1",
        true,
    ));
    let repo = stack_repo(&host);
    let out = tempfile::tempdir().unwrap();
    let o = stackctl()
        .current_dir(out.path())
        .args(["build", "--json", "--branch", "main", "--repo"])
        .arg(repo.path())
        .args(["--buildkit", "docker-unix:///var/run/docker.sock"])
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    for k in ["root", "child"] {
        assert_eq!(image(&summary, k)["status"], "done", "{summary:#}");
    }
    assert_eq!(
        stderr.matches("cannot rewrite timestamps").count(),
        1,
        "{stderr}"
    );
}
