#!/usr/bin/env bash
# Provision and run the infrastructure Sage's integration tests need, on a
# Debian host without Docker (docker-compose.yml offers the same with Docker).
#
# Usage: scripts/services.sh <start|stop|restart|status|install|env> [service...]
#
#   start    install if missing, start, wait until ready; no-op if already running
#   stop     stop (idempotent)
#   restart  stop, then start
#   status   print state; exit 0 if every service is up, 3 if one is stopped,
#            1 if one has a live process that does not accept connections yet
#   install  install the binaries if missing: Debian packages (needs root);
#            Kafka's jars from Maven Central into the local Maven repository
#   env      print `export ...` lines: eval "$(scripts/services.sh env)"
#
# Services default to all known ones: postgres rabbitmq nats kafka. Each runs
# on 127.0.0.1 only, with its data, config and logs in $SAGE_SERVICES_DIR/<name>;
# data survives stop/restart and kill -9. Aliases: pg, rabbit, rmq.
#
#   postgres  Debian's PostgreSQL, our own cluster (not Debian's `main`)
#   rabbitmq  Debian's rabbitmq-server, node sage@localhost, no plugins;
#             user sage/sage, administrator, full permissions on vhost /
#   nats      Debian's nats-server with JetStream (store in .../nats/jetstream)
#   kafka     Apache Kafka (org.apache.kafka:kafka_2.13 from Maven Central, see
#             scripts/kafka/pom.xml) on Java 17+, one KRaft broker+controller
#             node; auto-creates topics; replication factors 1
#
# Optional, started only when named (`start prometheus`):
#   prometheus  Debian's prometheus on 127.0.0.1:59090, scraping the sample
#             services (ports 3000-3002) with ops/prometheus/alerts.yml loaded;
#             Grafana and Jaeger: docker-compose.yml's observability profile
#
# The brokers run as the invoking user (PostgreSQL as SAGE_PG_OS_USER when
# root); RabbitMQ has its own Erlang cookie and epmd. Logs: rabbitmq/log/,
# nats/nats-server.log, kafka/logs/server.log (+ *.out for early errors).
#
# Each service is a set of functions named <prefix>_install, _start, _stop,
# _status and _env; register a new one in SERVICES and service_prefix.
#
# Environment (all optional):
#   SAGE_SERVICES_DIR       state, sockets and logs   (/var/tmp/sage-services)
#   PGPORT PGUSER PGPASSWORD PGDATABASE               (54329 sage sage sage)
#   SAGE_PG_DATA            data directory            ($SAGE_SERVICES_DIR/postgres/data)
#   SAGE_PG_BIN             PostgreSQL bin directory  (newest /usr/lib/postgresql/*/bin)
#   SAGE_PG_OS_USER         OS user running the server when invoked as root (postgres)
#   SAGE_SERVICES_TIMEOUT   seconds to wait for start/stop (60)
#   SAGE_RABBITMQ_PORT      AMQP port                 (56729)
#   SAGE_RABBITMQ_DIST_PORT, SAGE_RABBITMQ_EPMD_PORT  Erlang ports (56730, 43690)
#   SAGE_RABBITMQ_USER SAGE_RABBITMQ_PASSWORD         (sage sage)
#   SAGE_RABBITMQ_EXTRA_CONF  lines appended to the generated rabbitmq.conf
#                           (e.g. a TLS listener for a private test instance)
#   SAGE_NATS_PORT          client port               (42229)
#   SAGE_NATS_MONITOR_PORT  HTTP monitoring port      (42230)
#   SAGE_NATS_BIN           nats-server binary        (/usr/sbin/nats-server)
#   SAGE_KAFKA_PORT         client listener           (19092)
#   SAGE_KAFKA_CONTROLLER_PORT  KRaft controller      (19093)
#   SAGE_KAFKA_VERSION      Apache Kafka release      (4.1.2)
#   SAGE_KAFKA_HEAP_OPTS    broker JVM heap           (-Xms256m -Xmx512m)
#   SAGE_KAFKA_EXTRA_PROPERTIES  lines appended to the generated
#                           server.properties (a later key wins: e.g. extra
#                           listeners for a private test instance)
#   SAGE_KAFKA_SCRAM_USERS  SCRAM credentials created when the storage is
#                           formatted, whitespace-separated, each one
#                           `--add-scram` value: SCRAM-SHA-512=[name=u,password=p]
#   SAGE_MAVEN_REPO         local Maven repository    (Maven's default, ~/.m2/repository)
#   JAVA_HOME               Java 17+ for Kafka        (java on PATH)
#   SAGE_PROMETHEUS_PORT    Prometheus HTTP port      (59090)
#   SAGE_PROMETHEUS_TARGETS app=host:port words to scrape (the three samples)
#   SAGE_PROMETHEUS_BIN     prometheus binary         (/usr/bin/prometheus)
set -euo pipefail

readonly SERVICES=(postgres rabbitmq nats kafka)
# Started only when named.
readonly OPTIONAL_SERVICES=(prometheus)

SAGE_SERVICES_DIR=${SAGE_SERVICES_DIR:-/var/tmp/sage-services}
SAGE_SERVICES_TIMEOUT=${SAGE_SERVICES_TIMEOUT:-60}

log() { printf 'services: %s\n' "$*" >&2; }
die() {
  printf 'services: error: %s\n' "$*" >&2
  exit 1
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# A clean environment for the PostgreSQL tools we run ourselves, so that a
# caller's PGHOST, PGSSLMODE, PGOPTIONS, PGDATA... cannot redirect them.
clean_env() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"; }

# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------

APT_UPDATED=0
apt_install() {
  is_root || die "installing $* needs root (apt-get install -y --no-install-recommends $*)"
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Is a process with this pid alive, with its working directory at $2?
# A PostgreSQL postmaster and all its children chdir into the data directory,
# so this tells our server from an unrelated process that reused the pid
# (after a reboot, say).
pid_is_in_dir() {
  local pid=$1 dir=$2 cwd
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -d /proc/$pid ]] || return 1
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null) || return 1
  [[ $cwd == "$dir" ]]
}

# Create the services directory readable by the OS users running servers.
ensure_services_dir() {
  if [[ ! -d $SAGE_SERVICES_DIR ]]; then
    mkdir -p "$SAGE_SERVICES_DIR"
    chmod 0755 "$SAGE_SERVICES_DIR"
  fi
}

# Pids of every live process whose working directory is $1.
pids_in_dir() {
  local dir=$1 p
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/cwd" 2>/dev/null || true) == "$dir" ]] && printf '%s\n' "${p#/proc/}"
  done
  return 0
}

# ---------------------------------------------------------------------------
# PostgreSQL: our own cluster, never the Debian-managed `main` one.
# ---------------------------------------------------------------------------

PG_PORT=${PGPORT:-54329}
PG_USER=${PGUSER:-sage}
PG_PASSWORD=${PGPASSWORD:-sage}
PG_DATABASE=${PGDATABASE:-sage}
PG_HOST=127.0.0.1
PG_DIR=$SAGE_SERVICES_DIR/postgres
PG_DATA=${SAGE_PG_DATA:-$PG_DIR/data}
PG_SOCKET_DIR=$PG_DIR/run
PG_LOG_FILE=$PG_DIR/postgres.log
if is_root; then
  PG_OS_USER=${SAGE_PG_OS_USER:-postgres}
else
  PG_OS_USER=$(id -un)
fi
# The bootstrap superuser is named after the OS user so that `peer` auth over
# the unix socket lets this script in without a password.
PG_ADMIN=$PG_OS_USER
PG_BIN=${SAGE_PG_BIN:-}

[[ $PG_PORT =~ ^[0-9]+$ ]] || die "PGPORT must be a number, got '$PG_PORT'"
[[ $PG_DIR$PG_DATA != *[\'\\]* ]] || die "SAGE_SERVICES_DIR and SAGE_PG_DATA must not contain quotes or backslashes"

pg_installed() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }

# Pick the bin directory: the data directory's own major version if it has
# one, else the newest installed.
pg_find_bin() {
  [[ -n $PG_BIN ]] && return 0
  local version
  if [[ -f $PG_DATA/PG_VERSION ]]; then
    version=$(<"$PG_DATA/PG_VERSION")
    [[ -x /usr/lib/postgresql/$version/bin/postgres ]] ||
      die "$PG_DATA was created by PostgreSQL $version, which is not installed;" \
        "install postgresql-$version or remove $PG_DATA"
    PG_BIN=/usr/lib/postgresql/$version/bin
  else
    PG_BIN=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1)
    PG_BIN=${PG_BIN%/initdb}
  fi
}

# Run a command as the OS user owning the cluster (PostgreSQL refuses root).
# fd 9 is closed so that a server started here does not inherit, and hold
# for ever, the lock taken by take_lock.
as_pg() {
  if is_root; then
    (cd / && clean_env runuser -u "$PG_OS_USER" -- "$@" 9>&-)
  else
    (cd / && clean_env "$@" 9>&-)
  fi
}

pg_ctl() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" "$@"; }

pg_ready() { clean_env "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" -t 2; }

# Can we see inside the cluster's directories? Not as another user than the
# one that owns them (0700, as PostgreSQL requires of its data directory).
pg_dirs_readable() {
  local d
  for d in "$PG_DIR" "$PG_DATA"; do
    if [[ -e $d ]] && ! [[ -r $d && -x $d ]]; then return 1; fi
  done
  return 0
}

pg_require_access() {
  pg_dirs_readable || die "cannot read $PG_DIR or $PG_DATA as $(id -un); run as root or as their owner"
}

# Pid of our running postmaster, or nothing.
pg_running_pid() {
  local pidfile=$PG_DATA/postmaster.pid pid
  [[ -f $pidfile ]] || return 0
  pid=$(sed -n 1p "$pidfile")
  if pid_is_in_dir "$pid" "$(realpath "$PG_DATA")"; then
    printf '%s\n' "$pid"
  fi
  return 0
}

# Remove lock files left by a postmaster that is gone (kill -9, machine
# reset), once its orphaned children have exited. PostgreSQL ignores a lock
# file whose pid is dead, but refuses to start if that pid was reused by
# another process, as is likely after a reboot; so we check the process is
# ours, not merely alive. Only called when our server is not running.
pg_remove_stale_locks() {
  local data file pid
  data=$(realpath "$PG_DATA")
  for file in "$PG_DATA/postmaster.pid" "$PG_SOCKET_DIR/.s.PGSQL.$PG_PORT.lock"; do
    [[ -f $file ]] || continue
    pid=$(sed -n 1p "$file")
    pid_is_in_dir "$pid" "$data" && continue
    log "postgres: removing stale $file (pid ${pid:-?} is not our server)"
    pg_reap_orphans "$data"
    rm -f "$file"
  done
}

# Backends and helpers of a postmaster killed with -9 notice its death and
# exit; until they do they hold the old shared memory and a new postmaster
# refuses to start. Wait for them, then make them go.
pg_reap_orphans() {
  local data=$1 deadline=$((SECONDS + 10)) pids
  while pids=$(pids_in_dir "$data") && [[ -n $pids ]]; do
    if ((SECONDS >= deadline)); then
      log "postgres: killing orphaned server processes: ${pids//$'\n'/ }"
      # shellcheck disable=SC2086 # one pid per word
      kill -KILL $pids 2>/dev/null || true
      deadline=$((SECONDS + 10))
    fi
    sleep 0.2
  done
}

pg_install() {
  if pg_installed; then
    return 0
  fi
  # The package may create and start Debian's own `main` cluster on port
  # 5432; we leave it alone and never use it.
  apt_install postgresql
  pg_installed || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
}

# Directories the server writes to, owned by its OS user.
pg_prepare_dirs() {
  ensure_services_dir
  mkdir -p "$PG_DIR" "$PG_SOCKET_DIR"
  chmod 0700 "$PG_DIR" "$PG_SOCKET_DIR"
  if is_root; then
    id -u "$PG_OS_USER" >/dev/null 2>&1 || die "OS user '$PG_OS_USER' does not exist"
    if [[ $(stat -c %U "$PG_DIR") != "$PG_OS_USER" ]] ||
      { [[ -e $PG_DATA ]] && [[ $(stat -c %U "$PG_DATA") != "$PG_OS_USER" ]]; }; then
      chown -R "$PG_OS_USER:" "$PG_DIR"
      if [[ -e $PG_DATA ]]; then chown -R "$PG_OS_USER:" "$PG_DATA"; fi
    fi
    chown "$PG_OS_USER:" "$PG_SOCKET_DIR"
    as_pg test -w "$PG_DIR" ||
      die "$PG_DIR is not reachable by OS user '$PG_OS_USER'; choose a SAGE_SERVICES_DIR it can traverse"
  fi
  local socket=$PG_SOCKET_DIR/.s.PGSQL.$PG_PORT
  ((${#socket} < 108)) || die "unix socket path too long (${#socket} bytes): $socket; shorten SAGE_SERVICES_DIR"
}

pg_initdb() {
  [[ -f $PG_DATA/PG_VERSION ]] && return 0
  # initdb into a scratch directory and rename, so that a run interrupted
  # half-way never leaves a data directory that looks usable.
  local tmp=$PG_DATA.initdb
  rm -rf "$tmp"
  mkdir -p "$tmp"
  chmod 0700 "$tmp"
  if is_root; then chown "$PG_OS_USER:" "$tmp"; fi
  log "postgres: initdb $PG_DATA"
  as_pg "$PG_BIN/initdb" -D "$tmp" -U "$PG_ADMIN" --encoding=UTF8 --no-locale \
    --auth-local=peer --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 || {
    cat "$PG_DIR/initdb.log" >&2
    die "postgres: initdb failed (log: $PG_DIR/initdb.log)"
  }
  printf "\n# Sage: settings managed by scripts/services.sh\ninclude 'sage.conf'\n" >>"$tmp/postgresql.conf"
  if [[ -e $PG_DATA ]]; then
    rmdir "$PG_DATA" 2>/dev/null || die "$PG_DATA exists, is not empty and holds no cluster (no PG_VERSION); remove it"
  fi
  mv "$tmp" "$PG_DATA"
}

# Written on every start so that PGPORT, SAGE_SERVICES_DIR and changes to
# this script apply to an existing cluster too.
pg_write_config() {
  cat >"$PG_DATA/sage.conf" <<EOF
# Managed by scripts/services.sh; rewritten on every start.
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKET_DIR'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
max_connections = 300
shared_buffers = 256MB
# Kept on: the tests check crash safety.
fsync = on
# Logical decoding for the WAL-streaming relay (docs/outbox.md); a stuck
# replication slot may retain at most this much WAL before it is invalidated.
wal_level = logical
max_replication_slots = 32
max_wal_senders = 32
max_slot_wal_keep_size = 2GB
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  cat >"$PG_DATA/pg_hba.conf" <<EOF
# Managed by scripts/services.sh; rewritten on every start.
# TYPE  DATABASE  USER       ADDRESS       METHOD
local   all       $PG_ADMIN                peer
host    all       all        127.0.0.1/32  scram-sha-256
EOF
  if is_root; then
    chown "$PG_OS_USER:" "$PG_DATA/sage.conf" "$PG_DATA/pg_hba.conf"
  fi
  chmod 0600 "$PG_DATA/sage.conf" "$PG_DATA/pg_hba.conf"
}

# Create the role and database if missing; keep the role's password and
# SUPERUSER (tests create a database per test file) in line with the env.
pg_ensure_role_and_db() {
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" \
    -U "$PG_ADMIN" -d postgres -v role="$PG_USER" -v pw="$PG_PASSWORD" -v db="$PG_DATABASE" <<'SQL'
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') AS create_role \gset
\if :create_role
CREATE ROLE :"role" LOGIN SUPERUSER PASSWORD :'pw';
\else
ALTER ROLE :"role" LOGIN SUPERUSER PASSWORD :'pw';
\endif
SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') AS create_db \gset
\if :create_db
CREATE DATABASE :"db" OWNER :"role";
\endif
SQL
}

pg_status() {
  if ! pg_installed && [[ -z $PG_BIN ]]; then
    printf 'postgres: stopped (not installed)\n'
    return 3
  fi
  pg_find_bin
  if ! pg_dirs_readable; then
    if pg_ready; then
      printf 'postgres: accepting connections on %s:%s (run as root for details)\n' "$PG_HOST" "$PG_PORT"
      return 0
    fi
    printf 'postgres: not accepting connections on %s:%s (run as root for details)\n' "$PG_HOST" "$PG_PORT"
    return 3
  fi
  local pid
  pid=$(pg_running_pid)
  if [[ -z $pid ]]; then
    if [[ -f $PG_DATA/postmaster.pid ]]; then
      printf 'postgres: stopped (stale postmaster.pid of pid %s; start removes it; data %s)\n' \
        "$(sed -n 1p "$PG_DATA/postmaster.pid")" "$PG_DATA"
    else
      printf 'postgres: stopped (data %s)\n' "$PG_DATA"
    fi
    return 3
  fi
  if ! pg_ready; then
    printf 'postgres: running but not accepting connections on %s:%s (pid %s, log %s)\n' \
      "$PG_HOST" "$PG_PORT" "$pid" "$PG_LOG_FILE"
    return 1
  fi
  printf 'postgres: running (pid %s, %s, %s:%s, data %s, log %s)\n' \
    "$pid" "$("$PG_BIN/postgres" --version)" "$PG_HOST" "$PG_PORT" "$PG_DATA" "$PG_LOG_FILE"
}

pg_start() {
  pg_install
  pg_find_bin
  pg_require_access
  pg_prepare_dirs
  local pid running_port
  pid=$(pg_running_pid)
  if [[ -n $pid ]]; then
    running_port=$(sed -n 4p "$PG_DATA/postmaster.pid")
    [[ $running_port == "$PG_PORT" ]] ||
      die "postgres: already running on port $running_port, not $PG_PORT; use restart to move it"
  else
    pg_remove_stale_locks
    pg_ready && die "postgres: another server already accepts connections on $PG_HOST:$PG_PORT; set PGPORT"
    pg_initdb
    pg_write_config
    log "postgres: starting on $PG_HOST:$PG_PORT"
    local log_offset=0
    [[ -f $PG_LOG_FILE ]] && log_offset=$(stat -c %s "$PG_LOG_FILE")
    # pg_ctl -w notices at once if the postmaster exits (port taken, bad
    # config); pg_wait_ready then checks that it accepts connections.
    pg_ctl -w -t "$SAGE_SERVICES_TIMEOUT" -l "$PG_LOG_FILE" start >/dev/null || {
      tail -c +"$((log_offset + 1))" "$PG_LOG_FILE" | tail -n 20 >&2 || true
      die "postgres: failed to start; see $PG_LOG_FILE"
    }
  fi
  pg_wait_ready
  pg_require_logical_wal
  pg_ensure_role_and_db
  pg_status
}

# A server started before wal_level = logical was configured keeps its old
# level until it restarts: restart it once (a fast shutdown, then start).
pg_require_logical_wal() {
  local level
  level=$(as_pg "$PG_BIN/psql" -X -A -t -q -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U "$PG_ADMIN" -d postgres \
    -c 'SHOW wal_level' 2>/dev/null || true)
  [[ -z $level || $level == logical ]] && return 0
  log "postgres: wal_level is $level, restarting once for wal_level = logical"
  pg_write_config
  pg_ctl -w -t "$SAGE_SERVICES_TIMEOUT" -m fast -l "$PG_LOG_FILE" restart >/dev/null ||
    die "postgres: restart for wal_level = logical failed; see $PG_LOG_FILE"
  pg_wait_ready
}

# Wait until the server accepts connections; when a server we did not start
# is still starting (crash recovery, say), fail if its postmaster exits.
pg_wait_ready() {
  local started=$SECONDS
  until pg_ready; do
    if [[ -z $(pg_running_pid) ]]; then
      die "postgres: server exited before accepting connections; see $PG_LOG_FILE"
    fi
    if ((SECONDS - started >= SAGE_SERVICES_TIMEOUT)); then
      die "postgres: not accepting connections on $PG_HOST:$PG_PORT after ${SAGE_SERVICES_TIMEOUT}s; see $PG_LOG_FILE"
    fi
    sleep 0.2
  done
}

pg_stop() {
  if ! pg_installed && [[ -z $PG_BIN ]]; then
    log "postgres: not installed"
    return 0
  fi
  pg_find_bin
  pg_require_access
  local pid
  pid=$(pg_running_pid)
  if [[ -z $pid ]]; then
    pg_remove_stale_locks
    log "postgres: already stopped"
    return 0
  fi
  log "postgres: stopping (pid $pid)"
  pg_ctl stop -m fast -w -t "$SAGE_SERVICES_TIMEOUT" >/dev/null ||
    die "postgres: did not stop within ${SAGE_SERVICES_TIMEOUT}s; see $PG_LOG_FILE"
  log "postgres: stopped"
}

pg_env() {
  printf 'export PGHOST=%q PGPORT=%q PGUSER=%q PGPASSWORD=%q PGDATABASE=%q\n' \
    "$PG_HOST" "$PG_PORT" "$PG_USER" "$PG_PASSWORD" "$PG_DATABASE"
}

# ---------------------------------------------------------------------------
# Helpers for the brokers: daemons run as the invoking user, each with its
# working directory set to its own directory under SAGE_SERVICES_DIR, which is
# how we tell our server from an unrelated process that reused its pid.
# ---------------------------------------------------------------------------

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Does something accept TCP connections on host $1, port $2?
# shellcheck disable=SC2016 # expanded by the inner bash
tcp_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

# Is pid $1 alive, with its working directory at $2 and a command name
# (/proc/PID/comm) matching the extended regex $3? Builtins only: no fork.
proc_matches() {
  local pid=$1 dir=$2 re=$3 comm
  [[ $pid =~ ^[0-9]+$ && /proc/$pid/cwd -ef $dir ]] || return 1
  { read -r comm <"/proc/$pid/comm"; } 2>/dev/null || return 1
  [[ $comm =~ ^($re)$ ]]
}

# Pids of the live processes matching directory $1 and command regex $2.
procs_matching() {
  local dir=$1 re=$2 p
  for p in /proc/[0-9]*; do
    if proc_matches "${p#/proc/}" "$dir" "$re"; then printf '%s\n' "${p#/proc/}"; fi
  done
  return 0
}

# Pid recorded in pidfile $1 if that process is alive and ours (see
# proc_matches for $2 and $3).
daemon_pid() {
  local pidfile=$1 dir=$2 re=$3 pid=
  [[ -f $pidfile ]] || return 0
  { read -r pid <"$pidfile"; } 2>/dev/null || true
  if proc_matches "$pid" "$dir" "$re"; then printf '%s\n' "$pid"; fi
  return 0
}

# Remove a pid file whose process is gone (kill -9, reboot) or is not ours.
remove_stale_pidfile() {
  local name=$1 pidfile=$2 dir=$3 re=$4
  [[ -f $pidfile ]] || return 0
  [[ -n $(daemon_pid "$pidfile" "$dir" "$re") ]] && return 0
  log "$name: removing stale $pidfile (pid $(sed -n 1p "$pidfile" 2>/dev/null || true) is not our server)"
  rm -f "$pidfile"
}

# Can we tell whether our server in directory $1 runs? Not as another user
# than its owner (its /proc entries are hidden from us), unless root.
can_inspect() { is_root || ! [[ -e $1 ]] || [[ $(stat -c %u "$1") == "$(id -u)" ]]; }

# Status from outside, for a user who cannot inspect: name, host, port.
tcp_status() {
  if tcp_open "$2" "$3"; then
    printf '%s: accepting connections on %s:%s (run as root for details)\n' "$1" "$2" "$3"
    return 0
  fi
  printf '%s: not accepting connections on %s:%s (run as root for details)\n' "$1" "$2" "$3"
  return 3
}

# Changing a server's state needs write access to its directory.
require_owner() {
  if [[ -e $2 ]] && ! can_inspect "$2"; then
    die "$1: $2 belongs to another user; run as root or as its owner"
  fi
  return 0
}

# Start program "$3" "$4..." in the background in directory $1, in a new
# session, with a clean environment plus the NAME=VALUE words among its
# arguments, stdin closed and output appended to $2; sets SPAWNED_PID. fd 9
# (the lock) is closed as in as_pg. A background subshell is no process
# group leader, so setsid execs in place and $! is the daemon's own pid.
SPAWNED_PID=
spawn() {
  local dir=$1 out=$2
  shift 2
  (cd "$dir" && exec setsid env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@" </dev/null >>"$out" 2>&1 9>&-) &
  SPAWNED_PID=$!
}

# Byte size of file $1 (0 if missing), to show only what a start logged.
file_size() { if [[ -f $1 ]]; then stat -c %s "$1"; else printf '0\n'; fi; }

# Print what file $1 gained since offset $2, last lines only.
log_tail_since() {
  local file=$1 offset=$2
  [[ -f $file ]] || return 0
  printf -- '--- %s ---\n' "$file" >&2
  tail -c +"$((offset + 1))" "$file" 2>/dev/null | tail -n 25 >&2 || true
  printf '\n' >&2
}

# Wait until none of our processes (directory $2, command regex $3) is
# left, e.g. children of a server killed with -9; kill them after a bound.
reap_procs() {
  local name=$1 dir=$2 re=$3 deadline=$((SECONDS + 10)) pids
  while pids=$(procs_matching "$dir" "$re") && [[ -n $pids ]]; do
    if ((SECONDS >= deadline)); then
      log "$name: killing leftover processes: ${pids//$'\n'/ }"
      # shellcheck disable=SC2086 # one pid per word
      kill -KILL $pids 2>/dev/null || true
      deadline=$((SECONDS + 10))
    fi
    sleep 0.2
  done
}

# SIGTERM pid $2, wait SAGE_SERVICES_TIMEOUT, then SIGKILL; returns when
# none of our processes (directory $3, command regex $4) is left.
terminate() {
  local name=$1 pid=$2 dir=$3 re=$4 deadline
  if proc_matches "$pid" "$dir" "$re"; then kill -TERM "$pid" 2>/dev/null || true; fi
  deadline=$((SECONDS + SAGE_SERVICES_TIMEOUT))
  while proc_matches "$pid" "$dir" "$re"; do
    if ((SECONDS >= deadline)); then
      log "$name: still running ${SAGE_SERVICES_TIMEOUT}s after SIGTERM; sending SIGKILL to pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  reap_procs "$name" "$dir" "$re"
}

# Does process $1 exist and is it no zombie?
pid_alive() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# Wait until command "$3..." succeeds while pid $2 lives (fail at once if it
# exits), at most SAGE_SERVICES_TIMEOUT; returns 1 on failure.
wait_until() {
  local name=$1 pid=$2 started=$SECONDS
  shift 2
  until "$@"; do
    if ! pid_alive "$pid"; then
      log "$name: server exited before accepting connections"
      return 1
    fi
    if ((SECONDS - started >= SAGE_SERVICES_TIMEOUT)); then
      log "$name: not ready after ${SAGE_SERVICES_TIMEOUT}s (pid $pid still running: start waits again, stop stops it;" \
        "SAGE_SERVICES_TIMEOUT sets the bound)"
      return 1
    fi
    sleep 0.3
  done
}

check_port() {
  if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 65535)); then
    die "$1 must be a port number, got '$2'"
  fi
}

# ---------------------------------------------------------------------------
# RabbitMQ: Debian's rabbitmq-server, our own node sage@localhost with its
# own config, data, logs, Erlang cookie and epmd port; never the
# Debian-managed node. No plugins (so no management listener).
# ---------------------------------------------------------------------------

RMQ_PORT=${SAGE_RABBITMQ_PORT:-56729}
RMQ_DIST_PORT=${SAGE_RABBITMQ_DIST_PORT:-56730}
RMQ_EPMD_PORT=${SAGE_RABBITMQ_EPMD_PORT:-43690}
RMQ_USER=${SAGE_RABBITMQ_USER:-sage}
RMQ_PASSWORD=${SAGE_RABBITMQ_PASSWORD:-sage}
RMQ_HOST=127.0.0.1
RMQ_NODE=sage@localhost
RMQ_DIR=$SAGE_SERVICES_DIR/rabbitmq
RMQ_PIDFILE=$RMQ_DIR/rabbitmq.pid
RMQ_LOG_FILE=$RMQ_DIR/log/$RMQ_NODE.log
RMQ_OUT=$RMQ_DIR/rabbitmq.out
RMQ_BIN=/usr/lib/rabbitmq/bin
# Our node's processes: the start script, the VM and its helpers (not epmd,
# which runs in /).
RMQ_PROCS='rabbitmq-server|beam\.smp|erl_child_setup|inet_gethost'
check_port SAGE_RABBITMQ_PORT "$RMQ_PORT"
check_port SAGE_RABBITMQ_DIST_PORT "$RMQ_DIST_PORT"
check_port SAGE_RABBITMQ_EPMD_PORT "$RMQ_EPMD_PORT"
[[ $RMQ_USER$RMQ_PASSWORD =~ ^[A-Za-z0-9._-]+$ ]] ||
  die "SAGE_RABBITMQ_USER and SAGE_RABBITMQ_PASSWORD may only hold letters, digits, '.', '_' and '-'"

# Everything the server and its CLI tools read, set explicitly so that
# neither /etc/rabbitmq nor the caller's RABBITMQ_* variables apply. HOME
# holds the Erlang cookie.
RMQ_ENV=(
  LC_ALL=C.UTF-8 HOME="$RMQ_DIR"
  RABBITMQ_NODENAME="$RMQ_NODE" RABBITMQ_USE_LONGNAME=false
  RABBITMQ_NODE_IP_ADDRESS="$RMQ_HOST" RABBITMQ_NODE_PORT="$RMQ_PORT"
  RABBITMQ_DIST_PORT="$RMQ_DIST_PORT"
  ERL_EPMD_ADDRESS="$RMQ_HOST" ERL_EPMD_PORT="$RMQ_EPMD_PORT"
  RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
  RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
  RABBITMQ_CONFIG_FILES="$RMQ_DIR/conf.d"
  RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
  RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
  RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
  RABBITMQ_LOG_BASE="$RMQ_DIR/log"
  RABBITMQ_PID_FILE="$RMQ_PIDFILE"
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
)

rmq_installed() { [[ -x $RMQ_BIN/rabbitmq-server && -x $RMQ_BIN/rabbitmqctl ]]; }

rmq_install() {
  rmq_installed && return 0
  # With systemd the package starts Debian's own node on 5672; we leave it
  # alone and never use it.
  apt_install rabbitmq-server
  rmq_installed || die "rabbitmq-server installed but no $RMQ_BIN/rabbitmq-server found"
}

rmq_version() { dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || printf '?'; }

# rabbitmqctl against our node, in our environment.
rmq_ctl() { (cd "$RMQ_DIR" && clean_env "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmqctl" -n "$RMQ_NODE" "$@" 9>&-); }

rmq_running_pid() { daemon_pid "$RMQ_PIDFILE" "$RMQ_DIR" "beam\\.smp"; }

rmq_prepare_dirs() {
  ensure_services_dir
  mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log" "$RMQ_DIR/conf.d"
  [[ -w $RMQ_DIR ]] || die "rabbitmq: cannot write $RMQ_DIR as $(id -un); run as root or as its owner"
  if [[ ! -s $RMQ_DIR/.erlang.cookie ]]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -dc A-Za-z0-9 >"$RMQ_DIR/.erlang.cookie")
  fi
  chmod 0400 "$RMQ_DIR/.erlang.cookie"
}

# Written on every start, so that port and user changes apply to an
# existing node too.
rmq_write_config() {
  : >"$RMQ_DIR/rabbitmq-env.conf"
  printf '[].\n' >"$RMQ_DIR/enabled_plugins"
  cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
# Managed by scripts/services.sh; rewritten on every start.
listeners.tcp.default = $RMQ_HOST:$RMQ_PORT
distribution.listener.interface = $RMQ_HOST
distribution.listener.port_range.min = $RMQ_DIST_PORT
distribution.listener.port_range.max = $RMQ_DIST_PORT
# Used when the node's database is created; rmq_ensure_user keeps them.
default_vhost = /
default_user = $RMQ_USER
default_pass = $RMQ_PASSWORD
default_user_tags.administrator = true
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
log.console = false
log.file.level = info
log.file.rotation.size = 10485760
log.file.rotation.count = 5
EOF
  [[ -z ${SAGE_RABBITMQ_EXTRA_CONF:-} ]] || printf '%s\n' "$SAGE_RABBITMQ_EXTRA_CONF" >>"$RMQ_DIR/rabbitmq.conf"
  chmod 0600 "$RMQ_DIR/rabbitmq.conf"
}

# Make sure our user exists with our password, tags and full permissions
# on vhost / (default_user only applies to a new database).
rmq_ensure_user() {
  rmq_ctl -q authenticate_user "$RMQ_USER" "$RMQ_PASSWORD" >/dev/null 2>&1 && return 0
  log "rabbitmq: creating user $RMQ_USER"
  rmq_ctl -q add_user "$RMQ_USER" "$RMQ_PASSWORD" >/dev/null 2>&1 ||
    rmq_ctl -q change_password "$RMQ_USER" "$RMQ_PASSWORD" >/dev/null
  rmq_ctl -q set_user_tags "$RMQ_USER" administrator >/dev/null
  rmq_ctl -q set_permissions -p / "$RMQ_USER" '.*' '.*' '.*' >/dev/null
}

rmq_status() {
  if ! rmq_installed; then
    printf 'rabbitmq: stopped (not installed)\n'
    return 3
  fi
  can_inspect "$RMQ_DIR" || {
    tcp_status rabbitmq "$RMQ_HOST" "$RMQ_PORT"
    return
  }
  local pid
  pid=$(rmq_running_pid)
  if [[ -z $pid ]]; then
    if [[ -f $RMQ_PIDFILE ]]; then
      printf 'rabbitmq: stopped (stale pid file of pid %s; start removes it; data %s)\n' \
        "$(sed -n 1p "$RMQ_PIDFILE")" "$RMQ_DIR/mnesia"
    else
      printf 'rabbitmq: stopped (data %s)\n' "$RMQ_DIR/mnesia"
    fi
    return 3
  fi
  if ! tcp_open "$RMQ_HOST" "$RMQ_PORT"; then
    printf 'rabbitmq: running but not accepting connections on %s:%s (pid %s, log %s)\n' \
      "$RMQ_HOST" "$RMQ_PORT" "$pid" "$RMQ_LOG_FILE"
    return 1
  fi
  printf 'rabbitmq: running (pid %s, RabbitMQ %s, amqp://%s:%s, node %s, data %s, log %s)\n' \
    "$pid" "$(rmq_version)" "$RMQ_HOST" "$RMQ_PORT" "$RMQ_NODE" "$RMQ_DIR/mnesia" "$RMQ_LOG_FILE"
}

rmq_start() {
  rmq_install
  require_owner rabbitmq "$RMQ_DIR"
  rmq_prepare_dirs
  local pid
  pid=$(rmq_running_pid)
  if [[ -z $pid ]]; then
    remove_stale_pidfile rabbitmq "$RMQ_PIDFILE" "$RMQ_DIR" "beam\\.smp"
    reap_procs rabbitmq "$RMQ_DIR" "$RMQ_PROCS"
    tcp_open "$RMQ_HOST" "$RMQ_PORT" &&
      die "rabbitmq: another server already accepts connections on $RMQ_HOST:$RMQ_PORT; set SAGE_RABBITMQ_PORT"
    rmq_write_config
    log "rabbitmq: starting node $RMQ_NODE on $RMQ_HOST:$RMQ_PORT"
    local log_offset out_offset
    log_offset=$(file_size "$RMQ_LOG_FILE")
    out_offset=$(file_size "$RMQ_OUT")
    spawn "$RMQ_DIR" "$RMQ_OUT" "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmq-server"
    pid=$SPAWNED_PID
    # The AMQP listener opens last in the boot; await_startup confirms.
    if ! wait_until rabbitmq "$pid" tcp_open "$RMQ_HOST" "$RMQ_PORT" ||
      ! rmq_ctl -q await_startup -t "$SAGE_SERVICES_TIMEOUT" >/dev/null; then
      log_tail_since "$RMQ_OUT" "$out_offset"
      log_tail_since "$RMQ_LOG_FILE" "$log_offset"
      die "rabbitmq: failed to start; see $RMQ_LOG_FILE and $RMQ_OUT"
    fi
  else
    rmq_ctl -q await_startup -t "$SAGE_SERVICES_TIMEOUT" >/dev/null ||
      die "rabbitmq: running (pid $pid) but not started within ${SAGE_SERVICES_TIMEOUT}s; see $RMQ_LOG_FILE"
  fi
  rmq_ensure_user
  rmq_status
}

rmq_stop() {
  if ! rmq_installed; then
    log "rabbitmq: not installed"
    return 0
  fi
  [[ -d $RMQ_DIR ]] || {
    log "rabbitmq: already stopped"
    return 0
  }
  require_owner rabbitmq "$RMQ_DIR"
  local pid
  pid=$(rmq_running_pid)
  if [[ -z $pid ]]; then
    remove_stale_pidfile rabbitmq "$RMQ_PIDFILE" "$RMQ_DIR" "beam\\.smp"
    reap_procs rabbitmq "$RMQ_DIR" "$RMQ_PROCS"
    log "rabbitmq: already stopped"
    return 0
  fi
  log "rabbitmq: stopping (pid $pid)"
  # The node shuts down gracefully on SIGTERM (as `rabbitmqctl shutdown`
  # does, without the second VM that the CLI starts).
  terminate rabbitmq "$pid" "$RMQ_DIR" "$RMQ_PROCS"
  rm -f "$RMQ_PIDFILE"
  # Our epmd refuses to die while a node is registered.
  clean_env ERL_EPMD_PORT="$RMQ_EPMD_PORT" epmd -kill >/dev/null 2>&1 || true
  log "rabbitmq: stopped"
}

rmq_env() {
  printf 'export SAGE_RABBITMQ_URL=%q\n' "amqp://$RMQ_USER:$RMQ_PASSWORD@$RMQ_HOST:$RMQ_PORT"
}

# ---------------------------------------------------------------------------
# NATS with JetStream: Debian's nats-server.
# ---------------------------------------------------------------------------

NATS_PORT=${SAGE_NATS_PORT:-42229}
NATS_MONITOR_PORT=${SAGE_NATS_MONITOR_PORT:-42230}
NATS_HOST=127.0.0.1
NATS_DIR=$SAGE_SERVICES_DIR/nats
NATS_PIDFILE=$NATS_DIR/nats-server.pid
NATS_LOG_FILE=$NATS_DIR/nats-server.log
NATS_BIN=${SAGE_NATS_BIN:-/usr/sbin/nats-server}
check_port SAGE_NATS_PORT "$NATS_PORT"
check_port SAGE_NATS_MONITOR_PORT "$NATS_MONITOR_PORT"
[[ $NATS_DIR != *[\"\\]* ]] || die "SAGE_SERVICES_DIR must not contain quotes or backslashes"

nats_installed() { [[ -x $NATS_BIN ]]; }

nats_install() {
  nats_installed && return 0
  apt_install nats-server
  nats_installed || die "nats-server installed but no $NATS_BIN found"
}

nats_version() { "$NATS_BIN" --version 2>/dev/null | sed 's/^nats-server: //'; }

nats_running_pid() { daemon_pid "$NATS_PIDFILE" "$NATS_DIR" nats-server; }

# Healthy once JetStream has loaded its streams.
nats_ready() {
  curl -fsS -m 2 -o /dev/null "http://$NATS_HOST:$NATS_MONITOR_PORT/healthz?js-enabled-only=true" 2>/dev/null &&
    tcp_open "$NATS_HOST" "$NATS_PORT"
}

nats_write_config() {
  cat >"$NATS_DIR/nats-server.conf" <<EOF
# Managed by scripts/services.sh; rewritten on every start.
server_name: sage
listen: "$NATS_HOST:$NATS_PORT"
http: "$NATS_HOST:$NATS_MONITOR_PORT"
pid_file: "$NATS_PIDFILE"
log_file: "$NATS_LOG_FILE"
logtime: true
# 64 MB, then the log rotates.
logfile_size_limit: 67108864
# nats-server keeps its streams in <store_dir>/jetstream.
jetstream {
  store_dir: "$NATS_DIR"
  max_memory_store: 1GB
}
EOF
}

nats_status() {
  if ! nats_installed; then
    printf 'nats: stopped (not installed)\n'
    return 3
  fi
  can_inspect "$NATS_DIR" || {
    tcp_status nats "$NATS_HOST" "$NATS_PORT"
    return
  }
  local pid
  pid=$(nats_running_pid)
  if [[ -z $pid ]]; then
    if [[ -f $NATS_PIDFILE ]]; then
      printf 'nats: stopped (stale pid file of pid %s; start removes it; data %s)\n' \
        "$(sed -n 1p "$NATS_PIDFILE")" "$NATS_DIR/jetstream"
    else
      printf 'nats: stopped (data %s)\n' "$NATS_DIR/jetstream"
    fi
    return 3
  fi
  if ! nats_ready; then
    printf 'nats: running but not healthy on %s:%s (pid %s, log %s)\n' \
      "$NATS_HOST" "$NATS_PORT" "$pid" "$NATS_LOG_FILE"
    return 1
  fi
  printf 'nats: running (pid %s, nats-server %s with JetStream, nats://%s:%s, monitor http://%s:%s, data %s, log %s)\n' \
    "$pid" "$(nats_version)" "$NATS_HOST" "$NATS_PORT" "$NATS_HOST" "$NATS_MONITOR_PORT" \
    "$NATS_DIR/jetstream" "$NATS_LOG_FILE"
}

nats_start() {
  nats_install
  require_owner nats "$NATS_DIR"
  ensure_services_dir
  mkdir -p "$NATS_DIR"
  [[ -w $NATS_DIR ]] || die "nats: cannot write $NATS_DIR as $(id -un); run as root or as its owner"
  local pid
  pid=$(nats_running_pid)
  if [[ -z $pid ]]; then
    remove_stale_pidfile nats "$NATS_PIDFILE" "$NATS_DIR" nats-server
    tcp_open "$NATS_HOST" "$NATS_PORT" &&
      die "nats: another server already accepts connections on $NATS_HOST:$NATS_PORT; set SAGE_NATS_PORT"
    nats_write_config
    "$NATS_BIN" -t -c "$NATS_DIR/nats-server.conf" >/dev/null 2>&1 || {
      "$NATS_BIN" -t -c "$NATS_DIR/nats-server.conf" >&2 || true
      die "nats: invalid configuration $NATS_DIR/nats-server.conf"
    }
    log "nats: starting on $NATS_HOST:$NATS_PORT (JetStream)"
    local log_offset out_offset
    log_offset=$(file_size "$NATS_LOG_FILE")
    out_offset=$(file_size "$NATS_DIR/nats-server.out")
    # Early errors (before the log file opens) land in nats-server.out.
    spawn "$NATS_DIR" "$NATS_DIR/nats-server.out" "$NATS_BIN" -c "$NATS_DIR/nats-server.conf"
    pid=$SPAWNED_PID
  fi
  wait_until nats "$pid" nats_ready || {
    log_tail_since "$NATS_DIR/nats-server.out" "${out_offset:-0}"
    log_tail_since "$NATS_LOG_FILE" "${log_offset:-0}"
    die "nats: failed to start; see $NATS_LOG_FILE"
  }
  nats_status
}

nats_stop() {
  [[ -d $NATS_DIR ]] || {
    log "nats: already stopped"
    return 0
  }
  require_owner nats "$NATS_DIR"
  local pid
  pid=$(nats_running_pid)
  if [[ -z $pid ]]; then
    remove_stale_pidfile nats "$NATS_PIDFILE" "$NATS_DIR" nats-server
    log "nats: already stopped"
    return 0
  fi
  log "nats: stopping (pid $pid)"
  terminate nats "$pid" "$NATS_DIR" nats-server
  rm -f "$NATS_PIDFILE"
  log "nats: stopped"
}

nats_env() {
  printf 'export SAGE_NATS_URL=%q\n' "nats://$NATS_HOST:$NATS_PORT"
}

# ---------------------------------------------------------------------------
# Kafka: the Apache Kafka broker from Maven Central (scripts/kafka/pom.xml),
# one node in KRaft combined mode (broker and controller).
# ---------------------------------------------------------------------------

KAFKA_VERSION=${SAGE_KAFKA_VERSION:-4.1.2}
KAFKA_PORT=${SAGE_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${SAGE_KAFKA_CONTROLLER_PORT:-19093}
KAFKA_HEAP_OPTS=${SAGE_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
KAFKA_HOST=127.0.0.1
KAFKA_DIR=$SAGE_SERVICES_DIR/kafka
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_PIDFILE=$KAFKA_DIR/kafka.pid
KAFKA_LOG_FILE=$KAFKA_DIR/logs/server.log
KAFKA_OUT=$KAFKA_DIR/kafka.out
KAFKA_CLASSPATH_FILE=$KAFKA_DIR/classpath
check_port SAGE_KAFKA_PORT "$KAFKA_PORT"
check_port SAGE_KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
[[ $KAFKA_VERSION =~ ^[0-9][0-9A-Za-z.-]*$ ]] || die "SAGE_KAFKA_VERSION looks wrong: '$KAFKA_VERSION'"
KAFKA_JAVA=

kafka_find_java() {
  [[ -n $KAFKA_JAVA ]] && return 0
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    KAFKA_JAVA=$JAVA_HOME/bin/java
  else
    KAFKA_JAVA=$(command -v java || true)
  fi
  if [[ -z $KAFKA_JAVA ]]; then
    apt_install openjdk-17-jre-headless
    KAFKA_JAVA=$(command -v java) || die "kafka: no java after installing openjdk-17-jre-headless"
  fi
  local major
  major=$("$KAFKA_JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  major=${major%%.*}
  if ! [[ $major =~ ^[0-9]+$ ]] || ((major < 17)); then
    die "kafka: $KAFKA_JAVA is Java ${major:-?}; the Kafka $KAFKA_VERSION broker needs Java 17+ (set JAVA_HOME)"
  fi
}

# The cached classpath, valid for this version and pom while every jar on it
# is still in the local Maven repository.
kafka_classpath_ok() {
  [[ -f $KAFKA_CLASSPATH_FILE && -f $KAFKA_CLASSPATH_FILE.key ]] || return 1
  [[ $(<"$KAFKA_CLASSPATH_FILE.key") == "$(kafka_classpath_key)" ]] || return 1
  local jar jars
  IFS=: read -r -a jars <"$KAFKA_CLASSPATH_FILE"
  ((${#jars[@]} > 10)) || return 1
  for jar in "${jars[@]}"; do [[ -f $jar ]] || return 1; done
}

kafka_classpath_key() {
  printf '%s %s\n' "$KAFKA_VERSION" "$(sha256sum <"$SCRIPT_DIR/kafka/pom.xml" | cut -c1-16)"
}

# Resolve the broker's jars into the local Maven repository (~/.m2, or
# SAGE_MAVEN_REPO) and cache their classpath.
kafka_install() {
  kafka_find_java
  kafka_classpath_ok && return 0
  command -v mvn >/dev/null || apt_install maven
  ensure_services_dir
  mkdir -p "$KAFKA_DIR"
  local mvn_args=(-B -q -f "$SCRIPT_DIR/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION")
  [[ -n ${SAGE_MAVEN_REPO:-} ]] && mvn_args+=(-Dmaven.repo.local="$SAGE_MAVEN_REPO")
  log "kafka: fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its dependencies with Maven"
  (cd "$KAFKA_DIR" && mvn "${mvn_args[@]}" dependency:build-classpath -Dmdep.includeScope=runtime \
    -Dmdep.outputFile="$KAFKA_CLASSPATH_FILE.tmp" 9>&-) >"$KAFKA_DIR/maven.log" 2>&1 || {
    tail -n 30 "$KAFKA_DIR/maven.log" >&2
    die "kafka: Maven could not fetch Kafka $KAFKA_VERSION (log: $KAFKA_DIR/maven.log)"
  }
  mv "$KAFKA_CLASSPATH_FILE.tmp" "$KAFKA_CLASSPATH_FILE"
  kafka_classpath_key >"$KAFKA_CLASSPATH_FILE.key"
  kafka_classpath_ok || die "kafka: the classpath Maven wrote names missing jars ($KAFKA_CLASSPATH_FILE)"
}

kafka_running_pid() { daemon_pid "$KAFKA_PIDFILE" "$KAFKA_DIR" java; }

# The version of the broker on the classpath of pid $1, or else on the
# cached classpath.
kafka_version() {
  local jar
  if [[ -n ${1:-} && -r /proc/$1/cmdline ]]; then
    jar=$(tr '\0:' '\n' <"/proc/$1/cmdline" | grep -m1 '/kafka_2\.13-[^/]*\.jar$' || true)
  else
    jar=$(tr ':' '\n' <"$KAFKA_CLASSPATH_FILE" 2>/dev/null | grep -m1 '/kafka_2\.13-[^/]*\.jar$' || true)
  fi
  jar=${jar##*/kafka_2.13-}
  printf '%s\n' "${jar%.jar}"
}

kafka_write_config() {
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Managed by scripts/services.sh; rewritten on every start.
# One node in KRaft combined mode.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
group.initial.rebalance.delay.ms=0
# After a kill -9 the restarted controller waits for the dead broker's
# session to expire before the new one may register: 4 s, not 9.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
EOF
  [[ -z ${SAGE_KAFKA_EXTRA_PROPERTIES:-} ]] ||
    printf '%s\n' "$SAGE_KAFKA_EXTRA_PROPERTIES" >>"$KAFKA_DIR/server.properties"
  cp "$SCRIPT_DIR/kafka/log4j2.xml" "$KAFKA_DIR/log4j2.xml"
}

# The JVM command line for main class "$1" with arguments "$2...", in
# KAFKA_CMD; run in a clean environment (no JAVA_TOOL_OPTIONS, KAFKA_OPTS...).
KAFKA_CMD=()
kafka_command() {
  local heap
  read -r -a heap <<<"$KAFKA_HEAP_OPTS"
  KAFKA_CMD=("$KAFKA_JAVA" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
    -Dkafka.logs.dir="$KAFKA_DIR/logs" -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.xml"
    -cp "$(<"$KAFKA_CLASSPATH_FILE")" "$@")
}

# `kafka-storage.sh format` with a new cluster id, once.
kafka_format() {
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  local cluster_id
  cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  log "kafka: formatting $KAFKA_DATA (cluster id $cluster_id)"
  local scram=() users user
  # read -a, not an unquoted expansion: the [...] of an entry must not glob.
  read -r -a users <<<"${SAGE_KAFKA_SCRAM_USERS:-}"
  for user in "${users[@]}"; do scram+=(--add-scram "$user"); done
  kafka_command kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" \
    -c "$KAFKA_DIR/server.properties" "${scram[@]}"
  (cd "$KAFKA_DIR" && clean_env "${KAFKA_CMD[@]}" 9>&-) >"$KAFKA_DIR/format.log" 2>&1 || {
    cat "$KAFKA_DIR/format.log" >&2
    die "kafka: formatting $KAFKA_DATA failed (log: $KAFKA_DIR/format.log)"
  }
}

# Started: the broker logged that it is up (after it was unfenced) since
# the offset, and its listener accepts connections.
kafka_started_since() {
  local offset=$1
  # server.log rolls over at 50 MB: if it did meanwhile, scan the new file.
  (($(file_size "$KAFKA_LOG_FILE") >= offset)) || offset=0
  tail -c +"$((offset + 1))" "$KAFKA_LOG_FILE" 2>/dev/null | grep -q 'Kafka Server started' &&
    tcp_open "$KAFKA_HOST" "$KAFKA_PORT"
}

kafka_status() {
  can_inspect "$KAFKA_DIR" || {
    tcp_status kafka "$KAFKA_HOST" "$KAFKA_PORT"
    return
  }
  local pid
  pid=$(kafka_running_pid)
  if [[ -z $pid ]]; then
    if [[ ! -f $KAFKA_CLASSPATH_FILE ]]; then
      printf 'kafka: stopped (not installed)\n'
    elif [[ -f $KAFKA_PIDFILE ]]; then
      printf 'kafka: stopped (stale pid file of pid %s; start removes it; data %s)\n' \
        "$(sed -n 1p "$KAFKA_PIDFILE")" "$KAFKA_DATA"
    else
      printf 'kafka: stopped (data %s)\n' "$KAFKA_DATA"
    fi
    return 3
  fi
  if ! tcp_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    printf 'kafka: running but not accepting connections on %s:%s (pid %s, log %s)\n' \
      "$KAFKA_HOST" "$KAFKA_PORT" "$pid" "$KAFKA_LOG_FILE"
    return 1
  fi
  printf 'kafka: running (pid %s, Apache Kafka %s KRaft, %s:%s, data %s, log %s)\n' \
    "$pid" "$(kafka_version "$pid")" "$KAFKA_HOST" "$KAFKA_PORT" "$KAFKA_DATA" "$KAFKA_LOG_FILE"
}

kafka_start() {
  kafka_install
  require_owner kafka "$KAFKA_DIR"
  mkdir -p "$KAFKA_DIR/logs"
  [[ -w $KAFKA_DIR ]] || die "kafka: cannot write $KAFKA_DIR as $(id -un); run as root or as its owner"
  local pid
  pid=$(kafka_running_pid)
  if [[ -n $pid ]]; then
    # Started earlier; still booting if its listener is not up yet.
    wait_until kafka "$pid" tcp_open "$KAFKA_HOST" "$KAFKA_PORT" ||
      die "kafka: running (pid $pid) but not accepting connections; see $KAFKA_LOG_FILE"
  else
    remove_stale_pidfile kafka "$KAFKA_PIDFILE" "$KAFKA_DIR" java
    reap_procs kafka "$KAFKA_DIR" java
    local port
    for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
      tcp_open "$KAFKA_HOST" "$port" &&
        die "kafka: another server already listens on $KAFKA_HOST:$port; set SAGE_KAFKA_PORT / SAGE_KAFKA_CONTROLLER_PORT"
    done
    kafka_write_config
    kafka_format
    log "kafka: starting Apache Kafka $(kafka_version) on $KAFKA_HOST:$KAFKA_PORT"
    local log_offset out_offset
    log_offset=$(file_size "$KAFKA_LOG_FILE")
    out_offset=$(file_size "$KAFKA_OUT")
    kafka_command kafka.Kafka "$KAFKA_DIR/server.properties"
    spawn "$KAFKA_DIR" "$KAFKA_OUT" "${KAFKA_CMD[@]}"
    pid=$SPAWNED_PID
    printf '%s\n' "$pid" >"$KAFKA_PIDFILE"
    if ! wait_until kafka "$pid" kafka_started_since "$log_offset"; then
      log_tail_since "$KAFKA_OUT" "$out_offset"
      log_tail_since "$KAFKA_LOG_FILE" "$log_offset"
      die "kafka: failed to start; see $KAFKA_LOG_FILE and $KAFKA_OUT"
    fi
  fi
  kafka_status
}

kafka_stop() {
  [[ -d $KAFKA_DIR ]] || {
    log "kafka: already stopped"
    return 0
  }
  require_owner kafka "$KAFKA_DIR"
  local pid
  pid=$(kafka_running_pid)
  if [[ -z $pid ]]; then
    remove_stale_pidfile kafka "$KAFKA_PIDFILE" "$KAFKA_DIR" java
    log "kafka: already stopped"
    return 0
  fi
  log "kafka: stopping (pid $pid)"
  terminate kafka "$pid" "$KAFKA_DIR" java
  rm -f "$KAFKA_PIDFILE"
  log "kafka: stopped"
}

kafka_env() {
  printf 'export SAGE_KAFKA_BROKERS=%q\n' "$KAFKA_HOST:$KAFKA_PORT"
}

# ---------------------------------------------------------------------------
# Prometheus (optional, not started by default): Debian's prometheus scraping
# the sample services on loopback and loading Sage's alert rules, the native
# equivalent of docker-compose.yml's `observability` profile. Grafana and
# Jaeger have no Debian package: use the compose profile for those.
# ---------------------------------------------------------------------------

PROM_BIN=${SAGE_PROMETHEUS_BIN:-/usr/bin/prometheus}
PROM_PORT=${SAGE_PROMETHEUS_PORT:-59090}
PROM_HOST=127.0.0.1
PROM_DIR=$SAGE_SERVICES_DIR/prometheus
PROM_PIDFILE=$PROM_DIR/prometheus.pid
PROM_LOG_FILE=$PROM_DIR/prometheus.log
PROM_TARGETS=${SAGE_PROMETHEUS_TARGETS:-order-service=127.0.0.1:3000 payment-service=127.0.0.1:3001 shipping-service=127.0.0.1:3002}
PROM_RULES=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/ops/prometheus/alerts.yml
check_port SAGE_PROMETHEUS_PORT "$PROM_PORT"

prom_installed() { [[ -x $PROM_BIN ]]; }

prom_install() {
  prom_installed && return 0
  apt_install prometheus
  prom_installed || die "prometheus installed but no $PROM_BIN found"
}

prom_running_pid() { daemon_pid "$PROM_PIDFILE" "$PROM_DIR" prometheus; }

prom_ready() { curl -fsS -m 2 -o /dev/null "http://$PROM_HOST:$PROM_PORT/-/ready" 2>/dev/null; }

# One static target per `app=host:port` word of SAGE_PROMETHEUS_TARGETS.
prom_write_config() {
  local target
  {
    printf '# Managed by scripts/services.sh; rewritten on every start.\n'
    printf 'global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n'
    printf 'rule_files:\n  - %s\n' "$PROM_RULES"
    printf 'scrape_configs:\n  - job_name: sage-samples\n    metrics_path: /metrics\n    static_configs:\n'
    for target in $PROM_TARGETS; do
      [[ $target =~ ^[A-Za-z0-9_.-]+=[A-Za-z0-9_.-]+:[0-9]+$ ]] ||
        die "SAGE_PROMETHEUS_TARGETS: '$target' is not app=host:port"
      printf "      - targets: ['%s']\n        labels: { app: %s }\n" "${target#*=}" "${target%%=*}"
    done
  } >"$PROM_DIR/prometheus.yml"
}

prom_status() {
  if ! prom_installed; then
    printf 'prometheus: stopped (not installed)\n'
    return 3
  fi
  can_inspect "$PROM_DIR" || {
    tcp_status prometheus "$PROM_HOST" "$PROM_PORT"
    return
  }
  local pid
  pid=$(prom_running_pid)
  if [[ -z $pid ]]; then
    printf 'prometheus: stopped (data %s)\n' "$PROM_DIR/data"
    return 3
  fi
  if ! prom_ready; then
    printf 'prometheus: running but not ready on %s:%s (pid %s, log %s)\n' \
      "$PROM_HOST" "$PROM_PORT" "$pid" "$PROM_LOG_FILE"
    return 1
  fi
  printf 'prometheus: running (pid %s, http://%s:%s, rules %s, targets %s, log %s)\n' \
    "$pid" "$PROM_HOST" "$PROM_PORT" "$PROM_RULES" "$PROM_TARGETS" "$PROM_LOG_FILE"
}

prom_start() {
  prom_install
  require_owner prometheus "$PROM_DIR"
  ensure_services_dir
  mkdir -p "$PROM_DIR/data"
  [[ -w $PROM_DIR ]] || die "prometheus: cannot write $PROM_DIR as $(id -un); run as root or as its owner"
  local pid log_offset
  pid=$(prom_running_pid)
  if [[ -z $pid ]]; then
    remove_stale_pidfile prometheus "$PROM_PIDFILE" "$PROM_DIR" prometheus
    tcp_open "$PROM_HOST" "$PROM_PORT" &&
      die "prometheus: another server already listens on $PROM_HOST:$PROM_PORT; set SAGE_PROMETHEUS_PORT"
    prom_write_config
    log "prometheus: starting on $PROM_HOST:$PROM_PORT"
    log_offset=$(file_size "$PROM_LOG_FILE")
    spawn "$PROM_DIR" "$PROM_LOG_FILE" "$PROM_BIN" "--config.file=$PROM_DIR/prometheus.yml" \
      "--storage.tsdb.path=$PROM_DIR/data" "--web.listen-address=$PROM_HOST:$PROM_PORT"
    pid=$SPAWNED_PID
    printf '%s\n' "$pid" >"$PROM_PIDFILE"
  fi
  wait_until prometheus "$pid" prom_ready || {
    log_tail_since "$PROM_LOG_FILE" "${log_offset:-0}"
    die "prometheus: failed to start; see $PROM_LOG_FILE"
  }
  prom_status
}

prom_stop() {
  [[ -d $PROM_DIR ]] || {
    log "prometheus: already stopped"
    return 0
  }
  require_owner prometheus "$PROM_DIR"
  local pid
  pid=$(prom_running_pid)
  if [[ -z $pid ]]; then
    remove_stale_pidfile prometheus "$PROM_PIDFILE" "$PROM_DIR" prometheus
    log "prometheus: already stopped"
    return 0
  fi
  log "prometheus: stopping (pid $pid)"
  terminate prometheus "$pid" "$PROM_DIR" prometheus
  rm -f "$PROM_PIDFILE"
  log "prometheus: stopped"
}

prom_env() {
  printf 'export SAGE_PROMETHEUS_URL=%q\n' "http://$PROM_HOST:$PROM_PORT"
}

# ---------------------------------------------------------------------------
# Dispatcher
# ---------------------------------------------------------------------------

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

service_prefix() {
  case $1 in
  postgres | postgresql | pg) printf 'pg\n' ;;
  rabbitmq | rabbit | rmq) printf 'rmq\n' ;;
  nats) printf 'nats\n' ;;
  kafka) printf 'kafka\n' ;;
  prometheus | prom) printf 'prom\n' ;;
  *) die "unknown service '$1' (known: ${SERVICES[*]} ${OPTIONAL_SERVICES[*]})" ;;
  esac
}

# Serialise commands that change state, e.g. two test runs starting at once.
take_lock() {
  ensure_services_dir
  { exec 9>>"$SAGE_SERVICES_DIR/.lock"; } 2>/dev/null ||
    die "cannot open $SAGE_SERVICES_DIR/.lock as $(id -un); run as root or as its owner"
  flock -w "$((SAGE_SERVICES_TIMEOUT * 2))" 9 || die "timed out waiting for $SAGE_SERVICES_DIR/.lock"
}

main() {
  local cmd=${1:-}
  [[ -n $cmd ]] || {
    usage >&2
    exit 2
  }
  shift
  local services=("$@") prefixes=() s
  ((${#services[@]})) || services=("${SERVICES[@]}")
  for s in "${services[@]}"; do
    prefixes+=("$(service_prefix "$s")")
  done

  local p rc=0 status
  case $cmd in
  start | install)
    take_lock
    for p in "${prefixes[@]}"; do "${p}_$cmd"; done
    ;;
  stop)
    take_lock
    for ((s = ${#prefixes[@]} - 1; s >= 0; s--)); do "${prefixes[s]}_stop"; done
    ;;
  restart)
    take_lock
    for ((s = ${#prefixes[@]} - 1; s >= 0; s--)); do "${prefixes[s]}_stop"; done
    for p in "${prefixes[@]}"; do "${p}_start"; done
    ;;
  status)
    for p in "${prefixes[@]}"; do
      status=0
      "${p}_status" || status=$?
      ((status > rc)) && rc=$status
    done
    return "$rc"
    ;;
  env)
    for p in "${prefixes[@]}"; do "${p}_env"; done
    ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
  esac
}

main "$@"
