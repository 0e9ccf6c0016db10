//! The build's summary: one row per image of the stack (built, failed, skipped or up
//! to date), as a markdown table (GITHUB_STEP_SUMMARY) and as a terminal table.

use super::image::{ImageReport, ImageStep, PlatformReport, TestCounts};
use crate::content_tags::publish::{ContentTag, ContentTagState};
use crate::report::outcome::{Scheduled, ScheduledImage};
use std::time::Duration;

/// How one image ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowStatus {
    /// Not rebuilt: its tag is in the registry and nothing changed.
    UpToDate,
    /// Every step passed; the text says which ran (`built, tested and pushed`).
    Done(String),
    /// A step failed.
    Failed {
        step: Option<ImageStep>,
        message: String,
    },
    /// Not started (`skipped: parent base failed`).
    Skipped(String),
}

impl RowStatus {
    pub fn is_ok(&self) -> bool {
        matches!(self, RowStatus::UpToDate | RowStatus::Done(_))
    }

    /// Short text for a table cell.
    pub fn text(&self) -> String {
        match self {
            RowStatus::UpToDate => "up to date".into(),
            RowStatus::Done(m) => m.clone(),
            RowStatus::Failed {
                step: Some(step), ..
            } => format!("failed: {step}"),
            RowStatus::Failed { step: None, .. } => "failed".into(),
            RowStatus::Skipped(why) => why.clone(),
        }
    }
}

/// One image in the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    pub key: String,
    /// The repository, without tag.
    pub repository: String,
    pub tag: String,
    pub status: RowStatus,
    pub digest: Option<String>,
    pub build: Option<Duration>,
    /// Basic and integration tests together.
    pub tests: Option<Duration>,
    pub total: Option<Duration>,
    pub basic: Option<TestCounts>,
    pub integration: Option<TestCounts>,
    /// The image's content tags and what the build did with them.
    pub content_tags: Vec<ContentTag>,
    /// Warnings that did not fail the image (a content tag kept on another digest).
    pub warnings: Vec<String>,
    /// Each platform's result, for an image built for declared platforms.
    pub platforms: Vec<PlatformReport>,
}

impl SummaryRow {
    /// The row of one scheduled image; `repository` and `tag` name it.
    pub fn from_scheduled(
        repository: &str,
        tag: &str,
        scheduled: &ScheduledImage<ImageReport>,
    ) -> SummaryRow {
        let mut row = SummaryRow {
            key: scheduled.key.clone(),
            repository: repository.to_string(),
            tag: tag.to_string(),
            status: RowStatus::UpToDate,
            digest: None,
            build: None,
            tests: None,
            total: None,
            basic: None,
            integration: None,
            content_tags: vec![],
            warnings: vec![],
            platforms: vec![],
        };
        match &scheduled.result {
            Scheduled::UpToDate => {}
            Scheduled::Skipped(why) => row.status = RowStatus::Skipped(why.to_string()),
            Scheduled::Ran {
                outcome: r, took, ..
            } => {
                row.status = if r.success {
                    RowStatus::Done(r.message.clone())
                } else {
                    RowStatus::Failed {
                        step: r.failed_step,
                        message: r.message.clone(),
                    }
                };
                row.digest = r.digest.clone();
                row.build = r.step_time(ImageStep::Build);
                row.tests = match (
                    r.step_time(ImageStep::BasicTests),
                    r.step_time(ImageStep::IntegrationTests),
                ) {
                    (None, None) => None,
                    (a, b) => Some(a.unwrap_or_default() + b.unwrap_or_default()),
                };
                row.total = Some(*took);
                row.basic = r.tests.basic.clone();
                row.integration = r.tests.integration.clone();
                row.content_tags = r.content_tags.clone();
                row.warnings = r.warnings.clone();
                row.platforms = r.platforms.clone();
            }
        }
        row
    }

    /// `3 passed, 1 failed, 0 skipped` for the basic tests, and the integration
    /// tests after ` / ` when they ran; `-` when no test ran.
    /// With more than one platform, the basic tests of each: `linux/amd64: 3 passed, ...;
    /// linux/arm64: 2 passed, 1 failed, ...`.
    pub fn test_counts(&self) -> String {
        if self.platforms.len() > 1 {
            let each: Vec<String> = self
                .platforms
                .iter()
                .map(|p| match &p.basic {
                    Some(c) => format!("{}: {}", p.platform, c.summary()),
                    None => format!("{}: -", p.platform),
                })
                .collect();
            let mut text = each.join("; ");
            if let Some(i) = &self.integration {
                text.push_str(&format!(" / integration: {}", i.summary()));
            }
            return text;
        }
        match (&self.basic, &self.integration) {
            (None, None) => "-".into(),
            (Some(b), None) => b.summary(),
            (None, Some(i)) => format!("integration: {}", i.summary()),
            (Some(b), Some(i)) => format!("{} / integration: {}", b.summary(), i.summary()),
        }
    }
}

/// `4.2s`, `1m3s`, `1h2m3s` (as the old manifest pages wrote times).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 60_000 {
        return format!("{}.{}s", ms / 1000, (ms % 1000) / 100);
    }
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

fn opt_duration(d: Option<Duration>) -> String {
    d.map(format_duration).unwrap_or_else(|| "-".into())
}

/// `sha256:` and the first 12 hex digits.
pub fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((algo, hex)) => format!("{algo}:{}", &hex[..hex.len().min(12)]),
        None => d.chars().take(19).collect(),
    }
}

/// `2 built, 1 failed, 1 skipped, 3 up to date` (parts that are zero left out).
pub fn counts_line(rows: &[SummaryRow]) -> String {
    let n = |f: &dyn Fn(&RowStatus) -> bool| rows.iter().filter(|r| f(&r.status)).count();
    let parts = [
        (n(&|s| matches!(s, RowStatus::Done(_))), "built"),
        (n(&|s| matches!(s, RowStatus::Failed { .. })), "failed"),
        (n(&|s| matches!(s, RowStatus::Skipped(_))), "skipped"),
        (n(&|s| matches!(s, RowStatus::UpToDate)), "up to date"),
    ];
    let out: Vec<String> = parts
        .iter()
        .filter(|(c, _)| *c > 0)
        .map(|(c, what)| format!("{c} {what}"))
        .collect();
    if out.is_empty() {
        "no images".into()
    } else {
        out.join(", ")
    }
}

/// A markdown table cell: `|` escaped, line breaks as spaces.
fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// The markdown summary: a `### title` heading, the counts, and the table.
pub fn markdown(title: &str, rows: &[SummaryRow]) -> String {
    markdown_with_pictures(title, None, rows, None)
}

/// [`markdown`] with Mermaid pictures: `tree` (a flowchart) between the title and the
/// table, `gantt` (when the steps ran) after it.
pub fn markdown_with_pictures(
    title: &str,
    tree: Option<&str>,
    rows: &[SummaryRow],
    gantt: Option<&str>,
) -> String {
    let mut out = format!("### {}\n\n", md_cell(title));
    if let Some(tree) = tree {
        out.push_str(&crate::report::mermaid::fenced(tree));
        out.push('\n');
    }
    out.push_str(&format!("{}\n\n", counts_line(rows)));
    out.push_str("| Image | Tag | Result | Digest | Build | Tests | Total | Test results |\n");
    out.push_str("|-------|-----|--------|--------|------:|------:|------:|--------------|\n");
    for r in rows {
        let mark = if r.status.is_ok() { "✅" } else { "❌" };
        let digest = r
            .digest
            .as_deref()
            .map(|d| format!("`{d}`"))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "| `{}` | `{}` | {mark} {} | {digest} | {} | {} | {} | {} |\n",
            r.repository,
            r.tag,
            md_cell(&r.status.text()),
            opt_duration(r.build),
            opt_duration(r.tests),
            opt_duration(r.total),
            md_cell(&r.test_counts()),
        ));
    }
    // Failed images' messages below the table: a cell is too small for them.
    let failures: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| matches!(r.status, RowStatus::Failed { .. }))
        .collect();
    if !failures.is_empty() {
        out.push('\n');
        for r in failures {
            if let RowStatus::Failed { message, .. } = &r.status {
                out.push_str(&format!("- **{}**: {}\n", r.key, md_cell(message)));
            }
        }
    }
    let tagged: Vec<&SummaryRow> = rows.iter().filter(|r| !r.content_tags.is_empty()).collect();
    if !tagged.is_empty() {
        out.push_str("\nContent tags:\n\n");
        for r in tagged {
            for t in &r.content_tags {
                out.push_str(&format!(
                    "- `{}:{}` {}\n",
                    r.repository,
                    t.tag,
                    md_cell(&tag_state(t))
                ));
            }
        }
    }
    for r in rows {
        for w in &r.warnings {
            out.push_str(&format!("\n⚠️ **{}**: {}\n", r.key, md_cell(w)));
        }
    }
    if let Some(gantt) = gantt {
        out.push_str("\n#### When the steps ran\n\n");
        out.push_str(&crate::report::mermaid::fenced(gantt));
    }
    out
}

/// What happened to a content tag, in words: `created sha256:0123456789ab`,
/// `KEPT on sha256:... (another image; this build did not get it)`.
pub fn tag_state(t: &ContentTag) -> String {
    let d = t
        .digest
        .as_deref()
        .map(short_digest)
        .unwrap_or_else(|| "-".into());
    match t.state {
        ContentTagState::NotPushed => "not pushed".into(),
        ContentTagState::Created => format!("created -> {d}"),
        ContentTagState::Unchanged => format!("unchanged -> {d}"),
        ContentTagState::Kept => {
            format!("KEPT -> {d} (names another image; content tags never move)")
        }
        ContentTagState::Moved => format!(
            "moved -> {d} (was {}; moving: true)",
            t.previous
                .as_deref()
                .map(short_digest)
                .unwrap_or_else(|| "-".into())
        ),
    }
}

/// The terminal table: aligned columns, the digest shortened, then the counts line.
pub fn terminal(rows: &[SummaryRow]) -> String {
    let header = [
        "IMAGE",
        "RESULT",
        "DIGEST",
        "BUILD",
        "TESTS",
        "TOTAL",
        "TEST RESULTS",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        cells.push(vec![
            format!("{}:{}", r.repository, r.tag),
            r.status.text(),
            r.digest
                .as_deref()
                .map(short_digest)
                .unwrap_or_else(|| "-".into()),
            opt_duration(r.build),
            opt_duration(r.tests),
            opt_duration(r.total),
            r.test_counts(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&counts_line(rows));
    out.push('\n');
    let tagged: Vec<&SummaryRow> = rows.iter().filter(|r| !r.content_tags.is_empty()).collect();
    if !tagged.is_empty() {
        out.push_str("content tags:\n");
        for r in tagged {
            for t in &r.content_tags {
                out.push_str(&format!("  {}:{}  {}\n", r.repository, t.tag, tag_state(t)));
            }
        }
    }
    for r in rows {
        for w in &r.warnings {
            out.push_str(&format!("warning: {}: {w}\n", r.key));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::outcome::Skip;
    use crate::report::TestFailure;

    const REPO: &str = "127.0.0.1:5111/stackctl-example";

    fn ran(key: &str, ok: bool) -> ScheduledImage<ImageReport> {
        let mut r = ImageReport::started(key, format!("{REPO}/{key}:2026.3-main"));
        r.built = true;
        r.step_took(ImageStep::Build, Duration::from_millis(12_300));
        r.step_took(ImageStep::BasicTests, Duration::from_millis(3_200));
        r.tests.basic = Some(TestCounts {
            passed: if ok { 4 } else { 3 },
            failed: if ok { 0 } else { 1 },
            skipped: 0,
            seconds: 3.2,
            failures: vec![],
        });
        if ok {
            r.pushed = true;
            r.digest = Some(format!("sha256:{}", "0123456789abcdef".repeat(4)));
            r.step_took(ImageStep::IntegrationTests, Duration::from_millis(1_000));
            r.tests.integration = Some(TestCounts {
                passed: 3,
                ..Default::default()
            });
        } else {
            r.tests.basic.as_mut().unwrap().failures.push(TestFailure {
                name: "t::x".into(),
                message: "no".into(),
            });
            r.fail(
                ImageStep::BasicTests,
                "basic tests failed: t::x | assert 1 == 2",
            );
        }
        r.finish(Duration::from_millis(65_000));
        ScheduledImage::ran_from_start(key, r, Duration::from_millis(65_400))
    }

    fn rows() -> Vec<SummaryRow> {
        let base = ScheduledImage {
            key: "base".into(),
            result: Scheduled::UpToDate,
        };
        let child = ScheduledImage {
            key: "child".into(),
            result: Scheduled::Skipped(Skip::AncestorFailed {
                failed: "analysis".into(),
                direct: true,
            }),
        };
        [base, ran("analysis", false), child, ran("service", true)]
            .iter()
            .map(|s| SummaryRow::from_scheduled(&format!("{REPO}/{}", s.key), "2026.3-main", s))
            .collect()
    }

    #[test]
    fn durations_as_the_old_pages() {
        assert_eq!(format_duration(Duration::from_millis(4_250)), "4.2s");
        assert_eq!(format_duration(Duration::from_millis(59_999)), "59.9s");
        assert_eq!(format_duration(Duration::from_secs(63)), "1m3s");
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(
            short_digest("sha256:0123456789abcdef0123"),
            "sha256:0123456789ab"
        );
    }

    #[test]
    fn markdown_table() {
        let md = markdown("stackctl build 2026.3-main", &rows());
        let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let expected = format!(
            "### stackctl build 2026.3-main

1 built, 1 failed, 1 skipped, 1 up to date

| Image | Tag | Result | Digest | Build | Tests | Total | Test results |
|-------|-----|--------|--------|------:|------:|------:|--------------|
| `{REPO}/base` | `2026.3-main` | ✅ up to date | - | - | - | - | - |
| `{REPO}/analysis` | `2026.3-main` | ❌ failed: basic-tests | - | 12.3s | 3.2s | 1m5s | 3 passed, 1 failed, 0 skipped |
| `{REPO}/child` | `2026.3-main` | ❌ skipped: parent analysis failed | - | - | - | - | - |
| `{REPO}/service` | `2026.3-main` | ✅ built, tested and pushed | `{digest}` | 12.3s | 4.2s | 1m5s | 4 passed, 0 failed, 0 skipped / integration: 3 passed, 0 failed, 0 skipped |

- **analysis**: basic tests failed: t::x \\| assert 1 == 2
"
        );
        assert_eq!(md, expected);
    }

    #[test]
    fn content_tags_and_warnings_below_the_tables() {
        let mut s = ran("service", true);
        if let Scheduled::Ran { outcome, .. } = &mut s.result {
            let d = |c: &str| Some(format!("sha256:{}", c.repeat(64)));
            outcome.content_tags = vec![
                ContentTag {
                    tag: "python-3.11.2".into(),
                    digest: d("a"),
                    state: ContentTagState::Created,
                    moving: false,
                    previous: None,
                },
                ContentTag {
                    tag: "python-3.11".into(),
                    digest: d("b"),
                    state: ContentTagState::Kept,
                    moving: false,
                    previous: None,
                },
                ContentTag {
                    tag: "latest".into(),
                    digest: d("a"),
                    state: ContentTagState::Moved,
                    moving: true,
                    previous: d("c"),
                },
            ];
            outcome.warnings = vec!["content tag x:python-3.11 already names b".into()];
        }
        let rows = vec![SummaryRow::from_scheduled(
            &format!("{REPO}/service"),
            "2026.3-main",
            &s,
        )];
        let t = terminal(&rows);
        assert!(
            t.contains(&format!(
                "content tags:\n  {REPO}/service:python-3.11.2  created -> sha256:aaaaaaaaaaaa\n"
            )),
            "{t}"
        );
        assert!(t.contains(&format!(
            "  {REPO}/service:python-3.11  KEPT -> sha256:bbbbbbbbbbbb (names another image; content tags never move)\n"
        )), "{t}");
        assert!(
            t.contains(
                "latest  moved -> sha256:aaaaaaaaaaaa (was sha256:cccccccccccc; moving: true)"
            ),
            "{t}"
        );
        assert!(
            t.ends_with("warning: service: content tag x:python-3.11 already names b\n"),
            "{t}"
        );
        let md = markdown("t", &rows);
        assert!(
            md.contains(&format!(
                "- `{REPO}/service:python-3.11.2` created -> sha256:aaaaaaaaaaaa\n"
            )),
            "{md}"
        );
        assert!(
            md.contains("⚠️ **service**: content tag x:python-3.11 already names b"),
            "{md}"
        );
    }

    #[test]
    fn terminal_table() {
        let t = terminal(&rows());
        let expected = format!(
            "\
IMAGE                                                 RESULT                           DIGEST               BUILD  TESTS  TOTAL  TEST RESULTS
{REPO}/base:2026.3-main      up to date                       -                    -      -      -      -
{REPO}/analysis:2026.3-main  failed: basic-tests              -                    12.3s  3.2s   1m5s   3 passed, 1 failed, 0 skipped
{REPO}/child:2026.3-main     skipped: parent analysis failed  -                    -      -      -      -
{REPO}/service:2026.3-main   built, tested and pushed         sha256:0123456789ab  12.3s  4.2s   1m5s   4 passed, 0 failed, 0 skipped / integration: 3 passed, 0 failed, 0 skipped
1 built, 1 failed, 1 skipped, 1 up to date
"
        );
        assert_eq!(t, expected);
    }

    #[test]
    fn each_platform_has_its_test_results() {
        let mut s = ran("kid", false);
        let Scheduled::Ran { outcome, .. } = &mut s.result else {
            unreachable!()
        };
        for (p, passed, failed) in [("linux/amd64", 1, 0), ("linux/arm64", 0, 1)] {
            outcome.platforms.push(PlatformReport {
                platform: p.into(),
                digest: None,
                success: failed == 0,
                basic: Some(TestCounts {
                    passed,
                    failed,
                    ..Default::default()
                }),
            });
        }
        let row = SummaryRow::from_scheduled(&format!("{REPO}/kid"), "2026.3-main", &s);
        let expected = "linux/amd64: 1 passed, 0 failed, 0 skipped; linux/arm64: 0 passed, 1 failed, 0 skipped";
        assert_eq!(row.test_counts(), expected);
        assert!(terminal(std::slice::from_ref(&row)).contains(expected));
        assert!(markdown("run", &[row]).contains(expected));
    }
}
