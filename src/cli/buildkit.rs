//! `stackctl build-image` and `stackctl buildkit info` (issue 4).
use super::common::SpecArgs;
use super::GlobalArgs;
use crate::buildkit::{self, Address, BuildError, BuildRequest, Progress, ProgressMode, TlsFiles};
use crate::credentials::{Credential, CredentialStore, Secret};
use crate::error::{ExitStatus, Failed};
use anyhow::{anyhow, bail, Context as _};
use indexmap::IndexMap;
use std::io::Read;
use std::path::PathBuf;

/// Where BuildKit is.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildkitArgs {
    /// BuildKit address: tcp://HOST:PORT or unix:///run/buildkit/buildkitd.sock (buildkitd),
    /// docker://, docker-unix:///var/run/docker.sock or docker-tcp://HOST:PORT (the BuildKit
    /// inside a Docker engine). Default: BUILDKIT_HOST, else the Docker engine named by
    /// DOCKER_HOST, else /var/run/docker.sock when it exists.
    #[arg(long, value_name = "ADDR")]
    pub buildkit: Option<String>,
    /// CA certificate of a tcp:// buildkitd: talk TLS to it [default roots: the system's].
    #[arg(long, value_name = "PEM")]
    pub buildkit_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a tcp:// buildkitd that asks for one (mutual TLS).
    #[arg(long, value_name = "PEM", requires = "buildkit_tls_key")]
    pub buildkit_tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "PEM", requires = "buildkit_tls_cert")]
    pub buildkit_tls_key: Option<PathBuf>,
}

impl BuildkitArgs {
    pub fn address(&self) -> anyhow::Result<Address> {
        let tls = TlsFiles {
            ca: self.buildkit_tls_ca.clone(),
            cert: self.buildkit_tls_cert.clone(),
            key: self.buildkit_tls_key.clone(),
        };
        match &self.buildkit {
            Some(a) => Address::parse(a, tls),
            None => Address::from_env(tls),
        }
    }
}

/// What `build-image --help` explains below the options.
const BUILD_IMAGE_HELP: &str = "\
The image's folder (images/KEY/) is the build context (.dockerignore honoured) and holds
its Dockerfile. The image carries inline cache metadata, so any pushed tag can serve as
--cache-from without being pulled. Through a Docker engine the image lands in the engine
(and --push pushes it with the engine's API); through buildkitd it stays in BuildKit
unless --push, which has BuildKit push it itself.

Prints the image reference (with @digest when pushed); the live progress and logs go to
stderr.

Environment: BUILDKIT_HOST and DOCKER_HOST (--buildkit), GITHUB_HEAD_REF and
GITHUB_REF_NAME (--tag), CI (--progress), DOCKER_CONFIG, GITHUB_TOKEN with GITHUB_ACTOR
or GITHUB_USER (registry credentials handed to BuildKit, see --username).

Exit codes: 0 built (and pushed); 1 the build failed (the message names the image, the
step and its last output lines; the log is still written); 2 bad input or no BuildKit.";

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
    /// else GITHUB_REF_NAME, else the repository's checked-out branch].
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,
    /// A build argument, added to the spec's (and to BASE_TAG=<tag> for a child image); a bare
    /// NAME takes its value from the environment, as docker's. Repeatable.
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,
    /// The Dockerfile stage to build.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// A target platform (e.g. linux/amd64). Repeatable. Default: BuildKit's own.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Vec<String>,
    /// An image whose inline cache may be reused (only its config is fetched). Repeatable.
    /// Always added: the image's own tag and its `<prefix>-stable` tag (skipped by BuildKit
    /// when missing).
    #[arg(long, value_name = "REF")]
    pub cache_from: Vec<String>,
    /// Run every step again.
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
    /// Registry user name for pulls and pushes (with --password-stdin). Otherwise Docker's
    /// config.json (DOCKER_CONFIG) is used, and for ghcr.io GITHUB_TOKEN with GITHUB_ACTOR or GITHUB_USER.
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password or token for --username from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum BuildkitCommand {
    /// Print the BuildKit version and workers (exit 2 when it cannot be reached).
    Info {
        #[command(flatten)]
        buildkit: BuildkitArgs,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// The branch a build is for: GITHUB_HEAD_REF (pull request), GITHUB_REF_NAME, else git's HEAD.
pub fn current_branch(repo: &std::path::Path) -> anyhow::Result<String> {
    for var in ["GITHUB_HEAD_REF", "GITHUB_REF_NAME"] {
        if let Ok(b) = std::env::var(var) {
            if !b.is_empty() {
                return Ok(b);
            }
        }
    }
    let r = git2::Repository::discover(repo)
        .with_context(|| format!("{} is not in a git repository; give --tag", repo.display()))?;
    let head = r
        .head()
        .with_context(|| format!("{}: git HEAD cannot be read; give --tag", repo.display()))?;
    if !head.is_branch() {
        bail!(
            "{}: HEAD is detached, no branch to make a tag from; give --tag",
            repo.display()
        );
    }
    Ok(head.shorthand().unwrap_or_default().to_string())
}

fn parse_build_arg(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => match std::env::var(s) {
            // `--build-arg NAME` takes the value from the environment, as docker does.
            Ok(v) if !s.is_empty() => Ok((s.to_string(), v)),
            _ => bail!("--build-arg {s:?}: expected K=V"),
        },
    }
}

pub async fn run_build_image(args: BuildImageArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let key = args.key;
    let a = *args.options;
    let spec = a.spec.load()?;
    let Some(image) = spec.image(&key) else {
        bail!(
            "no image {:?} in {} (images: {})",
            key,
            spec.path.display(),
            spec.images.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    };
    let tag = match &a.tag {
        Some(t) => {
            if !crate::tag::is_valid_tag(t) {
                bail!("--tag {t:?} is not a valid tag");
            }
            t.clone()
        }
        None => {
            let branch = current_branch(&a.spec.repo)?;
            crate::tag::branch_tag(&spec.tag_prefix, &branch)?
        }
    };
    let mut build_args: IndexMap<String, String> = image.build_args.clone();
    if image.depend_on.is_some() {
        build_args.insert("BASE_TAG".into(), tag.clone());
    }
    for s in &a.build_args {
        let (k, v) = parse_build_arg(s)?;
        build_args.insert(k, v);
    }
    let explicit = match &a.username {
        Some(user) => {
            let mut pw = String::new();
            std::io::stdin()
                .read_to_string(&mut pw)
                .context("reading the password from standard input")?;
            Some(Credential {
                username: user.clone(),
                secret: Secret::new(pw.trim_end_matches(['\n', '\r'])),
                source: "--password-stdin".into(),
            })
        }
        None => None,
    };
    let credentials = CredentialStore::from_env(explicit)?;
    let reference = format!("{}:{tag}", image.image_name);
    let mut cache_from = a.cache_from.clone();
    for r in [
        reference.clone(),
        format!(
            "{}:{}",
            image.image_name,
            crate::tag::quarter_stable_tag(&spec.tag_prefix)
        ),
    ] {
        if !cache_from.contains(&r) {
            cache_from.push(r);
        }
    }
    let req = BuildRequest {
        label: key.clone(),
        context: image.dir(&spec),
        dockerfile: None,
        tags: vec![reference],
        build_args,
        target: a.target.clone(),
        platforms: a.platform.clone(),
        cache_from,
        no_cache: a.no_cache,
        push: a.push,
        credentials,
        log: a.log.clone(),
    };
    let addr = a.buildkit.address()?;
    let client = buildkit::connect(&addr).await?;
    let mut progress = Progress::new(a.progress);
    match client.build(&req, &mut progress).await {
        Ok(o) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&o)?);
            } else {
                match &o.digest {
                    Some(d) => println!("{}@{d}", o.image),
                    None => println!("{}", o.image),
                }
                tracing::info!(
                    "built {} in {:.1}s ({} of {} steps cached)",
                    o.image,
                    o.seconds,
                    o.cached_steps,
                    o.total_steps
                );
            }
            Ok(ExitStatus::Success)
        }
        Err(BuildError::Failed(m)) => Err(anyhow::Error::new(Failed(m))),
        Err(BuildError::Unavailable(m)) => Err(anyhow!(m)),
    }
}

pub async fn run_buildkit(c: BuildkitCommand, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    match c {
        BuildkitCommand::Info { buildkit: b, json } => {
            let addr = b.address()?;
            let client = buildkit::connect(&addr).await?;
            let info = client.info().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(ExitStatus::Success);
            }
            println!("address: {}", info.address);
            println!(
                "buildkit: {}",
                info.version.as_deref().unwrap_or(
                    "version not reported (BuildKit older than v0.11, e.g. Docker 20.10's v0.8)"
                )
            );
            if let Some(v) = &info.engine_version {
                println!("docker engine: {v}");
            }
            for w in &info.workers {
                println!("worker {}: {}", w.id, w.platforms.join(", "));
            }
            Ok(ExitStatus::Success)
        }
    }
}
