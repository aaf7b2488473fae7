#!/usr/bin/env bash
# Counts, with callgrind, the user-space instructions of two loops, for this
# crate beside raw libc and the peers, and fails if the crate costs more
# than raw libc + 2 instructions in either:
#   - one token round trip (write one byte, read it back) on a pipe made
#     once, the byte hidden from the compiler by black_box;
#   - one make + close (a pipe made and both ends dropped) where the
#     compiler sees the ends come from make (no black_box), as in most code;
#     behind an opaque path each end's drop costs a compare and a branch
#     more, which this figure does not measure (see the budgets below).
# And, for SignalInterrupt, one trigger (the first on an untriggered
# interrupt whose pipe exists) against a raw libc `write` of one byte to a
# non-blocking pipe, with reset against the raw `read` beside it (see
# TRIGGER_BUDGET below for the budget; the system calls on the path are
# what ci/syscalls.sh checks).
# These are instruction counts in this loop, not a proof of zero cost
# everywhere: time in the kernel and the cache are not counted.
#
# Wall-clock medians cannot see a few wasted instructions under the noise of
# two syscalls; callgrind counts them exactly, run after run. The loop is
# ci/instructions (its own small crate, so a release build does not need
# criterion), built --release, run under `valgrind --tool=callgrind` for N
# and for M iterations: (Ir_N - Ir_M) / (N - M) is the cost of one, with
# start-up and exit cancelled out, and for the round trip the one pipe
# creation too (make + close counts it: it is what that loop measures).
# glibc's write, read, pipe2 and close wrappers are counted, for raw libc
# and the crate alike; rustix makes its syscalls itself, without them.
#
# Usage: ci/instructions.sh        (installs valgrind when missing)
# Environment: CARGO_TARGET_DIR (default target/instructions). The table is
# also written, as markdown, to $CARGO_TARGET_DIR/instructions.md (ci/bench.sh
# puts it into docs/bench.md).
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start="$(now)"

# How many instructions per operation the crate may cost above raw libc.
# make + close: each end's drop checks for a closed end (fd -1, the
# original's nullable state, which raw fds and OwnedFd-based peers do not
# have). `make` tells the compiler that a successful pipe2 gave two open
# fds, so where it sees the ends come from `make` (this loop, and most
# code) the checks fold away; behind an opaque path each costs a compare
# and a branch.
ROUNDTRIP_BUDGET=2
MAKE_CLOSE_BUDGET=2
# SignalInterrupt::trigger against a raw one-byte write. The goal is the
# one system call that does the work beside the one that tells whose pipe
# it is (a getpid: a fork's child, of any kind, must never write its
# parent's pipe, and only the kernel knows without a window); instructions
# are reported, and the check fails above the measured +30 to catch a
# regression (measured with glibc 2.36, rustc 1.95):
#   +7  errno saved before the write, to restore it if the write fails
#       (__errno_location, the load, a callee-saved register);
#   +12 whose pipe: the maker's pid loaded and compared with getpid()'s
#       (the call into the C library's wrapper, its syscall instruction
#       not counted: callgrind counts user space);
#   +5  the compare-exchange that sets the flag (copy, or, lock cmpxchg,
#       retry branch);
#   +2  the count of writes in flight (an add inside the compare-exchange,
#       a lock sub after the write), so a reset never waits for a token
#       that is not coming;
#   +1  the write end's fd loaded from the interrupt;
#   +3  `self` kept across the calls.
# Reset is reported beside it, not checked.
TRIGGER_BUDGET=30
N=2000
M=1000

need_cmd valgrind valgrind || die "missing tool: valgrind (apt-get install valgrind)"
command -v cargo >/dev/null 2>&1 || die "missing tool: cargo"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/instructions}"
work="$CARGO_TARGET_DIR/callgrind"
mkdir -p "$work"
rm -f "$CARGO_TARGET_DIR/instructions.md"

log "cargo build --release (ci/instructions)"
(cd "$ROOT/ci/instructions" && cargo build --release --quiet) \
    || die "building ci/instructions failed"
bin="$CARGO_TARGET_DIR/release/tokenpipe-instructions"
[ -x "$bin" ] || die "no $bin after the build"

# ir IMPL ITERATIONS OP [FUNCTION]: total instructions executed
# (callgrind's "Ir"); with FUNCTION, only those inside its calls
# (--toggle-collect: its own and its callees', its `ret` included, the
# caller's `call` not).
ir() {
    local out="$work/$1.$2.$3${4:+.$4}.out" toggle=()
    [ -n "${4:-}" ] && toggle=("--toggle-collect=tokenpipe_instructions::$4*")
    valgrind --tool=callgrind --callgrind-out-file="$out" -q "${toggle[@]}" "$bin" "$1" "$2" "$3" >/dev/null \
        || die "valgrind failed on: $bin $1 $2 $3 ${4:-}"
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

# per_call IMPL OP [FUNCTION]: instructions per iteration,
# (Ir_N - Ir_M) / (N - M), as `count` computes them.
per_call() {
    local ir_n ir_m
    ir_n="$(ir "$1" "$N" "$2" "${3:-}")"
    ir_m="$(ir "$1" "$M" "$2" "${3:-}")"
    awk -v a="$ir_n" -v b="$ir_m" -v d="$((N - M))" 'BEGIN { print (a - b) / d }'
}

# count OP WHAT BUDGET: a table of instructions per OP for every pipe; the
# crate must stay within raw libc + BUDGET. Every iteration runs the same
# instructions, so the division is exact; awk prints a fraction if not.
over_budget=0
count() {
    local op="$1" what="$2" budget="$3" table libc_cost="" crate_cost="" impl name cost delta
    table="| pipe | instructions per $what | vs raw libc |
| --- | ---: | ---: |"
    for impl in libc crate rustix nix std os_pipe; do
        name="$("$bin" "$impl" 0 "$op")"
        cost="$(per_call "$impl" "$op")"
        [ "$impl" = libc ] && libc_cost="$cost"
        [ "$impl" = crate ] && crate_cost="$cost"
        delta="$(awk -v c="$cost" -v l="$libc_cost" 'BEGIN { printf "%+g", c - l }')"
        table+=$'\n'"| $name | $cost | $delta |"
    done
    echo "$table"
    echo
    within_budget "tokenpipe's $what" "$crate_cost" "raw libc's" "$libc_cost" "$budget"
}

# within_budget WHAT COST BASE_NAME BASE BUDGET: logs COST against BASE (on
# stderr: callers' stdout is the report) and sets over_budget when it is
# more than BUDGET over. Sets `over` to the difference. Not to be called in
# $(...): over_budget must be set in this shell.
within_budget() {
    over="$(awk -v c="$2" -v l="$4" 'BEGIN { print c - l }')"
    if awk -v o="$over" -v b="$5" 'BEGIN { exit !(o > b) }'; then
        log "error: $1 costs $2 instructions, $3 $4: +$over, more than the +$5 allowed"
        over_budget=1
    else
        log "$1 costs $2 instructions, $3 $4: +$over, within +$5"
    fi
}

# SignalInterrupt against a raw pipe: the loop is trigger + reset (crate)
# or write + read (raw libc), each call in its own #[inline(never)]
# function (ci/instructions/src/main.rs). Each function is counted alone
# with --toggle-collect, so the trigger's figure holds the trigger and
# nothing of the reset around it. The whole iteration is counted too, to
# check that the parts add up (its loop is the same for both).
interrupt_count() {
    local trig_libc trig_crate take_libc take_crate all_libc all_crate diff
    trig_libc="$(per_call libc interrupt trigger_libc)"
    trig_crate="$(per_call crate interrupt trigger_crate)"
    take_libc="$(per_call libc interrupt take_libc)"
    take_crate="$(per_call crate interrupt take_crate)"
    all_libc="$(per_call libc interrupt)"
    all_crate="$(per_call crate interrupt)"
    row() { awk -v w="$1" -v l="$2" -v c="$3" 'BEGIN { printf "| %s | %s | %s | %+g |\n", w, l, c, c - l }'; }
    echo "| instructions per call | raw libc | SignalInterrupt | vs raw libc |"
    echo "| --- | ---: | ---: | ---: |"
    # Backquotes for markdown, not command substitution:
    # shellcheck disable=SC2016
    row '`trigger` / `write` 1 byte' "$trig_libc" "$trig_crate"
    # shellcheck disable=SC2016
    row '`reset` / `read` 1 byte' "$take_libc" "$take_crate"
    row 'the iteration (both, and the loop)' "$all_libc" "$all_crate"
    echo
    within_budget "SignalInterrupt::trigger" "$trig_crate" "a raw write" "$trig_libc" "$TRIGGER_BUDGET"
}

# Not a pipeline into tee: `over_budget` must be set in this shell, not a subshell.
report="$CARGO_TARGET_DIR/instructions.md"
count roundtrip "round trip" "$ROUNDTRIP_BUDGET" >"$report"
count make_close "make + close" "$MAKE_CLOSE_BUDGET" >>"$report"
interrupt_count >>"$report"
cat "$report"
[ "$over_budget" -eq 0 ] || die "over budget (see above)"
echo "instructions: the round trip is within raw libc + $ROUNDTRIP_BUDGET, make + close within raw libc + $MAKE_CLOSE_BUDGET, SignalInterrupt::trigger within a raw write + $TRIGGER_BUDGET ($(elapsed "$start")s)"
