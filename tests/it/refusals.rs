//! What stackctl refuses, and how: bad input as one clear line naming the file, key or
//! reference (exit 2); secrets in addresses and references never echoed; build contexts
//! that reach outside `images/`; a registry that stalls past the deadline.

use crate::support;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use support::git_repo::TestRepo;
use support::proxy::{Proxy, Rule};
use support::{Registry, RegistryAuth};

fn stackctl(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = support::cli::stackctl();
    cmd.current_dir(dir)
        .env_remove("GITHUB_TOKEN")
        .env("DOCKER_CONFIG", dir.join(".no-docker-config"))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn all(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Exit 2, and `want` on the first line of stderr (the error itself, never an empty
/// `error:` line); no "builder error" from deep inside an HTTP library.
fn refused(o: &Output, want: &str, row: &str) {
    if let Some(why) = not_refused(o, want, row) {
        panic!("{why}");
    }
}

/// What is wrong with `o` as [`refused`] sees it, if anything (tables report every row).
fn not_refused(o: &Output, want: &str, row: &str) -> Option<String> {
    let err = stderr(o);
    let first = err.lines().next().unwrap_or_default();
    if o.status.code() != Some(2) {
        Some(format!("{row}: exit {:?}, not 2: {err}", o.status.code()))
    } else if !first.contains(want) {
        Some(format!("{row}: want {want:?} on the first line:\n{err}"))
    } else if first.trim() == "error:" || err.contains("builder error") {
        Some(format!("{row}: {err}"))
    } else {
        None
    }
}

/// A stack folder with `spec.yml` and a Dockerfile for each of `folders`.
fn stack(spec: &str, folders: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.yml"), spec).unwrap();
    for f in folders {
        let d = dir.path().join("images").join(f);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
    }
    dir
}

const TAG: &str = "tag:\n  prefix: \"2026.3\"\n";

/// Spec contents that load gets wrong or lets through: each is refused in one line naming
/// the file (and line and key, when there is one).
#[test]
fn bad_specs_are_one_line_naming_file_and_key() {
    let long = "a".repeat(200);
    let rows: Vec<(&str, String, Vec<&str>, &str)> = vec![
        (
            "port 99999 in image_name",
            format!("images:\n  a:\n    image_name: 127.0.0.1:99999/s/a\n{TAG}"),
            vec!["a"],
            "spec.yml:2: image `a`: `image_name: 127.0.0.1:99999/s/a` is not a valid repository",
        ),
        (
            "cache.ref in upper case",
            format!("images:\n  a:\n    image_name: r/a\n    cache:\n      type: registry\n      ref: ghcr.io/Org/cache\n{TAG}"),
            vec!["a"],
            "image `a`: `cache.ref` \"ghcr.io/Org/cache\" is not a valid repository name",
        ),
        (
            "cache.ref with http://",
            format!("cache:\n  type: registry\n  ref: http://127.0.0.1:5000/cache\nimages:\n  a:\n    image_name: r/a\n{TAG}"),
            vec!["a"],
            "`cache.ref (top level)` \"http://127.0.0.1:5000/cache\" is not a valid repository name",
        ),
        (
            "two spellings of one repository",
            format!("images:\n  busybox:\n    image_name: busybox\n  hub:\n    image_name: docker.io/library/busybox\n{TAG}"),
            vec!["busybox", "hub"],
            "spec.yml:4: images `busybox` and `hub` name the same repository docker.io/library/busybox",
        ),
        (
            "content tag starting with -",
            format!("images:\n  a:\n    image_name: r/a\n    tags: [\"-x\"]\n{TAG}"),
            vec!["a"],
            "image `a`: `images.a.tags[0]`: template \"-x\" starts with \"-\"",
        ),
        (
            "content tag starting with .",
            format!("tags: [\".x-{{date}}\"]\nimages:\n  a:\n    image_name: r/a\n{TAG}"),
            vec!["a"],
            "spec.yml:1: `tags[0]`: template \".x-{date}\" starts with \".\"",
        ),
        (
            "content tag of 200 characters",
            format!("images:\n  a:\n    image_name: r/a\n    tags: [\"{long}\"]\n{TAG}"),
            vec!["a"],
            "gives tags of at least 200 characters; a tag has at most 128",
        ),
        (
            "tests.command: []",
            format!("images:\n  a:\n    image_name: r/a\n    tests:\n      command: []\n{TAG}"),
            vec!["a"],
            "spec.yml:2: image `a`: `tests.command` is an empty list",
        ),
        (
            "integration port 0",
            format!("images:\n  a:\n    image_name: r/a\n    integration_tests: true\n    tests:\n      integration:\n        port: 0\n{TAG}"),
            vec!["a"],
            "spec.yml:2: image `a`: `tests.integration.port` is 0",
        ),
        (
            "empty build-arg name",
            format!("images:\n  a:\n    image_name: r/a\n    build_args:\n      \"\": x\n{TAG}"),
            vec!["a"],
            "spec.yml:2: image `a`: a build arg has an empty name",
        ),
        (
            "empty tag prefix",
            "images:\n  a:\n    image_name: r/a\ntag:\n  prefix: \"\"\n".to_string(),
            vec!["a"],
            "spec.yml:5: `tag.prefix` is empty",
        ),
    ];
    let mut wrong = vec![];
    for (row, spec, folders, want) in rows {
        let dir = stack(&spec, &folders);
        let repo = dir.path().display().to_string();
        let o = stackctl(dir.path(), &["plan", "--no-registry", "--repo", &repo], &[]);
        let err = stderr(&o);
        let file = dir.path().join("spec.yml").display().to_string();
        if let Some(why) = not_refused(&o, want, row) {
            wrong.push(why);
        } else if !err.contains(&file) || err.lines().count() != 1 {
            wrong.push(format!("{row}: one line naming {file}: {err}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// A spec path that is no regular file is named as what it is, and nothing waits on a fifo
/// or reads /dev/zero forever.
#[test]
fn a_spec_that_is_no_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let fifo = dir.path().join("fifo.yml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (row, path, what) in [
        ("a directory", folder.display().to_string(), "a directory"),
        ("a fifo", fifo.display().to_string(), "a fifo"),
        ("/dev/zero", "/dev/zero".to_string(), "a device"),
    ] {
        let o = stackctl(dir.path(), &["plan", "--no-registry", "--spec", &path], &[]);
        refused(
            &o,
            &format!("{path}: the spec must be a regular file, and this is {what}"),
            row,
        );
    }
    // The default place: a folder named spec.yml is named, not passed over.
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("spec.yml")).unwrap();
    let o = stackctl(d.path(), &["plan", "--no-registry"], &[]);
    refused(
        &o,
        "spec.yml: the spec must be a regular file, and this is a directory",
        "spec.yml folder",
    );
}

/// A spec written with a UTF-8 byte order mark loads as without one.
#[test]
fn a_spec_with_a_byte_order_mark_loads() {
    let r = TestRepo::new("main");
    r.write(
        "spec.yml",
        &format!("\u{feff}images:\n  a:\n    image_name: r/a\n{TAG}"),
    )
    .write("images/a/Dockerfile", "FROM scratch\n");
    r.commit("stack");
    let o = stackctl(r.path(), &["plan", "--no-registry", "--json"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", all(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["images"][0]["key"], "a");
}

/// Command-line values that were accepted or misreported.
#[test]
fn bad_options_are_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rows: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "--buildkit \"\"",
            vec!["buildkit", "info", "--buildkit", ""],
            "--buildkit \"\": the address is empty",
        ),
        (
            "a single bad --buildkit",
            vec!["buildkit", "info", "--buildkit", "bogus://x"],
            "BuildKit address \"bogus://x\" is not understood",
        ),
        (
            "--jobs 0",
            vec!["build", "--jobs", "0"],
            "invalid value '0' for '--jobs <N>': must be at least 1",
        ),
        (
            "--insecure-registry \"not a host\"",
            vec!["exists", "--insecure-registry", "not a host", "127.0.0.1:5000/a:t"],
            "invalid value 'not a host' for '--insecure-registry <HOST:PORT>'",
        ),
        (
            "port 99999 in a reference",
            vec!["exists", "127.0.0.1:99999/a/b:t"],
            "invalid image reference \"127.0.0.1:99999/a/b:t\": registry port in \"127.0.0.1:99999\" is not a port number (1 to 65535)",
        ),
        (
            "port 99999 in --registry-endpoint",
            vec!["exists", "--registry-endpoint", "docker.io=127.0.0.1:99999", "busybox:1"],
            "is not a port number (1 to 65535)",
        ),
    ];
    let wrong: Vec<String> = rows
        .iter()
        .filter_map(|(row, args, want)| not_refused(&stackctl(d, args, &[]), want, row))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

/// `[::1]:PORT/...` is a valid reference: it is asked (here sent on to a real registry
/// with --registry-endpoint), not refused.
#[test]
fn ipv6_references_are_accepted() {
    let reg = Registry::start(RegistryAuth::None);
    let dir = tempfile::tempdir().unwrap();
    let o = stackctl(
        dir.path(),
        &[
            "exists",
            "--registry-endpoint",
            &format!("[::1]:5999={}", reg.host()),
            "[::1]:5999/stack/none:t",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", all(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "[::1]:5999/stack/none:t missing"
    );
    assert!(
        reg.log().contains("/v2/stack/none/manifests/t"),
        "asked the registry"
    );
}

/// The text plan of a deep chain is drawn in linear space: deep levels are not indented
/// further (fully indented, 2,000 levels made some 16 MB).
#[test]
fn the_text_plan_of_a_deep_chain_stays_small() {
    let n = 2000;
    let r = TestRepo::new("main");
    let mut spec = String::from("images:\n");
    for i in 0..n {
        spec.push_str(&format!("  i{i}:\n    image_name: r/i{i}\n"));
        if i > 0 {
            spec.push_str(&format!("    depend_on: i{}\n", i - 1));
        }
        r.write(&format!("images/i{i}/Dockerfile"), "FROM scratch\n");
    }
    spec.push_str(TAG);
    r.write("spec.yml", &spec);
    r.commit("chain");
    let o = stackctl(r.path(), &["plan", "--no-registry", "--full-rebuild"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.len() < 1_000_000, "{} bytes", text.len());
    assert!(
        text.contains(&format!("[{}] i{}", n - 1, n - 1)),
        "the depth is shown"
    );
    let json = stackctl(
        r.path(),
        &["plan", "--no-registry", "--full-rebuild", "--json"],
        &[],
    );
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(plan["images"].as_array().unwrap().len(), n);
}

/// A password in any node of a pool, given with --buildkit or in BUILDKIT_HOST, and in a
/// reference given to `exists`, is masked wherever the address or reference is printed.
#[test]
fn passwords_in_addresses_and_references_are_masked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first =
        support::buildkitd::Buildkitd::start("passwords_in_addresses_and_references_are_masked");
    let first = first
        .as_ref()
        .map_or("unix:///nonexistent.sock".to_string(), |b| b.unix.clone());
    let secret = "s3cret-pw";
    let second = format!("tcp://bob:{secret}@127.0.0.1:{}", support::free_port());
    for (row, args, env) in [
        (
            "--buildkit repeated",
            vec![
                "buildkit",
                "info",
                "--buildkit",
                &first,
                "--buildkit",
                &second,
            ],
            vec![],
        ),
        (
            "one comma-separated --buildkit",
            vec![
                "buildkit",
                "info",
                "--buildkit",
                &format!("{first},{second}"),
            ],
            vec![],
        ),
        (
            "BUILDKIT_HOST=a,b",
            vec!["buildkit", "info"],
            vec![("BUILDKIT_HOST", format!("{first},{second}"))],
        ),
        (
            "no scheme",
            vec![
                "buildkit",
                "info",
                "--buildkit",
                &first,
                "--buildkit",
                &format!("bob:{secret}@127.0.0.1:1"),
            ],
            vec![],
        ),
    ] {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let o = stackctl(d, &args, &env);
        assert_eq!(o.status.code(), Some(2), "{row}: {}", all(&o));
        let out = all(&o);
        assert!(
            !out.contains(secret),
            "{row}: the password is printed: {out}"
        );
        assert!(out.contains("***@127.0.0.1:"), "{row}: {out}");
    }

    let reg = Registry::start(RegistryAuth::Basic {
        user: "bob".into(),
        password: secret.into(),
    });
    let reference = format!("bob:{secret}@{}/stack/a:t", reg.host());
    for args in [
        vec!["exists", reference.as_str()],
        vec!["exists", "--json", reference.as_str()],
    ] {
        let o = stackctl(d, &args, &[]);
        let out = all(&o);
        assert_eq!(o.status.code(), Some(2), "{out}");
        assert!(!out.contains(secret), "the password is printed: {out}");
        assert!(
            out.contains(&format!("\"***@{}/stack/a:t\"", reg.host()))
                && out.contains("USER:PASSWORD@"),
            "{out}"
        );
    }
}

/// A registry that stalls every request: `exists` and `plan`'s registry check give up at
/// their one deadline, exit 2, with one line naming the registry.
#[test]
fn a_stalling_registry_ends_at_the_deadline() {
    let reg = Registry::start(RegistryAuth::None);
    let proxy = Proxy::with_rules(
        reg.port,
        vec![Rule::StallAll {
            hold: Duration::from_secs(20),
        }],
    );
    let host = proxy.host();
    let dir = tempfile::tempdir().unwrap();
    let o = stackctl(
        dir.path(),
        &[
            "exists",
            "--timeout",
            "2s",
            &format!("{host}/stack/a:t"),
            &format!("{host}/stack/b:t"),
        ],
        &[],
    );
    refused(
        &o,
        &format!("registry {host} did not answer within 2s (2 of 2 references unchecked"),
        "exists",
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(o.stdout.is_empty());

    let r = TestRepo::new("main");
    r.write(
        "spec.yml",
        &format!("images:\n  a:\n    image_name: {host}/stack/a\n{TAG}"),
    )
    .write("images/a/Dockerfile", "FROM scratch\n");
    r.commit("stack");
    let o = stackctl(r.path(), &["plan", "--registry-timeout", "2s"], &[]);
    refused(
        &o,
        &format!("registry check: registry {host} did not answer within 2s"),
        "plan",
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

/// A stack whose image `evil` is a link to a folder outside `images/` (holding a Dockerfile
/// and a file that must never reach an image), beside a plain image `good`.
fn stack_with_a_linked_folder() -> (TestRepo, tempfile::TempDir) {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("Dockerfile"),
        "FROM scratch\nCOPY private.txt /private.txt\n",
    )
    .unwrap();
    std::fs::write(outside.path().join("private.txt"), "outside-file\n").unwrap();
    let r = TestRepo::new("main");
    r.write(
        "spec.yml",
        &format!("images:\n  good:\n    image_name: stackctl-refusals/good\n  evil:\n    image_name: stackctl-refusals/evil\n{TAG}"),
    )
    .write("images/good/Dockerfile", "FROM scratch\n");
    std::os::unix::fs::symlink(outside.path(), r.path().join("images/evil")).unwrap();
    r.commit("stack");
    (r, outside)
}

/// An image folder that links outside `images/` is refused before anything is built, through
/// the engine's BuildKit and through a buildkitd, by `build-image` and `build`.
#[test]
fn an_image_folder_linked_outside_images_is_refused() {
    let (r, _outside) = stack_with_a_linked_folder();
    let bk =
        support::buildkitd::Buildkitd::start("an_image_folder_linked_outside_images_is_refused");
    let engine = format!("docker-unix://{}", support::docker_socket().display());
    let mut nodes = vec![engine];
    nodes.extend(bk.as_ref().map(|b| b.unix.clone()));
    let link = "./images/evil";
    for node in &nodes {
        for args in [
            vec![
                "build-image",
                "evil",
                "--tag",
                "2026.3-t",
                "--progress",
                "plain",
            ],
            vec![
                "build",
                "--branch",
                "main",
                "--full-rebuild",
                "--no-registry",
                "--no-push",
                "--artifacts",
                "out",
            ],
        ] {
            let mut args = args.clone();
            args.extend(["--buildkit", node.as_str()]);
            let o = stackctl(r.path(), &args, &[]);
            let row = format!("{} through {node}", args[0]);
            refused(&o, &format!("image `evil`: {link} is a link to"), &row);
            assert!(all(&o).contains("outside"), "{row}: {}", all(&o));
            assert!(!all(&o).contains("outside-file"), "{row}");
            assert!(!r.path().join("out").exists(), "{row}: nothing is run");
        }
    }
}

/// A `.dockerignore` that links outside the context fails its image (exit 1) with the real
/// reason, in a pool of two buildkitds: it is no BuildKit that could not be reached.
#[test]
fn a_context_entry_linked_outside_fails_the_image_in_a_pool() {
    let test = "a_context_entry_linked_outside_fails_the_image_in_a_pool";
    let Some(a) = support::buildkitd::Buildkitd::start(test) else {
        return;
    };
    let b = support::buildkitd::Buildkitd::start(test).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("ignore"), "top-secret-line\n").unwrap();
    let r = TestRepo::new("main");
    r.write(
        "spec.yml",
        &format!(
            "images:\n  linked:\n    image_name: 127.0.0.1:{}/stackctl-refusals/linked\n{TAG}",
            support::free_port()
        ),
    )
    .write("images/linked/Dockerfile", "FROM scratch\n");
    std::os::unix::fs::symlink(
        outside.path().join("ignore"),
        r.path().join("images/linked/.dockerignore"),
    )
    .unwrap();
    r.commit("stack");
    let o = stackctl(
        r.path(),
        &[
            "build",
            "--branch",
            "main",
            "--full-rebuild",
            "--no-registry",
            "--no-push",
            "--artifacts",
            "out",
            "--buildkit",
            &a.unix,
            "--buildkit",
            &b.unix,
        ],
        &[],
    );
    let out = all(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("outside the build context"), "{out}");
    assert!(out.contains(".dockerignore"), "{out}");
    assert!(!out.contains("could not be reached"), "{out}");
    assert!(!out.contains("top-secret-line"), "{out}");
}
