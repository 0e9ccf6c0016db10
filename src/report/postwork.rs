//! The build's postwork, in one call: every started image's YAML, `IMAGES_BUILT`,
//! and on GitHub Actions the job summary and the step outputs. Runs whatever
//! happened to the images (the artifacts say which step failed).

use super::dirs::ArtifactDirs;
use super::github::{build_outputs, GithubActions};
use super::image::{ImageReport, ImageStep};
use super::lists::{built_images, write_image_list, IMAGES_BUILT};
use super::table::{markdown_with_pictures, RowStatus, SummaryRow};
use crate::report::mermaid::{self, GanttTask, NodeState, TreeNode};
use crate::report::outcome::{Scheduled, ScheduledImage};
use std::path::PathBuf;
use std::time::Duration;

/// The run's image tree: each image with its result (built, up to date, failed at a
/// step, skipped) as its colour and first note.
pub fn run_tree(
    scheduled: &[ScheduledImage<ImageReport>],
    rows: &[SummaryRow],
    parent: &dyn Fn(&str) -> Option<String>,
) -> Vec<TreeNode> {
    scheduled
        .iter()
        .zip(rows)
        .map(|(s, row)| {
            let state = match (&s.result, &row.status) {
                (Scheduled::UpToDate, _) => NodeState::UpToDate,
                (Scheduled::Skipped(_), _) => NodeState::Skipped,
                (Scheduled::Ran { .. }, RowStatus::Failed { .. }) => NodeState::Failed,
                (Scheduled::Ran { .. }, _) => NodeState::Built,
            };
            let mut notes = vec![row.status.text()];
            if let Some(total) = row.total {
                notes.push(super::table::format_duration(total));
            }
            TreeNode {
                key: s.key.clone(),
                parent: parent(&s.key),
                state,
                notes,
            }
        })
        .collect()
}

/// Each started image's steps, end to end from the image's start (the steps of one
/// image run one after another), for [`mermaid::gantt`].
pub fn step_times(scheduled: &[ScheduledImage<ImageReport>]) -> Vec<GanttTask> {
    let mut tasks = Vec::new();
    for s in scheduled {
        if let Scheduled::Ran {
            outcome, started, ..
        } = &s.result
        {
            let mut at = *started;
            // The prune step runs after every build of the run, not right after the
            // image's other steps: laid end to end it would be drawn at the wrong time.
            for st in outcome
                .steps
                .iter()
                .filter(|st| st.step != ImageStep::Prune)
            {
                let end = at + Duration::from_secs_f64(st.seconds.max(0.0));
                tasks.push(GanttTask {
                    section: s.key.clone(),
                    name: st.step.name().to_string(),
                    start: at,
                    end,
                    failed: outcome.failed_step == Some(st.step),
                });
                at = end;
            }
        }
    }
    tasks
}

/// How many packages of one kind the job summary lists (the rest are in `changes.md`).
const SUMMARY_LISTED: usize = 10;

/// What changed in each image that was compared with the one it replaces (`changes.md`,
/// sized for a pull-request comment: `listed` packages of each kind at most); None when
/// no image was.
pub fn changes_markdown(reports: &[&ImageReport], listed: usize) -> Option<String> {
    let compared: Vec<&ImageReport> = reports
        .iter()
        .copied()
        .filter(|r| r.changes.is_some())
        .collect();
    if compared.is_empty() {
        return None;
    }
    let mut md = String::from("## What changed\n");
    for r in compared {
        let Some(c) = &r.changes else { continue };
        md.push_str(&format!("\n### {}\n\n", r.image));
        if !r.success {
            md.push_str(&format!("Not tagged: {}\n\n", r.message));
        }
        md.push_str(&crate::changes::render::markdown(c, 4, listed));
    }
    Some(md)
}

/// What the postwork wrote, and the summary rows (for [`super::table::terminal`]).
#[derive(Debug, Clone)]
pub struct PostworkOutput {
    pub rows: Vec<SummaryRow>,
    /// The files written, in order: one YAML per started image, then IMAGES_BUILT.
    pub files: Vec<PathBuf>,
    /// The images built and passed (IMAGES_BUILT's lines).
    pub built: Vec<String>,
}

/// Write the artifacts of a finished run.
///
/// `repository(key)` is the image's `image_name`, `parent(key)` its parent's key; `tag`
/// the run's tag; `title` heads the job summary. `github` is [`GithubActions::from_env`]
/// (None outside Actions). The job summary is the image tree coloured by result, the
/// table, and a Gantt chart of when each image's steps ran.
pub fn write_postwork(
    dirs: &ArtifactDirs,
    tag: &str,
    title: &str,
    scheduled: &[ScheduledImage<ImageReport>],
    repository: impl Fn(&str) -> String,
    parent: impl Fn(&str) -> Option<String>,
    github: Option<&GithubActions>,
) -> anyhow::Result<PostworkOutput> {
    let mut files = vec![];
    let mut started: Vec<&ImageReport> = vec![];
    for s in scheduled {
        if let Scheduled::Ran { outcome, .. } = &s.result {
            files.push(outcome.write(dirs)?);
            started.push(outcome);
        }
    }
    let built = built_images(&started);
    files.push(write_image_list(dirs, IMAGES_BUILT, &built)?);
    let changes = changes_markdown(&started, crate::changes::render::LISTED);
    if let Some(md) = &changes {
        let path = dirs.changes();
        std::fs::write(&path, md).map_err(|e| super::dirs::with_path(e, &path))?;
        files.push(path);
    }
    let rows: Vec<SummaryRow> = scheduled
        .iter()
        .map(|s| SummaryRow::from_scheduled(&repository(&s.key), tag, s))
        .collect();
    if let Some(gh) = github {
        let tree = mermaid::flowchart(&run_tree(scheduled, &rows, &parent));
        let tasks = step_times(scheduled);
        let gantt = (!tasks.is_empty()).then(|| mermaid::gantt(title, &tasks));
        gh.append_summary(&markdown_with_pictures(
            title,
            Some(&tree),
            &rows,
            gantt.as_deref(),
        ))?;
        if let Some(md) = changes_markdown(&started, SUMMARY_LISTED) {
            gh.append_summary(&md)?;
        }
        gh.set_outputs(&build_outputs(tag, &built.join("\n")))?;
    }
    Ok(PostworkOutput { rows, files, built })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::outcome::Skip;
    use std::time::Duration;

    fn ran(key: &str, ok: bool) -> ScheduledImage<ImageReport> {
        let mut r = ImageReport::started(key, format!("127.0.0.1:5111/ex/{key}:2026.3-main"));
        r.built = true;
        r.step_took(ImageStep::Build, Duration::from_secs(1));
        if ok {
            r.pushed = true;
            r.digest = Some("sha256:aa".into());
        } else {
            r.fail(ImageStep::Build, "RUN exited 1");
        }
        r.finish(Duration::from_secs(2));
        ScheduledImage::ran_from_start(key, r, Duration::from_secs(2))
    }

    #[test]
    fn writes_every_started_image_and_the_runner_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = ArtifactDirs::new(tmp.path().join("out"));
        let gh = GithubActions {
            step_summary: Some(tmp.path().join("summary.md")),
            output: Some(tmp.path().join("output")),
        };
        let scheduled = vec![
            ScheduledImage {
                key: "base".into(),
                result: Scheduled::UpToDate,
            },
            ran("analysis", true),
            ran("service", false),
            ScheduledImage {
                key: "web".into(),
                result: Scheduled::Skipped(Skip::AncestorFailed {
                    failed: "service".into(),
                    direct: true,
                }),
            },
            ran("extra", true),
        ];
        let out = write_postwork(
            &dirs,
            "2026.3-main",
            "stackctl build",
            &scheduled,
            |k| format!("127.0.0.1:5111/ex/{k}"),
            |k| (k != "base").then(|| "base".to_string()),
            Some(&gh),
        )
        .unwrap();

        let art = tmp.path().join("out/artifacts");
        let mut names: Vec<String> = std::fs::read_dir(&art)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // Only started images have a YAML (not the up-to-date or skipped ones).
        assert_eq!(
            names,
            [
                "127.0.0.1-5111-ex-analysis-2026.3-main.yaml",
                "127.0.0.1-5111-ex-extra-2026.3-main.yaml",
                "127.0.0.1-5111-ex-service-2026.3-main.yaml",
                "IMAGES_BUILT"
            ]
        );
        assert_eq!(out.files.len(), 4);
        let failed =
            ImageReport::read(&art.join("127.0.0.1-5111-ex-service-2026.3-main.yaml")).unwrap();
        assert_eq!(failed.failed_step, Some(ImageStep::Build));
        assert!(!failed.success);
        assert_eq!(
            std::fs::read_to_string(art.join("IMAGES_BUILT")).unwrap(),
            "127.0.0.1:5111/ex/analysis:2026.3-main\n127.0.0.1:5111/ex/extra:2026.3-main\n"
        );
        assert_eq!(out.rows.len(), 5);
        let summary = std::fs::read_to_string(tmp.path().join("summary.md")).unwrap();
        assert!(summary.starts_with("### stackctl build\n\n```mermaid\nflowchart TD\n"));
        assert!(
            summary.contains("    n2[\"<b>service</b><br/>failed: build<br/>2.0s\"]:::failed\n")
        );
        assert!(summary
            .contains("    n3[\"<b>web</b><br/>skipped: parent service failed\"]:::skipped\n"));
        assert!(summary.contains("    n0 --> n3\n"), "{summary}");
        assert!(summary.contains("```\n\n2 built, 1 failed, 1 skipped, 1 up to date\n"));
        assert!(summary.contains("```mermaid\ngantt\n"));
        assert!(summary.contains("    section service\n    build :crit, 0, 1000\n"));
        assert!(summary.contains(
            "| `127.0.0.1:5111/ex/web` | `2026.3-main` | ❌ skipped: parent service failed |"
        ));
        let output = std::fs::read_to_string(tmp.path().join("output")).unwrap();
        let lines: Vec<&str> = output.lines().collect();
        assert!(lines[0].starts_with("images<<ghadelimiter_"));
        assert_eq!(lines[1], "127.0.0.1:5111/ex/analysis:2026.3-main");
        assert_eq!(lines[2], "127.0.0.1:5111/ex/extra:2026.3-main");
        assert_eq!(lines[3], &lines[0]["images<<".len()..]);
        assert_eq!(lines[4], "tag=2026.3-main");
    }

    #[test]
    fn changes_go_to_changes_md_and_the_job_summary() {
        use crate::changes::diff::{compare, ImageSide, Layer, PlatformImage};
        let side = |reference: &str, size: u64| ImageSide {
            reference: reference.into(),
            digest: format!("sha256:{size}"),
            platforms: vec![PlatformImage {
                platform: "linux/amd64".into(),
                digest: format!("sha256:m{size}"),
                layers: vec![Layer {
                    digest: format!("sha256:l{size}"),
                    size,
                    created_by: None,
                }],
                inventory: None,
                inventory_source: "none attached".into(),
            }],
        };
        let mut over = ran("analysis", false);
        let mut plain = ran("extra", true);
        for (s, size) in [(&mut over, 9000), (&mut plain, 1200)] {
            if let Scheduled::Ran { outcome, .. } = &mut s.result {
                let old = side(
                    &format!("127.0.0.1:5111/ex/{}:2026.3-stable", outcome.key),
                    1000,
                );
                let new = side(&outcome.image, size);
                outcome.changes = Some(compare(Some(&old), &new, None));
                outcome.message = "over its size budget: linux/amd64: 9.0 kB; not tagged".into();
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let dirs = ArtifactDirs::new(tmp.path().join("out"));
        let gh = GithubActions {
            step_summary: Some(tmp.path().join("summary.md")),
            output: None,
        };
        let scheduled = vec![over, plain, ran("web", true)];
        let out = write_postwork(
            &dirs,
            "2026.3-main",
            "t",
            &scheduled,
            |k| k.into(),
            |_| None,
            Some(&gh),
        )
        .unwrap();
        let md = std::fs::read_to_string(dirs.changes()).unwrap();
        assert!(out.files.contains(&dirs.changes()));
        assert!(
            md.starts_with("## What changed\n\n### 127.0.0.1:5111/ex/analysis:2026.3-main\n"),
            "{md}"
        );
        assert!(md.contains("Not tagged: over its size budget"), "{md}");
        assert!(
            md.contains("| linux/amd64 | 9.0 kB | 1.0 kB | +8.0 kB |"),
            "{md}"
        );
        assert!(md.contains("#### Changes since 2026.3-stable"), "{md}");
        assert!(
            !md.contains("ex/web"),
            "an image without a comparison is left out: {md}"
        );
        let summary = std::fs::read_to_string(tmp.path().join("summary.md")).unwrap();
        assert!(summary.contains("## What changed"), "{summary}");
    }

    #[test]
    fn outside_actions_only_the_artifacts_are_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = ArtifactDirs::new(tmp.path());
        let out = write_postwork(
            &dirs,
            "t",
            "x",
            &[ran("a", true)],
            |k| k.to_string(),
            |_| None,
            None,
        )
        .unwrap();
        assert_eq!(out.built, ["127.0.0.1:5111/ex/a:2026.3-main"]);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }
}
