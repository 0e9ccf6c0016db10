//! Whether an image keeps within its size budget (`size_budget:`), platform by platform.

use super::diff::Changes;
use crate::sizes::human_size;
use crate::spec::compare::SizeBudget;

/// How many of the largest new layers a breach names.
const LAYERS_NAMED: usize = 3;

/// Each platform over `budget`, said with its figures and its largest new layers; empty
/// when it keeps within it.
pub fn breaches(budget: &SizeBudget, changes: &Changes) -> Vec<String> {
    let mut out = vec![];
    for p in &changes.platforms {
        let mut over = vec![];
        if let Some(max) = budget.max.filter(|m| p.new_size > *m) {
            over.push(format!(
                "{} compressed, over its max of {}",
                human_size(p.new_size),
                human_size(max)
            ));
        }
        if let (Some(growth), Some(s)) = (budget.growth, &p.size) {
            if s.delta > 0 && s.delta as u64 > growth {
                over.push(format!(
                    "grew by {} (from {} to {}), over its growth of {}",
                    human_size(s.delta as u64),
                    human_size(s.old),
                    human_size(s.new),
                    human_size(growth)
                ));
            }
        }
        if over.is_empty() {
            continue;
        }
        let mut line = format!("{}: {}", p.platform, over.join("; "));
        if let Some(s) = &p.size {
            let named: Vec<String> = s
                .new_layers
                .iter()
                .take(LAYERS_NAMED)
                .map(|l| {
                    let step = l
                        .created_by
                        .as_deref()
                        .map(|c| format!(" ({})", short_step(c)))
                        .unwrap_or_default();
                    format!("{} {}{step}", short(&l.digest), human_size(l.size))
                })
                .collect();
            if !named.is_empty() {
                line.push_str(&format!("; largest new layers: {}", named.join(", ")));
            }
        }
        out.push(line);
    }
    out
}

fn short(digest: &str) -> &str {
    let end = digest.len().min("sha256:".len() + 12);
    &digest[..end]
}

/// A history step without BuildKit's `|N ARG=…` prefix and clipped to a line.
pub(super) fn short_step(created_by: &str) -> String {
    let s = created_by.trim();
    let s = s.strip_suffix("# buildkit").unwrap_or(s).trim_end();
    let s = match s.strip_prefix("RUN /bin/sh -c ") {
        Some(rest) => format!("RUN {rest}"),
        None => s.strip_prefix("/bin/sh -c ").unwrap_or(s).to_string(),
    };
    let s = s.strip_prefix("#(nop) ").unwrap_or(&s).trim();
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_shown_as_written() {
        assert_eq!(
            short_step("RUN /bin/sh -c make all # buildkit"),
            "RUN make all"
        );
        assert_eq!(
            short_step("COPY pkgs/ /tmp/pkgs/ # buildkit"),
            "COPY pkgs/ /tmp/pkgs/"
        );
        assert_eq!(
            short_step("/bin/sh -c #(nop)  CMD [\"sh\"]"),
            "CMD [\"sh\"]"
        );
    }
    use crate::changes::diff::{compare, ImageSide, Layer, PlatformImage};

    fn side(layers: &[(&str, u64)]) -> ImageSide {
        ImageSide {
            reference: "r/x:t".into(),
            digest: "sha256:i".into(),
            platforms: vec![PlatformImage {
                platform: "linux/amd64".into(),
                digest: "sha256:m".into(),
                layers: layers
                    .iter()
                    .map(|(d, s)| Layer {
                        digest: d.to_string(),
                        size: *s,
                        created_by: Some(format!("RUN make {d}")),
                    })
                    .collect(),
                inventory: None,
                inventory_source: "x".into(),
            }],
        }
    }

    #[test]
    fn a_breach_gives_its_figures_and_layers() {
        let c = compare(
            Some(&side(&[("sha256:a", 1000)])),
            &side(&[("sha256:a", 1000), ("sha256:b", 3000)]),
            None,
        );
        let b = SizeBudget {
            max: Some(2000),
            growth: Some(500),
            ..Default::default()
        };
        let found = breaches(&b, &c);
        assert_eq!(found.len(), 1);
        let line = &found[0];
        assert!(
            line.starts_with("linux/amd64: 4.0 kB compressed, over its max of 2.0 kB"),
            "{line}"
        );
        assert!(
            line.contains("grew by 3.0 kB (from 1.0 kB to 4.0 kB), over its growth of 500 B"),
            "{line}"
        );
        assert!(
            line.contains("largest new layers: sha256:b 3.0 kB (RUN make sha256:b)"),
            "{line}"
        );
        let roomy = SizeBudget {
            max: Some(10_000),
            growth: Some(5_000),
            ..Default::default()
        };
        assert!(breaches(&roomy, &c).is_empty());
    }
}
