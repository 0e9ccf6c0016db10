//! Commands run in order in one container of an image: a manifest page's info commands
//! (`info_cmds`, [`crate::wiki::image_page`]) and the commands of content tag templates
//! ([`crate::content_tags`]).

use crate::containers::{self, bounded, RunScope, Stop};
use crate::registry::ImageRef;
use crate::spec::InfoCmd;
use std::time::Duration;
use testcontainers::core::ExecCommand;
use testcontainers::ImageExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What one info command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoOutput {
    pub description: String,
    pub command: String,
    /// Exit code 0: its standard output (then standard error, if any).
    /// Otherwise: the error output and exit code, or why it could not run.
    pub text: String,
    pub ok: bool,
    /// The standard output alone (empty when the command could not run).
    pub stdout: String,
}

impl InfoOutput {
    /// Every command of `cmds` failed for one reason (its container or node could not run
    /// them).
    pub(crate) fn failed_all(cmds: &[InfoCmd], why: String) -> Vec<InfoOutput> {
        cmds.iter()
            .map(|c| InfoOutput {
                description: c.description.clone(),
                command: c.command.clone(),
                text: why.clone(),
                ok: false,
                stdout: String::new(),
            })
            .collect()
    }
}

/// Run `cmds` through `/bin/sh -c` in one container of `image_ref` (kept alive by a
/// shell loop, the image's entrypoint replaced). A failing command is reported in its
/// output, never aborts the others; a container that cannot start fails every command.
/// Only a timeout or a cancellation is an error (the outputs would be incomplete).
pub async fn run_info_commands(
    image_ref: &ImageRef,
    cmds: &[InfoCmd],
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Vec<InfoOutput>, Stop> {
    if cmds.is_empty() {
        return Ok(vec![]);
    }
    let scope = RunScope::new();
    let deadline = Instant::now() + timeout;
    let out = run(&scope, image_ref, cmds, deadline, cancel).await;
    scope.cleanup().await;
    out
}

async fn run(
    scope: &RunScope,
    image_ref: &ImageRef,
    cmds: &[InfoCmd],
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<Vec<InfoOutput>, Stop> {
    let req = containers::generic_image(image_ref)
        .with_entrypoint("/bin/sh")
        .with_labels(scope.labels("info"))
        .with_cmd(["-c", "while :; do sleep 3600; done"])
        .with_startup_timeout(deadline.saturating_duration_since(Instant::now()));
    let container = match bounded(
        deadline,
        cancel,
        containers::start(req, &image_ref.to_string(), "/bin/sh"),
    )
    .await
    .unwrap_or_else(Err)
    {
        Ok(c) => c,
        Err(Stop::Error(m)) => {
            return Ok(InfoOutput::failed_all(cmds, format!("could not run: {m}")))
        }
        Err(stop) => return Err(stop),
    };
    let mut out = Vec::new();
    for c in cmds {
        let (text, ok, stdout) = match bounded(deadline, cancel, exec(&container, &c.command))
            .await
            .unwrap_or_else(Err)
        {
            Ok(v) => v,
            Err(Stop::Error(m)) => (format!("could not run: {m}"), false, String::new()),
            Err(stop) => return Err(stop),
        };
        out.push(InfoOutput {
            description: c.description.clone(),
            command: c.command.clone(),
            text,
            ok,
            stdout,
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), container.rm()).await;
    Ok(out)
}

async fn exec(
    c: &testcontainers::ContainerAsync<testcontainers::GenericImage>,
    command: &str,
) -> Result<(String, bool, String), Stop> {
    let err = |e: testcontainers::TestcontainersError| Stop::Error(e.to_string());
    let mut r = c
        .exec(ExecCommand::new(["/bin/sh", "-c", command]))
        .await
        .map_err(err)?;
    let stdout = String::from_utf8_lossy(&r.stdout_to_vec().await.map_err(err)?).into_owned();
    let stderr = String::from_utf8_lossy(&r.stderr_to_vec().await.map_err(err)?).into_owned();
    // The exec's exit code appears once the engine has noticed the process ended.
    let mut code = None;
    for _ in 0..50 {
        code = r.exit_code().await.map_err(err)?;
        if code.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(describe(code.unwrap_or(-1), stdout, &stderr))
}

/// What a finished command shows: exit code 0, its standard output (then its error output);
/// otherwise the exit code, the error output and then the standard output. With whether it
/// succeeded and its standard output alone.
pub(crate) fn describe(code: i64, stdout: String, stderr: &str) -> (String, bool, String) {
    if code == 0 {
        let mut text = stdout.clone();
        if !stderr.trim().is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(stderr);
        }
        (text, true, stdout)
    } else {
        let mut text = format!("exit code {code}\n");
        text.push_str(stderr);
        if !stdout.trim().is_empty() {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&stdout);
        }
        (text, false, stdout)
    }
}
