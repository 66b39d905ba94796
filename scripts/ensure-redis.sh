#!/usr/bin/env bash
# Makes sure redis-server and redis-sentinel are on PATH for the integration
# tests (the Sentinel failover tests run three redis-sentinel processes),
# installing them with the system's package manager where missing.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 && command -v redis-sentinel >/dev/null 2>&1; then
  exit 0
fi

echo "redis-server or redis-sentinel not found: installing them for the tests" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "error: redis-server is missing and I am not root (no sudo): install redis-server (>= 7) and run again" >&2
    exit 1
  fi
fi

if command -v apt-get >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-sentinel >/dev/null
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
# Debian's redis-sentinel package starts a sentinel service too; the tests
# start their own on free ports.
command -v redis-sentinel >/dev/null 2>&1 || { echo "error: redis-sentinel still not on PATH after install (the Sentinel tests need it)" >&2; exit 1; }
echo "installed $(redis-server --version | cut -d' ' -f1-3)" >&2
