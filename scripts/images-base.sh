#!/usr/bin/env bash
# Makes the base images deploy/images/Dockerfile is built from when no registry is reachable:
# Debian bookworm (debootstrap --variant=minbase, from the apt mirror this machine uses) plus this
# machine's Node 20 binary, imported into podman as two images:
#
#   localhost/sage-base:node<version>        runtime base (BASE): Debian minbase + /usr/bin/node
#   localhost/sage-build-base:node<version>  build base (BUILD_BASE): the same plus npm
#
# Prints `BASE=…` and `BUILD_BASE=…` lines (eval them). Cached: the debootstrap tree in
# $SAGE_TOOLS_DIR (default /var/tmp/sage-tools) and the imported images (rebuilt only when the node
# version changes or with --force). Needs root; installs Debian's podman, buildah and debootstrap
# when missing.
set -euo pipefail

TOOLS="${SAGE_TOOLS_DIR:-/var/tmp/sage-tools}"
FORCE=0
[[ "${1:-}" == --force ]] && FORCE=1

die() {
  echo "images-base: $*" >&2
  exit 1
}
[[ $(id -u) == 0 ]] || die "debootstrap and chroot need root"
if ! command -v debootstrap >/dev/null || ! command -v podman >/dev/null; then
  echo "images-base: installing podman, buildah, debootstrap (Debian packages)" >&2
  command -v apt-get >/dev/null || die "podman and debootstrap are missing and there is no apt-get"
  apt-get update -q >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman buildah debootstrap >/dev/null ||
    die "apt-get install -y podman buildah debootstrap failed"
fi

NODE_BIN="$(readlink -f "$(command -v node)")"
NODE_VERSION="$("$NODE_BIN" --version)"
[[ "$NODE_VERSION" == v20.* ]] || die "node on PATH is $NODE_VERSION; the images need Node 20"
NPM_DIR="$(dirname "$NODE_BIN")/../lib/node_modules/npm"
[[ -f "$NPM_DIR/bin/npm-cli.js" ]] || die "npm not found next to $NODE_BIN (looked in $NPM_DIR)"
NPM_DIR="$(cd "$NPM_DIR" && pwd)"

TAG="node${NODE_VERSION#v}"
BASE="localhost/sage-base:$TAG"
BUILD_BASE="localhost/sage-build-base:$TAG"

if ((FORCE == 0)) && podman image exists "$BASE" && podman image exists "$BUILD_BASE"; then
  echo "BASE=$BASE"
  echo "BUILD_BASE=$BUILD_BASE"
  exit 0
fi

# The apt mirror this machine uses (deb822 URIs: or one-line `deb` entries), else Debian's.
mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
  2>/dev/null | sed -nE '/security/d; s/^URIs:[[:space:]]*//p; s/^deb (\[[^]]*\] )?//p' |
  awk 'NR == 1 {print $1}')" || true
mirror="${mirror:-http://deb.debian.org/debian}"

ROOTFS="$TOOLS/bookworm-minbase"
mkdir -p "$TOOLS"
if [[ ! -x "$ROOTFS/bin/sh" ]]; then
  echo "images-base: debootstrap bookworm from $mirror (about 30 s to a few minutes)" >&2
  rm -rf "$ROOTFS.tmp"
  debootstrap --variant=minbase bookworm "$ROOTFS.tmp" "$mirror" >"$TOOLS/debootstrap.log" 2>&1 ||
    die "debootstrap failed, see $TOOLS/debootstrap.log"
  # What an image does not need: package caches and lists, docs, man pages, locales.
  rm -rf "$ROOTFS.tmp"/var/cache/apt/* "$ROOTFS.tmp"/var/lib/apt/lists/* \
    "$ROOTFS.tmp"/usr/share/doc/* "$ROOTFS.tmp"/usr/share/man/* "$ROOTFS.tmp"/usr/share/locale/*
  mv "$ROOTFS.tmp" "$ROOTFS"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sage-images-base.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cp -a "$ROOTFS" "$WORK/rootfs"
install -m 0755 "$NODE_BIN" "$WORK/rootfs/usr/bin/node"
# The binary is dynamically linked against glibc: it must run on the base's own libraries.
got="$(chroot "$WORK/rootfs" /usr/bin/node -e 'process.stdout.write(process.version)')" ||
  die "$NODE_BIN does not run in the bookworm tree (glibc or libstdc++ too old?)"
[[ "$got" == "$NODE_VERSION" ]] || die "node in the tree reports $got, expected $NODE_VERSION"

tar -C "$WORK/rootfs" --numeric-owner -cf - . |
  podman import --message "Debian bookworm minbase + node $NODE_VERSION" - "$BASE" >/dev/null

mkdir -p "$WORK/rootfs/usr/lib/node_modules"
cp -a "$NPM_DIR" "$WORK/rootfs/usr/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$WORK/rootfs/usr/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$WORK/rootfs/usr/bin/npx"
chroot "$WORK/rootfs" /usr/bin/npm --version >/dev/null || die "npm does not run in the bookworm tree"
tar -C "$WORK/rootfs" --numeric-owner -cf - . |
  podman import --message "Debian bookworm minbase + node $NODE_VERSION + npm" - "$BUILD_BASE" >/dev/null

echo "BASE=$BASE"
echo "BUILD_BASE=$BUILD_BASE"
