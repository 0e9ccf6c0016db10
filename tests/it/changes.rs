//! What changed since the image a build replaces, through a real buildkitd and registry:
//! an image that installs a local `.deb` and local wheels (no network in the build) is
//! built, promoted to `2026.3-stable`, then rebuilt with other packages. The rebuild's
//! comparison lists exactly the packages added, removed and upgraded, its sizes are the
//! manifests', the old inventory is read from the registry without a layer GET, a size
//! budget stops the tag (or warns), and `stackctl diff` gives the build's figures.

use crate::support;

use serde_json::Value;
use std::path::Path;
use support::buildkitd::Buildkitd;
use support::e2e::Stack;
use support::git_repo::TestRepo;
use support::packages::{make_deb, make_wheel, SITE_PACKAGES};
use support::{stackctl, text};

const TAG: &str = "2026.3-main";
const STABLE: &str = "2026.3-stable";

/// The image's packages: `.deb`s and wheels as (name, version).
struct Packages<'a> {
    debs: &'a [(&'a str, &'a str)],
    wheels: &'a [(&'a str, &'a str)],
}

/// The spec of one image `kid` FROM `base`, with `extra` YAML under the image.
fn spec(host: &str, base: &str, extra: &str) -> String {
    format!(
        "images:\n  kid:\n    image_name: {host}/ch/kid\n    build_args: {{BASE: \"{base}\"}}\n{extra}tag: {{prefix: \"2026.3\"}}\n"
    )
}

/// Write the image's folder with these packages (the old ones removed) and commit.
fn write_image(r: &TestRepo, p: &Packages, msg: &str) {
    let dir = r.path().join("images/kid/pkgs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (n, v) in p.debs {
        make_deb(&dir, n, v);
    }
    for (n, v) in p.wheels {
        make_wheel(&dir, n, v);
    }
    // Only the package files stay in the context (dpkg-deb's folders go).
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let keep = path.extension().is_some_and(|x| x == "deb" || x == "whl");
        if !keep {
            let _ = std::fs::remove_dir_all(&path);
            let _ = std::fs::remove_file(&path);
        }
    }
    r.write(
        "images/kid/Dockerfile",
        &format!(
            "ARG BASE\nFROM ${{BASE}}\nCOPY pkgs/ /tmp/pkgs/\nRUN dpkg -i /tmp/pkgs/*.deb && \
             for w in /tmp/pkgs/*.whl; do python3 -m zipfile -e \"$w\" {SITE_PACKAGES}; done && \
             rm -rf /tmp/pkgs\n"
        ),
    );
    r.write(
        "images/kid/test/test_kid.py",
        "def test_python():\n    import sys\n    assert sys.version_info >= (3, 9)\n",
    );
    r.commit(msg);
}

fn build(repo: &Path, out: &Path, node: &Buildkitd) -> (i32, Value, String) {
    let o = stackctl()
        .current_dir(out)
        .args([
            "build",
            "--branch",
            "main",
            "--full-rebuild",
            "--json",
            "--repo",
        ])
        .arg(repo)
        .args(node.tcp_args())
        .output()
        .unwrap();
    let stdout = text(&o.stdout);
    let doc = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", text(&o.stderr)));
    (o.status.code().unwrap_or(-1), doc, text(&o.stderr))
}

fn report(doc: &Value) -> &Value {
    &doc["images"][0]["report"]
}

/// (manager, name[, version...]) of a package list in a comparison.
fn names(list: &Value, fields: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            fields
                .iter()
                .map(|f| p[*f].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    out.sort();
    out
}

/// What `reference` names, read over plain HTTP: its (first) platform manifest's layers.
fn layers(host: &str, repository: &str, reference: &str) -> Vec<(String, u64)> {
    platform_layers(host, repository, reference, None)
}

/// The layers of `reference`'s manifest for `arch` (None: the first platform).
fn platform_layers(
    host: &str,
    repository: &str,
    reference: &str,
    arch: Option<&str>,
) -> Vec<(String, u64)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = support::http();
        let accept =
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json";
        let get = |r: String| {
            let http = http.clone();
            async move {
                http.get(format!("http://{host}/v2/{repository}/manifests/{r}"))
                    .header("accept", accept)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            }
        };
        let mut m = get(reference.to_string()).await;
        if let Some(entries) = m["manifests"].as_array() {
            let image = entries
                .iter()
                .find(|e| {
                    e["platform"]["os"] != "unknown"
                        && arch.is_none_or(|a| e["platform"]["architecture"] == a)
                })
                .unwrap()
                .clone();
            m = get(image["digest"].as_str().unwrap().to_string()).await;
        }
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["digest"].as_str().unwrap().to_string(),
                    l["size"].as_u64().unwrap(),
                )
            })
            .collect()
    })
}

#[test]
fn a_rebuilt_image_lists_what_changed_since_its_stable_tag() {
    let Some(Stack {
        nodes,
        registry,
        repo: (r, host, base),
        out,
        ..
    }) = Stack::builder("changes_since_stable")
        .buildkitd()
        .python()
        .repo(|host, base| (TestRepo::new("main"), host.to_string(), base.to_string()))
        .build()
    else {
        return;
    };
    let node = &nodes[0];
    r.write("spec.yml", &spec(&host, &base, ""));
    let old = Packages {
        debs: &[("alpha", "1.0")],
        wheels: &[("demo", "1.0"), ("gone", "1.0")],
    };
    write_image(&r, &old, "first");
    let (code, doc, stderr) = build(r.path(), out.path(), node);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    let first = report(&doc);
    assert_eq!(first["changes"]["old"], Value::Null, "{first:#}");
    assert_eq!(
        first["inventories"].as_array().map(Vec::len),
        Some(1),
        "{first:#}"
    );
    let kid = format!("{host}/ch/kid");
    let o = stackctl()
        .args(["retag", &format!("{kid}:{TAG}"), STABLE])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stable_layers = layers(&host, "ch/kid", STABLE);

    // Other packages, and a budget the image cannot keep.
    let new = Packages {
        debs: &[("alpha", "1.1"), ("beta", "0.1")],
        wheels: &[("demo", "1.1"), ("fresh", "2.0")],
    };
    r.write(
        "spec.yml",
        &spec(&host, &base, "    size_budget: {max: 1kB}\n"),
    );
    write_image(&r, &new, "second");
    let (code, doc, stderr) = build(r.path(), out.path(), node);
    assert_eq!(code, 1, "{doc:#}\n{stderr}");
    let failed = report(&doc);
    assert_eq!(failed["failed_step"], "size-budget", "{failed:#}");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("over its max of 1.0 kB")
            && message.contains("largest new layers: sha256:"),
        "{message}"
    );
    assert!(message.ends_with("; not tagged"), "{message}");
    let tagged = layers(&host, "ch/kid", TAG);
    assert_eq!(
        tagged, stable_layers,
        "the failed image must not get the tag"
    );

    // The same image with a budget that only warns.
    r.write(
        "spec.yml",
        &spec(
            &host,
            &base,
            "    size_budget: {max: 1kB, on_exceed: warn}\n",
        ),
    );
    r.commit("warn only");
    let (code, doc, stderr) = build(r.path(), out.path(), node);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    let rep = report(&doc);
    assert!(
        rep["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("over its size budget")),
        "{rep:#}"
    );
    let changes = &rep["changes"];
    assert_eq!(
        changes["old"]["reference"],
        format!("{kid}:{STABLE}"),
        "{changes:#}"
    );
    assert_eq!(changes["basis"], "the quarter's stable tag", "{changes:#}");
    let p = &changes["platforms"][0];
    let pk = &p["packages"];
    assert_eq!(
        names(&pk["added"], &["manager", "name", "version"]),
        ["apt beta 0.1", "pip fresh 2.0"],
        "{pk:#}"
    );
    assert_eq!(
        names(&pk["removed"], &["manager", "name", "version"]),
        ["pip gone 1.0"],
        "{pk:#}"
    );
    assert_eq!(
        names(&pk["upgraded"], &["manager", "name", "old", "new"]),
        ["apt alpha 1.0 1.1", "pip demo 1.0 1.1"],
        "{pk:#}"
    );
    assert_eq!(pk["downgraded"], serde_json::json!([]), "{pk:#}");

    // The sizes are the manifests'.
    let new_layers = layers(&host, "ch/kid", TAG);
    let sum = |ls: &[(String, u64)]| ls.iter().map(|l| l.1).sum::<u64>();
    let size = &p["size"];
    assert_eq!(size["old"].as_u64(), Some(sum(&stable_layers)), "{size:#}");
    assert_eq!(size["new"].as_u64(), Some(sum(&new_layers)), "{size:#}");
    assert_eq!(
        size["delta"].as_i64(),
        Some(sum(&new_layers) as i64 - sum(&stable_layers) as i64)
    );
    let shared = new_layers
        .iter()
        .filter(|l| stable_layers.contains(l))
        .count();
    assert_eq!(
        size["shared_layers"].as_u64(),
        Some(shared as u64),
        "{size:#}"
    );
    assert!(shared >= 1, "the base's layers are shared");

    // The old inventory came from the registry: stackctl never GETs a layer of it.
    let log = registry.log();
    for (d, _) in &stable_layers {
        let got = log
            .lines()
            .filter(|l| l.contains(&format!("GET /v2/ch/kid/blobs/{d}")) && l.contains("stackctl/"))
            .count();
        assert_eq!(got, 0, "stackctl read layer {d} of the old image:\n{log}");
    }

    // The page, the artifacts and `stackctl diff` say the same.
    let page = std::fs::read_dir(out.path().join("manifests"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|p| p.contains("ch/kid"))
        .unwrap();
    assert!(page.contains("## Changes since 2026.3-stable"), "{page}");
    assert!(page.contains("- pip `demo` 1.0 → 1.1"), "{page}");
    assert!(page.contains("## Packages"), "{page}");
    let md = std::fs::read_to_string(out.path().join("artifacts/changes.md")).unwrap();
    assert!(md.contains(&format!("### {kid}:{TAG}")), "{md}");
    assert!(md.contains("- apt `beta` 0.1"), "{md}");
    let o = stackctl()
        .args([
            "diff",
            &format!("{kid}:{STABLE}"),
            &format!("{kid}:{TAG}"),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let diff: Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &diff["platforms"][0];
    for key in ["size", "packages", "new_size", "old_digest", "new_digest"] {
        assert_eq!(d[key], p[key], "{key}: diff {d:#} build {p:#}");
    }
    let o = stackctl()
        .args(["diff", &format!("{kid}:{STABLE}"), &format!("{kid}:{TAG}")])
        .output()
        .unwrap();
    let t = text(&o.stdout);
    assert!(
        t.contains("  ↑ apt alpha 1.0 → 1.1") && t.contains("  - pip gone 1.0"),
        "{t}"
    );

    // The base has no inventory: unknown from the registry alone, computed with --buildkit.
    let diff_base = |extra: &[String]| -> Value {
        let o = stackctl()
            .args(["diff", &base, &format!("{kid}:{TAG}"), "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let unknown = &diff_base(&[])["platforms"][0];
    assert_eq!(unknown["packages"], Value::Null, "{unknown:#}");
    assert!(
        unknown["packages_unknown"]
            .as_str()
            .unwrap()
            .contains("none attached"),
        "{unknown:#}"
    );
    let computed = &diff_base(&node.tcp_args())["platforms"][0];
    assert_eq!(
        computed["packages_from"]["old"], "computed in BuildKit",
        "{computed:#}"
    );
    let computed = &computed["packages"];
    assert_eq!(
        names(&computed["added"], &["manager", "name", "version"]),
        [
            "apt alpha 1.1",
            "apt beta 0.1",
            "pip demo 1.1",
            "pip fresh 2.0"
        ],
        "{computed:#}"
    );
    assert_eq!(computed["removed"], serde_json::json!([]), "{computed:#}");
    assert_eq!(computed["upgraded"], serde_json::json!([]), "{computed:#}");
}

#[test]
fn a_two_platform_image_has_a_comparison_for_each_platform() {
    let Some(Stack {
        nodes,
        registry: _registry,
        repo: (r, host, base),
        out,
        ..
    }) = Stack::builder("changes_two_platforms")
        .buildkitd()
        .python_platforms()
        .repo(|host, digest| {
            let base = format!("{host}/stackctl-local/debian-python:bookworm@{digest}");
            (TestRepo::new("main"), host.to_string(), base)
        })
        .build()
    else {
        return;
    };
    let node = &nodes[0];
    let two = "    platforms: [linux/amd64, linux/arm64]\n";
    r.write("spec.yml", &spec(&host, &base, two));
    let old = Packages {
        debs: &[("alpha", "1.0")],
        wheels: &[("demo", "1.0")],
    };
    write_image(&r, &old, "first");
    let (code, doc, stderr) = build(r.path(), out.path(), node);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    let kid = format!("{host}/ch/kid");
    let o = stackctl()
        .args(["retag", &format!("{kid}:{TAG}"), STABLE])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let new = Packages {
        debs: &[("alpha", "1.0")],
        wheels: &[("demo", "1.2")],
    };
    write_image(&r, &new, "second");
    let (code, doc, stderr) = build(r.path(), out.path(), node);
    assert_eq!(code, 0, "{doc:#}\n{stderr}");
    let platforms = report(&doc)["changes"]["platforms"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = platforms
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["linux/amd64", "linux/arm64"]);
    for p in &platforms {
        let arch = p["platform"].as_str().unwrap().rsplit('/').next().unwrap();
        let pk = &p["packages"];
        assert_eq!(
            names_of(&pk["upgraded"]),
            ["pip demo 1.0 1.2"],
            "{}: {pk:#}",
            p["platform"]
        );
        assert_eq!(pk["added"], serde_json::json!([]), "{pk:#}");
        assert_eq!(pk["removed"], serde_json::json!([]), "{pk:#}");
        let sum = |ls: Vec<(String, u64)>| ls.iter().map(|l| l.1).sum::<u64>();
        let (was, now) = (
            sum(platform_layers(&host, "ch/kid", STABLE, Some(arch))),
            sum(platform_layers(&host, "ch/kid", TAG, Some(arch))),
        );
        assert_eq!(
            p["size"]["delta"].as_i64(),
            Some(now as i64 - was as i64),
            "{p:#}"
        );
    }
    assert_ne!(platforms[0]["new_digest"], platforms[1]["new_digest"]);
}

fn names_of(list: &Value) -> Vec<String> {
    names(list, &["manager", "name", "old", "new"])
}
