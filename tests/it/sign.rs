//! Signing end to end, checked by a real cosign: a stack built through a buildkitd and
//! signed with a key cosign made passes `cosign verify --key` on its build tag, and after
//! `stackctl tag` on `<prefix>-stable` and `stable`; a promotion that requires a signature
//! refuses an unsigned stack, or one signed by another key, and moves nothing.

use crate::support;

use serde_json::Value;
use stackctl::credentials::CredentialStore;
use stackctl::registry::{ClientOptions, ImageRef, RegistryClient};
use support::e2e::Stack;
use support::git_repo::TestRepo;
use support::{cosign, outcome, stackctl, text};

const PREFIX: &str = "2026.3";

fn head(reference: &str) -> Option<String> {
    let client = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let r = ImageRef::parse(reference).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client.head_manifest(&r))
        .unwrap()
        .map(|d| d.digest)
}

fn two_images(host: &str, base: &str) -> TestRepo {
    let git = TestRepo::new("main");
    git.write(
        "spec.yml",
        &format!(
            "images:\n  base:\n    image_name: {host}/sig/base\n  kid:\n    image_name: {host}/sig/kid\n    depend_on: base\n    build_args: {{BASE_IMAGE: {host}/sig/base}}\ntag:\n  prefix: \"{PREFIX}\"\n"
        ),
    )
    .write(
        "images/base/Dockerfile",
        &format!("FROM {base}\nRUN echo base > /base.txt\n"),
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
    git.commit("two images");
    git
}

#[test]
fn a_signed_stack_passes_cosign_verify_before_and_after_promotion() {
    let test = "a_signed_stack_passes_cosign_verify_before_and_after_promotion";
    let Some(cosign) = cosign::binary(test) else {
        return;
    };
    let Some(s) = Stack::builder(test)
        .buildkitd()
        .python()
        .repo(two_images)
        .build()
    else {
        return;
    };
    let (bk, reg, repo, out) = (&s.nodes[0], &s.registry, &s.repo, &s.out);
    let host = reg.host();
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = cosign::key_pair(&cosign, keys.path(), "s3cret");
    let other = tempfile::tempdir().unwrap();
    let (_, other_public) = cosign::key_pair(&cosign, other.path(), "other");
    let tls = bk.tcp_args();
    let build = |branch: &str, extra: &[&std::ffi::OsStr], password: &str| {
        stackctl()
            .current_dir(out.path())
            .env("COSIGN_PASSWORD", password)
            .args(["build", "--json", "--repo"])
            .arg(repo.path())
            .args(&tls)
            .args(["--branch", branch, "--base", "HEAD"])
            .args(extra)
            .output()
            .unwrap()
    };
    let tag = |args: &[&std::ffi::OsStr]| {
        stackctl()
            .current_dir(out.path())
            .env("GITHUB_SHA", "0123456789abcdef")
            .arg("tag")
            .args(args)
            .arg("--spec")
            .arg(repo.path().join("spec.yml"))
            .output()
            .unwrap()
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let full = |k: &str, t: &str| format!("{host}/sig/{k}:{t}");

    // Unsigned: a promotion that requires a signature moves nothing, exit 6.
    let o = build("unsigned", &[], "");
    assert_eq!(o.status.code(), Some(0), "{}", outcome(&o));
    let o = tag(&[
        &os("2026.3-unsigned"),
        &os("--require-signature"),
        public.as_os_str(),
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(6), "{}", outcome(&o));
    for k in ["base", "kid"] {
        assert!(
            err.contains(&format!(
                "{}: no signature of sha256:",
                full(k, "2026.3-unsigned")
            )),
            "{k}: {err}"
        );
        assert_eq!(head(&full(k, "2026.3-stable")), None, "{k}: nothing moved");
    }

    // A wrong password stops the run before anything is built.
    let o = build("qa", &[&os("--sign-key"), key.as_os_str()], "wrong");
    assert_eq!(o.status.code(), Some(2), "{}", outcome(&o));
    assert!(
        text(&o.stderr).contains("wrong password"),
        "{}",
        outcome(&o)
    );
    assert_eq!(head(&full("base", "2026.3-qa")), None);

    // Signed with cosign's own key file: cosign verifies the tag, and each platform manifest.
    let o = build("qa", &[&os("--sign-key"), key.as_os_str()], "s3cret");
    assert_eq!(o.status.code(), Some(0), "{}", outcome(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in ["base", "kid"] {
        let image = summary["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["key"] == k)
            .unwrap();
        let signed: Vec<&str> = image["report"]["signed"]
            .as_array()
            .unwrap_or_else(|| panic!("{k}: no signed list in {image:#}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let digest = image["report"]["digest"].as_str().unwrap();
        assert_eq!(
            signed.len(),
            2,
            "{k}: the index and its platform: {signed:?}"
        );
        assert_eq!(signed[0], digest);
        for (what, reference) in [
            ("tag", full(k, "2026.3-qa")),
            ("platform", format!("{host}/sig/{k}@{}", signed[1])),
        ] {
            let v = cosign::verify(&cosign, &public, &reference);
            assert!(v.status.success(), "{k} {what}: {}", outcome(&v));
        }
        let v = cosign::verify(&cosign, &other_public, &full(k, "2026.3-qa"));
        assert!(!v.status.success(), "{k}: another key does not verify it");
    }

    // `stackctl verify` says the same, per platform.
    let verify = |reference: &str, public: &std::path::Path, extra: &[&str]| {
        let o = stackctl()
            .args(["verify", reference, "--json", "--key"])
            .arg(public)
            .args(extra)
            .output()
            .unwrap();
        let doc: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", outcome(&o)));
        (o.status.code(), doc)
    };
    let (code, doc) = verify(
        &full("base", "2026.3-qa"),
        &public,
        &["--require-attestation", "provenance"],
    );
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["signature"]["state"], "signed", "{doc:#}");
    assert_eq!(doc["platforms"][0]["platform"], "linux/amd64");
    assert_eq!(doc["platforms"][0]["signature"]["state"], "signed");
    assert!(doc["platforms"][0]["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["predicate_type"]
            .as_str()
            .unwrap()
            .starts_with("https://slsa.dev/provenance/")));
    let (code, doc) = verify(&full("base", "2026.3-qa"), &other_public, &[]);
    assert_eq!(code, Some(1), "{doc:#}");
    assert_eq!(doc["signature"]["state"], "invalid", "{doc:#}");
    let (code, doc) = verify(
        &full("kid", "2026.3-unsigned"),
        &public,
        &["--require-attestation", "sbom"],
    );
    assert_eq!(code, Some(1), "{doc:#}");
    let lacking: Vec<&str> = doc["lacking"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        lacking.iter().any(|l| l.ends_with(": no signature")),
        "{lacking:?}"
    );
    assert!(lacking.contains(&"linux/amd64: no sbom"), "{lacking:?}");

    // Signed by another key: refused, exit 6.
    let o = tag(&[
        &os("2026.3-qa"),
        &os("--require-signature"),
        other_public.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(6), "{}", outcome(&o));
    assert!(
        text(&o.stderr).contains("none by this key"),
        "{}",
        outcome(&o)
    );
    assert_eq!(head(&full("base", "2026.3-stable")), None);

    // The right key, and provenance on every platform: promoted; the signature holds on
    // the stable tags (the digest is the same).
    let o = tag(&[
        &os("2026.3-qa"),
        &os("--require-signature"),
        public.as_os_str(),
        &os("--require-attestation"),
        &os("provenance"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", outcome(&o));
    let o = tag(&[&os("--global-stable"), &os(PREFIX)]);
    assert_eq!(o.status.code(), Some(0), "{}", outcome(&o));
    for k in ["base", "kid"] {
        for t in ["2026.3-stable", "stable"] {
            let v = cosign::verify(&cosign, &public, &full(k, t));
            assert!(v.status.success(), "{k}:{t}: {}", outcome(&v));
        }
    }
    // A retag into another repository carries the signatures: cosign verifies it there.
    for k in ["base", "kid"] {
        let mirror = format!("{host}/mirror/{k}:stable");
        let o = stackctl()
            .args(["retag", &full(k, "stable"), &mirror])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", outcome(&o));
        let v = cosign::verify(&cosign, &public, &mirror);
        assert!(v.status.success(), "{mirror}: {}", outcome(&v));
    }
    // No SBOM was asked for: requiring one is refused.
    let o = tag(&[&os("2026.3-qa"), &os("--require-attestation"), &os("sbom")]);
    assert_eq!(o.status.code(), Some(6), "{}", outcome(&o));
    assert!(
        text(&o.stderr).contains("no sbom for linux/amd64"),
        "{}",
        outcome(&o)
    );
}
