//! `stackctl exists`, `retag` and `tag`: thin layers over [`crate::registry`]
//! and [`crate::promote::stack`].
use super::common::{RegistryApiArgs, SpecArgs};
use super::exit::{self, ExitStatus, WithStatus};
use super::GlobalArgs;
use crate::exit::Failed;
use crate::promote::stack::{self, Kind, Promotion};
use crate::registry::{exists_within, ImageRef, RegistryClient};
use std::path::PathBuf;

/// `stackctl exists`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "One HEAD request per reference, all at once. Prints `REF DIGEST`, \
`REF missing` or `REF error` (the error on stderr) per reference.\n\n\
Registry credentials: --username/--password-stdin, else Docker's config.json (DOCKER_CONFIG, \
else ~/.docker), else GITHUB_TOKEN with GITHUB_ACTOR or GITHUB_USER for ghcr.io.\n\n\
Exit codes: 0 all exist, 1 any is missing, 2 a check failed (auth, network, bad reference, \
--timeout passed)."
)]
pub struct ExistsArgs {
    /// Image references, e.g. ghcr.io/owner/image:2026.3-main.
    #[arg(value_name = "REF", required = true)]
    pub refs: Vec<String>,
    /// Print one JSON document: [{reference, exists, digest, media_type, error}].
    #[arg(long)]
    pub json: bool,
    /// The deadline of all the checks together, retries included: past it, exit 2 with
    /// one line naming the registry that did not answer.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub registry: RegistryApiArgs,
}

/// `stackctl verify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reads the image's manifest (each platform's, for an index), its \
attestation manifests and cosign's `sha256-<hex>.sig` signature tags; nothing is pulled. \
Exit 0: everything asked for is there; 1: a signature or attestation asked for is missing \
or invalid (each named on stderr); 2: bad input or the registry cannot be read."
)]
pub struct VerifyArgs {
    /// The image, e.g. ghcr.io/owner/image:2026.3-stable.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Check the signatures against this public key (cosign.pub, PEM ECDSA P-256): the
    /// image's own digest and each platform's must be signed by it.
    #[arg(long, value_name = "PUBLIC_KEY")]
    pub key: Option<PathBuf>,
    /// Attestations every platform must have (provenance, sbom; a comma list).
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub require_attestation: Vec<crate::promote::evidence::Required>,
    /// Print one JSON document: {reference, digest, signature, platforms: [{platform,
    /// digest, signature, attestations}], lacking}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registry: RegistryApiArgs,
}

pub async fn run_verify(a: VerifyArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let registry = a.registry.with_endpoints();
    let r = ImageRef::parse(&a.reference)?;
    let key = a
        .key
        .as_deref()
        .map(crate::signing::Verifier::load)
        .transpose()?;
    let client = registry.client()?;
    let ev = crate::promote::evidence::inspect(&client, &r, key.as_ref()).await?;
    let lacking = ev.lacking(&a.require_attestation, key.is_some());
    if a.json {
        let mut doc = serde_json::to_value(&ev)?;
        doc["lacking"] = serde_json::json!(lacking);
        super::output::print_json(&doc)?;
    } else {
        let sig = |s: &Option<crate::signing::Verdict>| match s {
            None => "not checked (no --key)".to_string(),
            Some(crate::signing::Verdict::Signed) => "signed by the key".into(),
            Some(crate::signing::Verdict::Unsigned) => "unsigned".into(),
            Some(crate::signing::Verdict::Invalid(why)) => format!("invalid: {why}"),
        };
        outln!("{} {}", ev.reference, ev.digest);
        outln!("  signature: {}", sig(&ev.signature));
        for p in &ev.platforms {
            outln!("  {} {}", p.platform, p.digest);
            outln!("    signature: {}", sig(&p.signature));
            if p.attestations.is_empty() {
                outln!("    attestations: none");
            }
            for s in &p.attestations {
                outln!(
                    "    attestation: {} ({})",
                    s.predicate_type,
                    crate::sizes::human_size(s.size)
                );
            }
        }
    }
    for l in &lacking {
        tracing::error!("{}: {l}", ev.reference);
    }
    Ok(if lacking.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

/// `stackctl retag`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The manifest is fetched once and PUT byte for byte under DST with its own \
media type, so DST's digest equals SRC's (Docker images and manifest lists, OCI images and \
indexes alike). Prints the digest.\n\n\
In another repository of the same registry the blobs are cross-repository mounted, never \
downloaded; when the registry refuses the mount (or DST is on another registry) they are \
streamed through this machine, and a warning says so.\n\n\
Registry credentials as for --username, looked up by each side's registry host.\n\n\
DST without `/`, `:` or `@` is a bare tag (at most 128 ASCII letters, digits, `_.-`), never a \
Docker Hub image; HOST:PORT alone is refused (no repository).\n\n\
Exit codes: 0 retagged; 1 SRC does not exist; 2 bad reference, access refused or registry \
unreachable."
)]
pub struct RetagArgs {
    /// The source reference (tag or digest).
    #[arg(value_name = "SRC")]
    pub src: String,
    /// A full reference, or a bare tag meaning SRC's repository.
    #[arg(value_name = "DST")]
    pub dst: String,
    #[command(flatten)]
    pub registry: RegistryApiArgs,
}

/// `stackctl tag`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Quarter promotion (`stackctl tag 2026.3-main`): every image of the spec, \
<image>:2026.3-main -> <image>:2026.3-stable. Writes artifacts/IMAGES_ORIGINAL and IMAGES_TAGGED; \
with --wiki a new top row in Home.md and each stable page copied from its source's page. \
ORIGINAL_TAG is split by the spec's tag.prefix (2026.3-rc-main -> 2026.3-rc-stable with prefix \
2026.3-rc); another quarter's tag at its first dash.\n\n\
Global promotion (`stackctl tag --global-stable 2026.3`): the images of Home.md's 2026.3-stable \
row (without --wiki: the spec's images) -> :stable. Writes IMAGES_ORIGINAL_STABLE and \
IMAGES_GLOBAL_STABLE; with --wiki Stable_Tag.md and the :stable pages.\n\n\
Both write artifacts/CONTENT_TAGS: `<promoted ref> <content tag ref>` for each content tag \
(spec tags:) that names a promoted image's digest (the repository's tags matching the \
templates, one HEAD each).\n\n\
One read round (sources and targets), then the plan (logged before any write): targets \
already holding their source's digest are left alone (a rerun completes a promotion), \
existing targets are moved first, NEW targets last, since a new tag cannot be taken back \
(stackctl never deletes a tag; GHCR and Distribution refuse it). If an existing target fails \
and every write was answered, what this run changed is put back (only where the target \
still holds this run's digest). Once a write got no answer (it may still land) or a new tag \
exists, the run rolls forward instead, retrying within --timeout. Every target is then read \
back (after a settle time of --request-timeout when a write got no answer), and a whole set is \
read again after --confirm-after before it counts; the verdict comes from what the registry \
holds.\n\n\
Concurrent promotions of the same targets converge on one whole set: the one whose source is \
newer (its newest image's config `created` time, then its digest) writes what another \
writer changed again until it reads back whole; the older one stops writing as soon as it \
sees a newer value, and exits 5. Its own writes (the bytes it PUT, a late restore too) are \
never taken for another writer's. Unless promoted, a table of every target (TARGET BEFORE \
NOW INTENDED STATE) goes to stdout.\n\n\
Names in the files and on stdout are the spec's image_name as written (Docker Hub short names \
such as ucsdets/notebook stay short); only registry requests use the normalized reference.\n\n\
Exit codes: 0 promoted (with --dry-run: checked, files written); 1 a source is missing, or \
nothing changed (every target holds what it held before); 2 bad input, or a registry that \
cannot be read before any write (auth, network); 3 partly promoted, or a target could not \
be read back: run the same command again; 4 another writer changed a target during the run \
and the set could not be made whole; 5 superseded: a concurrent promotion of a newer source \
is writing the same targets, and this run stopped writing; 130 interrupted (SIGINT/SIGTERM): writes stop, targets are read \
back and the table printed.\n\n\
Environment: GITHUB_SHA (the commit in Home.md; else HEAD of --repo), GITHUB_SERVER_URL and \
GITHUB_REPOSITORY (wiki links, unless --repo-url); registry credentials as for --username."
)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["original_tag", "global_stable"])))]
pub struct TagArgs {
    /// The tag to promote, `<prefix>-<branch>` (e.g. 2026.3-main).
    #[arg(value_name = "ORIGINAL_TAG")]
    pub original_tag: Option<String>,
    /// Global promotion of the `<PREFIX>-stable` images to `:stable`.
    #[arg(long, value_name = "PREFIX")]
    pub global_stable: Option<String>,
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Read the registry but change nothing there; still write the local files.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: contact no registry at all.
    #[arg(long, requires = "dry_run")]
    pub offline: bool,
    /// The wiki checkout to update (Home.md or Stable_Tag.md, and the image pages).
    #[arg(long, value_name = "DIR")]
    pub wiki: Option<PathBuf>,
    /// Where the IMAGES_* lists go.
    #[arg(long, value_name = "DIR", default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// The repository's web address for wiki links, e.g. https://github.com/OWNER/REPO
    /// [default: $GITHUB_SERVER_URL/$GITHUB_REPOSITORY]; needed with --wiki when
    /// GITHUB_REPOSITORY is not set (GitHub Actions sets it).
    #[arg(long, value_name = "URL")]
    pub repo_url: Option<String>,
    /// The run's deadline: no write is started or waited for after it (the read-back
    /// may take one --request-timeout more). The report names the request it cut.
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// The timeout of each registry request; also the settle time before the read-back
    /// when a write got no answer.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: std::time::Duration,
    /// Once every target reads back with its source's digest, wait this long and read them
    /// again before reporting success: a concurrent promotion of a newer source may be
    /// about to write (0s: report the first whole read-back).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub confirm_after: std::time::Duration,
    /// Promote only images signed by this key (cosign.pub, PEM): every source image is
    /// checked before any tag moves; one unsigned or badly signed image moves nothing and
    /// exits 6, naming it.
    #[arg(long, value_name = "PUBLIC_KEY")]
    pub require_signature: Option<PathBuf>,
    /// Promote only images whose every platform has these attestations (provenance, sbom;
    /// a comma list): checked like --require-signature, exit 6.
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub require_attestation: Vec<crate::promote::evidence::Required>,
    #[command(flatten)]
    pub registry: RegistryApiArgs,
}

pub async fn run_exists(a: ExistsArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let registry = a.registry.with_endpoints();
    let refs = a
        .refs
        .iter()
        .map(|r| ImageRef::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let client = registry.client()?;
    let results = exists_within(&client, &refs, a.timeout)
        .await
        .map_err(|e| anyhow::anyhow!("{e} (--timeout)"))?;
    if a.json {
        super::output::print_json(&results)?;
    } else {
        for r in &results {
            match (&r.error, &r.digest) {
                (Some(e), _) => {
                    outln!("{} error", r.reference);
                    tracing::error!("{e}");
                }
                (None, Some(d)) => outln!("{} {d}", r.reference),
                (None, None) => outln!("{} missing", r.reference),
            }
        }
    }
    Ok(if results.iter().any(|r| r.error.is_some()) {
        if a.json {
            for e in results.iter().filter_map(|r| r.error.as_ref()) {
                tracing::error!("{e}");
            }
        }
        ExitStatus::Error
    } else if results.iter().all(|r| r.exists) {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

pub async fn run_retag(a: RetagArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let registry = a.registry.with_endpoints();
    let src = ImageRef::parse(&a.src)?;
    let dst = ImageRef::parse_destination(&a.dst, &src)?;
    let client = registry.client()?;
    let rep = client.retag(&src, &dst).await.map_err(|e| {
        if e.is_not_found() {
            anyhow::Error::new(Failed(e.to_string()))
        } else {
            e.into()
        }
    })?;
    if rep.blobs.streamed > 0 {
        let why = if src.registry == dst.registry {
            format!("the registry refused to mount them from {}", src.name())
        } else {
            format!(
                "{} is on another registry, nothing can be mounted",
                src.name()
            )
        };
        tracing::warn!(
            "{}: {} blob(s), {} bytes, were streamed through this machine ({why})",
            rep.target,
            rep.blobs.streamed,
            rep.blobs.streamed_bytes,
        );
    }
    if rep.blobs.mounted > 0 {
        tracing::info!(
            "{}: {} blob(s) mounted from {}",
            rep.target,
            rep.blobs.mounted,
            src.name()
        );
    }
    if !src.same_repository(&dst) {
        // Into another repository the signatures go too (attestations are in the index).
        let copied =
            crate::signing::cosign::copy_signatures(&client, &src, &dst, &rep.digest).await?;
        if !copied.is_empty() {
            tracing::info!("{}: {} signature tag(s) copied", dst.name(), copied.len());
        }
    }
    outln!("{}", rep.digest);
    Ok(ExitStatus::Success)
}

pub async fn run_tag(a: TagArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let registry = a.registry.with_endpoints();
    let spec = a.spec.load()?;
    for (what, t) in [
        ("ORIGINAL_TAG", a.original_tag.as_deref()),
        ("--global-stable", a.global_stable.as_deref()),
    ] {
        if let Some(t) = t.filter(|t| !crate::tag::is_valid_tag(t)) {
            anyhow::bail!(
                "{what} {t:?} is not a valid tag (ASCII letters, digits, `_`, `.`, `-`, at most 128)"
            );
        }
    }
    let kind = match (a.original_tag, a.global_stable) {
        (Some(t), None) => Kind::Quarter { original_tag: t },
        (None, Some(p)) => Kind::Global { prefix: p },
        _ => anyhow::bail!("give either ORIGINAL_TAG or --global-stable PREFIX"),
    };
    let client = if a.offline {
        None
    } else {
        let mut o = registry.client_options();
        o.retry.request_timeout = a.request_timeout;
        Some(RegistryClient::new(registry.credentials()?, o)?)
    };
    let opts = stack::Options {
        kind,
        dry_run: a.dry_run,
        offline: a.offline,
        wiki: a.wiki,
        artifacts: a.artifacts,
        repo: a.spec.repo.clone(),
        repo_url: a.repo_url,
        timeout: a.timeout,
        request_timeout: a.request_timeout,
        cancel: super::interrupt::token(),
        confirm_after: a.confirm_after,
        require: crate::promote::evidence::Requirements {
            signature: a
                .require_signature
                .as_deref()
                .map(crate::signing::Verifier::load)
                .transpose()?,
            attestations: a.require_attestation.clone(),
        },
    };
    let prepared = stack::prepare(&spec, &opts)?;
    let promotion = prepared.promote(client.as_ref()).await?;
    if let Promotion::Registry(end) = &promotion {
        if !promotion.succeeded() {
            // The table of every target goes to stdout, the verdict to stderr.
            out!("{}", end.table());
            return Err(WithStatus {
                status: exit::of_promotion(end.verdict),
                message: end.verdict_message(opts.timeout),
            }
            .into());
        }
    }
    for line in promotion.lines() {
        outln!("{line}");
    }
    prepared.write_files(client.as_ref(), &promotion).await?;
    Ok(ExitStatus::Success)
}
