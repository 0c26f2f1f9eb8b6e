#!/usr/bin/env bash
# promtool, from the Debian package `prometheus`, installed on first use the way
# scripts/services.sh installs its packages (apt-get as root; no other download).
#
#   bash scripts/promtool.sh check rules ops/prometheus/alerts.yml
set -euo pipefail

if ! command -v promtool >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    printf 'promtool: error: not installed and installing it needs root (apt-get install -y --no-install-recommends prometheus)\n' >&2
    exit 1
  fi
  printf 'promtool: apt-get install prometheus\n' >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts a Prometheus server on Debian hosts with systemd; the tests need only the CLI.
fi

exec promtool "$@"
