#!/usr/bin/env bash
# After a point-in-time restore of a producer's database (docs/disaster-recovery.md): put the
# outbox messages it had marked `sent` since a moment back to `pending`, so that the relay
# publishes them again. Consumers' inboxes drop the ones they had already applied; the ones a
# consumer lost in a restore of its own database (or that were still on the wire) are applied.
#
# Usage: DATABASE_URL=postgres://... scripts/dr-republish.sh --since <timestamptz> [--dry-run]
#
#   --since     re-publish messages sent at or after this instant (database clock), e.g. the
#               recovery target minus the longest publish-to-apply delay you run with (minutes)
#   --dry-run   only count them
#
# Environment: DATABASE_URL (required), SAGE_SCHEMA (Sage's schema, default sage),
# PSQL (psql binary, default the newest /usr/lib/postgresql/*/bin/psql, else psql on PATH).
#
# One statement, one transaction. A re-published row keeps its txid and seq: it becomes the head
# of its key again, so later messages of the same key still unsent wait for it (per-key order
# holds). It is not a dead letter and its attempts restart at 0. Safe to run twice.
set -euo pipefail

die() {
  printf 'dr-republish: error: %s\n' "$*" >&2
  exit 2
}

since=''
dry_run=0
while (($#)); do
  case $1 in
  --since)
    [[ $# -ge 2 ]] || die '--since needs a timestamp'
    since=$2
    shift 2
    ;;
  --dry-run)
    dry_run=1
    shift
    ;;
  -h | --help)
    sed -n '2,18p' "$0"
    exit 0
    ;;
  *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ -n $since ]] || die '--since <timestamptz> is required (see --help)'
[[ -n ${DATABASE_URL:-} ]] || die 'DATABASE_URL is not set: the producer database to re-publish from'
schema=${SAGE_SCHEMA:-sage}
[[ $schema =~ ^[a-z_][a-z0-9_]*$ ]] || die "SAGE_SCHEMA must be a plain lower-case identifier, got '$schema'"

psql_bin=${PSQL:-}
if [[ -z $psql_bin ]]; then
  psql_bin=$(compgen -G '/usr/lib/postgresql/*/bin/psql' | sort -V | tail -n 1 || true)
  psql_bin=${psql_bin:-psql}
fi

if ((dry_run)); then
  sql="SELECT count(*) AS n FROM \"$schema\".outbox_message WHERE status = 'sent' AND sent_at >= :'since'::timestamptz"
  n=$("$psql_bin" -X -q -A -t -v ON_ERROR_STOP=1 -v since="$since" "$DATABASE_URL" <<<"$sql")
  printf 'would republish %s message(s) sent since %s\n' "$n" "$since"
  exit 0
fi

# The relays' LISTEN channel (outbox-tables.ts): sage_outbox, or sage_outbox_<schema>.
channel=sage_outbox
[[ $schema == sage ]] || channel=sage_outbox_$schema
channel=${channel:0:63}
# pg_notify wakes the relays at once (no INSERT, so the outbox trigger does not fire).
sql="WITH republished AS (
  UPDATE \"$schema\".outbox_message
  SET status = 'pending', sent_at = NULL, attempts = 0, next_attempt_at = clock_timestamp(),
      last_error = 'republished after a point-in-time restore (scripts/dr-republish.sh)'
  WHERE status = 'sent' AND sent_at >= :'since'::timestamptz
  RETURNING 1
)
SELECT count(*) AS n, pg_notify('$channel', '') IS NULL AS notified FROM republished"
n=$("$psql_bin" -X -q -A -t -F ' ' -v ON_ERROR_STOP=1 -v since="$since" "$DATABASE_URL" <<<"$sql" | cut -d' ' -f1)
printf 'republished %s message(s) sent since %s\n' "$n" "$since"
