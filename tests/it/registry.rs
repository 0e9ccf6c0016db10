//! Registry operations against a real Distribution registry (Debian's `docker-registry`):
//! exists, retag (all four manifest kinds, same and cross repository, refused mounts),
//! all-or-nothing promotion with the wiki pages, basic and token (GHCR-like) auth.

use crate::support;

use proxy::{Fault, Proxy, Rule};
use stackctl::credentials::{Credential, CredentialStore, Secret};
use stackctl::registry::{ClientOptions, ImageRef, Manifest, RegistryClient};
use std::path::Path;
use std::process::Output;
use support::hand_made::{push_kind, Kind, ALL_KINDS};
use support::{proxy, token_server};
use support::{text, Registry, RegistryAuth};

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

/// Run the CLI with no Docker config and a fresh HOME, and check that it printed no secret.
fn run_stackctl(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = assert_cmd::Command::from_std(support::stackctl());
    cmd.args(args)
        .env("HOME", home.path())
        .env("DOCKER_CONFIG", home.path().join("docker"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(s) = stdin {
        cmd.write_stdin(s);
    }
    let out = cmd.output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains(PASSWORD), "a password was printed:\n{all}");
    assert!(
        !all.contains("eyJ"),
        "something like a token was printed:\n{all}"
    );
    out
}

/// Blob GETs the registry served (from its access log).
fn blob_gets(reg: &Registry) -> usize {
    let re = regex::Regex::new(r#""GET /v2/[^ "]*/blobs/sha256"#).unwrap();
    re.find_iter(&reg.log()).count()
}

/// Blob GETs in the registry's log that were not of an image config (a promotion reads
/// manifests and the configs of children whose manifest records no parent, never a layer).
fn layer_gets(reg: &Registry) -> usize {
    let re = regex::Regex::new(r#""GET /v2/([^ "]*)/blobs/(sha256:[0-9a-f]{64})"#).unwrap();
    let log = reg.log();
    let c = client(None);
    re.captures_iter(&log)
        .filter(|cap| {
            let at = r(&format!("{}/{}@{}", reg.host(), &cap[1], &cap[2]));
            let blob = rt().block_on(c.get_blob(&at, &cap[2])).unwrap();
            !serde_json::from_slice::<serde_json::Value>(&blob)
                .is_ok_and(|v| v.get("rootfs").is_some())
        })
        .count()
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
        let out = run_stackctl(
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
    let out = run_stackctl(
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
    let out = run_stackctl(
        &["exists", &present, "--username", USER, "--password-stdin"],
        Some(PASSWORD),
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(&pushed[0].1.digest));

    // A wrong password, then no credential: exit 2, naming the user, never the password.
    assert_refused(&present, "wrong-Pa55word-abc");
    // A missing source for retag names it; exit 1.
    let out = run_stackctl(
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
    let out = run_stackctl(&["retag", &src, &dst], None, &[]);
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
    let out = run_stackctl(&["retag", &src_p, &dst_p], None, &[]);
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
    let out = run_stackctl(&["retag", &src, &dst_o], None, &[]);
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

/// Every target exists; one PUT is refused (an answered 400): nothing new was written, so
/// the run rolls back what it changed, and the read-back proves it: exit 1, the table says
/// `restored` for the three it changed and `unchanged` for the refused one.
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
    let mut new = Vec::new();
    rt().block_on(async {
        for (i, n) in names.iter().enumerate() {
            new.push(push_kind(&c, &r(&direct(n, "2026.3-main")), kinds[i], "new").await);
            old.push(push_kind(&c, &r(&direct(n, "2026.3-stable")), kinds[i], "old").await);
        }
    });
    let out = promote_main(dir.path());
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("injected failure"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    let rows = table(&text(&out.stdout));
    assert_eq!(rows.len(), 4, "{}", text(&out.stdout));
    let refused = proxy
        .forwarded_puts
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect::<Vec<_>>();
    for (i, n) in names.iter().enumerate() {
        let t = format!("{n}:2026.3-stable");
        let row = &rows[&t];
        // The refused PUT was never forwarded: its image is the one missing from the list.
        let state = if refused.iter().any(|p| p.contains(&format!("/img{i}/"))) {
            "restored"
        } else {
            "unchanged"
        };
        assert_eq!(
            row,
            &[&old[i].digest, &old[i].digest, &new[i].digest, state].map(String::from),
            "{t}: {err}"
        );
        assert_eq!(
            head_digest(&c, &direct(n, "2026.3-stable")).as_deref(),
            Some(old[i].digest.as_str()),
            "{n} was not put back"
        );
    }
    // 4 retags (one refused) and 3 restores: a target this run did not change is not touched.
    assert_eq!(
        proxy
            .manifest_puts
            .load(std::sync::atomic::Ordering::SeqCst),
        7
    );
    // Nothing written on failure.
    assert!(!dir.path().join("artifacts/IMAGES_TAGGED").exists());
    assert_eq!(layer_gets(&reg), 0, "only manifests and configs are read");
}

/// `stackctl tag`'s table on stdout: target -> [before, now, intended, state].
fn table(stdout: &str) -> std::collections::BTreeMap<String, [String; 4]> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("TARGET"));
    let header: Vec<&str> = lines.next().expect("a table").split_whitespace().collect();
    assert_eq!(header, ["TARGET", "BEFORE", "NOW", "INTENDED", "STATE"]);
    lines
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), [f[1], f[2], f[3], f[4]].map(String::from))
        })
        .collect()
}

/// Images `img0..img{n}` under the proxy: `old` at :2026.3-stable for the first `existing`
/// (the others have no stable tag), `new` at :2026.3-main. Returns (names, old, new).
fn stack_through_proxy(
    reg: &Registry,
    proxy: &Proxy,
    dir: &Path,
    n: usize,
    existing: usize,
) -> (Vec<String>, Vec<Option<Manifest>>, Vec<Manifest>) {
    let names = write_spec(dir, &proxy.host(), n);
    let c = client(None);
    let mut old = Vec::new();
    let mut new = Vec::new();
    rt().block_on(async {
        for (i, name) in names.iter().enumerate() {
            let d = name.replace(&proxy.host(), &reg.host());
            let (n, o) = (format!("new{i}"), format!("old{i}"));
            new.push(push_kind(&c, &r(&format!("{d}:2026.3-main")), Kind::Oci, &n).await);
            old.push(if i < existing {
                Some(push_kind(&c, &r(&format!("{d}:2026.3-stable")), Kind::Oci, &o).await)
            } else {
                None
            });
        }
    });
    (names, old, new)
}

fn digest_or_absent(m: &Option<Manifest>) -> String {
    m.as_ref()
        .map(|m| m.digest.clone())
        .unwrap_or_else(|| "absent".into())
}

/// Two existing targets, two new; the last new one's PUT keeps failing with 500. The new
/// tag written before it cannot be taken back, so the run rolls forward within --timeout,
/// then exits 3 with the exact table; the same command run again completes the promotion,
/// writing only what is missing.
#[test]
fn half_promotion_rolls_forward_and_a_rerun_completes_it() {
    let reg = Registry::start(RegistryAuth::None);
    let proxy = Proxy::with_rules(
        reg.port,
        vec![Rule::FailPut {
            path: "img3/manifests/2026.3-stable".into(),
            status: 500,
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let (names, old, new) = stack_through_proxy(&reg, &proxy, dir.path(), 4, 2);
    let started = std::time::Instant::now();
    let out = promote_tag(
        dir.path(),
        "2026.3-main",
        &["--timeout", "6s", "--request-timeout", "2s"],
    );
    let err = text(&out.stderr);
    eprintln!("{err}{}", text(&out.stdout));
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{err}"
    );
    assert!(err.contains("NEW: cannot be rolled back"), "{err}");
    assert!(err.contains("partly promoted: 3 of 4"), "{err}");
    assert!(err.contains("rolling forward"), "{err}");
    assert!(
        err.contains(&format!(
            "deadline (--timeout 6s) was hit by PUT {}:2026.3-stable",
            names[3]
        )),
        "{err}"
    );
    let rows = table(&text(&out.stdout));
    assert_eq!(rows.len(), 4);
    for i in 0..4 {
        let (now, state) = if i < 3 {
            (new[i].digest.clone(), "promoted")
        } else {
            ("absent".to_string(), "unchanged")
        };
        assert_eq!(
            rows[&format!("{}:2026.3-stable", names[i])],
            [
                digest_or_absent(&old[i]),
                now,
                new[i].digest.clone(),
                state.into()
            ],
            "img{i}: {}",
            text(&out.stdout)
        );
    }
    assert!(!dir.path().join("artifacts/IMAGES_TAGGED").exists());

    // The registry is well again: the rerun writes only the missing tag.
    proxy.set_rules(Vec::new());
    let before = proxy.forwarded_puts.lock().unwrap().len();
    let out = promote_tag(dir.path(), "2026.3-main", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let puts = proxy.forwarded_puts.lock().unwrap()[before..].to_vec();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert!(
        puts[0].0.ends_with("img3/manifests/2026.3-stable"),
        "{puts:?}"
    );
    let c = client(None);
    for (n, m) in names.iter().zip(&new) {
        let d = n.replace(&proxy.host(), &reg.host());
        assert_eq!(
            head_digest(&c, &format!("{d}:2026.3-stable")).as_deref(),
            Some(m.digest.as_str())
        );
    }
    assert!(dir.path().join("artifacts/IMAGES_TAGGED").exists());
}

/// The first PUT of img0 is held by the proxy past the client's timeout, then forwarded:
/// it lands after the client gave up. img1 keeps failing (500). A write that got no answer
/// may still land, so the run must not roll back (the late PUT would undo the restore):
/// it rolls forward, reads back after a settle time, never reports img0 `restored`, and
/// what it reports is what the registry holds once the late PUT has landed.
#[test]
fn late_put_is_never_reported_restored() {
    let reg = Registry::start(RegistryAuth::None);
    let hold = std::time::Duration::from_secs(6);
    let proxy = Proxy::with_rules(
        reg.port,
        vec![
            Rule::HoldFirstPut {
                path: "img0/manifests/2026.3-stable".into(),
                hold,
            },
            Rule::FailPut {
                path: "img1/manifests/2026.3-stable".into(),
                status: 500,
            },
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let (names, old, new) = stack_through_proxy(&reg, &proxy, dir.path(), 3, 2);
    let started = std::time::Instant::now();
    let out = promote_tag(
        dir.path(),
        "2026.3-main",
        &["--timeout", "5s", "--request-timeout", "1s"],
    );
    let err = text(&out.stderr);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{err}
{stdout}"
    );
    assert!(err.contains("rolling forward instead of back"), "{err}");
    assert!(!stdout.contains("restored"), "{stdout}");
    let rows = table(&stdout);
    let t0 = format!("{}:2026.3-stable", names[0]);
    assert_eq!(
        rows[&t0],
        [
            old[0].as_ref().unwrap().digest.clone(),
            new[0].digest.clone(),
            new[0].digest.clone(),
            "promoted".into()
        ],
        "{stdout}"
    );
    let t1 = format!("{}:2026.3-stable", names[1]);
    let old1 = old[1].as_ref().unwrap().digest.clone();
    assert_eq!(
        rows[&t1],
        [
            old1.clone(),
            old1,
            new[1].digest.clone(),
            "unchanged".into()
        ]
    );
    // The new target is not written while an existing one cannot be promoted.
    let t2 = format!("{}:2026.3-stable", names[2]);
    assert_eq!(
        rows[&t2],
        [
            "absent".to_string(),
            "absent".into(),
            new[2].digest.clone(),
            "unchanged".into()
        ]
    );

    // Once the held PUT has surely landed, the registry holds what the report said.
    std::thread::sleep(
        (hold + std::time::Duration::from_secs(1)).saturating_sub(started.elapsed()),
    );
    assert!(
        proxy.forwarded_to("img0/manifests/2026.3-stable") >= 2,
        "the held PUT was forwarded"
    );
    let c = client(None);
    for (t, row) in &rows {
        let now = head_digest(&c, &t.replace(&proxy.host(), &reg.host()))
            .unwrap_or_else(|| "absent".into());
        assert_eq!(&now, &row[1], "{t}");
    }

    // Rerun without faults: completes.
    proxy.set_rules(Vec::new());
    let out = promote_tag(dir.path(), "2026.3-main", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// A refused PUT triggers the rollback, but meanwhile another writer moved img0: the
/// restore leaves it alone (it no longer holds this run's digest), puts img1 back, and the
/// run exits 4 with the table.
#[test]
fn restore_never_overwrites_another_writer() {
    let reg = Registry::start(RegistryAuth::None);
    let proxy = Proxy::with_rules(reg.port, Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let (names, old, new) = stack_through_proxy(&reg, &proxy, dir.path(), 3, 3);
    let other: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let t0_direct = format!(
        "{}:2026.3-stable",
        names[0].replace(&proxy.host(), &reg.host())
    );
    let hook = {
        let other = other.clone();
        let forwarded = proxy.forwarded_puts.clone();
        let t0 = t0_direct.clone();
        std::sync::Arc::new(move || {
            // Wait until this run's PUT of img0 went through, then write over it.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !forwarded
                .lock()
                .unwrap()
                .iter()
                .any(|(p, _)| p.ends_with("img0/manifests/2026.3-stable"))
            {
                assert!(std::time::Instant::now() < deadline);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let m = rt().block_on(push_kind(
                &client(None),
                &r(&t0),
                Kind::Docker,
                "other writer",
            ));
            *other.lock().unwrap() = Some(m.digest);
        }) as std::sync::Arc<dyn Fn() + Send + Sync>
    };
    proxy.set_rules(vec![Rule::HookThenFail {
        path: "img2/manifests/2026.3-stable".into(),
        status: 400,
        hook,
    }]);
    let out = promote_main(dir.path());
    let err = text(&out.stderr);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{err}
{stdout}"
    );
    assert!(
        err.contains("another writer changed 1 of 3 targets"),
        "{err}"
    );
    let z = other
        .lock()
        .unwrap()
        .clone()
        .expect("the other writer wrote");
    let rows = table(&stdout);
    let o = |i: usize| old[i].as_ref().unwrap().digest.clone();
    let t = |i: usize| format!("{}:2026.3-stable", names[i]);
    assert_eq!(
        rows[&t(0)],
        [
            o(0),
            z.clone(),
            new[0].digest.clone(),
            "other-writer".into()
        ]
    );
    assert_eq!(
        rows[&t(1)],
        [o(1), o(1), new[1].digest.clone(), "restored".into()]
    );
    assert_eq!(
        rows[&t(2)],
        [o(2), o(2), new[2].digest.clone(), "unchanged".into()]
    );
    assert_eq!(
        head_digest(&client(None), &t0_direct),
        Some(z),
        "the other writer's tag was overwritten"
    );
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
        let page = stackctl::report::names::page_name(&format!("{n}:2026.3-main"));
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
    let out = run_stackctl(&args, None, &env);
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
    let out = run_stackctl(&args, None, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        head_digest(&c, &format!("{}:2026.3-stable", names[0])),
        None
    );
    std::fs::write(wiki.join("Home.md"), &home_before).unwrap();

    // Quarter promotion.
    let mut args = vec!["tag", "2026.3-main"];
    args.extend(common);
    let out = run_stackctl(&args, None, &env);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    for (n, m) in names.iter().zip(&src) {
        assert_eq!(
            head_digest(&c, &format!("{n}:2026.3-stable")).as_deref(),
            Some(m.digest.as_str())
        );
    }
    assert_eq!(layer_gets(&reg), 0, "promotion fetched layers");
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
                stackctl::report::names::page_name(s)
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
        let page = stackctl::report::names::page_name(&format!("{n}:2026.3-stable"));
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
    let out = run_stackctl(&args, None, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let global: Vec<String> = names.iter().map(|n| format!("{n}:stable")).collect();
    for (g, m) in global.iter().zip(&src) {
        assert_eq!(head_digest(&c, g).as_deref(), Some(m.digest.as_str()));
    }
    let expected_stable = format!(
        "| Image | Based On | Manifest |\n| :- | :- | :- |\n|{}|{}|{}|\n",
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
                stackctl::report::names::page_name(s)
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
        let page = stackctl::report::names::page_name(&format!("{n}:stable"));
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
    assert_eq!(layer_gets(&reg), 0);

    // --offline only with --dry-run; offline dry run touches no registry.
    let mut args = vec!["tag", "2026.3-main", "--offline"];
    args.extend(common);
    assert_eq!(run_stackctl(&args, None, &env).status.code(), Some(2));
    drop(reg);
    let mut args = vec!["tag", "2026.3-main", "--offline", "--dry-run"];
    args.extend(common);
    let out = run_stackctl(&args, None, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The upstream wiki's way: Docker Hub short names (`ucsdets/...`) in the spec, Home.md rows
/// and page names, and a tag prefix with a dash. Docker Hub cannot be reached from a test:
/// `--registry-endpoint docker.io=127.0.0.1:PORT` sends the requests for docker.io names to a
/// loopback registry (whose repositories are the same `ucsdets/...` paths), while every name
/// written (Home.md, Stable_Tag.md, pages, links, IMAGES_*, stdout) stays as the spec
/// writes it.
#[test]
fn promotion_with_docker_hub_short_names_keeps_them_as_written() {
    let reg = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let names = ["ucsdets/datascience-notebook", "ucsdets/rstudio-notebook"];
    let mut yaml = String::from("images:\n");
    for (i, n) in names.iter().enumerate() {
        let key = n.trim_start_matches("ucsdets/");
        yaml.push_str(&format!("  {key}:\n    image_name: {n}\n"));
        if i > 0 {
            yaml.push_str("    depend_on: datascience-notebook\n");
        }
        let d = dir.path().join("images").join(key);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
    }
    yaml.push_str("tag:\n  prefix: \"2026.3-rc\"\n");
    std::fs::write(dir.path().join("spec.yml"), yaml).unwrap();
    let c = client(None);
    let mut src = Vec::new();
    rt().block_on(async {
        for (i, n) in names.iter().enumerate() {
            let at = r(&format!("{}/{n}:2026.3-rc-main", reg.host()));
            src.push(push_kind(&c, &at, ALL_KINDS[i], "main").await);
        }
    });
    // The wiki as upstream has it: short names in rows, links and page file names.
    let wiki = dir.path().join("wiki");
    std::fs::create_dir_all(&wiki).unwrap();
    let old_row = "|[`5c83aa3`](https://github.com/o/r/commit/5c83aa3)|`ucsdets/datahub-base-notebook:2023.2-stable`|[Link](https://github.com/o/r/wiki/ucsdets-datahub-base-notebook-2023.2-stable)|\n";
    let home_before = format!(
        "# DataHub\n\n| Commit | Image | Manifest |\n|--------|-------|----------|\n{old_row}"
    );
    std::fs::write(wiki.join("Home.md"), &home_before).unwrap();
    for n in names {
        let page = format!("{}-2026.3-rc-main.md", n.replace('/', "-"));
        std::fs::write(wiki.join(page), format!("page of {n}\n")).unwrap();
    }
    let artifacts = dir.path().join("artifacts");
    let endpoint = format!("docker.io={}", reg.host());
    let common = [
        "--spec".to_string(),
        dir.path().join("spec.yml").to_str().unwrap().to_string(),
        "--repo".to_string(),
        dir.path().to_str().unwrap().to_string(),
        "--wiki".to_string(),
        wiki.to_str().unwrap().to_string(),
        "--artifacts".to_string(),
        artifacts.to_str().unwrap().to_string(),
        "--repo-url".to_string(),
        "https://github.com/o/r".to_string(),
        "--registry-endpoint".to_string(),
        endpoint,
    ];
    let run = |first: &[&str]| {
        let mut args: Vec<&str> = first.to_vec();
        args.extend(common.iter().map(String::as_str));
        let out = run_stackctl(&args, None, &[("GITHUB_SHA", "abcdef0123456")]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains("docker.io"), "{all}");
        out
    };
    let listed = |f: &str| std::fs::read_to_string(artifacts.join(f)).unwrap();
    let lines = |tag: &str| -> String { names.iter().map(|n| format!("{n}:{tag}\n")).collect() };

    // Quarter promotion: split by the spec's prefix, `2026.3-rc-main` -> `2026.3-rc-stable`.
    let out = run(&["tag", "2026.3-rc-main"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ucsdets/datascience-notebook:2026.3-rc-main -> ucsdets/datascience-notebook:2026.3-rc-stable"),
        "{stdout}"
    );
    for (n, m) in names.iter().zip(&src) {
        let stable = format!("{}/{n}:2026.3-rc-stable", reg.host());
        assert_eq!(head_digest(&c, &stable).as_deref(), Some(m.digest.as_str()));
    }
    let row = "|[`abcdef0`](https://github.com/o/r/commit/abcdef0)|`ucsdets/datascience-notebook:2026.3-rc-stable`<br>`ucsdets/rstudio-notebook:2026.3-rc-stable`|[Link](https://github.com/o/r/wiki/ucsdets-datascience-notebook-2026.3-rc-stable)<br>[Link](https://github.com/o/r/wiki/ucsdets-rstudio-notebook-2026.3-rc-stable)|\n";
    assert_eq!(
        std::fs::read_to_string(wiki.join("Home.md")).unwrap(),
        home_before.replace(old_row, &format!("{row}{old_row}"))
    );
    for n in names {
        let page = wiki.join(format!("{}-2026.3-rc-stable.md", n.replace('/', "-")));
        assert_eq!(
            std::fs::read_to_string(&page).unwrap(),
            format!("page of {n}\n")
        );
    }
    assert_eq!(listed("IMAGES_ORIGINAL"), lines("2026.3-rc-main"));
    assert_eq!(listed("IMAGES_TAGGED"), lines("2026.3-rc-stable"));

    // Global promotion, from the row just written.
    run(&["tag", "--global-stable", "2026.3-rc"]);
    for (n, m) in names.iter().zip(&src) {
        let global = format!("{}/{n}:stable", reg.host());
        assert_eq!(head_digest(&c, &global).as_deref(), Some(m.digest.as_str()));
    }
    assert_eq!(
        std::fs::read_to_string(wiki.join("Stable_Tag.md")).unwrap(),
        "| Image | Based On | Manifest |\n| :- | :- | :- |\n|`ucsdets/datascience-notebook:stable`<br>`ucsdets/rstudio-notebook:stable`|`ucsdets/datascience-notebook:2026.3-rc-stable`<br>`ucsdets/rstudio-notebook:2026.3-rc-stable`|[Link](https://github.com/o/r/wiki/ucsdets-datascience-notebook-stable)<br>[Link](https://github.com/o/r/wiki/ucsdets-rstudio-notebook-stable)|\n"
    );
    for n in names {
        let page = wiki.join(format!("{}-stable.md", n.replace('/', "-")));
        assert_eq!(
            std::fs::read_to_string(&page).unwrap(),
            format!("page of {n}\n")
        );
    }
    assert_eq!(listed("IMAGES_ORIGINAL_STABLE"), lines("2026.3-rc-stable"));
    assert_eq!(listed("IMAGES_GLOBAL_STABLE"), lines("stable"));
    let mut files: Vec<String> = std::fs::read_dir(&wiki)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(files.iter().all(|f| !f.contains("docker")), "{files:?}");
    assert_eq!(layer_gets(&reg), 0);
}

/// Early upstream rows carry `<prefix>-<short commit>` tags (`tag.suffix: commit`): such a
/// tag is promoted to `<prefix>-stable` like a branch tag.
#[test]
fn promotion_of_a_commit_suffix_tag() {
    let reg = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let names = write_spec(dir.path(), &reg.host(), 2);
    let spec = dir.path().join("spec.yml");
    let yaml = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, format!("{yaml}  suffix: commit\n")).unwrap();
    let c = client(None);
    let mut src = Vec::new();
    rt().block_on(async {
        for (i, n) in names.iter().enumerate() {
            let at = r(&format!("{n}:2026.3-5c83aa3"));
            src.push(push_kind(&c, &at, ALL_KINDS[i], "commit").await);
        }
    });
    let artifacts = dir.path().join("artifacts");
    let out = run_stackctl(
        &[
            "tag",
            "2026.3-5c83aa3",
            "--spec",
            spec.to_str().unwrap(),
            "--repo",
            dir.path().to_str().unwrap(),
            "--artifacts",
            artifacts.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (n, m) in names.iter().zip(&src) {
        assert_eq!(
            head_digest(&c, &format!("{n}:2026.3-stable")).as_deref(),
            Some(m.digest.as_str())
        );
    }
    assert_eq!(
        std::fs::read_to_string(artifacts.join("IMAGES_TAGGED")).unwrap(),
        names
            .iter()
            .map(|n| format!("{n}:2026.3-stable\n"))
            .collect::<String>()
    );
}

/// Invalid targets and digests are refused before any request (the source's registry does
/// not even listen), with exit 2 and a message naming what was given, never read as a
/// Docker Hub name.
#[test]
fn bad_references_are_refused_before_any_request() {
    let src = "127.0.0.1:1/stack/base:2026.3-main";
    let long_tag = "a".repeat(129);
    let long_ref = format!("127.0.0.1:1/stack/base:{}", "b".repeat(129));
    for dst in [
        "127.0.0.1:5301",
        "localhost:5000",
        long_tag.as_str(),
        "stäble",
        "127.0.0.1:1/stack/base:stäble",
        long_ref.as_str(),
    ] {
        let out = run_stackctl(&["retag", src, dst], None, &[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{dst}: {err}");
        assert!(err.contains(dst), "{dst}: {err}");
        assert!(
            !err.contains("docker.io") && !err.contains("cannot reach"),
            "{dst}: {err}"
        );
        assert!(!err.contains("not found"), "{dst}: {err}");
    }
    let upper = format!("127.0.0.1:1/stack/base@sha256:{}", "AB".repeat(32));
    let out = run_stackctl(&["exists", &upper], None, &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("lowercase hex") && !err.contains("cannot reach"),
        "{err}"
    );
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
    let out = run_stackctl(&["exists", &src], None, &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dst = format!("{host}/org/other:copy");
    let out = run_stackctl(&["retag", &src, &dst], None, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), m.digest);
    let out = run_stackctl(&["retag", &src, "2026.3-stable"], None, &env);
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

/// 429 (with Retry-After), a dropped connection and a 503 in a row: retried, then it works.
#[test]
fn transient_failures_are_retried() {
    let reg = Registry::start(RegistryAuth::None);
    let c = client(None);
    let src = format!("{}/stack/a:src", reg.host());
    let m = rt().block_on(push_kind(&c, &r(&src), Kind::Docker, "retry"));
    let proxy = Proxy::start(reg.port, Fault::Flaky);
    let started = std::time::Instant::now();
    let out = run_stackctl(
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

/// SIGINT during a promotion (a PUT held by the proxy): writes stop, every target is read
/// back, the table printed, exit 130. A second SIGINT exits at once, without waiting for
/// the settle time.
#[test]
fn interrupted_promotion_reads_back_and_a_second_signal_exits_at_once() {
    for (signals, request_timeout) in [(1, "2s"), (2, "30s")] {
        let reg = Registry::start(RegistryAuth::None);
        let proxy = Proxy::with_rules(
            reg.port,
            vec![Rule::HoldFirstPut {
                path: "img0/manifests/2026.3-stable".into(),
                hold: std::time::Duration::from_secs(40),
            }],
        );
        let dir = tempfile::tempdir().unwrap();
        let (names, _old, _new) = stack_through_proxy(&reg, &proxy, dir.path(), 2, 2);
        let spec = dir.path().join("spec.yml");
        let home = tempfile::tempdir().unwrap();
        let before = proxy
            .manifest_puts
            .load(std::sync::atomic::Ordering::SeqCst);
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_stackctl"))
            .args(["tag", "2026.3-main", "--spec"])
            .arg(&spec)
            .arg("--repo")
            .arg(dir.path())
            .arg("--artifacts")
            .arg(dir.path().join("artifacts"))
            .args(["--request-timeout", request_timeout, "--timeout", "60s"])
            .env("HOME", home.path())
            .env("DOCKER_CONFIG", home.path().join("docker"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until both PUTs reached the proxy (one is held).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while proxy
            .manifest_puts
            .load(std::sync::atomic::Ordering::SeqCst)
            < before + 2
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no PUT reached the proxy"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let kill = |sig: &str| {
            assert!(std::process::Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status()
                .unwrap()
                .success())
        };
        kill("-INT");
        let sent = std::time::Instant::now();
        if signals == 2 {
            std::thread::sleep(std::time::Duration::from_millis(500));
            kill("-INT");
        }
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{err}");
        if signals == 1 {
            // Graceful: the settle time (2s), then the read-back and the table.
            assert!(sent.elapsed() < std::time::Duration::from_secs(10), "{err}");
            assert!(err.contains("interrupted; "), "{err}");
            let rows = table(&text(&out.stdout));
            assert_eq!(rows.len(), 2, "{}", text(&out.stdout));
            assert!(
                rows[&format!("{}:2026.3-stable", names[0])][3] != "restored",
                "{}",
                text(&out.stdout)
            );
        } else {
            // At once: long before the 30 s settle time.
            assert!(sent.elapsed() < std::time::Duration::from_secs(3), "{err}");
            assert!(err.contains("exiting at once"), "{err}");
        }
    }
}

/// A command with nothing to clean up (`exists`, waiting on a registry that never answers)
/// ends at the first SIGTERM, exit 130, as at SIGINT.
#[test]
fn sigterm_ends_a_command_at_once() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = silent.local_addr().unwrap().to_string();
    let held = std::thread::spawn(move || {
        // Accept and hold the connections, never answering.
        let mut conns = Vec::new();
        for c in silent.incoming().take(1) {
            conns.push(c);
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
    });
    for sig in ["-TERM", "-INT"] {
        let home = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_stackctl"))
            .args(["exists", &format!("{host}/a/b:c")])
            .env("HOME", home.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
        assert!(std::process::Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let sent = std::time::Instant::now();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{sig}: {}", text(&out.stderr));
        assert!(sent.elapsed() < std::time::Duration::from_secs(2));
        assert!(
            text(&out.stderr).contains("interrupted"),
            "{}",
            text(&out.stderr)
        );
    }
    drop(held);
}

/// The manifest requests of the registry's access log from byte `from` on, as
/// `METHOD image:tag` in the order the registry finished them.
fn manifest_requests(reg: &Registry, from: usize) -> Vec<String> {
    let re =
        regex::Regex::new(r#""(GET|PUT|HEAD) /v2/stack/(img\d+)/manifests/([^ "]+) HTTP"#).unwrap();
    re.captures_iter(&reg.log()[from..])
        .map(|c| format!("{} {}:{}", &c[1], &c[2], &c[3]))
        .collect()
}

/// A promotion of 4 images whose targets all exist costs 3 rounds, each concurrent across
/// the images: GET sources and targets together, PUT (the digest taken from the PUT
/// answer, no HEAD after it), then the read-back (HEAD) that the verdict comes from, read
/// once more after --confirm-after (a newer promotion may be about to write).
#[test]
fn promotion_takes_three_rounds() {
    let reg = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let names = write_spec(dir.path(), &reg.host(), 4);
    let c = client(None);
    rt().block_on(async {
        for (i, n) in names.iter().enumerate() {
            push_kind(
                &c,
                &r(&format!("{n}:2026.3-main")),
                Kind::Oci,
                &format!("n{i}"),
            )
            .await;
            push_kind(
                &c,
                &r(&format!("{n}:2026.3-stable")),
                Kind::Oci,
                &format!("o{i}"),
            )
            .await;
        }
    });
    let from = reg.log().len();
    let out = promote_main(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let seen = manifest_requests(&reg, from);
    let rounds: Vec<(String, usize)> = seen.iter().fold(Vec::new(), |mut acc, r| {
        let m = r.split(' ').next().unwrap().to_string();
        match acc.last_mut() {
            Some((last, n)) if *last == m => *n += 1,
            _ => acc.push((m, 1)),
        }
        acc
    });
    assert_eq!(
        rounds,
        [
            ("GET".to_string(), 8),
            ("PUT".into(), 4),
            // The read-back, and the same read again after --confirm-after.
            ("HEAD".into(), 8)
        ],
        "{seen:#?}"
    );
    // Run again: every target holds its source's digest; nothing is written.
    let from = reg.log().len();
    let out = promote_main(dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        !manifest_requests(&reg, from)
            .iter()
            .any(|r| r.starts_with("PUT")),
        "a rerun wrote again"
    );
}

/// Start-up reads no TLS root: with the system's roots made unreadable, a plain-http
/// (loopback) retag works, and only an https registry needs them (and then says so).
#[test]
fn tls_roots_are_loaded_only_for_https() {
    let reg = Registry::start(RegistryAuth::None);
    let c = client(None);
    let src = format!("{}/stack/a:src", reg.host());
    let m = rt().block_on(push_kind(&c, &r(&src), Kind::Docker, "tls"));
    let none = [
        ("SSL_CERT_FILE", "/nonexistent/roots.pem"),
        ("SSL_CERT_DIR", "/nonexistent"),
    ];
    let out = run_stackctl(&["retag", &src, "copy"], None, &none);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), m.digest);
    // The same variables do reach the TLS set-up: an https registry cannot be used.
    let out = run_stackctl(&["exists", "registry.invalid/a/b:c"], None, &none);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot set up TLS"),
        "{}",
        text(&out.stderr)
    );
}

/// `stackctl tag 2026.3-main` on the spec in `dir`, artifacts in `dir/artifacts`.
fn promote_main(dir: &Path) -> Output {
    promote_tag(dir, "2026.3-main", &[])
}

/// `stackctl tag TAG EXTRA...` on the spec in `dir`, artifacts in `dir/artifacts`.
fn promote_tag(dir: &Path, tag: &str, extra: &[&str]) -> Output {
    let spec = dir.join("spec.yml");
    let mut args = vec![
        "tag",
        tag,
        "--spec",
        spec.to_str().unwrap(),
        "--repo",
        dir.to_str().unwrap(),
    ];
    let artifacts = dir.join("artifacts");
    args.extend(["--artifacts", artifacts.to_str().unwrap()]);
    args.extend(extra);
    run_stackctl(&args, None, &[])
}

/// `exists REF` with a wrong password, then with no credential: each exits 2; the first
/// names the user and the 401 but never the password, the second says it was anonymous.
fn assert_refused(reference: &str, wrong_password: &str) {
    let out = run_stackctl(
        &["exists", reference, "--username", USER, "--password-stdin"],
        Some(wrong_password),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("\"alice\"") && err.contains("401"), "{err}");
    assert!(!err.contains(wrong_password), "{err}");
    let out = run_stackctl(&["exists", reference], None, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("anonymous"), "{err}");
}

/// The composite Action (action.yml) run step by step as a runner would: `retag` and the
/// quarter promotion `tag` with registry credentials from inputs. The outputs file has
/// `exit-code` and the promotion lines, and neither the password nor the TLS key given as
/// inputs appears in anything printed or written for the runner.
#[test]
fn github_action_runs_commands_and_keeps_secrets() {
    use support::action_runner::ActionRunner;
    let reg = Registry::start(RegistryAuth::Basic {
        user: USER.into(),
        password: PASSWORD.into(),
    });
    let host = reg.host();
    let c = client(Some(&host));
    let dir = tempfile::tempdir().unwrap();
    let names = write_spec(dir.path(), &host, 2);
    rt().block_on(async {
        for (i, n) in names.iter().enumerate() {
            push_kind(
                &c,
                &r(&format!("{n}:2026.3-main")),
                Kind::Oci,
                &format!("a{i}"),
            )
            .await;
        }
    });
    let runner = ActionRunner::new(Path::new(support::cli::BIN));
    const TLS_KEY: &str =
        "-----BEGIN PRIVATE KEY-----\nTLS-KEY-MATERIAL-1234\n-----END PRIVATE KEY-----";

    let run = runner.run(&[
        ("command", "retag"),
        ("args", &format!("'{}:2026.3-main' copied", names[0])),
        ("registry-username", USER),
        ("registry-password", PASSWORD),
        ("buildkit-key", TLS_KEY),
    ]);
    let everything = format!("{}{}{:?}", run.printed, run.runner_files, run.outputs);
    assert_eq!(run.exit_code, Some(0), "{everything}");
    assert_eq!(run.outputs["exit-code"], "0");
    assert!(run.printed.contains("used by 'build' only"), "{everything}");
    assert_eq!(
        head_digest(&c, &format!("{}:copied", names[0])),
        head_digest(&c, &format!("{}:2026.3-main", names[0]))
    );
    for secret in [PASSWORD, "TLS-KEY-MATERIAL"] {
        assert!(
            !everything.contains(secret),
            "a secret was printed or written:\n{everything}"
        );
    }

    let run = runner.run(&[
        ("command", "tag"),
        (
            "args",
            &format!(
                "2026.3-main --spec {0}/spec.yml --repo {0}",
                dir.path().display()
            ),
        ),
        ("registry-username", USER),
        ("registry-password", PASSWORD),
    ]);
    let everything = format!("{}{}{:?}", run.printed, run.runner_files, run.outputs);
    assert_eq!(run.exit_code, Some(0), "{everything}");
    let expected: Vec<String> = names
        .iter()
        .map(|n| format!("{n}:2026.3-main -> {n}:2026.3-stable"))
        .collect();
    assert_eq!(
        run.outputs["promotion"],
        expected.join("\n"),
        "{everything}"
    );
    assert!(!everything.contains(PASSWORD), "{everything}");
    for n in &names {
        assert!(head_digest(&c, &format!("{n}:2026.3-stable")).is_some());
    }

    // A refused password: the step fails with stackctl's exit code 2, the password unsaid.
    let run = runner.run(&[
        ("command", "exists"),
        ("args", &format!("{}:2026.3-main", names[1])),
        ("registry-username", USER),
        ("registry-password", "not-the-Password-42"),
    ]);
    let everything = format!("{}{}{:?}", run.printed, run.runner_files, run.outputs);
    assert_eq!(run.exit_code, Some(2), "{everything}");
    assert_eq!(run.outputs["exit-code"], "2");
    assert!(!everything.contains("not-the-Password-42"), "{everything}");

    // An unknown command is refused by the Action itself.
    let run = runner.run(&[("command", "push")]);
    assert_eq!(run.exit_code, Some(2));
    assert!(run
        .printed
        .contains("must be one of build, merge, tag, plan, retag, exists"));
}

/// action.yml and every workflow in docs/github-actions.md (the ```yaml blocks under a
/// `.github/workflows/NAME.yml` heading) pass GitHub's published JSON schemas, as shipped by
/// check-jsonschema (PyPI; scripts/dev-env installs it).
#[test]
fn github_action_and_doc_workflows_match_githubs_schemas() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::process::Command::new("check-jsonschema")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "check-jsonschema is not installed (scripts/dev-env installs it)"
        );
        eprintln!(
            "SKIPPED github_action_and_doc_workflows_match_githubs_schemas: no check-jsonschema"
        );
        return;
    }
    let check = |schema: &str, files: &[std::path::PathBuf]| {
        let out = std::process::Command::new("check-jsonschema")
            .args(["--builtin-schema", schema])
            .args(files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{schema}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    };
    check("vendor.github-actions", &[root.join("action.yml")]);

    let doc = std::fs::read_to_string(root.join("docs/github-actions.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut workflows = Vec::new();
    let mut heading = String::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.starts_with('#') {
            heading = line.to_string();
        } else if line == "```yaml" && heading.contains(".github/workflows/") {
            let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            let name = heading.split(".github/workflows/").nth(1).unwrap();
            let name = name.trim_end_matches('`').trim();
            let path = dir.path().join(name);
            std::fs::write(&path, block.join("\n")).unwrap();
            workflows.push(path);
        }
    }
    for name in [
        "build.yml",
        "tag.yml",
        "tag_global_stable.yml",
        "build-split.yml",
        "rebuild-moved-bases.yml",
    ] {
        assert!(
            workflows.iter().any(|w| w.ends_with(name)),
            "no {name} in docs/github-actions.md (found {workflows:?})"
        );
    }
    check("vendor.github-workflows", &workflows);
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

/// A spec of one image `host/split/base` declaring `platforms`, in `dir`.
fn write_platform_spec(dir: &Path, host: &str, platforms: &str) {
    std::fs::create_dir_all(dir.join("images/base")).unwrap();
    std::fs::write(dir.join("images/base/Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(
        dir.join("spec.yml"),
        format!("images:\n  base:\n    image_name: {host}/split/base\nplatforms: {platforms}\ntag:\n  prefix: \"2026.3\"\n"),
    )
    .unwrap();
}

/// What a split run leaves for one image: `run/artifacts/<image>.yaml`, awaiting a merge.
/// (Written here as input data; tests/e2e_build.rs merges real split builds.)
fn write_split_artifact(run: &Path, image: &str, commit: &str, platform: &str, digest: &str) {
    use stackctl::report::image::PlatformReport;
    use stackctl::report::{ArtifactDirs, ImageReport};
    let mut r = ImageReport::started("base", image);
    r.built = true;
    r.commit = Some(commit.into());
    r.awaiting_merge = true;
    r.platforms.push(PlatformReport {
        platform: platform.into(),
        digest: Some(digest.into()),
        success: true,
        basic: None,
    });
    r.finish(std::time::Duration::from_secs(1));
    r.write(&ArtifactDirs::new(run)).unwrap();
}

/// `stackctl merge` on hand-made per-platform images pushed by digest: the tag names an
/// index (a Docker manifest list for Docker children, an OCI index for OCI ones) listing
/// each platform's digest with its platform, made without a blob GET but the configs; a
/// rerun gives the same digest. Refused with exit 2 and no tag: a declared platform
/// missing, different commits, a digest recorded for the wrong platform.
#[test]
fn merge_puts_platform_images_together_and_refuses_gaps() {
    let reg = Registry::start(RegistryAuth::None);
    let host = reg.host();
    let c = client(None);
    let dir = support::git_repo::TestRepo::new("main");
    write_platform_spec(dir.path(), &host, "[linux/amd64, linux/arm64]");
    let commit = dir.commit("a two-platform image").to_string();
    let spec = dir.path().join("spec.yml");
    for (oci, want_type) in [
        (false, stackctl::registry::client::DOCKER_MANIFEST_LIST),
        (true, stackctl::registry::client::OCI_INDEX),
    ] {
        let branch = if oci { "oci" } else { "docker" };
        let tag = format!("2026.3-{branch}");
        let tag = tag.as_str();
        let image = format!("{host}/split/base:{tag}");
        let repo = r(&image);
        let (amd, arm) = rt().block_on(async {
            (
                support::hand_made::push_single(&c, &repo, oci, tag, "amd64", 2, 512).await,
                support::hand_made::push_single(&c, &repo, oci, tag, "arm64", 2, 512).await,
            )
        });
        let runs = tempfile::tempdir().unwrap();
        let (amd_dir, arm_dir) = (runs.path().join("amd64"), runs.path().join("arm64"));
        write_split_artifact(&amd_dir, &image, &commit, "linux/amd64", &amd.digest);
        write_split_artifact(&arm_dir, &image, &commit, "linux/arm64", &arm.digest);
        let merge = |dirs: &[&Path], out: &Path| {
            let mut args = vec!["merge", "--json", "--spec", spec.to_str().unwrap()];
            args.extend(["--repo", dir.path().to_str().unwrap()]);
            args.extend(["--branch", branch, "--out", out.to_str().unwrap()]);
            args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
            run_stackctl(&args, None, &[])
        };

        // One platform only: refused, nothing tagged.
        let out = tempfile::tempdir().unwrap();
        let o = merge(&[&amd_dir], out.path());
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!("{image}: platform linux/arm64"))
                && err.contains(&amd_dir.display().to_string()),
            "{err}"
        );
        assert_eq!(head_digest(&c, &image), None);
        assert!(!out.path().join("artifacts").exists());

        // Both: one index, tagged.
        let before = blob_gets(&reg);
        let o = merge(&[&amd_dir, &arm_dir], out.path());
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let digest = json["images"][0]["digest"].as_str().unwrap().to_string();
        assert_eq!(json["commit"], commit.as_str());
        assert_eq!(json["images"][0]["tagged"], true);
        // No layer was read (the configs are: the platform check, the manifest page).
        let log = reg.log();
        for m in [&amd, &arm] {
            let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
            for l in v["layers"].as_array().unwrap() {
                let d = l["digest"].as_str().unwrap();
                assert!(
                    !log.contains(&format!("GET /v2/split/base/blobs/{d}")),
                    "{d} was read"
                );
            }
        }
        assert!(blob_gets(&reg) > before, "the configs are read");
        let index = rt().block_on(c.get_manifest(&repo)).unwrap().unwrap();
        assert_eq!(index.digest, digest);
        assert_eq!(index.media_type, want_type);
        let v: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
        let listed: Vec<(String, String, u64)> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["platform"]["architecture"].as_str().unwrap().to_string(),
                    m["digest"].as_str().unwrap().to_string(),
                    m["size"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("amd64".into(), amd.digest.clone(), amd.bytes.len() as u64),
                ("arm64".into(), arm.digest.clone(), arm.bytes.len() as u64)
            ]
        );
        assert_eq!(v["manifests"][0]["mediaType"], amd.media_type.as_str());
        // The merged artifact and IMAGES_BUILT.
        let merged = stackctl::report::ImageReport::read(
            &stackctl::report::ArtifactDirs::new(out.path()).image_yaml(&image),
        )
        .unwrap();
        assert_eq!(merged.digest.as_deref(), Some(digest.as_str()));
        assert!(merged.pushed && merged.success && !merged.awaiting_merge);
        let platforms: Vec<(&str, Option<&str>)> = merged
            .platforms
            .iter()
            .map(|p| (p.platform.as_str(), p.digest.as_deref()))
            .collect();
        assert_eq!(
            platforms,
            [
                ("linux/amd64", Some(amd.digest.as_str())),
                ("linux/arm64", Some(arm.digest.as_str()))
            ]
        );
        assert_eq!(
            std::fs::read_to_string(out.path().join("artifacts/IMAGES_BUILT")).unwrap(),
            format!("{image}\n")
        );
        assert!(out
            .path()
            .join("manifests")
            .join(format!("{}.md", stackctl::report::names::page_name(&image)))
            .is_file());
        // Run again: the same index, the same digest.
        let o = merge(&[&arm_dir, &amd_dir], out.path());
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert_eq!(head_digest(&c, &image).as_deref(), Some(digest.as_str()));
    }

    // Different commits, and an arm64 digest recorded as the amd64 image: refused.
    let image = format!("{host}/split/base:2026.3-bad");
    let repo = r(&image);
    let (amd, arm) = rt().block_on(async {
        (
            support::hand_made::push_single(&c, &repo, false, "bad", "amd64", 1, 64).await,
            support::hand_made::push_single(&c, &repo, false, "bad", "arm64", 1, 64).await,
        )
    });
    let runs = tempfile::tempdir().unwrap();
    let (a, b) = (runs.path().join("a"), runs.path().join("b"));
    let other = "1".repeat(40);
    write_split_artifact(&a, &image, &commit, "linux/amd64", &amd.digest);
    write_split_artifact(&b, &image, &other, "linux/arm64", &arm.digest);
    let out = tempfile::tempdir().unwrap();
    let args = |dirs: [&Path; 2]| {
        let mut v: Vec<String> = ["merge", "--spec", spec.to_str().unwrap(), "--repo"]
            .map(String::from)
            .to_vec();
        v.push(dir.path().display().to_string());
        v.extend(["--branch".into(), "bad".into()]);
        v.extend(["--out".into(), out.path().display().to_string()]);
        v.extend(dirs.iter().map(|d| d.display().to_string()));
        v
    };
    let run =
        |v: Vec<String>| run_stackctl(&v.iter().map(String::as_str).collect::<Vec<_>>(), None, &[]);
    let o = run(args([&a, &b]));
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("different commits")
            && err.contains(&format!("{commit} ({})", a.display()))
            && err.contains(&format!("{other} ({})", b.display())),
        "{err}"
    );
    write_split_artifact(&b, &image, &commit, "linux/arm64", &amd.digest);
    std::fs::remove_dir_all(&a).unwrap();
    write_split_artifact(&a, &image, &commit, "linux/amd64", &arm.digest);
    let o = run(args([&a, &b]));
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("recorded as the linux/amd64 image, but its config says linux/arm64"),
        "{err}"
    );
    assert_eq!(head_digest(&c, &image), None);
}

/// `stackctl merge` computes the tag from the spec, the commit and the branch: artifacts
/// whose `image:` names `:stable`, `:2026.3-stable`, `:evil` or another repository, or
/// whose `commit:` fields agree with each other but are not the commit checked out (one
/// unknown to the repository, one that is in it but is not HEAD), are refused with exit 2
/// naming the file and the field, and the registry gets no write at all. The same runs
/// with honest artifacts are merged under the computed tag.
#[test]
fn merge_refuses_tampered_image_and_commit_fields_before_any_write() {
    let reg = Registry::start(RegistryAuth::None);
    let host = reg.host();
    let c = client(None);
    let git = support::git_repo::TestRepo::new("main");
    write_platform_spec(git.path(), &host, "[linux/amd64, linux/arm64]");
    let first = git.commit("a two-platform image").to_string();
    git.write("README", "more\n");
    let commit = git.commit("the commit built").to_string();
    let spec = git.path().join("spec.yml");
    let good = format!("{host}/split/base:2026.3-main");
    let repo = r(&good);
    let (amd, arm) = rt().block_on(async {
        (
            support::hand_made::push_single(&c, &repo, false, "t", "amd64", 1, 64).await,
            support::hand_made::push_single(&c, &repo, false, "t", "arm64", 1, 64).await,
        )
    });
    let merge = |dirs: &[&Path], out: &Path| {
        let mut args = vec!["merge", "--json", "--spec", spec.to_str().unwrap()];
        args.extend(["--repo", git.path().to_str().unwrap()]);
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
        run_stackctl(&args, None, &[("GITHUB_REF_NAME", "main")])
    };
    let writes = |reg: &Registry| {
        reg.log()
            .lines()
            .filter(|l| l.contains("\"PUT ") || l.contains("\"POST ") || l.contains("\"PATCH "))
            .count()
    };
    let cases: Vec<(String, String, &str)> = vec![
        (format!("{host}/split/base:stable"), commit.clone(), "image"),
        (
            format!("{host}/split/base:2026.3-stable"),
            commit.clone(),
            "image",
        ),
        (format!("{host}/split/base:evil"), commit.clone(), "image"),
        (
            format!("{host}/elsewhere/base:2026.3-main"),
            commit.clone(),
            "image",
        ),
        (good.clone(), "d".repeat(40), "commit"),
        (good.clone(), first.clone(), "commit"),
    ];
    for (image, recorded, field) in &cases {
        let runs = tempfile::tempdir().unwrap();
        let (a, b) = (runs.path().join("amd64"), runs.path().join("arm64"));
        write_split_artifact(&a, image, recorded, "linux/amd64", &amd.digest);
        write_split_artifact(&b, image, recorded, "linux/arm64", &arm.digest);
        let file = stackctl::report::ArtifactDirs::new(&a).image_yaml(image);
        let before = writes(&reg);
        let out = tempfile::tempdir().unwrap();
        let o = merge(&[&a, &b], out.path());
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{image} {recorded}: {err}");
        assert!(
            err.contains(&format!("{}: {field}: ", file.display())),
            "{image} {recorded}: {err}"
        );
        assert_eq!(writes(&reg), before, "{image}: no registry write");
        for t in ["stable", "2026.3-stable", "evil", "2026.3-main"] {
            assert_eq!(
                head_digest(&c, &format!("{host}/split/base:{t}")),
                None,
                "{t}"
            );
        }
        assert_eq!(
            head_digest(&c, &format!("{host}/elsewhere/base:2026.3-main")),
            None
        );
        assert!(!out.path().join("artifacts").exists());
    }
    // Honest artifacts: merged under the tag computed for branch main.
    let runs = tempfile::tempdir().unwrap();
    let (a, b) = (runs.path().join("amd64"), runs.path().join("arm64"));
    write_split_artifact(&a, &good, &commit, "linux/amd64", &amd.digest);
    write_split_artifact(&b, &good, &commit, "linux/arm64", &arm.digest);
    let out = tempfile::tempdir().unwrap();
    let o = merge(&[&a, &b], out.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["images"][0]["image"], good.as_str());
    assert!(head_digest(&c, &good).is_some());
}

/// A two-platform image built here (a buildkitd: FROM scratch + COPY, no RUN, so no
/// emulation is needed) keeps its index digest through `stackctl retag` (same repository
/// and another one), the quarter promotion and the global one: every tag names exactly the
/// index the build pushed, and it still lists both platforms.
#[test]
fn a_two_platform_image_is_promoted_with_its_index_digest() {
    let Some(bk) = support::buildkitd::Buildkitd::start(
        "a_two_platform_image_is_promoted_with_its_index_digest",
    ) else {
        return;
    };
    let reg = Registry::start(RegistryAuth::None);
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    write_platform_spec(dir.path(), &host, "[linux/amd64, linux/arm64]");
    std::fs::write(
        dir.path().join("images/base/Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("images/base/hello.txt"), "hello\n").unwrap();
    let spec = dir.path().join("spec.yml");
    let mut args = vec![
        "build-image",
        "base",
        "--spec",
        spec.to_str().unwrap(),
        "--repo",
        dir.path().to_str().unwrap(),
        "--tag",
        "2026.3-main",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "--push",
        "--progress",
        "plain",
    ];
    let bk_args = bk.tcp_args();
    args.extend(bk_args.iter().map(String::as_str));
    let out = run_stackctl(&args, None, &[]);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), bk.log());
    let built = format!("{host}/split/base:2026.3-main");
    let c = client(None);
    let index = rt().block_on(c.get_manifest(&r(&built))).unwrap().unwrap();
    let digest = index.digest.clone();
    assert_eq!(
        text(&out.stdout).trim(),
        format!("{built}@{digest}"),
        "build-image prints the index digest"
    );
    let arches = |m: &Manifest| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
        let mut a: Vec<String> = v["manifests"]
            .as_array()
            .expect("an index")
            .iter()
            .filter(|d| d["platform"]["os"] == "linux")
            .map(|d| d["platform"]["architecture"].as_str().unwrap().to_string())
            .collect();
        a.sort();
        a
    };
    assert_eq!(arches(&index), ["amd64", "arm64"], "{}", text(&index.bytes));

    // retag: same repository, and another one (children and blobs mounted).
    let copy = format!("{host}/elsewhere/base:copy");
    for dst in ["2026.3-copy", copy.as_str()] {
        let out = run_stackctl(&["retag", &built, dst], None, &[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), digest);
    }
    // The quarter promotion, then the global one.
    let out = promote_main(dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = promote_tag(dir.path(), "--global-stable=2026.3", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for tag in [
        format!("{host}/split/base:2026.3-copy"),
        copy.clone(),
        format!("{host}/split/base:2026.3-stable"),
        format!("{host}/split/base:stable"),
    ] {
        let m = rt().block_on(c.get_manifest(&r(&tag))).unwrap().unwrap();
        assert_eq!(m.digest, digest, "{tag}");
        assert_eq!(m.media_type, index.media_type, "{tag}");
        assert_eq!(arches(&m), ["amd64", "arm64"], "{tag}");
    }
    // Every child is in the other repository too.
    let v: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
    for d in v["manifests"].as_array().unwrap() {
        let child = r(&copy).with_digest(d["digest"].as_str().unwrap());
        assert!(
            rt().block_on(c.head_manifest(&child)).unwrap().is_some(),
            "{child}"
        );
    }
}
