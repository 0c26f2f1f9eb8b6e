#!/usr/bin/env bash
# The demo: order-service and payment-service (remote payment step) on embedded PGlite and an
# in-memory broker, in one process; no servers needed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "Installing dependencies (first run only)..."
  npm ci --no-audit --no-fund --loglevel=error
fi
exec node -r ts-node/register/transpile-only -r tsconfig-paths/register apps/order-service/src/demo/demo.ts "$@"
