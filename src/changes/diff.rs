//! The comparison of two images, platform by platform: compressed sizes and layers (from
//! their manifests), and packages (from their inventories).

use super::inventory::{Inventory, Manager, Package};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

/// One layer of a platform's manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    pub digest: String,
    /// Compressed, as the manifest gives it.
    pub size: u64,
    /// The step that made it (the config's history), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// One platform of an image, as its manifest (and inventory) give it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlatformImage {
    pub platform: String,
    /// The platform manifest's digest.
    pub digest: String,
    pub layers: Vec<Layer>,
    /// Its packages; None when no inventory could be had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    /// Where the inventory came from (`collected`, `attached`, `sbom`, `computed`), or why
    /// there is none.
    pub inventory_source: String,
}

impl PlatformImage {
    /// Compressed size: the sum of its layers.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// An image: what a reference names, and its platforms.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageSide {
    /// As written (a tag or a digest reference).
    pub reference: String,
    /// The digest the reference names.
    pub digest: String,
    pub platforms: Vec<PlatformImage>,
}

/// Sizes of one platform, old against new.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SizeChange {
    pub old: u64,
    pub new: u64,
    pub delta: i64,
    pub layers: usize,
    /// New layers also in the old image (by digest), and their bytes.
    pub shared_layers: usize,
    pub shared_bytes: u64,
    /// Layers of the new image that the old one lacks, largest first.
    pub new_layers: Vec<Layer>,
    pub new_bytes: u64,
}

/// A package in both images at different versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VersionChange {
    pub manager: Manager,
    pub name: String,
    pub old: String,
    pub new: String,
}

/// What one platform's packages did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackageChanges {
    pub added: Vec<Package>,
    pub removed: Vec<Package>,
    pub upgraded: Vec<VersionChange>,
    pub downgraded: Vec<VersionChange>,
    /// Packages in both at the same version.
    pub unchanged: usize,
}

impl PackageChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.upgraded.is_empty()
            && self.downgraded.is_empty()
    }
}

/// One platform compared.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlatformChanges {
    pub platform: String,
    pub old_digest: Option<String>,
    pub new_digest: String,
    /// None: the old image has no such platform (new size only, in `new_size`).
    pub size: Option<SizeChange>,
    pub new_size: u64,
    /// None with the reason in `packages_unknown`.
    pub packages: Option<PackageChanges>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages_unknown: Option<String>,
    /// Where each side's packages came from (`collected`, `attached`, `sbom`, `computed in
    /// BuildKit`), or why there are none.
    pub packages_from: PackageSources,
}

/// Where the two inventories of a platform came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackageSources {
    pub old: Option<String>,
    pub new: String,
}

/// Two images compared.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Changes {
    /// The image compared against; None: nothing to compare with (a first build).
    pub old: Option<Side>,
    pub new: Side,
    /// Why this old image (`<prefix>-stable`, `stable`, the branch's previous build, or
    /// given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    pub platforms: Vec<PlatformChanges>,
}

/// An image named in a comparison.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Side {
    pub reference: String,
    pub digest: String,
}

/// Compare `new` with `old` (None: a first build, sizes only).
pub fn compare(old: Option<&ImageSide>, new: &ImageSide, basis: Option<String>) -> Changes {
    let platforms = new
        .platforms
        .iter()
        .map(|n| {
            let o = old.and_then(|o| o.platforms.iter().find(|p| p.platform == n.platform));
            compare_platform(o, n, old.is_some())
        })
        .collect();
    Changes {
        old: old.map(|o| Side {
            reference: o.reference.clone(),
            digest: o.digest.clone(),
        }),
        new: Side {
            reference: new.reference.clone(),
            digest: new.digest.clone(),
        },
        basis,
        platforms,
    }
}

fn compare_platform(
    old: Option<&PlatformImage>,
    new: &PlatformImage,
    any_old: bool,
) -> PlatformChanges {
    let size = old.map(|o| sizes(o, new));
    let packages = match (old.and_then(|o| o.inventory.as_ref()), &new.inventory) {
        (Some(o), Some(n)) => Ok(packages(o, n)),
        (None, _) if old.is_none() => Err(if any_old {
            "the old image has no such platform".to_string()
        } else {
            "nothing to compare with".to_string()
        }),
        (None, _) => Err(format!(
            "unknown: the old image's inventory ({})",
            old.map(|o| o.inventory_source.as_str()).unwrap_or_default()
        )),
        (_, None) => Err(format!(
            "unknown: this image's inventory ({})",
            new.inventory_source
        )),
    };
    let (packages, packages_unknown) = match packages {
        Ok(p) => (Some(p), None),
        Err(why) => (None, Some(why)),
    };
    PlatformChanges {
        platform: new.platform.clone(),
        old_digest: old.map(|o| o.digest.clone()),
        new_digest: new.digest.clone(),
        size,
        new_size: new.size(),
        packages,
        packages_unknown,
        packages_from: PackageSources {
            old: old.map(|o| o.inventory_source.clone()),
            new: new.inventory_source.clone(),
        },
    }
}

/// Sizes and layers of `new` against `old`.
pub fn sizes(old: &PlatformImage, new: &PlatformImage) -> SizeChange {
    let before: HashSet<&str> = old.layers.iter().map(|l| l.digest.as_str()).collect();
    let (shared, mut fresh): (Vec<&Layer>, Vec<&Layer>) = new
        .layers
        .iter()
        .partition(|l| before.contains(l.digest.as_str()));
    fresh.sort_by(|a, b| b.size.cmp(&a.size).then(a.digest.cmp(&b.digest)));
    let (o, n) = (old.size(), new.size());
    SizeChange {
        old: o,
        new: n,
        delta: n as i64 - o as i64,
        layers: new.layers.len(),
        shared_layers: shared.len(),
        shared_bytes: shared.iter().map(|l| l.size).sum(),
        new_bytes: fresh.iter().map(|l| l.size).sum(),
        new_layers: fresh.into_iter().cloned().collect(),
    }
}

/// Packages of `new` against `old`, by manager and name; only managers read in both count
/// (a manager read in one image alone lists nothing as added or removed).
pub fn packages(old: &Inventory, new: &Inventory) -> PackageChanges {
    let both: HashSet<Manager> = old
        .managers
        .iter()
        .filter(|m| new.managers.contains(m))
        .copied()
        .collect();
    let key = |p: &Package| (p.manager, normalized(p.manager, &p.name));
    let index = |inv: &Inventory| -> BTreeMap<(Manager, String), Package> {
        inv.packages
            .iter()
            .filter(|p| both.contains(&p.manager))
            .map(|p| (key(p), p.clone()))
            .collect()
    };
    let (o, n) = (index(old), index(new));
    let mut out = PackageChanges::default();
    for (k, p) in &n {
        match o.get(k) {
            None => out.added.push(p.clone()),
            Some(q) if q.version == p.version => out.unchanged += 1,
            Some(q) => {
                let change = VersionChange {
                    manager: p.manager,
                    name: p.name.clone(),
                    old: q.version.clone(),
                    new: p.version.clone(),
                };
                match compare_versions(p.manager, &q.version, &p.version) {
                    Ordering::Greater => out.downgraded.push(change),
                    _ => out.upgraded.push(change),
                }
            }
        }
    }
    out.removed = o
        .iter()
        .filter(|(k, _)| !n.contains_key(*k))
        .map(|(_, p)| p.clone())
        .collect();
    out
}

/// A name as its manager compares names: pip's are PEP 503-normalized.
fn normalized(m: Manager, name: &str) -> String {
    match m {
        Manager::Pip => super::inventory::normalize_pip_name(name),
        _ => name.to_string(),
    }
}

/// How version `a` orders against `b` by `m`'s rules: Debian's for apt, PEP 440 for pip,
/// else piece by piece, numbers as numbers (conda's and R's versions are dotted numbers
/// with the odd letter, for which no crate gives the rules).
pub fn compare_versions(m: Manager, a: &str, b: &str) -> Ordering {
    match m {
        Manager::Apt => {
            if let (Ok(x), Ok(y)) = (
                a.parse::<debversion::Version>(),
                b.parse::<debversion::Version>(),
            ) {
                return x.cmp(&y);
            }
        }
        Manager::Pip => {
            if let (Ok(x), Ok(y)) = (
                a.parse::<pep440_rs::Version>(),
                b.parse::<pep440_rs::Version>(),
            ) {
                return x.cmp(&y);
            }
        }
        _ => {}
    }
    natural(a, b)
}

/// Runs of digits compared as numbers, other runs as text.
fn natural(a: &str, b: &str) -> Ordering {
    fn pieces(s: &str) -> Vec<(bool, &str)> {
        let mut out = vec![];
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (pa, pb) = (pieces(a), pieces(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then(x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(m: Manager, name: &str, version: &str) -> Package {
        Package {
            manager: m,
            name: name.into(),
            version: version.into(),
        }
    }

    fn inv(managers: &[Manager], packages: Vec<Package>) -> Inventory {
        Inventory {
            managers: managers.to_vec(),
            packages,
        }
    }

    #[test]
    fn versions_order_by_their_managers_rules() {
        use Manager::*;
        assert_eq!(
            compare_versions(Apt, "1.0-1", "1.0-1+deb12u1"),
            Ordering::Less
        );
        assert_eq!(compare_versions(Apt, "1:0.9", "2.0"), Ordering::Greater);
        assert_eq!(compare_versions(Apt, "1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(compare_versions(Pip, "1.10.0", "1.9.2"), Ordering::Greater);
        assert_eq!(compare_versions(Pip, "2.0.0rc1", "2.0.0"), Ordering::Less);
        assert_eq!(compare_versions(R, "4.3.10", "4.3.9"), Ordering::Greater);
        assert_eq!(compare_versions(Conda, "1.26.4", "1.26.4"), Ordering::Equal);
    }

    #[test]
    fn packages_added_removed_upgraded_downgraded() {
        use Manager::*;
        let old = inv(
            &[Apt, Pip],
            vec![
                pkg(Apt, "curl", "7.88.1-10"),
                pkg(Apt, "wget", "1.21"),
                pkg(Pip, "Numpy", "1.26.4"),
                pkg(Pip, "pandas", "2.2.0"),
                pkg(Pip, "same", "1"),
            ],
        );
        let new = inv(
            &[Apt, Pip, Conda],
            vec![
                pkg(Apt, "curl", "7.88.1-10+deb12u5"),
                pkg(Apt, "git", "2.39"),
                pkg(Pip, "numpy", "2.0.0"),
                pkg(Pip, "pandas", "2.1.0"),
                pkg(Pip, "same", "1"),
                pkg(Conda, "python", "3.11"),
            ],
        );
        let c = packages(&old, &new);
        assert_eq!(c.added, [pkg(Apt, "git", "2.39")]);
        assert_eq!(c.removed, [pkg(Apt, "wget", "1.21")]);
        let up: Vec<_> = c
            .upgraded
            .iter()
            .map(|v| (v.name.as_str(), v.new.as_str()))
            .collect();
        assert_eq!(up, [("curl", "7.88.1-10+deb12u5"), ("numpy", "2.0.0")]);
        assert_eq!(c.downgraded.len(), 1);
        assert_eq!(c.downgraded[0].name, "pandas");
        assert_eq!(c.unchanged, 1);
    }

    fn platform(layers: &[(&str, u64)]) -> PlatformImage {
        PlatformImage {
            platform: "linux/amd64".into(),
            digest: "sha256:m".into(),
            layers: layers
                .iter()
                .map(|(d, s)| Layer {
                    digest: d.to_string(),
                    size: *s,
                    created_by: None,
                })
                .collect(),
            inventory: None,
            inventory_source: "none".into(),
        }
    }

    #[test]
    fn sizes_count_shared_and_new_layers() {
        let old = platform(&[("a", 100), ("b", 50)]);
        let new = platform(&[("a", 100), ("c", 70), ("d", 5)]);
        let s = sizes(&old, &new);
        assert_eq!((s.old, s.new, s.delta), (150, 175, 25));
        assert_eq!((s.shared_layers, s.shared_bytes), (1, 100));
        assert_eq!(s.new_bytes, 75);
        assert_eq!(s.new_layers[0].digest, "c");
    }
}
