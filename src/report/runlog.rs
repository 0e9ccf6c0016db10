//! `logs/run.log`: a copy of the run's log lines (what stderr shows, without colours).
//!
//! Logging is set up once per process, before any command knows where its
//! artifacts go, so the log writer is a tee that copies to a file only while
//! one is open:
//!
//! ```no_run
//! use stackctl::report::RunLog;
//! // At start-up (cli): stderr as before, plus the run log when one is open.
//! tracing_subscriber::fmt().with_writer(RunLog::global().tee(std::io::stderr)).init();
//! // In `stackctl build`, once the artifact folders are known:
//! let _copying = RunLog::global().start(std::path::Path::new("logs/run.log")).unwrap();
//! tracing::info!("this line is on stderr and in logs/run.log");
//! ```

use super::dirs::with_path;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::fmt::MakeWriter;

/// Where log lines are copied to, when a file is open. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct RunLog {
    file: Arc<Mutex<Option<File>>>,
}

/// Copying goes on until this is dropped (the file is flushed and closed then).
#[must_use = "the run log stops when the guard is dropped"]
#[derive(Debug)]
pub struct RunLogGuard {
    log: RunLog,
}

impl Drop for RunLogGuard {
    fn drop(&mut self) {
        if let Some(mut f) = self.log.lock().take() {
            let _ = f.flush();
        }
    }
}

impl RunLog {
    /// A run log of its own (tests); the process uses [`RunLog::global`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The process's run log, the one the CLI's log writer tees into.
    pub fn global() -> &'static RunLog {
        static GLOBAL: OnceLock<RunLog> = OnceLock::new();
        GLOBAL.get_or_init(RunLog::new)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<File>> {
        // A panic while writing a log line leaves nothing half-done worth refusing.
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start copying log lines to `path` (created or truncated, folders made).
    pub fn start(&self, path: &Path) -> io::Result<RunLogGuard> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| with_path(e, parent))?;
        }
        let f = File::create(path).map_err(|e| with_path(e, path))?;
        *self.lock() = Some(f);
        Ok(RunLogGuard { log: self.clone() })
    }

    /// A writer maker for `tracing_subscriber::fmt().with_writer(..)`: each log line
    /// goes to `inner` as it is, and to the run log (when open) without ANSI colours.
    pub fn tee<M>(&self, inner: M) -> Tee<M> {
        Tee {
            inner,
            log: self.clone(),
        }
    }
}

/// See [`RunLog::tee`].
#[derive(Debug, Clone)]
pub struct Tee<M> {
    inner: M,
    log: RunLog,
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Tee<M> {
    type Writer = TeeWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        TeeWriter {
            inner: self.inner.make_writer(),
            log: self.log.clone(),
        }
    }
}

/// One log line's writer: the inner writer, and the run log.
pub struct TeeWriter<W> {
    inner: W,
    log: RunLog,
}

impl<W: Write> Write for TeeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(buf)?;
        if let Some(f) = self.log.lock().as_mut() {
            // A full disk must not stop the build; stderr still has the line.
            let _ = f.write_all(&strip_ansi(buf));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(f) = self.log.lock().as_mut() {
            let _ = f.flush();
        }
        self.inner.flush()
    }
}

/// `buf` without ANSI escape sequences (CSI `ESC [ ... final` and two-byte `ESC x`).
/// Hand-written: tracing's colours are the only escapes here, and this is all it takes.
pub fn strip_ansi(buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len());
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == 0x1b {
            i += 1;
            if buf.get(i) == Some(&b'[') {
                i += 1;
                // Parameters and intermediates, then one final byte in 0x40..=0x7e.
                while i < buf.len() && !(0x40..=0x7e).contains(&buf[i]) {
                    i += 1;
                }
            }
            i += 1;
        } else {
            out.push(buf[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory stand-in for stderr.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    fn subscriber(log: &RunLog, sink: &Sink, ansi: bool) -> impl tracing::Subscriber {
        tracing_subscriber::fmt()
            .with_writer(log.tee(sink.clone()))
            .with_ansi(ansi)
            .with_target(false)
            .without_time()
            .finish()
    }

    #[test]
    fn lines_go_to_both_while_the_log_is_open() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("logs/run.log");
        let log = RunLog::new();
        let sink = Sink::default();
        tracing::subscriber::with_default(subscriber(&log, &sink, true), || {
            tracing::info!("before the run log");
            let guard = log.start(&path).unwrap();
            tracing::info!(image = "base", "building");
            tracing::warn!("cache miss");
            drop(guard);
            tracing::info!("after the run log");
        });
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            " INFO building image=\"base\"\n WARN cache miss\n"
        );
        let stderr = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        // stderr got every line, with colours.
        assert!(stderr.contains('\u{1b}'));
        let plain = String::from_utf8(strip_ansi(stderr.as_bytes())).unwrap();
        assert_eq!(
            plain,
            " INFO before the run log\n INFO building image=\"base\"\n WARN cache miss\n INFO after the run log\n"
        );
    }

    #[test]
    fn a_log_in_a_missing_folder_is_created_and_a_bad_path_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let log = RunLog::new();
        let g = log.start(&tmp.path().join("a/b/run.log")).unwrap();
        drop(g);
        assert!(tmp.path().join("a/b/run.log").is_file());
        std::fs::write(tmp.path().join("file"), "").unwrap();
        let err = log.start(&tmp.path().join("file/run.log")).unwrap_err();
        assert!(err.to_string().contains("file/run.log") || err.to_string().contains("/file"));
    }

    #[test]
    fn ansi_sequences_are_removed() {
        assert_eq!(
            strip_ansi(b"\x1b[1m\x1b[32m INFO\x1b[0m done"),
            b" INFO done"
        );
        assert_eq!(strip_ansi(b"a\x1b[38;5;208mb\x1b7c"), b"abc");
        assert_eq!(strip_ansi(b"plain"), b"plain");
        assert_eq!(strip_ansi(b"cut\x1b["), b"cut");
    }
}
