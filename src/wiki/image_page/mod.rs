//! An image's manifest page (docs/formats.md, "Manifest page"): its layers, read from the
//! registry without pulling, and the output of its info commands.

pub mod history;
pub mod registry;

use crate::changes::inventory::{self, Inventory, Manager};
pub use crate::containers::commands::InfoOutput;
use crate::content_tags::publish::{ContentTag, ContentTagState};
use crate::report::names::page_name;
pub use crate::sizes::human_size;
use crate::spec::{InfoCmd, Spec};
use anyhow::Context;
pub use history::{human_duration, LayerRow};
pub use registry::{fetch_image, fetch_platforms, ImageMeta, RegistryAccess};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Outputs longer than this many lines go into a `<details>` block.
pub const DETAILS_OVER_LINES: usize = 30;

/// Where pages go and how the registry and engine are reached.
#[derive(Debug, Clone)]
pub struct PageOptions {
    /// `manifests/` by default.
    pub out_dir: PathBuf,
    /// The wiki checkout, when the page goes there too.
    pub wiki_dir: Option<PathBuf>,
    pub registry: RegistryAccess,
    /// Bound on running the info commands (container start included).
    pub timeout: Duration,
    pub cancel: CancellationToken,
    /// The image's content tags (`tags:`), listed in a section of their own.
    pub content_tags: Vec<ContentTag>,
    /// Where the info commands run.
    pub runner: crate::containers::runner::Runner,
    /// Also list the image's packages (one more command in the image; through the engine
    /// that pulls it, which `merge` must not).
    pub inventory: bool,
}

impl Default for PageOptions {
    fn default() -> Self {
        PageOptions {
            out_dir: PathBuf::from("manifests"),
            wiki_dir: None,
            registry: RegistryAccess::default(),
            timeout: Duration::from_secs(30 * 60),
            cancel: CancellationToken::new(),
            content_tags: vec![],
            runner: Default::default(),
            inventory: false,
        }
    }
}

/// What a page shows apart from its content tags, read from the registry and the runner:
/// the pipeline gathers it by digest while the tests run, and writes the page once the
/// image has its tag and content tags.
#[derive(Debug, Clone)]
pub struct PageFacts {
    /// The index's digest, for an image of more than one platform.
    index_digest: Option<String>,
    /// One entry (platform None) for a one-platform image.
    platforms: Vec<PlatformFacts>,
    /// BuildKit's attestations in the index, each with the platform it describes.
    attestations: Vec<AttestationFacts>,
    /// What changed since the image it replaces, once compared.
    changes: Option<crate::changes::Changes>,
}

#[derive(Debug, Clone)]
struct AttestationFacts {
    platform: String,
    attestation: crate::registry::attestation::Attestation,
    provenance: Option<crate::registry::attestation::Provenance>,
}

#[derive(Debug, Clone)]
struct PlatformFacts {
    platform: Option<String>,
    meta: ImageMeta,
    infos: Vec<InfoOutput>,
    /// Its packages, or why they could not be read.
    inventory: Result<Inventory, String>,
}

impl PlatformFacts {
    /// `linux/amd64`: the index's name for it, else its config's.
    fn name(&self) -> String {
        self.platform
            .clone()
            .unwrap_or_else(|| crate::changes::read::config_platform(&self.meta.config))
    }
}

impl PageFacts {
    /// The image as the page saw it (its platforms' layers and inventories), for a
    /// comparison; `reference` names it, `digest` is what was gathered.
    pub fn side(&self, reference: &str, digest: &str) -> crate::changes::ImageSide {
        crate::changes::ImageSide {
            reference: reference.to_string(),
            digest: digest.to_string(),
            platforms: self
                .platforms
                .iter()
                .map(|f| crate::changes::PlatformImage {
                    platform: f.name(),
                    digest: f.meta.digest.clone(),
                    layers: f.meta.layers(),
                    inventory: f.inventory.clone().ok(),
                    inventory_source: match &f.inventory {
                        Ok(_) => "collected".into(),
                        Err(e) => e.clone(),
                    },
                })
                .collect(),
        }
    }

    /// Each platform's manifest digest and inventory, where one was read.
    pub fn inventories(&self) -> Vec<(String, String, Inventory)> {
        self.platforms
            .iter()
            .filter_map(|f| {
                let inv = f.inventory.as_ref().ok()?;
                Some((f.name(), f.meta.digest.clone(), inv.clone()))
            })
            .collect()
    }

    /// Show `changes` on the page.
    pub fn set_changes(&mut self, changes: crate::changes::Changes) {
        self.changes = Some(changes);
    }
}

/// The info command that lists an image's packages.
fn inventory_cmd(managers: &[String]) -> InfoCmd {
    let managers: Vec<Manager> = managers.iter().filter_map(|m| m.parse().ok()).collect();
    InfoCmd {
        description: "Package inventory".into(),
        command: inventory::script(&managers),
    }
}

/// Why a page has no inventory when none was asked for.
const NOT_LISTED: &str = "not listed";

/// The inventory from its command's output (the last of `infos`, taken off), when `ran`.
fn take_inventory(infos: &mut Vec<InfoOutput>, ran: bool) -> Result<Inventory, String> {
    if !ran {
        return Err(NOT_LISTED.into());
    }
    let out = infos.pop().ok_or("the inventory was not run")?;
    if !out.ok {
        return Err(format!("the inventory failed: {}", out.text.trim()));
    }
    inventory::parse(&out.stdout).map_err(|e| format!("the inventory is not readable: {e:#}"))
}

/// The page's content for image `key` of the spec at `image_ref`.
pub async fn build_page(
    spec: &Spec,
    key: &str,
    image_ref: &str,
    opts: &PageOptions,
) -> anyhow::Result<String> {
    let facts = gather(spec, key, image_ref, opts).await?;
    render_facts(image_ref, &facts, &opts.content_tags)
}

/// The facts of image `key`'s page, read at `at` (a tag or `<repository>@<digest>`): its
/// manifests from the registry, and its info commands' output, every platform's at once.
pub async fn gather(
    spec: &Spec,
    key: &str,
    at: &str,
    opts: &PageOptions,
) -> anyhow::Result<PageFacts> {
    let image = spec
        .image(key)
        .with_context(|| format!("image {key:?} is not in {}", spec.path.display()))?;
    let mut cmds = Vec::new();
    for name in &image.info_cmds {
        let cmd = spec.all_info_cmds.get(name).with_context(|| {
            format!(
                "images.{key}.info_cmds names {name:?}, which is not in all_info_cmds of {}",
                spec.path.display()
            )
        })?;
        cmds.push(cmd.clone());
    }
    if opts.inventory {
        cmds.push(inventory_cmd(&image.packages));
    }
    // Registry and engine get the normalized reference; the page names it as written.
    let reference = crate::registry::ImageRef::parse(at)?;
    let platforms = bounded(
        opts,
        at,
        registry::fetch_platforms(&reference, &opts.registry),
    );
    if let Some((index_digest, platforms)) = platforms.await?.filter(|(_, p)| p.len() > 1) {
        let runs = platforms.into_iter().map(|(p, meta)| {
            let (reference, cmds) = (&reference, &cmds);
            async move {
                let at = reference.with_digest(&meta.digest);
                let mut infos = opts
                    .runner
                    .info_commands(&at, Some(p.as_str()), cmds, opts.timeout, &opts.cancel)
                    .await
                    .map_err(|stop| anyhow::anyhow!("info commands in {at} ({p}): {stop}"))?;
                let inventory = take_inventory(&mut infos, opts.inventory);
                anyhow::Ok(PlatformFacts {
                    platform: Some(p),
                    meta,
                    infos,
                    inventory,
                })
            }
        });
        let platforms = futures::future::try_join_all(runs).await?;
        let names: Vec<(String, String)> = platforms
            .iter()
            .map(|f| {
                (
                    f.meta.digest.clone(),
                    f.platform.clone().unwrap_or_default(),
                )
            })
            .collect();
        let attestations = bounded(
            opts,
            at,
            registry::fetch_attestations(&reference, &opts.registry, &names),
        )
        .await?;
        return Ok(PageFacts {
            index_digest: Some(index_digest),
            platforms,
            attestations,
            changes: None,
        });
    }
    let meta = bounded(opts, at, registry::fetch_image(&reference, &opts.registry)).await?;
    let mut infos = opts
        .runner
        .info_commands(&reference, None, &cmds, opts.timeout, &opts.cancel)
        .await
        .map_err(|stop| anyhow::anyhow!("info commands in {at}: {stop}"))?;
    let inventory = take_inventory(&mut infos, opts.inventory);
    let own = format!(
        "{}/{}",
        meta.config["os"].as_str().unwrap_or("?"),
        meta.config["architecture"].as_str().unwrap_or("?")
    );
    let attestations = bounded(
        opts,
        at,
        registry::fetch_attestations(&reference, &opts.registry, &[(meta.digest.clone(), own)]),
    )
    .await?;
    Ok(PageFacts {
        index_digest: None,
        attestations,
        platforms: vec![PlatformFacts {
            platform: None,
            meta,
            infos,
            inventory,
        }],
        changes: None,
    })
}

/// A registry read bounded by the page's timeout and interrupt.
async fn bounded<T>(
    opts: &PageOptions,
    at: &str,
    read: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        m = tokio::time::timeout(opts.timeout, read) => {
            m.map_err(|_| anyhow::anyhow!("timed out reading {at} from its registry"))?
        }
        _ = opts.cancel.cancelled() => anyhow::bail!("interrupted"),
    }
}

/// The page of `image_ref` from its facts. A multi-platform page has the index digest,
/// then for each platform its own section (`## linux/arm64`) with its manifest digest, its
/// layer table (that platform's sizes) and its info commands.
pub fn render_facts(
    image_ref: &str,
    facts: &PageFacts,
    content_tags: &[ContentTag],
) -> anyhow::Result<String> {
    let tag = crate::registry::ImageRef::parse(image_ref)?
        .tag
        .map(|_| image_ref);
    let mut page = match &facts.index_digest {
        None => {
            let f = facts
                .platforms
                .first()
                .context("a page's facts name no manifest")?;
            let rows = history::rows(&f.meta.config, &f.meta.layer_sizes, tag)?;
            render(image_ref, &f.meta.digest, &rows, &f.infos)
        }
        Some(index_digest) => {
            let names: Vec<&str> = facts
                .platforms
                .iter()
                .filter_map(|f| f.platform.as_deref())
                .collect();
            let mut page = format!(
                "# {image_ref}\n\nIndex digest: `{index_digest}`\n\nPlatforms: {}\n",
                names.join(", ")
            );
            for f in &facts.platforms {
                let rows = history::rows(&f.meta.config, &f.meta.layer_sizes, tag)?;
                let p = f.platform.as_deref().unwrap_or_default();
                page.push_str(&format!("\n## {p}\n\n"));
                page.push_str(&render_body(&f.meta.digest, &rows, &f.infos, "###"));
            }
            page
        }
    };
    if let Some(c) = &facts.changes {
        page.push('\n');
        page.push_str(&crate::changes::render::markdown(
            c,
            2,
            crate::changes::render::LISTED,
        ));
    }
    page.push_str(&packages_section(&facts.platforms));
    page.push_str(&attestations_section(&facts.attestations));
    page.push_str(&content_tags_section(content_tags));
    Ok(page)
}

/// The `## Packages` section: each platform's inventory as a table, folded when long (a
/// platform without one says why).
fn packages_section(platforms: &[PlatformFacts]) -> String {
    if platforms
        .iter()
        .all(|f| f.inventory.as_ref().is_err_and(|e| e == NOT_LISTED))
    {
        return String::new();
    }
    let mut md = String::from("\n## Packages\n");
    for f in platforms {
        let name = f.name();
        match &f.inventory {
            Err(why) => md.push_str(&format!("\n{name}: no inventory ({})\n", cell(why))),
            Ok(inv) => {
                let managers: Vec<String> = inv.managers.iter().map(|m| m.to_string()).collect();
                md.push_str(&format!(
                    "\n{name}: {} packages ({})\n\n",
                    inv.packages.len(),
                    if managers.is_empty() {
                        "no package manager found".into()
                    } else {
                        managers.join(", ")
                    }
                ));
                if inv.packages.is_empty() {
                    continue;
                }
                let mut table = String::from(
                    "| Manager | Package | Version |\n|---------|---------|---------|\n",
                );
                for p in &inv.packages {
                    table.push_str(&format!(
                        "| {} | {} | {} |\n",
                        p.manager,
                        cell(&p.name),
                        cell(&p.version)
                    ));
                }
                if inv.packages.len() > DETAILS_OVER_LINES {
                    md.push_str(&format!(
                        "<details>\n<summary>{} packages</summary>\n\n{table}\n</details>\n",
                        inv.packages.len()
                    ));
                } else {
                    md.push_str(&table);
                }
            }
        }
    }
    md
}

/// The `## Attestations` section (empty text without any): each platform's statements,
/// then what each provenance says (commit, source, builder, frontend, parameters).
fn attestations_section(found: &[AttestationFacts]) -> String {
    if found.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n## Attestations\n\n| Platform | Predicate type | Size | Digest |\n|----------|----------------|------|--------|\n",
    );
    for f in found {
        for st in &f.attestation.statements {
            md.push_str(&format!(
                "| {} | `{}` | {} | `{}` |\n",
                cell(&f.platform),
                cell(&st.predicate_type),
                human_size(st.size),
                st.digest
            ));
        }
    }
    for f in found {
        let Some(p) = &f.provenance else { continue };
        let or_dash = |v: &Option<String>| {
            v.as_deref()
                .map(|v| format!("`{}`", cell(v)))
                .unwrap_or_else(|| "-".into())
        };
        md.push_str(&format!("\n### Provenance of {}\n\n", f.platform));
        md.push_str(&format!("- Commit: {}\n", or_dash(&p.revision)));
        md.push_str(&format!("- Source: {}\n", or_dash(&p.source)));
        md.push_str(&format!("- Builder: {}\n", or_dash(&p.builder_id)));
        md.push_str(&format!("- Frontend: {}\n", or_dash(&p.frontend)));
        md.push_str(&format!("- Format: {}\n", p.format));
        let params: Vec<String> = p
            .parameters
            .iter()
            .map(|(k, v)| format!("`{}={}`", cell(k), cell(v)))
            .collect();
        md.push_str(&format!(
            "- Parameters: {}\n",
            if params.is_empty() {
                "none recorded (provenance mode=min leaves them out)".to_string()
            } else {
                params.join(", ")
            }
        ));
    }
    md
}

/// The `## Content Tags` section (empty text without content tags): each tag, the digest
/// it names and what the build did with it.
pub fn content_tags_section(tags: &[ContentTag]) -> String {
    if tags.is_empty() {
        return String::new();
    }
    let mut md =
        String::from("\n## Content Tags\n\n| Tag | Digest | State |\n|-----|--------|-------|\n");
    for t in tags {
        let state = match (t.state, &t.previous) {
            (ContentTagState::Kept, _) => {
                "kept: names another image, this build did not get it".to_string()
            }
            (ContentTagState::Moved, Some(p)) => format!("moved from `{p}`"),
            (s, _) => s.name().to_string(),
        };
        md.push_str(&format!(
            "| `{}` | {} | {} |\n",
            t.tag,
            t.digest
                .as_deref()
                .map(|d| format!("`{d}`"))
                .unwrap_or_else(|| "-".into()),
            cell(&state)
        ));
    }
    md
}

/// Write the page to `out_dir/<page>.md` (and the wiki folder); the paths written.
pub async fn write_page(
    spec: &Spec,
    key: &str,
    image_ref: &str,
    opts: &PageOptions,
) -> anyhow::Result<Vec<PathBuf>> {
    let facts = gather(spec, key, image_ref, opts).await?;
    write_facts(image_ref, &facts, opts)
}

/// Write the page of `image_ref` from facts gathered earlier (see [`gather`]).
pub fn write_facts(
    image_ref: &str,
    facts: &PageFacts,
    opts: &PageOptions,
) -> anyhow::Result<Vec<PathBuf>> {
    let page = render_facts(image_ref, facts, &opts.content_tags)?;
    let file = format!("{}.md", page_name(image_ref));
    let mut written = vec![];
    for dir in std::iter::once(&opts.out_dir).chain(opts.wiki_dir.as_ref()) {
        written.push(write_file(dir, &file, &page)?);
    }
    Ok(written)
}

fn write_file(dir: &Path, file: &str, text: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(file);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Text safe inside a markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A fence longer than any backtick run in `text`, so the block cannot end early.
fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for ch in text.chars() {
        if ch == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

/// Layers shown in the chart above the table.
pub const CHART_LAYERS: usize = 10;

/// The ten largest layers as a Mermaid bar chart (sizes in MB, largest first), labelled
/// with their step number and command; `None` for an image of fewer than three layers,
/// where a chart says nothing the table does not.
pub fn layer_chart(rows: &[LayerRow]) -> Option<String> {
    let mut layers: Vec<(usize, &LayerRow)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.size > 0)
        .collect();
    if layers.len() < 3 {
        return None;
    }
    // Largest first; equal sizes keep the build order.
    layers.sort_by(|a, b| b.1.size.cmp(&a.1.size).then(a.0.cmp(&b.0)));
    layers.truncate(CHART_LAYERS);
    let bars: Vec<(String, f64)> = layers
        .iter()
        .map(|(i, r)| {
            let command: String = r.command.chars().take(24).collect();
            let more = if r.command.chars().count() > 24 {
                "…"
            } else {
                ""
            };
            (
                format!("#{} {command}{more}", i + 1),
                r.size as f64 / 1_000_000.0,
            )
        })
        .collect();
    let title = format!("The {} largest layers", bars.len());
    Some(crate::report::mermaid::bar_chart(&title, "MB", &bars))
}

/// The page's markdown.
pub fn render(image_ref: &str, digest: &str, rows: &[LayerRow], infos: &[InfoOutput]) -> String {
    format!(
        "# {image_ref}\n\n{}",
        render_body(digest, rows, infos, "##")
    )
}

/// The manifest digest, the layer chart and table and the info commands' sections (their
/// headings at `heading`, `##` on a one-platform page).
fn render_body(digest: &str, rows: &[LayerRow], infos: &[InfoOutput], heading: &str) -> String {
    let mut md = format!("Manifest digest: `{digest}`\n\n");
    if let Some(chart) = layer_chart(rows) {
        md.push_str(&crate::report::mermaid::fenced(&chart));
        md.push('\n');
    }
    md.push_str("| Created | Command | Size | Cumulative Size | Time Since Previous | Tags |\n");
    md.push_str("|---------|---------|------|-----------------|---------------------|------|\n");
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.created
                .map(|c| c.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            cell(&r.command),
            human_size(r.size),
            human_size(r.cumulative),
            r.since_previous.map(human_duration).unwrap_or_default(),
            cell(&r.tags.join(", ")),
        ));
    }
    for i in infos {
        md.push_str(&format!("\n{heading} {}\n\n", i.description));
        let text = i.text.trim_end_matches('\n');
        let fence = fence_for(text);
        let block = format!("{fence}\n{text}\n{fence}\n");
        if text.lines().count() > DETAILS_OVER_LINES {
            md.push_str("<details>\n<summary>Details</summary>\n\n");
            md.push_str(&block);
            md.push_str("\n</details>\n");
        } else {
            md.push_str(&block);
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(command: &str, size: u64) -> LayerRow {
        LayerRow {
            created: None,
            command: command.into(),
            size,
            cumulative: 0,
            since_previous: None,
            tags: vec![],
        }
    }

    #[test]
    fn chart_of_the_ten_largest_layers() {
        let mut rows: Vec<LayerRow> = (1..=12)
            .map(|i| layer(&format!("RUN step {i}"), i * 1_000_000))
            .collect();
        rows.insert(3, layer("ENV A=1", 0));
        rows.push(layer(
            "RUN apt-get install -y a-very-long-package-name",
            50_000_000,
        ));
        let chart = layer_chart(&rows).unwrap();
        let lines: Vec<&str> = chart.lines().collect();
        assert_eq!(lines[0], "xychart-beta");
        assert_eq!(lines[1], "    title \"The 10 largest layers\"");
        // Largest first: the last row (#14), then steps 12 down to 4 (rows 13..5).
        assert_eq!(
            lines[2],
            "    x-axis [\"#14 RUN apt-get install -y a…\", \"#13 RUN step 12\", \"#12 RUN step 11\", \
             \"#11 RUN step 10\", \"#10 RUN step 9\", \"#9 RUN step 8\", \"#8 RUN step 7\", \
             \"#7 RUN step 6\", \"#6 RUN step 5\", \"#5 RUN step 4\"]"
        );
        assert_eq!(
            lines[4],
            "    bar [50.00, 12.00, 11.00, 10.00, 9.00, 8.00, 7.00, 6.00, 5.00, 4.00]"
        );
        let page = render("r:t", "sha256:x", &rows, &[]);
        assert!(page.contains("```mermaid\nxychart-beta\n"));
        assert!(page.find("xychart-beta").unwrap() < page.find("| Created |").unwrap());
    }

    #[test]
    fn no_chart_under_three_layers() {
        let rows = [
            layer("ADD rootfs", 5_000_000),
            layer("ENV X=1", 0),
            layer("RUN x", 10),
        ];
        assert_eq!(layer_chart(&rows), None);
        assert!(!render("r:t", "sha256:x", &rows, &[]).contains("mermaid"));
    }

    #[test]
    fn long_outputs_fold() {
        let long: String = (1..=31).map(|i| format!("line {i}\n")).collect();
        let infos = vec![
            InfoOutput {
                description: "Short".into(),
                command: "x".into(),
                text: "one\n".into(),
                ok: true,
                stdout: "one\n".into(),
            },
            InfoOutput {
                description: "Long".into(),
                command: "y".into(),
                text: long.clone(),
                ok: true,
                stdout: long,
            },
        ];
        let md = render("r:t", "sha256:0", &[], &infos);
        assert!(md.contains("## Short\n\n```\none\n```\n"));
        assert!(md.contains("## Long\n\n<details>\n<summary>Details</summary>\n\n```\nline 1\n"));
        assert!(md.contains("line 31\n```\n\n</details>\n"));
        assert_eq!(md.matches("<details>").count(), 1);
    }
}
