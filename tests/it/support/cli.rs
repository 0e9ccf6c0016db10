//! The stackctl binary as the tests run it, and its output as text.

use std::process::{Command, Output};

/// The stackctl binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_stackctl");

/// `stackctl` without the variables of the environment the tests run in that would change
/// what it does: GitHub Actions' (`GITHUB_*`), `BUILDKIT_HOST` and `RUST_LOG`. A std
/// `Command`, so that a test can also spawn it and kill it; `assert_cmd::Command::from_std`
/// gives it stdin.
pub fn stackctl() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GITHUB_") {
            c.env_remove(k);
        }
    }
    c.env_remove("BUILDKIT_HOST").env_remove("RUST_LOG");
    c
}

/// Bytes as text, with U+FFFD for what is not UTF-8.
pub fn text(bytes: impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(bytes.as_ref()).into_owned()
}

/// A run's exit status, stdout and stderr, for the message of an assertion about it.
pub fn outcome(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
}
