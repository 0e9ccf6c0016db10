//! Spec loading and validation: every error names the file and the image key.

use stackctl::spec::{Spec, SpecError};
use std::path::Path;

/// A stack folder with `spec.yml` and a Dockerfile for each of `folders`.
fn stack(spec: &str, folders: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.yml"), spec).unwrap();
    for f in folders {
        let d = dir.path().join("images").join(f);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
    }
    dir
}

fn problems(spec: &str, folders: &[&str]) -> (String, String) {
    let dir = stack(spec, folders);
    let file = dir.path().join("spec.yml").display().to_string();
    match Spec::load(dir.path(), None) {
        Ok(_) => panic!("spec was accepted:\n{spec}"),
        Err(e) => (e.to_string(), file),
    }
}

const TAG: &str = "tag:\n  prefix: \"2026.3\"\n";

#[test]
fn unknown_parent() {
    let spec = format!(
        "images:\n  base:\n    image_name: r/base\n  kid:\n    image_name: r/kid\n    depend_on: nobody\n{TAG}"
    );
    let (err, file) = problems(&spec, &["base", "kid"]);
    assert!(err.contains(&format!("{file}:4")), "{err}");
    assert!(err.contains("`kid`") && err.contains("nobody"), "{err}");
}

#[test]
fn cycle_is_named() {
    let spec = format!(
        "images:\n  a:\n    image_name: r/a\n    depend_on: b\n  b:\n    image_name: r/b\n    depend_on: a\n  c:\n    image_name: r/c\n{TAG}"
    );
    let (err, file) = problems(&spec, &["a", "b", "c"]);
    assert!(err.contains(&file), "{err}");
    assert!(err.contains("a -> b -> a"), "{err}");
    assert_eq!(err.matches("cycle").count(), 1, "reported once: {err}");
}

#[test]
fn missing_folder_and_missing_dockerfile() {
    let spec = format!("images:\n  base:\n    image_name: r/base\n  kid:\n    image_name: r/kid\n    depend_on: base\n{TAG}");
    let (err, file) = problems(&spec, &["base"]);
    assert!(err.contains(&format!("{file}:4")), "{err}");
    assert!(
        err.contains("`kid`") && err.contains("does not exist"),
        "{err}"
    );

    let dir = stack(&spec, &["base"]);
    std::fs::create_dir_all(dir.path().join("images/kid")).unwrap();
    let err = Spec::load(dir.path(), None).unwrap_err().to_string();
    assert!(err.contains("`kid`") && err.contains("Dockerfile"), "{err}");
}

#[test]
fn unknown_info_command() {
    let spec = format!(
        "images:\n  base:\n    image_name: r/base\n    info_cmds: [PY_VER, NOPE]\n{TAG}all_info_cmds:\n  PY_VER: {{description: Python, command: python --version}}\n"
    );
    let (err, file) = problems(&spec, &["base"]);
    assert!(err.contains(&format!("{file}:2")), "{err}");
    assert!(
        err.contains("`base`") && err.contains("`NOPE`") && err.contains("all_info_cmds"),
        "{err}"
    );
    assert!(!err.contains("PY_VER"), "{err}");
}

#[test]
fn invalid_repository_name() {
    let spec = format!("images:\n  base:\n    image_name: ghcr.io/UCSD/Base:latest\n{TAG}");
    let (err, file) = problems(&spec, &["base"]);
    assert!(err.contains(&format!("{file}:2")), "{err}");
    assert!(
        err.contains("`base`") && err.contains("ghcr.io/UCSD/Base:latest"),
        "{err}"
    );
}

#[test]
fn duplicate_image_name() {
    let spec =
        format!("images:\n  a:\n    image_name: r/same\n  b:\n    image_name: r/same\n{TAG}");
    let (err, file) = problems(&spec, &["a", "b"]);
    assert!(err.contains(&format!("{file}:4")), "{err}");
    assert!(
        err.contains("`a`") && err.contains("`b`") && err.contains("r/same"),
        "{err}"
    );
}

#[test]
fn yaml_error_names_file_and_line() {
    let dir = stack("images:\n  a: [unclosed\n", &[]);
    let err = Spec::load(dir.path(), None).unwrap_err();
    assert!(
        matches!(err, SpecError::Syntax { line: Some(_), .. }),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .contains(&dir.path().join("spec.yml").display().to_string()));
}

#[test]
fn missing_spec_names_both_places() {
    let dir = tempfile::tempdir().unwrap();
    let err = Spec::load(dir.path(), None).unwrap_err().to_string();
    assert!(err.contains("spec.yml") && err.contains("images"), "{err}");
}

#[test]
fn unknown_keys_warn_and_root_may_be_a_string_or_a_list() {
    let spec = format!(
        "root: base\nbuild_matrix: old\nimages:\n  base:\n    image_name: r/base\n    old_key: 1\n  two:\n    image_name: r/two\n{TAG}"
    );
    let dir = stack(&spec, &["base", "two"]);
    let s = Spec::load(dir.path(), None).unwrap();
    assert_eq!(
        s.roots,
        ["base", "two"],
        "images without depend_on are roots too"
    );
    assert!(
        s.warnings.iter().any(|w| w.contains("build_matrix")),
        "{:?}",
        s.warnings
    );
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("`base`") && w.contains("old_key")),
        "{:?}",
        s.warnings
    );

    let spec = format!("root: [two, base]\nimages:\n  base:\n    image_name: r/base\n  two:\n    image_name: r/two\n{TAG}");
    let dir = stack(&spec, &["base", "two"]);
    assert_eq!(Spec::load(dir.path(), None).unwrap().roots, ["two", "base"]);
}

#[test]
fn change_rules_from_json_or_spec() {
    let upstream = Path::new("/work/shared/reference/upstream");
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::copy(upstream.join("spec.yml"), images.join("spec.yml")).unwrap();
    std::fs::copy(
        upstream.join("change_ignore.json"),
        images.join("change_ignore.json"),
    )
    .unwrap();
    for k in [
        "datascience-notebook",
        "rstudio-notebook",
        "scipy-ml-notebook",
    ] {
        std::fs::create_dir_all(images.join(k)).unwrap();
        std::fs::write(images.join(k).join("Dockerfile"), "FROM x\n").unwrap();
    }
    let s = Spec::load(dir.path(), None).unwrap();
    assert_eq!(s.path, images.join("spec.yml"));
    assert_eq!(s.images_dir, images);
    assert_eq!(
        s.changes.build_all,
        [
            "tests_common",
            "spec.yml",
            "change_ignore.json",
            "conftest.py"
        ]
    );
    assert!(s.changes.ignore.is_empty());
    assert_eq!(s.roots, ["datascience-notebook"]);

    let spec = format!(
        "images:\n  base:\n    image_name: r/base\n{TAG}changes:\n  ignore: [docs]\n  build_all: [tests_common]\n"
    );
    let dir = stack(&spec, &["base"]);
    let s = Spec::load(dir.path(), None).unwrap();
    assert_eq!(s.changes.ignore, ["docs"]);
    assert_eq!(s.changes.build_all, ["tests_common"]);
}

#[test]
fn unknown_keys_in_change_rules_warn() {
    let spec = format!(
        "images:\n  base:\n    image_name: r/base\n{TAG}changes:\n  ignored: [docs]\n  build_all: [tests_common]\n"
    );
    let dir = stack(&spec, &["base"]);
    let s = Spec::load(dir.path(), None).unwrap();
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("changes.ignored") && w.contains("spec.yml:")),
        "{:?}",
        s.warnings
    );

    let spec = format!("images:\n  base:\n    image_name: r/base\n{TAG}");
    let dir = stack(&spec, &["base"]);
    std::fs::write(
        dir.path().join("change_ignore.json"),
        r#"{"ChangeIgnore": [], "Buildall": ["x"]}"#,
    )
    .unwrap();
    let s = Spec::load(dir.path(), None).unwrap();
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("change_ignore.json") && w.contains("Buildall")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn unquoted_numeric_prefix_warns() {
    let dir = stack(
        "images:\n  base:\n    image_name: r/base\ntag:\n  prefix: 2026.10\n",
        &["base"],
    );
    let s = Spec::load(dir.path(), None).unwrap();
    assert_eq!(s.tag_prefix, "2026.1");
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("spec.yml:5") && w.contains("quote")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn empty_image_name_is_refused() {
    let spec = format!("images:\n  base:\n    image_name: \"\"\n{TAG}");
    let (err, file) = problems(&spec, &["base"]);
    assert!(err.contains(&format!("{file}:2")), "{err}");
    assert!(
        err.contains("`base`") && err.contains("`image_name` is empty"),
        "{err}"
    );
}

#[test]
fn the_same_image_key_twice_is_refused() {
    let spec = format!(
        "images:\n  base:\n    image_name: r/base\n  kid:\n    image_name: r/kid\n  base:\n    image_name: r/other\n{TAG}"
    );
    let (err, file) = problems(&spec, &["base", "kid"]);
    assert!(err.contains(&file), "{err}");
    assert!(err.contains("`base`") && err.contains("twice"), "{err}");
}

#[test]
fn keys_that_leave_the_images_folder_are_refused() {
    // `../x` and an absolute path both name a folder with a Dockerfile.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let abs = outside.path().display().to_string();
    let spec = format!(
        "images:\n  ../x:\n    image_name: r/x\n  \"{abs}\":\n    image_name: r/abs\n{TAG}"
    );
    let dir = stack(&spec, &[]);
    let x = dir.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    std::fs::write(x.join("Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    let file = dir.path().join("spec.yml").display().to_string();
    let err = Spec::load(dir.path(), None).unwrap_err().to_string();
    assert!(err.contains(&format!("{file}:2: image `../x`")), "{err}");
    assert!(err.contains(&format!("{file}:4: image `{abs}`")), "{err}");
    assert_eq!(err.matches("must be a folder name").count(), 2, "{err}");
}

#[test]
fn a_prefix_of_the_wrong_type_is_named() {
    let spec = "images:\n  base:\n    image_name: r/base\ntag:\n  prefix: [1, 2]\n";
    let (err, file) = problems(spec, &["base"]);
    assert!(err.contains(&format!("{file}:5")), "{err}");
    assert!(
        err.contains("`tag.prefix` must be a string") && err.contains("a list"),
        "{err}"
    );
    assert!(!err.contains("valid start"), "{err}");
}

#[test]
fn tag_suffix_is_branch_by_default_or_commit() {
    use stackctl::tag::TagSuffix;
    let base = "images:\n  base:\n    image_name: r/base\n";
    let dir = stack(&format!("{base}{TAG}"), &["base"]);
    assert_eq!(
        Spec::load(dir.path(), None).unwrap().tag_suffix,
        TagSuffix::Branch
    );
    let dir = stack(
        &format!("{base}tag:\n  prefix: \"2026.3\"\n  suffix: commit\n"),
        &["base"],
    );
    assert_eq!(
        Spec::load(dir.path(), None).unwrap().tag_suffix,
        TagSuffix::Commit
    );
    let (err, file) = problems(
        &format!("{base}tag:\n  prefix: \"2026.3\"\n  suffix: sha\n"),
        &["base"],
    );
    assert!(err.contains(&format!("{file}:6")), "{err}");
    assert!(
        err.contains("`tag.suffix` must be `branch` or `commit`") && err.contains("\"sha\""),
        "{err}"
    );
}

#[test]
fn content_tag_templates_stack_wide_and_per_image() {
    let spec = format!(
        "images:\n  base:\n    image_name: r/base\n  kid:\n    image_name: r/kid\n    depend_on: base\n    tags: [\"kid-{{commit}}\"]\n  off:\n    image_name: r/off\n    tags: []\n{TAG}tags:\n  - \"python-{{python3 -c 'print({{1: 2}}[1])'}}\"\n  - template: \"py-{{date}}\"\n    moving: true\n"
    );
    let dir = stack(&spec, &["base", "kid", "off"]);
    let s = Spec::load(dir.path(), None).unwrap_or_else(|e| panic!("{e}"));
    let base = &s.image("base").unwrap().tags;
    assert_eq!(base.len(), 2);
    assert_eq!(
        base[0].template.commands().collect::<Vec<_>>(),
        ["python3 -c 'print({1: 2}[1])'"]
    );
    assert!(!base[0].moving && base[1].moving);
    let kid = &s.image("kid").unwrap().tags;
    assert_eq!(kid.len(), 1, "an image's own list replaces the stack's");
    assert_eq!(kid[0].template.source, "kid-{commit}");
    assert!(s.image("off").unwrap().tags.is_empty());
}

#[test]
fn bad_content_tag_templates_name_file_and_key() {
    let spec = format!(
        "images:\n  base:\n    image_name: r/base\n    tags: [\"py-{{python3 --version\"]\n{TAG}tags: [\"\", {{template: x, moving: maybe}}]\n"
    );
    let (err, file) = problems(&spec, &["base"]);
    assert!(
        err.contains(&format!(
            "{file}:2: image `base`: `images.base.tags[0]`: unbalanced braces"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:7: `tags[0]`: empty template")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:7: `tags[1]`: `moving` must be true or false"
        )),
        "{err}"
    );
}

#[test]
fn platforms_of_the_stack_and_of_an_image() {
    let spec = format!(
        "platforms: [linux/amd64, linux/arm64]\nimages:\n  base:\n    image_name: r/base\n  kid:\n    image_name: r/kid\n    depend_on: base\n    platforms: [linux/arm64]\n    integration_platforms: [linux/arm64]\n  plain:\n    image_name: r/plain\n    platforms: []\n{TAG}"
    );
    let dir = stack(&spec, &["base", "kid", "plain"]);
    let s = Spec::load(dir.path(), None).unwrap();
    assert_eq!(s.images["base"].platforms, ["linux/amd64", "linux/arm64"]);
    assert!(s.images["base"].integration_platforms.is_empty());
    assert_eq!(s.images["kid"].platforms, ["linux/arm64"]);
    assert_eq!(s.images["kid"].integration_platforms, ["linux/arm64"]);
    // An empty list: the builder's own platform.
    assert!(s.images["plain"].platforms.is_empty());
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn a_bad_platform_names_file_line_and_key() {
    let spec = format!(
        "platforms: [linux/amd64, linux/aarch64]\nimages:\n  base:\n    image_name: r/base\n{TAG}"
    );
    let (err, file) = problems(&spec, &["base"]);
    assert!(err.contains(&format!("{file}:1: `platforms`")), "{err}");
    assert!(err.contains("`aarch64` (write arm64)"), "{err}");

    let spec = format!("images:\n  base:\n    image_name: r/base\n\n    platforms:\n      - linux/amd64\n      - amd64\n{TAG}");
    let (err, file) = problems(&spec, &["base"]);
    assert!(
        err.contains(&format!("{file}:5: image `base`: `images.base.platforms`")),
        "{err}"
    );
    assert!(err.contains("\"amd64\" is not `os/arch`"), "{err}");

    let spec =
        format!("images:\n  base:\n    image_name: r/base\n    platforms: linux/amd64\n{TAG}");
    let (err, file) = problems(&spec, &["base"]);
    assert!(
        err.contains(&format!("{file}:4")) && err.contains("must be a list"),
        "{err}"
    );
}

#[test]
fn integration_platforms_must_be_built() {
    let spec = format!("platforms: [linux/amd64]\nintegration_platforms: [linux/arm64]\nimages:\n  base:\n    image_name: r/base\n{TAG}");
    let (err, file) = problems(&spec, &["base"]);
    assert!(
        err.contains(&format!("{file}:2: image `base`: `integration_platforms` names linux/arm64, which is not in its `platforms` (linux/amd64)")),
        "{err}"
    );
}

#[test]
fn reproducible_is_the_stacks_default_and_an_image_may_turn_it_off() {
    let text = |stack: &str| {
        format!(
            "{stack}images:\n  a:\n    image_name: r/a\n  b:\n    image_name: r/b\n    reproducible: false\n    tests: {{skip_unchanged: true}}\n  c:\n    image_name: r/c\n    reproducible: true\ntag: {{prefix: \"1\"}}\n"
        )
    };
    let keys = ["a", "b", "c"];
    let on = |s: &Spec| keys.map(|k| s.images[k].reproducible);
    let dir = stack(&text(""), &keys);
    let s = Spec::load(dir.path(), None).unwrap();
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(on(&s), [true, false, true]);
    assert_eq!(s.images["b"].tests.skip_unchanged, Some(true));
    assert_eq!(s.images["a"].tests.skip_unchanged, None);
    let dir = stack(
        &text("reproducible: false\ntests: {skip_unchanged: true}\n"),
        &keys,
    );
    let s = Spec::load(dir.path(), None).unwrap();
    assert_eq!(on(&s), [false, false, true]);
    assert_eq!(s.images["a"].tests.skip_unchanged, Some(true));
}
