//! What a build leaves behind (docs/formats.md, "What a build leaves"), and how it
//! tells people about it: per-image YAML, `IMAGES_BUILT`, `logs/run.log`, the
//! per-image log paths, GitHub Actions output and the final table.
//!
//! - [`dirs`]: where each file goes ([`ArtifactDirs`]).
//! - [`image`]: one image's result ([`ImageReport`]) and its `artifacts/<safe name>.yaml`.
//! - [`lists`]: `artifacts/IMAGES_BUILT` and the other one-name-a-line files.
//! - [`runlog`]: a tracing writer that tees the run's log lines into `logs/run.log`.
//! - [`table`]: the summary rows, as a markdown table and as a terminal table.
//! - [`build_json`]: the document `stackctl build --format json` prints.
//! - [`github`]: `::group::`, `::error`, a finished image's group, GITHUB_STEP_SUMMARY and
//!   GITHUB_OUTPUT.
//! - [`progress`]: one progress line per image.
//! - [`postwork`]: all of the above for a finished run, in one call.

pub mod build_json;
pub mod dirs;
pub mod github;
pub mod image;
pub mod lists;
pub mod mermaid;
pub mod names;
pub mod outcome;
pub mod postwork;
pub mod progress;
pub mod runlog;
pub mod table;

pub use dirs::ArtifactDirs;
pub use image::{ImageReport, ImageStep, PlatformReport, TestCounts, TestFailure};
pub use postwork::{write_postwork, PostworkOutput};
pub use runlog::RunLog;
pub use table::SummaryRow;
