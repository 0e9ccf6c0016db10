//! `stackctl manifest`: the page of an image built with known layers and pushed to a
//! loopback registry, checked against the image's real history and the registry's
//! manifest; the info commands' sections (short, over 30 lines, failing).

use crate::support;

use stackctl::report::names::page_name;
use stackctl::sizes::human_size;
use stackctl::wiki::image_page::history::clean_command;
use support::images;
use support::{stackctl, text};
use support::{Registry, RegistryAuth};

const SPEC: &str = r#"
root: m
images:
  m:
    image_name: x/m
    info_cmds: [HELLO, LONG, FAIL]
tag: {prefix: "2026.3"}
all_info_cmds:
  HELLO: {description: Greeting, command: "echo hello"}
  LONG: {description: Long List, command: "seq 1 40"}
  FAIL: {description: Broken Command, command: "echo broken-stderr >&2; exit 3"}
"#;

/// The registry's manifest of `repo:tag`: its layers' digests and sizes.
async fn manifest_layers(host: &str, repo: &str, tag: &str) -> Vec<(String, u64)> {
    let v: serde_json::Value = support::http()
        .get(format!("http://{host}/v2/{repo}/manifests/{tag}"))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["layers"]
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_matches_history_and_runs_info_commands() {
    let bb = images::busybox_image("stackctl-test/busybox-nopy", "1").await;
    let local = images::build(
        "stackctl-test/manifest:1",
        &format!(
            "FROM {bb}\nENV STACK=test\nRUN dd if=/dev/urandom of=/a.bin bs=1000 count=300\nLABEL x=y\nRUN dd if=/dev/urandom of=/b.bin bs=1000 count=50 && echo done\nCMD [\"sh\"]\n"
        ),
        &[],
    )
    .await;
    let reg = Registry::start(RegistryAuth::None);
    // Kept locally: the info commands' container needs no pull, so the registry log
    // shows what the layer table itself reads.
    let r = images::push(&local, &reg.host(), "stack/m", "t1", true).await;
    let repo = images::repo(SPEC, &[]);
    let out_dir = tempfile::tempdir().unwrap();
    let log_before = reg.log().len();

    let out = stackctl()
        .arg("manifest")
        .arg("--repo")
        .arg(repo.path())
        .args(["m", "--ref", &r, "--out"])
        .arg(out_dir.path().join("manifests"))
        .arg("--wiki")
        .arg(out_dir.path().join("wiki"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let file = format!("{}.md", page_name(&r));
    let page = std::fs::read_to_string(out_dir.path().join("manifests").join(&file)).unwrap();
    let wiki = std::fs::read_to_string(out_dir.path().join("wiki").join(&file)).unwrap();
    assert_eq!(page, wiki);
    assert!(text(&out.stdout).contains(&file));

    // The table rows, oldest first.
    let rows: Vec<Vec<String>> = page
        .lines()
        .skip_while(|l| !l.starts_with("| Created"))
        .skip(2)
        .take_while(|l| l.starts_with("| "))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();

    // The real history, as the engine has it (newest first there).
    let d = images::docker().await;
    let mut history = d.image_history(&local).await.unwrap();
    history.reverse();
    assert_eq!(rows.len(), history.len(), "{page}");
    for (row, h) in rows.iter().zip(&history) {
        let expected = if h.created_by.is_empty() {
            h.comment.clone()
        } else {
            clean_command(&h.created_by)
        };
        assert_eq!(row[1], expected, "{page}");
    }
    let commands: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    let n = commands.len();
    assert_eq!(
        &commands[n - 5..],
        &[
            "ENV STACK=test",
            "RUN dd if=/dev/urandom of=/a.bin bs=1000 count=300",
            "LABEL x=y",
            "RUN dd if=/dev/urandom of=/b.bin bs=1000 count=50 && echo done",
            "CMD [\"sh\"]",
        ],
        "{page}"
    );

    // Sizes: the registry's layer sizes on the steps that made a layer, in order;
    // 0 B on the others. The random-data layers are about their uncompressed size.
    let layers = manifest_layers(&reg.host(), "stack/m", "t1").await;
    let mut layer_iter = layers.iter();
    let mut cumulative = 0;
    for (row, h) in rows.iter().zip(&history) {
        let expected = if h.size > 0 || row[1].starts_with("ADD ") || row[1].starts_with("RUN ") {
            layer_iter.next().unwrap().1
        } else {
            0
        };
        cumulative += expected;
        assert_eq!(row[2], human_size(expected), "{page}");
        assert_eq!(row[3], human_size(cumulative), "{page}");
    }
    assert!(layer_iter.next().is_none(), "every layer has its row");
    let a = layers[layers.len() - 2].1;
    assert!((300_000..320_000).contains(&a), "layer of a.bin: {a}");
    assert!(rows[n - 4][2].ends_with(" kB") && rows[n - 4][2].starts_with("30"));
    // The tag on the last row; times since the previous step in 1m3s form.
    assert_eq!(rows[n - 1][5], r);
    assert!(rows[n - 1][4].ends_with('s'), "{page}");

    // Info commands: short in a fence, long folded, failing with its error and code.
    assert!(
        page.contains("\n## Greeting\n\n```\nhello\n```\n"),
        "{page}"
    );
    let long = page.split("## Long List").nth(1).unwrap();
    assert!(
        long.starts_with("\n\n<details>\n<summary>Details</summary>\n\n```\n1\n2\n"),
        "{page}"
    );
    assert!(long.contains("\n40\n```\n\n</details>\n"), "{page}");
    let broken = page.split("## Broken Command").nth(1).unwrap();
    assert!(broken.contains("exit code 3"), "{page}");
    assert!(broken.contains("broken-stderr"), "{page}");
    assert!(!broken.contains("<details>"));
    assert_eq!(page.matches("<details>").count(), 1);

    // The table came from the manifest and config only: no layer blob was read.
    let log = &reg.log()[log_before..];
    assert!(log.contains("/v2/stack/m/manifests/t1"), "{log}");
    for (digest, _) in &layers {
        assert!(
            !log.contains(digest.as_str()),
            "layer {digest} was read:\n{log}"
        );
    }

    // No container left behind.
    let left = images::containers_with_label("stackctl.role=info").await;
    assert!(
        left.is_empty(),
        "info containers left: {left:?} (docker ps -a)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_info_command_and_missing_image_are_errors() {
    let repo = images::repo(
        "root: m\nimages:\n  m: {image_name: x/m, info_cmds: [NOPE]}\ntag: {prefix: \"2026.3\"}\n",
        &[],
    );
    let out = stackctl()
        .arg("manifest")
        .arg("--repo")
        .arg(repo.path())
        .args(["m", "--ref", "127.0.0.1:1/x/m:t"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("NOPE"));

    let reg = Registry::start(RegistryAuth::None);
    let repo = images::repo(SPEC, &[]);
    let missing = format!("{}/stack/absent:t1", reg.host());
    let out = stackctl()
        .arg("manifest")
        .arg("--repo")
        .arg(repo.path())
        .args(["m", "--ref", &missing])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&missing), "{out:?}");

    // Credentials are read as by every other command: an empty --password-stdin is refused.
    let out = assert_cmd::Command::from_std(stackctl())
        .arg("manifest")
        .arg("--repo")
        .arg(repo.path())
        .args([
            "m",
            "--ref",
            &missing,
            "--username",
            "u",
            "--password-stdin",
        ])
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--password-stdin: standard input was empty"),
        "{out:?}"
    );
}

/// The page reads an index (OCI index, Docker manifest list) through stackctl's registry
/// client: this machine's platform's manifest, its layer sizes and its config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_is_read_for_this_machines_platform() {
    use stackctl::credentials::CredentialStore;
    use stackctl::registry::{ClientOptions, ImageRef, RegistryClient};
    use stackctl::wiki::image_page::{fetch_image, RegistryAccess};
    use support::hand_made::{push_kind, Kind};

    let reg = Registry::start(RegistryAuth::None);
    let c = RegistryClient::new(CredentialStore::default(), ClientOptions::default()).unwrap();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no test image for {other}"),
    };
    for (kind, name) in [(Kind::OciIndex, "oci"), (Kind::DockerList, "docker")] {
        let r = ImageRef::parse(&format!("{}/page/{name}:t1", reg.host())).unwrap();
        let index = push_kind(&c, &r, kind, name).await;
        let index: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
        let child = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let meta = fetch_image(&r, &RegistryAccess::default()).await.unwrap();
        assert_eq!(meta.digest, child, "{name}");
        assert_eq!(meta.layer_sizes, vec![1024, 1024], "{name}");
        assert_eq!(meta.config["config"]["Labels"]["seed"], name);
        assert_eq!(meta.config["architecture"], arch);
    }
}
