//! The validated spec, as the rest of stackctl sees it.

use indexmap::IndexMap;
use std::path::PathBuf;

/// A loaded and validated stack spec.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The spec file it was read from.
    pub path: PathBuf,
    /// The folder holding one sub-folder per image (`images/`).
    pub images_dir: PathBuf,
    /// Root images, in the order `root` names them, then other images without a parent in spec order.
    pub roots: Vec<String>,
    /// Images keyed by their folder name, in spec order.
    pub images: IndexMap<String, ImageSpec>,
    /// `tag.prefix`, e.g. `2026.3`.
    pub tag_prefix: String,
    /// `tag.suffix`: what follows the prefix in a build's tag (branch, or short commit).
    pub tag_suffix: crate::tag::TagSuffix,
    /// Info commands the images may name in `info_cmds`.
    pub all_info_cmds: IndexMap<String, InfoCmd>,
    /// Which changed entries under `images/` are ignored or rebuild everything.
    pub changes: ChangeRules,
    /// `sign.key`: the key that signs each tested image, resolved from the spec's folder.
    pub sign_key: Option<PathBuf>,
    /// Non-fatal remarks found while loading (unknown keys and the like).
    pub warnings: Vec<String>,
}

/// One image of the stack.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    /// The key in `images:`, also the folder `images/<key>/`.
    pub key: String,
    /// The repository, without a tag: `ghcr.io/ucsd-ets/datascience-notebook`.
    pub image_name: String,
    /// The parent image's key (`depend_on`).
    pub depend_on: Option<String>,
    /// Build arguments from the spec, in spec order (values made strings).
    pub build_args: IndexMap<String, String>,
    /// Keys of `all_info_cmds` to run for the manifest page, in order.
    pub info_cmds: Vec<String>,
    /// Whether `images/<key>/integration_tests` runs after the push.
    pub integration_tests: bool,
    /// Whether builder space is reclaimed after this image.
    pub prune: bool,
    /// Old tool: whether the registry is used as a build cache for this image.
    pub prepull: bool,
    /// How the image's tests run (`tests:` in the spec), defaults when absent.
    pub tests: TestSpec,
    /// Where its build cache goes and comes from (`cache:`, the stack's merged with its own).
    pub cache: super::CacheSpec,
    /// What BuildKit attaches: provenance, an SBOM (the stack's `attest:` and the image's).
    pub attest: super::attest::AttestSpec,
    /// The package managers its inventory lists (`packages:`, the image's own list, else
    /// the stack's); empty: whichever the image has.
    pub packages: Vec<String>,
    /// Its compressed size limits (`size_budget:`, the stack's merged with its own).
    pub size_budget: super::compare::SizeBudget,
    /// Content tag templates (`tags:`): the image's own list, else the stack's.
    pub tags: Vec<super::TagTemplate>,
    /// Target platforms (`platforms:`, the image's own list, else the stack's), e.g.
    /// `linux/amd64`; empty: the builder's own platform. More than one makes an index.
    pub platforms: Vec<super::platform::Platform>,
    /// Platforms the integration tests run on (`integration_platforms:`, the image's own,
    /// else the stack's); empty: once, on the runner's native platform.
    pub integration_platforms: Vec<super::platform::Platform>,
    /// Build with `SOURCE_DATE_EPOCH` and rewritten timestamps (`reproducible:`, the
    /// image's own, else the stack's; default true), so that unchanged inputs give the
    /// same platform manifests.
    pub reproducible: bool,
    /// The 1-based line of the image's key in the spec file, for messages.
    pub line: Option<usize>,
}

impl ImageSpec {
    /// The folder of the image: `images/<key>/`.
    pub fn dir(&self, spec: &Spec) -> PathBuf {
        spec.images_dir.join(&self.key)
    }

    /// The build arguments of a build tagged `tag`: the spec's, plus, for a child image,
    /// `BASE_TAG=<tag>` (`<tag>@<parent_digest>` when the parent's digest is known, so that
    /// it builds FROM that exact image). A `BASE_TAG` the spec sets is kept as it is. Also
    /// returns the parent digest `BASE_TAG` names, if any.
    pub fn build_args_for(
        &self,
        tag: &str,
        parent_digest: Option<&str>,
    ) -> (IndexMap<String, String>, Option<String>) {
        let mut args = self.build_args.clone();
        if self.depend_on.is_none() || args.contains_key("BASE_TAG") {
            return (args, None);
        }
        let (value, named) = match parent_digest {
            Some(d) => (format!("{tag}@{d}"), Some(d.to_string())),
            None => (tag.to_string(), None),
        };
        args.insert("BASE_TAG".into(), value);
        (args, named)
    }
}

/// A command to run in an image, with what it is for (an info command of the spec, run by
/// [`crate::containers::commands`] for manifest pages).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InfoCmd {
    pub description: String,
    pub command: String,
}

/// How an image's tests run. Every field is optional in the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// The command that runs the basic tests inside the image (default: `python3 -m pytest -x`).
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Settings for the integration suite.
    #[serde(default)]
    pub integration: Option<IntegrationSpec>,
    /// Where the basic tests, info commands and content tag commands run (the image's own,
    /// else the stack's `tests.runner`); None: see [`RunnerKind::default_for`].
    #[serde(default)]
    pub runner: Option<RunnerKind>,
    /// Reuse a pass from BuildKit's cache for the same image digest and test files (the
    /// image's own, else the stack's `tests.cache`; BuildKit runner only). Default: never.
    #[serde(default)]
    pub cache: Option<bool>,
    /// Skip the tests of a rebuilt image whose platform manifests equal those its tag
    /// already names (the image's own, else the stack's). Default: they run, since a
    /// moved base may be the reason of the rebuild.
    #[serde(default)]
    pub skip_unchanged: Option<bool>,
}

/// The stack's `tests:`: what every image's `tests:` defaults to.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackTestSpec {
    #[serde(default)]
    pub runner: Option<RunnerKind>,
    #[serde(default)]
    pub cache: Option<bool>,
    #[serde(default)]
    pub skip_unchanged: Option<bool>,
}

/// Where commands run in an image: on the BuildKit node that built it, or in containers of a
/// Docker engine (which pulls the image). Integration tests always run in the engine.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    Buildkit,
    Engine,
}

impl RunnerKind {
    /// The runner when the spec names none: BuildKit when the image is built by a standalone
    /// buildkitd (it holds the image), the engine when built by the engine's BuildKit (the
    /// image is already in the engine).
    pub fn default_for(built_by_engine: bool) -> RunnerKind {
        if built_by_engine {
            RunnerKind::Engine
        } else {
            RunnerKind::Buildkit
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RunnerKind::Buildkit => "buildkit",
            RunnerKind::Engine => "engine",
        }
    }
}

/// How the image runs as a service for its integration tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSpec {
    /// The port the service listens on inside its container.
    #[serde(default)]
    pub port: Option<u16>,
    /// A log line that says the service is ready (else: the port accepts connections).
    #[serde(default)]
    pub wait_log: Option<String>,
    /// The image the integration tests run in (default: the image itself).
    #[serde(default)]
    pub runner_image: Option<String>,
    /// The command that runs the tests in the runner (default: `python3 -m pytest -x`).
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

/// The change rules: names of entries directly under `images/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChangeRules {
    /// Changes to these entries are ignored.
    pub ignore: Vec<String>,
    /// A change to one of these entries rebuilds every image.
    pub build_all: Vec<String>,
    /// Where the rules came from (for messages), if anywhere.
    pub source: Option<PathBuf>,
}

impl Spec {
    /// The image with this key.
    pub fn image(&self, key: &str) -> Option<&ImageSpec> {
        self.images.get(key)
    }

    /// The children of `key`, in spec order.
    pub fn children<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a ImageSpec> + 'a {
        self.images
            .values()
            .filter(move |i| i.depend_on.as_deref() == Some(key))
    }

    /// Every image, parents before children: roots in `roots` order, each
    /// followed by its subtree (depth first, spec order among siblings).
    pub fn topological(&self) -> Vec<&ImageSpec> {
        let kids = self.children_index();
        let mut out = Vec::with_capacity(self.images.len());
        let mut stack: Vec<&str> = self.roots.iter().rev().map(String::as_str).collect();
        while let Some(key) = stack.pop() {
            let Some(img) = self.images.get(key) else {
                continue;
            };
            out.push(img);
            if let Some(k) = kids.get(key) {
                stack.extend(k.iter().rev());
            }
        }
        out
    }

    /// The keys of `key` and every image below it.
    pub fn descendants_of(&self, key: &str) -> Vec<String> {
        let kids = self.children_index();
        let mut out = vec![];
        let mut todo = vec![key];
        while let Some(k) = todo.pop() {
            for c in kids.get(k).into_iter().flatten() {
                out.push(c.to_string());
                todo.push(c);
            }
        }
        out
    }

    /// Each parent's children keys, in spec order: one pass, so that walking the tree
    /// stays linear in the number of images.
    fn children_index(&self) -> std::collections::HashMap<&str, Vec<&str>> {
        let mut kids: std::collections::HashMap<&str, Vec<&str>> = Default::default();
        for i in self.images.values() {
            if let Some(p) = &i.depend_on {
                kids.entry(p.as_str()).or_default().push(i.key.as_str());
            }
        }
        kids
    }

    /// The ancestors of `key`, nearest first.
    pub fn ancestors_of(&self, key: &str) -> Vec<String> {
        let mut out = vec![];
        let mut cur = self.images.get(key).and_then(|i| i.depend_on.clone());
        while let Some(p) = cur {
            if out.contains(&p) {
                break;
            }
            cur = self.images.get(&p).and_then(|i| i.depend_on.clone());
            out.push(p);
        }
        out
    }
}
