//! The main job (`stackctl build`): plan, registry check, then for every image that
//! rebuilds, parents first, its steps; then the artifacts.
//! - [`schedule`]: which image runs when (parents first, `--jobs`, `--keep-going`).
//! - [`image`]: one image's step order (build, tests, push, manifest page), against the
//!   small traits of [`steps`]; [`services`]: their real implementations (BuildKit,
//!   containers, the registry); [`content_tag_steps`], [`platform_steps`]: its content tag
//!   steps and its per-platform tests; [`platforms`]: which platforms it builds.
//! - [`request`]: the BuildKit request for an image, shared by `build` and `build-image`;
//!   [`one_image`]: `build-image`'s tag and overrides.
//! - [`prune`]: reclaiming builder space.
//! - [`run`]: the whole run, from options to the files it leaves.

pub mod content_tag_steps;
pub mod engine;
pub mod image;
pub mod one_image;
pub mod platform_steps;
pub mod platforms;
pub mod prune;
pub mod request;
pub mod run;
pub mod schedule;
pub mod services;
pub mod steps;
