#!/usr/bin/env bash
# Copies the one source of Sage's alerts and dashboard into the Helm chart, which cannot read
# outside its own directory (.Files.Get): ops/prometheus/alerts.yml and ops/grafana/*.json →
# deploy/helm/sage/files/. Run it after editing either; CI runs it with --check
# (scripts/helm-check.sh), which fails when a copy differs from its source.
#
#   bash scripts/helm-sync-ops.sh           copy
#   bash scripts/helm-sync-ops.sh --check   compare only; exit 1 naming each copy out of date
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
files="$root/deploy/helm/sage/files"
# source (in the repository) → copy (in the chart's files/)
pairs=(
  "ops/prometheus/alerts.yml:alerts.yml"
  "ops/grafana/outbox-overview.json:outbox-overview.json"
)

status=0
for pair in "${pairs[@]}"; do
  source="$root/${pair%%:*}"
  copy="$files/${pair##*:}"
  [[ -f "$source" ]] || {
    printf 'helm-sync-ops: error: %s is missing\n' "${pair%%:*}" >&2
    exit 2
  }
  if [[ "${1:-}" == "--check" ]]; then
    if ! cmp -s "$source" "$copy"; then
      printf 'helm-sync-ops: deploy/helm/sage/files/%s differs from %s: run bash scripts/helm-sync-ops.sh\n' \
        "${pair##*:}" "${pair%%:*}" >&2
      status=1
    fi
  else
    mkdir -p "$files"
    cp "$source" "$copy"
  fi
done
exit "$status"
