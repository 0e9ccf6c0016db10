//! The layer table: the config's history matched with the manifest's layer sizes.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// One row of the layer table (one history entry), oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    pub created: Option<DateTime<Utc>>,
    /// The step, without `/bin/sh -c` and `#(nop)` noise.
    pub command: String,
    /// Compressed size of the layer the step made (0 for steps without a layer).
    pub size: u64,
    /// Sum of the sizes of this and every earlier row.
    pub cumulative: u64,
    /// Time since the previous step (none for the first, or without dates).
    pub since_previous: Option<chrono::Duration>,
    /// Tags pointing at this step (the reference's tag, on the last row).
    pub tags: Vec<String>,
}

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    history: Vec<History>,
}

#[derive(Deserialize)]
struct History {
    created: Option<String>,
    created_by: Option<String>,
    #[serde(default)]
    empty_layer: bool,
    comment: Option<String>,
}

/// Rows from the image config (JSON) and the manifest's layer sizes (bottom first).
/// Non-empty history entries take the layer sizes in order; a config without history
/// gives one row per layer.
pub fn rows(
    config: &serde_json::Value,
    layer_sizes: &[u64],
    tag: Option<&str>,
) -> anyhow::Result<Vec<LayerRow>> {
    let cfg: Config = serde_json::from_value(config.clone())
        .map_err(|e| anyhow::anyhow!("unreadable image config history: {e}"))?;
    let mut out = Vec::new();
    let mut layers = layer_sizes.iter();
    let mut cumulative = 0u64;
    let mut prev: Option<DateTime<Utc>> = None;
    let history: Vec<History> = if cfg.history.is_empty() {
        layer_sizes
            .iter()
            .map(|_| History {
                created: None,
                created_by: None,
                empty_layer: false,
                comment: None,
            })
            .collect()
    } else {
        cfg.history
    };
    for h in history {
        let size = if h.empty_layer {
            0
        } else {
            layers.next().copied().unwrap_or(0)
        };
        cumulative += size;
        let created = h
            .created
            .as_deref()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map(|d| d.with_timezone(&Utc));
        let since_previous = match (prev, created) {
            (Some(p), Some(c)) => Some(c - p),
            _ => None,
        };
        if created.is_some() {
            prev = created;
        }
        let command = match h.created_by.as_deref() {
            Some(c) => clean_command(c),
            None => h.comment.unwrap_or_default(),
        };
        out.push(LayerRow {
            created,
            command,
            size,
            cumulative,
            since_previous,
            tags: vec![],
        });
    }
    if let (Some(last), Some(t)) = (out.last_mut(), tag) {
        last.tags.push(t.to_string());
    }
    Ok(out)
}

/// A history step as a Dockerfile line: `/bin/sh -c #(nop) ` and `/bin/sh -c ` go,
/// shell steps read `RUN ...`, the legacy builder's `|N ARG=v ...` build-argument
/// prefix and BuildKit's `# buildkit` suffix go; whitespace is collapsed.
pub fn clean_command(created_by: &str) -> String {
    let mut s = created_by.trim();
    // BuildKit writes `RUN |1 A=1 /bin/sh -c ...`: the `RUN ` comes back below.
    s = s.strip_prefix("RUN ").unwrap_or(s);
    // Legacy builder: `|2 A=1 B=2 /bin/sh -c ...` lists the build args in scope.
    if let Some(rest) = s.strip_prefix('|') {
        let mut parts = rest.splitn(2, ' ');
        if let (Some(n), Some(tail)) = (parts.next(), parts.next()) {
            if let Ok(n) = n.parse::<usize>() {
                let mut t = tail;
                for _ in 0..n {
                    t = t.split_once(' ').map(|(_, r)| r).unwrap_or("");
                }
                s = t.trim_start();
            }
        }
    }
    let s = s.strip_suffix("# buildkit").unwrap_or(s).trim_end();
    let cleaned = if let Some(rest) = s.strip_prefix("/bin/sh -c #(nop)") {
        rest.trim().to_string()
    } else if let Some(rest) = s.strip_prefix("/bin/sh -c ") {
        format!("RUN {}", rest.trim())
    } else {
        s.to_string()
    };
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `1h2m3s`, `1m3s`, `4s`, `0s` (whole seconds; negative durations as `0s`).
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_lose_their_noise() {
        assert_eq!(
            clean_command("/bin/sh -c #(nop)  CMD [\"sh\"]"),
            "CMD [\"sh\"]"
        );
        assert_eq!(
            clean_command("/bin/sh -c #(nop) ADD file:abc in / "),
            "ADD file:abc in /"
        );
        assert_eq!(
            clean_command("/bin/sh -c apt-get update &&     apt-get install x"),
            "RUN apt-get update && apt-get install x"
        );
        assert_eq!(
            clean_command("RUN |1 U=jo /bin/sh -c useradd \"$U\" # buildkit"),
            "RUN useradd \"$U\""
        );
        assert_eq!(
            clean_command("|2 A=1 B=two /bin/sh -c echo $A"),
            "RUN echo $A"
        );
        assert_eq!(
            clean_command("RUN /bin/sh -c pip install x # buildkit"),
            "RUN pip install x"
        );
        assert_eq!(clean_command("COPY f /f # buildkit"), "COPY f /f");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(chrono::Duration::seconds(63)), "1m3s");
        assert_eq!(human_duration(chrono::Duration::seconds(4)), "4s");
        assert_eq!(human_duration(chrono::Duration::seconds(3723)), "1h2m3s");
    }

    #[test]
    fn sizes_follow_non_empty_steps() {
        let cfg = serde_json::json!({"history": [
            {"created": "2026-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:x in /"},
            {"created": "2026-01-01T00:00:05Z", "created_by": "/bin/sh -c #(nop)  ENV A=1", "empty_layer": true},
            {"created": "2026-01-01T00:01:08Z", "created_by": "/bin/sh -c echo hi > /f"}
        ]});
        let r = rows(&cfg, &[1000, 250], Some("x:t")).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r.iter().map(|r| r.size).collect::<Vec<_>>(),
            vec![1000, 0, 250]
        );
        assert_eq!(r[2].cumulative, 1250);
        assert_eq!(
            r[2].since_previous.map(human_duration).as_deref(),
            Some("1m3s")
        );
        assert_eq!(r[2].tags, vec!["x:t".to_string()]);
        assert!(r[0].since_previous.is_none());
    }
}
