#!/usr/bin/env bash
# The Action's install step (skipped on a cache hit): cargo install into the cached folder.
set -euo pipefail
action_path=${STACKCTL_ACTION_PATH:?}
bin_dir=${STACKCTL_BIN_DIR:?}
root=$(dirname "$bin_dir")
command -v cargo >/dev/null || { echo "::error title=stackctl::cargo is needed to install stackctl (e.g. dtolnay/rust-toolchain before this step)"; exit 2; }
if [ -n "${INPUT_VERSION:-}" ]; then
  repo=${STACKCTL_ACTION_REPOSITORY:-${GITHUB_REPOSITORY:?}}
  cargo install --locked --root "$root" --git "${GITHUB_SERVER_URL:-https://github.com}/${repo}" --rev "$INPUT_VERSION" stackctl
else
  cargo install --locked --root "$root" --path "$action_path"
fi
"$bin_dir/stackctl" --version
