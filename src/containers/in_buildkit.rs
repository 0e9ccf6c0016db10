//! Running things in an image on the BuildKit node that built it, instead of pulling it into
//! a Docker engine: the basic tests, the manifest page's info commands, content tag commands.
//!
//! How: a client-side build ([`crate::buildkit::gateway`]) solves the image by the pushed
//! digest and the test folders (local inputs through the session's file sync, arranged by a
//! file op, mounted read-only) and runs the test command on them as the image's user, with its
//! environment and the engine runner's working directory.
//!
//! Why the tests are an exec op in an LLB definition and the info commands run in a gateway
//! container: buildkitd v0.25 (the one the tests run) does not implement reading a file back
//! out of a gateway container (ReadFileContainer: Unimplemented), and the tests' JUnit
//! report must come back. An exec op's output
//! folder can be read (ReadFile) when it passed, and when it failed too: BuildKit hands the
//! failed op's mounts back with the error (`errdefs.Solve`), so nothing is lost; its exit
//! status is in the error; and its cache key (image digest, the files' contents, the command)
//! is exactly what `tests: {cache: true}` reuses a pass by, while `ignore_cache` makes every
//! other run a fresh one. The price: its output comes from the build's progress stream,
//! which buildkitd clips past 2 MiB a step (its BUILDKIT_STEP_LOG_MAX_SIZE raises that).
//! The info commands only need their output and exit status, which a container's process
//! gives exactly, with standard output and error apart. Neither needs a program of the image
//! to get results out, so an image without a shell works (a command is run as it is; info
//! commands are `/bin/sh -c` by definition).

use super::commands::{describe, InfoOutput};
use super::suite::{self, Options, RunOutput, Suite, SuiteResult, WORKDIR};
use super::{bounded, Stop};
use crate::buildkit::gateway::{GatewayBuild, ProcessOutput};
use crate::buildkit::llb::{self, Placed};
use crate::buildkit::session::LocalDir;
use crate::buildkit::Client;
use crate::credentials::CredentialStore;
use crate::spec::InfoCmd;
use crate::spec::Spec;
use bollard_buildkit_proto::pb::{Meta, Mount};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where a run writes its JUnit report: a folder of its own that any user may write, the
/// op's output (so that the report is part of a cached result, and comes back with a failure).
const REPORT_DIR: &str = "/tmp/stackctl-out";
const REPORT: &str = "/tmp/stackctl-out/junit.xml";

/// One basic suite to run.
struct Tests<'a> {
    image_ref: &'a str,
    platform: Option<&'a str>,
    dirs: HashMap<String, LocalDir>,
    placed: &'a [Placed],
    /// The test command with the arguments stackctl adds.
    args: Vec<String>,
    deadline: Instant,
    cancel: &'a CancellationToken,
}

/// The exit status a pytest-like command gives with this JUnit report (see
/// [`Node::run_once`]); None for a report that cannot be read.
fn implied_exit_code(xml: &str) -> Option<i64> {
    let r = suite::junit::parse(xml).ok()?;
    Some(if r.failed_or_errored() > 0 {
        1
    } else if r.passed + r.skipped == 0 {
        5
    } else {
        0
    })
}

/// The exit status in BuildKit's message for a failed exec (`… did not complete
/// successfully: exit code: 1`).
fn exit_code_of(message: &str) -> Option<i64> {
    let at = message.rfind("exit code: ")? + "exit code: ".len();
    let digits: String = message[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Docker's PATH for a container whose image sets none (the engine runner's).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A BuildKit node to run things on, with the registry credentials it pulls with.
#[derive(Clone)]
pub struct Node {
    client: Client,
    credentials: CredentialStore,
}

/// How the image's processes run: its config's user, environment and working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageProcess {
    user: String,
    env: Vec<String>,
    workdir: String,
}

impl Node {
    pub fn new(client: Client, credentials: CredentialStore) -> Node {
        Node {
            client,
            credentials,
        }
    }

    pub fn address(&self) -> String {
        self.client.address().to_string()
    }

    /// The basic suite of image `key` in `image_ref` (`<repository>@<digest>`) on `platform`
    /// (None: the node's own). As [`suite::run_suite`]: errors only for bad input; everything
    /// that goes wrong while running is in the result, and the files of `opts` are written.
    pub async fn basic_suite(
        &self,
        spec: &Spec,
        key: &str,
        image_ref: &str,
        platform: Option<&str>,
        opts: &Options,
    ) -> anyhow::Result<SuiteResult> {
        let image = spec
            .image(key)
            .ok_or_else(|| anyhow::anyhow!("image {key:?} is not in {}", spec.path.display()))?;
        let started = std::time::Instant::now();
        let deadline = Instant::now() + opts.timeout;
        let mut res = SuiteResult::new(Suite::Basic, image_ref);
        let inputs = suite::basic_inputs(spec, image)?;
        res.notices.extend(inputs.notices.iter().cloned());
        for n in &res.notices {
            tracing::info!("basic tests of {image_ref}: {n}");
        }
        if inputs.dirs.is_empty() {
            res.outcome = suite::TestOutcome::NoTests;
            res.message = "no tests".to_string();
        } else {
            let cache = image.tests.cache.unwrap_or(false);
            let mut cmd = inputs.command.clone();
            cmd.extend([
                "-p".to_string(),
                "no:cacheprovider".to_string(),
                format!("--junitxml={REPORT}"),
            ]);
            cmd.extend(inputs.dirs.iter().map(|(_, n)| n.clone()));
            let (placed, dirs) = placements(&inputs.copies, &inputs.dirs);
            let tests = Tests {
                image_ref,
                platform,
                dirs,
                placed: &placed,
                args: cmd,
                deadline,
                cancel: &opts.cancel,
            };
            let (run, cached) = self.run_tests(tests, cache).await;
            res = suite::judge(res, run, opts.timeout);
            if cached && res.outcome == suite::TestOutcome::Passed {
                res.cached = true;
                res.message = "passed (cached)".into();
                res.notices.push(
                    "cached: a pass of this image digest with the same test files, from BuildKit's \
                     cache (tests: {cache: true}); not run again"
                        .into(),
                );
            }
        }
        res.seconds = started.elapsed().as_secs_f64();
        suite::write_files(&res, opts)?;
        Ok(res)
    }

    /// The tests as an exec op, run every time unless `cacheable` (`tests: {cache: true}`):
    /// then its key is the image digest, the test files' contents and the command, and as
    /// only a run that exits 0 is kept, only a pass is ever reused. The output comes from the
    /// build's progress; the report from the op's written folder, which BuildKit hands back
    /// with the error when the run failed. Whether the result came from the cache is the
    /// second value.
    async fn run_tests(&self, t: Tests<'_>, cacheable: bool) -> (RunOutput, bool) {
        let (first, cached) = self.run_once(&t, cacheable).await;
        let failed_run = first.stop.is_none() && first.exit_code.is_some_and(|c| c != 0);
        if cacheable && failed_run {
            // BuildKit keeps no failed run, and hands none of its files back: run it again,
            // every exit status accepted, for its report.
            tracing::info!(
                "basic tests of {} failed (exit code {}); run again for their report",
                t.image_ref,
                first.exit_code.unwrap_or_default()
            );
            return self.run_once(&t, false).await;
        }
        (first, cached)
    }

    /// One run of the tests as an exec op. Not `cacheable`: every exit status is valid to
    /// BuildKit (so the op never fails on the tests' verdict and its written folder can be
    /// read), and the status is the one the JUnit report implies (1 with a failing or
    /// erroring test, 5 with no test, else 0); no report is "could not run". `cacheable`: only
    /// exit 0 is valid, so that BuildKit keeps passes only; a failure's exit status is in its
    /// error, its report is not.
    async fn run_once(&self, t: &Tests<'_>, cacheable: bool) -> (RunOutput, bool) {
        let mut out = RunOutput::default();
        let address = self.client.address().to_string();
        let work = bounded(t.deadline, t.cancel, async {
            let gw = self
                .client
                .gateway("stackctl-tests", t.dirs.clone(), self.credentials.clone())
                .await?;
            let root = gw
                .solve(
                    llb::image(t.image_ref, t.platform),
                    &format!("image {}", t.image_ref),
                )
                .await?;
            let process = image_process(&gw, &root, t.image_ref, t.platform).await?;
            let mut env = process.env.clone();
            env.push("PYTHONDONTWRITEBYTECODE=1".into());
            let meta = Meta {
                args: t.args.clone(),
                env,
                cwd: WORKDIR.into(),
                user: process.user.clone(),
                valid_exit_codes: if cacheable {
                    vec![]
                } else {
                    (0..=255).collect()
                },
                ..Default::default()
            };
            // Unique to the run; not part of the cache key.
            let name = format!("stackctl basic tests {}", crate::buildkit::new_id());
            let def = llb::run_with_output(llb::RunWithOutput {
                image_ref: t.image_ref,
                platform: t.platform,
                session: gw.session_id(),
                placed: t.placed,
                tests_at: WORKDIR,
                out_at: REPORT_DIR,
                meta,
                cacheable,
                name: &name,
            });
            let mut run = RunOutput::default();
            match gw.solve_keeping_failure(def).await {
                Ok(id) => {
                    if let Some(b) = gw.read_file(&id, "/out/junit.xml").await? {
                        run.junit = Some(String::from_utf8_lossy(&b).into_owned());
                    }
                    run.exit_code = if cacheable {
                        Some(0)
                    } else {
                        run.junit.as_deref().and_then(implied_exit_code)
                    };
                }
                Err(f) => match exit_code_of(&f.message) {
                    Some(code) => run.exit_code = Some(code),
                    None => run.stop = Some(Stop::Error(f.message.clone())),
                },
            }
            let (log, cached) = gw.finish_reading(&name).await;
            run.output = String::from_utf8_lossy(&log).into_owned();
            if run.exit_code.is_none() && run.stop.is_none() {
                let tail: Vec<&str> = run.output.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                run.stop = Some(Stop::Error(format!(
                    "the test command ended without a JUnit report: {}",
                    tail.join("\n")
                )));
            }
            anyhow::Ok((run, cached && cacheable))
        })
        .await;
        match work {
            Ok(Ok(v)) => return v,
            Ok(Err(e)) => out.stop = Some(Stop::Error(format!("BuildKit at {address}: {e:#}"))),
            Err(stop) => out.stop = Some(stop),
        }
        (out, false)
    }

    /// `cmds` through `/bin/sh -c` in one container of `image_ref` on `platform`, as the
    /// engine's [`super::commands::run_info_commands`]: a failing command is reported in its
    /// output; an image that cannot be had fails every command; only a timeout or a
    /// cancellation is an error.
    pub async fn info_commands(
        &self,
        image_ref: &str,
        platform: Option<&str>,
        cmds: &[InfoCmd],
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Vec<InfoOutput>, Stop> {
        if cmds.is_empty() {
            return Ok(vec![]);
        }
        let deadline = Instant::now() + timeout;
        let prepared = bounded(deadline, cancel, async {
            let gw = self
                .client
                .gateway("stackctl-info", HashMap::new(), self.credentials.clone())
                .await?;
            let root = gw
                .solve(
                    llb::image(image_ref, platform),
                    &format!("image {image_ref}"),
                )
                .await?;
            let process = image_process(&gw, &root, image_ref, platform).await?;
            anyhow::Ok((gw, root, process))
        })
        .await?;
        let (gw, root, process) = match prepared {
            Ok(v) => v,
            Err(e) => {
                return Ok(InfoOutput::failed_all(
                    cmds,
                    format!(
                        "could not run: BuildKit at {}: {e:#}",
                        self.client.address()
                    ),
                ))
            }
        };
        // A container per command, all at once: a gateway container ends with its first
        // process, and without a program kept running in it (none is sure to be in the
        // image); they share the solved root, so each is only a process start.
        let runs = cmds
            .iter()
            .map(|c| run_info_command(&gw, &root, &process, platform, c, deadline, cancel));
        let mut out = Vec::with_capacity(cmds.len());
        let mut stop = None;
        for r in futures::future::join_all(runs).await {
            match r {
                Ok(o) => out.push(o),
                Err(s) => stop = stop.or(Some(s)),
            }
        }
        let _ = tokio::time::timeout(GRACE, gw.finish()).await;
        match stop {
            Some(s) => Err(s),
            None => Ok(out),
        }
    }
}

/// How long a container's release or the session's end may take once the work is done.
const GRACE: Duration = Duration::from_secs(30);

/// One info command in a container of its own on `root`.
async fn run_info_command(
    gw: &GatewayBuild,
    root: &str,
    process: &ImageProcess,
    platform: Option<&str>,
    c: &InfoCmd,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<InfoOutput, Stop> {
    let id = crate::buildkit::new_id();
    let mounts = vec![Mount {
        dest: "/".into(),
        result_id: root.to_string(),
        output: 0,
        ..Default::default()
    }];
    let mut po = ProcessOutput::default();
    if let Err(e) = bounded(deadline, cancel, gw.new_container(&id, mounts, platform)).await? {
        po.error = Some(format!("{e:#}"));
    }
    let meta = Meta {
        args: vec!["/bin/sh".into(), "-c".into(), c.command.clone()],
        env: process.env.clone(),
        cwd: process.workdir.clone(),
        user: process.user.clone(),
        ..Default::default()
    };
    if po.error.is_none() {
        if let Err(e) = bounded(deadline, cancel, gw.run(&id, meta, &mut po)).await? {
            po.error = Some(format!("{e:#}"));
        }
    }
    let _ = tokio::time::timeout(GRACE, gw.release_container(&id)).await;
    let stdout = String::from_utf8_lossy(&po.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&po.stderr).into_owned();
    let (text, ok, stdout) = match (po.exit_code, po.error) {
        (Some(code), _) => describe(code as i64, stdout, &stderr),
        (None, e) => (
            format!(
                "could not run: {}",
                e.unwrap_or_else(|| "no exit status".into())
            ),
            false,
            String::new(),
        ),
    };
    Ok(InfoOutput {
        description: c.description.clone(),
        command: c.command.clone(),
        text,
        ok,
        stdout,
    })
}

fn local(dir: &Path) -> LocalDir {
    LocalDir {
        root: dir.to_path_buf(),
        excludes: vec![],
    }
}

/// Where the basic suite's copies go, as file op copies from the session's local folders
/// (`tests_common`, `test`): whole folders by their contents, `tests_common/` entry by entry;
/// with the local folders the session offers.
fn placements(
    copies: &[(PathBuf, String)],
    dirs: &[(PathBuf, String)],
) -> (Vec<Placed>, HashMap<String, LocalDir>) {
    let mut locals = HashMap::new();
    let placed = copies
        .iter()
        .map(|(path, dest)| match dirs.iter().find(|(d, _)| d == path) {
            Some((dir, name)) => {
                locals.insert(name.clone(), local(dir));
                Placed {
                    local: name.clone(),
                    src: "/".into(),
                    dest: format!("/{dest}"),
                    is_dir: true,
                }
            }
            None => {
                // An entry of tests_common/ (see suite::basic_inputs), which may hold only
                // shared files and so not be among the named folders.
                if let Some(parent) = path.parent() {
                    locals.insert("tests_common".to_string(), local(parent));
                }
                let file = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Placed {
                    local: "tests_common".into(),
                    src: format!("/{file}"),
                    dest: format!("/{dest}"),
                    is_dir: path.is_dir(),
                }
            }
        })
        .collect();
    (placed, locals)
}

/// The image's user, environment (with Docker's PATH and HOME when it sets none, as a
/// container of the engine gets) and working directory, from its config on the node.
async fn image_process(
    gw: &GatewayBuild,
    root: &str,
    image_ref: &str,
    platform: Option<&str>,
) -> anyhow::Result<ImageProcess> {
    let raw = gw.image_config(image_ref, platform).await?;
    let config: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| anyhow::anyhow!("the config of {image_ref} is not JSON: {e}"))?;
    let c = &config["config"];
    let user = c["User"].as_str().unwrap_or("").to_string();
    let mut env: Vec<String> = c["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let workdir = c["WorkingDir"]
        .as_str()
        .filter(|w| !w.is_empty())
        .unwrap_or("/")
        .to_string();
    let has = |env: &[String], k: &str| env.iter().any(|e| e.starts_with(&format!("{k}=")));
    if !has(&env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOME") {
        let passwd = gw.read_file(root, "/etc/passwd").await.unwrap_or(None);
        let passwd = passwd
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        env.push(format!("HOME={}", home_of(&passwd, &user)));
    }
    Ok(ImageProcess { user, env, workdir })
}

/// The home folder of `user` (`name`, `uid`, either with `:group`) in an `/etc/passwd`; `/`
/// when it is not there, as Docker does (root's, `/root`, when it is).
fn home_of(passwd: &str, user: &str) -> String {
    let who = user.split(':').next().unwrap_or("");
    let who = if who.is_empty() { "root" } else { who };
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 6 && (f[0] == who || f[2] == who || (who == "root" && f[2] == "0")) {
            return f[5].to_string();
        }
    }
    "/".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_of_failed_execs() {
        assert_eq!(
            exit_code_of(
                r#"process "python3 -m pytest" did not complete successfully: exit code: 1"#
            ),
            Some(1)
        );
        assert_eq!(exit_code_of("executable file not found in $PATH"), None);
        let case = |body: &str| {
            format!("<testsuite><testcase classname=\"c\" name=\"t\">{body}</testcase></testsuite>")
        };
        assert_eq!(implied_exit_code(&case("")), Some(0));
        assert_eq!(
            implied_exit_code(&case("<failure message=\"m\"/>")),
            Some(1)
        );
        assert_eq!(implied_exit_code("<testsuite/>"), Some(5));
    }

    #[test]
    fn homes_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\njovyan:x:1000:100::/home/jovyan:/bin/bash\n";
        assert_eq!(home_of(passwd, ""), "/root");
        assert_eq!(home_of(passwd, "jovyan"), "/home/jovyan");
        assert_eq!(home_of(passwd, "1000:100"), "/home/jovyan");
        assert_eq!(home_of(passwd, "4242"), "/");
        assert_eq!(home_of("", ""), "/");
    }

    #[test]
    fn copies_become_placements() {
        let tc = PathBuf::from("/r/images/tests_common");
        let t = PathBuf::from("/r/images/base/test");
        let dirs = vec![
            (tc.clone(), "tests_common".to_string()),
            (t.clone(), "test".into()),
        ];
        let copies = vec![
            (tc.join("conftest.py"), "conftest.py".to_string()),
            (tc.join("test_x.py"), "tests_common/test_x.py".to_string()),
            (t.clone(), "test".to_string()),
        ];
        let (p, locals) = placements(&copies, &dirs);
        assert_eq!(locals.len(), 2);
        assert_eq!(
            p.iter()
                .map(|p| (p.local.as_str(), p.src.as_str(), p.dest.as_str(), p.is_dir))
                .collect::<Vec<_>>(),
            [
                ("tests_common", "/conftest.py", "/conftest.py", false),
                (
                    "tests_common",
                    "/test_x.py",
                    "/tests_common/test_x.py",
                    false
                ),
                ("test", "/", "/test", true),
            ]
        );
    }
}
