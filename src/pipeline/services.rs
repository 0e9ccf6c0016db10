//! The real parts an image's steps run against in `stackctl build` (the traits are in
//! [`super::steps`]): BuildKit builds the image, containers run its tests, the engine or the
//! registry gives the tested image its tag, and the manifest page is written. [`run_image`]
//! puts them under the step order of [`super::image`].

use super::platforms::Selection;
use super::request::{
    build_request, input_epoch, record_bases, set_epoch, Delivery, Overrides, Prepared, Provenance,
    RequestInputs,
};
use super::steps::{
    Builder, Built, ImageJob, ImageJobContext, PageWriter, Parts, Publisher, Review, RunState,
    TestRunner,
};
use crate::buildkit::{self, BuildError, Kind, Progress, ProgressMode};
use crate::containers::in_buildkit::Node;
use crate::containers::runner::{prepull, Runner};
use crate::containers::suite::{self, Suite, SuiteResult};
use crate::content_tags::publish::{self, ContentTag, Rendered};
use crate::plan::PlannedImage;
use crate::registry::{ImageRef, RegistryClient};
use crate::report::{ImageReport, ImageStep};
use crate::spec::platform::{self, Platform};
use crate::spec::TagTemplate;
use crate::spec::{ImageSpec, RunnerKind};
use crate::wiki::image_page::{self, PageOptions, RegistryAccess};
use anyhow::{anyhow, Context as _};
use std::time::Instant;

/// Run every step of one image, built on the BuildKit `node`, and return its report (never
/// an error: failures are in it).
pub async fn run_image(
    ctx: &ImageJobContext<'_>,
    planned: &PlannedImage,
    node: &crate::buildkit::Client,
) -> ImageReport {
    let t0 = Instant::now();
    let mut report = ImageReport::started(&planned.key, &planned.reference);
    report.builder = Some(node.address().to_string());
    report.commit = Some(ctx.commit.clone()).filter(|c| !c.is_empty());
    let Some(image) = ctx.spec.image(&planned.key) else {
        report.fail(
            ImageStep::Build,
            format!("no image `{}` in the spec", planned.key),
        );
        report.finish(t0.elapsed());
        return report;
    };
    // The platforms it builds in this run, and whether this node can build them.
    let selection = super::platforms::select(image, &ctx.platforms).and_then(|s| {
        let addr = node.address().to_string();
        super::platforms::check_builder(&planned.key, &s, node.kind().is_engine(), &addr).map(|_| s)
    });
    match selection {
        Ok(selection) => {
            let parts = Real::new(ctx, planned, image, node, &selection);
            let job = ImageJob {
                key: &planned.key,
                reference: &planned.reference,
                repository: &image.image_name,
                push: ctx.push,
                integration_tests: image.integration_tests,
                content_tags: &image.tags,
                selection: &selection,
                integration_platforms: &image.integration_platforms,
                skip_unchanged: image.tests.skip_unchanged.unwrap_or(false),
                cancel: &ctx.cancel,
            };
            let run = RunState {
                digests: &ctx.digests,
                service_error: &ctx.service_error,
            };
            super::image::run_steps(&job, &parts.parts(), &run, &mut report).await;
            let (bases, warnings) = parts.bases.into_inner().unwrap_or_else(|p| p.into_inner());
            report.bases = bases;
            report.warnings.extend(warnings);
        }
        Err(e) => report.fail(ImageStep::Build, e),
    }
    report.finish(t0.elapsed());
    report
}

/// One image's real parts: it implements every trait of the step order.
pub(crate) struct Real<'a, 'c> {
    ctx: &'a ImageJobContext<'c>,
    planned: &'a PlannedImage,
    image: &'a ImageSpec,
    node: &'a buildkit::Client,
    kind: Kind,
    prepared: Prepared,
    /// Where the basic tests, info commands and content tag commands run.
    runner: Runner,
    /// The external bases the build recorded, and why some could not be.
    bases: std::sync::Mutex<(Vec<crate::bases::Base>, Vec<String>)>,
    /// Only some of the image's platforms are built (`--platform`).
    selection_split: bool,
}

impl<'a, 'c> Real<'a, 'c> {
    /// The parts of `planned`, built on `node`; its build request is made here.
    pub fn new(
        ctx: &'a ImageJobContext<'c>,
        planned: &'a PlannedImage,
        image: &'a ImageSpec,
        node: &'a buildkit::Client,
        selection: &Selection,
    ) -> Self {
        let kind = node.kind();
        let parent_digest = image.depend_on.as_deref().and_then(|p| ctx.digest_of(p));
        let prepared = build_request(&RequestInputs {
            spec: ctx.spec,
            image,
            tag: &ctx.tag,
            parent_digest: parent_digest.as_deref(),
            existing: ctx.existing,
            kind: &kind,
            delivery: Delivery::Tested,
            credentials: ctx.credentials.clone(),
            log: Some(ctx.dirs.build_log(&planned.reference)),
            overrides: &Overrides {
                platforms: selection.platforms.clone(),
                no_cache: ctx.no_cache,
                ..Default::default()
            },
            commit: Some(&ctx.commit),
        });
        if let Some(parent) = &image.depend_on {
            match (&parent_digest, image.build_args.contains_key("BASE_TAG")) {
                (Some(_), false) => {}
                (Some(_), true) => tracing::info!(
                    "[{}] BASE_TAG is set in the spec: the parent {parent} is taken as it names it",
                    planned.key
                ),
                (None, _) => tracing::info!(
                    "[{}] the digest of the parent {parent} is not known (no registry check, or \
                     not pushed): built FROM its tag",
                    planned.key
                ),
            }
        }
        let runner = match super::engine::runner_of(image, kind.is_engine()) {
            RunnerKind::Buildkit => {
                Runner::BuildKit(Node::new(node.clone(), ctx.credentials.clone()))
            }
            RunnerKind::Engine => Runner::Engine(ctx.credentials.clone()),
        };
        Real {
            ctx,
            planned,
            image,
            node,
            kind,
            prepared,
            runner,
            bases: Default::default(),
            selection_split: selection.split,
        }
    }

    /// Every part is this one.
    pub fn parts(&self) -> Parts<'_, Self, Self, Self, Self> {
        Parts {
            builder: self,
            tests: self,
            publisher: self,
            pages: self,
        }
    }

    fn by_digest(&self) -> bool {
        Delivery::Tested.by_digest(&self.kind)
    }

    /// The digest the image's tag names, if its platform manifests are those of the
    /// image just pushed as `repository@pushed`. Anything that cannot be read counts as
    /// changed (the run then goes on as for any rebuild).
    async fn unchanged(&self, pushed: &str) -> Option<String> {
        let registry = self.ctx.registry;
        let built = format!("{}@{pushed}", self.image.image_name);
        let read = async {
            let (_, new) = platform_manifests(registry, &ImageRef::parse(&built)?)
                .await?
                .with_context(|| format!("{built}: not in the registry"))?;
            let tag = ImageRef::parse(&self.planned.reference)?;
            anyhow::Ok(match platform_manifests(registry, &tag).await? {
                Some((digest, old)) if old == new => Some(digest),
                _ => None,
            })
        };
        read.await.unwrap_or_else(|e| {
            tracing::warn!("[{}] cannot compare with its tag: {e:#}", self.planned.key);
            None
        })
    }
}

/// What `r` names in its registry: its digest, and its platform manifests' digests,
/// sorted (an index's entries without attestations and `unknown/unknown` ones, or the
/// manifest itself). None when it is not there. Provenance differs from build to build by
/// its nature: two images are the same when these are.
pub async fn platform_manifests(
    registry: &RegistryClient,
    r: &ImageRef,
) -> anyhow::Result<Option<(String, Vec<String>)>> {
    let Some(m) = registry.get_manifest(r).await? else {
        return Ok(None);
    };
    let is_index = m.media_type == crate::registry::client::OCI_INDEX
        || m.media_type == crate::registry::client::DOCKER_MANIFEST_LIST;
    if !is_index {
        return Ok(Some((m.digest.clone(), vec![m.digest])));
    }
    let index: serde_json::Value =
        serde_json::from_slice(&m.bytes).with_context(|| format!("{r}: the index is not JSON"))?;
    let mut out: Vec<String> = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            let p = &e["platform"];
            let unknown = p["os"] == "unknown" && p["architecture"] == "unknown";
            let attestation =
                e["annotations"]["vnd.docker.reference.type"] == "attestation-manifest";
            !unknown && !attestation
        })
        .filter_map(|e| e["digest"].as_str().map(str::to_string))
        .collect();
    out.sort();
    Ok(Some((m.digest, out)))
}

impl Builder for Real<'_, '_> {
    fn parent_digest(&self) -> Option<String> {
        self.prepared.parent_digest.clone()
    }

    async fn build(&self) -> Result<Built, BuildError> {
        // Concurrent builds share the terminal: their steps go to the build log only; the
        // run prints one line per image.
        let mut progress = Progress::new(ProgressMode::Quiet);
        let mut request = self.prepared.request.clone();
        let commit = Some(self.ctx.commit.as_str()).filter(|c| !c.is_empty());
        let epoch = input_epoch(self.ctx.spec, self.image, commit).unwrap_or_else(|e| {
            tracing::warn!("[{}] not built reproducibly: {e}", self.planned.key);
            None
        });
        if let Some((_, t)) = &epoch {
            set_epoch(&mut request, *t);
        }
        // A reproducible image names the commit of its inputs: a later commit elsewhere
        // leaves it as it was.
        let provenance = Provenance {
            revision: epoch.as_ref().map(|(c, _)| c.as_str()).or(commit),
            source: self.ctx.source.as_deref(),
        };
        let recorded =
            record_bases(&mut request, self.ctx.spec, self.ctx.registry, &provenance).await;
        *self.bases.lock().unwrap_or_else(|p| p.into_inner()) = recorded;
        let outcome = self.node.build(&request, &mut progress).await?;
        let by_digest = self.by_digest();
        if by_digest && outcome.digest.is_none() {
            return Err(BuildError::Failed(format!(
                "BuildKit at {} pushed {} but reported no digest",
                self.node.address(),
                self.image.image_name
            )));
        }
        tracing::info!(
            "[{}] built in {:.1}s ({}); log: {}",
            self.planned.key,
            outcome.seconds,
            outcome.cache_summary(),
            self.ctx.dirs.build_log(&self.planned.reference).display()
        );
        // What the tests run: the image in the engine, or the pushed manifest by digest.
        let pushed_digest = outcome.digest.clone().filter(|_| by_digest);
        let test_ref = match &pushed_digest {
            Some(d) => format!("{}@{d}", self.image.image_name),
            None => self.planned.reference.clone(),
        };
        let base_digest = match (&pushed_digest, self.prepared.request.platforms.len()) {
            (Some(d), 0 | 1) if !self.prepared.request.attest.is_empty() => {
                single_platform(self.ctx.registry, &self.image.image_name, d).await
            }
            _ => None,
        };
        let unchanged = match (&pushed_digest, self.ctx.push, self.selection_split) {
            (Some(d), true, false) => self.unchanged(d).await,
            _ => None,
        };
        Ok(Built {
            pushed_digest,
            test_ref,
            base_digest,
            unchanged,
        })
    }
}

impl TestRunner for Real<'_, '_> {
    async fn run_suite(
        &self,
        suite: Suite,
        image_ref: &str,
        platform: Option<&Platform>,
    ) -> anyhow::Result<SuiteResult> {
        let ctx = self.ctx;
        let full = &self.planned.reference;
        let part = platform.map(|p| p.file_part());
        let (log, junit) = ctx
            .dirs
            .suite_files(full, &suite.to_string(), part.as_deref());
        let opts = suite::Options {
            timeout: ctx.test_timeout,
            log_file: Some(log),
            junit_file: Some(junit),
            junit_suite_name: platform.map(|p| format!("{suite} {p}")),
            cancel: ctx.cancel.clone(),
        };
        let key = &self.planned.key;
        match (&self.runner, suite) {
            (Runner::BuildKit(node), Suite::Basic) => {
                let p = platform.map(|p| p.to_string());
                node.basic_suite(ctx.spec, key, image_ref, p.as_deref(), &opts)
                    .await
            }
            // Integration tests run in the engine whatever the runner.
            _ => {
                // What the engine's containers run, pulled with stackctl's credentials.
                let runner_image = match suite {
                    Suite::Integration => self
                        .image
                        .tests
                        .integration
                        .as_ref()
                        .and_then(|i| i.runner_image.clone()),
                    Suite::Basic => None,
                };
                for r in std::iter::once(image_ref.to_string()).chain(runner_image) {
                    if let Ok(r) = ImageRef::parse(&r) {
                        prepull(&r, ctx.credentials).await;
                    }
                }
                suite::run_suite(ctx.spec, key, image_ref, suite, &opts).await
            }
        }
    }

    async fn content_tag_values(
        &self,
        image_ref: &str,
        templates: &[TagTemplate],
    ) -> anyhow::Result<Vec<Rendered>> {
        let ctx = self.ctx;
        let commit: String = ctx.commit.chars().take(7).collect();
        let date = ctx.build_time.format("%Y-%m-%d").to_string();
        // The templates' commands, in one container of the image where the runner runs.
        let cmds = publish::commands(templates);
        let parsed = ImageRef::parse(image_ref)?;
        let outs = self
            .runner
            .info_commands(&parsed, None, &cmds, ctx.test_timeout, &ctx.cancel)
            .await
            .map_err(|stop| anyhow!("content tag commands in {image_ref}: {stop}"))?;
        let outputs = outs
            .into_iter()
            .map(|o| {
                let v = if o.ok { Ok(o.stdout) } else { Err(o.text) };
                (o.command, v)
            })
            .collect();
        publish::render(templates, &outputs, &commit, &date, &ctx.spec.tag_prefix)
    }
}

impl Publisher for Real<'_, '_> {
    async fn publish(&self, built: &Built) -> anyhow::Result<String> {
        let full = &self.planned.reference;
        match (&self.kind, &built.pushed_digest) {
            (_, Some(d)) => tag_tested(self.ctx.registry, &self.image.image_name, d, full).await,
            (Kind::Engine(sock), None) => {
                buildkit::push::push_from_engine(
                    sock,
                    &self.planned.image_ref,
                    self.ctx.credentials,
                )
                .await
            }
            (_, None) => Err(anyhow!(
                "BuildKit at {} is a Docker engine's, reached without the engine's API: \
                 it cannot push; reach it with docker:// (or docker-unix://, docker-tcp://)",
                self.node.address()
            )),
        }
    }

    async fn read_back_tag(&self, built: &Built) -> anyhow::Result<Option<String>> {
        // Through the engine nothing tells this run's image from the one tagged before.
        let Some(tested) = &built.pushed_digest else {
            return Ok(None);
        };
        let tag = ImageRef::parse(&self.planned.reference)?;
        // Bounded: the run is being interrupted.
        let limit = std::time::Duration::from_secs(10);
        let head = tokio::time::timeout(limit, self.ctx.registry.head_manifest(&tag))
            .await
            .map_err(|_| anyhow!("{tag}: no answer within {limit:?}"))??;
        Ok(head.map(|d| d.digest).filter(|d| d == tested))
    }

    async fn sign(&self, digest: &str, manifests: &[String]) -> anyhow::Result<Vec<String>> {
        let Some(signer) = self.ctx.signer else {
            return Ok(vec![]);
        };
        let repository = ImageRef::parse(&self.image.image_name)?;
        let mut signed = vec![];
        for d in std::iter::once(digest).chain(manifests.iter().map(String::as_str)) {
            if signed.iter().any(|s| s == d) {
                continue;
            }
            crate::signing::cosign::sign(self.ctx.registry, &repository, d, signer)
                .await
                .with_context(|| format!("signing {}@{d}", self.image.image_name))?;
            signed.push(d.to_string());
        }
        Ok(signed)
    }

    async fn pushed_manifests(
        &self,
        digest: &str,
        platforms: &[Platform],
    ) -> anyhow::Result<Vec<(Platform, String)>> {
        let (registry, repository) = (self.ctx.registry, &self.image.image_name);
        pushed_manifests(registry, repository, digest, platforms).await
    }

    async fn content_tags(
        &self,
        digest: &str,
        tags: &[Rendered],
    ) -> anyhow::Result<(Vec<ContentTag>, Vec<String>)> {
        crate::content_tags::publish::publish(
            self.ctx.registry,
            &self.image.image_name,
            digest,
            tags,
        )
        .await
    }
}

impl PageWriter for Real<'_, '_> {
    type Facts = image_page::PageFacts;

    async fn gather(&self, digest: &str) -> anyhow::Result<image_page::PageFacts> {
        let at = format!("{}@{digest}", self.image.image_name);
        let opts = self.page_options(&[]);
        image_page::gather(self.ctx.spec, &self.planned.key, &at, &opts).await
    }

    async fn review(
        &self,
        digest: &str,
        facts: &mut Option<anyhow::Result<image_page::PageFacts>>,
    ) -> Review {
        let facts = match facts {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                return Review {
                    warnings: vec![format!("not compared with the image it replaces: {e:#}")],
                    ..Default::default()
                }
            }
            None => return Review::default(),
        };
        let new = facts.side(&self.planned.reference, digest);
        self.write_packages(&new);
        let (old, basis) = match self.replaced(digest).await {
            Ok(Some((side, basis))) => (Some(side), Some(basis)),
            Ok(None) => (None, None),
            Err(e) => {
                return Review {
                    warnings: vec![format!("not compared with the image it replaces: {e:#}")],
                    ..Default::default()
                }
            }
        };
        let changes = crate::changes::compare(old.as_ref(), &new, basis);
        facts.set_changes(changes.clone());
        let budget = &self.image.size_budget;
        Review {
            breaches: crate::changes::budget::breaches(budget, &changes),
            fail: budget.on_exceed == crate::spec::compare::OnExceed::Fail,
            changes: Some(changes),
            warnings: vec![],
        }
    }

    async fn attach_inventories(
        &self,
        facts: &Option<anyhow::Result<image_page::PageFacts>>,
    ) -> anyhow::Result<Vec<String>> {
        let Some(Ok(facts)) = facts else {
            return Ok(vec![]);
        };
        let repository = ImageRef::parse(&self.image.image_name)?;
        let mut out = vec![];
        for (platform, digest, inventory) in facts.inventories() {
            let at = repository.with_digest(&digest);
            let head = self
                .ctx
                .registry
                .head_manifest(&at)
                .await?
                .with_context(|| format!("{at}: not in its registry"))?;
            let subject = crate::registry::referrers::Subject {
                size: head.size.unwrap_or(0),
                media_type: head.media_type,
                digest: digest.clone(),
            };
            let d = crate::changes::read::attach_inventory(
                self.ctx.registry,
                &repository,
                &subject,
                &inventory,
            )
            .await
            .with_context(|| format!("the inventory of {at} ({platform})"))?;
            out.push(d);
        }
        Ok(out)
    }

    async fn write_page(
        &self,
        content_tags: &[ContentTag],
        facts: Option<anyhow::Result<image_page::PageFacts>>,
    ) -> anyhow::Result<()> {
        let (opts, reference) = (self.page_options(content_tags), &self.planned.reference);
        match facts {
            Some(facts) => image_page::write_facts(reference, &facts?, &opts),
            None => {
                image_page::write_page(self.ctx.spec, &self.planned.key, reference, &opts).await
            }
        }
        .map(|_| ())
    }
}

impl Real<'_, '_> {
    /// The image this build replaces, read from the registry: `<prefix>-stable`, else
    /// `stable`, else the branch's previous build (what the run's tag names before it is
    /// moved); one naming `digest` itself is passed over. Platforms without an attached
    /// inventory get one computed on the BuildKit node, when the tests run there.
    async fn replaced(
        &self,
        digest: &str,
    ) -> anyhow::Result<Option<(crate::changes::ImageSide, String)>> {
        let repository = ImageRef::parse(&self.image.image_name)?;
        let prefix_stable = format!("{}-stable", self.ctx.spec.tag_prefix);
        let own = ImageRef::parse(&self.planned.reference)?;
        let candidates = [
            (
                repository.with_tag(&prefix_stable),
                "the quarter's stable tag".to_string(),
            ),
            (repository.with_tag("stable"), "the stable tag".to_string()),
            (own.clone(), "this branch's previous build".to_string()),
        ];
        for (r, basis) in candidates {
            let Some(head) = self.ctx.registry.head_manifest(&r).await? else {
                continue;
            };
            if head.digest == digest {
                continue;
            }
            let Some(mut side) = crate::changes::read::read_image(self.ctx.registry, &r).await?
            else {
                continue;
            };
            if let Runner::BuildKit(node) = &self.runner {
                let managers = self.managers();
                for p in side.platforms.iter_mut().filter(|p| p.inventory.is_none()) {
                    let at = repository.with_digest(&p.digest);
                    match crate::changes::collect::inventory(
                        &Runner::BuildKit(node.clone()),
                        &at,
                        &p.platform,
                        &managers,
                        self.ctx.test_timeout,
                        &self.ctx.cancel,
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
            return Ok(Some((side, basis)));
        }
        Ok(None)
    }

    fn managers(&self) -> Vec<crate::changes::inventory::Manager> {
        self.image
            .packages
            .iter()
            .filter_map(|m| m.parse().ok())
            .collect()
    }

    /// `artifacts/<image>.packages.json`: each platform's inventory.
    fn write_packages(&self, side: &crate::changes::ImageSide) {
        let path = self.ctx.dirs.packages_json(&self.planned.reference);
        let platforms: Vec<serde_json::Value> = side
            .platforms
            .iter()
            .map(|p| {
                serde_json::json!({
                    "platform": p.platform,
                    "digest": p.digest,
                    "inventory": p.inventory,
                    "source": p.inventory_source,
                })
            })
            .collect();
        let body = serde_json::json!({"image": side.reference, "digest": side.digest, "platforms": platforms});
        let text = serde_json::to_string_pretty(&body).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }

    fn page_options(&self, content_tags: &[ContentTag]) -> PageOptions {
        let ctx = self.ctx;
        PageOptions {
            out_dir: ctx.dirs.manifests(),
            wiki_dir: Some(ctx.dirs.wiki()),
            registry: RegistryAccess {
                credentials: ctx.credentials.clone(),
                insecure: ctx.insecure_registries.to_vec(),
            },
            timeout: ctx.test_timeout,
            cancel: ctx.cancel.clone(),
            content_tags: content_tags.to_vec(),
            runner: self.runner.clone(),
            inventory: true,
        }
    }
}

/// Give the tested image (`<repository>@<digest>`) its tag, read back before it is
/// reported: the tag must name the tested digest.
async fn tag_tested(
    client: &RegistryClient,
    repository: &str,
    digest: &str,
    full: &str,
) -> anyhow::Result<String> {
    let src = ImageRef::parse(&format!("{repository}@{digest}"))?;
    let dst = ImageRef::parse(full)?;
    client.tag_digest(&src, &dst, full).await
}

/// The one image manifest of the index `repository@digest`, beside its attestations; None
/// when it is no such index or cannot be read (children are then built FROM the index).
async fn single_platform(
    registry: &RegistryClient,
    repository: &str,
    digest: &str,
) -> Option<String> {
    let r = ImageRef::parse(&format!("{repository}@{digest}")).ok()?;
    let m = registry
        .get_manifest(&r)
        .await
        .inspect_err(|e| tracing::warn!("{r}: {e}"))
        .ok()??;
    let v: serde_json::Value = serde_json::from_slice(&m.bytes).ok()?;
    let images: Vec<&serde_json::Value> = v["manifests"]
        .as_array()?
        .iter()
        .filter(|e| !crate::registry::attestation::is_attestation_entry(e))
        .collect();
    match images.as_slice() {
        [one] => one["digest"].as_str().map(str::to_string),
        _ => None,
    }
}

/// Each wanted platform's image manifest digest in the pushed `repository@digest`: the
/// index's entries, or the manifest itself when one platform was built. Read back from the
/// registry, so that what is reported is what is there.
pub async fn pushed_manifests(
    registry: &RegistryClient,
    repository: &str,
    digest: &str,
    wanted: &[Platform],
) -> anyhow::Result<Vec<(Platform, String)>> {
    let r = ImageRef::parse(&format!("{repository}@{digest}"))?;
    let m = registry
        .get_manifest(&r)
        .await?
        .with_context(|| format!("{r}: pushed by BuildKit but not found in the registry"))?;
    let is_index = m.media_type == crate::registry::client::OCI_INDEX
        || m.media_type == crate::registry::client::DOCKER_MANIFEST_LIST;
    if !is_index {
        return match wanted {
            [one] => Ok(vec![(one.clone(), m.digest)]),
            _ => Err(anyhow!(
                "{r} is one image manifest ({}), not an index of {}",
                m.media_type,
                platform::list(wanted, ", ")
            )),
        };
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        digest: String,
        platform: Option<Platform>,
    }
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Entry>,
    }
    let index: Index =
        serde_json::from_slice(&m.bytes).with_context(|| format!("{r}: the index is not JSON"))?;
    let mut out = vec![];
    for p in wanted {
        let found = index
            .manifests
            .iter()
            .find(|e| e.platform.as_ref().is_some_and(|q| q.is(p)))
            .with_context(|| {
                format!(
                    "{r}: the pushed index has no manifest for {p} (it lists: {})",
                    index
                        .manifests
                        .iter()
                        .map(|e| e.platform.as_ref().map_or("?/?".into(), |q| q.to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        out.push((p.clone(), found.digest.clone()));
    }
    Ok(out)
}
