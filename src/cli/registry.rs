//! `stackctl exists`, `retag` and `tag` (issue 3).
use super::GlobalArgs;
use crate::error::ExitStatus;

#[derive(Debug, clap::Args)]
pub struct ExistsArgs {}
#[derive(Debug, clap::Args)]
pub struct RetagArgs {}
#[derive(Debug, clap::Args)]
pub struct TagArgs {}

pub async fn run_exists(_a: ExistsArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`exists` is not implemented yet")
}
pub async fn run_retag(_a: RetagArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`retag` is not implemented yet")
}
pub async fn run_tag(_a: TagArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`tag` is not implemented yet")
}
