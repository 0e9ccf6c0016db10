#!/usr/bin/env bash
# The Action's main step: run one stackctl command with the inputs, map its results to
# step outputs. Secrets (the registry password, the TLS key) go through stdin and files
# with mode 600, never through a command line, and this script never prints them.
set -euo pipefail
: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: this script runs as a step of action.yml}"
: "${RUNNER_TEMP:?RUNNER_TEMP is not set}"
bin_dir=${STACKCTL_BIN_DIR:?}
stackctl="$bin_dir/stackctl"
[ -x "$stackctl" ] || { echo "::error title=stackctl::no stackctl binary at $stackctl"; exit 2; }

command=${INPUT_COMMAND:-}
case "$command" in
  build|merge|tag|plan|retag|exists) ;;
  *) echo "::error title=stackctl::input 'command' must be one of build, merge, tag, plan, retag, exists (got '${command}')"; exit 2 ;;
esac

# `args` is split as a shell splits words (quotes group), without running anything:
# xargs does the quoting rules, no eval.
args=()
if [ -n "${INPUT_ARGS:-}" ]; then
  mapfile -d '' args < <(printf '%s' "$INPUT_ARGS" | xargs printf '%s\0')
fi

work="$RUNNER_TEMP/stackctl-action"
mkdir -p "$work"
chmod 700 "$work"

if [ -n "${INPUT_BUILDKIT:-}" ]; then
  export BUILDKIT_HOST="$INPUT_BUILDKIT"
fi
write_secret_file() { # NAME CONTENT: a file only this user can read
  (umask 077 && printf '%s\n' "$2" >"$work/$1")
  printf '%s' "$work/$1"
}
if [ "$command" = build ]; then
  [ -z "${INPUT_BUILDKIT_CA:-}" ] || args+=(--buildkit-tls-ca "$(write_secret_file buildkit-ca.pem "$INPUT_BUILDKIT_CA")")
  [ -z "${INPUT_BUILDKIT_CERT:-}" ] || args+=(--buildkit-tls-cert "$(write_secret_file buildkit-cert.pem "$INPUT_BUILDKIT_CERT")")
  [ -z "${INPUT_BUILDKIT_KEY:-}" ] || args+=(--buildkit-tls-key "$(write_secret_file buildkit-key.pem "$INPUT_BUILDKIT_KEY")")
elif [ -n "${INPUT_BUILDKIT_CA:-}${INPUT_BUILDKIT_CERT:-}${INPUT_BUILDKIT_KEY:-}" ]; then
  echo "::warning title=stackctl::the buildkit-* inputs are used by 'build' only; ignored for '$command'"
fi
if [ -n "${INPUT_WIKI:-}" ]; then
  # `build` writes its pages to <--artifacts>/wiki (a wiki checked out at ./wiki by default).
  case "$command" in
    tag) args+=(--wiki "$INPUT_WIKI") ;;
    *) echo "::warning title=stackctl::the wiki input is used by tag only ('build' writes to <--artifacts>/wiki); ignored for '$command'" ;;
  esac
fi

artifacts="$work/artifacts-$$"
if [ "$command" = tag ]; then
  # The promotion lists land here unless the caller chose a folder.
  case " ${args[*]-} " in
    *" --artifacts "*|*" --artifacts="*) artifacts="" ;;
    *) args+=(--artifacts "$artifacts") ;;
  esac
fi

status=0
if [ -n "${INPUT_REGISTRY_USERNAME:-}" ]; then
  [ -n "${INPUT_REGISTRY_PASSWORD:-}" ] || { echo "::error title=stackctl::registry-username is set but registry-password is empty"; exit 2; }
  printf '%s' "$INPUT_REGISTRY_PASSWORD" |
    "$stackctl" "$command" --username "$INPUT_REGISTRY_USERNAME" --password-stdin "${args[@]}" || status=$?
else
  "$stackctl" "$command" "${args[@]}" </dev/null || status=$?
fi
rm -f "$work"/buildkit-*.pem

# `build` and `merge` write their own outputs (images, tag) to GITHUB_OUTPUT. For `tag`, the promotion
# as `SOURCE -> TARGET` lines, from the lists it wrote.
if [ "$command" = tag ] && [ -n "$artifacts" ]; then
  for pair in "IMAGES_ORIGINAL IMAGES_TAGGED" "IMAGES_ORIGINAL_STABLE IMAGES_GLOBAL_STABLE"; do
    set -- $pair
    if [ -f "$artifacts/$1" ] && [ -f "$artifacts/$2" ]; then
      delim="stackctl_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
      {
        echo "promotion<<$delim"
        paste -d" " "$artifacts/$1" "$artifacts/$2" | sed 's/ / -> /'
        echo "$delim"
      } >>"$GITHUB_OUTPUT"
    fi
  done
fi
echo "exit-code=$status" >>"$GITHUB_OUTPUT"
exit "$status"
