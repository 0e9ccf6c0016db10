//! Whether a run needs a Docker engine, decided before anything is built: through a
//! buildkitd, only images with integration tests (a service and a runner on one network) or
//! `tests: {runner: engine}` do; the others run their commands on the BuildKit node.

use crate::spec::{ImageSpec, RunnerKind};

/// Where image `image`'s basic tests, info commands and content tag commands run when built
/// on a BuildKit whose images land in an engine (`built_by_engine`) or not.
pub fn runner_of(image: &ImageSpec, built_by_engine: bool) -> RunnerKind {
    image
        .tests
        .runner
        .unwrap_or(RunnerKind::default_for(built_by_engine))
}

/// `tests.runner: buildkit` through an engine's BuildKit is bad input: its BuildKit (v0.8
/// in Docker 20.10) cannot read a file back from a container, and the image is in the
/// engine anyway.
pub fn check_runner(image: &ImageSpec, built_by_engine: bool, address: &str) -> Result<(), String> {
    match (built_by_engine, image.tests.runner) {
        (true, Some(RunnerKind::Buildkit)) => Err(format!(
            "image {}: tests.runner: buildkit needs a standalone buildkitd, and BuildKit at {address} is a Docker engine's (use tests.runner: engine, or build through a buildkitd)",
            image.key
        )),
        _ => Ok(()),
    }
}

/// Why `image` needs a Docker engine in this run, if it does: `push` (integration tests run
/// against the pushed image only) and the kind of BuildKit it is built by.
pub fn engine_need(image: &ImageSpec, built_by_engine: bool, push: bool) -> Option<String> {
    let mut why = vec![];
    if image.integration_tests && push {
        why.push("integration tests");
    }
    if !built_by_engine && runner_of(image, built_by_engine) == RunnerKind::Engine {
        why.push("tests.runner: engine");
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// The error when images need an engine and none answers: one line naming each and why.
pub fn no_engine_error(needs: &[(String, String)], cause: &str) -> String {
    let list: Vec<String> = needs.iter().map(|(k, w)| format!("{k} ({w})")).collect();
    format!(
        "no Docker engine answers (DOCKER_HOST, else /var/run/docker.sock: {cause}), and {} need{} one: {}; nothing was built",
        if needs.len() == 1 { "this image" } else { "these images" },
        if needs.len() == 1 { "s" } else { "" },
        list.join(", ")
    )
}

/// Images built on an engine's BuildKit (at `address`) get no attestations: v0.8 has none.
/// Ok(Some(line)): say so once and go on; Err: an image has `attest.required`, so the run
/// stops before anything is built.
pub fn attest_check<'a>(
    images: impl IntoIterator<Item = &'a ImageSpec>,
    address: &str,
) -> Result<Option<String>, String> {
    let (mut wanting, mut required) = (vec![], vec![]);
    for i in images {
        if i.attest.any() {
            wanting.push(i.key.as_str());
            if i.attest.required {
                required.push(i.key.as_str());
            }
        }
    }
    if !required.is_empty() {
        return Err(format!(
            "the Docker engine's BuildKit at {address} cannot attach provenance or an SBOM, and `attest.required` is set for {}; nothing was built (build through a buildkitd, or set attest.required: false)",
            required.join(", ")
        ));
    }
    Ok((!wanting.is_empty()).then(|| {
        format!(
            "the Docker engine's BuildKit at {address} cannot attach provenance or an SBOM: {} built without attestations",
            wanting.join(", ")
        )
    }))
}

/// Ask the engine for its version: None when it answers.
pub async fn engine_unreachable() -> Option<String> {
    let docker = match crate::containers::docker().await {
        Ok(d) => d,
        Err(e) => return Some(format!("{e:#}")),
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), docker.ping()).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer in 10s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(integration: bool, runner: Option<RunnerKind>) -> ImageSpec {
        ImageSpec {
            key: "k".into(),
            image_name: "r.io/k".into(),
            depend_on: None,
            build_args: Default::default(),
            info_cmds: vec![],
            integration_tests: integration,
            prune: false,
            prepull: true,
            tests: crate::spec::TestSpec {
                runner,
                ..Default::default()
            },
            cache: Default::default(),
            attest: Default::default(),
            packages: vec![],
            size_budget: Default::default(),
            tags: vec![],
            platforms: vec![],
            integration_platforms: vec![],
            reproducible: true,
            line: None,
        }
    }

    #[test]
    fn the_engine_cannot_attest() {
        use crate::spec::attest::{AttestSpec, ProvenanceMode};
        let mut a = image(false, None);
        a.key = "a".into();
        let mut b = a.clone();
        b.key = "b".into();
        b.attest = AttestSpec {
            provenance: ProvenanceMode::Off,
            ..Default::default()
        };
        let line = attest_check([&a, &b], "unix:///run/docker.sock")
            .unwrap()
            .unwrap();
        assert!(
            line.contains("cannot attach provenance") && line.contains(": a built"),
            "{line}"
        );
        assert_eq!(attest_check([&b], "x").unwrap(), None);
        a.attest.required = true;
        let e = attest_check([&a, &b], "unix:///run/docker.sock").unwrap_err();
        assert!(e.contains("`attest.required` is set for a;"), "{e}");
    }

    #[test]
    fn who_needs_an_engine() {
        assert_eq!(engine_need(&image(false, None), false, true), None);
        assert_eq!(
            engine_need(&image(true, None), false, true).as_deref(),
            Some("integration tests")
        );
        // Without a push there are no integration tests.
        assert_eq!(engine_need(&image(true, None), false, false), None);
        assert_eq!(
            engine_need(&image(true, Some(RunnerKind::Engine)), false, true).as_deref(),
            Some("integration tests, tests.runner: engine")
        );
        assert_eq!(
            engine_need(&image(false, Some(RunnerKind::Buildkit)), false, true),
            None
        );
        assert_eq!(runner_of(&image(false, None), false), RunnerKind::Buildkit);
        assert_eq!(runner_of(&image(false, None), true), RunnerKind::Engine);
        assert!(
            check_runner(&image(false, Some(RunnerKind::Buildkit)), true, "docker://").is_err()
        );
        assert!(check_runner(&image(false, Some(RunnerKind::Buildkit)), false, "tcp://").is_ok());
        let e = no_engine_error(
            &[("service".into(), "integration tests".into())],
            "connection refused",
        );
        assert!(e.contains("service (integration tests)"), "{e}");
    }
}
