#!/usr/bin/env bash
# sshca's benchmark harness: starts the servers, builds, and prints one table of medians and ratios
# (see tests/src/bin/bench.rs for what is measured and the targets).
# Usage: scripts/bench.sh           full run, release build (what the closing notes quote)
#        scripts/bench.sh --quick   smoke run on the dev build (CI runs this; its times mean little)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/servers.sh start
eval "$(scripts/servers.sh env)"
TARGET=${CARGO_TARGET_DIR:-target}
if [ "${1:-}" = "--quick" ]; then
  cargo build --locked --workspace --bins
  exec "$TARGET/debug/bench" --quick
fi
cargo build --locked --release --workspace --bins
exec "$TARGET/release/bench"
