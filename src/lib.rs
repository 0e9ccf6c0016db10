//! stackctl: build, test, publish and promote a stack of container images.
//!
//! The library is split by concern; the [`cli`] module is a thin layer over it, and the
//! only one that prints or chooses an exit code.
//! - [`spec`]: the stack's `spec.yml` and change rules, loaded and validated; the image
//!   tree (`Spec::topological`) and the one [`spec::platform::Platform`] type.
//! - [`bases`]: the external images a Dockerfile builds from, recorded in the image and
//!   read back (a moved base rebuilds its image).
//! - [`plan`]: which images rebuild, and why, from git (git2) and the GitHub event.
//! - [`tag`]: image tags made from a prefix and a branch name.
//! - [`credentials`]: registry credentials (Docker config, GitHub variables), never printed.
//! - [`registry`]: the registry client over a stack of transport layers; copy, indexes.
//! - [`buildkit`]: builds through BuildKit's gRPC API (engine or buildkitd), with the session.
//! - [`containers`]: what runs in an image: engine containers or the BuildKit node that
//!   built it, image commands, test suites.
//! - [`content_tags`]: tags computed inside a built image (`tags:`).
//! - [`pipeline`]: the main job: the scheduler and one image's steps.
//! - [`promote`]: tags moved without a pull: stack promotion, its transaction, split builds
//!   assembled in one index.
//! - [`wiki`]: Home.md, Stable_Tag.md, the build history and the manifest pages.
//! - [`report`]: what a build leaves: artifacts, logs, tables, JSON, GitHub output.
//! - [`exit`]: the error kinds the CLI maps to exit codes.
//! - [`sizes`]: byte sizes for people, below every module that shows one (BuildKit's
//!   progress included).
#[cfg(test)]
mod architecture;
pub mod bases;
pub mod buildkit;
pub mod changes;
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
pub mod signing;
pub mod sizes;
pub mod spec;
pub mod tag;
pub mod wiki;
