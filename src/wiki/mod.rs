//! The wiki pages a promotion updates, in the old tool's format (see docs/formats.md):
//! `Home.md` gains a row at the top of its table, `Stable_Tag.md` is rewritten with one row,
//! and each promoted image's page is a copy of the page of the image it was promoted from.
//! Every line we do not add is kept byte for byte.

pub mod history;
pub mod image_page;

use crate::report::names::page_name;
use anyhow::Context;
use std::path::Path;

pub const HOME_HEADER: &str = "| Commit | Image | Manifest |\n|--------|-------|----------|\n";
pub const STABLE_HEADER: &str = "| Image | Based On | Manifest |\n| :- | :- | :- |\n";

/// Where links point: `<server>/<owner>/<repo>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Links {
    pub repo_url: String,
}

impl Links {
    /// `--repo-url` if given, else GITHUB_SERVER_URL (default https://github.com) and
    /// GITHUB_REPOSITORY. Neither: an error saying what to set.
    pub fn from_env(repo_url: Option<&str>) -> anyhow::Result<Links> {
        if let Some(u) = repo_url {
            return Ok(Links {
                repo_url: u.trim_end_matches('/').to_string(),
            });
        }
        let server = std::env::var("GITHUB_SERVER_URL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "https://github.com".into());
        let repo = std::env::var("GITHUB_REPOSITORY")
            .ok()
            .filter(|s| !s.is_empty())
            .context("the wiki links need the repository: give --repo-url URL or set GITHUB_REPOSITORY (OWNER/REPO)")?;
        Ok(Links {
            repo_url: format!("{}/{}", server.trim_end_matches('/'), repo),
        })
    }
    pub fn commit(&self, sha7: &str) -> String {
        format!("{}/commit/{sha7}", self.repo_url)
    }
    pub fn page(&self, image: &str) -> String {
        format!("{}/wiki/{}", self.repo_url, page_name(image))
    }
}

/// The commit the row names: the first 7 characters of GITHUB_SHA, else of HEAD of `repo`.
pub fn commit_sha7(repo: &Path) -> anyhow::Result<String> {
    if let Ok(sha) = std::env::var("GITHUB_SHA") {
        if sha.len() >= 7 {
            return Ok(sha[..7].to_string());
        }
    }
    let r = git2::Repository::discover(repo).with_context(|| {
        format!(
            "{}: not a git repository (or set GITHUB_SHA)",
            repo.display()
        )
    })?;
    let head = r
        .head()
        .and_then(|h| h.peel_to_commit())
        .with_context(|| format!("{}: no HEAD commit", repo.display()))?;
    Ok(head.id().to_string()[..7].to_string())
}

fn links_cell(links: &Links, images: &[String]) -> String {
    images
        .iter()
        .map(|i| format!("[Link]({})", links.page(i)))
        .collect::<Vec<_>>()
        .join("<br>")
}

fn names_cell(images: &[String]) -> String {
    images
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// A Home.md row (no line end): commit link, the images, a link to each image's page.
pub fn home_row(links: &Links, sha7: &str, images: &[String]) -> String {
    format!(
        "|[`{sha7}`]({})|{}|{}|",
        links.commit(sha7),
        names_cell(images),
        links_cell(links, images)
    )
}

fn is_divider(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('|') && t.contains('-') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

/// Home.md with `row` inserted right under the table's header and divider; every other
/// byte unchanged. No file (or no table): the table is created (appended after the text).
pub fn insert_home_row(existing: Option<&str>, row: &str) -> String {
    let text = existing.unwrap_or("");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let divider = lines
        .windows(2)
        .position(|w| w[0].trim_start().starts_with('|') && is_divider(w[1]));
    match divider {
        Some(i) => {
            let div = lines[i + 1];
            let eol = if div.ends_with("\r\n") { "\r\n" } else { "\n" };
            let mut out = String::with_capacity(text.len() + row.len() + 2);
            for l in &lines[..=i + 1] {
                out.push_str(l);
            }
            if !div.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(row);
            out.push_str(eol);
            for l in &lines[i + 2..] {
                out.push_str(l);
            }
            out
        }
        None => {
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(HOME_HEADER);
            out.push_str(row);
            out.push('\n');
            out
        }
    }
}

/// The comment in Home.md that asks for the stack's tree (`tag --wiki` then keeps a
/// Mermaid picture of it right below); Home.md without it is never given one.
pub const TREE_MARKER: &str = "<!-- stackctl:tree -->";
/// Where the tree that follows [`TREE_MARKER`] ends.
pub const TREE_END: &str = "<!-- /stackctl:tree -->";

/// Home.md with the tree (a Mermaid diagram) put after [`TREE_MARKER`], replacing the
/// tree a previous run put there (up to [`TREE_END`]); every other byte unchanged.
/// `None` when Home.md has no marker.
pub fn with_tree(home: &str, diagram: &str) -> Option<String> {
    let at = home.find(TREE_MARKER)? + TREE_MARKER.len();
    let (head, rest) = home.split_at(at);
    let eol = if rest.starts_with("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let after = match rest.find(TREE_END) {
        Some(end) => &rest[end + TREE_END.len()..],
        None => rest,
    };
    let block = crate::report::mermaid::fenced(diagram).replace('\n', eol);
    Some(format!("{head}{eol}{block}{TREE_END}{after}"))
}

/// Stable_Tag.md: one table, one row: the `:stable` names, what they were promoted from,
/// links to the `:stable` pages. The row has no spaces around its cells, byte for byte the
/// old tool's, because people diff these pages.
pub fn stable_tag_page(links: &Links, stable: &[String], based_on: &[String]) -> String {
    format!(
        "{STABLE_HEADER}|{}|{}|{}|\n",
        names_cell(stable),
        names_cell(based_on),
        links_cell(links, stable)
    )
}

/// The images of the newest Home.md row whose Image cell names `<prefix>-stable` tags.
pub fn stable_row_images(home: &str, prefix: &str) -> Option<Vec<String>> {
    let want = format!(":{prefix}-stable");
    let mut in_table = false;
    for line in home.lines() {
        if is_divider(line) {
            in_table = true;
            continue;
        }
        if !in_table || !line.trim_start().starts_with('|') {
            in_table = in_table && line.trim_start().starts_with('|');
            continue;
        }
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        let Some(image_cell) = cells.get(1) else {
            continue;
        };
        let images: Vec<String> = image_cell
            .split("<br>")
            .map(|s| s.trim().trim_matches('`').trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if !images.is_empty() && images.iter().all(|i| i.ends_with(&want)) {
            return Some(images);
        }
    }
    None
}

/// Copy the page of `from` to the page of `to` in `wiki`. `Ok(false)`: `from` has no page.
pub fn copy_page(wiki: &Path, from: &str, to: &str) -> anyhow::Result<bool> {
    let src = wiki.join(format!("{}.md", page_name(from)));
    let dst = wiki.join(format!("{}.md", page_name(to)));
    if !src.is_file() {
        return Ok(false);
    }
    std::fs::copy(&src, &dst)
        .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
    Ok(true)
}

/// Write `IMAGES_*` artifact files: one full image name a line.
pub fn write_list(dir: &Path, name: &str, images: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let p = dir.join(name);
    let mut text = images.join("\n");
    if !images.is_empty() {
        text.push('\n');
    }
    std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_only_where_home_asks_for_it() {
        let diagram = "flowchart TD\n    n0[\"<b>base</b>\"]:::plain\n";
        let plain = "# Images\n\n| a | b |\n|---|---|\n| x | y |\n";
        assert_eq!(with_tree(plain, diagram), None);

        let home = "# Images\n\n<!-- stackctl:tree -->\n\n| a | b |\n|---|---|\n";
        let once = with_tree(home, diagram).unwrap();
        assert_eq!(
            once,
            "# Images\n\n<!-- stackctl:tree -->\n```mermaid\nflowchart TD\n    n0[\"<b>base</b>\"]:::plain\n```\n<!-- /stackctl:tree -->\n\n| a | b |\n|---|---|\n"
        );
        // A second run replaces the tree, it does not add another.
        let twice = with_tree(&once, "flowchart TD\n    n0[\"<b>new</b>\"]:::plain\n").unwrap();
        assert_eq!(twice.matches("```mermaid").count(), 1);
        assert!(twice.contains("<b>new</b>") && !twice.contains("<b>base</b>"));
        assert!(twice.ends_with("<!-- /stackctl:tree -->\n\n| a | b |\n|---|---|\n"));
    }

    fn links() -> Links {
        Links {
            repo_url: "https://github.com/o/r".into(),
        }
    }

    #[test]
    fn row_format() {
        let row = home_row(
            &links(),
            "5c83aa3",
            &[
                "ghcr.io/o/a:2026.3-stable".into(),
                "ghcr.io/o/b:2026.3-stable".into(),
            ],
        );
        assert_eq!(
            row,
            "|[`5c83aa3`](https://github.com/o/r/commit/5c83aa3)|`ghcr.io/o/a:2026.3-stable`<br>`ghcr.io/o/b:2026.3-stable`|[Link](https://github.com/o/r/wiki/ghcr-io-o-a-2026.3-stable)<br>[Link](https://github.com/o/r/wiki/ghcr-io-o-b-2026.3-stable)|"
        );
    }

    #[test]
    fn insert_keeps_everything_else() {
        let home = "# Stack\r\nintro\n\n| Commit | Image | Manifest |\n|--------|-------|----------|\n|old1|x|y|\n|old2|x|y|\n\nfooter";
        let out = insert_home_row(Some(home), "|new|a|b|");
        assert_eq!(
            out,
            "# Stack\r\nintro\n\n| Commit | Image | Manifest |\n|--------|-------|----------|\n|new|a|b|\n|old1|x|y|\n|old2|x|y|\n\nfooter"
        );
        let created = insert_home_row(None, "|new|a|b|");
        assert_eq!(created, format!("{HOME_HEADER}|new|a|b|\n"));
        let no_table = insert_home_row(Some("hello"), "|r|");
        assert_eq!(no_table, format!("hello\n\n{HOME_HEADER}|r|\n"));
    }

    #[test]
    fn finds_stable_row() {
        let l = links();
        let mut home = insert_home_row(
            None,
            &home_row(&l, "1111111", &["h/a:2026.2-stable".into()]),
        );
        home = insert_home_row(
            Some(&home),
            &home_row(
                &l,
                "2222222",
                &["h/a:2026.3-stable".into(), "h/b:2026.3-stable".into()],
            ),
        );
        assert_eq!(
            stable_row_images(&home, "2026.3").unwrap(),
            vec!["h/a:2026.3-stable", "h/b:2026.3-stable"]
        );
        assert_eq!(
            stable_row_images(&home, "2026.2").unwrap(),
            vec!["h/a:2026.2-stable"]
        );
        assert!(stable_row_images(&home, "2025.1").is_none());
    }

    #[test]
    fn stable_page() {
        let p = stable_tag_page(
            &links(),
            &["h/a:stable".into()],
            &["h/a:2026.3-stable".into()],
        );
        assert_eq!(
            p,
            "| Image | Based On | Manifest |\n| :- | :- | :- |\n|`h/a:stable`|`h/a:2026.3-stable`|[Link](https://github.com/o/r/wiki/h-a-stable)|\n"
        );
    }
}
