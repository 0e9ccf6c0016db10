//! The stack's spec (`spec.yml`) and its change rules, loaded and validated.
//!
//! Two layouts are understood: the spec at the repository root with image
//! folders under `images/`, and the old layout with `images/spec.yml` and
//! `images/change_ignore.json`. See `docs/spec.md` for the reference.

pub mod attest;
pub mod cache;
pub mod compare;
mod lines;
mod load;
mod model;
pub mod platform;
mod repository;
pub mod tag_template;
mod validate;

pub use cache::CacheSpec;
pub use load::{default_spec_path, SpecError};
pub use model::{
    ChangeRules, ImageSpec, InfoCmd, IntegrationSpec, RunnerKind, Spec, StackTestSpec, TestSpec,
};
pub use tag_template::{TagTemplate, Template};
