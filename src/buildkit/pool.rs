//! Several BuildKit nodes (buildkitd instances, e.g. a Kubernetes StatefulSet): their
//! addresses with each node's TLS files, and the nodes that answered at the start.
//!
//! Which node builds which image is the scheduler's choice (`pipeline::schedule`); a node
//! lost during a build is reported by [`super::BuildError::NodeLost`].

use super::{connect, Address, Client, TlsFiles};
use anyhow::{bail, Context as _};
use std::path::Path;

/// The nodes that answered when the run started, in the order they were given.
#[derive(Clone)]
pub struct Pool {
    pub nodes: Vec<Client>,
}

impl Pool {
    /// The node at `address` (as [`Address`]'s `Display` writes it).
    pub fn by_address(&self, address: &str) -> Option<&Client> {
        self.nodes
            .iter()
            .find(|n| n.address().to_string() == address)
    }
}

/// Split a comma-separated list of addresses (`BUILDKIT_HOST=tcp://a:1234,tcp://b:1234`).
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

/// The TLS files of one `tcp://HOST:PORT` node from `dir`: the sub-folder `HOST:PORT`, else
/// `HOST`, holding `ca.pem` and, for mutual TLS, `cert.pem` and `key.pem`. None when `dir`
/// has no folder for the node (it then uses the `--buildkit-tls-*` files).
pub fn tls_from_dir(dir: &Path, hostport: &str) -> anyhow::Result<Option<TlsFiles>> {
    let host = hostport
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(hostport);
    let Some(sub) = [hostport, host]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_dir())
    else {
        return Ok(None);
    };
    let file = |name: &str| {
        let p = sub.join(name);
        p.is_file().then_some(p)
    };
    let tls = TlsFiles {
        ca: file("ca.pem"),
        cert: file("cert.pem"),
        key: file("key.pem"),
    };
    if tls.cert.is_some() != tls.key.is_some() {
        bail!(
            "--buildkit-tls-dir: {} holds only one of cert.pem and key.pem (they go together)",
            sub.display()
        );
    }
    if tls.is_empty() {
        bail!(
            "--buildkit-tls-dir: {} holds none of ca.pem, cert.pem, key.pem",
            sub.display()
        );
    }
    Ok(Some(tls))
}

/// Parse the pool's addresses. `shared` TLS files go to every `tcp://` node that has no
/// folder in `tls_dir`. With one address, the rules of [`Address::parse`] hold as they are.
pub fn addresses(
    list: &[String],
    shared: &TlsFiles,
    tls_dir: Option<&Path>,
) -> anyhow::Result<Vec<Address>> {
    let mut out = Vec::with_capacity(list.len());
    for a in list {
        let tls = match (tls_dir, a.trim().strip_prefix("tcp://")) {
            // An address with user information is refused by `Address::parse` below, with
            // the secret masked; no folder is looked up under its name.
            (Some(dir), Some(rest)) if !rest.contains('@') => {
                let hostport = rest.trim_end_matches('/');
                tls_from_dir(dir, hostport)?.unwrap_or_else(|| shared.clone())
            }
            // Shared TLS files apply to tcp:// nodes only when there are several nodes.
            (_, None) if list.len() > 1 => TlsFiles::default(),
            _ => shared.clone(),
        };
        let parsed = Address::parse(a, tls);
        // With one address its own message says it all (an empty context would print an
        // empty `error:` line); in a pool, which node, its password masked.
        let addr = if list.len() > 1 {
            parsed.with_context(|| {
                format!(
                    "BuildKit node {:?}",
                    crate::credentials::mask_userinfo(a.trim())
                )
            })?
        } else {
            parsed?
        };
        if out.contains(&addr) {
            bail!("BuildKit node {addr} is given twice");
        }
        out.push(addr);
    }
    Ok(out)
}

/// Connect to every node at once. A node that does not answer is left out with a warning;
/// when none answers, one line naming each node and why.
pub async fn connect_pool(addrs: &[Address]) -> anyhow::Result<Pool> {
    if let [one] = addrs {
        return Ok(Pool {
            nodes: vec![connect(one).await?],
        });
    }
    let tried = futures::future::join_all(addrs.iter().map(connect)).await;
    let mut nodes = vec![];
    let mut down = vec![];
    for (addr, r) in addrs.iter().zip(tried) {
        match r {
            Ok(c) => nodes.push(c),
            Err(e) => down.push((addr, format!("{e:#}"))),
        }
    }
    if nodes.is_empty() {
        // One line naming every node (each message names its address).
        bail!(
            "none of the {} BuildKit nodes answers: {}",
            addrs.len(),
            down.iter()
                .map(|(_, e)| e.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    for (addr, e) in &down {
        tracing::warn!("BuildKit node {addr} is left out of this run: {e}");
    }
    if !down.is_empty() {
        tracing::info!(
            "building on {} of {} BuildKit nodes: {}",
            nodes.len(),
            addrs.len(),
            nodes
                .iter()
                .map(|n| n.address().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(Pool { nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_tls_folders() {
        assert_eq!(
            split_list(" tcp://a:1, tcp://b:2 ,,"),
            vec!["tcp://a:1".to_string(), "tcp://b:2".to_string()]
        );
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("buildkitd-0.buildkitd");
        std::fs::create_dir_all(&node).unwrap();
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(node.join(f), "x").unwrap();
        }
        let byport = dir.path().join("127.0.0.1:1235");
        std::fs::create_dir_all(&byport).unwrap();
        std::fs::write(byport.join("ca.pem"), "x").unwrap();
        let shared = TlsFiles {
            ca: Some("/shared/ca.pem".into()),
            ..Default::default()
        };
        let list: Vec<String> = [
            "tcp://buildkitd-0.buildkitd:1234",
            "tcp://127.0.0.1:1235",
            "tcp://127.0.0.1:1236",
            "unix:///run/buildkit/buildkitd.sock",
        ]
        .map(String::from)
        .to_vec();
        let a = addresses(&list, &shared, Some(dir.path())).unwrap();
        let tls = |i: usize| match &a[i] {
            Address::Tcp { tls, .. } => tls.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(tls(0).cert, Some(node.join("cert.pem")));
        assert_eq!(tls(1).ca, Some(byport.join("ca.pem")));
        assert_eq!(tls(1).cert, None);
        assert_eq!(tls(2), shared, "no folder: the shared files");
        assert!(matches!(a[3], Address::Unix(_)));
        let e = addresses(
            &["tcp://a:1".into(), "tcp://a:1".into()],
            &TlsFiles::default(),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
        std::fs::remove_file(node.join("key.pem")).unwrap();
        let e = addresses(&list, &shared, Some(dir.path())).unwrap_err();
        assert!(format!("{e:#}").contains("cert.pem and key.pem"), "{e:#}");
    }
}
