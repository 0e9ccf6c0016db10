//! One progress line per image, from the scheduler's events.

use super::image::ImageReport;
use super::table::format_duration;
use crate::report::outcome::ScheduleEvent;

/// The progress line of a scheduler event, e.g. `[analysis] failed at basic-tests
/// after 4.1s: 1 of 4 tests failed`. `image` is the image's full name.
pub fn line(event: &ScheduleEvent<'_, ImageReport>, image: &str) -> String {
    match event {
        ScheduleEvent::UpToDate { key } => format!("[{key}] up to date: {image}"),
        ScheduleEvent::Started { key } => format!("[{key}] started: {image}"),
        ScheduleEvent::Finished { key, outcome, took } if outcome.success => {
            let digest = outcome
                .digest
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            format!(
                "[{key}] {} in {}{digest}",
                outcome.message,
                format_duration(*took)
            )
        }
        ScheduleEvent::Finished { key, outcome, took } => match outcome.failed_step {
            Some(step) => format!(
                "[{key}] failed at {step} after {}: {}",
                format_duration(*took),
                outcome.message
            ),
            None => format!(
                "[{key}] failed after {}: {}",
                format_duration(*took),
                outcome.message
            ),
        },
        ScheduleEvent::Skipped { key, why } => format!("[{key}] {why}"),
        ScheduleEvent::Retried { key, outcome } => format!(
            "[{key}] {}; it is built again on another node",
            outcome.message
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::github::failure_annotation;
    use crate::report::outcome::Skip;
    use crate::report::ImageStep;
    use std::time::Duration;

    #[test]
    fn lines_for_each_event() {
        let img = "127.0.0.1:5111/ex/analysis:2026.3-main";
        let mut r = ImageReport::started("analysis", img);
        r.built = true;
        r.fail(ImageStep::BasicTests, "1 of 4 tests failed: test_x");
        r.finish(Duration::from_millis(4_100));
        let took = Duration::from_millis(4_120);
        assert_eq!(
            line(&ScheduleEvent::Started { key: "analysis" }, img),
            format!("[analysis] started: {img}")
        );
        assert_eq!(
            line(
                &ScheduleEvent::Finished {
                    key: "analysis",
                    outcome: &r,
                    took
                },
                img
            ),
            "[analysis] failed at basic-tests after 4.1s: 1 of 4 tests failed: test_x"
        );
        assert_eq!(
            failure_annotation(&r).unwrap(),
            "::error title=analysis%3A basic-tests failed::1 of 4 tests failed: test_x\n"
        );
        let mut ok = ImageReport::started("base", img);
        ok.built = true;
        ok.pushed = true;
        ok.digest = Some("sha256:ab".into());
        ok.finish(took);
        assert_eq!(
            line(
                &ScheduleEvent::Finished {
                    key: "base",
                    outcome: &ok,
                    took
                },
                img
            ),
            "[base] built, tested and pushed in 4.1s (sha256:ab)"
        );
        assert_eq!(failure_annotation(&ok), None);
        let why = Skip::RunStopped {
            failed: "analysis".into(),
        };
        assert_eq!(
            line(
                &ScheduleEvent::Skipped {
                    key: "service",
                    why: &why
                },
                img
            ),
            "[service] skipped: the run stopped after analysis failed (no --keep-going)"
        );
        assert_eq!(
            line(&ScheduleEvent::UpToDate { key: "base" }, img),
            format!("[base] up to date: {img}")
        );
    }
}
