//! Which platforms an image builds in this run (its `platforms:`, narrowed by
//! `--platform`), whether the builder can, and which platform's manifest content tags and
//! a split build's integration tests use. Pure: the calls to services are in
//! [`super::services`], the per-platform tests in [`super::platform_steps`].

use crate::spec::platform::{self, Platform};
use crate::spec::ImageSpec;

/// The platforms one image builds in this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Passed to BuildKit; empty: the builder's own platform (nothing declared).
    pub platforms: Vec<Platform>,
    /// `--platform` named only some of the image's platforms: the image is pushed by
    /// digest and tested, and gets no tag (it waits for `stackctl merge`).
    pub split: bool,
}

/// The platforms of `image` this run builds: all it declares, or those of `wanted`
/// (`--platform`). An error names the image and what it declares.
pub fn select(image: &ImageSpec, wanted: &[Platform]) -> Result<Selection, String> {
    if wanted.is_empty() {
        return Ok(Selection {
            platforms: image.platforms.clone(),
            split: false,
        });
    }
    if image.platforms.is_empty() {
        return Err(format!(
            "--platform {}: image `{}` declares no `platforms:` in the spec (declare them for \
             the stack or the image, so that a split build knows what the merge must find)",
            platform::list(wanted, ","),
            image.key
        ));
    }
    let platforms: Vec<Platform> = image
        .platforms
        .iter()
        .filter(|p| wanted.contains(p))
        .cloned()
        .collect();
    if platforms.is_empty() {
        return Err(format!(
            "--platform {}: image `{}` is not built for it (its platforms: {})",
            platform::list(wanted, ","),
            image.key,
            platform::list(&image.platforms, ", ")
        ));
    }
    Ok(Selection {
        split: platforms.len() < image.platforms.len(),
        platforms,
    })
}

/// Whether the builder can build `sel`: the engine's v0.8 worker (moby exporter) loads
/// one platform's image into the engine and cannot push by digest, so more than one
/// platform, or a split build, needs a buildkitd. The message names the alternative.
pub fn check_builder(
    key: &str,
    sel: &Selection,
    moby_worker: bool,
    address: &str,
) -> Result<(), String> {
    if !moby_worker {
        return Ok(());
    }
    if sel.platforms.len() > 1 {
        return Err(format!(
            "image `{key}` is built for {} platforms ({}): the Docker engine's BuildKit at \
             {address} builds one platform into the engine and cannot push an index; use a \
             buildkitd: --buildkit tcp://HOST:PORT (or unix:///run/buildkit/buildkitd.sock)",
            sel.platforms.len(),
            platform::list(&sel.platforms, ", ")
        ));
    }
    if sel.split {
        return Err(format!(
            "image `{key}`: a split build (--platform {}) pushes by digest without a tag, which \
             the Docker engine's BuildKit at {address} cannot; use a buildkitd: --buildkit \
             tcp://HOST:PORT (or unix:///run/buildkit/buildkitd.sock)",
            platform::list(&sel.platforms, ",")
        ));
    }
    Ok(())
}

/// What content tags are computed in: the native platform's manifest of a multi-platform
/// image (else its first platform's, when it is not built for this machine), or `test_ref`.
pub fn native_ref(repository: &str, manifests: &[(Platform, String)], test_ref: &str) -> String {
    let native = platform::native();
    match manifests
        .iter()
        .find(|(p, _)| *p == native)
        .or(manifests.first())
    {
        Some((_, d)) => format!("{repository}@{d}"),
        None => test_ref.to_string(),
    }
}

/// Where a split build runs the integration tests (no tag to run them against): on the
/// spec's `integration_platforms` built in this run (none built here: they run on the
/// runner that builds them), else once, on the native platform's manifest, or the first
/// platform's when this run does not build the native one.
pub fn split_integration_targets(
    integration_platforms: &[Platform],
    manifests: &[(Platform, String)],
) -> Vec<(Platform, String)> {
    if !integration_platforms.is_empty() {
        return manifests
            .iter()
            .filter(|(p, _)| integration_platforms.contains(p))
            .cloned()
            .collect();
    }
    let native = platform::native();
    manifests
        .iter()
        .find(|(p, _)| *p == native)
        .or(manifests.first())
        .into_iter()
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ps(platforms: &[&str]) -> Vec<Platform> {
        platforms.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn image(platforms: &[&str]) -> ImageSpec {
        let text = "tag: {prefix: \"1\"}\nimages:\n  base:\n    image_name: r/base\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images/base")).unwrap();
        std::fs::write(dir.path().join("images/base/Dockerfile"), "FROM scratch\n").unwrap();
        let spec = crate::spec::Spec::from_str_at(text, &dir.path().join("spec.yml")).unwrap();
        let mut i = spec.images["base"].clone();
        i.platforms = ps(platforms);
        i
    }

    #[test]
    fn selections() {
        let both = image(&["linux/amd64", "linux/arm64"]);
        let s = |w: &[&str]| select(&both, &ps(w));
        assert_eq!(
            s(&[]).unwrap().platforms,
            ps(&["linux/amd64", "linux/arm64"])
        );
        assert!(!s(&[]).unwrap().split);
        let arm = s(&["linux/arm64"]).unwrap();
        assert_eq!(
            (arm.platforms.as_slice(), arm.split),
            (&ps(&["linux/arm64"])[..], true)
        );
        assert!(!s(&["linux/arm64", "linux/amd64"]).unwrap().split);
        let e = s(&["linux/s390x"]).unwrap_err();
        assert!(
            e.contains(
                "image `base` is not built for it (its platforms: linux/amd64, linux/arm64)"
            ),
            "{e}"
        );
        let e = select(&image(&[]), &ps(&["linux/arm64"])).unwrap_err();
        assert!(e.contains("declares no `platforms:`"), "{e}");
    }

    #[test]
    fn the_engine_builds_one_platform() {
        let two = Selection {
            platforms: ps(&["linux/amd64", "linux/arm64"]),
            split: false,
        };
        let e =
            check_builder("base", &two, true, "docker-unix:///var/run/docker.sock").unwrap_err();
        assert!(e.contains("--buildkit tcp://"), "{e}");
        assert!(check_builder("base", &two, false, "tcp://x:1").is_ok());
        let split = Selection {
            platforms: ps(&["linux/arm64"]),
            split: true,
        };
        assert!(check_builder("base", &split, true, "docker")
            .unwrap_err()
            .contains("split build"));
        let one = Selection {
            platforms: ps(&["linux/arm64"]),
            split: false,
        };
        assert!(check_builder("base", &one, true, "docker").is_ok());
    }

    #[test]
    fn content_tags_run_on_the_native_platform() {
        let native = platform::native();
        let m = vec![
            ("linux/s390x".parse().unwrap(), "sha256:1".to_string()),
            (native, "sha256:2".to_string()),
        ];
        assert_eq!(native_ref("r/x", &m, "r/x@sha256:i"), "r/x@sha256:2");
        assert_eq!(native_ref("r/x", &m[..1], "r/x@sha256:i"), "r/x@sha256:1");
        assert_eq!(native_ref("r/x", &[], "r/x@sha256:i"), "r/x@sha256:i");
    }

    #[test]
    fn a_split_builds_integration_tests() {
        let native = platform::native();
        let native = native.to_string();
        let m = |list: &[&str]| -> Vec<(Platform, String)> {
            ps(list)
                .into_iter()
                .map(|p| (p.clone(), format!("sha256:{p}")))
                .collect()
        };
        let both = m(&["linux/s390x", &native]);
        assert_eq!(split_integration_targets(&[], &both), m(&[&native]));
        assert_eq!(split_integration_targets(&[], &both[..1]), both[..1]);
        let on = ps(&["linux/s390x"]);
        assert_eq!(split_integration_targets(&on, &both), both[..1]);
        assert!(split_integration_targets(&on, &both[1..]).is_empty());
    }
}
