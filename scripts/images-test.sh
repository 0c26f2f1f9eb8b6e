#!/usr/bin/env bash
# Builds Sage's images (deploy/images/Dockerfile) with podman and runs each one the way Kubernetes
# runs it with the chart's security context, on loopback, without a container runtime (podman run
# cannot start containers here: crun setrlimit):
#
#   podman create + podman export  → the image's filesystem, extracted;
#   its config (podman image inspect) → user, command, working directory, environment, stop signal,
#     healthcheck, all checked, then used to start it;
#   unshare --mount --pid --fork    → the app is PID 1 of its own PID namespace (as in a pod: a
#     SIGTERM it does not handle is ignored, so "exits within the grace period" proves it drains),
#     the root filesystem is a read-only bind mount with a tmpfs on /tmp (readOnlyRootFilesystem),
#     /proc and /dev mounted;
#   chroot --userspec=10001:10001   → the image's non-root user.
#
# Each image gets a fresh database on the shared PostgreSQL (scripts/services.sh, 127.0.0.1:54329)
# and the in-memory broker (memory://; SAGE_IMAGES_BROKER_URL to use a real one). Checked: the
# image config (non-root numeric user, SIGTERM, HEALTHCHECK, no entrypoint), no dev dependency, no
# npm, nothing owned by the app user; /health/live and /health/ready answer 200; the image's own
# HEALTHCHECK command passes; `sage migrate` then `sage-relay` in the relay image (as the chart's
# hook and Deployment run them); SIGTERM → exit 0 within the grace period.
#
#   scripts/images-test.sh          relay, order-service, payment-service
#   scripts/images-test.sh --quick  relay and order-service (CI)
#
# Needs root, podman, debootstrap (apt-get install -y podman buildah debootstrap), psql, and
# PostgreSQL: bash scripts/services.sh start postgres. Slow parts are cached: the Debian base
# (/var/tmp/sage-tools, scripts/images-base.sh) and buildah's layers.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

TARGETS=(relay order-service payment-service)
[[ "${1:-}" == --quick ]] && TARGETS=(relay order-service)
TAG="${SAGE_IMAGE_TAG:-dev}"
GRACE_S="${SAGE_IMAGES_GRACE_S:-30}" # the chart's terminationGracePeriodSeconds
BROKER_URL="${SAGE_IMAGES_BROKER_URL:-memory://}"
START_S=$SECONDS

die() {
  echo "images-test: FAIL: $*" >&2
  exit 1
}
ok() { echo "images-test: ok: $*"; }

[[ $(id -u) == 0 ]] || die "needs root (unshare, mount, chroot)"
eval "$(bash scripts/services.sh env postgres)"
pg_isready -q -h "$PGHOST" -p "$PGPORT" || die "PostgreSQL is not up: bash scripts/services.sh start postgres"

WORK="$(mktemp -d /var/tmp/sage-images-test.XXXXXX)"
DATABASES=()
CONTAINERS=()
RUNNING=()
cleanup() {
  local pid
  for pid in "${RUNNING[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for c in "${CONTAINERS[@]}"; do podman rm -f "$c" >/dev/null 2>&1 || true; done
  for db in "${DATABASES[@]}"; do
    psql -q -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- build ---------------------------------------------------------------------------------------
build_start=$SECONDS
bash scripts/images-build.sh "${TARGETS[@]}" >"$WORK/build.log" 2>&1 || {
  tail -40 "$WORK/build.log" >&2
  die "build failed (log above)"
}
ok "built ${TARGETS[*]} in $((SECONDS - build_start)) s"

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# config IMAGE FIELD: one field of the image config as text (JSON for lists).
config() {
  podman image inspect "$1" | node -e '
    const [img] = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const v = img.Config[process.argv[1]] ?? img[process.argv[1]]; // Healthcheck: top level
    console.log(typeof v === "string" ? v : JSON.stringify(v ?? null));
  ' "$2"
}

# sandbox ROOTFS WORKDIR ENVFILE CMD...: runs CMD from the image's filesystem as 10001:10001, PID 1
# of a new PID namespace, read-only root, tmpfs /tmp; environment exactly ENVFILE's lines. In the
# background; sets SANDBOX_PID (the unshare process: it exits with the app).
sandbox() {
  local rootfs="$1" workdir="$2" envfile="$3"
  shift 3
  # shellcheck disable=SC2016 # expanded by the inner bash
  unshare --mount --pid --fork --propagation private \
    bash -c '
      set -e
      r="$1" wd="$2" envfile="$3"
      shift 3
      mount --bind "$r" "$r"
      mount -t proc proc "$r/proc"
      mount --bind /dev "$r/dev"
      mount -t tmpfs -o mode=1777,size=64m tmpfs "$r/tmp"
      mount -o remount,bind,ro "$r"
      mapfile -t envs <"$envfile"
      exec env -i "${envs[@]}" chroot --userspec=10001:10001 "$r" /usr/bin/env --chdir="$wd" "$@"
    ' sandbox "$rootfs" "$workdir" "$envfile" "$@" &
  SANDBOX_PID=$!
  RUNNING+=("$SANDBOX_PID")
}

# alive PID: the process exists and has not exited (a child not yet waited for is a zombie).
alive() { [[ -r /proc/$1/stat ]] && [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]]; }

# probe PORT PATH: waits up to 60 s for 200.
probe() {
  local url="http://127.0.0.1:$1$2" deadline=$((SECONDS + 60)) code=
  while ((SECONDS < deadline)); do
    alive "$SANDBOX_PID" || return 1
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)"
    [[ "$code" == 200 ]] && return 0
    sleep 0.5
  done
  echo "images-test: $url answered ${code:-nothing}" >&2
  return 1
}

for target in "${TARGETS[@]}"; do
  image="localhost/sage/$target:$TAG"
  t0=$SECONDS
  echo "== $target"

  # -- the image config
  user="$(config "$image" User)"
  [[ "$user" == 10001:10001 ]] || die "$target: User is '$user', expected 10001:10001"
  stop="$(config "$image" StopSignal)"
  [[ "$stop" == SIGTERM ]] || die "$target: StopSignal is '$stop', expected SIGTERM"
  health="$(config "$image" Healthcheck)"
  [[ "$health" == *'/app/healthcheck.js'* ]] || die "$target: HEALTHCHECK is $health"
  entry="$(config "$image" Entrypoint)"
  [[ "$entry" == null || "$entry" == '[]' ]] || die "$target: Entrypoint is $entry, expected none"
  workdir="$(config "$image" WorkingDir)"
  mapfile -t cmd < <(config "$image" Cmd | node -e 'for (const a of JSON.parse(require("fs").readFileSync(0, "utf8"))) console.log(a)')
  config "$image" Env | node -e 'for (const e of JSON.parse(require("fs").readFileSync(0, "utf8")) ?? []) console.log(e)' >"$WORK/$target.image-env"
  grep -qx 'HOST=0.0.0.0' "$WORK/$target.image-env" || die "$target: HOST=0.0.0.0 not in the image's environment"
  ok "$target config: user $user, stop signal $stop, healthcheck, cmd ${cmd[*]} in $workdir"

  # -- the filesystem
  c="sage-images-test-$target-$$"
  # (podman's stderr to a log: without systemd it reports failing to remove a healthcheck timer.)
  podman create --name "$c" "$image" >/dev/null 2>>"$WORK/podman.log" || {
    cat "$WORK/podman.log" >&2
    die "$target: podman create failed"
  }
  CONTAINERS+=("$c")
  rootfs="$WORK/$target/rootfs"
  mkdir -p "$rootfs"
  chmod 0755 "$rootfs" # its / as the app user sees it
  podman export "$c" | tar -C "$rootfs" --numeric-owner -xf -
  podman rm "$c" >/dev/null 2>>"$WORK/podman.log"
  mkdir -p "$rootfs/proc" "$rootfs/dev" "$rootfs/tmp"
  for dev in typescript jest ts-node @nestjs/cli eslint prettier @microsoft/api-extractor; do
    [[ ! -e "$rootfs/app/node_modules/$dev" ]] || die "$target: dev dependency $dev is in the image"
  done
  [[ ! -e "$rootfs/usr/lib/node_modules/npm" ]] || die "$target: npm is in the runtime image"
  owned="$(find "$rootfs" -xdev -uid 10001 | head -3)"
  [[ -z "$owned" ]] || die "$target: files owned by the app user (the image must be read-only to it): $owned"
  ok "$target filesystem: $(du -sm "$rootfs" | cut -f1) MB, no dev dependency, no npm, root-owned"

  # -- its database
  db="sage_images_${target//-/_}_$$"
  psql -q -d postgres -c "CREATE DATABASE \"$db\"" >/dev/null
  DATABASES+=("$db")
  url="postgres://$PGUSER:$PGPASSWORD@127.0.0.1:$PGPORT/$db"
  port="$(free_port)"
  envfile="$WORK/$target.env"
  {
    # PATH: the image's, else the default a container runtime sets.
    grep -q '^PATH=' "$WORK/$target.image-env" || echo 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    grep -v -e '^HOST=' -e '^PORT=' -e '^HEALTH_PORT=' "$WORK/$target.image-env"
    echo "HOST=127.0.0.1" # loopback only here; the image's 0.0.0.0 is checked above
    echo "DATABASE_URL=$url"
    echo "SAGE_BROKER_URL=$BROKER_URL"
    if [[ $target == relay ]]; then
      echo "HEALTH_PORT=$port"
      echo "SAGE_RUN_MIGRATIONS=false"
    else
      echo "PORT=$port"
    fi
  } >"$envfile"

  if [[ $target == relay ]]; then
    # The chart's migration hook: `sage migrate` from the relay image, then the relay without DDL.
    sandbox "$rootfs" "$workdir" "$envfile" sage migrate
    wait "$SANDBOX_PID" || die "relay: sage migrate failed"
    RUNNING=()
    ok "relay: sage migrate (the chart's hook command)"
  fi

  log="$WORK/$target.log"
  sandbox "$rootfs" "$workdir" "$envfile" "${cmd[@]}" >"$log" 2>&1
  started=$SECONDS
  probe "$port" /health/live || {
    tail -30 "$log" >&2
    die "$target: /health/live"
  }
  probe "$port" /health/ready || {
    tail -30 "$log" >&2
    die "$target: /health/ready"
  }
  ok "$target: /health/live and /health/ready 200 after $((SECONDS - started)) s (read-only root, uid 10001, PID 1)"

  # The image's HEALTHCHECK, run in the image as the image would (same user, environment).
  # shellcheck disable=SC2016 # JavaScript, not shell
  mapfile -t health_cmd < <(echo "$health" | node -e '
    const { Test } = JSON.parse(require("fs").readFileSync(0, "utf8"));
    if (Test[0] !== "CMD") throw new Error(`HEALTHCHECK ${Test[0]}: expected the exec form (CMD [...])`);
    for (const a of Test.slice(1)) console.log(a);
  ')
  sandbox "$rootfs" "$workdir" "$envfile" "${health_cmd[@]}" >"$WORK/$target.hc.log" 2>&1
  hc_pid=$SANDBOX_PID
  wait "$hc_pid" || {
    cat "$WORK/$target.hc.log" >&2
    die "$target: HEALTHCHECK command failed"
  }
  ok "$target: HEALTHCHECK command passes"

  # SIGTERM to the app (PID 1 in its namespace: the child of unshare).
  app_pid=""
  for pid in "${RUNNING[@]}"; do
    [[ $pid == "$hc_pid" ]] && continue
    app_pid="$(cat "/proc/$pid/task/$pid/children" 2>/dev/null || pgrep -P "$pid")"
    app_pid="${app_pid%% *}"
    unshare_pid=$pid
  done
  [[ -n "$app_pid" ]] || die "$target: app process not found"
  term_at=$SECONDS
  kill -TERM "$app_pid"
  deadline=$((SECONDS + GRACE_S))
  while alive "$unshare_pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$unshare_pid"; then
    kill -KILL "$app_pid" 2>/dev/null || true
    tail -20 "$log" >&2
    die "$target: still running $GRACE_S s after SIGTERM (the grace period)"
  fi
  status=0
  wait "$unshare_pid" || status=$?
  took=$((SECONDS - term_at))
  RUNNING=()
  if ((status != 0)); then
    tail -20 "$log" >&2
    die "$target: after SIGTERM exited with status $status after $took s (grace $GRACE_S s)"
  fi
  ok "$target: SIGTERM → exit 0 in $took s (grace $GRACE_S s)"
  echo "images-test: $target done in $((SECONDS - t0)) s"
done

echo "images-test: all ok (${TARGETS[*]}) in $((SECONDS - START_S)) s"
