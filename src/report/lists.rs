//! `artifacts/IMAGES_BUILT` and the other lists of full image names, one a line.

use super::dirs::{with_path, ArtifactDirs};
use super::image::ImageReport;
use std::path::PathBuf;

/// The file name of the list of images a build built.
pub const IMAGES_BUILT: &str = "IMAGES_BUILT";

/// Write `artifacts/<name>`: one full image name a line, each line ended by `\n`
/// (an empty list makes an empty file). Returns its path.
pub fn write_image_list<S: AsRef<str>>(
    dirs: &ArtifactDirs,
    name: &str,
    images: &[S],
) -> std::io::Result<PathBuf> {
    let path = dirs.image_list(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| with_path(e, parent))?;
    }
    let text: String = images.iter().map(|i| format!("{}\n", i.as_ref())).collect();
    std::fs::write(&path, text).map_err(|e| with_path(e, &path))?;
    Ok(path)
}

/// The images a build built and that passed every step, in the reports' order; not a split
/// build's images (`awaiting_merge`), whose tag does not exist until `stackctl merge`.
pub fn built_images(reports: &[&ImageReport]) -> Vec<String> {
    reports
        .iter()
        .filter(|r| r.built && r.success && !r.awaiting_merge)
        .map(|r| r.image.clone())
        .collect()
}

/// Write `artifacts/IMAGES_BUILT` from the started images' reports.
pub fn write_images_built(
    dirs: &ArtifactDirs,
    reports: &[&ImageReport],
) -> std::io::Result<PathBuf> {
    write_image_list(dirs, IMAGES_BUILT, &built_images(reports))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ImageStep;
    use std::time::Duration;

    fn report(key: &str, ok: bool) -> ImageReport {
        let mut r = ImageReport::started(key, format!("127.0.0.1:5111/ex/{key}:2026.3-main"));
        r.built = true;
        if !ok {
            r.fail(ImageStep::BasicTests, "tests failed");
        }
        r.finish(Duration::from_secs(1));
        r
    }

    #[test]
    fn images_built_lists_the_successful_images() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = ArtifactDirs::new(tmp.path());
        let (a, b, c) = (
            report("base", true),
            report("analysis", false),
            report("service", true),
        );
        let path = write_images_built(&dirs, &[&a, &b, &c]).unwrap();
        assert_eq!(path, tmp.path().join("artifacts/IMAGES_BUILT"));
        assert_eq!(
            std::fs::read_to_string(path).unwrap(),
            "127.0.0.1:5111/ex/base:2026.3-main\n127.0.0.1:5111/ex/service:2026.3-main\n"
        );
    }

    #[test]
    fn a_split_builds_images_are_not_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = ArtifactDirs::new(tmp.path());
        let mut waiting = report("base", true);
        waiting.awaiting_merge = true;
        let path = write_images_built(&dirs, &[&waiting]).unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "");
    }

    #[test]
    fn an_empty_list_is_an_empty_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = ArtifactDirs::new(tmp.path());
        let path = write_image_list::<&str>(&dirs, "IMAGES_TAGGED", &[]).unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "");
    }
}
