#!/usr/bin/env bash
# Makes sure redis-server is on PATH for the integration tests, installing it
# with the system's package manager where it is missing.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi

echo "redis-server not found: installing it for the tests" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "error: redis-server is missing and I am not root (no sudo): install redis-server (>= 7) and run again" >&2
    exit 1
  fi
fi

if command -v apt-get >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
elif command -v dnf >/dev/null 2>&1; then
  $sudo dnf install -y redis
elif command -v apk >/dev/null 2>&1; then
  $sudo apk add --no-cache redis
elif command -v brew >/dev/null 2>&1; then
  brew install redis
else
  echo "error: redis-server is missing and no known package manager (apt-get, dnf, apk, brew) was found: install redis-server (>= 7) and run again" >&2
  exit 1
fi

# Debian starts a system service on install; the tests never use it (they
# start their own servers on free ports), so leave it be.
command -v redis-server >/dev/null 2>&1 || { echo "error: redis-server still not on PATH after install" >&2; exit 1; }
echo "installed $(redis-server --version | cut -d' ' -f1-3)" >&2
