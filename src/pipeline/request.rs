//! The BuildKit request for an image of the stack: one function for `stackctl build` and
//! `stackctl build-image`, so that an image builds the same way through both (tag, build
//! arguments and `BASE_TAG`, cache sources and export, platforms, where the image goes).

use crate::bases;
use crate::buildkit::{
    Attestations, BaseImage, BuildError, BuildOutcome, BuildRequest, CacheExport, Kind, Progress,
};
use crate::credentials::CredentialStore;
use crate::registry::{ImageRef, RegistryClient};
use crate::spec::cache::{CacheSpec, CacheType};
use crate::spec::platform::Platform;
use crate::spec::{ImageSpec, Spec};
use indexmap::IndexMap;
use std::collections::HashSet;
use std::path::PathBuf;

/// Where a build leaves the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// `stackctl build`: the image gets its tag only once it is tested. Through a buildkitd,
    /// BuildKit pushes it by digest, without a tag (the tests pull `<repository>@<digest>`);
    /// through an engine's BuildKit it stays in the engine, where the tests find it. The
    /// publish step then gives the tested image its tag.
    Tested,
    /// It stays in the builder (the engine's store, or BuildKit's cache): `build-image`.
    Local,
    /// It is pushed under its tag as soon as it is built: `build-image --push`.
    Tagged,
}

impl Delivery {
    /// Whether BuildKit pushes the image by digest (no tag): a run through a buildkitd.
    pub fn by_digest(self, kind: &Kind) -> bool {
        self == Delivery::Tested && !kind.is_engine()
    }
}

/// What `build-image` adds to an image's request (nothing for `stackctl build`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Cache sources read before the spec's (`--cache-from`).
    pub cache_from: Vec<String>,
    /// Build arguments set over the spec's and `BASE_TAG` (`--build-arg`), in order.
    pub build_args: Vec<(String, String)>,
    /// Where the cache goes instead of the spec's `cache:` (`--cache-to`).
    pub cache_to: Option<CacheExport>,
    /// The Dockerfile stage (`--target`).
    pub target: Option<String>,
    /// Target platforms (`--platform`, or those of the image's that `build --platform`
    /// selects); empty: the image's `platforms:` (empty too: BuildKit's own).
    pub platforms: Vec<Platform>,
    /// Run every step again (`--no-cache`).
    pub no_cache: bool,
}

/// What an image's build request is made from.
pub struct RequestInputs<'a> {
    pub spec: &'a Spec,
    pub image: &'a ImageSpec,
    /// The tag the image gets (`<prefix>-<branch>`).
    pub tag: &'a str,
    /// The manifest digest of the parent image, when known: `BASE_TAG` then names it.
    pub parent_digest: Option<&'a str>,
    /// References known to exist in their registry: those of [`inline_cache_refs`] found
    /// here are cache sources (their inline cache, without pulling the image).
    pub existing: &'a HashSet<String>,
    /// The BuildKit that builds it.
    pub kind: &'a Kind,
    pub delivery: Delivery,
    pub credentials: CredentialStore,
    /// Where the build log goes.
    pub log: Option<PathBuf>,
    pub overrides: &'a Overrides,
    /// The commit built, for the provenance's source (None: not known).
    pub commit: Option<&'a str>,
}

/// The CI run a build belongs to, as GitHub Actions describes it in the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GithubRun {
    /// `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY`.
    pub repository: Option<String>,
    /// `…/actions/runs/$GITHUB_RUN_ID`: the provenance's builder.
    pub run: Option<String>,
}

impl GithubRun {
    pub fn from_env() -> GithubRun {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> GithubRun {
        let server = var("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
        let repository =
            var("GITHUB_REPOSITORY").map(|r| format!("{}/{r}", server.trim_end_matches('/')));
        let run = match (&repository, var("GITHUB_RUN_ID")) {
            (Some(r), Some(id)) => Some(format!("{r}/actions/runs/{id}")),
            _ => None,
        };
        GithubRun { repository, run }
    }
}

/// What BuildKit attaches to a pushed image: the spec's `attest:` through a buildkitd, and
/// nothing through the engine's BuildKit (which cannot) or for an image that is not pushed.
pub fn attestations(
    image: &ImageSpec,
    kind: &Kind,
    pushed: bool,
    commit: Option<&str>,
    run: &GithubRun,
) -> Attestations {
    use crate::spec::attest::{ProvenanceMode, Sbom};
    if kind.is_engine() || !pushed {
        return Attestations::default();
    }
    let a = &image.attest;
    Attestations {
        provenance: (a.provenance != ProvenanceMode::Off).then_some(a.provenance),
        sbom: match &a.sbom {
            Sbom::Off => None,
            Sbom::On(g) => Some(g.clone()),
        },
        builder_id: run.run.clone(),
        source: run.repository.clone(),
        revision: commit.filter(|c| !c.is_empty()).map(str::to_string),
    }
}

/// A request, and the parent digest its `BASE_TAG` names (None for a root image, a
/// `BASE_TAG` set in the spec or on the command line, or a parent digest not known).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub request: BuildRequest,
    pub parent_digest: Option<String>,
}

/// The image's own tag and its quarter-stable tag: when they exist, their inline cache is
/// used (in this order, after the registry caches).
pub fn inline_cache_refs(spec: &Spec, image: &ImageSpec, tag: &str) -> [String; 2] {
    [
        format!("{}:{tag}", image.image_name),
        format!(
            "{}:{}",
            image.image_name,
            crate::tag::quarter_stable_tag(&spec.tag_prefix)
        ),
    ]
}

/// The BuildKit request for one image of the stack.
pub fn build_request(i: &RequestInputs<'_>) -> Prepared {
    let image = i.image;
    let full = format!("{}:{}", image.image_name, i.tag);
    let by_digest = i.delivery.by_digest(i.kind);

    // Cache sources, in order: the command line's, the registry caches (this branch's, the
    // quarter's stable one, main's; a missing one is skipped by a buildkitd, so only
    // through one), then the image's own tag and its quarter-stable tag (inline cache)
    // when they exist.
    let mut cache_from = i.overrides.cache_from.clone();
    // `--no-cache`: no cache import at all, as buildx does.
    let no_cache = i.overrides.no_cache;
    let registry_caches = if i.kind.is_engine() {
        vec![]
    } else {
        image.cache.imports(i.tag, &i.spec.tag_prefix)
    };
    let inline = inline_cache_refs(i.spec, image, i.tag)
        .into_iter()
        .filter(|r| i.existing.contains(r));
    for r in registry_caches.into_iter().chain(inline) {
        if !cache_from.contains(&r) {
            cache_from.push(r);
        }
    }
    if no_cache {
        cache_from.clear();
    }

    // The exact parent: BASE_TAG (when stackctl sets it) names the parent's digest too.
    let (mut build_args, parent_digest): (IndexMap<String, String>, _) =
        image.build_args_for(i.tag, i.parent_digest);
    for (k, v) in &i.overrides.build_args {
        build_args.insert(k.clone(), v.clone());
    }
    let parent_digest = parent_digest.filter(|d| {
        // A BASE_TAG from the command line replaces the one that named the digest.
        build_args.get("BASE_TAG") == Some(&format!("{}@{d}", i.tag))
    });

    // The parent it is built FROM, recorded in the image for `stackctl tag`'s check.
    let base = parent_digest.as_ref().and_then(|d| {
        let parent = i.spec.image(image.depend_on.as_deref()?)?;
        Some(BaseImage {
            name: format!("{}:{}", parent.image_name, i.tag),
            digest: d.clone(),
        })
    });
    let pushed = by_digest || i.delivery == Delivery::Tagged;
    let request = BuildRequest {
        attest: attestations(image, i.kind, pushed, i.commit, &GithubRun::from_env()),
        base,
        label: image.key.clone(),
        context: image.dir(i.spec),
        dockerfile: None,
        // Pushed by digest, the image has no tag: the name is its repository.
        tags: vec![if by_digest {
            image.image_name.clone()
        } else {
            full
        }],
        build_args,
        target: i.overrides.target.clone(),
        // BuildKit's edge: platforms as BuildKit names them.
        platforms: if i.overrides.platforms.is_empty() {
            &image.platforms
        } else {
            &i.overrides.platforms
        }
        .iter()
        .map(Platform::to_string)
        .collect(),
        cache_from,
        no_cache: i.overrides.no_cache,
        push: pushed,
        push_by_digest: by_digest,
        cache_to: i
            .overrides
            .cache_to
            .clone()
            .unwrap_or_else(|| cache_export(&image.cache, i.tag)),
        credentials: i.credentials.clone(),
        log: i.log.clone(),
        record: vec![],
        source_date_epoch: None,
    };
    Prepared {
        request,
        parent_digest,
    }
}

/// The export of a build tagged `tag`, from the spec's `cache:` (the spec names no BuildKit
/// type; this is where its settings become BuildKit's).
pub fn cache_export(cache: &CacheSpec, tag: &str) -> CacheExport {
    match cache.kind {
        CacheType::Inline => CacheExport::Inline,
        CacheType::Registry => CacheExport::Registry {
            reference: cache.reference(tag),
            mode: cache.mode,
        },
    }
}

/// One image of the stack to build on its own (`stackctl build-image`).
pub struct OneImage<'a> {
    pub spec: &'a Spec,
    pub image: &'a ImageSpec,
    pub tag: &'a str,
    /// Push it under its tag.
    pub push: bool,
    pub overrides: &'a Overrides,
    pub credentials: CredentialStore,
    /// Asked which of [`inline_cache_refs`] exist; None (it could not be set up): no such
    /// cache source.
    pub registry: Option<&'a RegistryClient>,
    pub log: Option<PathBuf>,
    /// The commit built (the provenance's revision).
    pub commit: Option<&'a str>,
}

/// Build one image on `node`, with the request `stackctl build` makes for it (and the
/// overrides): same build arguments and `BASE_TAG`, same cache sources. No parent digest is
/// known here: `BASE_TAG` names the parent's tag.
pub async fn build_image(
    one: &OneImage<'_>,
    node: &crate::buildkit::Client,
    progress: &mut Progress,
) -> Result<BuildOutcome, BuildError> {
    let existing = match one.registry {
        Some(r) => existing_refs(r, &inline_cache_refs(one.spec, one.image, one.tag)).await,
        None => HashSet::new(),
    };
    let kind = node.kind();
    // The engine's BuildKit builds one platform into the engine, as for `stackctl build`.
    let selection = super::platforms::Selection {
        platforms: match one.overrides.platforms.as_slice() {
            [] => one.image.platforms.clone(),
            given => given.to_vec(),
        },
        split: false,
    };
    let address = node.address().to_string();
    super::platforms::check_builder(&one.image.key, &selection, kind.is_engine(), &address)
        .map_err(BuildError::Unavailable)?;
    let prepared = build_request(&RequestInputs {
        spec: one.spec,
        image: one.image,
        tag: one.tag,
        parent_digest: None,
        existing: &existing,
        kind: &kind,
        delivery: if one.push {
            Delivery::Tagged
        } else {
            Delivery::Local
        },
        credentials: one.credentials.clone(),
        log: one.log.clone(),
        overrides: one.overrides,
        commit: one.commit,
    });
    let mut request = prepared.request;
    let epoch = input_epoch(one.spec, one.image, None).unwrap_or_else(|e| {
        tracing::warn!("[{}] not built reproducibly: {e}", one.image.key);
        None
    });
    if let Some((_, t)) = &epoch {
        set_epoch(&mut request, *t);
    }
    if let Some(registry) = one.registry {
        let provenance = Provenance {
            revision: epoch.as_ref().map(|(c, _)| c.as_str()),
            source: None,
        };
        let (_, warnings) = record_bases(&mut request, one.spec, registry, &provenance).await;
        for w in warnings {
            tracing::warn!("[{}] {w}", one.image.key);
        }
    }
    node.build(&request, progress).await
}

/// The commit that last changed the image's inputs (its folder and its ancestors'), and its
/// time: the image's `SOURCE_DATE_EPOCH`, looked for from `commit` (None: HEAD). None, with
/// the reason, when the spec turns `reproducible:` off or git cannot tell.
pub fn input_epoch(
    spec: &Spec,
    image: &ImageSpec,
    commit: Option<&str>,
) -> Result<Option<(String, i64)>, String> {
    use crate::plan::git;
    if !image.reproducible {
        return Ok(None);
    }
    let repo = git::open(&spec.images_dir).map_err(|e| e.to_string())?;
    let root = repo
        .workdir()
        .and_then(|w| w.canonicalize().ok())
        .ok_or_else(|| format!("{}: a bare repository", repo.path().display()))?;
    let images = spec
        .images_dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", spec.images_dir.display()))?;
    let rel = images
        .strip_prefix(&root)
        .map_err(|_| format!("{} is not in {}", images.display(), root.display()))?;
    let folders: Vec<PathBuf> = std::iter::once(image.key.clone())
        .chain(spec.ancestors_of(&image.key))
        .map(|k| rel.join(k))
        .collect();
    let paths: Vec<&std::path::Path> = folders.iter().map(PathBuf::as_path).collect();
    let head = git::resolve_commit(&repo, commit.unwrap_or("HEAD"), "the commit built")
        .map_err(|e| e.to_string())?;
    let found = git::last_change(&repo, head, &paths).map_err(|e| e.to_string())?;
    if let Some((id, _)) = found {
        // The walk stopped where a shallow clone's history is cut, not at the change.
        if git::is_shallow_cut(&repo, id).unwrap_or(false) {
            tracing::warn!(
                "[{}] the clone is shallow: its epoch is the time of {id}, where the history \
                 stops; fetch the history (actions/checkout `fetch-depth: 0`) for the commit \
                 that changed its inputs",
                image.key
            );
        }
    }
    Ok(found.map(|(id, t)| (id.to_string(), t)))
}

/// Make the request reproducible at `epoch` (seconds): `SOURCE_DATE_EPOCH`, rewritten
/// timestamps, and `org.opencontainers.image.created` from it.
pub fn set_epoch(request: &mut BuildRequest, epoch: i64) {
    request.source_date_epoch = Some(epoch);
    if let Some(t) = chrono::DateTime::from_timestamp(epoch, 0) {
        let created = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        request
            .record
            .push((bases::CREATED_KEY.to_string(), created));
    }
}

/// What an image records of where it comes from, besides its parent.
#[derive(Debug, Clone, Default)]
pub struct Provenance<'a> {
    /// The commit built (`org.opencontainers.image.revision`).
    pub revision: Option<&'a str>,
    /// The repository's web URL (`org.opencontainers.image.source`).
    pub source: Option<&'a str>,
}

/// Resolve the external bases the request's Dockerfile names (one HEAD each, concurrently)
/// and have the image record them ([`bases::BASES_KEY`]), with the commit and source. A root
/// image's `base` becomes the external image its built stage starts from. Images of the
/// stack are left out: the plan follows them itself. Returns the bases and, for each that
/// could not be resolved, a warning (the build then finds out whether it can pull it).
pub async fn record_bases(
    request: &mut BuildRequest,
    spec: &Spec,
    registry: &RegistryClient,
    provenance: &Provenance<'_>,
) -> (Vec<bases::Base>, Vec<String>) {
    use crate::bases::{BASES_KEY, REVISION_KEY, SOURCE_KEY};
    for (k, v) in [
        (REVISION_KEY, provenance.revision),
        (SOURCE_KEY, provenance.source),
    ] {
        if let Some(v) = v {
            request.record.push((k.to_string(), v.to_string()));
        }
    }
    let dockerfile = request
        .dockerfile
        .clone()
        .unwrap_or_else(|| request.context.join("Dockerfile"));
    let Ok(text) = std::fs::read_to_string(&dockerfile) else {
        return (vec![], vec![]);
    };
    let found = bases::dockerfile_bases(&text, &request.build_args, request.target.as_deref());
    let repo_of = |r: &str| ImageRef::parse(r).ok().map(|r| r.name());
    let stack: HashSet<String> = spec
        .images
        .values()
        .filter_map(|i| repo_of(&i.image_name))
        .collect();
    let external: Vec<String> = found
        .images
        .into_iter()
        .filter(|n| repo_of(n).is_some_and(|r| !stack.contains(&r)))
        .collect();
    let asked: Vec<String> = external
        .iter()
        .filter(|n| !bases::is_pinned(n))
        .cloned()
        .collect();
    let mut answers = bases::resolve(registry, &asked).await.into_iter();
    let mut recorded = vec![];
    let mut warnings = vec![];
    for name in external {
        let digest = if bases::is_pinned(&name) {
            name.rsplit('@').next().map(str::to_string)
        } else {
            match answers.next() {
                Some(Ok(Some(d))) => Some(d),
                Some(Ok(None)) => {
                    warnings.push(format!("base {name} is not in its registry: not recorded"));
                    None
                }
                Some(Err(e)) => {
                    warnings.push(format!("base {name} not recorded: {e}"));
                    None
                }
                None => None,
            }
        };
        if let Some(digest) = digest {
            recorded.push(bases::Base { name, digest });
        }
    }
    // Recorded even when empty: config labels are inherited, and a child's own list must
    // replace its parent's.
    let json = serde_json::to_string(&recorded).unwrap_or_default();
    request.record.push((BASES_KEY.to_string(), json));
    if request.base.is_none() {
        request.base = found
            .final_base
            .and_then(|f| recorded.iter().find(|b| b.name == f))
            .map(|b| BaseImage {
                name: b.name.clone(),
                digest: b.digest.clone(),
            });
    }
    (recorded, warnings)
}

/// Those of `refs` that exist in their registry (one HEAD each, concurrently). A registry
/// that cannot be asked only costs the cache: a warning, and no such cache source.
async fn existing_refs(client: &RegistryClient, refs: &[String]) -> HashSet<String> {
    let parsed: Vec<ImageRef> = refs
        .iter()
        .filter_map(|r| ImageRef::parse(r).ok())
        .collect();
    let mut out = HashSet::new();
    for r in crate::registry::exists_many(client, &parsed).await {
        match (&r.error, r.exists) {
            (Some(e), _) => tracing::warn!("{} not used as cache: {e}", r.reference),
            (None, true) => {
                out.insert(r.reference);
            }
            (None, false) => tracing::debug!("{} does not exist: not a cache source", r.reference),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildkit::EngineSocket;

    fn spec(yaml: &str) -> (tempfile::TempDir, Spec) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spec.yml");
        std::fs::write(&path, yaml).unwrap();
        for key in ["base", "child"] {
            let d = dir.path().join("images").join(key);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        }
        let spec = Spec::load(dir.path(), Some(&path)).unwrap();
        (dir, spec)
    }

    #[test]
    fn the_spec_cache_becomes_buildkit_export() {
        use crate::spec::cache::CacheMode;
        let inline = CacheSpec::default();
        assert_eq!(cache_export(&inline, "2026.3-qa"), CacheExport::Inline);
        let registry = CacheSpec {
            kind: CacheType::Registry,
            repository: "r/cache".into(),
            mode: CacheMode::Min,
        };
        assert_eq!(
            cache_export(&registry, "2026.3-qa"),
            CacheExport::Registry {
                reference: "r/cache:buildcache-2026.3-qa".into(),
                mode: CacheMode::Min
            }
        );
    }

    const STACK: &str = "images:\n  base:\n    image_name: reg.example/s/base\n  child:\n    \
        image_name: reg.example/s/child\n    depend_on: base\n    build_args: {A: spec}\n\
        cache:\n  type: registry\ntag:\n  prefix: \"2026.3\"\n";

    fn request(
        spec: &Spec,
        key: &str,
        kind: &Kind,
        delivery: Delivery,
        parent_digest: Option<&str>,
        existing: &HashSet<String>,
        overrides: &Overrides,
    ) -> Prepared {
        build_request(&RequestInputs {
            spec,
            image: spec.image(key).unwrap(),
            tag: "2026.3-feat",
            parent_digest,
            existing,
            kind,
            delivery,
            credentials: CredentialStore::default(),
            log: None,
            overrides,
            commit: Some("c0ffee"),
        })
    }

    fn engine() -> Kind {
        Kind::Engine(EngineSocket::Unix("/var/run/docker.sock".into()))
    }

    #[test]
    fn a_run_through_a_buildkitd_pushes_by_digest_with_registry_caches() {
        let (_d, spec) = spec(STACK);
        let existing: HashSet<String> = ["reg.example/s/child:2026.3-stable".to_string()].into();
        let p = request(
            &spec,
            "child",
            &Kind::Buildkitd,
            Delivery::Tested,
            Some("sha256:abc"),
            &existing,
            &Overrides::default(),
        );
        let r = &p.request;
        assert_eq!(r.tags, ["reg.example/s/child"]);
        assert!(r.push && r.push_by_digest);
        assert_eq!(r.build_args["BASE_TAG"], "2026.3-feat@sha256:abc");
        assert_eq!(r.build_args["A"], "spec");
        assert_eq!(p.parent_digest.as_deref(), Some("sha256:abc"));
        let caches = spec
            .image("child")
            .unwrap()
            .cache
            .imports("2026.3-feat", "2026.3");
        assert!(!caches.is_empty());
        let mut want = caches.clone();
        want.push("reg.example/s/child:2026.3-stable".into());
        assert_eq!(r.cache_from, want);
        assert_eq!(
            r.cache_to,
            cache_export(&spec.image("child").unwrap().cache, "2026.3-feat")
        );
    }

    #[test]
    fn through_an_engine_the_image_stays_in_it_and_only_inline_caches_are_read() {
        let (_d, spec) = spec(STACK);
        let existing: HashSet<String> = ["reg.example/s/child:2026.3-feat".to_string()].into();
        for delivery in [Delivery::Tested, Delivery::Local] {
            let p = request(
                &spec,
                "child",
                &engine(),
                delivery,
                None,
                &existing,
                &Overrides::default(),
            );
            let r = &p.request;
            assert_eq!(r.tags, ["reg.example/s/child:2026.3-feat"]);
            assert!(!r.push && !r.push_by_digest);
            assert_eq!(r.cache_from, ["reg.example/s/child:2026.3-feat"]);
            assert_eq!(r.build_args["BASE_TAG"], "2026.3-feat");
            assert_eq!(p.parent_digest, None);
        }
        let p = request(
            &spec,
            "child",
            &engine(),
            Delivery::Tagged,
            None,
            &existing,
            &Overrides::default(),
        );
        assert!(p.request.push && !p.request.push_by_digest);
    }

    #[test]
    fn a_base_tag_set_in_the_spec_is_kept() {
        let yaml = STACK.replace("{A: spec}", "{A: spec, BASE_TAG: pinned}");
        let (_d, spec) = spec(&yaml);
        for (kind, delivery) in [
            (Kind::Buildkitd, Delivery::Tested),
            (engine(), Delivery::Local),
        ] {
            let p = request(
                &spec,
                "child",
                &kind,
                delivery,
                Some("sha256:abc"),
                &HashSet::new(),
                &Overrides::default(),
            );
            assert_eq!(p.request.build_args["BASE_TAG"], "pinned");
            assert_eq!(p.parent_digest, None);
        }
    }

    #[test]
    fn command_line_options_come_first_or_win() {
        let (_d, spec) = spec(STACK);
        let overrides = Overrides {
            cache_from: vec!["reg.example/cache:x".into()],
            build_args: vec![
                ("BASE_TAG".into(), "other".into()),
                ("A".into(), "cli".into()),
            ],
            cache_to: Some(CacheExport::Inline),
            target: Some("stage".into()),
            platforms: vec!["linux/arm64".parse().unwrap()],
            no_cache: false,
        };
        let p = request(
            &spec,
            "child",
            &Kind::Buildkitd,
            Delivery::Local,
            Some("sha256:abc"),
            &HashSet::new(),
            &overrides,
        );
        let r = &p.request;
        assert_eq!(r.build_args["BASE_TAG"], "other");
        assert_eq!(r.build_args["A"], "cli");
        assert_eq!(p.parent_digest, None);
        assert_eq!(r.cache_from[0], "reg.example/cache:x");
        assert_eq!(r.cache_to, CacheExport::Inline);
        assert_eq!(r.target.as_deref(), Some("stage"));
        assert_eq!(r.platforms, ["linux/arm64"]);
        assert!(!r.no_cache && !r.push);
        // `--no-cache` imports no cache at all, not even the command line's.
        let no_cache = Overrides {
            no_cache: true,
            ..overrides.clone()
        };
        let existing = HashSet::from(inline_cache_refs(
            &spec,
            &spec.images["child"],
            "2026.3-feat",
        ));
        let p = request(
            &spec,
            "child",
            &Kind::Buildkitd,
            Delivery::Local,
            None,
            &existing,
            &no_cache,
        );
        assert!(p.request.no_cache && p.request.cache_from.is_empty());
        // A root image has no BASE_TAG.
        let p = request(
            &spec,
            "base",
            &Kind::Buildkitd,
            Delivery::Tested,
            None,
            &HashSet::new(),
            &Overrides::default(),
        );
        assert!(!p.request.build_args.contains_key("BASE_TAG"));
    }
}
