//! The main job (`stackctl build`): plan, registry check, then for every image that
//! rebuilds, parents first, its steps; then the artifacts.
//! - [`schedule`]: which image runs when (parents first, `--jobs`, `--keep-going`).
//! - [`image`]: one image's step order (build, tests, push, manifest page), against small
//!   traits; [`parts`]: their real implementations (BuildKit, containers, the registry);
//!   [`content_tag_steps`]: its content tag steps.
//! - [`request`]: the BuildKit request for an image, shared by `build` and `build-image`.
//! - [`prune`]: reclaiming builder space.
//! - [`run`]: the whole run, from options to the files it leaves.

pub mod content_tag_steps;
pub mod engine;
pub mod image;
pub mod platforms;
pub mod prune;
pub mod request;
pub mod run;
pub mod schedule;
pub mod services;
