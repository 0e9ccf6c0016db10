//! stackctl: build, test, publish and promote a stack of container images.
//!
//! The library is split by concern; the `cli` module is a thin layer over it.
//! - [`spec`]: the stack's `spec.yml` and change rules, loaded and validated.
//! - [`graph`]: the image tree (parents before children).
//! - [`tag`]: image tags made from a prefix and a branch name.
//! - [`credentials`]: registry credentials (Docker config, GitHub variables), never printed.
//! - [`registry`]: the registry API: existence checks, retag without pulling, promotion.
//! - [`promotion`]: `stackctl tag`: which images are promoted, and the files it leaves.
//! - [`wiki`]: the wiki pages (Home.md, Stable_Tag.md) in the old tool's format.
pub mod cli;
pub mod credentials;
pub mod error;
pub mod naming;
pub mod promotion;
pub mod registry;
pub mod spec;
pub mod tag;
pub mod wiki;
