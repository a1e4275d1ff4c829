#!/usr/bin/env bash
# The test command: installs and starts the real servers the tests need (LocalStack, SeaweedFS,
# an old MinIO, moto, OpenSSH), checks formatting and lints, builds everything, and runs every
# test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/servers.sh start
eval "$(scripts/servers.sh env)"
# one formatting style and no lint warnings, before anything is built for the tests
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- --test-threads "${SSHCA_TEST_THREADS:-4}"
# The benchmark harness's smoke run: every measurement path works (its times are not judged here).
target/debug/bench --quick
