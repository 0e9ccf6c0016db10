//! Repository names as the distribution spec's reference grammar has them; a leaf that
//! the spec's loading, cache and validation checks share.

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
pub(super) fn registry_part(name: &str) -> Option<&str> {
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

#[cfg(test)]
mod tests {
    use super::is_valid_repository;

    #[test]
    fn repositories() {
        assert!(is_valid_repository("ghcr.io/ucsd-ets/datascience-notebook"));
        assert!(is_valid_repository("localhost:5000/a/b"));
        assert!(is_valid_repository("127.0.0.1:5000/stack/base"));
        assert!(is_valid_repository("ubuntu"));
        assert!(!is_valid_repository("ghcr.io/UCSD/x"));
        assert!(!is_valid_repository("ghcr.io/x:tag"));
        assert!(!is_valid_repository("ghcr.io/x@sha256:00"));
        assert!(!is_valid_repository(""));
        assert!(!is_valid_repository("a//b"));
        assert!(!is_valid_repository("h:99999/a"));
        assert!(!is_valid_repository("h:0/a"));
        assert!(is_valid_repository("h:65535/a"));
        assert!(is_valid_repository("[::1]:5000/a"));
        assert!(!is_valid_repository("[::1]:70000/a"));
        assert!(!is_valid_repository("http://h/a"));
        assert!(!is_valid_repository("ghcr.io/Org/a"));
    }
}
