//! GitHub Actions output, when the build runs there (`GITHUB_ACTIONS=true`):
//! workflow commands on stdout (`::group::`, `::endgroup::`, `::error`), the job
//! summary appended to the file at `GITHUB_STEP_SUMMARY`, and step outputs
//! (`images`, `tag`) appended to the file at `GITHUB_OUTPUT`.
//!
//! Escaping follows the runner's rules (actions/toolkit `command.ts`): in a
//! command's message `%`, `\r`, `\n` become `%25`, `%0D`, `%0A`; in a property
//! (`title=`) also `:` and `,` become `%3A` and `%2C`.

use super::dirs::with_path;
use super::image::ImageReport;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The runner's files, when running in GitHub Actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubActions {
    /// GITHUB_STEP_SUMMARY: markdown appended here shows on the run's page.
    pub step_summary: Option<PathBuf>,
    /// GITHUB_OUTPUT: `name=value` lines appended here become the step's outputs.
    pub output: Option<PathBuf>,
}

impl GithubActions {
    /// `Some` when GITHUB_ACTIONS is `true` (what the runner sets).
    pub fn from_env() -> Option<Self> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`GithubActions::from_env`] with the variables looked up by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<Self> {
        if var("GITHUB_ACTIONS").as_deref() != Some("true") {
            return None;
        }
        let path = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        Some(GithubActions {
            step_summary: path("GITHUB_STEP_SUMMARY"),
            output: path("GITHUB_OUTPUT"),
        })
    }

    /// Append markdown to the job summary (nothing when GITHUB_STEP_SUMMARY is unset).
    pub fn append_summary(&self, markdown: &str) -> std::io::Result<()> {
        match &self.step_summary {
            Some(p) => append(p, markdown),
            None => Ok(()),
        }
    }

    /// Append step outputs (nothing when GITHUB_OUTPUT is unset).
    pub fn set_outputs(&self, outputs: &[(&str, &str)]) -> std::io::Result<()> {
        let Some(p) = &self.output else {
            return Ok(());
        };
        let mut text = String::new();
        for (name, value) in outputs {
            text.push_str(&output_entry(name, value, &random_delimiter()));
        }
        append(p, &text)
    }
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| with_path(e, path))?;
    f.write_all(text.as_bytes()).map_err(|e| with_path(e, path))
}

/// A workflow command's message.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value (`title=...`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// `::group::TITLE` (a collapsible group in the log, until [`end_group`]).
pub fn group(title: &str) -> String {
    format!("::group::{}\n", escape_data(title))
}

/// `::endgroup::`
pub fn end_group() -> &'static str {
    "::endgroup::\n"
}

/// `::error title=TITLE::MESSAGE`: an error annotation on the run.
pub fn error(title: &str, message: &str) -> String {
    format!(
        "::error title={}::{}\n",
        escape_property(title),
        escape_data(message)
    )
}

/// `::warning title=TITLE::MESSAGE`
pub fn warning(title: &str, message: &str) -> String {
    format!(
        "::warning title={}::{}\n",
        escape_property(title),
        escape_data(message)
    )
}

/// `::error title=<key>: <step> failed::<message>` for a failed image; None when it passed.
pub fn failure_annotation(report: &ImageReport) -> Option<String> {
    if report.success {
        return None;
    }
    let title = match report.failed_step {
        Some(step) => format!("{}: {step} failed", report.key),
        None => format!("{} failed", report.key),
    };
    Some(error(&title, &report.message))
}

/// How many lines of each log a finished image's group shows.
const LOG_TAIL_LINES: usize = 40;

/// What a finished image shows in the log: its progress `line` as a collapsible group
/// with each step's time and the end of each of `logs` that exists, then an error
/// annotation when it failed, and a warning annotation for each warning (a content tag
/// kept on another digest is not a failure).
pub fn finished_image(line: &str, report: &ImageReport, logs: &[PathBuf]) -> String {
    let mut out = String::new();
    // `group`, `end_group` and the annotations end in a newline; each is followed by an
    // empty line.
    let _ = writeln!(out, "{}", group(line));
    for s in &report.steps {
        let _ = writeln!(out, "  {}: {:.1}s", s.step, s.seconds);
    }
    for log in logs {
        if let Ok(text) = std::fs::read_to_string(log) {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            let _ = writeln!(out, "--- {} (last {} lines)", log.display(), tail.len());
            for l in tail {
                let _ = writeln!(out, "{l}");
            }
        }
    }
    let _ = writeln!(out, "{}", end_group());
    if let Some(a) = failure_annotation(report) {
        let _ = writeln!(out, "{a}");
    }
    for w in &report.warnings {
        out.push_str(&warning(&report.key, w));
    }
    out
}

/// One GITHUB_OUTPUT entry: `name=value` for one line, else the heredoc form
/// `name<<DELIMITER\nvalue\nDELIMITER\n`.
///
/// Panics if `name` is not a plain name or the value holds the delimiter:
/// both are the caller's bug, and a quietly broken output file is worse.
pub fn output_entry(name: &str, value: &str, delimiter: &str) -> String {
    assert!(
        !name.is_empty() && !name.contains(['=', '<', '\n', '\r']),
        "bad output name {name:?}"
    );
    if !value.contains(['\n', '\r']) {
        return format!("{name}={value}\n");
    }
    assert!(
        !value.contains(delimiter),
        "output value holds its delimiter"
    );
    format!("{name}<<{delimiter}\n{value}\n{delimiter}\n")
}

/// A delimiter no value will hold by chance: `ghadelimiter_` and 128 random bits.
pub fn random_delimiter() -> String {
    format!("ghadelimiter_{:032x}", rand::random::<u128>())
}

/// The outputs of `stackctl build`: `images` (one full name a line) and `tag`.
pub fn build_outputs<'a>(tag: &'a str, images: &'a str) -> [(&'static str, &'a str); 2] {
    [("images", images), ("tag", tag)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn only_on_github_actions() {
        let vars: HashMap<&str, &str> = [
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", "/runner/summary.md"),
            ("GITHUB_OUTPUT", ""),
        ]
        .into();
        let gh = GithubActions::from_vars(|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(gh.step_summary, Some(PathBuf::from("/runner/summary.md")));
        assert_eq!(gh.output, None);
        assert!(GithubActions::from_vars(|_| None).is_none());
        assert!(
            GithubActions::from_vars(|k| (k == "GITHUB_ACTIONS").then(|| "false".into())).is_none()
        );
    }

    #[test]
    fn commands_are_escaped_as_the_runner_requires() {
        assert_eq!(
            error("build failed: base, step 3", "100% done\r\nline 2"),
            "::error title=build failed%3A base%2C step 3::100%25 done%0D%0Aline 2\n"
        );
        assert_eq!(warning("a", "b:c,d"), "::warning title=a::b:c,d\n");
        assert_eq!(
            group("base 2026.3-main\n"),
            "::group::base 2026.3-main%0A\n"
        );
        assert_eq!(end_group(), "::endgroup::\n");
    }

    #[test]
    fn outputs_single_and_multi_line() {
        assert_eq!(
            output_entry("tag", "2026.3-main", "EOF_X"),
            "tag=2026.3-main\n"
        );
        assert_eq!(
            output_entry("images", "a/b:1\nc/d:1", "EOF_X"),
            "images<<EOF_X\na/b:1\nc/d:1\nEOF_X\n"
        );
    }

    #[test]
    #[should_panic(expected = "delimiter")]
    fn a_value_holding_the_delimiter_is_refused() {
        output_entry("x", "a\nEOF_X\nb", "EOF_X");
    }

    #[test]
    fn summary_and_outputs_are_appended_to_the_runner_files() {
        let tmp = tempfile::tempdir().unwrap();
        let summary = tmp.path().join("summary.md");
        let output = tmp.path().join("output");
        std::fs::write(&summary, "earlier step\n").unwrap();
        std::fs::write(&output, "other=1\n").unwrap();
        let gh = GithubActions {
            step_summary: Some(summary.clone()),
            output: Some(output.clone()),
        };
        gh.append_summary("### stackctl build\n").unwrap();
        let images = "127.0.0.1:5111/ex/base:2026.3-main\n127.0.0.1:5111/ex/service:2026.3-main";
        gh.set_outputs(&build_outputs("2026.3-main", images))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&summary).unwrap(),
            "earlier step\n### stackctl build\n"
        );
        let out = std::fs::read_to_string(&output).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "other=1");
        let delim = lines[1].strip_prefix("images<<").unwrap();
        assert!(delim.starts_with("ghadelimiter_") && delim.len() == 13 + 32);
        assert_eq!(
            &lines[2..],
            [
                "127.0.0.1:5111/ex/base:2026.3-main",
                "127.0.0.1:5111/ex/service:2026.3-main",
                delim,
                "tag=2026.3-main"
            ]
        );
    }

    #[test]
    fn without_the_runner_files_nothing_is_written() {
        // Empty variables count as unset: no file named "" is ever opened.
        let gh = GithubActions::from_vars(|k| match k {
            "GITHUB_ACTIONS" => Some("true".into()),
            _ => Some(String::new()),
        })
        .unwrap();
        assert_eq!(
            gh,
            GithubActions {
                step_summary: None,
                output: None
            }
        );
        gh.append_summary("x").unwrap();
        gh.set_outputs(&[("tag", "t")]).unwrap();

        // Only the file that is set is written, and only by its own call.
        let tmp = tempfile::tempdir().unwrap();
        let only_output = GithubActions {
            step_summary: None,
            output: Some(tmp.path().join("output")),
        };
        only_output.append_summary("summary text").unwrap();
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        only_output.set_outputs(&[("tag", "t")]).unwrap();
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["output"]);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("output")).unwrap(),
            "tag=t\n"
        );
    }
}
