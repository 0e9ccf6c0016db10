//! External bases, end to end through the engine's BuildKit: a root built FROM an image of
//! another registry records that image's digest (in its artifact and in the image); the
//! plan then looks each base up once, rebuilds the root and its subtree when the base's tag
//! moved, and warns and goes on when the base's registry cannot be reached.

use crate::support;

use serde_json::Value;
use stackctl::credentials::CredentialStore;
use stackctl::registry::{ClientOptions, ImageRef, RegistryClient};
use support::git_repo::TestRepo;
use support::{stackctl, text, Registry, RegistryAuth};

const TAG: &str = "2026.3-dev";

/// root FROM <base>/lib/busybox:1 (and COPY --from it), child FROM root, other FROM
/// <base>/lib/busybox:2; the images live in `stack`.
fn stack_repo(stack: &str, base: &str) -> TestRepo {
    let r = TestRepo::new("dev");
    r.write(
        "spec.yml",
        &format!(
            "root: root\nimages:\n  root:\n    image_name: {stack}/s/root\n    build_args: {{BASE_IMAGE: {base}/lib/busybox}}\n  child:\n    image_name: {stack}/s/child\n    depend_on: root\n    build_args: {{BASE_IMAGE: {stack}/s/root}}\n  other:\n    image_name: {stack}/s/other\n    build_args: {{BASE_IMAGE: {base}/lib/busybox:2}}\ntag: {{prefix: \"2026.3\"}}\n"
        ),
    );
    r.write(
        "images/root/Dockerfile",
        &format!("ARG BASE_IMAGE\nARG BASE_VERSION=1\nFROM ${{BASE_IMAGE}}:${{BASE_VERSION}} AS first\nRUN echo root > /root.txt\nFROM first\nCOPY --from={base}/lib/busybox:1 /etc/passwd /copied\n"),
    );
    r.write(
        "images/child/Dockerfile",
        "ARG BASE_IMAGE\nARG BASE_TAG\nFROM ${BASE_IMAGE}:${BASE_TAG}\nRUN echo child > /child.txt\n",
    );
    r.write(
        "images/other/Dockerfile",
        "ARG BASE_IMAGE\nFROM $BASE_IMAGE\nRUN echo other > /other.txt\n",
    );
    r.commit("initial");
    r
}

fn plan(repo: &TestRepo, extra: &[&str]) -> (Value, String) {
    let out = stackctl()
        .args(["plan", "--json", "--branch", "dev", "--repo"])
        .arg(repo.path())
        .args(extra)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    (serde_json::from_slice(&out.stdout).unwrap(), err)
}

fn image<'a>(plan: &'a Value, key: &str) -> &'a Value {
    plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == key)
        .unwrap()
}

fn rebuilt(plan: &Value) -> Vec<String> {
    plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["rebuild"] == true)
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

/// HEADs of `repo:tag`'s manifest in the registry's access log.
fn heads(reg: &Registry, repo: &str, tag: &str) -> usize {
    reg.log()
        .matches(&format!("\"HEAD /v2/{repo}/manifests/{tag} "))
        .count()
}

fn short(d: &str) -> String {
    format!("{}\u{2026}", &d[..7 + 12])
}

#[test]
fn a_moved_base_rebuilds_its_subtree_and_is_looked_up_once() {
    scenario(&["--buildkit", "docker-unix:///var/run/docker.sock"]);
}

/// The same through a buildkitd, where the record is the manifest's annotations.
#[test]
fn a_moved_base_is_seen_through_a_buildkitds_annotations() {
    let Some(node) = support::buildkitd::Buildkitd::start("base_check_buildkitd") else {
        return;
    };
    let args = node.tcp_args();
    scenario(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Build the stack through `buildkit` (the `--buildkit` arguments), then move its base.
fn scenario(buildkit: &[&str]) {
    let stack = Registry::start(RegistryAuth::None);
    let base = Registry::start(RegistryAuth::None);
    let (sh, bh) = (stack.host(), base.host());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let digest = |r: &str| {
        rt.block_on(client.head_manifest(&ImageRef::parse(r).unwrap()))
            .unwrap()
            .unwrap()
            .digest
    };
    let local = rt.block_on(support::images::busybox_image(
        "stackctl-test/busybox",
        "static",
    ));
    for t in ["1", "2"] {
        rt.block_on(support::images::push(&local, &bh, "lib/busybox", t, true));
    }
    let old = digest(&format!("{bh}/lib/busybox:1"));
    let repo = stack_repo(&sh, &bh);

    let out = tempfile::tempdir().unwrap();
    let o = stackctl()
        .current_dir(out.path())
        .args(["build", "--json", "--branch", "dev", "--repo"])
        .arg(repo.path())
        .args(buildkit)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    // Recorded in the artifact, and in the image (annotations, or labels through the engine).
    let root = format!("{sh}/s/root:{TAG}");
    let artifact: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(out.path().join("artifacts").join(format!(
            "{}.yaml",
            stackctl::report::names::safe_name(&root)
        )))
        .unwrap(),
    )
    .unwrap();
    let name = format!("{bh}/lib/busybox:1");
    assert_eq!(artifact["bases"][0]["name"].as_str(), Some(name.as_str()));
    assert_eq!(artifact["bases"][0]["digest"].as_str(), Some(old.as_str()));
    assert!(
        artifact["bases"][1].is_null(),
        "one base, once: {artifact:?}"
    );
    let recorded = rt
        .block_on(stackctl::bases::recorded(
            &client,
            &ImageRef::parse(&root).unwrap(),
        ))
        .unwrap()
        .unwrap();
    assert_eq!(
        recorded,
        vec![stackctl::bases::Base {
            name: name.clone(),
            digest: old.clone()
        }]
    );
    let child = rt
        .block_on(stackctl::bases::recorded(
            &client,
            &ImageRef::parse(&format!("{sh}/s/child:{TAG}")).unwrap(),
        ))
        .unwrap();
    // The stack's own parent is no external base, and the child's (empty) list replaces
    // the one its config would inherit from the root's labels.
    assert_eq!(child, Some(vec![]));

    // A commit outside images/: nothing rebuilds, one HEAD per base reached its registry.
    repo.write("README.md", "docs\n");
    repo.commit("docs");
    let before = [
        heads(&base, "lib/busybox", "1"),
        heads(&base, "lib/busybox", "2"),
    ];
    let (p, _) = plan(&repo, &[]);
    assert_eq!(p["base_check"], "done");
    assert!(rebuilt(&p).is_empty(), "{p}");
    let after = [
        heads(&base, "lib/busybox", "1"),
        heads(&base, "lib/busybox", "2"),
    ];
    assert_eq!([after[0] - before[0], after[1] - before[1]], [1, 1]);

    // The base is pushed again, changed, under the same tag.
    let changed = rt.block_on(support::images::build(
        &format!("stackctl-test/busybox-changed:{}", base.port),
        &format!("FROM {local}\nCOPY fix /fix\n"),
        &[("fix", "security fix\n")],
    ));
    rt.block_on(support::images::push(
        &changed,
        &bh,
        "lib/busybox",
        "1",
        true,
    ));
    let new = digest(&name);
    assert_ne!(new, old);
    let (p, _) = plan(&repo, &[]);
    assert_eq!(rebuilt(&p), ["root", "child"], "{p}");
    let reason = format!(
        "base {name} moved: {} \u{2192} {}",
        short(&old),
        short(&new)
    );
    assert_eq!(image(&p, "root")["reasons"][0], reason.as_str(), "{p}");
    assert_eq!(
        image(&p, "root")["moved_bases"][0]["recorded"],
        old.as_str()
    );
    assert_eq!(image(&p, "root")["moved_bases"][0]["current"], new.as_str());
    assert_eq!(image(&p, "child")["reasons"][0], "parent rebuilds (root)");
    let o = stackctl()
        .args(["plan", "--branch", "dev", "--repo"])
        .arg(repo.path())
        .output()
        .unwrap();
    assert!(text(&o.stdout).contains(&reason), "{}", text(&o.stdout));

    // A scheduled build rebuilds that subtree only; the next scheduled run has nothing to do.
    let build = |out: &std::path::Path| {
        let o = stackctl()
            .current_dir(out)
            .args(["build", "--event", "schedule", "--branch", "dev", "--repo"])
            .arg(repo.path())
            .args(buildkit)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        std::fs::read_to_string(out.join("artifacts/IMAGES_BUILT")).unwrap_or_default()
    };
    let scheduled = tempfile::tempdir().unwrap();
    let built = build(scheduled.path());
    let full = |k: &str| format!("{sh}/s/{k}:{TAG}");
    assert_eq!(
        built.lines().collect::<Vec<_>>(),
        [full("root"), full("child")]
    );
    let (p, _) = plan(&repo, &["--event", "schedule"]);
    assert!(rebuilt(&p).is_empty(), "{p}");
    let again = tempfile::tempdir().unwrap();
    assert_eq!(build(again.path()).trim(), "", "a quiet no-op");

    let (p, _) = plan(&repo, &["--no-base-check"]);
    assert_eq!(p["base_check"], "skipped");
    assert!(rebuilt(&p).is_empty(), "{p}");

    // The base's registry goes away: a warning naming it, and the plan goes on.
    drop(base);
    let (p, err) = plan(&repo, &["--registry-timeout", "30s"]);
    assert!(rebuilt(&p).is_empty(), "{p}");
    assert!(err.contains(&bh) && err.contains("not checked"), "{err}");
    assert!(
        p["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains(&bh)),
        "{p}"
    );
    for r in [name.clone(), format!("{bh}/lib/busybox:2"), changed] {
        rt.block_on(support::images::remove_tag(&r));
    }
}
