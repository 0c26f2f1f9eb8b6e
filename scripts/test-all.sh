#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls `npm test`, which runs this):
# installs dependencies, provisions PostgreSQL and the brokers, then lint, the secret scan, type-check, all three
# jest tiers, the package checks and the consumer test, then (whole runs only) small chaos, DR,
# runbook, HTTP load and scaling runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# Every service some test needs: PostgreSQL, and the brokers the adapters are tested against.
bash scripts/services.sh start postgres rabbitmq nats kafka
eval "$(bash scripts/services.sh env postgres rabbitmq nats kafka)"

echo "== lint"; npm run --silent lint # includes the security rules (eslint-plugin-security)
# gitleaks over the working tree and the git history (built once from the Go module proxy and
# cached outside the repository); fails on any secret not allow-listed in .gitleaks.toml.
echo "== secret scan"; bash scripts/secret-scan.sh
echo "== format"; npm run --silent format:check
echo "== typecheck"; npm run --silent typecheck
# promtool check + unit tests of every alert (fires and resolves: ops/prometheus/alerts.test.yml).
echo "== promtool"; bash scripts/prometheus-alerts-test.sh
# The Helm chart: lint, render for each value set, every object validated against its schema
# (helm and the validators built/fetched once into /var/tmp/sage-tools).
echo "== helm"; bash scripts/helm-check.sh
# The container images (deploy/images/Dockerfile), built offline with podman from a locally made
# Debian base, then run from their exported filesystems under chroot as uid 10001 on a read-only
# root: probes answer, SIGTERM ends them within the grace period (relay and order-service here).
echo "== images"; bash scripts/images-test.sh --quick

# Debian's Chromium for the operator console's browser test (playwright-core drives it; no CDN).
echo "== chromium"; bash scripts/chromium.sh
# zsh, to parse the CLI's zsh completion script (libs/saga-outbox/src/cli/commands/completion.command.spec.ts).
if ! command -v zsh >/dev/null; then
  echo "== zsh"
  sudo=''
  [ "$(id -u)" = 0 ] || sudo='sudo'
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zsh >/dev/null
fi

echo "== jest (unit, int, e2e)"
report="$(mktemp)"
status=0
# PGlite (the embedded database) loads its WASM with a dynamic import(), which jest's VM allows
# only with this flag.
# --forceExit: a client some test leaves connected must not hang CI after every test has reported
# (seen once: a Kafka connection held the jest parent open after a full, green run). Jest still
# prints its open-handle warning, so a leak stays visible.
# The whole suite measures the library's coverage and fails under the floor (jest.config.js);
# a subset (`npm test -- <pattern>`) does not.
coverage=()
[ "$#" -eq 0 ] && coverage=(--coverage)
NODE_OPTIONS="--experimental-vm-modules ${NODE_OPTIONS:-}" npx jest --ci --forceExit "${coverage[@]}" --json --outputFile="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);
' "$report" || true
rm -f "$report"
[ "$status" = 0 ] || exit "$status"

# The package as users get it: the packed tarball's checks (publint, attw, contents, API report and
# reference), then the consumer test on that same tarball (a fresh Nest 11 app outside the
# repository, on PGlite and on PostgreSQL with each broker).
pack_dir="$(mktemp -d "${TMPDIR:-/tmp}/sage-pack.XXXXXX")"
echo "== package checks"; SAGE_PACK_DIR="$pack_dir" bash scripts/check-package.sh
echo "== consumer test"; SAGE_TARBALL="$(cat "$pack_dir/tarball-path")" bash scripts/consumer-test.sh
rm -rf "$pack_dir"

# Chaos at a small size (benchmarks/chaos; `npm run chaos -- --messages 100000` is the full one): per
# broker its own PostgreSQL and server on private ports, relays killed -9, the broker and PostgreSQL
# restarted and killed while messages flow, until every fault happened once. Fails on any lost,
# doubled or reordered effect or unfinished saga. About 3 minutes per relay mode; a subset run
# skips it.
if [ "$#" -eq 0 ]; then
  chaos_dir="$(mktemp -d "${TMPDIR:-/tmp}/sage-chaos.XXXXXX")"
  chmod 0755 "$chaos_dir" # PostgreSQL runs as its own OS user under root and must reach its data
  echo "== chaos (small)"
  # On failure the reports and every process's logs stay in $chaos_dir.
  npm run --silent chaos -- --broker all --messages 1000 --rate 200 --fault-interval 2 \
    --heavy-interval 2.5 --drain-timeout 60 --deadline 150 --out-dir "$chaos_dir" --no-docs \
    --services-dir "$chaos_dir/services"
  # The WAL-streaming relay (outbox.relay.mode 'wal'; results chaos-rabbitmq-wal.*): relays killed
  # -9 mid-stream and the broker restarted. On RabbitMQ only for now: on Kafka and NATS, rare
  # consumer-side failures after broker restarts are still open (docs/outbox.md, "WAL-mode chaos").
  # A longer deadline: its setup (logical slot, publication, catch-up) takes longer.
  echo "== chaos (small, WAL relay)"
  npm run --silent chaos -- --broker rabbitmq --relay-mode wal --faults relay-kill,broker-restart \
    --messages 1000 --rate 200 --fault-interval 2 --heavy-interval 2.5 --drain-timeout 60 \
    --deadline 240 --out-dir "$chaos_dir" --no-docs --services-dir "$chaos_dir/services"
  rm -rf "$chaos_dir"
  # Disaster-recovery drill at a small size (benchmarks/dr; `npm run dr:drill` is the full one):
  # traffic across two services on a private PostgreSQL and RabbitMQ, base backup + WAL archive,
  # kill -9, point-in-time restore, re-publish; fails on any saga left unfinished, effect applied
  # twice or committed message never applied. About 1.5 minutes.
  echo "== disaster-recovery drill (small)"
  npm run --silent dr:drill -- --small
  # The relay-down and dead-letter runbooks walked end to end with their own commands (kill -9 of a
  # relay holding claims, replay, discard, release with --operator); benchmarks/runbooks.
  echo "== runbook drill (quick)"
  npm run --silent runbooks:drill -- --quick
  # The three sample services under HTTP load on real PostgreSQL and RabbitMQ: fails on any error,
  # stuck or wrong saga or dead letter (`npm run load:http` is the full one); benchmarks/http-load.
  quick_dir="$(mktemp -d "${TMPDIR:-/tmp}/sage-quick.XXXXXX")"
  echo "== HTTP load (quick)"
  npm run --silent load:http -- --quick --no-docs --out "$quick_dir/http-load.json"
  # 1, 2 and 4 relay, consumer and saga-worker processes: fails on a lost, doubled or reordered
  # message or effect (`npm run bench:scaling` is the full one, docs/scaling.md).
  echo "== scaling (quick)"
  cp docs/scaling.md "$quick_dir/scaling.md"
  npm run --silent bench:scaling -- --quick --out "$quick_dir/scaling.json" --doc "$quick_dir/scaling.md"
  rm -rf "$quick_dir"
fi
