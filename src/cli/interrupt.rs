//! SIGINT (Ctrl-C) and SIGTERM (what `timeout`, `docker stop` and CI cancellation send),
//! handled alike in every command.
//!
//! - A command that has something to clean up asks for [`token`] before its work starts:
//!   the first signal cancels it (tests remove their containers and network, `build` ends
//!   the BuildKit solve and its session and runs no later step, `tag` stops writing and
//!   reads every target back) and the command exits 130.
//! - Any other command exits 130 at the first signal: it has nothing to put back.
//! - A second signal exits 130 at once, whatever is running.

use super::exit::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use tokio_util::sync::CancellationToken;

static TOKEN: OnceLock<CancellationToken> = OnceLock::new();
/// Whether the running command stops cleanly on its own when the token is cancelled.
static GRACEFUL: AtomicBool = AtomicBool::new(false);

fn global() -> &'static CancellationToken {
    TOKEN.get_or_init(CancellationToken::new)
}

/// The token cancelled at the first SIGINT or SIGTERM. Asking for it means the caller
/// stops cleanly on it; without a caller the first signal ends the process (exit 130).
pub fn token() -> CancellationToken {
    GRACEFUL.store(true, Ordering::SeqCst);
    global().clone()
}

/// Whether an interrupt came.
pub fn interrupted() -> bool {
    global().is_cancelled()
}

/// Listen for SIGINT and SIGTERM (call once, inside the runtime).
pub fn install() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot listen for SIGINT/SIGTERM; an interrupt ends the process at once");
        return;
    };
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            seen += 1;
            if seen > 1 || !GRACEFUL.load(Ordering::SeqCst) {
                eprintln!("error: interrupted ({name}); exiting at once");
                std::process::exit(ExitStatus::Interrupted.code().into());
            }
            tracing::warn!(
                "interrupted ({name}): stopping and cleaning up (a second signal exits at once)"
            );
            global().cancel();
        }
    });
}
