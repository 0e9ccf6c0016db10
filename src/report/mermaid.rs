//! Mermaid diagrams, as text: the image tree (`flowchart`), when each image's steps ran
//! (`gantt`) and the largest layers (`xychart-beta`). GitHub renders them in step
//! summaries, wiki pages and READMEs. Only text is made here: which image is in which
//! state is decided by the callers (plan, build report, manifest page, wiki).
//!
//! Hand-written: the few diagram kinds used need a dozen lines each, and no crate on
//! crates.io writes Mermaid with its escaping rules.

use std::fmt::Write as _;
use std::time::Duration;

/// How an image of the tree is shown (its class, and so its colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Plan: rebuilds.
    Rebuild,
    /// Plan: kept as it is.
    Keep,
    /// Run: built and passed.
    Built,
    /// Run: up to date, not rebuilt.
    UpToDate,
    /// Run: a step failed.
    Failed,
    /// Run: not started because an ancestor failed (or the run stopped).
    Skipped,
    /// No state, just the tree (the wiki's picture of the stack).
    Plain,
}

impl NodeState {
    fn class(self) -> &'static str {
        match self {
            NodeState::Rebuild => "rebuild",
            NodeState::Keep => "keep",
            NodeState::Built => "built",
            NodeState::UpToDate => "uptodate",
            NodeState::Failed => "failed",
            NodeState::Skipped => "skipped",
            NodeState::Plain => "plain",
        }
    }

    /// The class definition: fill, stroke, text colour (and a dashed border when skipped).
    fn class_def(self) -> &'static str {
        match self {
            NodeState::Rebuild => "fill:#fff3bf,stroke:#e67700,color:#000",
            NodeState::Keep => "fill:#f1f3f5,stroke:#868e96,color:#000",
            NodeState::Built => "fill:#d3f9d8,stroke:#2b8a3e,color:#000",
            NodeState::UpToDate => "fill:#f1f3f5,stroke:#868e96,color:#000",
            NodeState::Failed => "fill:#ffe3e3,stroke:#c92a2a,color:#000",
            NodeState::Skipped => "fill:#fff4e6,stroke:#d9480f,color:#000,stroke-dasharray:4 3",
            NodeState::Plain => "fill:#e7f5ff,stroke:#1c7ed6,color:#000",
        }
    }
}

/// One image of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    pub key: String,
    pub parent: Option<String>,
    pub state: NodeState,
    /// Lines under the key: the state in words, the reasons, the failed step.
    pub notes: Vec<String>,
}

/// Text safe inside a quoted Mermaid label: Mermaid's entity codes for the characters
/// that end or change a label, so a reason such as `changed: "a|b"` shows as written.
pub fn escape_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// At most `n` characters of `s`, with `…` when cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The image tree, parents above children, as a `flowchart TD`. Node ids are `n0`, `n1`,
/// ... in the order given (image keys may hold characters an id may not); each node's
/// label is its key in bold, then its notes. Only the classes in use are defined.
pub fn flowchart(nodes: &[TreeNode]) -> String {
    let mut out = String::from("flowchart TD\n");
    let id = |key: &str| {
        nodes
            .iter()
            .position(|n| n.key == key)
            .map(|i| format!("n{i}"))
    };
    for (i, n) in nodes.iter().enumerate() {
        let mut label = format!("<b>{}</b>", escape_label(&n.key));
        for note in &n.notes {
            let _ = write!(label, "<br/>{}", escape_label(&cut(note, 60)));
        }
        let _ = writeln!(out, "    n{i}[\"{label}\"]:::{}", n.state.class());
    }
    for (i, n) in nodes.iter().enumerate() {
        if let Some(parent) = n.parent.as_deref().and_then(id) {
            let _ = writeln!(out, "    {parent} --> n{i}");
        }
    }
    let mut defined: Vec<NodeState> = Vec::new();
    for n in nodes {
        if !defined.contains(&n.state) {
            defined.push(n.state);
            let _ = writeln!(
                out,
                "    classDef {} {}",
                n.state.class(),
                n.state.class_def()
            );
        }
    }
    out
}

/// One bar of a Gantt chart: an image's step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GanttTask {
    /// The section (the image's key).
    pub section: String,
    /// The step's name.
    pub name: String,
    /// From the start of the run.
    pub start: Duration,
    pub end: Duration,
    /// Shown as critical (red): the step that failed.
    pub failed: bool,
}

/// When each step ran, one section per image, times counted from the run's start
/// (`dateFormat x`: milliseconds, shown as minutes:seconds).
pub fn gantt(title: &str, tasks: &[GanttTask]) -> String {
    let mut out = String::from("gantt\n");
    let _ = writeln!(out, "    title {}", gantt_text(title));
    out.push_str("    dateFormat x\n    axisFormat %M:%S\n");
    let mut section: Option<&str> = None;
    for t in tasks {
        if section != Some(t.section.as_str()) {
            let _ = writeln!(out, "    section {}", gantt_text(&t.section));
            section = Some(&t.section);
        }
        let start = t.start.as_millis();
        // A bar needs a width to be seen: at least 1 ms.
        let end = t.end.as_millis().max(start + 1);
        let tag = if t.failed { "crit, " } else { "" };
        let _ = writeln!(out, "    {} :{tag}{start}, {end}", gantt_text(&t.name));
    }
    out
}

/// Gantt titles, sections and task names end at `:` and `#` starts a comment.
fn gantt_text(s: &str) -> String {
    s.replace([':', '#', ';', '\n'], " ")
}

/// A bar chart (`xychart-beta`) of `bars` (label, value), in the order given.
pub fn bar_chart(title: &str, y_label: &str, bars: &[(String, f64)]) -> String {
    let labels: Vec<String> = bars
        .iter()
        .map(|(l, _)| format!("\"{}\"", chart_text(l)))
        .collect();
    let values: Vec<String> = bars.iter().map(|(_, v)| format!("{v:.2}")).collect();
    let top = bars.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let mut out = String::from("xychart-beta\n");
    let _ = writeln!(out, "    title \"{}\"", chart_text(title));
    let _ = writeln!(out, "    x-axis [{}]", labels.join(", "));
    let _ = writeln!(
        out,
        "    y-axis \"{}\" 0 --> {:.2}",
        chart_text(y_label),
        (top * 1.1).max(0.01)
    );
    let _ = writeln!(out, "    bar [{}]", values.join(", "));
    out
}

/// Text for a quoted xychart string: no double quotes, one line.
fn chart_text(s: &str) -> String {
    s.replace('"', "'").replace(['\n', '\r'], " ")
}

/// A diagram as a fenced ```mermaid block, for markdown.
pub fn fenced(diagram: &str) -> String {
    format!("```mermaid\n{}```\n", diagram)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(key: &str, parent: Option<&str>, state: NodeState, notes: &[&str]) -> TreeNode {
        TreeNode {
            key: key.into(),
            parent: parent.map(Into::into),
            state,
            notes: notes.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A task from `start_ms` to `end_ms`.
    fn task(section: &str, name: &str, start_ms: u64, end_ms: u64, failed: bool) -> GanttTask {
        GanttTask {
            section: section.into(),
            name: name.into(),
            start: Duration::from_millis(start_ms),
            end: Duration::from_millis(end_ms),
            failed,
        }
    }

    /// `analysis` (under `base`) failed, so `deep` below it was skipped.
    fn failed_branch() -> [TreeNode; 2] {
        [
            node(
                "analysis",
                Some("base"),
                NodeState::Failed,
                &["failed: basic-tests"],
            ),
            node(
                "deep",
                Some("analysis"),
                NodeState::Skipped,
                &["skipped: parent analysis failed"],
            ),
        ]
    }

    #[test]
    fn tree_with_two_roots_a_failed_child_and_a_skipped_grandchild() {
        let [analysis, deep] = failed_branch();
        let nodes = [
            node("base", None, NodeState::Built, &["built"]),
            node("r-2", None, NodeState::UpToDate, &["up to date"]),
            analysis,
            deep,
            node(
                "x",
                Some("r-2"),
                NodeState::UpToDate,
                &["a \"quoted\" <b> #1"],
            ),
        ];
        let text = flowchart(&nodes);
        assert_eq!(
            text,
            "flowchart TD
    n0[\"<b>base</b><br/>built\"]:::built
    n1[\"<b>r-2</b><br/>up to date\"]:::uptodate
    n2[\"<b>analysis</b><br/>failed: basic-tests\"]:::failed
    n3[\"<b>deep</b><br/>skipped: parent analysis failed\"]:::skipped
    n4[\"<b>x</b><br/>a #quot;quoted#quot; #lt;b#gt; #35;1\"]:::uptodate
    n0 --> n2
    n2 --> n3
    n1 --> n4
    classDef built fill:#d3f9d8,stroke:#2b8a3e,color:#000
    classDef uptodate fill:#f1f3f5,stroke:#868e96,color:#000
    classDef failed fill:#ffe3e3,stroke:#c92a2a,color:#000
    classDef skipped fill:#fff4e6,stroke:#d9480f,color:#000,stroke-dasharray:4 3
"
        );
    }

    #[test]
    fn gantt_of_two_concurrent_siblings() {
        let tasks = [
            task("base", "build", 0, 4000, false),
            task("a", "build", 4100, 6000, false),
            task("a", "basic tests", 6000, 9000, true),
            task("b", "build", 4100, 7000, false),
        ];
        assert_eq!(
            gantt("stackctl build: 2026.3-main", &tasks),
            "gantt
    title stackctl build  2026.3-main
    dateFormat x
    axisFormat %M:%S
    section base
    build :0, 4000
    section a
    build :4100, 6000
    basic tests :crit, 6000, 9000
    section b
    build :4100, 7000
"
        );
    }

    #[test]
    fn bar_chart_text() {
        let bars = vec![
            ("RUN apt-get \"x\"".to_string(), 12.5),
            ("COPY".to_string(), 0.25),
        ];
        assert_eq!(
            bar_chart("Largest layers", "MB", &bars),
            "xychart-beta
    title \"Largest layers\"
    x-axis [\"RUN apt-get 'x'\", \"COPY\"]
    y-axis \"MB\" 0 --> 13.75
    bar [12.50, 0.25]
"
        );
    }

    /// Every diagram kind, as the tests above make them, is rendered to SVG by
    /// mermaid-cli (`mmdc`, npm) in Debian's headless Chromium: Mermaid's own parser
    /// accepts it. `scripts/dev-env` installs both; elsewhere the test is skipped.
    #[test]
    fn mermaid_cli_renders_every_diagram() {
        let chromium = std::env::var("PUPPETEER_EXECUTABLE_PATH")
            .unwrap_or_else(|_| "/usr/bin/chromium".into());
        let has_mmdc = std::process::Command::new("mmdc")
            .arg("--version")
            .output()
            .is_ok();
        if !has_mmdc || !std::path::Path::new(&chromium).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "mmdc (npm @mermaid-js/mermaid-cli) or {chromium} is missing; scripts/dev-env installs them"
            );
            eprintln!("SKIPPED mermaid_cli_renders_every_diagram: no mmdc or no {chromium}");
            return;
        }
        let [analysis, deep] = failed_branch();
        let diagrams = [
            flowchart(&[
                node(
                    "base",
                    None,
                    NodeState::Built,
                    &["built, tested and pushed", "4.2s"],
                ),
                node(
                    "other-root",
                    None,
                    NodeState::Rebuild,
                    &["REBUILD", "changed: images/other-root/x"],
                ),
                node("kept", None, NodeState::Keep, &["keep"]),
                analysis,
                deep,
                node(
                    "up",
                    Some("base"),
                    NodeState::UpToDate,
                    &["a \"quoted\" <b> #1 & | ; :"],
                ),
                node(
                    "wiki",
                    Some("other-root"),
                    NodeState::Plain,
                    &["2026.3-stable"],
                ),
            ]),
            gantt(
                "stackctl build: 2026.3-main",
                &[
                    task("base", "build", 0, 4000, false),
                    task("a", "basic-tests", 4100, 4100, true),
                    task("b", "integration-tests", 4100, 7000, false),
                ],
            ),
            bar_chart(
                "The 3 largest layers",
                "MB",
                &[
                    ("#2 RUN apt-get \"x\" | y".into(), 50.0),
                    ("#1 ADD rootfs".into(), 12.0),
                    ("#3 COPY . /".into(), 0.01),
                ],
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("puppeteer.json");
        std::fs::write(
            &config,
            serde_json::json!({
                "executablePath": chromium,
                "args": ["--no-sandbox", "--disable-gpu", "--headless", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            })
            .to_string(),
        )
        .unwrap();
        for (i, d) in diagrams.iter().enumerate() {
            let input = dir.path().join(format!("d{i}.mmd"));
            let output = dir.path().join(format!("d{i}.svg"));
            std::fs::write(&input, d).unwrap();
            let out = std::process::Command::new("mmdc")
                .arg("-p")
                .arg(&config)
                .arg("-i")
                .arg(&input)
                .arg("-o")
                .arg(&output)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "mmdc refused diagram {i}:\n{d}\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let svg = std::fs::read_to_string(&output).unwrap();
            assert!(
                svg.contains("<svg") && !svg.contains("Syntax error"),
                "{svg}"
            );
        }
    }
}
