#!/usr/bin/env bash
# Quick start, step one: builds phosphor (installing what the build needs)
# and runs it all-in-one with demo traffic. Extra arguments go to
# `phosphor serve`, e.g. scripts/run.sh --data-dir /tmp/phosphor.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
phosphor_need_debs
cargo build --release --bin phosphor
exec "${CARGO_TARGET_DIR:-target}/release/phosphor" serve --demo "$@"
