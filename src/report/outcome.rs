//! What happened to each image of a run: the scheduler's results ([`Scheduled`],
//! [`Skip`], [`ScheduleEvent`]) and what it needs to know of one image's work ([`ImageOutcome`]).
//!
//! The scheduler ([`crate::pipeline::schedule`]) produces them and the report
//! ([`crate::report`]) reads them; neither imports the other for them.

use std::fmt;
use std::time::Duration;

/// Whether one image's work succeeded; what the scheduler needs to know of its result.
pub trait ImageOutcome {
    fn succeeded(&self) -> bool;
    /// Whether the work failed because its node went away (it may run again on another).
    fn node_lost(&self) -> bool {
        false
    }
}

impl<T, E> ImageOutcome for Result<T, E> {
    fn succeeded(&self) -> bool {
        self.is_ok()
    }
}

impl ImageOutcome for bool {
    fn succeeded(&self) -> bool {
        *self
    }
}

/// Why an image was not started although it should have rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// An ancestor failed (`failed` is that ancestor; `direct` when it is the parent).
    AncestorFailed { failed: String, direct: bool },
    /// The run stopped after `failed` failed (no `--keep-going`).
    RunStopped { failed: String },
    /// Every node was lost: nothing is left to run it on.
    NoNode,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::AncestorFailed {
                failed,
                direct: true,
            } => {
                write!(f, "skipped: parent {failed} failed")
            }
            Skip::AncestorFailed {
                failed,
                direct: false,
            } => write!(f, "skipped: ancestor {failed} failed"),
            Skip::NoNode => write!(f, "skipped: no BuildKit node left"),
            Skip::RunStopped { failed } => {
                write!(
                    f,
                    "skipped: the run stopped after {failed} failed (no --keep-going)"
                )
            }
        }
    }
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq)]
pub enum Scheduled<T> {
    /// Not rebuilt: the plan found it up to date.
    UpToDate,
    /// Its work ran.
    Ran {
        outcome: T,
        /// When it started, counted from the start of the schedule.
        started: Duration,
        /// How long its work took.
        took: Duration,
    },
    /// It should have rebuilt but was not started.
    Skipped(Skip),
}

impl<T: ImageOutcome> Scheduled<T> {
    /// Whether this image makes the run fail: its work failed, or it could not run.
    pub fn is_failure(&self) -> bool {
        match self {
            Scheduled::UpToDate => false,
            Scheduled::Ran { outcome, .. } => !outcome.succeeded(),
            Scheduled::Skipped(_) => true,
        }
    }

    /// Why it was skipped, if it was.
    pub fn skip(&self) -> Option<&Skip> {
        match self {
            Scheduled::Skipped(s) => Some(s),
            _ => None,
        }
    }

    /// The outcome of its work, if it ran.
    pub fn outcome(&self) -> Option<&T> {
        match self {
            Scheduled::Ran { outcome, .. } => Some(outcome),
            _ => None,
        }
    }
}

/// One image's key and what happened to it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledImage<T> {
    pub key: String,
    pub result: Scheduled<T>,
}

impl<T> ScheduledImage<T> {
    /// An image whose work ran from the start of the schedule for `took` (for tests and
    /// fakes of a schedule).
    pub fn ran_from_start(key: &str, outcome: T, took: Duration) -> Self {
        ScheduledImage {
            key: key.into(),
            result: Scheduled::Ran {
                outcome,
                started: Duration::ZERO,
                took,
            },
        }
    }
}

/// What the scheduler tells an observer as it goes (for progress lines).
#[derive(Debug)]
pub enum ScheduleEvent<'a, T> {
    UpToDate {
        key: &'a str,
    },
    Started {
        key: &'a str,
    },
    Finished {
        key: &'a str,
        outcome: &'a T,
        took: Duration,
    },
    Skipped {
        key: &'a str,
        why: &'a Skip,
    },
    /// Its node was lost during its work (`outcome` says how): it runs again on another.
    Retried {
        key: &'a str,
        outcome: &'a T,
    },
}
