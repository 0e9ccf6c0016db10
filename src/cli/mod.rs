//! The command line: argument parsing and dispatch. Each command lives in its own
//! file and is a thin layer over the library.

use clap::{Parser, Subcommand};
use exit::{exit_status_of, ExitStatus};

/// `println!` for results on stdout: a reader that goes away early (`stackctl plan --json
/// | head`) ends the process quietly instead of a panic. SIGPIPE stays ignored, as Rust sets
/// it, so that a peer closing a socket is an error the network code handles. Defined here,
/// before the commands, so that only the CLI prints.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for results on stdout; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

pub mod build;
pub mod buildkit;
pub mod common;
pub mod diff;
pub mod exit;
pub mod imagetest;
pub mod interrupt;
pub mod manual;
pub mod merge;
pub mod output;
pub mod plan;
pub mod registry;

/// Build, test, publish and promote a stack of container images.
///
/// A stack is a base image and the images built FROM it, described by
/// `spec.yml`. stackctl decides from git which images must be rebuilt, builds
/// them through BuildKit's gRPC API, tests them in containers, pushes them and
/// promotes whole stacks by retagging in the registry, without pulling.
///
/// Logs go to stderr, results to stdout (`--json`: exactly one JSON document).
///
/// Environment (each command's `--help` says which it reads): BUILDKIT_HOST, DOCKER_HOST
/// (BuildKit and the engine tests run in), DOCKER_CONFIG, GITHUB_TOKEN with GITHUB_ACTOR
/// or GITHUB_USER (registry credentials; or --username with --password-stdin, never a
/// password on the command line), GITHUB_EVENT_NAME, GITHUB_EVENT_PATH, GITHUB_HEAD_REF,
/// GITHUB_REF_NAME (the plan), GITHUB_ACTIONS, GITHUB_STEP_SUMMARY, GITHUB_OUTPUT
/// (`build` on GitHub Actions), GITHUB_SHA, GITHUB_SERVER_URL, GITHUB_REPOSITORY (`tag`),
/// CI, RUST_LOG.
///
/// Exit codes: 0 done; 1 the work ran and something failed (a build, a test, a
/// missing tag); 2 bad input or an unreachable service; 3, 4 and 5 `tag` only (partly
/// promoted; another writer; superseded by a newer promotion); 130 interrupted (SIGINT or SIGTERM; a second one exits at once).
#[derive(Debug, Parser)]
#[command(
    name = "stackctl",
    version = env!("STACKCTL_LONG_VERSION"),
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// More log output on stderr (-v debug, -vv trace). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show which images of the stack rebuild, and why.
    Plan(plan::PlanArgs),
    /// Check that image references exist in their registry.
    Exists(registry::ExistsArgs),
    /// Give an image another tag without pulling it.
    Retag(registry::RetagArgs),
    /// Promote a whole stack to a stable tag (all or nothing).
    Tag(registry::TagArgs),
    /// Show an image's signatures and attestations, for each platform.
    Verify(registry::VerifyArgs),
    /// Compare two images: sizes, layers and packages per platform (no pull).
    Diff(diff::DiffArgs),
    /// Build one image of the stack through BuildKit.
    BuildImage(buildkit::BuildImageArgs),
    /// Talk to a BuildKit daemon.
    #[command(subcommand)]
    Buildkit(buildkit::BuildkitCommand),
    /// Run an image's tests in containers.
    Test(imagetest::TestArgs),
    /// Write an image's manifest page (layers and info commands).
    Manifest(imagetest::ManifestArgs),
    /// Run the whole stack: plan, build, test, push, manifest pages, artifacts.
    Build(build::BuildArgs),
    /// Put split builds' platforms together: one index per image, tagged (no pull).
    Merge(merge::MergeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(manual::CompletionsArgs),
    /// Write the manual pages (roff) of stackctl and every command.
    Man(manual::ManArgs),
}

/// Set up logging on stderr. Logs never go to stdout, which carries results (and JSON).
fn init_logging(g: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let default = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "stackctl=info,warn",
            1 => "stackctl=debug,info",
            _ => "trace",
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::report::RunLog::global().tee(std::io::stderr))
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitStatus> {
    let g = cli.global;
    match cli.command {
        Command::Plan(a) => plan::run(a, &g).await,
        Command::Exists(a) => registry::run_exists(a, &g).await,
        Command::Retag(a) => registry::run_retag(a, &g).await,
        Command::Verify(a) => registry::run_verify(a, &g).await,
        Command::Diff(a) => diff::run(a, &g).await,
        Command::Tag(a) => registry::run_tag(a, &g).await,
        Command::BuildImage(a) => buildkit::run_build_image(a, &g).await,
        Command::Buildkit(c) => buildkit::run_buildkit(c, &g).await,
        Command::Test(a) => imagetest::run_test(a, &g).await,
        Command::Manifest(a) => imagetest::run_manifest(a, &g).await,
        Command::Build(a) => build::run(a, &g).await,
        Command::Merge(a) => merge::run(a, &g).await,
        Command::Completions(a) => manual::run_completions(a, &g),
        Command::Man(a) => manual::run_man(a, &g),
    }
}

/// Write results to stdout (see `outln!`): a closed stdout ends the process with exit 0,
/// since whoever reads it has what it wanted.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(ExitStatus::Error.code().into());
    }
}

/// The process entry point: parse, run, print the error, choose the exit code.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.global);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(ExitStatus::Error.code());
        }
    };
    let status = match rt.block_on(async {
        interrupt::install();
        dispatch(cli).await
    }) {
        Ok(s) => s,
        Err(e) => {
            // One line per cause, outermost first.
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            exit_status_of(&e)
        }
    };
    // A command that stopped cleanly on an interrupt still says it was interrupted.
    let status = if interrupt::interrupted() {
        ExitStatus::Interrupted
    } else {
        status
    };
    std::process::ExitCode::from(status.code())
}
