//! `stackctl test` against real images in a real Docker engine, pulled from a loopback
//! registry: passing, failing, tests_common + image folder, no python, no tests,
//! an integration suite against an HTTP service, a timeout and an interruption (SIGINT and
//! SIGTERM, of `test` and of `build` during a BuildKit RUN); and no
//! container or network is left behind.

use crate::support;

use stackctl::containers::suite::{run_suite, Options, Suite, TestOutcome};
use stackctl::spec::Spec;
use std::time::{Duration, Instant};
use support::images;
use support::{stackctl, text};
use support::{Registry, RegistryAuth};

const SPEC: &str = r#"
root: pass
images:
  pass: {image_name: x/pass}
  fail: {image_name: x/fail}
  nopy: {image_name: x/nopy}
  empty: {image_name: x/empty}
  notests: {image_name: x/notests}
  slow: {image_name: x/slow}
tag: {prefix: "2026.3"}
"#;

const TEST_OK: &str = r#"
import pytest

def test_one():
    assert 1 + 1 == 2

def test_two():
    import sys
    assert sys.version_info.major == 3

@pytest.mark.skip(reason="not here")
def test_skipped():
    pass
"#;

const TEST_BAD: &str = r#"
def test_fine():
    pass

def test_broken():
    assert "apple" == "pear", "fruit mismatch"

def test_never_reached():
    pass
"#;

/// Every stackctl container (label `stackctl=1`) created from `image_ref`, by name:
/// none should outlive a suite. (Not the `ancestor` filter: it matches by image ID,
/// which the concurrent tests share.)
async fn leftovers(image_ref: &str) -> Vec<String> {
    let d = images::docker().await;
    let filters =
        std::collections::HashMap::from([("label".to_string(), vec!["stackctl=1".to_string()])]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    d.list_containers(Some(opts))
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.image.as_deref() == Some(image_ref))
        .filter_map(|c| c.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_suites_with_images_from_a_registry() {
    let base = images::base_image();
    let bb = images::busybox_image("stackctl-test/busybox-nopy", "1").await;
    let reg = Registry::start(RegistryAuth::None);
    // Only in the registry: the engine must pull them.
    let py = images::push(&base, &reg.host(), "stack/py", "t1", false).await;
    let nopy = images::push(&bb, &reg.host(), "stack/nopy", "t1", false).await;

    let repo = images::repo(
        SPEC,
        &[
            ("images/pass/test/test_ok.py", TEST_OK),
            ("images/fail/test/test_bad.py", TEST_BAD),
            ("images/nopy/test/test_ok.py", TEST_OK),
            ("images/notests/test/README.md", "no tests here\n"),
        ],
    );
    let spec = Spec::load(repo.path(), None).unwrap();
    let logs = tempfile::tempdir().unwrap();

    // Passing suite, with log and JUnit files.
    let opts = Options {
        log_file: Some(logs.path().join("pass.log")),
        junit_file: Some(logs.path().join("pass.xml")),
        ..Options::default()
    };
    let r = run_suite(&spec, "pass", &py, Suite::Basic, &opts)
        .await
        .unwrap();
    assert_eq!(r.outcome, TestOutcome::Passed, "{r:?}\n{}", r.output);
    assert_eq!(
        (r.counts.passed, r.counts.failed, r.counts.skipped),
        (2, 0, 1)
    );
    assert_eq!(stackctl::cli::exit::of_suite(&r).code(), 0);
    assert!(
        r.notices.iter().any(|n| n.contains("images/tests_common/")),
        "{:?}",
        r.notices
    );
    let log = std::fs::read_to_string(logs.path().join("pass.log")).unwrap();
    assert!(log.contains("2 passed, 1 skipped"), "{log}");
    let xml = std::fs::read_to_string(logs.path().join("pass.xml")).unwrap();
    assert!(xml.contains("test_one"), "{xml}");

    // Failing suite names the failing test; -x stops after it.
    let r = run_suite(&spec, "fail", &py, Suite::Basic, &Options::default())
        .await
        .unwrap();
    assert_eq!(r.outcome, TestOutcome::Failed, "{r:?}\n{}", r.output);
    assert_eq!(stackctl::cli::exit::of_suite(&r).code(), 1);
    assert_eq!((r.counts.passed, r.counts.failed), (1, 1));
    assert_eq!(r.counts.failures.len(), 1);
    assert!(
        r.counts.failures[0].name.ends_with("test_bad::test_broken"),
        "{:?}",
        r.counts.failures
    );
    assert!(
        r.counts.failures[0].message.contains("fruit mismatch"),
        "{:?}",
        r.counts.failures
    );
    assert!(!r.output.contains("test_never_reached PASSED"));

    // No python in the image: could not run, with a message saying so.
    let r = run_suite(&spec, "nopy", &nopy, Suite::Basic, &Options::default())
        .await
        .unwrap();
    assert_eq!(r.outcome, TestOutcome::CouldNotRun, "{r:?}");
    assert_eq!(stackctl::cli::exit::of_suite(&r).code(), 2);
    assert!(
        r.message.contains("python3") && r.message.contains("not in the image"),
        "{}",
        r.message
    );

    // No test folder at all, and a folder pytest finds nothing in: both "no tests".
    let r = run_suite(&spec, "empty", &py, Suite::Basic, &Options::default())
        .await
        .unwrap();
    assert_eq!(r.outcome, TestOutcome::NoTests, "{r:?}");
    assert_eq!(r.message, "no tests");
    assert!(r.notices.iter().any(|n| n.contains("images/empty/test/")));
    let r = run_suite(&spec, "notests", &py, Suite::Basic, &Options::default())
        .await
        .unwrap();
    assert_eq!(r.outcome, TestOutcome::NoTests, "{r:?}\n{}", r.output);
    assert_eq!(r.exit_code, Some(5));

    // An image that is nowhere: could not run, naming it.
    let missing = format!("{}/stack/absent:t1", reg.host());
    let r = run_suite(&spec, "pass", &missing, Suite::Basic, &Options::default())
        .await
        .unwrap();
    assert_eq!(r.outcome, TestOutcome::CouldNotRun, "{r:?}");
    assert!(r.message.contains(&missing), "{}", r.message);

    // The command line: exit codes and what it prints.
    let bin = || {
        let mut c = stackctl();
        c.arg("test").arg("--repo").arg(repo.path());
        c
    };
    let out = bin()
        .args(["pass", "--ref", &py, "--log"])
        .arg(logs.path().join("cli.log"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("passed (2 passed, 0 failed, 1 skipped)"),
        "{stdout}"
    );
    let out = bin().args(["fail", "--ref", &py]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("test_broken") && stdout.contains("fruit mismatch"),
        "{stdout}"
    );
    let out = bin()
        .args(["nopy", "--ref", &nopy, "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "could-not-run");
    let out = bin().args(["nosuch", "--ref", &py]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("\"nosuch\""));

    for r in [&py, &nopy] {
        assert_eq!(
            leftovers(r).await,
            Vec::<String>::new(),
            "containers of {r} left"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tests_common_and_image_folder_run_together_with_shared_fixtures() {
    let base = images::base_image();
    let reg = Registry::start(RegistryAuth::None);
    let py = images::push(&base, &reg.host(), "stack/common", "t1", true).await;
    let repo = images::repo(
        SPEC,
        &[
            (
                "images/tests_common/test_common.py",
                "import os\n\ndef test_common_runs_in_container():\n    assert os.path.exists('/tmp/stackctl-tests/tests_common')\n",
            ),
            // A fixture and a marker shared by every test folder, as docs/spec.md says.
            (
                "images/tests_common/conftest.py",
                "import pytest\n\n@pytest.fixture\ndef stack_greeting():\n    return 'shared fixture'\n",
            ),
            (
                "images/tests_common/pytest.ini",
                "[pytest]\naddopts = --strict-markers\nmarkers =\n    shared: declared in tests_common/pytest.ini\n",
            ),
            (
                "images/pass/test/test_image.py",
                "import pytest\n\n@pytest.mark.shared\ndef test_image_specific(stack_greeting):\n    assert stack_greeting == 'shared fixture'\n",
            ),
        ],
    );
    let spec = Spec::load(repo.path(), None).unwrap();
    let r = run_suite(&spec, "pass", &py, Suite::Basic, &Options::default())
        .await
        .unwrap();
    assert_eq!(r.outcome, TestOutcome::Passed, "{r:?}\n{}", r.output);
    assert_eq!(r.counts.passed, 2);
    assert!(r.notices.is_empty(), "{:?}", r.notices);
    assert!(
        r.output.contains("tests_common/test_common.py"),
        "{}",
        r.output
    );
    assert!(r.output.contains("test/test_image.py"), "{}", r.output);
    assert_eq!(leftovers(&py).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_suite_against_an_http_service() {
    let networks_before = images::networks_with_label("stackctl=1").await;
    let base = images::base_image();
    let web = images::build(
        "stackctl-test/web:1",
        &format!(
            "FROM {base}\nENV PYTHONUNBUFFERED=1\nRUN mkdir /web && echo hello-from-service > /web/index.html\nWORKDIR /web\nCMD [\"python3\", \"-m\", \"http.server\", \"8000\"]\n"
        ),
        &[],
    )
    .await;
    let reg = Registry::start(RegistryAuth::None);
    let web = images::push(&web, &reg.host(), "stack/web", "t1", false).await;
    let spec_yaml = r#"
root: web
images:
  web:
    image_name: x/web
    integration_tests: true
    tests:
      integration: {port: 8000}
  weblog:
    image_name: x/weblog
    tests:
      integration: {port: 8000, wait_log: "Serving HTTP on"}
tag: {prefix: "2026.3"}
"#;
    let test = r#"
import os, urllib.request

def test_service_answers():
    assert os.environ["SERVICE_NAME"]
    url = os.environ["SERVICE_URL"]
    assert url.endswith(":8000")
    body = urllib.request.urlopen(url + "/index.html", timeout=10).read().decode()
    assert "hello-from-service" in body
"#;
    let repo = images::repo(
        spec_yaml,
        &[
            ("images/web/integration_tests/test_http.py", test),
            ("images/weblog/integration_tests/test_http.py", test),
        ],
    );
    let spec = Spec::load(repo.path(), None).unwrap();
    let logs = tempfile::tempdir().unwrap();
    for key in ["web", "weblog"] {
        let opts = Options {
            log_file: Some(logs.path().join(format!("{key}.log"))),
            ..Options::default()
        };
        let r = run_suite(&spec, key, &web, Suite::Integration, &opts)
            .await
            .unwrap();
        assert_eq!(r.outcome, TestOutcome::Passed, "{key}: {r:?}\n{}", r.output);
        assert_eq!(r.counts.passed, 1);
        let log = std::fs::read_to_string(logs.path().join(format!("{key}.log"))).unwrap();
        // The service's own output (the request the test made) is in the log too.
        assert!(log.contains("GET /index.html"), "{log}");
    }
    assert_eq!(leftovers(&web).await, Vec::<String>::new());
    assert_eq!(
        images::networks_left_since(&networks_before).await,
        Vec::<String>::new(),
        "networks left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_interruption_stop_the_suite_and_remove_containers() {
    let base = images::base_image();
    let reg = Registry::start(RegistryAuth::None);
    let py = images::push(&base, &reg.host(), "stack/slow", "t1", true).await;
    let repo = images::repo(
        SPEC,
        &[(
            "images/slow/test/test_slow.py",
            "import time\n\ndef test_slow():\n    time.sleep(120)\n",
        )],
    );
    let spec = Spec::load(repo.path(), None).unwrap();

    let started = Instant::now();
    let opts = Options {
        timeout: Duration::from_secs(6),
        ..Options::default()
    };
    let r = run_suite(&spec, "slow", &py, Suite::Basic, &opts)
        .await
        .unwrap();
    assert_eq!(r.outcome, TestOutcome::CouldNotRun, "{r:?}");
    assert!(r.message.contains("timed out after 6s"), "{}", r.message);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(leftovers(&py).await, Vec::<String>::new());

    // Ctrl-C (a cancelled token) the same way, once the suite's container exists.
    let opts = Options::default();
    let cancel = opts.cancel.clone();
    let watched = py.clone();
    tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while leftovers(&watched).await.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cancel.cancel();
    });
    let r = run_suite(&spec, "slow", &py, Suite::Basic, &opts)
        .await
        .unwrap();
    assert_eq!(r.outcome, TestOutcome::CouldNotRun, "{r:?}");
    assert_eq!(r.message, "interrupted");
    assert_eq!(leftovers(&py).await, Vec::<String>::new());

    // The command line with --timeout.
    let out = stackctl()
        .arg("test")
        .arg("--repo")
        .arg(repo.path())
        .args(["slow", "--ref", &py, "--timeout", "5s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stdout).contains("timed out"));
    assert_eq!(leftovers(&py).await, Vec::<String>::new());

    // A real Ctrl-C (SIGINT) to the command once its test container runs.
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_stackctl"))
        .arg("test")
        .arg("--repo")
        .arg(repo.path())
        .args(["slow", "--ref", &py])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while leftovers(&py).await.is_empty() {
        assert!(Instant::now() < deadline, "no test container appeared");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(text(&out.stdout).contains("interrupted"), "{out:?}");
    assert_eq!(leftovers(&py).await, Vec::<String>::new());
}

/// SIGTERM (what `timeout` and CI cancellation send) is handled like Ctrl-C: the suite
/// stops, its containers and network are removed, exit 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_suite_and_removes_containers_and_network() {
    let base = images::base_image();
    let reg = Registry::start(RegistryAuth::None);
    let py = images::push(&base, &reg.host(), "stack/slowterm", "t1", true).await;
    let repo = images::repo(
        SPEC,
        &[(
            "images/slow/test/test_slow.py",
            "import time\n\ndef test_slow():\n    time.sleep(120)\n",
        )],
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_stackctl"))
        .arg("test")
        .arg("--repo")
        .arg(repo.path())
        .args(["slow", "--ref", &py])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while leftovers(&py).await.is_empty() {
        assert!(Instant::now() < deadline, "no test container appeared");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let networks = networks_of(&py).await;
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let sent = Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(sent.elapsed() < Duration::from_secs(30), "{out:?}");
    assert!(text(&out.stderr).contains("SIGTERM"), "{out:?}");
    assert_eq!(leftovers(&py).await, Vec::<String>::new());
    let all = images::networks_with_label("stackctl=1").await;
    for n in networks {
        assert!(!all.contains(&n), "network {n} left: {all:?}");
    }
}

/// The networks the containers of `image_ref` are attached to (the suite's own network).
async fn networks_of(image_ref: &str) -> Vec<String> {
    let d = images::docker().await;
    let mut nets = Vec::new();
    for name in leftovers(image_ref).await {
        if let Ok(c) = d.inspect_container(&name, None).await {
            if let Some(n) = c.network_settings.and_then(|s| s.networks) {
                nets.extend(n.keys().filter(|k| *k != "bridge").cloned());
            }
        }
    }
    nets
}

/// Whether a process on this machine has `marker` in its command line (a RUN step of the
/// engine's BuildKit runs as one).
fn process_with(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| text(&c).contains(marker))
            .unwrap_or(false)
    })
}

/// Cache records the engine's BuildKit holds in use now for a step whose description
/// names `marker` (its DiskUsage: the mounts of a running RUN are in use while it runs).
async fn in_use_records(marker: &str) -> usize {
    use bollard_buildkit_proto::moby::buildkit::v1::DiskUsageRequest;
    let addr = stackctl::buildkit::Address::Engine(stackctl::buildkit::EngineSocket::Unix(
        support::docker_socket(),
    ));
    let client = stackctl::buildkit::connect(&addr).await.unwrap();
    let du = client
        .control()
        .disk_usage(DiskUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    du.record
        .iter()
        .filter(|r| r.in_use && r.description.contains(marker))
        .count()
}

/// SIGINT, then SIGTERM, during a BuildKit `RUN sleep 60` of `stackctl build`: the solve
/// is cancelled (the RUN process is gone, BuildKit's history shows no active build of it),
/// nothing is pushed (the registry has no tag of the image), exit 130 within seconds, the
/// run log is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_during_build_cancels_the_solve_and_pushes_nothing() {
    let reg = Registry::start(RegistryAuth::None);
    let local = images::busybox_image("stackctl-local/busybox", "interrupt").await;
    let base = images::push(&local, &reg.host(), "base/busybox", "1", true).await;
    for signal in ["INT", "TERM"] {
        let marker = format!(
            "stackctl-interrupt-{signal}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let git = support::git_repo::TestRepo::new("main");
        git.write(
            "spec.yml",
            &format!(
                "root: slow\nimages:\n  slow:\n    image_name: {}/stack/slow\n    build_args: {{MARKER: {marker}}}\ntag: {{prefix: \"2026.3\"}}\n",
                reg.host()
            ),
        )
        .write(
            "images/slow/Dockerfile",
            &format!("FROM {base}\nARG MARKER\nRUN sleep 60 && echo {marker}\n"),
        );
        git.commit("slow image");
        let out_dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_stackctl"))
            .current_dir(out_dir.path())
            .args([
                "build",
                "--json",
                "--branch",
                "main",
                "--full-rebuild",
                "--repo",
            ])
            .arg(git.path())
            .args(["--buildkit", "docker-unix:///var/run/docker.sock"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !process_with(&marker) {
            assert!(Instant::now() < deadline, "the RUN step never started");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            in_use_records(&marker).await,
            1,
            "the build is in BuildKit's history"
        );
        let kill = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let sent = Instant::now();
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {err}");
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "SIG{signal}: took {:?}",
            sent.elapsed()
        );
        assert!(err.contains(&format!("SIG{signal}")), "{err}");
        // No running solve: the RUN is gone and BuildKit lists no active build of it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_with(&marker) {
            assert!(
                Instant::now() < deadline,
                "SIG{signal}: the RUN step still runs"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while in_use_records(&marker).await > 0 {
            assert!(
                Instant::now() < deadline,
                "SIG{signal}: BuildKit still runs the build"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Nothing pushed: the repository has no tag.
        let tags = support::http()
            .get(format!("http://{}/v2/stack/slow/tags/list", reg.host()))
            .send()
            .await
            .unwrap();
        let status = tags.status();
        let body = tags.text().await.unwrap();
        assert!(
            status == 404 || !body.contains("2026.3"),
            "SIG{signal}: something was pushed: {status} {body}"
        );
        // The artifacts written so far are kept, and the summary says what happened.
        assert!(out_dir.path().join("logs/run.log").is_file());
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no JSON summary ({e}): {err}"));
        assert_eq!(summary["images"][0]["status"], "failed", "{summary}");
    }
}
