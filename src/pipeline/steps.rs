//! What one image's steps run against: the job's context (what every image of a run
//! shares), the image's own data, and the small traits the step order ([`super::image`])
//! calls. [`super::services`] has the real implementations; the unit tests
//! (`image/tests.rs`) have test doubles.

use super::platforms::Selection;
use crate::buildkit::BuildError;
use crate::containers::suite::{Suite, SuiteResult};
use crate::content_tags::publish::{ContentTag, Rendered};
use crate::credentials::CredentialStore;
use crate::registry::RegistryClient;
use crate::report::ArtifactDirs;
use crate::spec::platform::Platform;
use crate::spec::{Spec, TagTemplate};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What every image of a run shares.
pub struct ImageJobContext<'a> {
    pub spec: &'a Spec,
    pub registry: &'a RegistryClient,
    pub credentials: &'a CredentialStore,
    pub insecure_registries: &'a [String],
    pub dirs: &'a ArtifactDirs,
    /// Push images (and then run integration tests and write manifest pages).
    pub push: bool,
    /// The run's tag (`<prefix>-<branch>`).
    pub tag: String,
    /// Image key → the manifest digest its children build FROM: set at the start for the
    /// images that do not rebuild (the digest their tag names), and when an image of the
    /// run has passed its basic tests (and, through an engine, been pushed).
    pub digests: Mutex<HashMap<String, String>>,
    /// References the registry check found (and the quarter-stable tags that exist), usable
    /// as `--cache-from` without pulling.
    pub existing: &'a HashSet<String>,
    pub test_timeout: Duration,
    pub cancel: CancellationToken,
    /// Set when BuildKit could not be reached during the run: the run then exits 2.
    pub service_error: Mutex<Option<String>>,
    /// The commit built (content tags' `{commit}`).
    pub commit: String,
    /// The repository's web URL, recorded in each image.
    pub source: Option<String>,
    /// When the run started (content tags' `{date}`).
    pub build_time: chrono::DateTime<chrono::Utc>,
    /// Signs each tested image before it gets its tag (`sign:`, `--sign-key`).
    pub signer: Option<&'a crate::signing::Signer>,
    /// `--platform`: build only these of each image's platforms (empty: all it declares).
    pub platforms: Vec<Platform>,
    /// Build with no cache at all (`--no-cache`).
    pub no_cache: bool,
}

impl ImageJobContext<'_> {
    pub(crate) fn digest_of(&self, key: &str) -> Option<String> {
        let m = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        m.get(key).cloned()
    }
}

/// What the steps know of one image (plain data; the services are the [`Parts`]).
pub(crate) struct ImageJob<'a> {
    pub key: &'a str,
    /// `<repository>:<tag>`, the tag the tested image gets.
    pub reference: &'a str,
    /// The repository, without a tag.
    pub repository: &'a str,
    /// Push the image (and then run integration tests, push content tags, write the page).
    pub push: bool,
    pub integration_tests: bool,
    /// The content tag templates (`tags:`).
    pub content_tags: &'a [TagTemplate],
    /// The platforms built in this run, and whether the build is split (`--platform`).
    pub selection: &'a Selection,
    /// The platforms the integration tests run on (`integration_platforms:`).
    pub integration_platforms: &'a [Platform],
    /// An unchanged rebuild is not tested again (`tests: {skip_unchanged: true}`).
    pub skip_unchanged: bool,
    pub cancel: &'a CancellationToken,
}

/// What the images of a run share while they run.
pub(crate) struct RunState<'a> {
    /// Image key → the digest its children build FROM (see [`ImageJobContext::digests`]).
    pub digests: &'a Mutex<HashMap<String, String>>,
    /// The first "BuildKit cannot be reached" of the run (it then exits 2).
    pub service_error: &'a Mutex<Option<String>>,
}

impl RunState<'_> {
    pub(crate) fn record_digest(&self, key: &str, digest: &str) {
        let mut m = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(key.to_string(), digest.to_string());
    }

    pub(crate) fn service_unavailable(&self, message: &str) {
        let mut first = self.service_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| message.to_string());
    }
}

/// A built image.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    /// The digest BuildKit pushed it by, without a tag (through a buildkitd); None when it
    /// is in the engine.
    pub pushed_digest: Option<String>,
    /// What the tests run: the image in the engine, or the pushed manifest by digest.
    pub test_ref: String,
    /// What children are built FROM, when not `pushed_digest`: the one platform's manifest
    /// of an index that BuildKit made only to hold attestations. Such an index changes
    /// digest with every build (its provenance has the build's times), and BuildKit keys a
    /// child's cache on the digest the child is built FROM, so a child rebuilt on a fresh
    /// node would miss its registry cache.
    pub base_digest: Option<String>,
    /// The digest the image's tag already names, when its platform manifests are those
    /// just built: the rebuild changed nothing, and the tag is left as it is.
    pub unchanged: Option<String>,
}

impl Built {
    /// The digest children are built FROM (`BASE_TAG=<tag>@<digest>`).
    pub fn parent_of_children(&self) -> Option<&str> {
        self.base_digest
            .as_deref()
            .or(self.pushed_digest.as_deref())
    }
}

/// Builds the image (BuildKit).
pub(crate) trait Builder {
    /// The parent digest the request's `BASE_TAG` names (recorded in the report, also when
    /// the build fails).
    fn parent_digest(&self) -> Option<String>;
    /// Build the image: it is then in the engine, or pushed by digest.
    async fn build(&self) -> Result<Built, BuildError>;
}

/// Runs what runs in containers of the image: its test suites, its content tags' commands.
pub(crate) trait TestRunner {
    /// Run `suite` against `image_ref`: one platform's manifest of a multi-platform build
    /// (`platform`: its log and JUnit file are that platform's), else the image itself.
    async fn run_suite(
        &self,
        suite: Suite,
        image_ref: &str,
        platform: Option<&Platform>,
    ) -> anyhow::Result<SuiteResult>;
    /// Run the templates' commands in `image_ref` and render the content tags.
    async fn content_tag_values(
        &self,
        image_ref: &str,
        templates: &[TagTemplate],
    ) -> anyhow::Result<Vec<Rendered>>;
}

/// The registry side (or the engine's push): reads a pushed image back, gives the tested
/// image its tag and its content tags.
pub(crate) trait Publisher {
    /// Give the tested image its tag: through an engine, the engine pushes it; through a
    /// buildkitd, a manifest PUT tags the tested digest. Returns the digest the tag names,
    /// read back.
    async fn publish(&self, built: &Built) -> anyhow::Result<String>;
    /// After an interrupt cut [`Self::publish`]: the digest the tag names, read back from
    /// the registry, if it is the tested image's (a cancelled PUT may have landed); None
    /// when it names anything else, is absent, or (the default, an engine's push) what was
    /// pushed cannot be told from what was there.
    async fn read_back_tag(&self, built: &Built) -> anyhow::Result<Option<String>> {
        let _ = built;
        Ok(None)
    }
    /// Sign `digest` (the tested image) and its platforms' manifests `manifests`, before
    /// it gets its tag (through the engine, right after its push); the digests signed.
    /// Nothing when the run has no key.
    async fn sign(&self, digest: &str, manifests: &[String]) -> anyhow::Result<Vec<String>> {
        let _ = (digest, manifests);
        Ok(vec![])
    }
    /// Each of `platforms`' manifest digest in the image BuildKit pushed as
    /// `<repository>@<digest>`, read back from the registry.
    async fn pushed_manifests(
        &self,
        digest: &str,
        platforms: &[Platform],
    ) -> anyhow::Result<Vec<(Platform, String)>>;
    /// Push the content tags for the tested `digest`: the records and the warnings (a tag
    /// kept on another digest).
    async fn content_tags(
        &self,
        digest: &str,
        tags: &[Rendered],
    ) -> anyhow::Result<(Vec<ContentTag>, Vec<String>)>;
}

/// What comparing an image with the one it replaces found (see [`PageWriter::review`]).
#[derive(Debug, Default)]
pub(crate) struct Review {
    pub changes: Option<crate::changes::Changes>,
    /// The size budget's breaches, a line per platform.
    pub breaches: Vec<String>,
    /// A breach fails the image (`on_exceed: fail`).
    pub fail: bool,
    pub warnings: Vec<String>,
}

/// Writes the image's manifest page.
pub(crate) trait PageWriter {
    /// What the page shows of the image apart from its content tags.
    type Facts;
    /// Gather the page's facts for the pushed `digest`: its info commands run while the
    /// tests do, and the page waits only for what is left.
    async fn gather(&self, digest: &str) -> anyhow::Result<Self::Facts>;
    /// Compare the image `digest` (its `facts`, which get the comparison for the page) with
    /// the image it replaces, and check its size budget. Nothing by default.
    async fn review(
        &self,
        digest: &str,
        facts: &mut Option<anyhow::Result<Self::Facts>>,
    ) -> Review {
        let _ = (digest, facts);
        Review::default()
    }
    /// Attach each platform's package inventory in `facts` to its manifest in the
    /// registry; the artifacts' digests. Nothing by default.
    async fn attach_inventories(
        &self,
        facts: &Option<anyhow::Result<Self::Facts>>,
    ) -> anyhow::Result<Vec<String>> {
        let _ = facts;
        Ok(vec![])
    }
    /// Write the page of the pushed image, with its content tags, from the facts gathered
    /// (None: gathered now, from its tag).
    async fn write_page(
        &self,
        content_tags: &[ContentTag],
        facts: Option<anyhow::Result<Self::Facts>>,
    ) -> anyhow::Result<()>;
}

/// The services the steps run against.
pub(crate) struct Parts<'a, B, T, P, M> {
    pub builder: &'a B,
    pub tests: &'a T,
    pub publisher: &'a P,
    pub pages: &'a M,
}
