#!/usr/bin/env bash
# Makes sure a Chromium is on PATH for the console's browser tests
# (systest/browser/ui_test.go), installing Debian's chromium package where
# it is missing. Unlike redis-server it is not required: where it cannot be
# installed, this says so and the browser tests are skipped with a
# message (go test -v shows "SKIPPED: no Chromium"), never passed.
set -uo pipefail

for b in chromium chromium-browser google-chrome headless-shell; do
  if command -v "$b" >/dev/null 2>&1; then exit 0; fi
done

warn() { echo "warning: $*; the console's browser tests will be SKIPPED" >&2; exit 0; }

echo "chromium not found: installing it for the console's browser tests" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else
    warn "chromium is missing and I cannot install it (not root, no passwordless sudo): install chromium"
  fi
fi
if command -v apt-get >/dev/null 2>&1; then
  $sudo apt-get update -qq || warn "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null || warn "apt-get install chromium failed"
elif command -v dnf >/dev/null 2>&1; then
  $sudo dnf install -y chromium || warn "dnf install chromium failed"
elif command -v apk >/dev/null 2>&1; then
  $sudo apk add --no-cache chromium || warn "apk add chromium failed"
else
  warn "no known package manager (apt-get, dnf, apk) to install chromium with"
fi
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || warn "chromium still not on PATH after install"
echo "installed $(chromium --version 2>/dev/null || chromium-browser --version)" >&2
