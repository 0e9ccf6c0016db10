//! Runs the repository's composite GitHub Action (`action.yml`) the way a runner would, as
//! far as the test needs: each `run:` step in bash with its `env:` evaluated, the runner's
//! files (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, RUNNER_TEMP) in a temp dir, step outputs fed
//! to later steps. Only the expression forms action.yml uses are understood
//! (`${{ inputs.X }}`, `${{ github.X }}`, `${{ runner.X }}`, `${{ steps.S.outputs.O }}`);
//! anything else fails the test, so the runner never silently evaluates something wrong.
//! `uses:` steps are not run: `actions/cache` is reported as a hit, with the binary to test
//! already placed in the cached folder.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a run of the Action left.
pub struct ActionRun {
    /// The Action's outputs (`outputs:` of action.yml, evaluated).
    pub outputs: BTreeMap<String, String>,
    /// The `run` step's exit code (the last step that ran).
    pub exit_code: Option<i32>,
    /// Everything every step printed, stdout and stderr.
    pub printed: String,
    /// The runner files' contents: GITHUB_OUTPUT of every step, and the step summary.
    pub runner_files: String,
}

pub struct ActionRunner {
    pub repo_root: PathBuf,
    pub home: tempfile::TempDir,
    pub runner_temp: tempfile::TempDir,
    pub extra_env: Vec<(String, String)>,
}

impl ActionRunner {
    /// A runner whose cached stackctl is `binary`.
    pub fn new(binary: &Path) -> ActionRunner {
        let home = tempfile::tempdir().unwrap();
        let bin = home.path().join(".stackctl-action/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(binary, bin.join("stackctl")).unwrap();
        ActionRunner {
            repo_root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            home,
            runner_temp: tempfile::tempdir().unwrap(),
            extra_env: Vec::new(),
        }
    }

    pub fn run(&self, inputs: &[(&str, &str)]) -> ActionRun {
        let action: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(self.repo_root.join("action.yml")).unwrap(),
        )
        .unwrap();
        let mut input_values = BTreeMap::new();
        for (name, def) in action["inputs"].as_mapping().unwrap() {
            let name = name.as_str().unwrap().to_string();
            let default = def["default"].as_str().unwrap_or("").to_string();
            input_values.insert(name, default);
        }
        for (k, v) in inputs {
            assert!(input_values.contains_key(*k), "action.yml has no input {k}");
            input_values.insert(k.to_string(), v.to_string());
        }
        let mut step_outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut printed = String::new();
        let mut runner_files = String::new();
        let mut exit_code = None;
        let summary = self.runner_temp.path().join("step_summary.md");
        std::fs::write(&summary, "").unwrap();
        let steps = action["runs"]["steps"].as_sequence().unwrap();
        assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
        for (i, step) in steps.iter().enumerate() {
            let id = step["id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or(format!("step{i}"));
            let eval = |s: &str| self.evaluate(s, &input_values, &step_outputs);
            if let Some(cond) = step["if"].as_str() {
                assert_eq!(
                    cond, "steps.cache.outputs.cache-hit != 'true'",
                    "condition not understood"
                );
                if step_outputs
                    .get("cache")
                    .and_then(|o| o.get("cache-hit"))
                    .map(String::as_str)
                    == Some("true")
                {
                    continue;
                }
            }
            if let Some(uses) = step["uses"].as_str() {
                assert!(
                    uses.starts_with("actions/cache@"),
                    "step {id}: cannot run {uses}"
                );
                let path = eval(step["with"]["path"].as_str().unwrap());
                assert!(
                    Path::new(&path).join("stackctl").exists(),
                    "cache path {path} holds no stackctl"
                );
                eval(step["with"]["key"].as_str().unwrap());
                step_outputs.insert(id, BTreeMap::from([("cache-hit".into(), "true".into())]));
                continue;
            }
            let script = step["run"]
                .as_str()
                .unwrap_or_else(|| panic!("step {id} has neither run nor uses"));
            assert_eq!(
                step["shell"].as_str(),
                Some("bash"),
                "step {id}: a composite step needs shell: bash"
            );
            let output_file = self.runner_temp.path().join(format!("output-{i}"));
            std::fs::write(&output_file, "").unwrap();
            let mut cmd = Command::new("bash");
            cmd.arg("-e").arg("-c").arg(script);
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap())
                .env("HOME", self.home.path())
                .env("GITHUB_ACTIONS", "true")
                .env("CI", "true")
                .env("GITHUB_OUTPUT", &output_file)
                .env("GITHUB_STEP_SUMMARY", &summary)
                .env("RUNNER_TEMP", self.runner_temp.path())
                .env("GITHUB_ACTION_PATH", &self.repo_root)
                .current_dir(self.runner_temp.path());
            for (k, v) in &self.extra_env {
                cmd.env(k, v);
            }
            if let Some(env) = step["env"].as_mapping() {
                for (k, v) in env {
                    cmd.env(k.as_str().unwrap(), eval(v.as_str().unwrap()));
                }
            }
            let out = cmd.output().unwrap();
            printed.push_str(&String::from_utf8_lossy(&out.stdout));
            printed.push_str(&String::from_utf8_lossy(&out.stderr));
            let written = std::fs::read_to_string(&output_file).unwrap();
            runner_files.push_str(&written);
            step_outputs.insert(id.clone(), parse_outputs(&written));
            exit_code = out.status.code();
            if !out.status.success() {
                break;
            }
        }
        runner_files.push_str(&std::fs::read_to_string(&summary).unwrap());
        let mut outputs = BTreeMap::new();
        for (name, def) in action["outputs"].as_mapping().unwrap() {
            let value = self.evaluate(def["value"].as_str().unwrap(), &input_values, &step_outputs);
            outputs.insert(name.as_str().unwrap().to_string(), value);
        }
        ActionRun {
            outputs,
            exit_code,
            printed,
            runner_files,
        }
    }

    fn evaluate(
        &self,
        s: &str,
        inputs: &BTreeMap<String, String>,
        steps: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("unclosed expression") + start;
            let expr = rest[start + 3..end].trim();
            let parts: Vec<&str> = expr.split('.').collect();
            let value = match parts.as_slice() {
                ["inputs", name] => inputs
                    .get(*name)
                    .cloned()
                    .unwrap_or_else(|| panic!("no input {name}")),
                ["github", "action_path"] => self.repo_root.display().to_string(),
                ["github", "action_repository"] => String::new(),
                ["runner", "os"] => "Linux".into(),
                ["runner", "arch"] => "X64".into(),
                ["runner", "temp"] => self.runner_temp.path().display().to_string(),
                ["steps", step, "outputs", name] => steps
                    .get(*step)
                    .and_then(|o| o.get(*name))
                    .cloned()
                    .unwrap_or_default(),
                _ => panic!("expression not understood by the test runner: {expr}"),
            };
            out.push_str(&value);
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// GITHUB_OUTPUT's two forms: `name=value`, and `name<<DELIM` ... `DELIM`.
pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_string(), value.to_string());
        }
    }
    out
}
