#!/usr/bin/env bash
# Chromium for the operator console's browser test (test/console/console-browser.e2e-spec.ts, driven
# by playwright-core). Uses Debian's package: no browser download from a CDN. Idempotent: does
# nothing when a Chromium is already there. Prints the executable's path.
#
#   bash scripts/chromium.sh            install if missing (apt-get, needs root)
#   CHROMIUM_PATH=/path/to/chrome ...   the test uses this executable instead
set -euo pipefail

for candidate in "${CHROMIUM_PATH:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
  if [[ -n "$candidate" && -x "$candidate" ]]; then
    echo "$candidate"
    exit 0
  fi
done

if ! command -v apt-get >/dev/null; then
  echo "chromium.sh: no Chromium found and no apt-get to install one; set CHROMIUM_PATH" >&2
  exit 1
fi
SUDO=''
if [[ "$(id -u)" != 0 ]]; then SUDO='sudo'; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
echo /usr/bin/chromium
