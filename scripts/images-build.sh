#!/usr/bin/env bash
# Builds Sage's images (deploy/images/Dockerfile) with podman: order-service, payment-service and
# relay, tagged localhost/sage/<name>:${SAGE_IMAGE_TAG:-dev}.
#
#   scripts/images-build.sh [target...]     default: relay order-service payment-service
#
# Base images: BASE and BUILD_BASE from the environment, else the local Debian + Node 20 ones
# scripts/images-base.sh makes (no registry needed). The build runs `npm ci` against the npm
# registry; buildah's layer cache and the npm cache mount make a rebuild with an unchanged lockfile
# skip it. Isolation: chroot (works where podman's OCI runtime cannot start containers).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(relay order-service payment-service)
TAG="${SAGE_IMAGE_TAG:-dev}"

if [[ -z "${BASE:-}" ]]; then
  eval "$(bash scripts/images-base.sh)"
fi
BUILD_BASE="${BUILD_BASE:-$BASE}"
# A TLS-intercepting proxy's CA (the host's NODE_EXTRA_CA_CERTS) reaches npm ci as a build secret.
SECRET=()
if [[ -n "${NODE_EXTRA_CA_CERTS:-}" && -f "$NODE_EXTRA_CA_CERTS" ]]; then
  SECRET=(--secret "id=npm-ca,src=$NODE_EXTRA_CA_CERTS")
fi

for target in "${TARGETS[@]}"; do
  case "$target" in
    relay | order-service | payment-service) ;;
    *)
      echo "images-build: unknown target '$target' (relay, order-service, payment-service)" >&2
      exit 2
      ;;
  esac
  echo "== build $target (BASE=$BASE BUILD_BASE=$BUILD_BASE)" >&2
  # --format docker: OCI image configs have no HEALTHCHECK; the Docker format keeps it.
  podman build --isolation=chroot --layers --format docker \
    --file deploy/images/Dockerfile --ignorefile deploy/images/Dockerfile.dockerignore \
    --build-arg "BASE=$BASE" --build-arg "BUILD_BASE=$BUILD_BASE" \
    "${SECRET[@]}" --target "$target" --tag "localhost/sage/$target:$TAG" .
done
