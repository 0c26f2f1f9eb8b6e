#!/usr/bin/env bash
# Secret scanning with gitleaks, offline: CI runs it (scripts/test-all.sh) and fails on a finding.
#
#   bash scripts/secret-scan.sh            the working tree (files git tracks plus new files it does
#                                          not ignore) and the whole git history
#   bash scripts/secret-scan.sh dir PATH   one directory, with this repository's rules
#                                          (scripts/secret-scan.spec.ts uses it on planted secrets)
#   bash scripts/secret-scan.sh path       print the gitleaks binary's path, building it if needed
#
# gitleaks is built from the Go module proxy on first use (about 30 s) into
# ${SAGE_TOOLS_DIR:-/var/tmp/sage-tools}, outside the repository, so later runs reuse it. Building
# needs Go (`go` on PATH, or /usr/local/go/bin/go); without it the scan fails: it is never skipped.
# Rules and reviewed allow-list entries: .gitleaks.toml. Findings are printed redacted: the report
# names the rule, file, line and commit, never the secret.
#
# Exit codes: 0 nothing found, 1 a finding, 2 the scanner could not run.
set -euo pipefail

GITLEAKS_VERSION=v8.30.1
GITLEAKS_MODULE=github.com/zricethezav/gitleaks/v8

root="$(cd "$(dirname "$0")/.." && pwd)"
config="$root/.gitleaks.toml"
tools="${SAGE_TOOLS_DIR:-/var/tmp/sage-tools}"
bin="$tools/gitleaks-$GITLEAKS_VERSION/gitleaks"

fail() {
  printf 'secret-scan: error: %s\n' "$*" >&2
  exit 2
}

build_gitleaks() {
  local go
  go="$(command -v go || true)"
  [[ -n "$go" ]] || { [[ -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go; }
  [[ -n "$go" ]] || fail "gitleaks $GITLEAKS_VERSION is not in $tools and building it needs Go: install Go (https://go.dev/doc/install) or put a gitleaks binary at $bin"
  mkdir -p "$tools"
  local tmp
  tmp="$(mktemp -d "$tools/.gitleaks-build.XXXXXX")"
  printf 'secret-scan: building gitleaks %s from the Go module proxy into %s\n' "$GITLEAKS_VERSION" "$tools" >&2
  if ! GOBIN="$tmp" GOFLAGS=-buildvcs=false "$go" install \
    -ldflags "-X $GITLEAKS_MODULE/version.Version=$GITLEAKS_VERSION" \
    "$GITLEAKS_MODULE@$GITLEAKS_VERSION" >"$tmp/build.log" 2>&1; then
    tail -n 20 "$tmp/build.log" >&2
    rm -rf "$tmp"
    fail "building gitleaks $GITLEAKS_VERSION with $("$go" version) failed (log above)"
  fi
  mkdir -p "$(dirname "$bin")"
  # Moved into place whole, so a build cut short never leaves a binary that later runs trust.
  mv -f "$tmp/gitleaks" "$bin"
  rm -rf "$tmp"
}

ensure_gitleaks() {
  [[ -x "$bin" ]] || build_gitleaks
  [[ -f "$config" ]] || fail "$config is missing"
}

# --redact: the secret never reaches CI's log. gitleaks exits 1 on its own errors too, so findings
# get their own code (99), mapped to this script's 1; anything else but 0 is 2.
scan() {
  ensure_gitleaks
  local status=0
  "$bin" "$@" --config "$config" --redact --no-banner --no-color --exit-code 99 --log-level warn --verbose ||
    status=$?
  case "$status" in
    0) return 0 ;;
    99) return 1 ;;
    *)
      printf 'secret-scan: error: gitleaks %s stopped with exit code %s (above)\n' "$1" "$status" >&2
      return 2
      ;;
  esac
}

# The worse of two results: a scanner error (2) over a finding (1) over nothing (0).
worst() { ((${1} > ${2})) && echo "$1" || echo "$2"; }

case "${1:-all}" in
  path)
    ensure_gitleaks
    printf '%s\n' "$bin"
    ;;
  dir)
    [[ -d "${2:-}" ]] || fail "usage: secret-scan.sh dir PATH (an existing directory)"
    cd "$2"
    scan dir .
    ;;
  all)
    cd "$root"
    status=0
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
      # The working tree as the next commit could take it: tracked files and new files git does not
      # ignore (node_modules, coverage and service data dirs are ignored), copied so that gitleaks
      # reports their repository paths.
      tree="$(mktemp -d "${TMPDIR:-/tmp}/sage-secret-scan.XXXXXX")"
      trap 'rm -rf "$tree"' EXIT
      git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' file; do
          # Skips files deleted in the working tree, and links (a target inside the repository is
          # scanned as its own file).
          if [[ -f "$file" && ! -L "$file" ]]; then printf '%s\0' "$file"; fi
        done |
        tar -c --null --no-recursion -T - -f - | tar -x -C "$tree" -f -
      echo "secret-scan: working tree ($(find "$tree" -type f | wc -l) files)"
      s=0
      (cd "$tree" && scan dir .) || s=$?
      status="$(worst "$status" "$s")"
      # Every commit: a secret removed in a later commit is still in the history.
      echo "secret-scan: git history ($(git rev-list --count HEAD) commits)"
      s=0
      scan git "$root" || s=$?
      status="$(worst "$status" "$s")"
    else
      # Not a clone (an unpacked tarball): the directory itself; node_modules and lock files are in
      # gitleaks' default allow-list.
      echo "secret-scan: $root (not a git work tree: no history to scan)"
      scan dir . || status=$?
    fi
    if [[ $status -eq 1 ]]; then
      printf 'secret-scan: secrets found (above, redacted). Revoke and rotate each real one, remove it from the tree (and the history); a false positive gets a commented allow-list entry in .gitleaks.toml\n' >&2
    fi
    exit "$status"
    ;;
  *)
    fail "unknown mode \"$1\": use no argument, \"dir PATH\" or \"path\""
    ;;
esac
