//! The GitHub Actions event a run was started by: the variables a plan reads
//! ([`GithubEnv`]), the kind of event ([`GithubEvent`]) and the base commit its JSON payload
//! names ([`payload_base`]). What a plan makes of them is [`crate::plan::resolve_options`].

use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What triggered the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum GithubEvent {
    /// Commits pushed to a branch: the files changed between base and head.
    Push,
    /// A pull request: every file it changes (merge-base of base and head, to head).
    #[value(name = "pull_request", alias = "pull-request")]
    PullRequest,
    /// A scheduled run: no files count as changed and the branch and commit rules rebuild
    /// nothing; only images whose tag is missing or whose base moved rebuild.
    Schedule,
}

impl fmt::Display for GithubEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GithubEvent::Push => "push",
            GithubEvent::PullRequest => "pull_request",
            GithubEvent::Schedule => "schedule",
        })
    }
}

/// The GitHub Actions variables a plan reads, as values (so that tests and callers
/// need not touch the process environment). Empty values count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GithubEnv {
    /// GITHUB_EVENT_NAME: `push`, `pull_request`, `pull_request_target`, ...
    pub event_name: Option<String>,
    /// GITHUB_HEAD_REF: the source branch of a pull request.
    pub head_ref: Option<String>,
    /// GITHUB_REF_NAME: the branch (or tag) that was pushed.
    pub ref_name: Option<String>,
    /// GITHUB_EVENT_PATH: the JSON payload of the event.
    pub event_path: Option<PathBuf>,
}

impl GithubEnv {
    /// Read the variables from the process environment.
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        GithubEnv {
            event_name: var("GITHUB_EVENT_NAME"),
            head_ref: var("GITHUB_HEAD_REF"),
            ref_name: var("GITHUB_REF_NAME"),
            event_path: var("GITHUB_EVENT_PATH").map(PathBuf::from),
        }
    }

    /// The event GITHUB_EVENT_NAME names: `pull_request` and `pull_request_target` are
    /// pull requests, `schedule` a scheduled run; any other event is treated as a push.
    pub fn event(&self) -> Option<GithubEvent> {
        let name = self.event_name.as_deref().filter(|s| !s.is_empty())?;
        Some(match name {
            "pull_request" | "pull_request_target" => GithubEvent::PullRequest,
            "schedule" => GithubEvent::Schedule,
            _ => GithubEvent::Push,
        })
    }
}

/// The GitHub event payload (GITHUB_EVENT_PATH) cannot be read or parsed.
#[derive(Debug, Error)]
#[error("{}: cannot read the GitHub event payload (GITHUB_EVENT_PATH): {detail}", .path.display())]
pub struct PayloadError {
    pub path: PathBuf,
    pub detail: String,
}

/// The base commit a payload names, and where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadBase {
    /// As written: all zeros for a branch's first push.
    pub sha: String,
    pub origin: &'static str,
}

/// The base the event payload gives: `before` (push) or `pull_request.base.sha`;
/// `None` when the payload has none (or an empty one), and for a scheduled run.
pub fn payload_base(path: &Path, event: GithubEvent) -> Result<Option<PayloadBase>, PayloadError> {
    let bad = |detail: String| PayloadError {
        path: path.to_path_buf(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let (pointer, origin) = match event {
        GithubEvent::Push => ("/before", "`before` in GITHUB_EVENT_PATH"),
        GithubEvent::PullRequest => (
            "/pull_request/base/sha",
            "`pull_request.base.sha` in GITHUB_EVENT_PATH",
        ),
        GithubEvent::Schedule => return Ok(None),
    };
    Ok(json
        .pointer(pointer)
        .and_then(|v| v.as_str())
        .filter(|sha| !sha.is_empty())
        .map(|sha| PayloadBase {
            sha: sha.to_string(),
            origin,
        }))
}
