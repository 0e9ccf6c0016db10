//! Running things in an image on the BuildKit node that built it, instead of pulling it into
//! a Docker engine: the basic tests, the manifest page's info commands, content tag commands.
//!
//! How: a client-side build ([`crate::buildkit::gateway`]) solves the image by the pushed
//! digest and the test folders (local inputs through the session's file sync, arranged by a
//! file op, mounted read-only), makes a gateway container of them and runs the command in it
//! with the image's user, environment and the engine runner's working directory.
//!
//! Why a gateway container and not an exec op in an LLB definition: a failing exec op fails
//! the whole solve, and its outputs (the JUnit report) are then lost; its output comes only as
//! progress logs that buildkitd clips (2 MiB a step by default); a process that cannot start
//! and one that exits 1 look alike but for the words of the error; and an exec op is cached
//! unless told not to be. A container's process gives its exact exit status, every byte of its
//! output as it comes, and is never served from BuildKit's cache; the report is read from the
//! container's root (ReadFileContainer) after the process ends, with no program of the image
//! involved, so an image without a shell works.

use super::commands::{describe, InfoCmd, InfoOutput};
use super::suite::{self, Options, RunOutput, Suite, SuiteResult, JUNIT_PATH, WORKDIR};
use super::{bounded, Stop};
use crate::buildkit::gateway::{GatewayBuild, ProcessOutput};
use crate::buildkit::llb::{self, Placed};
use crate::buildkit::session::LocalDir;
use crate::buildkit::Client;
use crate::credentials::CredentialStore;
use crate::spec::Spec;
use bollard_buildkit_proto::pb::{Meta, Mount};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
        let image = spec.image(key).ok_or_else(|| {
            anyhow::anyhow!("image {key:?} is not in {}", spec.path.display())
        })?;
        let started = std::time::Instant::now();
        let deadline = Instant::now() + opts.timeout;
        let mut res = SuiteResult::new(Suite::Basic, image_ref);
        let inputs = suite::basic_inputs(spec, image)?;
        res.notices.extend(inputs.notices.iter().cloned());
        for n in &res.notices {
            tracing::info!("basic tests of {image_ref}: {n}");
        }
        if inputs.dirs.is_empty() {
            res.outcome = suite::Outcome::NoTests;
            res.message = "no tests".to_string();
        } else {
            let mut cmd = inputs.command.clone();
            cmd.extend([
                "-p".to_string(),
                "no:cacheprovider".to_string(),
                format!("--junitxml={JUNIT_PATH}"),
            ]);
            cmd.extend(inputs.dirs.iter().map(|(_, n)| n.clone()));
            let (placed, dirs) = placements(&inputs.copies, &inputs.dirs);
            let run = self
                .run_tests(image_ref, platform, dirs, &placed, cmd, deadline, &opts.cancel)
                .await;
            res = suite::judge(res, run, opts.timeout);
        }
        res.seconds = started.elapsed().as_secs_f64();
        suite::write_files(&res, opts)?;
        Ok(res)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_tests(
        &self,
        image_ref: &str,
        platform: Option<&str>,
        dirs: HashMap<String, LocalDir>,
        placed: &[Placed],
        args: Vec<String>,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> RunOutput {
        let mut out = RunOutput::default();
        let prepared = bounded(deadline, cancel, async {
            let gw = self
                .client
                .gateway("stackctl-tests", dirs, self.credentials.clone())
                .await?;
            let root = gw
                .solve(llb::image(image_ref, platform), &format!("image {image_ref}"))
                .await?;
            let tests = gw
                .solve(
                    llb::local_tree(gw.session_id(), placed),
                    "the test folders",
                )
                .await?;
            let process = image_process(&gw, &root, image_ref, platform).await?;
            let id = crate::buildkit::new_id();
            let mounts = vec![
                Mount {
                    dest: "/".into(),
                    result_id: root,
                    output: 0,
                    ..Default::default()
                },
                Mount {
                    dest: WORKDIR.into(),
                    result_id: tests,
                    readonly: true,
                    output: -1,
                    ..Default::default()
                },
            ];
            gw.new_container(&id, mounts, platform).await?;
            anyhow::Ok((gw, id, process))
        })
        .await;
        let (gw, id, process) = match prepared {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                out.stop = Some(Stop::Error(format!(
                    "BuildKit at {}: {e:#}",
                    self.client.address()
                )));
                return out;
            }
            Err(stop) => {
                out.stop = Some(stop);
                return out;
            }
        };
        let program = args.first().cloned().unwrap_or_default();
        let mut env = process.env.clone();
        env.push("PYTHONDONTWRITEBYTECODE=1".into());
        let meta = Meta {
            args,
            env,
            cwd: WORKDIR.into(),
            user: process.user.clone(),
            ..Default::default()
        };
        tracing::debug!("test command on {}: {:?}", self.client.address(), meta.args);
        let mut po = ProcessOutput::default();
        match bounded(deadline, cancel, gw.run(&id, meta, &mut po)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => out.stop = Some(Stop::Error(format!("{e:#}"))),
            Err(stop) => out.stop = Some(stop),
        }
        out.output = String::from_utf8_lossy(&po.output).into_owned();
        if out.stop.is_none() {
            match (po.exit_code, &po.error) {
                (Some(code), _) => out.exit_code = Some(code as i64),
                (None, Some(e)) => {
                    out.stop = Some(Stop::Error(format!(
                        "cannot run `{program}` in {image_ref}: {e}"
                    )))
                }
                (None, None) => {
                    out.stop = Some(Stop::Error(
                        "the test process ended without an exit status".into(),
                    ))
                }
            }
        }
        let grace = Duration::from_secs(30);
        if out.exit_code.is_some() {
            match tokio::time::timeout(grace, gw.read_container_file(&id, 0, JUNIT_PATH)).await {
                Ok(Ok(Some(bytes))) => {
                    out.junit = Some(String::from_utf8_lossy(&bytes).into_owned())
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::warn!("the JUnit report of {image_ref}: {e:#}"),
                Err(_) => tracing::warn!("the JUnit report of {image_ref}: no answer in 30s"),
            }
        }
        let _ = tokio::time::timeout(grace, gw.release_container(&id)).await;
        let _ = tokio::time::timeout(grace, gw.finish()).await;
        out
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
        let failed_all = |why: String| {
            cmds.iter()
                .map(|c| InfoOutput {
                    description: c.description.clone(),
                    command: c.command.clone(),
                    text: why.clone(),
                    ok: false,
                    stdout: String::new(),
                })
                .collect::<Vec<_>>()
        };
        let prepared = bounded(deadline, cancel, async {
            let gw = self
                .client
                .gateway("stackctl-info", HashMap::new(), self.credentials.clone())
                .await?;
            let root = gw
                .solve(llb::image(image_ref, platform), &format!("image {image_ref}"))
                .await?;
            let process = image_process(&gw, &root, image_ref, platform).await?;
            let id = crate::buildkit::new_id();
            let mounts = vec![Mount {
                dest: "/".into(),
                result_id: root,
                output: 0,
                ..Default::default()
            }];
            gw.new_container(&id, mounts, platform).await?;
            anyhow::Ok((gw, id, process))
        })
        .await?;
        let (gw, id, process) = match prepared {
            Ok(v) => v,
            Err(e) => {
                return Ok(failed_all(format!(
                    "could not run: BuildKit at {}: {e:#}",
                    self.client.address()
                )))
            }
        };
        let mut out = Vec::new();
        for c in cmds {
            let meta = Meta {
                args: vec!["/bin/sh".into(), "-c".into(), c.command.clone()],
                env: process.env.clone(),
                cwd: process.workdir.clone(),
                user: process.user.clone(),
                ..Default::default()
            };
            let mut po = ProcessOutput::default();
            bounded(deadline, cancel, gw.run(&id, meta, &mut po))
                .await?
                .map_err(|e| Stop::Error(format!("{e:#}")))
                .ok();
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
            out.push(InfoOutput {
                description: c.description.clone(),
                command: c.command.clone(),
                text,
                ok,
                stdout,
            });
        }
        let grace = Duration::from_secs(30);
        let _ = tokio::time::timeout(grace, gw.release_container(&id)).await;
        let _ = tokio::time::timeout(grace, gw.finish()).await;
        Ok(out)
    }
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
        let dirs = vec![(tc.clone(), "tests_common".to_string()), (t.clone(), "test".into())];
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
                ("tests_common", "/test_x.py", "/tests_common/test_x.py", false),
                ("test", "/", "/test", true),
            ]
        );
    }
}
