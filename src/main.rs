fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so `stackctl plan --json | head` would panic on a closed
    // stdout. Restore the default, as other Unix tools behave: the process just ends.
    // SAFETY: called first thing, before any other thread exists.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    stackctl::cli::main()
}
