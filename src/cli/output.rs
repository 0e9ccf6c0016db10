//! How commands print their results on stdout: one [`Format`] for every command that has
//! `--json` or `--format`, and one way to print a JSON document.
//!
//! Text is for people (lines, a tree, a table); json is one JSON document; markdown is
//! the table GitHub renders (as in GITHUB_STEP_SUMMARY); mermaid is a flowchart. Each
//! command takes the formats it can print (see [`formats`]); `--json` is `--format json`.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::ValueEnum;

/// What a command prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
    Mermaid,
}

impl Format {
    /// The format asked for: `--json` (its alias) wins over `--format`'s default.
    pub fn chosen(json: bool, format: Format) -> Format {
        if json {
            Format::Json
        } else {
            format
        }
    }
}

/// `--format`'s parser for a command that prints only `allowed` (its `--help` lists them).
pub fn formats(allowed: &'static [Format]) -> impl TypedValueParser<Value = Format> {
    PossibleValuesParser::new(allowed.iter().filter_map(|f| f.to_possible_value()))
        .map(|s| Format::from_str(&s, false).expect("a possible value is a Format"))
}

/// Print `value` as one pretty JSON document, with a newline.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
