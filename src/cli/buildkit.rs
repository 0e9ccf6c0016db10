//! `stackctl build-image` and `stackctl buildkit info`.
use super::common::SpecArgs;
use super::exit::ExitStatus;
use super::GlobalArgs;
use crate::buildkit::{self, Address, BuildError, Progress, ProgressMode, TlsFiles};
use crate::exit::Failed;
use crate::pipeline::one_image::{self, OverrideArgs};
use crate::pipeline::request::{build_image, OneImage};
use crate::spec::platform::Platform;
use anyhow::{anyhow, bail, Context as _};
use std::path::PathBuf;

/// Where BuildKit is: one node, or a pool of buildkitd nodes (`stackctl build` spreads a
/// stack's images over them).
#[derive(Debug, Clone, clap::Args)]
pub struct BuildkitArgs {
    /// BuildKit address: tcp://HOST:PORT or unix:///run/buildkit/buildkitd.sock (buildkitd),
    /// docker://, docker-unix:///var/run/docker.sock or docker-tcp://HOST:PORT (the BuildKit
    /// inside a Docker engine). Repeatable (or a comma-separated list): a pool of nodes; a node
    /// that does not answer at the start is left out with a warning. Default: BUILDKIT_HOST
    /// (also a comma-separated list), else the Docker engine named by DOCKER_HOST, else
    /// /var/run/docker.sock when it exists.
    #[arg(long, value_name = "ADDR")]
    pub buildkit: Vec<String>,
    /// CA certificate of a tcp:// buildkitd: talk TLS to it [default roots: the system's].
    #[arg(long, value_name = "PEM")]
    pub buildkit_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a tcp:// buildkitd that asks for one (mutual TLS).
    #[arg(long, value_name = "PEM", requires = "buildkit_tls_key")]
    pub buildkit_tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "PEM", requires = "buildkit_tls_cert")]
    pub buildkit_tls_key: Option<PathBuf>,
    /// TLS files per node: for tcp://HOST:PORT, the folder DIR/HOST:PORT (else DIR/HOST) holds
    /// ca.pem and, for mutual TLS, cert.pem and key.pem. A node without a folder uses the
    /// --buildkit-tls-ca/-cert/-key files.
    #[arg(long, value_name = "DIR")]
    pub buildkit_tls_dir: Option<PathBuf>,
}

impl BuildkitArgs {
    fn shared_tls(&self) -> TlsFiles {
        TlsFiles {
            ca: self.buildkit_tls_ca.clone(),
            cert: self.buildkit_tls_cert.clone(),
            key: self.buildkit_tls_key.clone(),
        }
    }

    /// Every node's address: --buildkit, else BUILDKIT_HOST, else the local Docker engine.
    pub fn addresses(&self) -> anyhow::Result<Vec<Address>> {
        if let Some(empty) = self
            .buildkit
            .iter()
            .find(|a| buildkit::pool::split_list(a).is_empty())
        {
            // Not read as "not given": that would build on the engine unasked.
            bail!("--buildkit {empty:?}: the address is empty (give tcp://HOST:PORT, unix:///PATH or docker://)");
        }
        let mut list: Vec<String> = self
            .buildkit
            .iter()
            .flat_map(|a| buildkit::pool::split_list(a))
            .collect();
        let from_env = list.is_empty();
        if from_env {
            list = std::env::var("BUILDKIT_HOST")
                .map(|h| buildkit::pool::split_list(&h))
                .unwrap_or_default();
        }
        if list.is_empty() {
            if self.buildkit_tls_dir.is_some() {
                bail!("--buildkit-tls-dir only applies to tcp:// BuildKit addresses");
            }
            return Ok(vec![Address::from_env(self.shared_tls())?]);
        }
        let addrs =
            buildkit::pool::addresses(&list, &self.shared_tls(), self.buildkit_tls_dir.as_deref());
        if from_env {
            addrs.context("in BUILDKIT_HOST")
        } else {
            addrs
        }
    }

    /// Connect to every node; those that do not answer are left out (see [`buildkit::pool`]).
    pub async fn pool(&self) -> anyhow::Result<buildkit::Pool> {
        buildkit::pool::connect_pool(&self.addresses()?).await
    }

    /// One node for a command that builds one thing: the first of the pool that answers.
    pub async fn first(&self) -> anyhow::Result<buildkit::Client> {
        let mut pool = self.pool().await?;
        Ok(pool.nodes.remove(0))
    }
}

/// What `build-image --help` explains below the options.
const BUILD_IMAGE_HELP: &str = "\
The image's folder (images/KEY/) is the build context (.dockerignore honoured) and holds
its Dockerfile. The image carries inline cache metadata, so any pushed tag can serve as
--cache-from without being pulled; --cache-to type=registry,ref=REF,mode=max (or the
spec's `cache:` section) also exports a registry cache (buildkitd only). Through a Docker engine the image lands in the engine
(and --push pushes it with the engine's API); through buildkitd it stays in BuildKit
unless --push, which has BuildKit push it itself.

Prints the image reference (with @digest when pushed); the live progress and logs go to
stderr.

Environment: BUILDKIT_HOST and DOCKER_HOST (--buildkit), GITHUB_HEAD_REF and
GITHUB_REF_NAME (--tag), CI (--progress), DOCKER_CONFIG, GITHUB_TOKEN with GITHUB_ACTOR
or GITHUB_USER (registry credentials handed to BuildKit, see --username).

Exit codes: 0 built (and pushed); 1 the build failed (the message names the image, the
step and its last output lines; the log is still written); 2 bad input, no BuildKit, or
a push the registry refused access to (wrong or missing credentials).";

/// Build one image of the stack through BuildKit's gRPC API (`stackctl build-image`).
#[derive(Debug, clap::Args)]
#[command(after_help = BUILD_IMAGE_HELP)]
pub struct BuildImageArgs {
    /// The image's key in the spec (its folder under images/).
    #[arg(value_name = "KEY")]
    pub key: String,
    #[command(flatten)]
    pub options: Box<BuildImageOptions>,
}

/// The options of `build-image` (boxed: they are many).
#[derive(Debug, clap::Args)]
pub struct BuildImageOptions {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub buildkit: BuildkitArgs,
    /// The tag to give the image [default: `<prefix>-<branch>`, the branch from GITHUB_HEAD_REF,
    /// else GITHUB_REF_NAME, else the repository's checked-out branch; with `tag.suffix:
    /// commit` in the spec, `<prefix>-<first 7 hex digits of HEAD>`].
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// A build argument, added to the spec's (and to BASE_TAG=<tag> for a child image, unless
    /// the spec sets BASE_TAG); a bare NAME takes its value from the environment, as docker's.
    /// Repeatable.
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,
    /// The Dockerfile stage to build.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// A target platform (e.g. linux/amd64). Repeatable. Default: the image's `platforms:` in
    /// the spec, else BuildKit's own.
    #[arg(long, value_name = "OS/ARCH", value_parser = |s: &str| s.parse::<Platform>())]
    pub platform: Vec<Platform>,
    /// A cache source: `type=registry,ref=REF` (buildx syntax) or a bare REF, a registry
    /// cache or an image with inline cache (only its config is fetched). Repeatable, read in
    /// order. Always added after them: the spec's registry caches (this branch's, the
    /// quarter's stable one, main's; through a buildkitd only) and the image's own tag and
    /// `<prefix>-stable` tag when they exist.
    #[arg(long, value_name = "SRC")]
    pub cache_from: Vec<String>,
    /// Where the build's cache goes, in buildx syntax: `type=registry,ref=REF[,mode=max|min]`
    /// or `type=inline` [default: the spec's `cache:`, else inline]. Inline cache is added
    /// unless the image is reproducible (its metadata holds build times). A failed registry export is a warning. The engine's BuildKit (v0.8) cannot
    /// export a registry cache: stackctl says so and uses inline.
    #[arg(long, value_name = "DEST")]
    pub cache_to: Option<String>,
    /// Run every step again, with no cache import at all (`--cache-from` is dropped too).
    #[arg(long)]
    pub no_cache: bool,
    /// Push the image to its registry and print its digest.
    #[arg(long)]
    pub push: bool,
    /// How progress is shown on stderr: auto (a live view on a terminal, plain lines when
    /// CI=true or not a terminal), tty, plain, json (one object a line), quiet.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Write the build log here (every step with start, end, cached, output, and the time each
    /// step took); written on failure too.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Print the result as one JSON document.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: super::common::RegistryArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum BuildkitCommand {
    /// Print the BuildKit version and workers, of each node of a pool (exit 2 when no node
    /// can be reached).
    Info {
        #[command(flatten)]
        buildkit: BuildkitArgs,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run_build_image(args: BuildImageArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let key = args.key;
    let a = *args.options;
    let spec = a.spec.load()?;
    let image = one_image::image(&spec, &key)?;
    let tag = one_image::image_tag(&spec, &a.spec.repo, a.tag.as_deref())?;
    let overrides = one_image::overrides(&OverrideArgs {
        build_args: a.build_args.clone(),
        cache_from: a.cache_from.clone(),
        cache_to: a.cache_to.clone(),
        target: a.target.clone(),
        platforms: a.platform.clone(),
        no_cache: a.no_cache,
    })?;
    let credentials = a.registry.credentials()?;
    let registry = a
        .registry
        .client_with(credentials.clone())
        .inspect_err(|e| tracing::warn!("no default cache sources: {e:#}"))
        .ok();
    let commit = one_image::head_commit(&a.spec.repo);
    let one = OneImage {
        commit: commit.as_deref(),
        spec: &spec,
        image,
        tag: &tag,
        push: a.push,
        overrides: &overrides,
        credentials,
        registry: registry.as_ref(),
        log: a.log.clone(),
    };
    let client = a.buildkit.first().await?;
    let mut progress = Progress::new(a.progress);
    match build_image(&one, &client, &mut progress).await {
        Ok(o) => {
            if a.json {
                super::output::print_json(&o)?;
            } else {
                match &o.digest {
                    Some(d) => outln!("{}@{d}", o.image),
                    None => outln!("{}", o.image),
                }
                tracing::info!(
                    "built {} in {:.1}s ({})",
                    o.image,
                    o.seconds,
                    o.cache_summary()
                );
            }
            Ok(ExitStatus::Success)
        }
        Err(BuildError::Failed(m)) => Err(anyhow::Error::new(Failed(m))),
        Err(BuildError::Unavailable(m) | BuildError::NodeLost(m)) => Err(anyhow!(m)),
    }
}

pub async fn run_buildkit(c: BuildkitCommand, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    match c {
        BuildkitCommand::Info { buildkit: b, json } => {
            let pool = b.pool().await?;
            let mut infos = vec![];
            for client in &pool.nodes {
                infos.push(client.info().await?);
            }
            if json {
                // One node: its document, as before pools; several: a list.
                let doc = match infos.as_slice() {
                    [one] => serde_json::to_value(one)?,
                    _ => serde_json::to_value(&infos)?,
                };
                super::output::print_json(&doc)?;
                return Ok(ExitStatus::Success);
            }
            for (i, info) in infos.iter().enumerate() {
                if i > 0 {
                    outln!("");
                }
                outln!("address: {}", info.address);
                outln!(
                    "buildkit: {}",
                    info.version.as_deref().unwrap_or(
                        "version not reported (BuildKit older than v0.11, e.g. Docker 20.10's v0.8)"
                    )
                );
                if let Some(v) = &info.engine_version {
                    outln!("docker engine: {v}");
                }
                for w in &info.workers {
                    outln!("worker {}: {}", w.id, w.platforms.join(", "));
                }
            }
            Ok(ExitStatus::Success)
        }
    }
}
