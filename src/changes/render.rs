//! Comparisons written for people: a Markdown section (the manifest page, the step summary,
//! `changes.md`) and plain text (`stackctl diff`).

use super::budget::short_step;
use super::diff::{Changes, PackageChanges, PlatformChanges};
use super::inventory::Manager;
use crate::sizes::human_size;
use std::fmt::Write as _;

/// How many packages of one kind a Markdown list shows before "and N more".
pub const LISTED: usize = 50;

/// `+12.3 MB`, `-1.0 kB`, `±0 B`.
pub fn signed_size(delta: i64) -> String {
    match delta {
        0 => "±0 B".into(),
        d if d > 0 => format!("+{}", human_size(d as u64)),
        d => format!("-{}", human_size(d.unsigned_abs())),
    }
}

/// What the old image is called in a heading: its tag, else its digest.
pub fn old_name(c: &Changes) -> String {
    match &c.old {
        None => "nothing".into(),
        Some(o) => match o.reference.rsplit_once(':') {
            Some((_, tag)) if !tag.contains('/') && !o.reference.contains('@') => tag.into(),
            _ => o.reference.clone(),
        },
    }
}

/// The Markdown section `## Changes since <old>` (`level` is its heading's `#`s).
pub fn markdown(c: &Changes, level: usize, listed: usize) -> String {
    let h = "#".repeat(level);
    let mut md = String::new();
    let Some(old) = &c.old else {
        let _ = writeln!(md, "{h} Changes\n\nNothing to compare with: no `-stable`, `stable` or earlier build of this image was found.\n");
        let _ = writeln!(md, "| Platform | Size |\n|----------|------|");
        for p in &c.platforms {
            let _ = writeln!(md, "| {} | {} |", p.platform, human_size(p.new_size));
        }
        return md;
    };
    let _ = writeln!(md, "{h} Changes since {}\n", old_name(c));
    let basis = c
        .basis
        .as_deref()
        .map(|b| format!(" ({b})"))
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "Compared with `{}`{basis}, `{}`.\n",
        old.reference, old.digest
    );
    let _ = writeln!(
        md,
        "| Platform | Size | Before | Change | Layers shared | New layers |\n|----------|------|--------|--------|---------------|------------|"
    );
    for p in &c.platforms {
        match &p.size {
            Some(s) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} of {} ({}) | {} ({}) |",
                    p.platform,
                    human_size(s.new),
                    human_size(s.old),
                    signed_size(s.delta),
                    s.shared_layers,
                    s.layers,
                    human_size(s.shared_bytes),
                    s.new_layers.len(),
                    human_size(s.new_bytes)
                );
            }
            None => {
                let _ = writeln!(
                    md,
                    "| {} | {} | – | new platform | – | – |",
                    p.platform,
                    human_size(p.new_size)
                );
            }
        }
    }
    for p in &c.platforms {
        md.push('\n');
        md.push_str(&platform_packages(p, level + 1, listed));
    }
    md
}

fn platform_packages(p: &PlatformChanges, level: usize, listed: usize) -> String {
    let h = "#".repeat(level);
    let mut md = format!("{h} Packages on {}\n\n", p.platform);
    let Some(c) = &p.packages else {
        let _ = writeln!(
            md,
            "Packages: {}.",
            p.packages_unknown.as_deref().unwrap_or("unknown")
        );
        return md;
    };
    if c.is_empty() {
        let _ = writeln!(md, "No package changed ({} the same).", c.unchanged);
        return md;
    }
    let _ = writeln!(
        md,
        "| Manager | Added | Removed | Upgraded | Downgraded |\n|---------|-------|---------|----------|------------|"
    );
    for m in managers(c) {
        let n = |v: usize| v.to_string();
        let _ = writeln!(
            md,
            "| {m} | {} | {} | {} | {} |",
            n(c.added.iter().filter(|x| x.manager == m).count()),
            n(c.removed.iter().filter(|x| x.manager == m).count()),
            n(c.upgraded.iter().filter(|x| x.manager == m).count()),
            n(c.downgraded.iter().filter(|x| x.manager == m).count()),
        );
    }
    md.push('\n');
    let lines = |title: &str, items: Vec<String>, md: &mut String| {
        if items.is_empty() {
            return;
        }
        let _ = writeln!(md, "{title}:");
        for i in items.iter().take(listed) {
            let _ = writeln!(md, "- {i}");
        }
        if items.len() > listed {
            let _ = writeln!(md, "- and {} more", items.len() - listed);
        }
        md.push('\n');
    };
    lines(
        "Added",
        c.added
            .iter()
            .map(|x| format!("{} `{}` {}", x.manager, x.name, x.version))
            .collect(),
        &mut md,
    );
    lines(
        "Removed",
        c.removed
            .iter()
            .map(|x| format!("{} `{}` {}", x.manager, x.name, x.version))
            .collect(),
        &mut md,
    );
    lines(
        "Upgraded",
        c.upgraded
            .iter()
            .map(|x| format!("{} `{}` {} → {}", x.manager, x.name, x.old, x.new))
            .collect(),
        &mut md,
    );
    lines(
        "Downgraded",
        c.downgraded
            .iter()
            .map(|x| format!("{} `{}` {} → {}", x.manager, x.name, x.old, x.new))
            .collect(),
        &mut md,
    );
    md
}

/// The managers that changed anything, in a fixed order.
fn managers(c: &PackageChanges) -> Vec<Manager> {
    let mut ms: Vec<Manager> = c
        .added
        .iter()
        .chain(&c.removed)
        .map(|p| p.manager)
        .chain(c.upgraded.iter().chain(&c.downgraded).map(|v| v.manager))
        .collect();
    ms.sort();
    ms.dedup();
    ms
}

/// Plain text: a line per platform's sizes, then its package changes, one per line.
pub fn text(c: &Changes) -> String {
    let mut out = String::new();
    match &c.old {
        Some(o) => {
            let _ = writeln!(out, "{} ({})", o.reference, o.digest);
            let _ = writeln!(out, "  → {} ({})", c.new.reference, c.new.digest);
        }
        None => {
            let _ = writeln!(
                out,
                "{} ({}): nothing to compare with",
                c.new.reference, c.new.digest
            );
        }
    }
    for p in &c.platforms {
        match &p.size {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "{}: {} → {} ({}); {} of {} layers shared ({}), {} new ({})",
                    p.platform,
                    human_size(s.old),
                    human_size(s.new),
                    signed_size(s.delta),
                    s.shared_layers,
                    s.layers,
                    human_size(s.shared_bytes),
                    s.new_layers.len(),
                    human_size(s.new_bytes)
                );
                for l in s.new_layers.iter().take(3) {
                    let step = l.created_by.as_deref().map(short_step).unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  new layer {} {} {step}",
                        l.digest,
                        human_size(l.size)
                    );
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "{}: {} (not in the old image)",
                    p.platform,
                    human_size(p.new_size)
                );
            }
        }
        match &p.packages {
            None => {
                let _ = writeln!(
                    out,
                    "  packages: {}",
                    p.packages_unknown.as_deref().unwrap_or("unknown")
                );
            }
            Some(pc) if pc.is_empty() => {
                let _ = writeln!(out, "  packages: none changed ({} the same)", pc.unchanged);
            }
            Some(pc) => {
                for x in &pc.added {
                    let _ = writeln!(out, "  + {} {} {}", x.manager, x.name, x.version);
                }
                for x in &pc.removed {
                    let _ = writeln!(out, "  - {} {} {}", x.manager, x.name, x.version);
                }
                for x in &pc.upgraded {
                    let _ = writeln!(out, "  ↑ {} {} {} → {}", x.manager, x.name, x.old, x.new);
                }
                for x in &pc.downgraded {
                    let _ = writeln!(out, "  ↓ {} {} {} → {}", x.manager, x.name, x.old, x.new);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::diff::{compare, ImageSide, Layer, PlatformImage};
    use crate::changes::inventory::{Inventory, Package};

    fn side(reference: &str, layers: &[(&str, u64)], pip: &[(&str, &str)]) -> ImageSide {
        ImageSide {
            reference: reference.into(),
            digest: format!("sha256:{}", reference.len()),
            platforms: vec![PlatformImage {
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
                inventory: Some(Inventory {
                    managers: vec![Manager::Pip],
                    packages: pip
                        .iter()
                        .map(|(n, v)| Package {
                            manager: Manager::Pip,
                            name: n.to_string(),
                            version: v.to_string(),
                        })
                        .collect(),
                }),
                inventory_source: "attached".into(),
            }],
        }
    }

    #[test]
    fn the_section_names_the_old_tag_and_lists_changes() {
        let old = side(
            "r/x:2026.3-stable",
            &[("a", 1000)],
            &[("demo", "1.0"), ("gone", "2")],
        );
        let new = side(
            "r/x:2026.3-main",
            &[("a", 1000), ("b", 2500)],
            &[("demo", "1.1"), ("fresh", "3")],
        );
        let c = compare(Some(&old), &new, Some("`2026.3-stable`".into()));
        let md = markdown(&c, 2, 1);
        assert!(md.starts_with("## Changes since 2026.3-stable\n"), "{md}");
        assert!(
            md.contains(
                "| linux/amd64 | 3.5 kB | 1.0 kB | +2.5 kB | 1 of 2 (1.0 kB) | 1 (2.5 kB) |"
            ),
            "{md}"
        );
        assert!(md.contains("| pip | 1 | 1 | 1 | 0 |"), "{md}");
        assert!(md.contains("- pip `demo` 1.0 → 1.1"), "{md}");
        assert!(md.contains("- pip `fresh` 3"), "{md}");
        let t = text(&c);
        assert!(t.contains("linux/amd64: 1.0 kB → 3.5 kB (+2.5 kB)"), "{t}");
        assert!(t.contains("  ↑ pip demo 1.0 → 1.1"), "{t}");
        assert_eq!(signed_size(-1500), "-1.5 kB");
    }
}
