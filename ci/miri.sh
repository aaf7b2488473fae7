#!/usr/bin/env bash
# Runs the tests that Miri can execute, to catch undefined behaviour in the
# unsafe layer (src/sys/) and everything built on it.
# Usage: ci/miri.sh          (installs the nightly miri component if missing)
#
# Miri interprets pipe2, read, write, close and fcntl, and threads blocking
# on pipes; it has no poll, fork, exec, signals, rlimits, /proc, Unix
# sockets bound to a path or an abstract name, pidfds, or symbol
# interposition (a test binary's own `read` in place of libc's, passing
# calls on with syscall(SYS_read)). Every test binary not in `run` below is
# named in `not_run` with what it needs that Miri lacks; those are not run
# here (each is run natively by `cargo test`), and the few tests in the
# files that are run which need them carry
# #[cfg_attr(miri, ignore = "<reason>")], so Miri's report lists them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^miri'; then
    rustup +nightly component add miri rust-src
fi

run=(
    tokens_arrive_whole_and_in_order
    ends_are_owned_once
    errors_say_what_went_wrong
    threads_share_an_end
    batches_are_one_syscall
    nonblocking_and_drain
    model_based
    zero_allocations
    signal_interrupt_state_word_holds_under_miri
)
not_run=(
    "handshake_across_fork: fork"
    "daemon_module_handshake: fork"
    "daemon_process_control: fork, signals, file locks"
    "pid_file_refuses_unsafe_files: fork, file locks, chown, mkfifo, mknod"
    "daemon_fault_injection: fork, rlimits, /proc/self/fd"
    "launch_waits_for_ready_or_death: exec, sockets, poll"
    "sigpipe_free_writes: fork, signal masks"
    "timeouts_survive_signal_storms: poll, signals"
    "reliability_under_load: signals, fork, poll"
    "handoff_across_exec: exec, environment, fstat"
    "pipes_are_close_on_exec: exec"
    "fd_hygiene: /proc/self/fd, rlimits"
    "notifier_speaks_every_protocol: Unix datagram sockets bound by path and abstract name, fork"
    "launch_from_tokio: exec (Command::spawn), pidfds, tokio's AsyncFd on them"
    "interrupted_reads_are_not_timeouts: symbol interposition (its own read), syscall(SYS_read)"
    "reports_never_reach_a_reused_fd: symbol interposition (its own sigpending), signals, signal masks"
    "signal_interrupt_never_loses_or_doubles_a_token: signals, ioctl(FIONREAD), poll, fork"
    "signal_interrupt_first_users_race_without_leaking: ioctl(FIONREAD), /proc/self/fd"
    "signal_interrupt_install_refuses_bad_input_and_changes_nothing: signals"
    "signal_interrupt_in_child_processes: exec, fork, signals"
    "signal_interrupt_touches_only_what_it_owns: exec, fork, signals, sockets"
    "launch_reaches_processes_by_handle: exec, pidfds, /proc, fork, signals, cgroups"
    "a_service_reads_its_managers_variables: exec, sockets, the environment"
)
echo "miri: running ${run[*]} and the library's unit tests"
for n in "${not_run[@]}"; do echo "miri: not run (needs what Miri lacks): $n"; done

args=(--lib)
for t in "${run[@]}"; do args+=(--test "$t"); done
# fstat and clock_gettime on the host need isolation off; the tests touch
# no files but their own pipes.
export MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-disable-isolation"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/miri"
cargo +nightly miri test --no-fail-fast --all-features "${args[@]}"
