//! stackctl's integration tests as one binary: one module per area, all sharing `support`
//! (the real registry, buildkitd, engine and git repositories they run against). One binary
//! links the dependency stack once; `cargo test --test it <area>::` runs one area.

mod support;

mod attest;
mod base_check;
mod buildkit;
mod buildkit_runner;
mod changes;
mod convergence;
mod e2e_build;
mod example_stack;
mod imagetest;
mod inventory;
mod manifest;
mod plan;
mod plan_cli;
mod plan_registry;
mod refusals;
mod registry;
mod reproducible;
mod sign;
mod spec;
