//! `stackctl test` and `stackctl manifest`.
use super::common::{RegistryArgs, SpecArgs};
use super::exit::ExitStatus;
use super::GlobalArgs;
use crate::containers::suite::{self, Options, Suite, TestOutcome};
use crate::wiki::image_page::{self, PageOptions, RegistryAccess};
use std::path::PathBuf;
use std::time::Duration;

/// `stackctl test`: what `--help` explains below the options.
const TEST_HELP: &str = "\
Run an image's tests in containers of it (through the Docker engine).\n\
\n\
basic: `images/tests_common/` and `images/KEY/test/` are copied into a container of\n\
REF and `python3 -m pytest -x` runs there (the image's `tests.command` in the spec\n\
replaces it), given `-p no:cacheprovider --junitxml=FILE` and the folders.\n\
integration: REF runs as a service (its default command) and\n\
`images/KEY/integration_tests/` runs in a runner container (`tests.integration.runner_image`,\n\
default REF) on the same network, with SERVICE_NAME and SERVICE_URL set; the service\n\
is ready when `tests.integration.wait_log` appears in its output, else when\n\
`tests.integration.port` accepts connections (checked from this machine at the\n\
container's address, so with a remote engine set `wait_log`).\n\
\n\
Missing test folders are skipped with a notice; no tests at all is a pass (\"no tests\").\n\
Containers and networks are removed in every case (also on timeout, Ctrl-C and SIGTERM).\n\
The engine is DOCKER_HOST (default /var/run/docker.sock); an image the engine does\n\
not have is pulled from its registry by the engine.\n\
\n\
Exit codes: 0 all passed (or no tests), 1 a test failed, 2 the tests could not run\n\
(image missing, no python in the image, timeout) or bad input, 130 interrupted (SIGINT or\n\
SIGTERM; a second signal exits at once, without cleaning up).";

/// Run an image's tests in containers of it.
#[derive(Debug, clap::Args)]
#[command(after_long_help = TEST_HELP)]
pub struct TestArgs {
    /// The image's key in the spec (its folder `images/KEY/`).
    pub key: String,
    /// The image to test, e.g. `ghcr.io/org/img:2026.3-main`.
    #[arg(long = "ref", value_name = "REF")]
    pub image_ref: String,
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Which suite to run.
    #[arg(long, value_enum, default_value_t = Suite::Basic)]
    pub suite: Suite,
    /// Write the whole test output (pytest's, and the service's) to FILE.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Copy the JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Give up after this long (image pull included), e.g. `90s`, `30m`, `1h`.
    #[arg(long, value_name = "DUR", default_value = "30m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Print the result as one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// Where the basic tests run: `buildkit` (on the BuildKit node at --buildkit, which pulls
    /// REF itself; no Docker engine) or `engine` (containers of the engine at DOCKER_HOST).
    /// Default: the image's `tests.runner` in the spec, else `buildkit` when --buildkit or
    /// BUILDKIT_HOST names a standalone buildkitd, else `engine`. Integration tests always run
    /// in the engine.
    #[arg(long, value_enum, value_name = "RUNNER")]
    pub runner: Option<crate::spec::RunnerKind>,
    /// The platform to test (`linux/arm64`) with the BuildKit runner [default: the node's].
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub buildkit: super::buildkit::BuildkitArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `stackctl manifest`: what `--help` explains below the options.
const MANIFEST_HELP: &str = "\
Write an image's manifest page: its layers (from the registry, nothing pulled) and\n\
the output of its info commands (`info_cmds`, run in one container of REF).\n\
\n\
The page is `DIR/<page>.md` where `<page>` is REF with `/` and `:` written `-` and the\n\
registry host's dots written `-` (`ghcr-io-org-img-2026.3-main.md`).\n\
Registry credentials: --username/--password-stdin, else Docker's config.json\n\
(DOCKER_CONFIG), else GITHUB_TOKEN with GITHUB_ACTOR or GITHUB_USER for ghcr.io.\n\
The info commands run on the buildkitd given by --buildkit (or BUILDKIT_HOST), each
platform's on its platform, else through the engine at DOCKER_HOST (see --runner);
a failing one puts its error output and exit code in its section, not in the exit code.
Prints the paths of the pages written.

Exit codes: 0 page written; 2 bad input, REF missing from its registry, or a registry or
engine that cannot be reached (or --timeout passed).";

/// Write an image's manifest page.
#[derive(Debug, clap::Args)]
#[command(after_long_help = MANIFEST_HELP)]
pub struct ManifestArgs {
    /// The image's key in the spec.
    pub key: String,
    /// The image to describe, e.g. `ghcr.io/org/img:2026.3-main`.
    #[arg(long = "ref", value_name = "REF")]
    pub image_ref: String,
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Folder for the page.
    #[arg(long, value_name = "DIR", default_value = "manifests")]
    pub out: PathBuf,
    /// Also write the page into this wiki checkout.
    #[arg(long, value_name = "DIR")]
    pub wiki: Option<PathBuf>,
    /// Give up on the info commands after this long (container start included).
    #[arg(long, value_name = "DUR", default_value = "30m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Where the info commands run: `buildkit` (on the BuildKit node at --buildkit, which
    /// pulls REF itself; no Docker engine) or `engine` (a container of the engine at
    /// DOCKER_HOST). Default: the image's `tests.runner` in the spec, else `buildkit` when
    /// --buildkit or BUILDKIT_HOST names a standalone buildkitd, else `engine`.
    #[arg(long, value_enum, value_name = "RUNNER")]
    pub runner: Option<crate::spec::RunnerKind>,
    #[command(flatten)]
    pub buildkit: super::buildkit::BuildkitArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// The BuildKit node the basic suite runs on, or None for the engine (see `--runner`).
async fn test_node(
    a: &TestArgs,
    spec: &crate::spec::Spec,
) -> anyhow::Result<Option<crate::containers::in_buildkit::Node>> {
    if a.suite == Suite::Integration {
        return Ok(None);
    }
    chosen_node(spec, &a.key, a.runner, &a.buildkit, &a.registry).await
}

/// The BuildKit node that runs things in image `key`, or None for the engine: `--runner`,
/// else the image's `tests.runner`, else BuildKit when a standalone buildkitd is named.
async fn chosen_node(
    spec: &crate::spec::Spec,
    key: &str,
    runner: Option<crate::spec::RunnerKind>,
    buildkit: &super::buildkit::BuildkitArgs,
    registry: &RegistryArgs,
) -> anyhow::Result<Option<crate::containers::in_buildkit::Node>> {
    use crate::spec::RunnerKind;
    let chosen = runner.or_else(|| spec.image(key).and_then(|i| i.tests.runner));
    let named = !buildkit.buildkit.is_empty()
        || std::env::var("BUILDKIT_HOST").is_ok_and(|h| !h.trim().is_empty());
    if chosen == Some(RunnerKind::Engine) || (chosen.is_none() && !named) {
        return Ok(None);
    }
    let client = buildkit.first().await?;
    if client.kind().is_engine() {
        if chosen == Some(RunnerKind::Buildkit) {
            anyhow::bail!(
                "--runner buildkit needs a standalone buildkitd, and BuildKit at {} is a Docker engine's",
                client.address()
            );
        }
        return Ok(None);
    }
    Ok(Some(crate::containers::in_buildkit::Node::new(
        client,
        registry.credentials()?,
    )))
}

pub async fn run_test(a: TestArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let spec = a.spec.load()?;
    let opts = Options {
        timeout: a.timeout,
        log_file: a.log.clone(),
        junit_file: a.junit.clone(),
        junit_suite_name: None,
        cancel: super::common::cancel_on_ctrl_c(),
    };
    let res = match test_node(&a, &spec).await? {
        Some(node) => {
            node.basic_suite(&spec, &a.key, &a.image_ref, a.platform.as_deref(), &opts)
                .await?
        }
        None => {
            if let Ok(r) = crate::registry::ImageRef::parse(&a.image_ref) {
                crate::containers::runner::prepull(&r, &a.registry.credentials()?).await;
            }
            suite::run_suite(&spec, &a.key, &a.image_ref, a.suite, &opts).await?
        }
    };
    if a.json {
        super::output::print_json(&res)?;
    } else {
        let verdict = match res.outcome {
            TestOutcome::Passed => "passed",
            TestOutcome::NoTests => "no tests",
            TestOutcome::Failed => "FAILED",
            TestOutcome::CouldNotRun => "COULD NOT RUN",
        };
        outln!(
            "{} tests of {}: {verdict} ({}) in {:.1}s",
            res.suite,
            res.image,
            res.counts.summary(),
            res.seconds
        );
        for n in &res.notices {
            outln!("  note: {n}");
        }
        for f in &res.counts.failures {
            outln!("  failed: {}: {}", f.name, f.message);
        }
        if res.outcome == TestOutcome::CouldNotRun {
            outln!("  {}", res.message);
        }
        if let Some(log) = &a.log {
            outln!("  log: {}", log.display());
        }
    }
    Ok(super::exit::of_suite(&res))
}

pub async fn run_manifest(a: ManifestArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let spec = a.spec.load()?;
    let credentials = a.registry.credentials()?;
    use crate::containers::runner::Runner;
    let runner = match chosen_node(&spec, &a.key, a.runner, &a.buildkit, &a.registry).await? {
        Some(node) => Runner::BuildKit(node),
        None => Runner::Engine(credentials.clone()),
    };
    // Packages are listed where nothing is pulled to this machine: on a buildkitd.
    let inventory = matches!(runner, Runner::BuildKit(_));
    let opts = PageOptions {
        out_dir: a.out.clone(),
        wiki_dir: a.wiki.clone(),
        runner,
        inventory,
        registry: RegistryAccess {
            credentials,
            insecure: a.registry.insecure_registry.clone(),
        },
        timeout: a.timeout,
        cancel: super::common::cancel_on_ctrl_c(),
        content_tags: vec![],
    };
    let written = image_page::write_page(&spec, &a.key, &a.image_ref, &opts).await?;
    for p in written {
        outln!("{}", p.display());
    }
    Ok(ExitStatus::Success)
}
