//! Where a build's files go, relative to one root (the working directory by
//! default, `--artifacts DIR` otherwise):
//! `artifacts/`, `logs/`, `manifests/`, `wiki/`, named as the old tool named them.

use crate::report::names::{page_name, safe_name};
use std::path::{Path, PathBuf};

/// The folders of one build's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactDirs {
    root: PathBuf,
}

impl ArtifactDirs {
    /// Output under `root` (which need not exist yet; see [`ArtifactDirs::create`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ArtifactDirs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create `artifacts/`, `logs/` and `manifests/` (the wiki is a clone, made elsewhere).
    pub fn create(&self) -> std::io::Result<()> {
        for d in [self.artifacts(), self.logs(), self.manifests()] {
            std::fs::create_dir_all(&d).map_err(|e| with_path(e, &d))?;
        }
        Ok(())
    }

    pub fn artifacts(&self) -> PathBuf {
        self.root.join("artifacts")
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn manifests(&self) -> PathBuf {
        self.root.join("manifests")
    }

    pub fn wiki(&self) -> PathBuf {
        self.root.join("wiki")
    }

    /// `artifacts/<safe name>.yaml`: one started image's result.
    pub fn image_yaml(&self, full_name: &str) -> PathBuf {
        self.artifacts()
            .join(format!("{}.yaml", safe_name(full_name)))
    }

    /// `artifacts/IMAGES_BUILT` (or another list named like it: `IMAGES_TAGGED`, ...).
    pub fn image_list(&self, name: &str) -> PathBuf {
        self.artifacts().join(name)
    }

    /// `artifacts/changes.md`: what changed in each image since the one it replaces.
    pub fn changes(&self) -> PathBuf {
        self.artifacts().join("changes.md")
    }

    /// `artifacts/<safe name>.packages.json`: each platform's package inventory.
    pub fn packages_json(&self, full_name: &str) -> PathBuf {
        self.artifacts()
            .join(format!("{}.packages.json", safe_name(full_name)))
    }

    /// `logs/run.log`: the whole run's log lines.
    pub fn run_log(&self) -> PathBuf {
        self.logs().join("run.log")
    }

    /// `logs/<safe name><suffix>`: one of an image's logs.
    fn image_log(&self, full_name: &str, suffix: &str) -> PathBuf {
        self.logs()
            .join(format!("{}{suffix}", safe_name(full_name)))
    }

    /// `logs/<safe name>.build.log`: BuildKit's output for one image, with step times.
    pub fn build_log(&self, full_name: &str) -> PathBuf {
        self.image_log(full_name, ".build.log")
    }

    /// `logs/<safe name>.basic-tests.log`: the basic tests' pytest output.
    pub fn basic_tests_log(&self, full_name: &str) -> PathBuf {
        self.suite_files(full_name, "basic", None).0
    }

    /// A test suite's log and JUnit report: `logs/<safe name>[.<platform>].<suite>-tests.log`
    /// and `.xml` (`suite`: `basic` or `integration`; `platform`: its file form,
    /// `linux-arm64`, for one platform's run of a multi-platform image).
    pub fn suite_files(
        &self,
        full_name: &str,
        suite: &str,
        platform: Option<&str>,
    ) -> (PathBuf, PathBuf) {
        let middle = platform.map(|p| format!(".{p}")).unwrap_or_default();
        (
            self.image_log(full_name, &format!("{middle}.{suite}-tests.log")),
            self.image_log(full_name, &format!("{middle}.{suite}-tests.xml")),
        )
    }

    /// `manifests/<page>.md`: the image's manifest page.
    pub fn manifest_page(&self, full_name: &str) -> PathBuf {
        self.manifests()
            .join(format!("{}.md", page_name(full_name)))
    }

    /// `wiki/<page>.md`: the same page in the wiki clone.
    pub fn wiki_page(&self, full_name: &str) -> PathBuf {
        self.wiki().join(format!("{}.md", page_name(full_name)))
    }
}

/// An io error that names the file it is about.
pub(crate) fn with_path(e: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_formats_md_names_them() {
        let d = ArtifactDirs::new("/out");
        let full = "ghcr.io/ucsd-ets/datascience-notebook:2026.3-main";
        let cases = [
            (
                d.image_yaml(full),
                "/out/artifacts/ghcr.io-ucsd-ets-datascience-notebook-2026.3-main.yaml",
            ),
            (d.image_list("IMAGES_BUILT"), "/out/artifacts/IMAGES_BUILT"),
            (d.run_log(), "/out/logs/run.log"),
            (
                d.build_log(full),
                "/out/logs/ghcr.io-ucsd-ets-datascience-notebook-2026.3-main.build.log",
            ),
            (
                d.basic_tests_log(full),
                "/out/logs/ghcr.io-ucsd-ets-datascience-notebook-2026.3-main.basic-tests.log",
            ),
            (
                d.manifest_page(full),
                "/out/manifests/ghcr-io-ucsd-ets-datascience-notebook-2026.3-main.md",
            ),
            (
                d.wiki_page(full),
                "/out/wiki/ghcr-io-ucsd-ets-datascience-notebook-2026.3-main.md",
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(path.to_string_lossy(), expected);
        }
        // One platform's run: the platform before the suffix (the safe name holds dots).
        let (log, junit) = d.suite_files(
            "127.0.0.1:5111/ex/base:2026.3-main",
            "basic",
            Some("linux-arm64"),
        );
        assert_eq!(
            log.to_string_lossy(),
            "/out/logs/127.0.0.1-5111-ex-base-2026.3-main.linux-arm64.basic-tests.log"
        );
        assert_eq!(
            junit.to_string_lossy(),
            "/out/logs/127.0.0.1-5111-ex-base-2026.3-main.linux-arm64.basic-tests.xml"
        );
    }

    #[test]
    fn create_makes_the_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let d = ArtifactDirs::new(tmp.path().join("nested/out"));
        d.create().unwrap();
        assert!(d.artifacts().is_dir());
        assert!(d.logs().is_dir());
        assert!(d.manifests().is_dir());
        // Idempotent.
        d.create().unwrap();
    }
}
