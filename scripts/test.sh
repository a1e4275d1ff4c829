#!/usr/bin/env bash
# The test command: installs and starts the real servers the tests need (LocalStack, SeaweedFS,
# an old MinIO, moto, OpenSSH), checks formatting and lints, builds everything, and runs every
# test, with the packages scripts/package.sh makes installed as a user would. `.ci/run` calls
# exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
# the target scripts/package.sh builds for (cargo-lambda names it), so packaging reuses this build
export CARGO_BUILD_TARGET=x86_64-unknown-linux-gnu
scripts/servers.sh start
eval "$(scripts/servers.sh env)"
# one formatting style and no lint warnings, before anything is built for the tests
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --all-targets --locked
# every artifact, from the dev build just made; tests/tests/packages.rs installs and checks them
export SSHCA_DIST=$PWD/target/dist
scripts/package.sh --profile dev --out "$SSHCA_DIST"
cargo test --workspace --locked -- --test-threads "${SSHCA_TEST_THREADS:-4}"
# The benchmark harness's smoke run: every measurement path works (its times are not judged here).
target/$CARGO_BUILD_TARGET/debug/bench --quick
