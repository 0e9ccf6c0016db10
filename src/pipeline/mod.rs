//! The main job's machinery (`stackctl build`), apart from the per-image steps
//! that live in their own modules.
//! - [`schedule`]: which image runs when (parents first, `--jobs`, `--keep-going`).

pub mod schedule;
