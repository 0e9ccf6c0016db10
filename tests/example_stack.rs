//! The built-in example stack (`spec.yml` and `images/` at the top of the repository)
//! loads and validates, and has the shape the README and docs promise.

use stackctl::spec::Spec;
use std::path::Path;

fn example() -> Spec {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = Spec::load(repo, None).unwrap_or_else(|e| panic!("example spec: {e}"));
    assert!(spec.warnings.is_empty(), "warnings: {:?}", spec.warnings);
    spec
}

#[test]
fn loads_from_the_repository_root() {
    let spec = example();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(spec.path, repo.join("spec.yml"));
    assert_eq!(spec.images_dir, repo.join("images"));
    assert_eq!(spec.tag_prefix, "2026.3");
    assert_eq!(spec.roots, vec!["base".to_string()]);
    let order: Vec<&str> = spec.topological().iter().map(|i| i.key.as_str()).collect();
    assert_eq!(order, ["base", "analysis", "service"]);
}

#[test]
fn images_live_in_the_loopback_registry() {
    let spec = example();
    for img in spec.images.values() {
        assert_eq!(
            img.image_name,
            format!("127.0.0.1:5111/stackctl-example/{}", img.key)
        );
        // Every FROM comes from the same loopback registry (BuildKit pulls FROM registries only).
        let base = &img.build_args["BASE_IMAGE"];
        assert!(base.starts_with("127.0.0.1:5111/"), "{}: {base}", img.key);
        // The child's BASE_IMAGE is its parent's repository; BASE_TAG comes from the plan.
        if let Some(parent) = &img.depend_on {
            assert_eq!(base, &spec.images[parent].image_name);
            assert!(!img.build_args.contains_key("BASE_TAG"));
        }
    }
}

#[test]
fn every_image_has_tests_and_dockerfile_args() {
    let spec = example();
    assert!(spec.images_dir.join("tests_common").is_dir());
    for img in spec.images.values() {
        let dir = img.dir(&spec);
        let tests: Vec<_> = std::fs::read_dir(dir.join("test"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("test_"))
            .collect();
        assert!(!tests.is_empty(), "{} has no tests", img.key);
        let dockerfile = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        assert!(dockerfile.contains("ARG BASE_IMAGE"), "{}", img.key);
        if img.depend_on.is_some() {
            assert!(dockerfile.contains("ARG BASE_TAG"), "{}", img.key);
            assert!(dockerfile.contains("FROM ${BASE_IMAGE}:${BASE_TAG}"));
        }
        for cmd in &img.info_cmds {
            assert!(spec.all_info_cmds.contains_key(cmd));
        }
    }
}

#[test]
fn service_has_integration_tests_on_port_8000() {
    let spec = example();
    let svc = &spec.images["service"];
    assert!(svc.integration_tests);
    assert!(svc.prune);
    let it = svc.tests.integration.as_ref().expect("tests.integration");
    assert_eq!(it.port, Some(8000));
    assert_eq!(it.wait_log.as_deref(), Some("serving on port 8000"));
    assert!(svc
        .dir(&spec)
        .join("integration_tests/test_http.py")
        .is_file());
    // Only the service has integration tests.
    assert!(spec.images.values().filter(|i| i.integration_tests).count() == 1);
}

#[test]
fn change_rules_come_from_the_spec() {
    let spec = example();
    assert_eq!(spec.changes.ignore, ["README.md"]);
    assert_eq!(spec.changes.build_all, ["tests_common"]);
    assert_eq!(spec.changes.source, None);
    assert!(spec.images_dir.join("README.md").is_file());
}
