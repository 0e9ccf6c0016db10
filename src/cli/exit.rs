//! Exit codes: the one place that maps the library's results and errors to them.
//!
//! Every command returns `anyhow::Result<ExitStatus>`: a command that ran and found
//! something wrong (a missing tag, a failed test) returns `Ok(ExitStatus::Failed)` or an
//! error wrapping [`Failed`]; any other error (bad input, unreachable service) exits with
//! [`ExitStatus::Error`].

use crate::containers::suite::{SuiteResult, TestOutcome};
use crate::exit::{Failed, Interrupted};
use crate::promote::transaction::Verdict;

/// What the process exit code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: everything asked for was done.
    Success = 0,
    /// 1: the work ran and something in it failed (build, test, push, missing tag).
    Failed = 1,
    /// 2: bad input or an unreachable service; nothing was attempted or it could not run.
    Error = 2,
    /// 3: `tag`: partly promoted (or a target's state unknown); a rerun completes it.
    Partial = 3,
    /// 4: `tag`: another writer changed a target during the run, and the set could not
    /// be made whole.
    ConcurrentWriter = 4,
    /// 5: `tag`: superseded: a concurrent promotion of a newer source is writing the same
    /// targets; this run stopped writing.
    Superseded = 5,
    /// 6: `tag`: a source lacks a required signature or attestation; nothing moved.
    Unverified = 6,
    /// 130: interrupted (SIGINT or SIGTERM), as shells report 128 + SIGINT.
    Interrupted = 130,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An error that asks for a given exit status (partly promoted, another writer, ...).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct WithStatus {
    pub status: ExitStatus,
    pub message: String,
}

/// The exit status an error asks for: a [`WithStatus`]'s, 130 for an [`Interrupted`],
/// 1 when a [`Failed`] is in its chain, 2 otherwise.
pub fn exit_status_of(err: &anyhow::Error) -> ExitStatus {
    if let Some(w) = err.chain().find_map(|e| e.downcast_ref::<WithStatus>()) {
        w.status
    } else if err.chain().any(|e| e.is::<crate::exit::Unverified>()) {
        ExitStatus::Unverified
    } else if err.chain().any(|e| e.is::<Interrupted>()) {
        ExitStatus::Interrupted
    } else if err.chain().any(|e| e.is::<Failed>()) {
        ExitStatus::Failed
    } else {
        ExitStatus::Error
    }
}

/// A promotion's verdict: 0 promoted (or checked), 1 nothing changed, 3 partly promoted or
/// a target unknown, 4 another writer, 5 superseded by a newer promotion, 130 interrupted.
pub fn of_promotion(verdict: Verdict) -> ExitStatus {
    match verdict {
        Verdict::Promoted | Verdict::Checked => ExitStatus::Success,
        Verdict::Unchanged => ExitStatus::Failed,
        Verdict::Partial => ExitStatus::Partial,
        Verdict::ConcurrentWriter => ExitStatus::ConcurrentWriter,
        Verdict::Superseded => ExitStatus::Superseded,
        Verdict::Interrupted => ExitStatus::Interrupted,
    }
}

/// A test suite's end: 0 passed (or no tests), 1 a test failed, 2 the tests could not run.
pub fn of_suite(result: &SuiteResult) -> ExitStatus {
    match result.outcome {
        TestOutcome::Passed | TestOutcome::NoTests => ExitStatus::Success,
        TestOutcome::Failed => ExitStatus::Failed,
        TestOutcome::CouldNotRun => ExitStatus::Error,
    }
}
