#!/usr/bin/env bash
# The Action's first step: which stackctl to install, and where its binary is cached.
# Outputs: key (the cache key's version part), bin-dir (where the binary lives).
set -euo pipefail
: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: this script runs as a step of action.yml}"
: "${RUNNER_TEMP:?RUNNER_TEMP is not set}"
action_path=${STACKCTL_ACTION_PATH:?}

if [ -n "${INPUT_VERSION:-}" ]; then
  key="ref-${INPUT_VERSION}"
elif commit=$(git -C "$action_path" rev-parse HEAD 2>/dev/null); then
  # The Action's own source, at the commit the workflow's `uses:` line resolved to.
  dirty=""
  [ -z "$(git -C "$action_path" status --porcelain --untracked-files=no 2>/dev/null)" ] || dirty="-dirty-$(date +%s)"
  key="src-${commit}${dirty}"
else
  key="src-$(sed -n 's/^version = "\(.*\)"/\1/p' "$action_path/Cargo.toml" | head -1)-$(date +%s)"
fi
# The cache path must be the same on every run of a runner: under the home folder, not RUNNER_TEMP.
bin_dir="${HOME}/.stackctl-action/bin"
{
  echo "key=${key//[^A-Za-z0-9._-]/_}"
  echo "bin-dir=${bin_dir}"
} >>"$GITHUB_OUTPUT"
