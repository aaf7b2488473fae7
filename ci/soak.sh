#!/usr/bin/env bash
# Runs the stress and fault tests scaled up, prints the reliability table,
# and writes it into docs/reliability.md (between its reliability markers).
# Usage: ci/soak.sh [SCALE]   (default: $TOKENPIPE_SOAK_SCALE or 10)
#
# SCALE multiplies the load of the integration tests (reliability_under_load,
# fd_hygiene, daemon_fault_injection): tokens, signals, kills and cycles.
# The --lib daemon rows of the table do not read it: they run the same
# fixed load at any SCALE. CI runs the same tests at scale 1 as part of
# `cargo test`; this is the long run.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
scale=${1:-${TOKENPIPE_SOAK_SCALE:-10}}
out=docs/reliability.md
log=$(mktemp)
trap 'rm -f "$log" "$log.reports"' EXIT

start=$(date +%s)
# --release: the load, not the debug build, should set the pace.
# --test-threads=1: each test has the machine; the fd counts stay exact.
if ! TOKENPIPE_SOAK_SCALE=$scale cargo test --release --all-features --lib \
    --test reliability_under_load --test fd_hygiene --test daemon_fault_injection \
    -- --nocapture --test-threads=1 >"$log" 2>&1; then
    cat "$log" >&2
    echo "soak: FAILED at scale $scale" >&2
    exit 1
fi
took=$(($(date +%s) - start))
# With --nocapture a report may share a line with the harness's "test ...".
grep -o 'REPORT|.*' "$log" >"$log.reports" || true
reports=$(wc -l <"$log.reports")
if [[ $reports -lt 11 ]]; then
    cat "$log" >&2
    echo "soak: expected 11 reports, got $reports" >&2
    exit 1
fi

table="$(
    echo "Last soak run: $(date -u +%Y-%m-%d), scale $scale, $took s, $(uname -srm), $(nproc) cores."
    echo
    echo "| test | load | errors | lost | duplicated | leaked fds |"
    echo "| --- | --- | --- | --- | --- | --- |"
    while IFS='|' read -r _ name load errors lost dup leaked; do
        echo "| $name | $load | $errors | $lost | $dup | $leaked |"
    done <"$log.reports"
)"
printf '%s\n' "$table"
printf '%s\n' "$table" | replace_section "$out" reliability || die "$out: no reliability section"

# Every figure but the load must be zero.
if awk -F'|' '$4 != 0 || $5 != 0 || $6 != 0 || $7 != 0 { bad = 1 } END { exit !bad }' "$log.reports"; then
    echo "soak: a non-zero error, loss, duplicate or leak" >&2
    exit 1
fi
echo "soak: all zero at scale $scale"
