//! File names derived from full image names, as the old tooling wrote them.

/// `<safe name>` of artifacts and logs: the full name with `/` and `:` replaced by `-`
/// (`ghcr.io/ucsd-ets/x:2026.3-main` → `ghcr.io-ucsd-ets-x-2026.3-main`).
pub fn safe_name(full: &str) -> String {
    full.replace(['/', ':'], "-")
}

/// `<page>` of a manifest page in `manifests/` and the wiki: like [`safe_name`], with the
/// registry host's dots written `-` (`ghcr.io` → `ghcr-io`), as the wiki's page links need.
pub fn page_name(full: &str) -> String {
    let (host, rest) = match full.split_once('/') {
        Some((h, r)) if h.contains('.') || h.contains(':') || h == "localhost" => (Some(h), r),
        _ => (None, full),
    };
    match host {
        Some(h) => format!("{}-{}", h.replace(['.', ':'], "-"), safe_name(rest)),
        None => safe_name(rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_the_old_tool() {
        let full = "ghcr.io/ucsd-ets/datascience-notebook:2026.3-main";
        assert_eq!(
            safe_name(full),
            "ghcr.io-ucsd-ets-datascience-notebook-2026.3-main"
        );
        assert_eq!(
            page_name(full),
            "ghcr-io-ucsd-ets-datascience-notebook-2026.3-main"
        );
        assert_eq!(
            page_name("ucsdets/datahub-base-notebook:2023.2-stable"),
            "ucsdets-datahub-base-notebook-2023.2-stable"
        );
        assert_eq!(
            page_name("127.0.0.1:5000/stack/base:2026.3-stable"),
            "127-0-0-1-5000-stack-base-2026.3-stable"
        );
    }
}
