#!/usr/bin/env bash
# Runs every example the way the README tells a newcomer to, and checks that
# each one says and exits what it should. Usage: ci/examples.sh
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
# expect NAME EXIT_CODE NEEDLE -- ARGS...: run the example, check its exit
# code and that its output contains NEEDLE.
expect() {
    local name=$1 want=$2 needle=$3
    shift 4
    local out code=0
    out=$(timeout 60 cargo run -q --example "$name" -- "$@" 2>&1) || code=$?
    if [[ $code -ne $want ]] || ! grep -qF -- "$needle" <<<"$out"; then
        echo "FAIL example $name $*: exit $code (want $want), output:"
        # shellcheck disable=SC2001  # indents every line; ${out//} cannot anchor
        sed 's/^/    /' <<<"$out"
        fail=1
    else
        echo "ok   example $name $* -> exit $code: $(grep -F -- "$needle" <<<"$out" | head -1)"
    fi
}

cargo build -q --examples
expect daemon_wait 0 "is ready; exiting 0" --
expect daemon_wait 1 "reported that initialisation failed" -- --fail
expect daemon_wait 2 "died before it was ready" -- --crash
expect daemon_wait 64 "usage:" -- --bogus
expect self_pipe 0 "got SIGTERM, drained" -- --self-test
expect self_pipe 64 "usage:" -- --bogus
expect supervise 0 "is ready" --
expect supervise 0 "is ready" -- s6
expect supervise 1 "failed to start" -- fail
expect supervise 2 "died before it was ready (exit status: 9)" -- die
expect supervise 3 "timed out after 300 ms; killed it" -- hang --timeout-ms 300
expect supervise 64 "usage:" -- --bogus

exit $fail
