//! BuildKit's Status stream, shown while it runs and kept for the build log.
//!
//! Display: a live view of the running steps on a terminal (indicatif), plain lines when
//! `CI=true` or stderr is not a terminal, or one JSON object per event (`--progress json`).
//! Everything goes to stderr; stdout is for results.
//!
//! Record: every vertex (step) with its start, end, cached or not, error and output; written to
//! the log file with a closing table of the time each step took.
//!
//! A step served from an imported registry cache is first reported cached, then started
//! again while its layer is downloaded (statuses named `sha256:…`, `extracting sha256:…`).
//! BuildKit's stream keeps only the latest state of a vertex not yet sent, so the cached
//! report can be lost; the download is what shows where the step came from. Only a
//! FROM step downloads layers otherwise (its image's own).

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
    /// Where a cached step came from, when the stream shows it ([`REGISTRY_CACHE`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_source: Option<&'static str>,
    /// BuildKit downloaded a layer for it.
    #[serde(skip)]
    pub downloaded: bool,
    pub started: Option<chrono::DateTime<chrono::Utc>>,
    pub completed: Option<chrono::DateTime<chrono::Utc>>,
    pub error: Option<String>,
    /// Everything the step printed (stdout and stderr, interleaved).
    #[serde(skip)]
    pub output: Vec<u8>,
}

/// The source of a step whose layer was downloaded from an imported registry cache.
pub const REGISTRY_CACHE: &str = "registry cache";

/// Whether a status of a vertex is a layer download: BuildKit names it by the blob's digest
/// while it transfers, and `extracting sha256:…` while it unpacks.
pub fn is_layer_download(status_id: &str) -> bool {
    let digest = status_id.strip_prefix("extracting ").unwrap_or(status_id);
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl VertexStep {
    /// A FROM step (`[stage 1/3] FROM image`, `FROM image`): its downloads are its image's.
    pub fn is_from(&self) -> bool {
        self.name.starts_with("FROM ")
            || self
                .name
                .split_once("] ")
                .is_some_and(|(head, rest)| head.starts_with('[') && rest.starts_with("FROM "))
    }

    /// Whether its result came from an imported registry cache: any other step than FROM
    /// whose layer was downloaded (a step that runs makes its layer here).
    pub fn from_registry_cache(&self) -> bool {
        self.downloaded && !self.is_from() && self.error.is_none()
    }

    /// Mark it cached, from the registry cache, once a download shows it.
    fn settle(&mut self) {
        if self.from_registry_cache() {
            self.cached = true;
            self.cache_source = Some(REGISTRY_CACHE);
        }
    }

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
            if is_layer_download(&st.id) {
                if let Some(step) = self.steps.get_mut(&st.vertex) {
                    step.downloaded = true;
                    step.settle();
                }
            }
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
        step.settle();
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

    /// Build steps cached, and all build steps.
    pub fn cached_counts(&self) -> (usize, usize) {
        let steps: Vec<&VertexStep> = self.steps.values().filter(|s| s.is_build_step()).collect();
        (steps.iter().filter(|s| s.cached).count(), steps.len())
    }

    /// Build steps that came from an imported registry cache (counted in the cached ones).
    pub fn registry_cached_count(&self) -> usize {
        self.steps
            .values()
            .filter(|s| s.is_build_step() && s.cache_source == Some(REGISTRY_CACHE))
            .count()
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
            let source = match s.cache_source {
                Some(from) if s.error.is_none() => format!("  (from the {from})"),
                _ => String::new(),
            };
            writeln!(f, "{took:>10}  {state:<7} #{} {}{source}", s.number, s.name)?;
        }
        f.flush()
    }
}

fn status_word(s: &VertexStep) -> String {
    if let Some(e) = &s.error {
        format!("ERROR: {e}")
    } else if let (true, Some(from)) = (s.cached, s.cache_source) {
        format!("CACHED (from the {from})")
    } else if s.cached {
        "CACHED".into()
    } else {
        match s.duration() {
            Some(d) => format!("DONE {:.1}s", d.as_secs_f64()),
            None => "DONE".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_buildkit_proto::google::protobuf::Timestamp;
    use bollard_buildkit_proto::moby::buildkit::v1::VertexStatus;

    const LAYER: &str = "sha256:78a69517569609c28d45615e7e228c05880c33f2854d567decabfa8abaf5976a";

    fn at(ms: i64) -> Option<Timestamp> {
        Some(Timestamp {
            seconds: 1_700_000_000 + ms / 1000,
            nanos: ((ms % 1000) * 1_000_000) as i32,
        })
    }

    fn vertex(digest: &str, name: &str, cached: bool, started: i64, done: i64) -> Vertex {
        Vertex {
            digest: digest.into(),
            name: name.into(),
            cached,
            started: at(started),
            completed: (done > 0).then(|| at(done)).flatten(),
            ..Default::default()
        }
    }

    fn status(vertex: &str, id: &str, total: i64) -> VertexStatus {
        VertexStatus {
            id: id.into(),
            vertex: vertex.into(),
            current: total,
            total,
            ..Default::default()
        }
    }

    fn message(vertexes: Vec<Vertex>, statuses: Vec<VertexStatus>) -> StatusResponse {
        StatusResponse {
            vertexes,
            statuses,
            ..Default::default()
        }
    }

    #[test]
    fn layer_downloads_are_told_from_other_statuses() {
        assert!(is_layer_download(LAYER));
        assert!(is_layer_download(&format!("extracting {LAYER}")));
        for other in [
            "resolve 127.0.0.1:5000/a/base:t@sha256:e8d1",
            "transferring context:",
            "exporting layers",
            "pushing manifest for r/a@sha256:e8d1",
            "writing layer sha256:78a69517569609c28d45615e7e228c05880c33f2854d567decabfa8abaf5976a",
            "sha256:78a6",
            "inferred cache manifest type: application/vnd.oci.image.manifest.v1+json",
        ] {
            assert!(!is_layer_download(other), "{other}");
        }
        let step = |name: &str| VertexStep {
            name: name.into(),
            ..Default::default()
        };
        assert!(step("[deps 1/2] FROM r/a/base:t@sha256:ab").is_from());
        assert!(step("FROM r/a/base").is_from());
        assert!(!step("[deps 2/2] RUN echo FROM x").is_from());
        assert!(!step("[stage-1 3/3] COPY --from=deps /d /d").is_from());
    }

    /// What a buildkitd sends for a RUN step whose layer an imported registry cache holds,
    /// once its first, cached report was replaced by the next one before it was sent: the
    /// step started again, and its layer downloaded and extracted.
    #[test]
    fn a_step_whose_layer_comes_from_the_registry_cache_is_cached_from_it() {
        let mut p = Progress::new(ProgressMode::Quiet);
        let (from, run, copy) = ("sha256:f1", "sha256:r1", "sha256:c1");
        p.update(&message(
            vec![
                vertex(from, "[deps 1/2] FROM r/a/base:t@sha256:ab", false, 0, 0),
                vertex(run, "[deps 2/2] RUN make deps", false, 0, 0),
                vertex(copy, "[stage-1 2/2] COPY app.txt /app.txt", false, 0, 0),
            ],
            vec![],
        ));
        p.update(&message(
            vec![
                vertex(from, "[deps 1/2] FROM r/a/base:t@sha256:ab", false, 10, 40),
                vertex(run, "[deps 2/2] RUN make deps", false, 50, 0),
                vertex(copy, "[stage-1 2/2] COPY app.txt /app.txt", false, 10, 30),
            ],
            vec![
                status(from, LAYER.replace("78a6", "61d0").as_str(), 3497),
                status(run, LAYER, 135),
            ],
        ));
        p.update(&message(
            vec![vertex(run, "[deps 2/2] RUN make deps", false, 50, 90)],
            vec![status(run, &format!("extracting {LAYER}"), 0)],
        ));
        let run_step = &p.steps[run];
        assert!(run_step.cached);
        assert_eq!(run_step.cache_source, Some(REGISTRY_CACHE));
        assert_eq!(status_word(run_step), "CACHED (from the registry cache)");
        // The parent's own layers are the FROM step's downloads, not a cache's.
        assert!(!p.steps[from].cached);
        assert_eq!(p.steps[from].cache_source, None);
        assert!(!p.steps[copy].cached);
        assert_eq!(p.cached_counts(), (1, 3));
        assert_eq!(p.registry_cached_count(), 1);

        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        p.write_log(&log, "header").unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("#2 CACHED (from the registry cache)"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l
                    .contains("CACHED  #2 [deps 2/2] RUN make deps  (from the registry cache)")),
            "{text}"
        );
    }

    /// The same step reported cached first and started again for its download (the stream
    /// as a buildkitd sends it when nothing was replaced): one cached step, from the registry
    /// cache. A step cached without any download is cached, with no source named.
    #[test]
    fn a_cached_report_and_a_download_count_once() {
        let mut p = Progress::new(ProgressMode::Quiet);
        let (run, other) = ("sha256:r1", "sha256:r2");
        p.update(&message(
            vec![
                vertex(run, "[deps 2/2] RUN make deps", true, 50, 50),
                vertex(other, "[stage-1 2/3] RUN true", true, 50, 50),
            ],
            vec![],
        ));
        p.update(&message(
            vec![vertex(run, "[deps 2/2] RUN make deps", false, 60, 0)],
            vec![status(run, LAYER, 135)],
        ));
        p.update(&message(
            vec![vertex(run, "[deps 2/2] RUN make deps", false, 60, 90)],
            vec![],
        ));
        assert_eq!(p.cached_counts(), (2, 2));
        assert_eq!(p.registry_cached_count(), 1);
        assert_eq!(p.steps[other].cache_source, None);
        assert_eq!(status_word(&p.steps[other]), "CACHED");
    }
}
