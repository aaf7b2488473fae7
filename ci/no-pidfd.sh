#!/usr/bin/env bash
# The branches taken without pidfds, run on Linux. Every Unix but Linux
# (and Android) has no pidfd, and neither has a Linux before 5.3 or one
# whose seccomp filter refuses pidfd_open: there the launcher, ReadyChild
# and exited() watch a program with waitpid(WNOHANG) on a cadence, and
# MAINPID= is ignored. CI's Linux has pidfds, so without this those
# branches are only type-checked (ci/check-targets.sh). Built with
# `--cfg tokenpipe_force_no_pidfd`, sys::pidfd_open fails with ENOSYS
# without asking the kernel, as a kernel before 5.3 does, and every caller
# falls back exactly as it would there (mio forces its fallback backends
# the same way).
#
# First it proves the switch took: a launched program holds no pidfd (the
# same case, in a normal build, fails if it holds none). Then the launch
# tests and the async tests of launch_async and exited(). Not
# heavy/launch_from_tokio: it awaits the pidfd itself, and fails naming
# the reason where there is none.
#
# The tests start systemd-notify, setpriv and strace (ci/test-tools.sh
# installs them); a missing one fails the case that needs it, naming it.
#
# Usage: ci/no-pidfd.sh            (Linux)
# Environment: CARGO_TARGET_DIR (default target/); this builds in
# $CARGO_TARGET_DIR/no-pidfd, so the other flags leave the main build's
# artifacts alone.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start="$(now)"

[ "$(uname -s)" = Linux ] || die "Linux only: elsewhere there are no pidfds, so every test run takes these branches already"
command -v cargo >/dev/null 2>&1 || die "missing tool: cargo"

cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/no-pidfd"
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }--cfg tokenpipe_force_no_pidfd"

log "the switch took: a launched program holds no pidfd"
cargo test --all-features -p tokenpipe --test launch_waits_for_ready_or_death -- \
    --exact a_launched_program_holds_a_pidfd_unless_the_build_forces_none

# The launch tests start these examples from the target dir.
cargo build --all-features --example launch --example ready_daemon

log "the launch tests, and launch_async and exited() on tokio, without pidfds"
cargo test --all-features --no-fail-fast \
    -p tokenpipe \
    --test launch_waits_for_ready_or_death \
    --test launch_holds_up_against_real_programs \
    -p tokenpipe-heavy-tests \
    --test async_launch_verdicts \
    --test async_launch_cancellation \
    --test async_launch_never_blocks_the_runtime \
    --test async_waits_survive_running_out_of_fds

log "every launch and exited() test passes without pidfds ($(elapsed "$start") s)"
