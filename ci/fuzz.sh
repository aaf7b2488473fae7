#!/usr/bin/env bash
# Runs each cargo-fuzz target for a fixed time and fails on any crash.
# Usage: ci/fuzz.sh [SECONDS_PER_TARGET]   (default: $FUZZ_SECONDS or 30)
#
# Needs the nightly toolchain (sanitizers) and cargo-fuzz; installs
# cargo-fuzz when it is missing. Targets live in fuzz/fuzz_targets:
#   from_env_parser     the hand-off parser against a reference, and from_env
#   operation_sequence  bytes as pipe operations, checked against the model
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-30}}

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd fuzz
mkdir -p target # for the logs, before the first build creates it
status=0
for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    start=$(date +%s)
    if cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"target/$target.log" 2>&1; then
        runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "target/$target.log" | grep -oE '[0-9]+$' || echo '?')
        echo "fuzz: $target: ok, $runs runs in $(($(date +%s) - start)) s, no crash"
    else
        echo "fuzz: $target: FAILED (crash or build error); the log ends:" >&2
        tail -40 "target/$target.log" >&2 || true
        status=1
    fi
done
exit $status
