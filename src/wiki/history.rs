//! The build history in the wiki checkout, and the cap on its manifest pages.
//!
//! - Every build that pushed appends one row to `history/YYYY-MM.md` (the month of the
//!   build's time, UTC): time, commit, branch tag, and each pushed image with its digest
//!   and a link to its manifest page. `History.md` lists the months, newest first.
//!   Home.md is left as it is.
//! - A GitHub wiki renders at most 5,000 pages: [`cap_manifest_pages`] removes the oldest
//!   manifest pages beyond a maximum, never one linked from Home.md or Stable_Tag.md.
//!   A page's age is the time of the newest history row that links it; pages no row
//!   links (older than the history) count as older still, by file time.
//!
//! Links are wiki links by page name (`[page](<name>)`): a GitHub wiki finds a page by
//! its file name, whatever folder it is in.

use crate::report::names::page_name;
use anyhow::Context;
use chrono::{DateTime, NaiveDateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The time format of a history row.
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

const MONTH_HEADER: &str =
    "| Time (UTC) | Commit | Tag | Images |\n|------------|--------|-----|--------|\n";

/// One pushed image of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// `<repository>:<tag>`.
    pub reference: String,
    pub digest: String,
}

/// One build, as its history row shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildEntry {
    /// When the build ran; its month names the page. Passed in, so tests fix the clock.
    pub time: DateTime<Utc>,
    /// The built commit (its first 7 characters are shown).
    pub commit: String,
    /// The run's tag (`<prefix>-<branch>`).
    pub tag: String,
    pub images: Vec<BuiltImage>,
}

/// `history/YYYY-MM.md` of `time` in `wiki`.
pub fn month_page(wiki: &Path, time: DateTime<Utc>) -> PathBuf {
    wiki.join("history")
        .join(format!("{}.md", time.format("%Y-%m")))
}

/// The row of `entry` (no line end).
pub fn row(entry: &BuildEntry) -> String {
    let images: Vec<String> = entry
        .images
        .iter()
        .map(|i| {
            format!(
                "`{}` `{}` [page]({})",
                i.reference,
                i.digest,
                page_name(&i.reference)
            )
        })
        .collect();
    format!(
        "| {} | `{}` | `{}` | {} |",
        entry.time.format(TIME_FORMAT),
        entry.commit.chars().take(7).collect::<String>(),
        entry.tag,
        images.join("<br>")
    )
}

/// Append `entry`'s row to its month's page (created with its heading and table header)
/// and rewrite `History.md`. Returns the month page.
pub fn append(wiki: &Path, entry: &BuildEntry) -> anyhow::Result<PathBuf> {
    let page = month_page(wiki, entry.time);
    let dir = page.parent().expect("a month page is in history/");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut text = match std::fs::read_to_string(&page) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "# Builds of {}\n\n{MONTH_HEADER}",
            entry.time.format("%Y-%m")
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", page.display())),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&row(entry));
    text.push('\n');
    std::fs::write(&page, text).with_context(|| format!("cannot write {}", page.display()))?;
    write_index(wiki)?;
    Ok(page)
}

/// The months that have a page, newest first.
fn months(wiki: &Path) -> anyhow::Result<Vec<String>> {
    let dir = wiki.join("history");
    let mut out = vec![];
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for e in entries {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some(m) = name.strip_suffix(".md") {
            if chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok() {
                out.push(m.to_string());
            }
        }
    }
    out.sort_by(|a, b| b.cmp(a));
    Ok(out)
}

/// `History.md`: a link to each month's page, newest first.
fn write_index(wiki: &Path) -> anyhow::Result<()> {
    let mut text = String::from(
        "# Build history\n\nOne page a month; each build that pushed images is a row.\n\n",
    );
    for m in months(wiki)? {
        text.push_str(&format!("- [{m}]({m})\n"));
    }
    let p = wiki.join("History.md");
    std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))
}

/// Page names linked from `text` (`[x](NAME)`, `[x](https://.../wiki/NAME)`).
fn linked_pages(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for part in text.split("](").skip(1) {
        let target = part.split(')').next().unwrap_or("");
        let name = target.rsplit('/').next().unwrap_or(target);
        if !name.is_empty() {
            out.insert(name.trim_end_matches(".md").to_string());
        }
    }
    out
}

/// The pages a promotion links: every link of Home.md's rows and of Stable_Tag.md, and the
/// pages of the images they name.
fn protected_pages(wiki: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    for f in ["Home.md", "Stable_Tag.md"] {
        if let Ok(text) = std::fs::read_to_string(wiki.join(f)) {
            out.extend(linked_pages(&text));
            for line in text.lines().filter(|l| l.trim_start().starts_with('|')) {
                for name in line.split('`').skip(1).step_by(2) {
                    if name.contains(':') {
                        out.insert(page_name(name));
                    }
                }
            }
        }
    }
    out
}

/// Whether `path` is a manifest page (`# <ref>`, then `Manifest digest: ...`). Only the
/// file's start is read: a wiki holds thousands of pages, some with long package lists.
fn is_manifest_page(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::with_capacity(2048);
    let read = std::fs::File::open(path).and_then(|f| f.take(2048).read_to_end(&mut head));
    if read.is_err() {
        return false;
    }
    String::from_utf8_lossy(&head)
        .lines()
        .take(5)
        .any(|l| l.starts_with("Manifest digest: "))
}

/// Page name → the time of the newest history row that links it.
fn last_mentions(wiki: &Path) -> anyhow::Result<HashMap<String, NaiveDateTime>> {
    let mut out: HashMap<String, NaiveDateTime> = HashMap::new();
    for m in months(wiki)? {
        let p = wiki.join("history").join(format!("{m}.md"));
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
        for line in text.lines() {
            let Some(time) = line
                .trim_start_matches('|')
                .split('|')
                .next()
                .and_then(|c| NaiveDateTime::parse_from_str(c.trim(), TIME_FORMAT).ok())
            else {
                continue;
            };
            for name in linked_pages(line) {
                let e = out.entry(name).or_insert(time);
                if *e < time {
                    *e = time;
                }
            }
        }
    }
    Ok(out)
}

/// What [`cap_manifest_pages`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capped {
    /// The pages removed, oldest first.
    pub removed: Vec<PathBuf>,
    /// Manifest pages left.
    pub left: usize,
    /// Pages over the maximum that could not go (linked from Home.md or Stable_Tag.md).
    pub over_but_linked: usize,
}

/// Remove the oldest manifest pages of `wiki` (its top folder) beyond `max`; never one
/// linked from Home.md or Stable_Tag.md, nor one named in `keep` (this build's pages).
pub fn cap_manifest_pages(wiki: &Path, max: usize, keep: &[String]) -> anyhow::Result<Capped> {
    let entries = match std::fs::read_dir(wiki) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Capped::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", wiki.display())),
    };
    let mut pages = vec![];
    for e in entries {
        let e = e?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".md") else {
            continue;
        };
        if e.file_type()?.is_file() && is_manifest_page(&path) {
            let mtime = e.metadata()?.modified().ok();
            pages.push((stem.to_string(), path, mtime));
        }
    }
    if pages.len() <= max {
        return Ok(Capped {
            left: pages.len(),
            ..Capped::default()
        });
    }
    let mentioned = last_mentions(wiki)?;
    // Oldest first: pages no history row links (by file time), then by their last row.
    pages.sort_by(|a, b| {
        let key = |p: &(String, PathBuf, Option<std::time::SystemTime>)| {
            (mentioned.get(&p.0).copied(), p.2, p.0.clone())
        };
        key(a).cmp(&key(b))
    });
    let protected = protected_pages(wiki);
    let mut over = pages.len() - max;
    let mut out = Capped::default();
    for (name, path, _) in &pages {
        if over == 0 {
            break;
        }
        if protected.contains(name) || keep.contains(name) {
            continue;
        }
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
        out.removed.push(path.clone());
        over -= 1;
    }
    out.over_but_linked = over;
    out.left = pages.len() - out.removed.len();
    Ok(out)
}

/// After a build: append its row when it pushed images, then cap the manifest pages.
/// Nothing here fails the run (the images are done): problems are warnings. Pages removed
/// are logged and listed in `artifacts/WIKI_PAGES_REMOVED`.
pub fn after_build<'a>(
    dirs: &crate::report::ArtifactDirs,
    time: DateTime<Utc>,
    commit: &str,
    tag: &str,
    reports: impl IntoIterator<Item = &'a crate::report::ImageReport>,
    max_pages: usize,
) {
    let wiki = dirs.wiki();
    let images: Vec<BuiltImage> = reports
        .into_iter()
        .filter(|r| r.pushed)
        .filter_map(|r| {
            r.digest.as_ref().map(|d| BuiltImage {
                reference: r.image.clone(),
                digest: d.clone(),
            })
        })
        .collect();
    if !images.is_empty() {
        let entry = BuildEntry {
            time,
            commit: commit.to_string(),
            tag: tag.to_string(),
            images,
        };
        match append(&wiki, &entry) {
            Ok(p) => tracing::info!("build history: a row in {}", p.display()),
            Err(e) => tracing::warn!("build history not written: {e:#}"),
        }
    }
    let keep: Vec<String> = pages_of_tag(&wiki, tag);
    match cap_manifest_pages(&wiki, max_pages, &keep) {
        Ok(c) => {
            for p in &c.removed {
                tracing::info!(
                    "wiki: removed the old manifest page {} (over --wiki-max-pages {max_pages})",
                    p.display()
                );
            }
            if !c.removed.is_empty() {
                let names: Vec<String> =
                    c.removed.iter().map(|p| p.display().to_string()).collect();
                if let Err(e) =
                    crate::wiki::write_list(&dirs.artifacts(), "WIKI_PAGES_REMOVED", &names)
                {
                    tracing::warn!("{e:#}");
                }
            }
            if c.over_but_linked > 0 {
                tracing::warn!(
                    "wiki: {} manifest pages, {} over --wiki-max-pages {max_pages}, but linked                      from Home.md or Stable_Tag.md (or written by this build): kept",
                    c.left,
                    c.over_but_linked
                );
            }
        }
        Err(e) => tracing::warn!("wiki: manifest pages not capped: {e:#}"),
    }
}

/// The pages of this run's tag in `wiki` (`...-<tag>`): never removed by this run's cap.
fn pages_of_tag(wiki: &Path, tag: &str) -> Vec<String> {
    let suffix = format!("-{tag}");
    std::fs::read_dir(wiki)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".md")
                        .filter(|s| s.ends_with(&suffix))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
    }

    fn entry(time: DateTime<Utc>, tag: &str, images: &[(&str, char)]) -> BuildEntry {
        BuildEntry {
            time,
            commit: "0123456789abcdef".into(),
            tag: tag.into(),
            images: images
                .iter()
                .map(|(r, c)| BuiltImage {
                    reference: format!("{r}:{tag}"),
                    digest: format!("sha256:{}", c.to_string().repeat(64)),
                })
                .collect(),
        }
    }

    fn page(wiki: &Path, reference: &str) -> PathBuf {
        let p = wiki.join(format!("{}.md", page_name(reference)));
        std::fs::write(
            &p,
            format!("# {reference}\n\nManifest digest: `sha256:00`\n"),
        )
        .unwrap();
        p
    }

    #[test]
    fn builds_in_two_months_go_to_two_pages_and_the_index() {
        let tmp = tempfile::tempdir().unwrap();
        let wiki = tmp.path();
        let march = entry(
            at(2026, 3, 31, 23),
            "2026.1-main",
            &[("h/a", 'a'), ("h/b", 'b')],
        );
        let april = entry(at(2026, 4, 1, 1), "2026.2-main", &[("h/a", 'c')]);
        let april2 = entry(at(2026, 4, 2, 8), "2026.2-dev", &[("h/b", 'd')]);
        assert_eq!(
            append(wiki, &march).unwrap(),
            wiki.join("history/2026-03.md")
        );
        append(wiki, &april).unwrap();
        append(wiki, &april2).unwrap();
        let m = std::fs::read_to_string(wiki.join("history/2026-03.md")).unwrap();
        assert_eq!(
            m,
            format!(
                "# Builds of 2026-03\n\n{MONTH_HEADER}| 2026-03-31 23:00:00 | `0123456` | `2026.1-main` | `h/a:2026.1-main` `sha256:{}` [page](h-a-2026.1-main)<br>`h/b:2026.1-main` `sha256:{}` [page](h-b-2026.1-main) |\n",
                "a".repeat(64),
                "b".repeat(64)
            )
        );
        let a = std::fs::read_to_string(wiki.join("history/2026-04.md")).unwrap();
        let rows: Vec<&str> = a.lines().filter(|l| l.starts_with("| 2026")).collect();
        assert_eq!(rows.len(), 2, "{a}");
        assert!(
            rows[0].contains("2026.2-main") && rows[1].contains("2026.2-dev"),
            "appended in order: {a}"
        );
        assert_eq!(
            std::fs::read_to_string(wiki.join("History.md")).unwrap(),
            "# Build history\n\nOne page a month; each build that pushed images is a row.\n\n- [2026-04](2026-04)\n- [2026-03](2026-03)\n"
        );
    }

    #[test]
    fn the_cap_removes_the_oldest_pages_but_not_linked_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let wiki = tmp.path();
        // Five manifest pages; h/old:x is older than the history and linked from Home.md.
        let linked = page(wiki, "h/old:2026.1-stable");
        let unlinked_old = page(wiki, "h/old:2026.1-feature");
        for (t, tag, img) in [
            (at(2026, 3, 1, 0), "2026.1-a", "h/x"),
            (at(2026, 3, 2, 0), "2026.1-b", "h/x"),
            (at(2026, 4, 1, 0), "2026.1-c", "h/x"),
        ] {
            page(wiki, &format!("{img}:{tag}"));
            append(wiki, &entry(t, tag, &[(img, 'a')])).unwrap();
        }
        // Pages that are not manifest pages are never counted nor removed.
        std::fs::write(wiki.join("Notes.md"), "# Notes\n").unwrap();
        std::fs::write(
            wiki.join("Home.md"),
            "| Commit | Image | Manifest |\n|--------|-------|----------|\n|[`1111111`](https://github.com/o/r/commit/1111111)|`h/old:2026.1-stable`|[Link](https://github.com/o/r/wiki/h-old-2026.1-stable)|\n",
        )
        .unwrap();

        let c = cap_manifest_pages(wiki, 10, &[]).unwrap();
        assert!(c.removed.is_empty());
        assert_eq!(c.left, 5);

        let c = cap_manifest_pages(wiki, 3, &[]).unwrap();
        assert_eq!(
            c.removed,
            vec![unlinked_old, wiki.join("h-x-2026.1-a.md")],
            "oldest first, the linked page stays"
        );
        assert!(linked.is_file());
        assert!(wiki.join("Notes.md").is_file());
        assert_eq!(c.left, 3);

        // Over the maximum with only linked or kept pages left: nothing more goes.
        let c = cap_manifest_pages(wiki, 0, &["h-x-2026.1-c".to_string()]).unwrap();
        assert_eq!(c.removed, vec![wiki.join("h-x-2026.1-b.md")]);
        assert_eq!(c.over_but_linked, 2);
        assert!(linked.is_file() && wiki.join("h-x-2026.1-c.md").is_file());
    }
}
