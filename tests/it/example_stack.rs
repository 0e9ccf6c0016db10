//! The built-in example stack (`spec.yml` and `images/` at the top of the repository)
//! loads and validates, and has the shape the README and docs promise.

use stackctl::spec::Spec;
use std::path::Path;

use crate::support;

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

#[test]
fn a_copy_for_another_registry_is_rewritten_and_committed() {
    use std::os::unix::fs::PermissionsExt;
    let ex = support::example::ExampleRepo::create("127.0.0.1:6000");
    let spec = Spec::load(ex.path(), None).unwrap_or_else(|e| panic!("copy: {e}"));
    for img in spec.images.values() {
        assert_eq!(img.image_name, ex.image_name(&img.key));
    }
    assert_eq!(
        spec.images["base"].build_args["BASE_IMAGE"],
        ex.base_image()
    );
    let dockerfile = std::fs::read_to_string(ex.path().join("images/service/Dockerfile")).unwrap();
    assert!(dockerfile.contains("ARG BASE_IMAGE=127.0.0.1:6000/stackctl-example/base\n"));
    assert!(!dockerfile.contains("5111"));
    // Executable bits survive the copy.
    let mode = std::fs::metadata(ex.path().join("images/base/stack-info"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111);
    // One commit on main, holding the stack; a change makes a second one.
    let head = ex.repo.head().unwrap();
    assert_eq!(head.shorthand(), Some("main"));
    let first = head.peel_to_commit().unwrap();
    assert_eq!(first.parent_count(), 0);
    assert!(first
        .tree()
        .unwrap()
        .get_path(Path::new("images/tests_common/test_common.py"))
        .is_ok());
    let second = ex.append(
        "images/analysis/Dockerfile",
        "LABEL changed=1",
        "change analysis",
    );
    let second = ex.repo.find_commit(second).unwrap();
    assert_eq!(second.parent_id(0).unwrap(), first.id());
}
