#!/usr/bin/env bash
# Fuzzes sshca with cargo fuzz (libFuzzer + AddressSanitizer) for a fixed budget per target:
#   request      the sign_key request parser and validator (JSON → checks → policy plan)
#   certificate  get_key's certificate parsing and verification
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET=60] [TARGET…]
# Seeds come from fuzz/regressions/<target>/; a crash is copied there, so that
# tests/tests/fuzz_regressions.rs replays it from then on, and the script fails.
# The toolchain is stable: RUSTC_BOOTSTRAP=1 lets cargo fuzz pass its -Z sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request certificate)
tools=${SSHCA_SERVERS_HOME:-/tmp/sshca-servers}/cargo-fuzz
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  cargo install --locked --quiet --root "$tools" cargo-fuzz@0.13.2
fi
export PATH="$tools/bin:$PATH" RUSTC_BOOTSTRAP=1
status=0
for target in "${targets[@]}"; do
  work=$(mktemp -d)
  cp fuzz/regressions/"$target"/* "$work"/
  echo "== fuzzing $target for ${seconds}s"
  if ! (cd fuzz && cargo fuzz run "$target" "$work" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
        | grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|==|SUMMARY|Done)' ); then
    status=1
  fi
  for crash in fuzz/artifacts/"$target"/crash-* fuzz/artifacts/"$target"/oom-* fuzz/artifacts/"$target"/timeout-*; do
    [ -e "$crash" ] || continue
    echo "!! $target: $crash kept as fuzz/regressions/$target/$(basename "$crash")"
    cp "$crash" fuzz/regressions/"$target"/
    status=1
  done
  rm -rf "$work"
done
exit $status
