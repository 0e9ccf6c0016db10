//! `stackctl plan` with its registry check, against a real Distribution registry:
//! an image whose tag is missing rebuilds, and so do its descendants.

use crate::support;

use stackctl::credentials::CredentialStore;
use stackctl::registry::{ClientOptions, ImageRef, RegistryClient};
use support::git_repo::TestRepo;
use support::hand_made as images;
use support::{stackctl, text};
use support::{Registry, RegistryAuth};

/// A stack of base -> {left, right}, right -> leaf, with images in `host`.
fn stack_repo(host: &str) -> TestRepo {
    let r = TestRepo::new("dev");
    r.write(
        "spec.yml",
        &format!(
            "root: base\nimages:\n  base: {{image_name: {host}/s/base}}\n  left: {{image_name: {host}/s/left, depend_on: base}}\n  right: {{image_name: {host}/s/right, depend_on: base}}\n  leaf: {{image_name: {host}/s/leaf, depend_on: right}}\ntag: {{prefix: \"2026.3\"}}\n"
        ),
    );
    for k in ["base", "left", "right", "leaf"] {
        r.write(&format!("images/{k}/Dockerfile"), "FROM scratch\n");
    }
    r.commit("initial");
    r.write("README.md", "docs only\n");
    r.commit("docs");
    r
}

fn plan_json(repo: &TestRepo, extra: &[&str]) -> serde_json::Value {
    let out = stackctl()
        .args(["plan", "--json", "--repo"])
        .arg(repo.path())
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rebuilt(plan: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["rebuild"].as_bool().unwrap())
        .map(|i| {
            (
                i["key"].as_str().unwrap().to_string(),
                i["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn missing_tags_rebuild_with_their_descendants() {
    let reg = Registry::start(RegistryAuth::None);
    let repo = stack_repo(&reg.host());
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // base and left exist under the branch tag; right (and so leaf) is missing.
    for k in ["base", "left", "leaf"] {
        let r = ImageRef::parse(&format!("{}/s/{k}:2026.3-dev", reg.host())).unwrap();
        rt.block_on(images::push_kind(&client, &r, images::Kind::Oci, k));
    }

    // With --no-registry, a docs-only commit rebuilds nothing.
    let p = plan_json(&repo, &["--no-registry"]);
    assert_eq!(p["registry_check"], "skipped");
    assert!(rebuilt(&p).is_empty(), "{p}");

    let p = plan_json(&repo, &[]);
    assert_eq!(p["registry_check"], "done");
    let r = rebuilt(&p);
    assert_eq!(
        r,
        vec![
            (
                "right".to_string(),
                vec!["tag missing from registry".to_string()]
            ),
            (
                "leaf".to_string(),
                vec!["parent rebuilds (right)".to_string()]
            ),
        ],
        "{p}"
    );
}

#[test]
fn unreachable_registry_is_a_clear_error() {
    // A port nobody listens on: the check fails, exit 2, naming the reference.
    let port = support::free_port();
    let repo = stack_repo(&format!("127.0.0.1:{port}"));
    let out = stackctl()
        .args(["plan", "--repo"])
        .arg(repo.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("127.0.0.1:{port}/s/base:2026.3-dev")),
        "{err}"
    );
}
