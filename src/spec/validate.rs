//! Semantic checks of a parsed spec. Every problem names the file, the image key and its line.

use super::model::Spec;
use super::repository::{is_valid_repository, registry_part};
use std::collections::{HashMap, HashSet};

/// The repository `name` means as Docker reads it, for telling two spellings of one
/// repository apart: `busybox` and `index.docker.io/library/busybox` are both
/// `docker.io/library/busybox`.
fn canonical_repository(name: &str) -> String {
    match registry_part(name) {
        Some("index.docker.io") => format!("docker.io/{}", &name["index.docker.io/".len()..]),
        Some(_) => name.to_string(),
        None if name.contains('/') => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    }
}

/// Whether an image key names one folder directly under `images/`: not empty, no path
/// separator, not `.` or `..` (so that the build context cannot lie outside `images/`).
fn is_folder_name(key: &str) -> bool {
    !key.is_empty() && key != "." && key != ".." && !key.contains(['/', '\\', '\0'])
}

pub(super) fn validate(
    spec: &mut Spec,
    text: &str,
    declared_roots: &[String],
    problems: &mut Vec<String>,
) {
    let file = spec.path.display().to_string();
    let at = |line: Option<usize>| match line {
        Some(l) => format!("{file}:{l}"),
        None => file.clone(),
    };

    if spec.tag_prefix.is_empty() && problems.iter().all(|p| !p.contains("`tag.prefix`")) {
        problems.push(format!(
            "{}: `tag.prefix` is empty (give the quarter, e.g. \"2026.3\")",
            at(super::lines::line_of_key(text, "prefix", 2))
        ));
    } else if !spec.tag_prefix.is_empty() && !crate::tag::is_valid_tag(&spec.tag_prefix) {
        problems.push(format!(
            "{file}: `tag.prefix` {:?} cannot start a tag (letters, digits, `_`, `.`, `-`; not starting with `.` or `-`)",
            spec.tag_prefix
        ));
    }

    // Roots: the declared ones first, then every image without a parent.
    let mut roots = vec![];
    for r in declared_roots {
        match spec.images.get(r) {
            None => problems.push(format!(
                "{file}: `root` names `{r}`, which is not an image of the spec"
            )),
            Some(img) if img.depend_on.is_some() => problems.push(format!(
                "{}: image `{r}` is listed in `root` but has `depend_on: {}`",
                at(img.line),
                img.depend_on.as_deref().unwrap_or_default()
            )),
            Some(_) if !roots.contains(r) => roots.push(r.clone()),
            Some(_) => {}
        }
    }
    for img in spec.images.values() {
        if img.depend_on.is_none() && !roots.contains(&img.key) {
            roots.push(img.key.clone());
        }
    }
    spec.roots = roots;

    let mut by_name: HashMap<String, (&str, &str)> = HashMap::new();
    for img in spec.images.values() {
        let here = at(img.line);
        let key = &img.key;
        if let Some(parent) = &img.depend_on {
            if !spec.images.contains_key(parent) {
                problems.push(format!(
                    "{here}: image `{key}`: `depend_on: {parent}` is not an image of the spec"
                ));
            }
        }
        for cmd in &img.info_cmds {
            if !spec.all_info_cmds.contains_key(cmd) {
                problems.push(format!(
                    "{here}: image `{key}`: info command `{cmd}` is not defined in `all_info_cmds`"
                ));
            }
        }
        if !img.image_name.is_empty() {
            if !is_valid_repository(&img.image_name) {
                problems.push(format!(
                    "{here}: image `{key}`: `image_name: {}` is not a valid repository name (lower-case path, optional registry host, no tag)",
                    img.image_name
                ));
            }
            let canonical = canonical_repository(&img.image_name);
            if let Some((other, other_name)) =
                by_name.insert(canonical.clone(), (key, &img.image_name))
            {
                if other_name == img.image_name {
                    problems.push(format!(
                        "{here}: images `{other}` and `{key}` have the same `image_name: {}`",
                        img.image_name
                    ));
                } else {
                    problems.push(format!(
                        "{here}: images `{other}` and `{key}` name the same repository {canonical} (`image_name: {other_name}` and `image_name: {}`)",
                        img.image_name
                    ));
                }
            }
        }
        for k in img.build_args.keys() {
            if k.trim().is_empty() {
                problems.push(format!(
                    "{here}: image `{key}`: a build arg has an empty name"
                ));
            }
        }
        if img.tests.command.as_ref().is_some_and(|c| c.is_empty()) {
            problems.push(format!(
                "{here}: image `{key}`: `tests.command` is an empty list (leave it out for the default, `python3 -m pytest -x`)"
            ));
        }
        if let Some(i) = &img.tests.integration {
            if i.port == Some(0) {
                problems.push(format!(
                    "{here}: image `{key}`: `tests.integration.port` is 0 (a port is 1 to 65535)"
                ));
            }
            if i.command.as_ref().is_some_and(|c| c.is_empty()) {
                problems.push(format!(
                    "{here}: image `{key}`: `tests.integration.command` is an empty list (leave it out for the default)"
                ));
            }
        }
        let dir = spec.images_dir.join(key);
        if !is_folder_name(key) {
            problems.push(format!(
                "{here}: image `{key}`: the key must be a folder name directly under {} (no `/`, `\\`, `.` or `..`)",
                spec.images_dir.display()
            ));
        } else if !dir.is_dir() {
            problems.push(format!(
                "{here}: image `{key}`: folder {} does not exist",
                dir.display()
            ));
        } else if let Some(target) = link_out_of(&spec.images_dir, &dir) {
            problems.push(format!(
                "{here}: image `{key}`: {} is a link to {}, outside {}; refused (the build \
                 context must lie inside the images folder: move the folder there)",
                dir.display(),
                target.display(),
                spec.images_dir.display()
            ));
        } else if !dir.join("Dockerfile").is_file() {
            problems.push(format!(
                "{here}: image `{key}`: {} does not exist",
                dir.join("Dockerfile").display()
            ));
        }
    }

    // Cycles: follow each image's parents until an image already cleared, or one seen on
    // this walk (which closes a cycle). Each image is walked once: linear in the images.
    let mut cleared: HashSet<&str> = HashSet::new();
    for start in spec.images.keys() {
        let mut path: Vec<&str> = vec![];
        let mut on_path: HashMap<&str, usize> = HashMap::new();
        let mut cur = Some(start.as_str());
        while let Some(k) = cur {
            if cleared.contains(k) {
                break;
            }
            if let Some(&pos) = on_path.get(k) {
                let mut cycle: Vec<&str> = path[pos..].to_vec();
                // Name each cycle once, starting from its first key in spec order.
                let first = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, k)| spec.images.get_index_of(**k))
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                cycle.rotate_left(first);
                let img = &spec.images[cycle[0]];
                let mut shown = cycle.clone();
                shown.push(cycle[0]);
                problems.push(format!(
                    "{}: images depend on each other in a cycle: {}",
                    at(img.line),
                    shown.join(" -> ")
                ));
                break;
            }
            on_path.insert(k, path.len());
            path.push(k);
            cur = spec.images.get(k).and_then(|i| i.depend_on.as_deref());
        }
        cleared.extend(path);
    }
}

/// Where `dir` (a folder of `images`) really is, when links take it outside `images`: a
/// build context there would send files from elsewhere into the image.
fn link_out_of(images: &std::path::Path, dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let root = std::fs::canonicalize(images).ok()?;
    let real = std::fs::canonicalize(dir).ok()?;
    (!real.starts_with(&root)).then_some(real)
}

#[cfg(test)]
mod tests {
    #[test]
    fn folder_names() {
        assert!(super::is_folder_name("datascience-notebook"));
        assert!(super::is_folder_name(".hidden"));
        for bad in ["", ".", "..", "../x", "/abs", "a/b", "a\\b"] {
            assert!(!super::is_folder_name(bad), "{bad}");
        }
    }

    #[test]
    fn spellings_of_one_repository() {
        use super::canonical_repository as c;
        assert_eq!(c("busybox"), "docker.io/library/busybox");
        assert_eq!(c("docker.io/library/busybox"), "docker.io/library/busybox");
        assert_eq!(
            c("index.docker.io/library/busybox"),
            "docker.io/library/busybox"
        );
        assert_eq!(c("ucsdets/x"), "docker.io/ucsdets/x");
        assert_eq!(c("ghcr.io/o/x"), "ghcr.io/o/x");
        assert_eq!(c("localhost/x"), "localhost/x");
    }
}
