//! The packages of one image and platform, per package manager: read inside the image by a
//! shell script ([`script`], run as an info command) and parsed back ([`parse`]), or taken
//! from an SPDX SBOM ([`from_spdx`]) so an image that has one needs no container.

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A package manager whose packages are inventoried.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    Apt,
    Pip,
    Conda,
    R,
}

impl Manager {
    pub const ALL: [Manager; 4] = [Manager::Apt, Manager::Pip, Manager::Conda, Manager::R];

    pub fn as_str(self) -> &'static str {
        match self {
            Manager::Apt => "apt",
            Manager::Pip => "pip",
            Manager::Conda => "conda",
            Manager::R => "r",
        }
    }
}

impl fmt::Display for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Manager {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Manager::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| anyhow!("unknown package manager {s:?}: one of apt, pip, conda, r"))
    }
}

/// One installed package, named as its manager names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Package {
    pub manager: Manager,
    pub name: String,
    pub version: String,
}

/// What one image (one platform) has installed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// The managers that were read (present in the image), sorted: a manager missing here
    /// is absent or unknown, one here with no package is present and empty.
    pub managers: Vec<Manager>,
    /// Sorted and deduplicated.
    pub packages: Vec<Package>,
}

impl Inventory {
    /// One manager's packages, by name.
    pub fn of(&self, m: Manager) -> impl Iterator<Item = &Package> {
        self.packages.iter().filter(move |p| p.manager == m)
    }

    fn new(managers: BTreeSet<Manager>, packages: BTreeSet<Package>) -> Inventory {
        Inventory {
            managers: managers.into_iter().collect(),
            packages: packages.into_iter().collect(),
        }
    }
}

/// The first line of a manager's section of [`script`]'s output.
const MARKER: &str = "#stackctl-inventory ";

/// apt: dpkg's database, installed packages only (`ii`); tab-separated, so the loop splits
/// on tabs alone (dash and busybox sh have `read`, not always awk).
const APT: &str = r##"if command -v dpkg-query >/dev/null 2>&1; then
  if out=$(dpkg-query -W -f '${Package}\t${Version}\t${db:Status-Abbrev}\n'); then
    echo '#stackctl-inventory apt'
    printf '%s\n' "$out" | while IFS="$tab" read -r n v s; do
      case $s in ii*) printf 'apt\t%s\t%s\n' "$n" "$v" ;; esac
    done
  else
    echo 'stackctl inventory: dpkg-query failed' >&2; rc=3
  fi
fi
"##;

/// pip: importlib.metadata, which needs no pip; the first distribution of a name (PEP 503
/// normalized) on sys.path wins, as with pip and import. No importlib.metadata (python
/// before 3.8 without the backport): not read.
const PIP: &str = r##"for py in python3 python; do
  command -v "$py" >/dev/null 2>&1 || continue
  "$py" -c '
import re, sys
try:
    from importlib import metadata
except ImportError:
    try:
        import importlib_metadata as metadata
    except ImportError:
        sys.exit(0)
sys.path = [p for p in sys.path if p]
seen, out = set(), ["#stackctl-inventory pip\n"]
for d in metadata.distributions():
    n, v = d.metadata["Name"], d.metadata["Version"]
    if not n or not v:
        continue
    k = re.sub(r"[-_.]+", "-", n).lower()
    if k not in seen:
        seen.add(k)
        out.append("pip\t%s\t%s\n" % (n.strip(), v.strip()))
sys.stdout.write("".join(out))
' || { echo "stackctl inventory: $py failed" >&2; rc=3; }
  break
done
"##;

/// conda: `conda list --json` of the active (else base) environment, parsed by conda's own
/// python; pip-installed packages it shows (channel `pypi`) are pip's.
const CONDA: &str = r##"if c=$(command -v conda 2>/dev/null); then
  d=${c%/*}; cpy=
  for p in "$d/python" "$d/../bin/python" "$d/python3" python3 python; do
    if command -v "$p" >/dev/null 2>&1; then cpy=$p; break; fi
  done
  if [ -n "$cpy" ] && out=$(CONDA_OFFLINE=true conda list --json --no-pip); then
    printf '%s' "$out" | "$cpy" -c '
import json, sys
out = ["#stackctl-inventory conda\n"]
for p in json.load(sys.stdin):
    if p.get("channel") != "pypi":
        out.append("conda\t%s\t%s\n" % (p["name"], p["version"]))
sys.stdout.write("".join(out))
' || { echo 'stackctl inventory: conda list --json unreadable' >&2; rc=3; }
  else
    echo 'stackctl inventory: conda list failed (or no python for it)' >&2; rc=3
  fi
fi
"##;

/// R: every library of `.libPaths()`; the first of a name wins, as with `library()`.
const R: &str = r##"if command -v Rscript >/dev/null 2>&1; then
  Rscript -e 'ip <- installed.packages()[, c("Package", "Version"), drop = FALSE]; ip <- ip[!duplicated(ip[, 1]), , drop = FALSE]; cat("#stackctl-inventory r\n", sprintf("r\t%s\t%s\n", ip[, 1], ip[, 2]), sep = "")' \
    || { echo 'stackctl inventory: Rscript failed' >&2; rc=3; }
fi
"##;

/// A POSIX sh script (dash, busybox sh) that prints the packages of `managers` (none: all
/// four) that the image has: for each, a line `#stackctl-inventory <manager>` then one
/// `<manager>\t<name>\t<version>` per package. An absent manager is skipped; one that is
/// present but could not be read is said on stderr and makes the exit code 3 (the others
/// are still printed). Nothing goes to the network.
pub fn script(managers: &[Manager]) -> String {
    let asked: BTreeSet<Manager> = if managers.is_empty() {
        Manager::ALL.into_iter().collect()
    } else {
        managers.iter().copied().collect()
    };
    let mut s = String::from("rc=0\ntab=$(printf '\\t')\n");
    for m in asked {
        s.push_str(match m {
            Manager::Apt => APT,
            Manager::Pip => PIP,
            Manager::Conda => CONDA,
            Manager::R => R,
        });
    }
    s.push_str("exit $rc\n");
    s
}

/// [`script`]'s output as an inventory. A line that is neither a marker nor a package of a
/// marked manager is an error naming it.
pub fn parse(stdout: &str) -> Result<Inventory> {
    let mut managers = BTreeSet::new();
    let mut packages = BTreeSet::new();
    for (i, line) in stdout.lines().enumerate() {
        let bad = |why: &str| anyhow!("inventory line {}: {why}: {line:?}", i + 1);
        let line_t = line.trim_end_matches('\r');
        if line_t.trim().is_empty() {
            continue;
        }
        if let Some(m) = line_t.strip_prefix(MARKER) {
            let m: Manager = m.trim().parse().map_err(|e| bad(&format!("{e:#}")))?;
            managers.insert(m);
            continue;
        }
        let fields: Vec<&str> = line_t.split('\t').collect();
        let [m, name, version] = fields[..] else {
            return Err(bad("not <manager> TAB <name> TAB <version>"));
        };
        let m: Manager = m.parse().map_err(|e| bad(&format!("{e:#}")))?;
        if !managers.contains(&m) {
            return Err(bad(&format!("a {m} package before its marker line")));
        }
        if name.is_empty() || version.is_empty() {
            return Err(bad("an empty name or version"));
        }
        packages.insert(Package {
            manager: m,
            name: name.to_string(),
            version: version.to_string(),
        });
    }
    Ok(Inventory::new(managers, packages))
}

/// The inverse of [`parse`]: the text [`script`] would have printed.
pub fn render(inv: &Inventory) -> String {
    let mut s = String::new();
    for &m in &inv.managers {
        s.push_str(&format!("{MARKER}{m}\n"));
        for p in inv.of(m) {
            s.push_str(&format!("{m}\t{}\t{}\n", p.name, p.version));
        }
    }
    s
}

/// PEP 503: runs of `-`, `_`, `.` are one `-`, lower case.
pub fn normalize_pip_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// `%XX` escapes decoded (a malformed one is kept as it is).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A purl's manager, name and version (`pkg:TYPE/[NAMESPACE/]NAME@VERSION?QUALIFIERS#SUB`);
/// a deb purl's `epoch` qualifier goes in front of its version, as dpkg writes it.
fn from_purl(purl: &str) -> Option<(Manager, String, String)> {
    let rest = purl.strip_prefix("pkg:")?;
    let rest = rest.split('#').next()?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (ty, path) = path.split_once('/')?;
    let m = match ty.to_ascii_lowercase().as_str() {
        "deb" => Manager::Apt,
        "pypi" => Manager::Pip,
        "conda" => Manager::Conda,
        "cran" => Manager::R,
        _ => return None,
    };
    let (path, version) = path.rsplit_once('@')?;
    let name = percent_decode(path.trim_end_matches('/').rsplit('/').next()?);
    let mut version = percent_decode(version);
    if m == Manager::Apt && !version.contains(':') {
        let epoch = query
            .split('&')
            .find_map(|q| q.strip_prefix("epoch="))
            .filter(|e| !e.is_empty() && *e != "0");
        if let Some(e) = epoch {
            version = format!("{}:{version}", percent_decode(e));
        }
    }
    (!name.is_empty() && !version.is_empty()).then_some((m, name, version))
}

/// The packages of an SPDX 2.x JSON document (a BuildKit SBOM attestation's `predicate`)
/// that have an apt, pip, conda or R purl. The package's own `name` is kept when it is the
/// purl's name up to case and separators (purls lowercase PyPI names).
pub fn from_spdx(doc: &serde_json::Value) -> Inventory {
    let mut managers = BTreeSet::new();
    let mut packages = BTreeSet::new();
    let pkgs = doc["packages"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for p in pkgs {
        let refs = p["externalRefs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let found = refs
            .iter()
            .filter(|r| r["referenceType"].as_str() == Some("purl"))
            .find_map(|r| from_purl(r["referenceLocator"].as_str()?));
        let Some((m, purl_name, version)) = found else {
            continue;
        };
        let name = match p["name"].as_str() {
            Some(n) if normalize_pip_name(n) == normalize_pip_name(&purl_name) => n.to_string(),
            _ => purl_name,
        };
        managers.insert(m);
        packages.insert(Package {
            manager: m,
            name,
            version,
        });
    }
    Inventory::new(managers, packages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pkg(m: Manager, n: &str, v: &str) -> Package {
        Package {
            manager: m,
            name: n.into(),
            version: v.into(),
        }
    }

    #[test]
    fn managers_by_name() {
        for m in Manager::ALL {
            assert_eq!(m.to_string().parse::<Manager>().unwrap(), m);
            assert_eq!(serde_json::to_value(m).unwrap(), json!(m.to_string()));
        }
        let e = "npm".parse::<Manager>().unwrap_err().to_string();
        assert!(e.contains("npm") && e.contains("apt, pip, conda, r"), "{e}");
        assert!("Apt".parse::<Manager>().is_err());
    }

    #[test]
    fn parse_reads_sections_sorted_and_deduplicated() {
        let out = "#stackctl-inventory pip\npip\tPyYAML\t6.0.1\npip\tpytest\t7.2.1\n\
                   #stackctl-inventory apt\napt\tlibc6\t2.36-9+deb12u4\napt\tadduser\t3.134\n\
                   apt\tlibc6\t2.36-9+deb12u4\napt\tlibgcc-s1\t1:12.2.0-14\n\
                   #stackctl-inventory r\n";
        let inv = parse(out).unwrap();
        assert_eq!(inv.managers, [Manager::Apt, Manager::Pip, Manager::R]);
        assert_eq!(
            inv.of(Manager::Apt).collect::<Vec<_>>(),
            [
                &pkg(Manager::Apt, "adduser", "3.134"),
                &pkg(Manager::Apt, "libc6", "2.36-9+deb12u4"),
                &pkg(Manager::Apt, "libgcc-s1", "1:12.2.0-14"),
            ]
        );
        assert_eq!(inv.of(Manager::Pip).count(), 2);
        assert_eq!(inv.of(Manager::R).count(), 0, "present, no package");
        assert_eq!(parse("").unwrap(), Inventory::default());
        assert_eq!(parse(&render(&inv)).unwrap(), inv, "round trip");
        let back: Inventory = serde_json::from_str(&serde_json::to_string(&inv).unwrap()).unwrap();
        assert_eq!(back, inv);
    }

    #[test]
    fn parse_names_the_bad_line() {
        for (text, line, why) in [
            ("#stackctl-inventory apt\napt\tlibc6\n", 2, "TAB"),
            ("#stackctl-inventory apt\napt\ta\tb\tc\n", 2, "TAB"),
            ("#stackctl-inventory npm\n", 1, "npm"),
            ("#stackctl-inventory apt\n\nnpm\tleft-pad\t1.0\n", 3, "npm"),
            ("pip\tpytest\t7.2.1\n", 1, "marker"),
            ("#stackctl-inventory pip\npip\t\t7.2.1\n", 2, "empty"),
            (
                "#stackctl-inventory pip\nTraceback (most recent call last):\n",
                2,
                "TAB",
            ),
        ] {
            let e = format!("{:#}", parse(text).unwrap_err());
            assert!(e.contains(&format!("line {line}:")), "{text:?}: {e}");
            assert!(e.contains(why), "{text:?}: {e}");
            let bad = text.lines().nth(line - 1).unwrap();
            assert!(e.contains(&format!("{bad:?}")), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_script_reads_only_what_is_asked() {
        let all = script(&[]);
        assert_eq!(all, script(&Manager::ALL));
        for (m, probe) in [
            (Manager::Apt, "dpkg-query -W"),
            (Manager::Pip, "importlib"),
            (Manager::Conda, "conda list --json"),
            (Manager::R, "installed.packages()"),
        ] {
            assert!(all.contains(probe), "{m}");
            assert!(script(&[m]).contains(probe), "{m}");
            let others: Vec<Manager> = Manager::ALL.into_iter().filter(|&o| o != m).collect();
            assert!(!script(&others).contains(probe), "{m}");
            assert!(all.contains(&format!("{MARKER}{m}")), "{m}");
        }
        assert!(all.ends_with("exit $rc\n"), "{all}");
        assert!(
            !all.contains("pip install") && !all.contains("apt-get"),
            "{all}"
        );
    }

    /// The script on this machine, by dash (`sh`) and busybox: the host's own dpkg database
    /// and python are real managers.
    #[test]
    fn the_script_runs_under_dash_and_busybox_here() {
        for shell in [&["sh"][..], &["busybox", "sh"]] {
            let which = std::process::Command::new("sh")
                .args(["-c", &format!("command -v {}", shell[0])])
                .output()
                .unwrap();
            if !which.status.success() {
                continue;
            }
            let out = std::process::Command::new(shell[0])
                .args(&shell[1..])
                .arg("-c")
                .arg(script(&[Manager::Apt, Manager::Pip]))
                .output()
                .unwrap();
            let stdout = String::from_utf8(out.stdout).unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{shell:?}: {stderr}");
            let inv = parse(&stdout).unwrap();
            let has_dpkg = std::path::Path::new("/var/lib/dpkg/status").exists();
            if has_dpkg {
                assert!(
                    inv.of(Manager::Apt).any(|p| p.name == "dpkg"),
                    "{shell:?}: {stdout}"
                );
            }
            assert!(!inv.managers.contains(&Manager::Conda));
        }
    }

    #[test]
    fn purls_and_pep_503() {
        assert_eq!(normalize_pip_name("Foo.Bar__baz-"), "foo-bar-baz");
        assert_eq!(normalize_pip_name("PyYAML"), "pyyaml");
        assert_eq!(
            from_purl("pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-12"),
            Some((Manager::Apt, "libstdc++6".into(), "12.2.0-14".into()))
        );
        assert_eq!(
            from_purl("pkg:deb/debian/libgcc-s1@12.2.0-14?arch=amd64&epoch=1"),
            Some((Manager::Apt, "libgcc-s1".into(), "1:12.2.0-14".into()))
        );
        assert_eq!(
            from_purl("pkg:deb/debian/libgcc-s1@1%3A12.2.0-14?arch=amd64&epoch=1"),
            Some((Manager::Apt, "libgcc-s1".into(), "1:12.2.0-14".into()))
        );
        assert_eq!(
            from_purl("pkg:cran/ggplot2@3.4.4"),
            Some((Manager::R, "ggplot2".into(), "3.4.4".into()))
        );
        assert_eq!(
            from_purl("pkg:conda/conda-forge/numpy@1.26.4?build=py311"),
            Some((Manager::Conda, "numpy".into(), "1.26.4".into()))
        );
        assert_eq!(from_purl("pkg:npm/left-pad@1.3.0"), None);
        assert_eq!(from_purl("pkg:pypi/nover"), None);
        assert_eq!(from_purl("cpe:2.3:a:python:python"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    /// A small document as BuildKit's SBOM scanner (syft) writes it.
    #[test]
    fn spdx_packages_by_purl() {
        let doc = json!({
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": "sbom",
            "documentNamespace": "https://anchore.com/syft/dir/sbom-1",
            "creationInfo": {"creators": ["Tool: syft-v0.105.0", "Tool: buildkit-v0.13.0"],
                             "created": "2026-03-01T10:00:00Z"},
            "packages": [
                {"name": "libc6", "SPDXID": "SPDXRef-Package-deb-libc6-1",
                 "versionInfo": "2.36-9+deb12u4", "supplier": "Person: GNU Libc Maintainers",
                 "downloadLocation": "NOASSERTION", "filesAnalyzed": false,
                 "externalRefs": [
                    {"referenceCategory": "SECURITY", "referenceType": "cpe23Type",
                     "referenceLocator": "cpe:2.3:a:libc6:libc6:2.36-9\\+deb12u4:*:*:*:*:*:*:*"},
                    {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                     "referenceLocator": "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&upstream=glibc&distro=debian-12"}]},
                {"name": "PyYAML", "SPDXID": "SPDXRef-Package-python-PyYAML-2",
                 "versionInfo": "6.0.1",
                 "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                     "referenceLocator": "pkg:pypi/pyyaml@6.0.1"}]},
                {"name": "PyYAML", "SPDXID": "SPDXRef-Package-python-PyYAML-3",
                 "versionInfo": "6.0.1",
                 "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                     "referenceLocator": "pkg:pypi/pyyaml@6.0.1"}]},
                {"name": "ggplot2", "SPDXID": "SPDXRef-Package-R-ggplot2",
                 "versionInfo": "3.4.4",
                 "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                     "referenceLocator": "pkg:cran/ggplot2@3.4.4"}]},
                {"name": "left-pad", "SPDXID": "SPDXRef-Package-npm-left-pad",
                 "versionInfo": "1.3.0",
                 "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                     "referenceLocator": "pkg:npm/left-pad@1.3.0"}]},
                {"name": "/bin/busybox", "SPDXID": "SPDXRef-Package-binary-busybox",
                 "versionInfo": "1.35.0"},
                {"name": "sbom", "SPDXID": "SPDXRef-DocumentRoot-Directory-sbom"}
            ],
            "relationships": []
        });
        let inv = from_spdx(&doc);
        assert_eq!(inv.managers, [Manager::Apt, Manager::Pip, Manager::R]);
        assert_eq!(
            inv.packages,
            [
                pkg(Manager::Apt, "libc6", "2.36-9+deb12u4"),
                pkg(Manager::Pip, "PyYAML", "6.0.1"),
                pkg(Manager::R, "ggplot2", "3.4.4"),
            ]
        );
        assert_eq!(from_spdx(&json!({})), Inventory::default());
        assert_eq!(parse(&render(&inv)).unwrap(), inv);
    }
}
