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
#   install  install the binaries from Debian packages if missing (needs root)
#   env      print `export ...` lines: eval "$(scripts/services.sh env)"
#
# Services default to all known ones: postgres.
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
set -euo pipefail

readonly SERVICES=(postgres)

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
  pg_ensure_role_and_db
  pg_status
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
# Dispatcher
# ---------------------------------------------------------------------------

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

service_prefix() {
  case $1 in
  postgres | postgresql | pg) printf 'pg\n' ;;
  *) die "unknown service '$1' (known: ${SERVICES[*]})" ;;
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
