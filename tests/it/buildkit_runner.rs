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
