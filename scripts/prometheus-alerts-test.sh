#!/usr/bin/env bash
# The alert rules, proven: promtool checks ops/prometheus/alerts.yml and runs its unit tests
# (ops/prometheus/alerts.test.yml: every alert fires after its `for:` with its labels and
# annotations, and resolves). Under 1 s. test/ops/alerts-test-coverage.spec.ts checks that every
# alert has such a test; test/ops/alerts-fire.int-spec.ts fires them on a real Prometheus.
#
#   bash scripts/prometheus-alerts-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/promtool.sh check rules ops/prometheus/alerts.yml
bash scripts/promtool.sh test rules ops/prometheus/alerts.test.yml
