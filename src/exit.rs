//! The kinds of error the library returns that the CLI tells apart by their exit code
//! (see `cli::exit`): any other error means bad input or an unreachable service.
//!
//! Only the CLI names exit codes; the library says what happened.

/// The work ran and failed (a missing source, a failed build), as opposed to input that
/// was wrong or a service that could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failed(pub String);

/// A promotion's sources lack what was required of them (a signature, an attestation):
/// nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unverified(pub String);

/// The work stopped on an interrupt (SIGINT or SIGTERM) before it changed anything.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);
