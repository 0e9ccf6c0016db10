//! `stackctl test` and `stackctl manifest` (issue 5).
use super::GlobalArgs;
use crate::error::ExitStatus;

#[derive(Debug, clap::Args)]
pub struct TestArgs {}
#[derive(Debug, clap::Args)]
pub struct ManifestArgs {}

pub async fn run_test(_a: TestArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`test` is not implemented yet")
}
pub async fn run_manifest(_a: ManifestArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    anyhow::bail!("`manifest` is not implemented yet")
}
