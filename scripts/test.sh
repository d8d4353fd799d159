#!/usr/bin/env bash
# Quick start, step two: the whole test suite. Installs what it needs: the
# build's Debian packages, the real third-party clients (the OpenTelemetry
# Python SDK from PyPI) in a virtual environment, and for the browser tests
# Debian's Chromium and playwright-core from npm.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
phosphor_need_debs test

venv="${PHOSPHOR_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/phosphor/venv}"
req=tests/python/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.txt"; then
  echo "installing the real-client test dependencies into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/requirements.txt"
fi
export PHOSPHOR_TEST_PYTHON="$venv/bin/python"

# playwright-core for the browser tests (it drives Debian's Chromium; it
# downloads no browser of its own).
browser=tests/browser
if [ ! -d "$browser/node_modules/playwright-core" ] || ! cmp -s "$browser/package-lock.json" "$browser/node_modules/.phosphor-lock"; then
  echo "installing the browser test dependencies into $browser/node_modules" >&2
  (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$browser/package-lock.json" "$browser/node_modules/.phosphor-lock"
fi

cargo test --workspace --all-targets "$@"
