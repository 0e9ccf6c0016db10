//! stackctl: build, test, publish and promote a stack of container images.
//!
//! The library is split by concern; the `cli` module is a thin layer over it.
//! - [`spec`]: the stack's `spec.yml` and change rules, loaded and validated.
//!   The image tree (parents before children) is `Spec::topological`.
//! - [`git`]: the git facts a plan needs (through git2).
//! - [`plan`]: which images rebuild, and why; [`github_event`]: the GitHub Actions event
//!   (variables, payload) a plan reads.
//! - [`tag`]: image tags made from a prefix and a branch name.
//! - [`imagetest`], [`manifest_page`], [`containers`]: image tests in containers, manifest pages;
//!   [`image_commands`]: commands run in a container of an image (info commands, content tags).
//! - [`pipeline`], [`report`]: the main job's scheduler, its artifacts and CI output;
//!   [`outcome`]: what happened to each image (the scheduler writes it, the report reads it).
//! - [`buildkit`]: builds through BuildKit's gRPC API (engine or buildkitd), with the session.
//! - [`credentials`]: registry credentials (Docker config, GitHub variables), never printed.
//! - [`registry`]: the registry API: existence checks, retag without pulling, promotion.
//! - [`content_tags`]: tags computed inside a built image (`tags:`), pushed without moving.
//! - [`merge`]: `stackctl merge`: split builds' per-platform images put together in one index.
//! - [`stack_promotion`]: `stackctl tag`: which images are promoted, and the files it leaves.
//! - [`build_history`]: the wiki's monthly build history pages and its manifest page cap.
//! - [`wiki`]: the wiki pages (Home.md, Stable_Tag.md) in the old tool's format.
//! - [`mermaid`]: diagrams as Mermaid text (the image tree, step times, layer sizes).
//! - [`human`]: byte sizes for people (`12.3 MB`).
#[cfg(test)]
mod architecture;
pub mod buildkit;
pub mod cli;
pub mod containers;
pub mod content_tags;
pub mod credentials;
pub mod exit;
pub mod pipeline;
pub mod plan;
pub mod promote;
pub mod registry;
pub mod report;
pub mod spec;
pub mod tag;
pub mod wiki;
