//! `stackctl plan`: a thin layer over [`crate::plan`].
use super::exit::ExitStatus;
use super::output::{self, Format};
use super::GlobalArgs;
use crate::plan::github_event::{GithubEnv, GithubEvent};
use crate::plan::{self, PlanRequest};

/// What decides a rebuild, shown after the options in `--help`.
const RULES: &str = "\
How images are chosen:
  A changed file under images/<key>/ rebuilds image <key> and every image built FROM it.
  Entries of the change rules (change_ignore.json beside the spec, or `changes:` in it):
  BuildAll entries rebuild every image, ChangeIgnore entries nothing. Files outside
  images/ rebuild nothing. Every image rebuilds on branch `main`, with \"full rebuild\"
  in the head commit's message (any case), on a root commit (or a shallow clone without
  the parent), on a branch's first push, and with --full-rebuild. Unless --no-registry,
  an image whose tag is missing from its registry rebuilds too, with every image below it;
  and unless --no-base-check, so does an image whose recorded external base (a FROM or
  COPY --from image outside the stack) now names another digest: one HEAD per base.

GitHub Actions (explicit options win):
  GITHUB_EVENT_NAME   the event (pull_request, pull_request_target: pull request;
                      schedule: scheduled)
  GITHUB_HEAD_REF     the branch of a pull request
  GITHUB_REF_NAME     the branch of a push
  GITHUB_EVENT_PATH   the event payload: `before` (push) or `pull_request.base.sha`

Exit codes: 0 plan printed; 2 bad input (spec, revision, repository, payload) or a\n  registry that cannot be asked (auth, network; use --no-registry to skip the check).";

/// `stackctl plan`: show which images rebuild, and why.
#[derive(Debug, clap::Args)]
#[command(after_help = RULES)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: super::common::SpecArgs,
    #[command(flatten)]
    pub select: PlanSelection,
    /// Print the plan as one JSON document on stdout: tag_prefix, branch, tag, event,
    /// base, head, full_rebuild, changed_files, registry_check, base_check, warnings, and
    /// images (parents first) with key, image, ref, parent, rebuild, reasons, build_args,
    /// moved_bases. Same as --format json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// How the plan is printed: text (the tree, indented), json (as --json) or mermaid
    /// (the tree as a Mermaid flowchart: rebuilt images in amber with their reasons,
    /// kept ones in grey; paste it into a ```mermaid block on GitHub).
    #[arg(long, value_name = "FORMAT", default_value = "text",
          value_parser = output::formats(&[Format::Text, Format::Json, Format::Mermaid]))]
    pub format: Format,
    #[command(flatten)]
    pub registry: super::common::RegistryArgs,
}

/// The plan's image tree for [`crate::report::mermaid::flowchart`]: REBUILD with the reasons, or keep.
pub fn plan_tree(plan: &plan::Plan) -> Vec<crate::report::mermaid::TreeNode> {
    use crate::report::mermaid::{NodeState, TreeNode};
    plan.images
        .iter()
        .map(|i| TreeNode {
            key: i.key.clone(),
            parent: i.parent.clone(),
            state: if i.rebuild {
                NodeState::Rebuild
            } else {
                NodeState::Keep
            },
            notes: if i.rebuild {
                std::iter::once("REBUILD".to_string())
                    .chain(i.reasons.iter().cloned())
                    .collect()
            } else {
                vec!["keep".to_string()]
            },
        })
        .collect()
}

/// What decides the rebuild set: shared by `plan` and `build`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanSelection {
    /// The commit to build [default: HEAD].
    #[arg(long, value_name = "REV")]
    pub head: Option<String>,
    /// The commit to compare with. Default: from the payload at GITHUB_EVENT_PATH
    /// (`before` of a push, where all zeros means the branch's first push and every
    /// image rebuilds; `pull_request.base.sha` of a pull request), else the first
    /// parent of --head.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// The branch the images are tagged for (`<prefix>-<branch>`). Default:
    /// GITHUB_HEAD_REF for a pull request, else GITHUB_REF_NAME, else the checked-out
    /// branch (a detached HEAD then is an error).
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// What triggered the build [default: GITHUB_EVENT_NAME (pull_request and
    /// pull_request_target are pull requests, schedule is scheduled, anything else a
    /// push), else push].
    /// push: the files changed between --base and --head; pull_request: every file the
    /// pull request changes (from the merge-base of --base and --head to --head);
    /// schedule: no file counts as changed and the branch and commit-message rules rebuild
    /// nothing, so only missing tags and moved bases rebuild.
    #[arg(long, value_enum, value_name = "EVENT")]
    pub event: Option<GithubEvent>,
    /// Rebuild every image.
    #[arg(long)]
    pub full_rebuild: bool,
    /// Do not ask the registry which tags exist (images whose tag is missing are then
    /// not rebuilt for that reason).
    #[arg(long)]
    pub no_registry: bool,
    /// Do not look up the external bases the images recorded (images whose base moved are
    /// then not rebuilt for that reason). --no-registry skips this check too.
    #[arg(long)]
    pub no_base_check: bool,
    /// The deadline of the whole registry check (every image's tag, retries included):
    /// a registry that has not answered by then ends the command (exit 2), naming it.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub registry_timeout: std::time::Duration,
}

impl PlanSelection {
    /// The plan of `spec` in the repository at `repo`, without the registry check.
    pub fn plan(
        &self,
        spec: &crate::spec::Spec,
        repo: &std::path::Path,
    ) -> anyhow::Result<plan::Plan> {
        let git = crate::plan::git::open(repo)?;
        let request = PlanRequest {
            head: self.head.clone(),
            base: self.base.clone(),
            branch: self.branch.clone(),
            event: self.event,
            full_rebuild: self.full_rebuild,
        };
        let opts = plan::resolve_options(&request, &GithubEnv::from_process())?;
        tracing::debug!(?opts, "plan options");
        Ok(plan::make_plan(spec, &git, &opts)?)
    }
}

pub async fn run(args: PlanArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let spec = args.spec.load()?;
    let mut plan = args.select.plan(&spec, &args.spec.repo)?;
    if !args.select.no_registry {
        let client = args.registry.client()?;
        plan.check_registry(&client, args.select.registry_timeout)
            .await?;
        if !args.select.no_base_check {
            plan.check_bases(&client, args.select.registry_timeout)
                .await;
            for w in &plan.warnings {
                tracing::warn!("{w}");
            }
        }
    }
    match Format::chosen(args.json, args.format) {
        Format::Json => output::print_json(&plan)?,
        Format::Text | Format::Markdown => outln!("{plan}"),
        Format::Mermaid => out!("{}", crate::report::mermaid::flowchart(&plan_tree(&plan))),
    }
    Ok(ExitStatus::Success)
}
