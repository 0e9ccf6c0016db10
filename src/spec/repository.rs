//! Repository names as the spec writes them (`image_name`, `cache.ref`): the reference
//! grammar's form, and which spellings name one repository. Checked here, in the spec's own
//! terms, because the registry module reads the spec and must not be read by it.

use regex::Regex;
use std::sync::LazyLock;

/// A repository name as the distribution spec's reference grammar allows it
/// (optional registry host with port, then lower-case path components).
static REPOSITORY: LazyLock<Regex> = LazyLock::new(|| {
    let label = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
    let domain = format!(r"(?:{label}(?:\.{label})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?");
    let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    Regex::new(&format!(r"^(?:{domain}/)?{component}(?:/{component})*$")).unwrap()
});

/// Whether `name` is a valid repository name (no tag, no digest), its port if any from 1
/// to 65535.
pub fn is_valid_repository(name: &str) -> bool {
    name.len() <= 255 && REPOSITORY.is_match(name) && registry_port_ok(name)
}

/// The registry part of a repository name: its first component when there are several and
/// it has a `.` or `:` or is `localhost` (the distribution grammar's rule).
fn registry_part(name: &str) -> Option<&str> {
    let (first, _) = name.split_once('/')?;
    (first.contains(['.', ':']) || first == "localhost").then_some(first)
}

fn registry_port_ok(name: &str) -> bool {
    let Some(host) = registry_part(name) else {
        return true;
    };
    let port = match host.rsplit_once(']') {
        Some((_, after)) => after.strip_prefix(':'),
        None => host.split_once(':').map(|(_, p)| p),
    };
    port.is_none_or(|p| matches!(p.parse::<u32>(), Ok(1..=65535)))
}

/// The repository `name` means as Docker reads it, for telling two spellings of one
/// repository apart: `busybox` and `index.docker.io/library/busybox` are both
/// `docker.io/library/busybox`.
pub(super) fn canonical_repository(name: &str) -> String {
    match registry_part(name) {
        Some("index.docker.io") => format!("docker.io/{}", &name["index.docker.io/".len()..]),
        Some(_) => name.to_string(),
        None if name.contains('/') => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    }
}
