#!/usr/bin/env bash
# Model checking with loom: the crate's lock-free state words run in every
# interleaving of their threads and signal handlers (a handler is a thread
# there), with the memory orderings they ask for. `--cfg tokenpipe_loom`
# puts loom's atomics under them (src/sync.rs), and the library's `loom`
# tests run: the Notifier's claim word (src/ready/pipe.rs) and a copy of
# SignalInterrupt's state word as of b01f484, on which loom must find
# review item 6 (src/interrupt_model.rs). Each model runs twice, with loads
# as loads and as read-modify-writes (src/sync.rs says why).
#
# Usage: ci/loom.sh
# Environment: LOOM_MAX_PREEMPTIONS (default 5: every model in seconds;
# unbounded, 50, takes minutes), CARGO_TARGET_DIR (default target/loom:
# the cfg flag would otherwise rebuild the main target dir).
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_cmd cargo cargo || die "cargo is required (install Rust with rustup)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/loom}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-5}"
# A failure names the lines of the accesses that raced.
export LOOM_LOCATION=1
export RUSTFLAGS="${RUSTFLAGS:-} --cfg tokenpipe_loom"
mkdir -p "$CARGO_TARGET_DIR"
out="$CARGO_TARGET_DIR/loom.log"
start="$(now)"

log "cargo test --release --lib loom (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS)"
if ! cargo test --release --lib loom -- --nocapture 2>&1 | tee "$out"; then
    die "a loom model failed (the output is in $out)"
fi
# A run that checked nothing (a renamed test, a cfg that left the models
# out) must not pass.
passed="$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$out" | tail -n 1)"
[ "${passed:-0}" -gt 0 ] || die "no loom test ran"
log "$passed loom models passed in $(elapsed "$start")s"
