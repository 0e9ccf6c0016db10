//! `stackctl completions` and `stackctl man`: shell completion scripts (clap_complete) and
//! roff manual pages (clap_mangen), both made from the same clap definition as `--help`, so
//! they can never list a command or option that does not exist.
use super::exit::ExitStatus;
use super::{Cli, GlobalArgs};
use clap::CommandFactory;
use std::path::PathBuf;

/// `stackctl completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Install, for example:\n  \
bash: stackctl completions bash > ~/.local/share/bash-completion/completions/stackctl\n  \
zsh:  stackctl completions zsh > \"${fpath[1]}/_stackctl\"\n  \
fish: stackctl completions fish > ~/.config/fish/completions/stackctl.fish\n\n\
Exit codes: 0 written; 2 stdout could not be written.")]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// `stackctl man`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Writes stackctl.1 and one page per command (stackctl-build.1, \
stackctl-buildkit-info.1, ...) and prints their paths. Read one with `man DIR/stackctl-build.1`, \
or install them into a folder of MANPATH (e.g. /usr/local/share/man/man1).\n\n\
Exit codes: 0 written; 2 the folder could not be written."
)]
pub struct ManArgs {
    /// The folder the pages are written to (made if missing).
    #[arg(value_name = "DIR", default_value = "man")]
    pub dir: PathBuf,
}

pub fn run_completions(a: CompletionsArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "stackctl", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(ExitStatus::Success)
}

pub fn run_man(a: ManArgs, _g: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    use anyhow::Context;
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot make the folder {}", a.dir.display()))?;
    clap_mangen::generate_to(Cli::command(), &a.dir)
        .with_context(|| format!("cannot write the manual pages into {}", a.dir.display()))?;
    let mut pages: Vec<_> = std::fs::read_dir(&a.dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    for p in pages {
        outln!("{}", p.display());
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command path (`["build"]`, `["buildkit", "info"]`, ...) with its long options.
    fn commands(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, Vec<String>)>) {
        let longs = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        out.push((path.clone(), longs));
        for sub in cmd.get_subcommands() {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            commands(sub, p, out);
        }
    }

    fn all_commands() -> Vec<(Vec<String>, Vec<String>)> {
        let mut cmd = Cli::command();
        cmd.build();
        let mut out = Vec::new();
        commands(&cmd, Vec::new(), &mut out);
        out
    }

    #[test]
    fn completions_name_every_command_and_option() {
        let all = all_commands();
        assert!(all.len() > 10, "{all:?}");
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "stackctl", &mut script);
            let script = String::from_utf8(script).unwrap();
            for (path, longs) in &all {
                if let Some(name) = path.last() {
                    assert!(
                        script.contains(name.as_str()),
                        "{shell}: no command {path:?}"
                    );
                }
                for long in longs {
                    // fish writes `-l name`, bash and zsh `--name`.
                    let found = script.contains(&format!("--{long}"))
                        || script.contains(&format!("-l {long}"));
                    assert!(found, "{shell}: no option --{long} of {path:?}");
                }
            }
        }
    }

    #[test]
    fn man_pages_for_every_command_with_every_option() {
        let dir = tempfile::tempdir().unwrap();
        run_man(
            ManArgs {
                dir: dir.path().to_path_buf(),
            },
            &GlobalArgs {
                verbose: 0,
                quiet: true,
            },
        )
        .unwrap();
        for (path, longs) in all_commands() {
            if path.iter().any(|p| p == "help") {
                continue; // clap's `help` subcommand gets no page
            }
            let mut name = vec!["stackctl".to_string()];
            name.extend(path.iter().cloned());
            let page = dir.path().join(format!("{}.1", name.join("-")));
            let text = std::fs::read_to_string(&page)
                .unwrap_or_else(|e| panic!("{}: {e}", page.display()));
            assert!(
                text.starts_with(".ie") || text.contains(".TH"),
                "{}",
                page.display()
            );
            for long in longs {
                // roff writes every dash as `\-`.
                let roff = format!("--{long}").replace('-', "\\-");
                assert!(
                    text.contains(&roff),
                    "{}: no option --{long}",
                    page.display()
                );
            }
        }
    }

    #[test]
    fn version_says_commit_and_buildkit_api() {
        let v = Cli::command().render_version();
        assert!(
            v.starts_with(&format!("stackctl {} (", env!("CARGO_PKG_VERSION"))),
            "{v}"
        );
        assert!(v.contains("BuildKit API v0."), "{v}");
        let commit = env!("STACKCTL_GIT_COMMIT");
        assert!(v.contains(commit), "{v}");
    }
}
