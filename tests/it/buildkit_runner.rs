//! Basic tests and info commands run on a real buildkitd (containers::in_buildkit), against
//! images pushed to a real loopback registry by digest: passing, failing, an image without a
//! shell, a user that is not root, a test that fails only on arm64.

use crate::support::buildkitd::Buildkitd;
use crate::support::platforms::{self, Layer};
use crate::support::{images, Registry, RegistryAuth};
use stackctl::buildkit::{self, Address, TlsFiles};
use stackctl::containers::in_buildkit::Node;
use stackctl::containers::suite::{Options, TestOutcome as Outcome};
use stackctl::credentials::CredentialStore;
use stackctl::spec::InfoCmd;
use stackctl::spec::Spec;
use std::time::Duration;

const SPEC: &str = r#"
root: pass
images:
  pass: {image_name: x/pass}
  fail: {image_name: x/fail}
  nopy: {image_name: x/nopy}
  noshell:
    image_name: x/noshell
    tests: {command: ["/tool/busybox", "sh", "/tmp/stackctl-tests/test/check.sh"]}
  user: {image_name: x/user}
  arch: {image_name: x/arch}
tag: {prefix: "2026.3"}
"#;

const TEST_OK: &str = r#"
import pytest

def test_one():
    assert 1 + 1 == 2

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass
"#;

const TEST_BAD: &str = r#"
def test_fine():
    pass

def test_broken():
    assert "apple" == "pear", "fruit mismatch"
"#;

const TEST_USER: &str = r#"
import os

def test_not_root():
    assert os.getuid() == 65534
    assert os.environ["HOME"] == "/nonexistent"
    assert os.environ["PYTHONDONTWRITEBYTECODE"] == "1"
    assert os.getcwd() == "/tmp/stackctl-tests"
"#;

const TEST_ARCH: &str = r#"
import platform

def test_not_arm():
    assert platform.machine() != "aarch64", "fails on arm64 only"
"#;

/// A JUnit report written without python or a shell of the image: busybox at /tool/busybox.
const CHECK_SH: &str = r#"
[ -e /bin/sh ] && { echo "the image has a shell"; exit 3; }
echo "no shell here, $(/tool/busybox id -u)"
for a in "$@"; do case "$a" in --junitxml=*) out="${a#--junitxml=}";; esac; done
/tool/busybox printf '<testsuites><testsuite name="s" tests="1" failures="0" errors="0" skipped="0"><testcase classname="c" name="noshell"/></testsuite></testsuites>' > "$out"
"#;

async fn node(bk: &Buildkitd) -> Node {
    let addr = Address::parse(&bk.unix, TlsFiles::default()).unwrap();
    let client = buildkit::connect(&addr).await.unwrap();
    Node::new(client, CredentialStore::default())
}

fn opts(dir: &std::path::Path, name: &str) -> Options {
    Options {
        log_file: Some(dir.join(format!("{name}.log"))),
        junit_file: Some(dir.join(format!("{name}.xml"))),
        timeout: Duration::from_secs(300),
        ..Options::default()
    }
}

/// An image of one layer holding only busybox at /tool/busybox: no /bin/sh.
fn no_shell_layer() -> std::path::PathBuf {
    let work = tempfile::tempdir().unwrap().keep();
    let tar = platforms::busybox_rootfs("amd64");
    let st = std::process::Command::new("tar")
        .current_dir(&work)
        .args(["-xf"])
        .arg(&tar)
        .args(["--wildcards", "*bin/busybox"])
        .status()
        .unwrap();
    assert!(st.success());
    let bb = walkdir::WalkDir::new(&work)
        .into_iter()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name() == "busybox")
        .unwrap()
        .into_path();
    let root = work.join("root");
    std::fs::create_dir_all(root.join("tool")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::rename(&bb, root.join("tool/busybox")).unwrap();
    let out = work.join("noshell.tar");
    let st = std::process::Command::new("tar")
        .current_dir(&root)
        .arg("-cf")
        .arg(&out)
        .args(["tool", "tmp"])
        .status()
        .unwrap();
    assert!(st.success());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_suites_run_on_the_buildkitd() {
    let Some(bk) = Buildkitd::start("basic_suites_run_on_the_buildkitd") else {
        return;
    };
    let reg = Registry::start(RegistryAuth::None);
    let host = reg.host();
    let py_layer = Layer {
        platform: "linux/amd64",
        tar: platforms::python_rootfs("amd64"),
    };
    let py = platforms::push_index(
        &host,
        "stack/py",
        "t1",
        std::slice::from_ref(&py_layer),
        &["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        &["/bin/bash"],
    )
    .await;
    let py_ref = format!("{host}/stack/py@{py}");
    let noshell = platforms::push_index(
        &host,
        "stack/noshell",
        "t1",
        &[Layer {
            platform: "linux/amd64",
            tar: no_shell_layer(),
        }],
        &["PATH=/tool"],
        &["/tool/busybox"],
    )
    .await;
    let repo = images::repo(
        SPEC,
        &[
            ("images/pass/test/test_ok.py", TEST_OK),
            ("images/fail/test/test_bad.py", TEST_BAD),
            ("images/nopy/test/test_ok.py", TEST_OK),
            ("images/noshell/test/check.sh", CHECK_SH),
            ("images/user/test/test_user.py", TEST_USER),
            ("images/arch/test/test_arch.py", TEST_ARCH),
        ],
    );
    let spec = Spec::load(repo.path(), None).unwrap();
    let logs = tempfile::tempdir().unwrap();
    let n = node(&bk).await;

    let r = n
        .basic_suite(
            &spec,
            "pass",
            &py_ref,
            Some("linux/amd64"),
            &opts(logs.path(), "pass"),
        )
        .await
        .unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Passed,
        "{r:?}\n{}\n{}",
        r.output,
        bk.log()
    );
    assert_eq!((r.counts.passed, r.counts.skipped), (1, 1));
    let log = std::fs::read_to_string(logs.path().join("pass.log")).unwrap();
    assert!(log.contains("1 passed, 1 skipped"), "{log}");
    let xml = std::fs::read_to_string(logs.path().join("pass.xml")).unwrap();
    assert!(xml.contains("test_one"), "{xml}");

    let r = n
        .basic_suite(&spec, "fail", &py_ref, None, &opts(logs.path(), "fail"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}\n{}", r.output);
    assert_eq!(r.exit_code, Some(1));
    let log = std::fs::read_to_string(logs.path().join("fail.log")).unwrap();
    assert!(log.contains("fruit mismatch"), "{log}");
    let xml = std::fs::read_to_string(logs.path().join("fail.xml")).unwrap();
    assert!(xml.contains("fruit mismatch"), "{xml}");

    // No python: the tests could not run, which is neither a pass nor a failure.
    let bb_ref = format!("{host}/stack/noshell@{noshell}");
    let r = n
        .basic_suite(&spec, "nopy", &bb_ref, None, &opts(logs.path(), "nopy"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::CouldNotRun, "{r:?}\n{}", r.output);
    assert!(r.message.contains("python3"), "{}", r.message);

    // No shell in the image: the command is run as it is.
    let r = n
        .basic_suite(
            &spec,
            "noshell",
            &bb_ref,
            None,
            &opts(logs.path(), "noshell"),
        )
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Passed, "{r:?}\n{}", r.output);
    assert!(r.output.contains("no shell here, 0"), "{}", r.output);

    let infos = n
        .info_commands(
            &py_ref,
            None,
            &[
                InfoCmd {
                    description: "Python".into(),
                    command: "python3 --version".into(),
                },
                InfoCmd {
                    description: "Broken".into(),
                    command: "echo oops >&2; exit 4".into(),
                },
            ],
            Duration::from_secs(120),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(
        infos[0].ok && infos[0].stdout.starts_with("Python 3."),
        "{infos:?}"
    );
    assert!(
        !infos[1].ok && infos[1].text.contains("exit code 4"),
        "{infos:?}"
    );
    assert!(infos[1].text.contains("oops"), "{infos:?}");
}

const CACHE_SPEC: &str = r#"
root: fresh
images:
  fresh: {image_name: x/fresh}
  cached: {image_name: x/cached, tests: {cache: true}}
  user: {image_name: x/user}
tag: {prefix: "2026.3"}
"#;

const TEST_RUN_ID: &str = r#"
def test_runs():
    pass
"#;

/// A second run on the same digest runs the tests again, unless `tests: {cache: true}`,
/// which reuses the pass (said in the result and the log) until a test file changes; the
/// image's user (not root), HOME, working directory and environment are the engine's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_are_reused_only_with_tests_cache_and_the_image_user_runs_them() {
    let Some(bk) = Buildkitd::start("passes_are_reused_only_with_tests_cache") else {
        return;
    };
    let reg = Registry::start(RegistryAuth::None);
    let host = reg.host();
    let layer = Layer {
        platform: "linux/amd64",
        tar: platforms::python_rootfs("amd64"),
    };
    let env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
    let py = platforms::push_index(
        &host,
        "stack/py",
        "t1",
        std::slice::from_ref(&layer),
        &env,
        &["/bin/bash"],
    )
    .await;
    let py_ref = format!("{host}/stack/py@{py}");
    let nobody = platforms::push_index_with(
        &host,
        "stack/nobody",
        "t1",
        std::slice::from_ref(&layer),
        serde_json::json!({"Env": env, "User": "nobody"}),
    )
    .await;
    let repo = images::repo(
        CACHE_SPEC,
        &[
            ("images/fresh/test/test_id.py", TEST_RUN_ID),
            ("images/cached/test/test_id.py", TEST_RUN_ID),
            ("images/user/test/test_user.py", TEST_USER),
        ],
    );
    let spec = Spec::load(repo.path(), None).unwrap();
    let logs = tempfile::tempdir().unwrap();
    let n = node(&bk).await;
    let run = |key: &'static str, image: String, name: &'static str| {
        let (n, spec, dir) = (n.clone(), spec.clone(), logs.path().to_path_buf());
        async move {
            n.basic_suite(&spec, key, &image, None, &opts(&dir, name))
                .await
                .unwrap()
        }
    };
    // Without the cache: both runs ran (each has pytest's own output).
    let a = run("fresh", py_ref.clone(), "fresh1").await;
    let b = run("fresh", py_ref.clone(), "fresh2").await;
    for r in [&a, &b] {
        assert_eq!(r.outcome, Outcome::Passed, "{r:?}");
        assert!(!r.cached, "{r:?}");
        assert!(r.output.contains("1 passed"), "it ran: {}", r.output);
    }

    // With it: the second is the first's pass, said so.
    let a = run("cached", py_ref.clone(), "cached1").await;
    assert_eq!(a.outcome, Outcome::Passed, "{a:?}");
    assert!(!a.cached, "the first run runs: {a:?}");
    assert!(a.output.contains("1 passed"), "{}", a.output);
    let b = run("cached", py_ref.clone(), "cached2").await;
    assert_eq!(b.outcome, Outcome::Passed, "{b:?}");
    assert!(b.cached, "{b:?}");
    assert_eq!(b.message, "passed (cached)");
    assert_eq!(b.counts.passed, 1, "the report comes from the cached run");
    let log = std::fs::read_to_string(logs.path().join("cached2.log")).unwrap();
    assert!(log.contains("cached"), "{log}");
    let json = serde_json::to_value(&b).unwrap();
    assert_eq!(json["cached"], true, "{json}");
    // A changed test file is not the same run.
    std::fs::write(
        repo.path().join("images/cached/test/test_id.py"),
        format!("{TEST_RUN_ID}\n# changed\n"),
    )
    .unwrap();
    let c = run("cached", py_ref.clone(), "cached3").await;
    assert!(!c.cached, "{c:?}");
    assert!(c.output.contains("1 passed"), "{}", c.output);

    // The image's user.
    let r = run("user", format!("{host}/stack/nobody@{nobody}"), "user").await;
    assert_eq!(r.outcome, Outcome::Passed, "{r:?}\n{}", r.output);
}

/// Each platform's tests on that platform: a test that fails only on arm64 (emulated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_fails_only_on_arm64_when_run_on_arm64() {
    let Some(bk) = Buildkitd::start("a_test_fails_only_on_arm64_when_run_on_arm64") else {
        return;
    };
    let reg = Registry::start(RegistryAuth::None);
    let host = reg.host();
    let index = platforms::push_python_base(&host).await;
    let image = format!("{host}/stackctl-local/debian-python@{index}");
    let repo = images::repo(SPEC, &[("images/arch/test/test_arch.py", TEST_ARCH)]);
    let spec = Spec::load(repo.path(), None).unwrap();
    let logs = tempfile::tempdir().unwrap();
    let n = node(&bk).await;
    let (o_amd, o_arm) = (opts(logs.path(), "amd64"), opts(logs.path(), "arm64"));
    let (amd, arm) = tokio::join!(
        n.basic_suite(&spec, "arch", &image, Some("linux/amd64"), &o_amd),
        n.basic_suite(&spec, "arch", &image, Some("linux/arm64"), &o_arm),
    );
    let (amd, arm) = (amd.unwrap(), arm.unwrap());
    assert_eq!(amd.outcome, Outcome::Passed, "{amd:?}\n{}", amd.output);
    assert_eq!(arm.outcome, Outcome::Failed, "{arm:?}\n{}", arm.output);
    let log = std::fs::read_to_string(logs.path().join("arm64.log")).unwrap();
    assert!(log.contains("fails on arm64 only"), "{log}");
}
