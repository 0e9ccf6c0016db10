//! BuildKit's Status stream, shown while it runs and kept for the build log.
//!
//! Display: a live view of the running steps on a terminal (indicatif), plain lines when
//! `CI=true` or stderr is not a terminal, or one JSON object per event (`--progress json`).
//! Everything goes to stderr; stdout is for results.
//!
//! Record: every vertex (step) with its start, end, cached or not, error and output; written to
//! the log file with a closing table of the time each step took.

use crate::sizes::human_size;
use bollard_buildkit_proto::moby::buildkit::v1::{StatusResponse, Vertex};
use indexmap::IndexMap;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ProgressMode {
    /// A live view on a terminal, plain lines otherwise (and when CI=true).
    #[default]
    Auto,
    /// The live view.
    Tty,
    /// One line per event.
    Plain,
    /// One JSON object per event.
    Json,
    /// Nothing.
    Quiet,
}

impl ProgressMode {
    /// `Auto` made concrete for this process.
    pub fn resolve(self) -> ProgressMode {
        match self {
            ProgressMode::Auto => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
                if !ci && std::io::stderr().is_terminal() {
                    ProgressMode::Tty
                } else {
                    ProgressMode::Plain
                }
            }
            m => m,
        }
    }
}

/// One step (vertex of the build graph) as BuildKit reported it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VertexStep {
    /// Order of first appearance, from 1 (BuildKit's `#N`).
    pub number: usize,
    pub digest: String,
    pub name: String,
    pub cached: bool,
    pub started: Option<chrono::DateTime<chrono::Utc>>,
    pub completed: Option<chrono::DateTime<chrono::Utc>>,
    pub error: Option<String>,
    /// Everything the step printed (stdout and stderr, interleaved).
    #[serde(skip)]
    pub output: Vec<u8>,
}

impl VertexStep {
    /// How long it ran, when it finished.
    pub fn duration(&self) -> Option<Duration> {
        match (self.started, self.completed) {
            (Some(s), Some(c)) => (c - s).to_std().ok(),
            _ => None,
        }
    }

    /// Its last `n` output lines.
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.output);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// A step BuildKit counts for the "cached" summary (not its internal bookkeeping).
    pub fn is_build_step(&self) -> bool {
        !self.name.starts_with("[internal]")
            && !self.name.starts_with("[auth]")
            && !self.name.starts_with("exporting")
            && !self.name.starts_with("importing cache")
            && !self.name.starts_with("resolve image config")
    }
}

fn ts(
    t: &Option<bollard_buildkit_proto::google::protobuf::Timestamp>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

/// Follows the Status stream: keeps the steps and shows them.
pub struct Progress {
    mode: ProgressMode,
    pub steps: IndexMap<String, VertexStep>,
    multi: Option<MultiProgress>,
    bars: IndexMap<String, ProgressBar>,
    /// Output not yet ended by a newline, per step (plain mode prints whole lines).
    partial: IndexMap<String, String>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        let mode = mode.resolve();
        let multi = (mode == ProgressMode::Tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress {
            mode,
            steps: IndexMap::new(),
            multi,
            bars: IndexMap::new(),
            partial: IndexMap::new(),
        }
    }

    /// Take in one message of the Status stream.
    pub fn update(&mut self, s: &StatusResponse) {
        for v in &s.vertexes {
            self.vertex(v);
        }
        for l in &s.logs {
            let n = self.steps.len() + 1;
            let step = self
                .steps
                .entry(l.vertex.clone())
                .or_insert_with(|| VertexStep {
                    number: n,
                    digest: l.vertex.clone(),
                    ..Default::default()
                });
            step.output.extend_from_slice(&l.msg);
            let number = step.number;
            match self.mode {
                ProgressMode::Plain => {
                    let buf = self.partial.entry(l.vertex.clone()).or_default();
                    buf.push_str(&String::from_utf8_lossy(&l.msg));
                    while let Some(i) = buf.find('\n') {
                        let line: String = buf.drain(..=i).collect();
                        eprintln!("#{number} {}", line.trim_end());
                    }
                }
                ProgressMode::Json => {
                    let ev = serde_json::json!({
                        "event": "log", "step": number, "vertex": l.vertex,
                        "stream": l.stream, "text": String::from_utf8_lossy(&l.msg),
                    });
                    eprintln!("{ev}");
                }
                ProgressMode::Tty => {
                    if let Some(bar) = self.bars.get(&l.vertex) {
                        let text = String::from_utf8_lossy(&l.msg);
                        if let Some(last) = text.lines().rev().find(|x| !x.trim().is_empty()) {
                            let last: String = last.chars().take(100).collect();
                            bar.set_message(format!("{}  {}", self.steps[&l.vertex].name, last));
                        }
                    }
                }
                _ => {}
            }
        }
        for st in &s.statuses {
            if let (ProgressMode::Tty, Some(bar)) = (self.mode, self.bars.get(&st.vertex)) {
                if st.total > 0 {
                    bar.set_message(format!(
                        "{}  {} {}/{}",
                        self.steps[&st.vertex].name,
                        st.id,
                        human_size(st.current.max(0) as u64),
                        human_size(st.total.max(0) as u64)
                    ));
                }
            }
        }
    }

    fn vertex(&mut self, v: &Vertex) {
        let n = self.steps.len() + 1;
        let step = self
            .steps
            .entry(v.digest.clone())
            .or_insert_with(|| VertexStep {
                number: n,
                digest: v.digest.clone(),
                ..Default::default()
            });
        let was_started = step.started.is_some();
        let was_done = step.completed.is_some();
        step.name = v.name.clone();
        step.cached |= v.cached;
        if v.started.is_some() {
            step.started = ts(&v.started);
        }
        if v.completed.is_some() {
            step.completed = ts(&v.completed);
        }
        if !v.error.is_empty() {
            step.error = Some(v.error.clone());
        }
        // A copy without the output, which may be large.
        let output = std::mem::take(&mut step.output);
        let snapshot = step.clone();
        step.output = output;
        let step = snapshot;
        let started_now = !was_started && step.started.is_some();
        let done_now = !was_done && step.completed.is_some();
        match self.mode {
            ProgressMode::Plain => {
                if started_now || (done_now && !was_started) {
                    eprintln!("#{} {}", step.number, step.name);
                }
                if done_now {
                    if let Some(rest) = self.partial.shift_remove(&step.digest) {
                        if !rest.is_empty() {
                            eprintln!("#{} {}", step.number, rest.trim_end());
                        }
                    }
                    eprintln!("#{} {}", step.number, status_word(&step));
                }
            }
            ProgressMode::Json if started_now || done_now => {
                let ev = serde_json::json!({
                    "event": if done_now { "done" } else { "start" },
                    "step": step.number, "vertex": step.digest, "name": step.name,
                    "cached": step.cached, "error": step.error,
                    "seconds": step.duration().map(|d| d.as_secs_f64()),
                });
                eprintln!("{ev}");
            }
            ProgressMode::Tty => {
                let multi = self.multi.as_ref().expect("tty mode has a MultiProgress");
                if started_now && !done_now {
                    let bar = ProgressBar::new_spinner()
                        .with_style(
                            ProgressStyle::with_template("{spinner} #{prefix} {msg} {elapsed}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        )
                        .with_prefix(step.number.to_string())
                        .with_message(step.name.clone());
                    let bar = multi.add(bar);
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.bars.insert(step.digest.clone(), bar);
                }
                if done_now {
                    if let Some(bar) = self.bars.shift_remove(&step.digest) {
                        bar.finish_and_clear();
                        multi.remove(&bar);
                    }
                    let _ = multi.println(format!(
                        "#{} {}  {}",
                        step.number,
                        step.name,
                        status_word(&step)
                    ));
                }
            }
            _ => {}
        }
    }

    /// Stop the live view.
    pub fn finish(&mut self) {
        for (_, bar) in self.bars.drain(..) {
            bar.finish_and_clear();
        }
    }

    /// The step that failed: the one whose error BuildKit gave as the build's error, else the
    /// last build step with an error (a cache source that cannot be read is not a failure).
    pub fn failed_step(&self, build_error: &str) -> Option<&VertexStep> {
        let with_error = || self.steps.values().rev().filter(|s| s.error.is_some());
        with_error()
            .find(|s| s.error.as_deref().is_some_and(|e| build_error.contains(e)))
            .or_else(|| with_error().find(|s| s.is_build_step()))
    }

    /// Build steps reported cached, and all build steps.
    pub fn cached_counts(&self) -> (usize, usize) {
        let steps: Vec<&VertexStep> = self.steps.values().filter(|s| s.is_build_step()).collect();
        (steps.iter().filter(|s| s.cached).count(), steps.len())
    }

    /// Write the build log: every step with its start, end, cached or not, error and output,
    /// then the time each step took.
    pub fn write_log(&self, path: &Path, header: &str) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        writeln!(f, "{header}")?;
        for s in self.steps.values() {
            writeln!(f)?;
            writeln!(f, "#{} {}", s.number, s.name)?;
            writeln!(f, "#{} vertex {}", s.number, s.digest)?;
            if let Some(t) = s.started {
                writeln!(f, "#{} started {}", s.number, t.to_rfc3339())?;
            }
            for line in String::from_utf8_lossy(&s.output).lines() {
                writeln!(f, "#{} {}", s.number, line)?;
            }
            if let Some(t) = s.completed {
                writeln!(f, "#{} completed {}", s.number, t.to_rfc3339())?;
            }
            writeln!(f, "#{} {}", s.number, status_word(s))?;
        }
        writeln!(f)?;
        writeln!(f, "Time each step took:")?;
        for s in self.steps.values() {
            let took = s
                .duration()
                .map(|d| format!("{:.3}s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into());
            let state = if s.error.is_some() {
                "ERROR"
            } else if s.cached {
                "CACHED"
            } else if s.completed.is_some() {
                "DONE"
            } else {
                "NOT RUN"
            };
            writeln!(f, "{took:>10}  {state:<7} #{} {}", s.number, s.name)?;
        }
        f.flush()
    }
}

fn status_word(s: &VertexStep) -> String {
    if let Some(e) = &s.error {
        format!("ERROR: {e}")
    } else if s.cached {
        "CACHED".into()
    } else {
        match s.duration() {
            Some(d) => format!("DONE {:.1}s", d.as_secs_f64()),
            None => "DONE".into(),
        }
    }
}
