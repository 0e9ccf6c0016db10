//! Where a reference's requests go and over which scheme: its registry's API host (or the
//! endpoint `--registry-endpoint` gives for it), over https unless the host is on loopback
//! or named insecure (`--insecure-registry`), which are spoken to over plain http.

use crate::registry::reference::ImageRef;

/// Whether `host` (`HOST[:PORT]`) is a loopback address: 127.0.0.0/8, ::1 or localhost.
pub fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// The hosts and schemes of a client.
#[derive(Clone, Debug, Default)]
pub struct Schemes {
    /// `HOST:PORT` registries reached over plain http besides loopback ones.
    pub insecure: Vec<String>,
    /// Registry name → `HOST[:PORT]` its requests go to instead.
    pub endpoints: Vec<(String, String)>,
}

impl Schemes {
    /// The host requests for `r` go to: its endpoint if one is set, else its API host.
    pub fn host<'a>(&'a self, r: &'a ImageRef) -> &'a str {
        self.endpoints
            .iter()
            .find(|(name, _)| *name == r.registry)
            .map_or_else(|| r.api_host(), |(_, host)| host.as_str())
    }

    /// `http://HOST` for loopback and insecure hosts, else `https://HOST`.
    pub fn base(&self, host: &str) -> String {
        let plain = is_loopback(host) || self.insecure.iter().any(|h| h == host);
        format!("{}://{host}", if plain { "http" } else { "https" })
    }

    /// The URL of `tail` under `r`'s repository: `BASE/v2/REPOSITORY/TAIL`.
    pub fn url(&self, r: &ImageRef, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base(self.host(r)), r.repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.1.2.3"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("ghcr.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn http_only_for_loopback_and_insecure() {
        let s = Schemes {
            insecure: vec!["reg.lan:5000".into()],
            ..Default::default()
        };
        assert_eq!(s.base("reg.lan:5000"), "http://reg.lan:5000");
        assert_eq!(s.base("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(s.base("reg.lan:5001"), "https://reg.lan:5001");
        assert_eq!(s.base("ghcr.io"), "https://ghcr.io");
    }

    #[test]
    fn endpoints_and_docker_hub() {
        let s = Schemes {
            endpoints: vec![("ghcr.io".into(), "127.0.0.1:5000".into())],
            ..Default::default()
        };
        let r = |x: &str| ImageRef::parse(x).unwrap();
        assert_eq!(
            s.url(&r("ghcr.io/o/x:t"), "manifests/t"),
            "http://127.0.0.1:5000/v2/o/x/manifests/t"
        );
        assert_eq!(
            s.url(&r("busybox"), "manifests/latest"),
            "https://registry-1.docker.io/v2/library/busybox/manifests/latest"
        );
    }
}
