//! stackctl: build, test, publish and promote a stack of container images.
//!
//! The library is split by concern; the `cli` module is a thin layer over it.
//! - [`spec`]: the stack's `spec.yml` and change rules, loaded and validated.
//! - [`graph`]: the image tree (parents before children).
//! - [`tag`]: image tags made from a prefix and a branch name.
//! - [`credentials`]: registry credentials (Docker config, GitHub variables), never printed.
pub mod buildkit;
pub mod cli;
pub mod credentials;
pub mod error;
pub mod naming;
pub mod spec;
pub mod tag;
