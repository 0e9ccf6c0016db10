//! `stackctl diff`: a thin layer over [`crate::changes`].

use super::common::RegistryApiArgs;
use super::exit::ExitStatus;
use super::GlobalArgs;
use crate::changes::{self, render};
use crate::containers::runner::Runner;
use crate::registry::ImageRef;
use anyhow::Context as _;

/// `stackctl diff`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Compares two images from their registry alone, platform by platform: compressed sizes (the \
sum of each platform manifest's layers), the layers they share and the new ones, and the \
packages added, removed, upgraded and downgraded per manager (apt, pip, conda, r).

Packages come from the inventory `stackctl build` attaches to each platform manifest (an OCI \
artifact listed under the referrers tag `sha256-<hex>`), else from an SBOM attestation; \
no layer is read. With --buildkit, a platform without either gets its inventory computed on \
that buildkitd (which pulls the image); otherwise its packages are reported unknown.

Exit codes: 0 compared; 2 bad input, an image missing, or the registry cannot be read.")]
pub struct DiffArgs {
    /// The older image, e.g. ghcr.io/owner/notebook:2026.3-stable.
    #[arg(value_name = "REF_A")]
    pub a: String,
    /// The newer image, e.g. ghcr.io/owner/notebook:2026.4-main.
    #[arg(value_name = "REF_B")]
    pub b: String,
    /// Print one JSON document: {old, new, platforms: [{platform, size, packages, ...}]}.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print Markdown (the manifest page's "Changes since" section).
    #[arg(long)]
    pub markdown: bool,
    /// Compute missing inventories on this buildkitd (tcp://HOST:PORT, unix:///PATH).
    #[arg(long, value_name = "ADDR")]
    pub buildkit: Option<String>,
    #[command(flatten)]
    pub tls: BuildkitTls,
    /// Bound on each inventory computed with --buildkit.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub registry: RegistryApiArgs,
}

/// The TLS files of --buildkit.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildkitTls {
    /// CA certificate of a tcp:// buildkitd.
    #[arg(long, value_name = "PEM")]
    pub buildkit_tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM), for mutual TLS.
    #[arg(long, value_name = "PEM", requires = "buildkit_tls_key")]
    pub buildkit_tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "PEM", requires = "buildkit_tls_cert")]
    pub buildkit_tls_key: Option<std::path::PathBuf>,
}

pub async fn run(a: DiffArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let registry = a.registry.with_endpoints();
    let client = registry.client()?;
    let (ra, rb) = (ImageRef::parse(&a.a)?, ImageRef::parse(&a.b)?);
    let read = |r: ImageRef| {
        let client = &client;
        async move {
            changes::read::read_image(client, &r)
                .await?
                .with_context(|| format!("{r}: not found in its registry"))
        }
    };
    let (mut old, mut new) = tokio::try_join!(read(ra.clone()), read(rb.clone()))?;
    if let Some(addr) = &a.buildkit {
        let tls = crate::buildkit::TlsFiles {
            ca: a.tls.buildkit_tls_ca.clone(),
            cert: a.tls.buildkit_tls_cert.clone(),
            key: a.tls.buildkit_tls_key.clone(),
        };
        let address = crate::buildkit::Address::parse(addr, tls)
            .with_context(|| format!("--buildkit {addr}"))?;
        let node = crate::buildkit::connect(&address).await?;
        if node.kind().is_engine() {
            anyhow::bail!("--buildkit {addr}: a Docker engine's BuildKit cannot run the inventory; give a buildkitd");
        }
        let runner = Runner::BuildKit(crate::containers::in_buildkit::Node::new(
            node,
            registry.credentials()?,
        ));
        let cancel = tokio_util::sync::CancellationToken::new();
        for (r, side) in [(&ra, &mut old), (&rb, &mut new)] {
            for p in side.platforms.iter_mut().filter(|p| p.inventory.is_none()) {
                let at = r.with_digest(&p.digest);
                match changes::collect::inventory(
                    &runner,
                    &at,
                    &p.platform,
                    &[],
                    a.timeout,
                    &cancel,
                )
                .await
                {
                    Ok(inv) => {
                        p.inventory = Some(inv);
                        p.inventory_source = "computed in BuildKit".into();
                    }
                    Err(e) => p.inventory_source = e,
                }
            }
        }
    }
    let c = changes::compare(Some(&old), &new, None);
    if a.json {
        super::output::print_json(&c)?;
    } else if a.markdown {
        outln!("{}", render::markdown(&c, 2, usize::MAX).trim_end());
    } else {
        outln!("{}", render::text(&c).trim_end());
    }
    Ok(ExitStatus::Success)
}
