//! The set-up of an end-to-end build, made once: buildkitd nodes, a fresh registry, a base
//! image pushed to it, and a git repository holding the stack's spec.
//!
//! ```ignore
//! let Some(Stack { nodes, registry, repo, out, .. }) =
//!     Stack::builder("my_test").buildkitd().python_platforms().repo(|host, base| …).build()
//! else {
//!     return; // no buildkitd on this machine, and not CI
//! };
//! ```

use super::buildkitd::Buildkitd;
use super::example::ExampleRepo;
use super::{Registry, RegistryAuth};
use tempfile::TempDir;

/// What a built set-up holds; dropping it stops the nodes and the registry.
pub struct Stack<R> {
    /// The buildkitd nodes asked for (none: the build goes through the engine).
    pub nodes: Vec<Buildkitd>,
    pub registry: Registry,
    pub repo: R,
    /// An empty folder for the run's artifacts.
    pub out: TempDir,
    /// With two or more nodes: their client files, laid out for `--buildkit-tls-dir`.
    pub tls_dir: Option<TempDir>,
}

/// The base image pushed to the fresh registry before the repository is made.
#[derive(Clone, Copy)]
enum Base {
    None,
    /// The engine's python base as `stackctl-local/debian-python:bookworm` (its reference).
    Python,
    /// The amd64 + arm64 python base index under the same name (its digest).
    PythonPlatforms,
    /// busybox-static for amd64 + arm64 as `stackctl-local/busybox:static` (its digest).
    BusyboxPlatforms,
}

type MakeRepo<R> = Box<dyn FnOnce(&str, &str) -> R>;

pub struct Builder<R> {
    test: String,
    nodes: usize,
    release: super::buildkitd::Release,
    base: Base,
    repo: MakeRepo<R>,
}

impl Stack<()> {
    /// A set-up for the test named `test` (buildkitd's logs are kept under that name).
    pub fn builder(test: &str) -> Builder<()> {
        Builder {
            test: test.to_string(),
            nodes: 0,
            release: super::buildkitd::Release::Default,
            base: Base::None,
            repo: Box::new(|_, _| ()),
        }
    }
}

impl<R> Builder<R> {
    /// One buildkitd node.
    pub fn buildkitd(self) -> Self {
        self.buildkitds(1)
    }

    /// The nodes run this BuildKit release.
    pub fn release(mut self, release: super::buildkitd::Release) -> Self {
        self.release = release;
        self
    }

    /// `n` buildkitd nodes, each with its own root and CA.
    pub fn buildkitds(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// The engine's python base, pushed as `<host>/stackctl-local/debian-python:bookworm`.
    pub fn python(mut self) -> Self {
        self.base = Base::Python;
        self
    }

    /// The python base for linux/amd64 and linux/arm64, pushed as an index under the same name.
    pub fn python_platforms(mut self) -> Self {
        self.base = Base::PythonPlatforms;
        self
    }

    /// busybox-static for linux/amd64 and linux/arm64 (no python), pushed as an index.
    pub fn busybox_platforms(mut self) -> Self {
        self.base = Base::BusyboxPlatforms;
        self
    }

    /// The built-in example stack for the registry, FROM the engine's python base.
    pub fn example(self) -> Builder<ExampleRepo> {
        self.python().repo(|host, _| ExampleRepo::create(host))
    }

    /// A repository `make(host, base)` writes and commits once the base is pushed; `base` is
    /// the pushed base's reference (python) or digest (the two-platform indexes), or empty.
    pub fn repo<S>(self, make: impl FnOnce(&str, &str) -> S + 'static) -> Builder<S> {
        Builder {
            test: self.test,
            nodes: self.nodes,
            release: self.release,
            base: self.base,
            repo: Box::new(make),
        }
    }

    /// Start it all; `None` when a buildkitd was asked for and this machine has none
    /// (outside CI, where [`Buildkitd::start`] skips).
    pub fn build(self) -> Option<Stack<R>> {
        let mut nodes = vec![];
        for i in 0..self.nodes {
            match Buildkitd::start_release(&self.test, self.release) {
                Some(node) => nodes.push(node),
                None if i == 0 => return None,
                None => panic!("{}: one buildkitd started already", self.test),
            }
        }
        let tls_dir = (nodes.len() > 1).then(|| {
            let dir = tempfile::tempdir().unwrap();
            for node in &nodes {
                node.write_tls_dir(dir.path());
            }
            dir
        });
        super::docker_socket();
        let registry = Registry::start(RegistryAuth::None);
        let host = registry.host();
        let base = match self.base {
            Base::None => String::new(),
            Base::Python => {
                let local = super::images::base_image();
                block_on(super::images::push(
                    &local,
                    &host,
                    "stackctl-local/debian-python",
                    "bookworm",
                    false,
                ))
            }
            Base::PythonPlatforms => block_on(super::platforms::push_python_base(&host)),
            Base::BusyboxPlatforms => block_on(super::platforms::push_busybox_base(&host)),
        };
        let repo = (self.repo)(&host, &base);
        Some(Stack {
            nodes,
            registry,
            repo,
            out: tempfile::tempdir().unwrap(),
            tls_dir,
        })
    }
}

/// Run a future to its end on a runtime of its own (the builder serves sync tests).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}
