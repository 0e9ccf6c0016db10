//! `stackctl plan` (issue 2).
use super::GlobalArgs;
use crate::error::ExitStatus;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: super::common::SpecArgs,
}

pub async fn run(args: PlanArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let spec = args.spec.load()?;
    for img in spec.topological() {
        println!("{} {}", img.key, img.image_name);
    }
    anyhow::bail!("`plan` is not implemented yet")
}
