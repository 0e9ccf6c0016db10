//! `stackctl build`: the main job (issue 6).
use super::GlobalArgs;
use crate::error::ExitStatus;

#[derive(Debug, clap::Args)]
pub struct BuildArgs {}

pub async fn run(_a: BuildArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`build` is not implemented yet")
}
