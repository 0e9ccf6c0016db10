//! Attestations end to end: a stack built through a real buildkitd of each release (v0.25.2
//! writes attestation manifests as plain image manifests and SLSA v0.2; v0.32.2 as OCI
//! artifacts and SLSA v1), pushed to a real registry, read back from the index; the
//! manifest page shows the provenance; the engine's BuildKit cannot attest.

use crate::support;

use serde_json::Value;
use stackctl::credentials::CredentialStore;
use stackctl::registry::attestation::{SLSA_PROVENANCE_V02, SLSA_PROVENANCE_V1, SPDX};
use stackctl::registry::{ClientOptions, ImageRef, RegistryClient};
use support::buildkitd::Release;
use support::e2e::Stack;
use support::git_repo::TestRepo;
use support::{stackctl, text};

const PREFIX: &str = "2026.3";
const BRANCH: &str = "qa";

fn client() -> RegistryClient {
    RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

fn manifest_json(reference: &str) -> (String, Value) {
    let r = ImageRef::parse(reference).unwrap();
    let m = block_on(client().get_manifest(&r))
        .unwrap()
        .unwrap_or_else(|| panic!("{reference} is not in the registry"));
    (m.media_type, serde_json::from_slice(&m.bytes).unwrap())
}

fn blob_json(repository: &str, digest: &str) -> Value {
    let r = ImageRef::parse(&format!("{repository}@{digest}")).unwrap();
    serde_json::from_slice(&block_on(client().get_blob(&r, digest)).unwrap()).unwrap()
}

/// A base FROM the python base with provenance max and an SBOM from the test generator
/// (the stack's `attest:`), and a child that turns the SBOM off (its own `attest:`).
fn attesting_stack(host: &str, generator: &str) -> (TestRepo, String) {
    let git = TestRepo::new("main");
    git.write(
        "spec.yml",
        &format!(
            "attest:
  provenance: max
  sbom: {{generator: {generator}}}
images:
  base:
    image_name: {host}/att/base
    build_args: {{BASE_IMAGE: {host}/stackctl-local/debian-python:bookworm}}
  kid:
    image_name: {host}/att/kid
    depend_on: base
    build_args: {{BASE_IMAGE: {host}/att/base}}
    attest: {{sbom: off, provenance: min}}
tag:
  prefix: \"{PREFIX}\"
"
        ),
    )
    .write(
        "images/base/Dockerfile",
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo base > /base.txt\n",
    )
    .write(
        "images/base/test/test_base.py",
        "def test_base():\n    assert open('/base.txt').read() == 'base\\n'\n",
    )
    .write(
        "images/kid/Dockerfile",
        "ARG BASE_IMAGE\nARG BASE_TAG=none\nFROM ${BASE_IMAGE}:${BASE_TAG}\nRUN echo kid > /kid.txt\n",
    )
    .write(
        "images/kid/test/test_kid.py",
        "def test_kid():\n    assert open('/kid.txt').read() == 'kid\\n'\n",
    );
    let commit = git.commit("an attesting stack").to_string();
    (git, commit)
}

/// Build the attesting stack through one buildkitd of `release`, then read every
/// attestation back from the registry, and the page.
fn provenance_and_sbom_are_read_back(test: &str, release: Release) {
    let Some(s) = Stack::builder(test)
        .buildkitd()
        .release(release)
        .python()
        .repo(|host, _| {
            let generator = block_on(support::sbom::push_generator(host));
            attesting_stack(host, &generator)
        })
        .build()
    else {
        return;
    };
    let (bk, reg, (repo, commit), out) = (&s.nodes[0], &s.registry, &s.repo, &s.out);
    let host = reg.host();
    let tls = bk.tcp_args();
    let o = stackctl()
        .current_dir(out.path())
        .env("GITHUB_SERVER_URL", "https://github.example")
        .env("GITHUB_REPOSITORY", "uni/stack")
        .env("GITHUB_RUN_ID", "42")
        .args(["build", "--json", "--repo"])
        .arg(repo.path())
        .args(&tls)
        .args(["--branch", BRANCH, "--base", "HEAD"])
        .output()
        .unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}\n{}", bk.log());

    let tag = format!("{PREFIX}-{BRANCH}");
    for (key, want_sbom) in [("base", true), ("kid", false)] {
        let repository = format!("{host}/att/{key}");
        let (media_type, index) = manifest_json(&format!("{repository}:{tag}"));
        assert_eq!(
            media_type, "application/vnd.oci.image.index.v1+json",
            "{key}: BuildKit attests into an index"
        );
        let entries = index["manifests"].as_array().unwrap();
        let platform: Vec<&Value> = entries
            .iter()
            .filter(|e| e["platform"]["os"] == "linux")
            .collect();
        let attestation: Vec<&Value> = entries
            .iter()
            .filter(|e| e["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
            .collect();
        assert_eq!(
            (platform.len(), attestation.len()),
            (1, 1),
            "{key}: {index:#}"
        );
        assert_eq!(attestation[0]["platform"]["os"], "unknown");
        assert_eq!(
            attestation[0]["annotations"]["vnd.docker.reference.digest"], platform[0]["digest"],
            "{key}: the attestation describes the platform's manifest"
        );
        let att_digest = attestation[0]["digest"].as_str().unwrap();
        let (_, am) = manifest_json(&format!("{repository}@{att_digest}"));
        match release {
            Release::V0_32 => {
                assert_eq!(
                    am["artifactType"], "application/vnd.docker.attestation.manifest.v1+json",
                    "{am:#}"
                );
                assert_eq!(am["subject"]["digest"], platform[0]["digest"]);
            }
            _ => assert!(am.get("artifactType").is_none(), "{am:#}"),
        }
        let layers = am["layers"].as_array().unwrap();
        let predicate = |t: &str| {
            layers
                .iter()
                .find(|l| l["annotations"]["in-toto.io/predicate-type"] == t)
        };
        let slsa = if release == Release::V0_25 {
            SLSA_PROVENANCE_V02
        } else {
            SLSA_PROVENANCE_V1
        };
        let prov = predicate(slsa).unwrap_or_else(|| panic!("{key}: no {slsa} in {am:#}"));
        let statement = blob_json(&repository, prov["digest"].as_str().unwrap());
        let p = stackctl::registry::attestation::parse_provenance(&statement).unwrap();
        assert_eq!(
            p.revision.as_deref(),
            Some(commit.as_str()),
            "{statement:#}"
        );
        assert_eq!(
            p.source.as_deref(),
            Some("https://github.example/uni/stack")
        );
        assert_eq!(
            p.builder_id.as_deref(),
            Some("https://github.example/uni/stack/actions/runs/42")
        );
        if key == "base" {
            assert_eq!(
                p.parameters.get("build-arg:BASE_IMAGE").map(String::as_str),
                Some(format!("{host}/stackctl-local/debian-python:bookworm").as_str()),
                "mode=max records the build arguments: {p:?}"
            );
        }
        match (want_sbom, predicate(SPDX)) {
            (true, Some(l)) => {
                let sbom = blob_json(&repository, l["digest"].as_str().unwrap());
                let names: Vec<&str> = sbom["predicate"]["packages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                for want in ["python3", "dpkg"] {
                    assert!(names.contains(&want), "{want} not in the SBOM: {names:?}");
                }
                assert!(
                    names.iter().any(|n| n.eq_ignore_ascii_case("pytest")),
                    "the pytest distribution is listed: {names:?}"
                );
            }
            (false, None) => {}
            (want, got) => panic!("{key}: SBOM wanted {want}, found {got:?}"),
        }
        // The page lists the statements and what the provenance says.
        let page = std::fs::read_to_string(out.path().join("manifests").join(format!(
            "{}.md",
            stackctl::report::names::page_name(&format!("{repository}:{tag}"))
        )))
        .unwrap();
        assert!(page.contains("\n## Attestations\n"), "{page}");
        assert!(
            page.contains(&format!("| linux/amd64 | `{slsa}` |")),
            "{page}"
        );
        assert!(page.contains("\n### Provenance of linux/amd64\n"), "{page}");
        assert!(page.contains(&format!("- Commit: `{commit}`")), "{page}");
        assert!(
            page.contains("- Builder: `https://github.example/uni/stack/actions/runs/42`"),
            "{page}"
        );
        assert_eq!(page.contains(SPDX), want_sbom, "{page}");
        // One image's page, not a page per platform: attestations are not platforms.
        assert!(!page.contains("\nPlatforms: "), "{page}");
    }
    if release == Release::V0_32 {
        packages_from_an_sbom_without_an_inventory(repo, &tls, &host, &tag);
    }
}

/// `build-image --push` attaches no inventory: `stackctl diff` then reads the old image's
/// packages from its SBOM attestation (another image than the build's: the platform
/// manifest would otherwise be the same, with the build's inventory attached), and dpkg's
/// agree with the built image's inventory.
fn packages_from_an_sbom_without_an_inventory(
    repo: &TestRepo,
    tls: &[String],
    host: &str,
    tag: &str,
) {
    repo.write(
        "images/base/Dockerfile",
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo other > /other.txt\n",
    );
    repo.commit("another base");
    let o = stackctl()
        .args([
            "build-image",
            "base",
            "--push",
            "--tag",
            "sbom-only",
            "--repo",
        ])
        .arg(repo.path())
        .args(tls)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = stackctl()
        .args([
            "diff",
            &format!("{host}/att/base:sbom-only"),
            &format!("{host}/att/base:{tag}"),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let diff: Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = &diff["platforms"][0];
    let packages = &p["packages"];
    assert!(
        packages.is_object(),
        "the SBOM gives the old packages: {p:#}"
    );
    assert_eq!(p["packages_from"]["old"], "sbom", "{p:#}");
    assert_eq!(p["packages_from"]["new"], "attached", "{p:#}");
    for kind in ["added", "removed", "upgraded", "downgraded"] {
        let apt: Vec<&Value> = packages[kind]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["manager"] == "apt")
            .collect();
        assert!(apt.is_empty(), "{kind}: {apt:?}");
    }
    assert!(packages["unchanged"].as_u64().unwrap() > 50, "{packages:#}");
}

#[test]
fn provenance_and_sbom_through_buildkit_v0_25_are_read_back() {
    provenance_and_sbom_are_read_back(
        "provenance_and_sbom_through_buildkit_v0_25_are_read_back",
        Release::V0_25,
    );
}

#[test]
fn provenance_and_sbom_through_buildkit_v0_32_are_read_back() {
    provenance_and_sbom_are_read_back(
        "provenance_and_sbom_through_buildkit_v0_32_are_read_back",
        Release::V0_32,
    );
}

/// Through the engine's BuildKit v0.8: `attest.required` stops the run before anything
/// is built (exit 2, naming the image); without it, one warning and the build goes on, and
/// a PEM key signs the image right after the engine's push (`stackctl verify` and cosign
/// accept it).
#[test]
fn required_attestations_through_the_engine_are_exit_2_before_building() {
    let Some(s) = Stack::builder("required_attestations_through_the_engine")
        .python()
        .repo(|host, base| {
            let git = TestRepo::new("main");
            git.write(
                "spec.yml",
                &format!(
                    "attest: {{required: true}}\nimages:\n  solo:\n    image_name: {host}/att/solo\ntag:\n  prefix: \"{PREFIX}\"\n"
                ),
            )
            .write("images/solo/Dockerfile", &format!("FROM {base}\nCOPY a.txt /a.txt\n"))
            .write("images/solo/a.txt", "a\n")
            .write(
                "images/solo/test/test_solo.py",
                "def test_solo():\n    assert open('/a.txt').read() == 'a\\n'\n",
            );
            git.commit("one image");
            git
        })
        .build()
    else {
        return;
    };
    let (reg, repo, out) = (&s.registry, &s.repo, &s.out);
    let build = |extra: &[&std::ffi::OsStr]| {
        stackctl()
            .current_dir(out.path())
            .args(["build", "--json", "--repo"])
            .arg(repo.path())
            .args(["--buildkit", "docker-unix:///var/run/docker.sock"])
            .args(["--branch", BRANCH, "--base", "HEAD"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = build(&[]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot attach provenance or an SBOM")
            && stderr.contains("`attest.required` is set for solo"),
        "{stderr}"
    );
    assert!(
        block_on(
            client().list_tags(&ImageRef::parse(&format!("{}/att/solo", reg.host())).unwrap())
        )
        .map(|t| t.is_empty())
        .unwrap_or(true),
        "nothing was pushed"
    );

    // Without `required`: one line, and the image is built and tagged.
    let spec = std::fs::read_to_string(repo.path().join("spec.yml")).unwrap();
    repo.write("spec.yml", &spec.replace("attest: {required: true}\n", ""));
    repo.commit("attestations not required");
    // Signed with a PEM key (SEC1, made by openssl), right after the engine's push.
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = (keys.path().join("ec.pem"), keys.path().join("ec.pub"));
    let st = std::process::Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success(), "openssl ecparam");
    let st = std::process::Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap();
    assert!(st.success(), "openssl ec -pubout");
    let o = build(&[std::ffi::OsStr::new("--sign-key"), key.as_os_str()]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr
            .matches("cannot attach provenance or an SBOM")
            .count(),
        1,
        "{stderr}"
    );
    let image = format!("{}/att/solo:{PREFIX}-{BRANCH}", reg.host());
    let v = stackctl()
        .args(["verify", &image, "--json", "--key"])
        .arg(&public)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(
        v.status.code(),
        Some(0),
        "{doc:#}
{}",
        text(&v.stderr)
    );
    assert_eq!(doc["signature"]["state"], "signed", "{doc:#}");
    if let Some(cosign) = support::cosign::binary("engine-signed image") {
        let c = support::cosign::verify(&cosign, &public, &image);
        assert!(c.status.success(), "{}", support::outcome(&c));
    }
}
