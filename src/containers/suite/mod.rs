//! An image's tests, run in containers of the image.
//!
//! - basic: `images/tests_common/` and `images/<key>/test/` are copied into a container
//!   of the image, and pytest runs there (`python3 -m pytest -x`, or `tests.command` of
//!   the image in the spec) with a JUnit report that is read back out.
//! - integration: the image runs as a service (its default command) on a network of
//!   its own, and `images/<key>/integration_tests/` runs in a runner container on the
//!   same network, with `SERVICE_NAME` and `SERVICE_URL` set.
//!
//! The test command is given, after its own arguments, `-p no:cacheprovider
//! --junitxml=<file>` and the test folders (relative to its working directory).
//! All containers and the network are removed whatever happens (see [`crate::containers`]).

pub mod junit;

use crate::containers::{self, bounded, RunScope, Stop};
use crate::registry::ImageRef;
use crate::spec::Spec;
pub use junit::{JunitReport, TestFailure};
use std::path::{Path, PathBuf};
use std::time::Duration;
use testcontainers::core::WaitFor;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, ImageExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The default test command (before the arguments stackctl adds).
pub const DEFAULT_COMMAND: [&str; 4] = ["python3", "-m", "pytest", "-x"];
/// The default bound on one suite (pull, start and tests).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Where the tests are copied in the container (the command's working directory).
pub(crate) const WORKDIR: &str = "/tmp/stackctl-tests";
/// Where pytest writes its JUnit report in the container (`/tmp` is writable by any user).
pub(crate) const JUNIT_PATH: &str = "/tmp/stackctl-junit.xml";

/// Which suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    /// `images/tests_common/` and `images/<key>/test/` inside a container of the image.
    Basic,
    /// `images/<key>/integration_tests/` in a runner beside the image running as a service.
    Integration,
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Suite::Basic => "basic",
            Suite::Integration => "integration",
        })
    }
}

/// How a suite runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bound on the whole suite, image pull included.
    pub timeout: Duration,
    /// Where the whole test output goes (created with its folder), if anywhere.
    pub log_file: Option<PathBuf>,
    /// Where the JUnit XML report is copied, if anywhere.
    pub junit_file: Option<PathBuf>,
    /// The name the copy gives its test suite (`basic linux/arm64`), so that a CI's test
    /// view tells one platform's run from another's; None keeps pytest's.
    pub junit_suite_name: Option<String>,
    /// Cancelling it (e.g. on Ctrl-C) stops the suite; its containers are still removed.
    pub cancel: CancellationToken,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: DEFAULT_TIMEOUT,
            log_file: None,
            junit_file: None,
            junit_suite_name: None,
            cancel: CancellationToken::new(),
        }
    }
}

/// How a suite ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestOutcome {
    /// Every test passed.
    Passed,
    /// There were no tests (no test folder, or pytest collected nothing): a pass.
    NoTests,
    /// A test failed (or errored).
    Failed,
    /// The tests could not run: image missing, no python, timeout, interrupted.
    CouldNotRun,
}

/// The result of one suite.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SuiteResult {
    pub suite: Suite,
    pub image: String,
    pub outcome: TestOutcome,
    /// The counts and failing tests of its JUnit report (zero when it did not run).
    #[serde(flatten)]
    pub counts: JunitReport,
    /// One line saying what happened.
    pub message: String,
    /// Remarks such as skipped (missing) test folders.
    pub notices: Vec<String>,
    /// The test command's exit code, when it ran.
    pub exit_code: Option<i64>,
    /// A pass reused from BuildKit's cache (`tests: {cache: true}`: same image digest, same
    /// test files), not run again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    pub seconds: f64,
    /// The whole output of the test command (and of the service, for integration).
    #[serde(skip)]
    pub output: String,
    /// The JUnit report as written by the test command.
    #[serde(skip)]
    pub junit_xml: Option<String>,
}

impl SuiteResult {
    pub(crate) fn new(suite: Suite, image: &str) -> Self {
        SuiteResult {
            suite,
            image: image.to_string(),
            outcome: TestOutcome::CouldNotRun,
            counts: JunitReport::default(),
            message: String::new(),
            notices: vec![],
            exit_code: None,
            cached: false,
            seconds: 0.0,
            output: String::new(),
            junit_xml: None,
        }
    }

    pub(crate) fn could_not_run(mut self, msg: impl Into<String>) -> Self {
        self.outcome = TestOutcome::CouldNotRun;
        self.message = msg.into();
        self
    }
}

/// Run one suite of image `key` against `image_ref`. Errors only for bad input (an
/// unknown key, a missing integration port); everything that goes wrong while running
/// is in the result ([`TestOutcome::CouldNotRun`]). The log and JUnit files of `opts` are
/// written in every case where there is something to write.
pub async fn run_suite(
    spec: &Spec,
    key: &str,
    image_ref: &str,
    suite: Suite,
    opts: &Options,
) -> anyhow::Result<SuiteResult> {
    let image = spec.image(key).ok_or_else(|| {
        anyhow::anyhow!(
            "image {key:?} is not in {} (images: {})",
            spec.path.display(),
            spec.images.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    // Containers get the normalized reference; results and logs name it as written.
    let image_under_test = ImageRef::parse(image_ref)?;
    let started = std::time::Instant::now();
    let deadline = Instant::now() + opts.timeout;
    let scope = RunScope::new();
    let mut res = SuiteResult::new(suite, image_ref);

    let plan = match suite {
        Suite::Basic => {
            let inputs = basic_inputs(spec, image)?;
            res.notices.extend(inputs.notices);
            Plan {
                dirs: inputs.dirs,
                copies: inputs.copies,
                command: inputs.command,
                runner_image: image_ref.to_string(),
                runner: image_under_test.clone(),
                service: None,
            }
        }
        Suite::Integration => {
            let integ = image.tests.integration.clone().unwrap_or_default();
            let dir = image.dir(spec).join("integration_tests");
            let mut dirs = vec![];
            if dir.is_dir() {
                dirs.push((dir, "integration_tests".to_string()));
            } else {
                res.notices
                    .push(format!("no {} folder: skipped", rel(spec, &dir)));
            }
            if !dirs.is_empty() && integ.port.is_none() && integ.wait_log.is_none() {
                anyhow::bail!(
                    "images.{key}.tests.integration in {} needs `port` (or `wait_log`) to know when the service is ready",
                    spec.path.display()
                );
            }
            let runner = match &integ.runner_image {
                Some(r) => ImageRef::parse(r).map_err(|e| {
                    anyhow::anyhow!(
                        "images.{key}.tests.integration.runner_image in {}: {e}",
                        spec.path.display()
                    )
                })?,
                None => image_under_test.clone(),
            };
            Plan {
                copies: dirs.clone(),
                dirs,
                command: integ
                    .command
                    .clone()
                    .unwrap_or_else(|| DEFAULT_COMMAND.map(String::from).to_vec()),
                runner_image: integ.runner_image.clone().unwrap_or(image_ref.to_string()),
                runner,
                service: Some(Service {
                    port: integ.port,
                    wait_log: integ.wait_log.clone(),
                }),
            }
        }
    };
    for n in &res.notices {
        tracing::info!("{suite} tests of {image_ref}: {n}");
    }

    if plan.dirs.is_empty() {
        res.outcome = TestOutcome::NoTests;
        res.message = "no tests".to_string();
    } else {
        let run = run_plan(
            &plan,
            image_ref,
            &image_under_test,
            &scope,
            deadline,
            &opts.cancel,
        )
        .await;
        scope.cleanup().await;
        res = judge(res, run, opts.timeout);
    }
    res.seconds = started.elapsed().as_secs_f64();
    write_files(&res, opts)?;
    Ok(res)
}

/// What the basic suite of `image` runs, wherever it runs.
pub(crate) struct BasicInputs {
    /// Host folder and its name under the working directory, given to the test command.
    pub dirs: Vec<(PathBuf, String)>,
    /// What is copied where under the working directory (see [`basic_copies`]).
    pub copies: Vec<(PathBuf, String)>,
    pub command: Vec<String>,
    /// Missing test folders, said in the log.
    pub notices: Vec<String>,
}

pub(crate) fn basic_inputs(
    spec: &Spec,
    image: &crate::spec::ImageSpec,
) -> anyhow::Result<BasicInputs> {
    let mut dirs = vec![];
    let mut notices = vec![];
    for (dir, name) in [
        (
            spec.images_dir.join("tests_common"),
            "tests_common".to_string(),
        ),
        (image.dir(spec).join("test"), "test".to_string()),
    ] {
        if dir.is_dir() {
            dirs.push((dir, name));
        } else {
            notices.push(format!("no {} folder: skipped", rel(spec, &dir)));
        }
    }
    let command = image
        .tests
        .command
        .clone()
        .unwrap_or_else(|| DEFAULT_COMMAND.map(String::from).to_vec());
    let copies = basic_copies(&dirs)?;
    // A tests_common/ holding only shared files has no tests of its own to name.
    dirs.retain(|(_, n)| {
        n != "tests_common" || copies.iter().any(|(_, c)| c.starts_with("tests_common/"))
    });
    Ok(BasicInputs {
        dirs,
        copies,
        command,
        notices,
    })
}

/// Files of `tests_common/` that apply to every test folder when placed at the top of the
/// working directory: pytest scopes a `conftest.py` to its own folder, and reads a
/// `pytest.ini` only in the folders above the test paths.
const SHARED_TEST_FILES: [&str; 2] = ["conftest.py", "pytest.ini"];

/// What the basic suite copies where: `tests_common/` entry by entry, except its
/// [`SHARED_TEST_FILES`], which go to the top of the working directory so that their
/// fixtures and settings apply to `test/` as well; every other folder as a whole.
fn basic_copies(dirs: &[(PathBuf, String)]) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut out = vec![];
    for (dir, name) in dirs {
        if name != "tests_common" {
            out.push((dir.clone(), name.clone()));
            continue;
        }
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let file = e.file_name().to_string_lossy().into_owned();
            if SHARED_TEST_FILES.contains(&file.as_str()) {
                out.push((e.path(), file));
            } else {
                out.push((e.path(), format!("{name}/{file}")));
            }
        }
    }
    Ok(out)
}

/// The folder relative to the spec's images folder's parent, for messages.
fn rel(spec: &Spec, dir: &Path) -> String {
    let base = spec.images_dir.parent().unwrap_or(Path::new(""));
    format!(
        "{}/",
        dir.strip_prefix(base).unwrap_or(dir).to_string_lossy()
    )
}

struct Plan {
    /// Host folder and its name under the working directory, given to the test command.
    dirs: Vec<(PathBuf, String)>,
    /// What is copied where (paths under the working directory): the folders, except that
    /// `tests_common/`'s `conftest.py` and `pytest.ini` go to the top (see [`basic_copies`]).
    copies: Vec<(PathBuf, String)>,
    command: Vec<String>,
    /// The runner image as written (for messages), and parsed.
    runner_image: String,
    runner: ImageRef,
    service: Option<Service>,
}

struct Service {
    port: Option<u16>,
    wait_log: Option<String>,
}

/// What came out of the test container.
#[derive(Default)]
pub(crate) struct RunOutput {
    pub exit_code: Option<i64>,
    pub output: String,
    pub junit: Option<String>,
    /// Why it stopped early, if it did.
    pub stop: Option<Stop>,
}

async fn run_plan(
    plan: &Plan,
    image_ref: &str,
    image: &ImageRef,
    scope: &RunScope,
    deadline: Instant,
    cancel: &CancellationToken,
) -> RunOutput {
    let mut out = RunOutput::default();
    let mut env = vec![];
    let mut network = None;
    // The service container lives until the end of this function.
    let mut service_container: Option<ContainerAsync<GenericImage>> = None;

    if let Some(svc) = &plan.service {
        let net = match bounded(deadline, cancel, scope.create_network()).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                out.stop = Some(Stop::Error(format!("{e:#}")));
                return out;
            }
            Err(stop) => {
                out.stop = Some(stop);
                return out;
            }
        };
        let name = format!("stackctl-svc-{}", scope.id);
        match bounded(
            deadline,
            cancel,
            start_service(svc, image_ref, image, scope, &net, &name, deadline),
        )
        .await
        .unwrap_or_else(Err)
        {
            Ok(c) => service_container = Some(c),
            Err(stop) => {
                out.stop = Some(stop);
                return out;
            }
        }
        env.push(("SERVICE_NAME".to_string(), name.clone()));
        env.push((
            "SERVICE_URL".to_string(),
            match svc.port {
                Some(p) => format!("http://{name}:{p}"),
                None => format!("http://{name}"),
            },
        ));
        network = Some(net);
    }

    let mut cmd = plan.command.clone();
    cmd.extend([
        "-p".to_string(),
        "no:cacheprovider".to_string(),
        format!("--junitxml={JUNIT_PATH}"),
    ]);
    cmd.extend(plan.dirs.iter().map(|(_, n)| n.clone()));
    let program = cmd.first().cloned().unwrap_or_default();
    tracing::debug!("test command in {}: {cmd:?}", plan.runner_image);

    let mut req: ContainerRequest<GenericImage> = scope
        .request(
            &plan.runner,
            if plan.service.is_some() {
                "runner"
            } else {
                "test"
            },
        )
        .with_cmd(cmd)
        .with_working_dir(WORKDIR)
        .with_env_var("PYTHONDONTWRITEBYTECODE", "1")
        .with_startup_timeout(remaining(deadline));
    for (path, name) in &plan.copies {
        req = req.with_copy_to(format!("{WORKDIR}/{name}"), path.clone());
    }
    for (k, v) in env {
        req = req.with_env_var(k, v);
    }
    if let Some(net) = &network {
        req = req.with_network(net.clone());
    }

    let container = match bounded(
        deadline,
        cancel,
        containers::start(req, &plan.runner_image, &program),
    )
    .await
    .unwrap_or_else(Err)
    {
        Ok(c) => c,
        Err(stop) => {
            out.stop = Some(stop);
            return out;
        }
    };
    match bounded(deadline, cancel, containers::wait_exit(&container))
        .await
        .unwrap_or_else(Err)
    {
        Ok(code) => out.exit_code = Some(code),
        Err(stop) => out.stop = Some(stop),
    }
    // Output and report, also after a timeout: what ran so far is worth keeping.
    let grace = Duration::from_secs(30);
    out.output = tokio::time::timeout(grace, containers::logs(container.id()))
        .await
        .unwrap_or_default();
    if out.exit_code.is_some() {
        if let Ok(Ok(bytes)) = tokio::time::timeout(
            grace,
            container.copy_file_from(JUNIT_PATH, Vec::<u8>::new()),
        )
        .await
        {
            out.junit = Some(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    if let Some(svc) = &service_container {
        let svc_logs = tokio::time::timeout(grace, containers::logs(svc.id()))
            .await
            .unwrap_or_default();
        out.output.push_str(&format!(
            "\n---- service {image_ref} output ----\n{svc_logs}"
        ));
    }
    let _ = tokio::time::timeout(grace, container.rm()).await;
    if let Some(svc) = service_container {
        let _ = tokio::time::timeout(grace, svc.rm()).await;
    }
    out
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Start the service and wait until it is ready: its log line, else its port accepting
/// connections on the run's network (checked from here, so the engine must be local).
async fn start_service(
    svc: &Service,
    image_ref: &str,
    image: &ImageRef,
    scope: &RunScope,
    network: &str,
    name: &str,
    deadline: Instant,
) -> Result<ContainerAsync<GenericImage>, Stop> {
    let mut image = containers::generic_image(image);
    if let Some(line) = &svc.wait_log {
        image = image.with_wait_for(WaitFor::message_on_either_std(line.as_str()));
    }
    let req = image
        .with_labels(scope.labels("service"))
        .with_network(network)
        .with_container_name(name)
        .with_startup_timeout(remaining(deadline));
    let c = containers::start(req, image_ref, "its default command")
        .await
        .map_err(|e| match e {
            Stop::Error(m) => Stop::Error(format!("service: {m}")),
            other => other,
        })?;
    if svc.wait_log.is_some() {
        return Ok(c);
    }
    let Some(port) = svc.port else { return Ok(c) };
    let ip = containers::ip_on_network(c.id(), network)
        .await
        .map_err(|e| Stop::Error(format!("service: {e:#}")))?;
    loop {
        let connect = tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect((ip.as_str(), port)),
        )
        .await;
        if matches!(connect, Ok(Ok(_))) {
            return Ok(c);
        }
        if let Ok(Some(code)) = c.exit_code().await {
            let logs = containers::logs(c.id()).await;
            return Err(Stop::Error(format!(
                "service {image_ref} exited with code {code} before port {port} opened: {}",
                tail(&logs, 10)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The last `n` lines of `s`, joined for a message.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Turn what the container did into a result.
pub(crate) fn judge(mut res: SuiteResult, run: RunOutput, timeout: Duration) -> SuiteResult {
    res.output = run.output;
    res.junit_xml = run.junit.clone();
    res.exit_code = run.exit_code;
    match run.stop {
        Some(Stop::Timeout) => {
            return res.could_not_run(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            ))
        }
        Some(Stop::Cancelled) => return res.could_not_run("interrupted"),
        Some(Stop::Error(m)) => return res.could_not_run(m),
        None => {}
    }
    let code = run.exit_code.unwrap_or(-1);
    // pytest: 5 = no tests collected, which the old tool took as a pass.
    if code == 5 {
        res.outcome = TestOutcome::NoTests;
        res.message = "no tests".to_string();
        return res;
    }
    let Some(xml) = run.junit else {
        let why = match code {
            126 | 127 => "the test command was not found in the image (no python?)".to_string(),
            _ => format!("the test command exited with code {code} without a JUnit report"),
        };
        let t = tail(&res.output, 5);
        return res.could_not_run(if t.is_empty() {
            why
        } else {
            format!("{why}: {t}")
        });
    };
    res.counts = match junit::parse(&xml) {
        Ok(r) => r,
        Err(e) => return res.could_not_run(format!("unreadable JUnit report: {e}")),
    };
    if res.counts.failed_or_errored() > 0 || code == 1 {
        res.outcome = TestOutcome::Failed;
        res.message = match res.counts.failures.first() {
            Some(f) => format!("failed: {} ({})", f.name, f.message),
            None => format!("failed (exit code {code})"),
        };
    } else if code == 0 {
        res.outcome = TestOutcome::Passed;
        res.message = if res.counts.passed + res.counts.skipped == 0 {
            "no tests".into()
        } else {
            "passed".into()
        };
    } else {
        let t = tail(&res.output, 5);
        res = res.could_not_run(format!("pytest exited with code {code}: {t}"));
    }
    res
}

pub(crate) fn write_files(res: &SuiteResult, opts: &Options) -> anyhow::Result<()> {
    use anyhow::Context;
    let write = |path: &Path, text: &str| -> anyhow::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    if let Some(log) = &opts.log_file {
        let mut text = String::new();
        for n in &res.notices {
            text.push_str(&format!("stackctl: {n}\n"));
        }
        text.push_str(&res.output);
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!(
            "stackctl: {} tests of {}: {} ({})\n",
            res.suite,
            res.image,
            res.message,
            res.counts.summary()
        ));
        write(log, &text)?;
    }
    if let (Some(path), Some(xml)) = (&opts.junit_file, &res.junit_xml) {
        match &opts.junit_suite_name {
            Some(name) => write(path, &junit::rename_suite(xml, name))?,
            None => write(path, xml)?,
        }
    }
    Ok(())
}
