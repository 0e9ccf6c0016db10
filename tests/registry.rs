//! Registry operations against a real Distribution registry (Debian's `docker-registry`):
//! exists, retag (all four manifest kinds, same and cross repository, refused mounts),
//! all-or-nothing promotion with the wiki pages, basic and token (GHCR-like) auth.

mod support;

use proxy::{Fault, Proxy};
use stackctl::credentials::{Credential, CredentialStore, Secret};
use stackctl::registry::{ClientOptions, ImageRef, Manifest, RegistryClient};
use std::path::Path;
use std::process::Output;
use support::hand_made::{push_kind, Kind, ALL_KINDS};
use support::{proxy, token_server};
use support::{Registry, RegistryAuth};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55word-xyz";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn client(host: Option<&str>) -> RegistryClient {
    let mut store = CredentialStore::default();
    if let Some(h) = host {
        store = store.with_host(
            h,
            Credential {
                username: USER.into(),
                secret: Secret::new(PASSWORD),
                source: "test".into(),
            },
        );
    }
    RegistryClient::new(store, ClientOptions::default()).unwrap()
}

fn r(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap()
}

/// Run the CLI with a clean environment (no Docker config, no GitHub variables).
fn stackctl(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("stackctl").unwrap();
    cmd.args(args)
        .env("HOME", home.path())
        .env("DOCKER_CONFIG", home.path().join("docker"))
        .env_remove("GITHUB_TOKEN")
        .env_remove("GITHUB_ACTOR")
        .env_remove("GITHUB_USER")
        .env_remove("GITHUB_SHA")
        .env_remove("GITHUB_REPOSITORY")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(s) = stdin {
        cmd.write_stdin(s);
    }
    let out = cmd.output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(PASSWORD), "a password was printed:\n{all}");
    assert!(
        !all.contains("eyJ"),
        "something like a token was printed:\n{all}"
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Blob GETs the registry served (from its access log).
fn blob_gets(reg: &Registry) -> usize {
    let re = regex::Regex::new(r#""GET /v2/[^ "]*/blobs/sha256"#).unwrap();
    re.find_iter(&reg.log()).count()
}

fn head_digest(c: &RegistryClient, s: &str) -> Option<String> {
    rt().block_on(c.head_manifest(&r(s)))
        .unwrap()
        .map(|d| d.digest)
}

#[test]
fn retag_keeps_digest_for_all_media_types_without_fetching_blobs() {
    let reg = Registry::start(RegistryAuth::Basic {
        user: USER.into(),
        password: PASSWORD.into(),
    });
    let host = reg.host();
    let c = client(Some(&host));
    let mut pushed: Vec<(Kind, Manifest)> = Vec::new();
    rt().block_on(async {
        for k in ALL_KINDS {
            let src = r(&format!("{host}/stack/app:{k:?}-src").to_lowercase());
            pushed.push((k, push_kind(&c, &src, k, "one").await));
        }
    });
    let gets_before = blob_gets(&reg);
    for (k, m) in &pushed {
        let src = format!("{host}/stack/app:{k:?}-src").to_lowercase();
        let dst = format!("{k:?}-dst").to_lowercase();
        let out = stackctl(
            &["retag", &src, &dst, "--username", USER, "--password-stdin"],
            Some(PASSWORD),
            &[],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), m.digest, "{k:?}");
        let target = format!("{host}/stack/app:{dst}");
        let got = rt().block_on(c.get_manifest(&r(&target))).unwrap().unwrap();
        assert_eq!(got.digest, m.digest, "{k:?}");
        assert_eq!(got.media_type, m.media_type, "{k:?}");
        assert_eq!(got.bytes, m.bytes, "{k:?}");
    }
    assert_eq!(
        blob_gets(&reg),
        gets_before,
        "retag fetched blobs:\n{}",
        reg.log()
    );
    assert_eq!(gets_before, 0);

    // exists: one missing among present ones → exit 1, JSON says which.
    let present = format!("{host}/stack/app:docker-src");
    let missing = format!("{host}/stack/app:nope");
    let out = stackctl(
        &[
            "exists",
            &present,
            &missing,
            "--json",
            "--username",
            USER,
            "--password-stdin",
        ],
        Some(PASSWORD),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["exists"], true);
    assert_eq!(v[0]["digest"], pushed[0].1.digest.as_str());
    assert_eq!(v[1]["exists"], false);
    let out = stackctl(
        &["exists", &present, "--username", USER, "--password-stdin"],
        Some(PASSWORD),
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(&pushed[0].1.digest));

    // A wrong password, then no credential: exit 2, naming the user, never the password.
    assert_refused(&present, "wrong-Pa55word-abc");
    // A missing source for retag names it; exit 1.
    let out = stackctl(
        &[
            "retag",
            &missing,
            "x",
            "--username",
            USER,
            "--password-stdin",
        ],
        Some(PASSWORD),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&missing),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn cross_repository_retag_mounts_or_streams_blobs() {
    let reg = Registry::start(RegistryAuth::None);
    let host = reg.host();
    let c = client(None);
    let src = format!("{host}/stack/a:src");
    let m = rt().block_on(push_kind(&c, &r(&src), Kind::OciIndex, "cross"));

    let dst = format!("{host}/stack/b:copy");
    let out = stackctl(&["retag", &src, &dst], None, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), m.digest);
    assert_eq!(head_digest(&c, &dst).as_deref(), Some(m.digest.as_str()));
    let log = reg.log();
    // 2 platforms × (2 layers + config), all mounted.
    let mounts = regex::Regex::new(r#""POST /v2/stack/b/blobs/uploads/\?[^"]*mount=[^"]*" 201"#)
        .unwrap()
        .find_iter(&log)
        .count();
    assert_eq!(mounts, 6, "{log}");
    assert_eq!(blob_gets(&reg), 0, "{log}");

    // A registry that refuses mounts: blobs are streamed through, and the command says so.
    let proxy = Proxy::start(reg.port, Fault::RefuseMounts);
    let src_p = format!("{}/stack/a:src", proxy.host());
    let dst_p = format!("{}/stack/c:copy", proxy.host());
    let out = stackctl(&["retag", &src_p, &dst_p], None, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), m.digest);
    assert!(
        text(&out.stderr).contains("streamed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        head_digest(&c, &format!("{host}/stack/c:copy")).as_deref(),
        Some(m.digest.as_str())
    );
    assert_eq!(blob_gets(&reg), 6);

    // Another registry: nothing to mount from, the blobs are streamed.
    let other = Registry::start(RegistryAuth::None);
    let dst_o = format!("{}/mirror/a:copy", other.host());
    let out = stackctl(&["retag", &src, &dst_o], None, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), m.digest);
    assert!(
        text(&out.stderr).contains("streamed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(head_digest(&c, &dst_o).as_deref(), Some(m.digest.as_str()));
}

/// A spec of `n` images under `host/stack/imgN`, in `dir`.
fn write_spec(dir: &Path, host: &str, n: usize) -> Vec<String> {
    let mut yaml = String::from("root: img0\nimages:\n");
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("{host}/stack/img{i}");
        yaml.push_str(&format!("  img{i}:\n    image_name: {name}\n"));
        if i > 0 {
            yaml.push_str("    depend_on: img0\n");
        }
        std::fs::create_dir_all(dir.join("images").join(format!("img{i}"))).unwrap();
        std::fs::write(
            dir.join("images")
                .join(format!("img{i}"))
                .join("Dockerfile"),
            "FROM scratch\n",
        )
        .unwrap();
        names.push(name);
    }
    yaml.push_str("tag:\n  prefix: \"2026.3\"\n");
    std::fs::write(dir.join("spec.yml"), yaml).unwrap();
    names
}

#[test]
fn failed_promotion_puts_every_target_back() {
    let reg = Registry::start(RegistryAuth::None);
    let proxy = Proxy::start(reg.port, Fault::FailManifestPut(3));
    let dir = tempfile::tempdir().unwrap();
    // The spec names the proxy; the test reads and writes the registry directly.
    let names = write_spec(dir.path(), &proxy.host(), 4);
    let c = client(None);
    let direct = |n: &str, tag: &str| format!("{}:{tag}", n.replace(&proxy.host(), &reg.host()));
    let kinds = [Kind::Docker, Kind::Oci, Kind::DockerList, Kind::OciIndex];
    let mut old = Vec::new();
    rt().block_on(async {
        for (i, n) in names.iter().enumerate() {
            push_kind(&c, &r(&direct(n, "2026.3-main")), kinds[i], "new").await;
            old.push(push_kind(&c, &r(&direct(n, "2026.3-stable")), kinds[i], "old").await);
        }
    });
    let out = promote_main(dir.path());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("injected failure"), "{err}");
    assert!(err.contains("every target was put back"), "{err}");
    for (n, m) in names.iter().zip(&old) {
        assert!(
            err.contains(&format!("{n}:2026.3-stable: restored to {}", m.digest)),
            "{err}"
        );
        assert_eq!(
            head_digest(&c, &direct(n, "2026.3-stable")).as_deref(),
            Some(m.digest.as_str()),
            "{n} was not put back"
        );
    }
    // 4 retags (one refused) and 4 restores.
    assert_eq!(
        proxy
            .manifest_puts
            .load(std::sync::atomic::Ordering::SeqCst),
        8
    );
    // Nothing written on failure.
    assert!(!dir.path().join("artifacts/IMAGES_TAGGED").exists());
    assert_eq!(blob_gets(&reg), 0);
}

fn home_md(rows: usize) -> String {
    let mut s = String::from("# Stack images\n\nProduction images of each quarter.\n\n| Commit | Image | Manifest |\n|--------|-------|----------|\n");
    for i in 0..rows {
        let q = format!("20{:02}.{}", 10 + i / 4, 1 + i % 4);
        s.push_str(&format!(
            "|[`{i:07x}`](https://github.com/o/r/commit/{i:07x})|`ghcr.io/o/a:{q}-stable`<br>`ghcr.io/o/b:{q}-stable`|[Link](https://github.com/o/r/wiki/ghcr-io-o-a-{q}-stable)<br>[Link](https://github.com/o/r/wiki/ghcr-io-o-b-{q}-stable)|\n"
        ));
    }
    s.push_str("\nOlder images: see the archive.  \n");
    s
}

#[test]
fn promotion_writes_wiki_and_artifacts() {
    let reg = Registry::start(RegistryAuth::None);
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let names = write_spec(dir.path(), &host, 3);
    let c = client(None);
    let mut src = Vec::new();
    rt().block_on(async {
        for (i, n) in names.iter().enumerate() {
            src.push(push_kind(&c, &r(&format!("{n}:2026.3-main")), ALL_KINDS[i], "main").await);
        }
    });
    let wiki = dir.path().join("wiki");
    std::fs::create_dir_all(&wiki).unwrap();
    let home_before = home_md(60);
    std::fs::write(wiki.join("Home.md"), &home_before).unwrap();
    // Pages for the first two sources; the third is missing (a warning).
    for n in &names[..2] {
        let page = stackctl::naming::page_name(&format!("{n}:2026.3-main"));
        std::fs::write(wiki.join(format!("{page}.md")), format!("page of {n}\n")).unwrap();
    }
    std::fs::write(wiki.join("Stable_Tag.md"), "old stable page\n").unwrap();
    let spec = dir.path().join("spec.yml");
    let artifacts = dir.path().join("artifacts");
    let common = [
        "--spec",
        spec.to_str().unwrap(),
        "--repo",
        dir.path().to_str().unwrap(),
        "--wiki",
        wiki.to_str().unwrap(),
        "--artifacts",
        artifacts.to_str().unwrap(),
        "--repo-url",
        "https://github.com/o/r",
    ];
    let env = [("GITHUB_SHA", "5c83aa3d0f00ba4")];

    // Missing sources: all of them are named, exit 1, nothing changes.
    let mut args = vec!["tag", "2026.3-nosuch"];
    args.extend(common);
    let out = stackctl(&args, None, &env);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for n in &names {
        assert!(err.contains(&format!("{n}:2026.3-nosuch")), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(wiki.join("Home.md")).unwrap(),
        home_before
    );

    // Dry run: reads the registry, writes the files, changes no tag.
    let mut args = vec!["tag", "2026.3-main", "--dry-run"];
    args.extend(common);
    let out = stackctl(&args, None, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        head_digest(&c, &format!("{}:2026.3-stable", names[0])),
        None
    );
    std::fs::write(wiki.join("Home.md"), &home_before).unwrap();

    // Quarter promotion.
    let mut args = vec!["tag", "2026.3-main"];
    args.extend(common);
    let out = stackctl(&args, None, &env);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    for (n, m) in names.iter().zip(&src) {
        assert_eq!(
            head_digest(&c, &format!("{n}:2026.3-stable")).as_deref(),
            Some(m.digest.as_str())
        );
    }
    assert_eq!(blob_gets(&reg), 0, "promotion fetched blobs");
    assert!(err.contains("missing page"), "{err}");
    let stable: Vec<String> = names.iter().map(|n| format!("{n}:2026.3-stable")).collect();
    let row = format!(
        "|[`5c83aa3`](https://github.com/o/r/commit/5c83aa3)|{}|{}|",
        stable
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join("<br>"),
        stable
            .iter()
            .map(|s| format!(
                "[Link](https://github.com/o/r/wiki/{})",
                stackctl::naming::page_name(s)
            ))
            .collect::<Vec<_>>()
            .join("<br>")
    );
    let divider = "|--------|-------|----------|\n";
    let at = home_before.find(divider).unwrap() + divider.len();
    let expected = format!("{}{row}\n{}", &home_before[..at], &home_before[at..]);
    assert_eq!(
        std::fs::read_to_string(wiki.join("Home.md")).unwrap(),
        expected
    );
    for n in &names[..2] {
        let page = stackctl::naming::page_name(&format!("{n}:2026.3-stable"));
        assert_eq!(
            std::fs::read_to_string(wiki.join(format!("{page}.md"))).unwrap(),
            format!("page of {n}\n")
        );
    }
    let listed = |f: &str| std::fs::read_to_string(artifacts.join(f)).unwrap();
    assert_eq!(
        listed("IMAGES_ORIGINAL"),
        names
            .iter()
            .map(|n| format!("{n}:2026.3-main\n"))
            .collect::<String>()
    );
    assert_eq!(
        listed("IMAGES_TAGGED"),
        stable.iter().map(|s| format!("{s}\n")).collect::<String>()
    );

    // Global promotion from the Home.md row just written.
    let mut args = vec!["tag", "--global-stable", "2026.3"];
    args.extend(common);
    let out = stackctl(&args, None, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let global: Vec<String> = names.iter().map(|n| format!("{n}:stable")).collect();
    for (g, m) in global.iter().zip(&src) {
        assert_eq!(head_digest(&c, g).as_deref(), Some(m.digest.as_str()));
    }
    let expected_stable = format!(
        "| Image | Based On | Manifest |\n| :- | :- | :- |\n| {} | {} | {} |\n",
        global
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join("<br>"),
        stable
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join("<br>"),
        global
            .iter()
            .map(|s| format!(
                "[Link](https://github.com/o/r/wiki/{})",
                stackctl::naming::page_name(s)
            ))
            .collect::<Vec<_>>()
            .join("<br>")
    );
    assert_eq!(
        std::fs::read_to_string(wiki.join("Stable_Tag.md")).unwrap(),
        expected_stable
    );
    assert_eq!(
        std::fs::read_to_string(wiki.join("Home.md")).unwrap(),
        expected
    );
    for n in &names[..2] {
        let page = stackctl::naming::page_name(&format!("{n}:stable"));
        assert_eq!(
            std::fs::read_to_string(wiki.join(format!("{page}.md"))).unwrap(),
            format!("page of {n}\n")
        );
    }
    assert_eq!(listed("IMAGES_ORIGINAL_STABLE"), listed("IMAGES_TAGGED"));
    assert_eq!(
        listed("IMAGES_GLOBAL_STABLE"),
        global.iter().map(|s| format!("{s}\n")).collect::<String>()
    );
    assert_eq!(blob_gets(&reg), 0);

    // --offline only with --dry-run; offline dry run touches no registry.
    let mut args = vec!["tag", "2026.3-main", "--offline"];
    args.extend(common);
    assert_eq!(stackctl(&args, None, &env).status.code(), Some(2));
    drop(reg);
    let mut args = vec!["tag", "2026.3-main", "--offline", "--dry-run"];
    args.extend(common);
    let out = stackctl(&args, None, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn token_auth_like_ghcr() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_server::TokenServer::start(dir.path(), USER, PASSWORD);
    let reg = Registry::start(RegistryAuth::Raw(tokens.auth_yaml()));
    let host = reg.host();
    let c = client(Some(&host));
    let src = format!("{host}/org/base:2026.3-main");
    let m = rt().block_on(push_kind(&c, &r(&src), Kind::DockerList, "tok"));

    // Tokens are cached per scope: checking again asks for no new token.
    let before = tokens.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(head_digest(&c, &src).as_deref(), Some(m.digest.as_str()));
    assert_eq!(head_digest(&c, &src).as_deref(), Some(m.digest.as_str()));
    assert!(tokens.requests.load(std::sync::atomic::Ordering::SeqCst) <= before + 1);

    // Credentials from Docker's config.json.
    let docker = tempfile::tempdir().unwrap();
    std::fs::write(
        docker.path().join("config.json"),
        format!(r#"{{"auths": {{"{host}": {{"username": "{USER}", "password": "{PASSWORD}"}}}}}}"#),
    )
    .unwrap();
    let env = [("DOCKER_CONFIG", docker.path().to_str().unwrap())];
    let out = stackctl(&["exists", &src], None, &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dst = format!("{host}/org/other:copy");
    let out = stackctl(&["retag", &src, &dst], None, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), m.digest);
    let out = stackctl(&["retag", &src, "2026.3-stable"], None, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        head_digest(&c, &format!("{host}/org/base:2026.3-stable")).as_deref(),
        Some(m.digest.as_str())
    );
    assert_eq!(blob_gets(&reg), 0);

    // The token server refuses a wrong password; anonymous gets an empty token, then the
    // registry's 401.
    assert_refused(&src, "not-the-Pa55word");
}

/// Targets that did not exist: created only after every existing one went through, so a
/// failure among the existing ones leaves them absent; a tag created before a later failure
/// cannot be deleted on Distribution (405, as on GHCR), and the message says so.
#[test]
fn failed_promotion_with_new_targets() {
    for (fail_at, absent) in [(3usize, vec![3usize]), (4, vec![2, 3])] {
        let reg = Registry::start(RegistryAuth::None);
        let proxy = Proxy::start(reg.port, Fault::FailManifestPut(fail_at));
        let dir = tempfile::tempdir().unwrap();
        let names = write_spec(dir.path(), &proxy.host(), 4);
        let c = client(None);
        let direct =
            |n: &str, tag: &str| format!("{}:{tag}", n.replace(&proxy.host(), &reg.host()));
        let mut old = Vec::new();
        rt().block_on(async {
            for (i, n) in names.iter().enumerate() {
                push_kind(&c, &r(&direct(n, "2026.3-main")), Kind::Oci, "new").await;
                old.push(if absent.contains(&i) {
                    None
                } else {
                    Some(push_kind(&c, &r(&direct(n, "2026.3-stable")), Kind::Oci, "old").await)
                });
            }
        });
        let out = promote_main(dir.path());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        for (n, m) in names.iter().zip(&old) {
            let now = head_digest(&c, &direct(n, "2026.3-stable"));
            match m {
                Some(m) => assert_eq!(now.as_deref(), Some(m.digest.as_str()), "{err}"),
                None if fail_at == 3 => {
                    assert_eq!(now, None, "{err}");
                    assert!(
                        err.contains(&format!("{n}:2026.3-stable: absent before, still absent")),
                        "{err}"
                    );
                }
                None => {
                    if now.is_some() {
                        assert!(err.contains(&format!("{n}:2026.3-stable: absent before; the registry refused to delete the tag (HTTP 4")), "{err}");
                    }
                }
            }
        }
        if fail_at == 3 {
            assert!(err.contains("every target was put back"), "{err}");
        } else {
            assert!(err.contains("NOT every target could be put back"), "{err}");
        }
    }
}

/// 429 (with Retry-After), a dropped connection and a 503 in a row: retried, then it works.
#[test]
fn transient_failures_are_retried() {
    let reg = Registry::start(RegistryAuth::None);
    let c = client(None);
    let src = format!("{}/stack/a:src", reg.host());
    let m = rt().block_on(push_kind(&c, &r(&src), Kind::Docker, "retry"));
    let proxy = Proxy::start(reg.port, Fault::Flaky);
    let started = std::time::Instant::now();
    let out = stackctl(
        &["exists", &format!("{}/stack/a:src", proxy.host())],
        None,
        &[],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(text(&out.stdout).contains(&m.digest));
    assert!(err.contains("429") && err.contains("503"), "{err}");
    assert_eq!(proxy.requests.load(std::sync::atomic::Ordering::SeqCst), 4);
    // Retry-After: 1 was honoured.
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

/// `stackctl tag 2026.3-main` on the spec in `dir`, artifacts in `dir/artifacts`.
fn promote_main(dir: &Path) -> Output {
    let spec = dir.join("spec.yml");
    stackctl(
        &[
            "tag",
            "2026.3-main",
            "--spec",
            spec.to_str().unwrap(),
            "--repo",
            dir.to_str().unwrap(),
            "--artifacts",
            dir.join("artifacts").to_str().unwrap(),
        ],
        None,
        &[],
    )
}

/// `exists REF` with a wrong password, then with no credential: each exits 2; the first
/// names the user and the 401 but never the password, the second says it was anonymous.
fn assert_refused(reference: &str, wrong_password: &str) {
    let out = stackctl(
        &["exists", reference, "--username", USER, "--password-stdin"],
        Some(wrong_password),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("\"alice\"") && err.contains("401"), "{err}");
    assert!(!err.contains(wrong_password), "{err}");
    let out = stackctl(&["exists", reference], None, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("anonymous"), "{err}");
}

/// `list_tags` lists every tag of a repository (Distribution 2.8 answers in one page; the
/// `Link` header of registries that page is followed), and none of an unknown one.
#[test]
fn tag_lists_name_every_tag() {
    let reg = Registry::start(RegistryAuth::None);
    let c = client(None);
    let repo = r(&format!("{}/listed/img:first", reg.host()));
    rt().block_on(async {
        let m = push_kind(&c, &repo, Kind::Oci, "listed").await;
        let mut want: Vec<String> = (0..30).map(|i| format!("t{i:02}")).collect();
        for t in &want {
            c.put_manifest(&repo.with_tag(t), &m).await.unwrap();
        }
        want.push("first".into());
        want.sort();
        let mut tags = c.list_tags(&repo).await.unwrap();
        tags.sort();
        assert_eq!(tags, want);
        let absent = r(&format!("{}/listed/absent:x", reg.host()));
        assert!(c.list_tags(&absent).await.unwrap().is_empty());
    });
}
