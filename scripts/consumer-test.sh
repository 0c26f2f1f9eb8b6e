#!/usr/bin/env bash
# The consumer test: @sage/saga-outbox as a user gets it. Packs the library, creates a fresh Nest 11
# app outside the repository from test/consumer-app (the very files docs/getting-started.md shows),
# installs the tarball with only its required peers and checks the bare install
# (test/consumer/bare-install.cjs), then installs the peers the app uses, compiles it with
# `strict`, checks there is one copy of each Nest package, and runs it:
#   (a) on embedded PGlite with memory://, and
#   (b) on the real PostgreSQL with each real broker (SAGE_CONSUMER_BROKERS, default
#       "kafka rabbitmq nats"),
# driving it over HTTP with test/consumer/drive.mjs.
#
# Needs the services (scripts/services.sh env postgres rabbitmq nats kafka) and the npm registry
# (or a warm npm cache). SAGE_TARBALL=path reuses a packed tarball; SAGE_KEEP_CONSUMER=1 keeps the
# work directory for a look afterwards.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sage-consumer.XXXXXX")"
APP="$WORK/app"
PEERS="$ROOT/test/consumer/peers.json"
RUN_ID="sage_consumer_$$_$RANDOM"
DATABASES=()
APP_PID=""

cleanup() {
  [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null || true
  for db in "${DATABASES[@]:-}"; do
    [ -n "$db" ] && dropdb --if-exists "$db" >/dev/null 2>&1 || true
  done
  if [ -n "${SAGE_KEEP_CONSUMER:-}" ]; then echo "consumer app kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [ -z "${PGHOST:-}" ]; then eval "$(bash "$ROOT/scripts/services.sh" env postgres rabbitmq nats kafka)"; fi

peers() { node -e 'const p=require(process.argv[1]);const v=process.argv[2].split(".").reduce((o,k)=>o[k],p);console.log(v.join(" "))' "$PEERS" "$1"; }
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
new_database() {
  local name="${RUN_ID}_$1"
  createdb "$name"
  DATABASES+=("$name")
  echo "postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/$name"
}
npm_install() {
  # Engine warnings (a dependency that wants another Node) fail the test: users would see them.
  local log="$WORK/npm-install.log"
  npm install --no-audit --no-fund --prefer-offline "$@" >"$log" 2>&1 || { cat "$log"; return 1; }
  if grep -q EBADENGINE "$log"; then cat "$log"; echo "consumer: npm install printed an engine warning" >&2; return 1; fi
}

echo "== consumer: pack"
if [ -z "${SAGE_TARBALL:-}" ]; then
  (cd "$ROOT" && npm run --silent build:lib)
  SAGE_TARBALL="$WORK/$(cd "$ROOT" && npm pack ./libs/saga-outbox --pack-destination "$WORK" --silent | tail -1)"
fi
echo "tarball: $SAGE_TARBALL ($(du -k "$SAGE_TARBALL" | cut -f1) kB)"

echo "== consumer: a fresh Nest 11 app in $APP, with the tarball and only its required peers"
cp -r "$ROOT/test/consumer-app" "$APP"
rm -rf "$APP/node_modules" "$APP/dist"
cd "$APP"
# shellcheck disable=SC2046
npm_install "$SAGE_TARBALL" $(peers required)
# Run from inside the app, so that require() resolves from its node_modules, not the repository's.
mkdir -p "$APP/checks" && cp "$ROOT/test/consumer/bare-install.cjs" "$APP/checks/"
bare_db="$(new_database bare)"
DATABASE_URL="$bare_db" node checks/bare-install.cjs
# The bins: sage-relay names the packages it needs; sage works with the required peers only.
if relay_out="$(DATABASE_URL="$bare_db" SAGE_BROKER_URL=memory:// npx --no-install sage-relay 2>&1)"; then
  echo "consumer: sage-relay started without its peers" >&2; exit 1
fi
echo "$relay_out" | grep -q 'sage-relay needs .*npm install @nestjs/platform-express' \
  || { echo "$relay_out"; echo "consumer: sage-relay did not name its missing peers" >&2; exit 1; }
echo "sage-relay without its peers: $(echo "$relay_out" | grep -o 'sage-relay needs.*' | cut -c1-100)…"
DATABASE_URL="$bare_db" npx --no-install sage migrate
DATABASE_URL="$bare_db" npx --no-install sage migrate --check
DATABASE_URL="$bare_db" npx --no-install sage status --json | node -e \
  'let t="";process.stdin.on("data",(d)=>(t+=d)).on("end",()=>{JSON.parse(t);console.log("sage status --json: ok")})' 

echo "== consumer: the app's peers, compiled with strict"
# shellcheck disable=SC2046
npm_install $(peers app) $(peers brokers.kafka) $(peers brokers.rabbitmq) $(peers brokers.nats)
# shellcheck disable=SC2046
npm_install --save-dev $(peers dev)
npx tsc -p tsconfig.json
for package in @nestjs/common @nestjs/core typeorm @nestjs/terminus amqplib reflect-metadata; do
  copies="$(find . -path "*/node_modules/$package/package.json" | wc -l)"
  [ "$copies" = 1 ] || { npm ls "$package"; echo "consumer: $copies copies of $package" >&2; exit 1; }
done
npm ls @nestjs/core

run_app() {
  local label="$1"; shift
  local port; port="$(free_port)"
  env "$@" PORT="$port" node dist/main.js >"$WORK/$label.log" 2>&1 &
  APP_PID=$!
  if ! node "$ROOT/test/consumer/drive.mjs" "http://127.0.0.1:$port" "$label" "$APP_PID"; then
    echo "--- $label log (last 60 lines)"; tail -n 60 "$WORK/$label.log"; exit 1
  fi
  kill -TERM "$APP_PID"; wait "$APP_PID" 2>/dev/null || true; APP_PID=""
}

echo "== consumer: (a) embedded PGlite + memory://"
run_app embedded -u DATABASE_URL SAGE_BROKER_URL=memory://

echo "== consumer: broker down at startup (brokerStartup 'degraded', the default)"
# The app starts and is ready with its broker unreachable (the outbox absorbs the outage), and says
# so in one WARN naming the broker and the cause. Nothing listens on the closed port.
closed="$(free_port)"; port="$(free_port)"
env DATABASE_URL="$(new_database degraded)" SAGE_BROKER_URL="amqp://127.0.0.1:$closed" PORT="$port" \
  node dist/main.js >"$WORK/degraded.log" 2>&1 &
APP_PID=$!
if ! node -e '
  const url = process.argv[1], deadline = Date.now() + 60_000;
  (async () => {
    for (;;) {
      try { if ((await fetch(url)).status === 200) return; } catch {}
      if (Date.now() > deadline) { console.error("consumer: not ready with the broker down"); process.exit(1); }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();' "http://127.0.0.1:$port/health/ready" \
  || ! grep -q "is unreachable at startup: cannot connect to RabbitMQ at 127.0.0.1:$closed" "$WORK/degraded.log"; then
  echo "--- degraded log (last 60 lines)"; tail -n 60 "$WORK/degraded.log"; exit 1
fi
echo "ready with the broker down: $(grep -o 'Broker "rabbitmq" is unreachable at startup[^.]*' "$WORK/degraded.log" | head -1)"
kill -TERM "$APP_PID"; wait "$APP_PID" 2>/dev/null || true; APP_PID=""

for broker in ${SAGE_CONSUMER_BROKERS:-kafka rabbitmq nats}; do
  case "$broker" in
    kafka) url="kafka://$SAGE_KAFKA_BROKERS" ;;
    rabbitmq) url="$SAGE_RABBITMQ_URL" ;;
    nats) url="$SAGE_NATS_URL" ;;
    *) echo "consumer: unknown broker $broker (kafka, rabbitmq, nats)" >&2; exit 2 ;;
  esac
  echo "== consumer: (b) PostgreSQL + $broker"
  run_app "$broker" DATABASE_URL="$(new_database "$broker")" SAGE_BROKER_URL="$url"
done
echo "consumer test: passed"
