//! `stackctl build-image` and `stackctl buildkit info` (issue 4).
use super::GlobalArgs;
use crate::error::ExitStatus;

#[derive(Debug, clap::Args)]
pub struct BuildImageArgs {}

#[derive(Debug, clap::Subcommand)]
pub enum BuildkitCommand {
    /// Print the BuildKit version and workers.
    Info,
}

pub async fn run_build_image(_a: BuildImageArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`build-image` is not implemented yet")
}
pub async fn run_buildkit(_c: BuildkitCommand, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`buildkit` is not implemented yet")
}
