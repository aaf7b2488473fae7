#!/usr/bin/env bash
# Runs every example the way the README tells a newcomer to, and checks that
# each one says and exits what it should. Usage: ci/examples.sh
# (On Linux one check runs daemon_wait under strace, installed when missing.)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
source ci/lib.sh # need_cmd, for strace

fail=0
# expect NAME EXIT_CODE NEEDLE -- ARGS...: run the example, check its exit
# code and that its output contains NEEDLE.
# expect_saving FILE NAME EXIT_CODE NEEDLE -- ARGS...: the same, and leaves
# the example's whole output in FILE for a later check.
expect_saving() {
    local save=$1
    shift
    expect_into "$save" "$@"
}
expect() { expect_into /dev/null "$@"; }
expect_into() {
    local save=$1 name=$2 want=$3 needle=$4
    shift 5
    local out code=0
    out=$(timeout 60 cargo run -q --example "$name" -- "$@" 2>&1) || code=$?
    printf '%s\n' "$out" >"$save"
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
bin="${CARGO_TARGET_DIR:-target}/debug/examples"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# check WHAT CONDITION...: a check beside the examples' exit codes.
check() {
    local what=$1
    shift
    if "$@"; then
        echo "ok   $what"
    else
        echo "FAIL $what"
        fail=1
    fi
}

# wait_for_file PATH: up to 10 s for PATH to exist (a daemon's pid file),
# looking every 2 ms: the exit-3 case below has 200 ms to stop the daemon.
wait_for_file() {
    for _ in $(seq 5000); do [[ -s $1 ]] && return 0; sleep 0.002; done
    return 1
}

# session_of PID: the session id of a process, from /proc/PID/stat.
# shellcheck disable=SC2317  # called from a function check runs
session_of() { awk '{ print $6 }' "/proc/$1/stat"; }

# The daemon_wait contract: exit 0 ready, 1 failure, 2 died first, 3 no
# report within 30 s, 4 pid file held; one line each.
expect daemon_wait 0 "is ready; exiting 0" --
expect daemon_wait 1 "reported that initialisation failed (it exited with status 1)" -- --fail
expect daemon_wait 2 "died before it was ready (it was killed by signal 9)" -- --crash
expect daemon_wait 64 "usage:" -- --bogus
expect daemon_wait 64 "exclude each other" -- --fail --crash
expect daemon_wait 64 "--serve takes seconds" -- --serve soon

# Pid file: the first instance holds it; a second fails at once naming its
# pid; the first removes it when it is done serving.
expect daemon_wait 0 "is ready; exiting 0" -- --pid-file "$tmp/d.pid" --serve 3
first=$(cat "$tmp/d.pid" 2>/dev/null || echo none)
expect daemon_wait 4 "another instance (pid $first) holds the pid file $tmp/d.pid; exiting 4" \
    -- --pid-file "$tmp/d.pid"
check "the second instance left the first one's pid file alone" \
    test "$(cat "$tmp/d.pid" 2>/dev/null)" = "$first"
for _ in $(seq 100); do [[ -e $tmp/d.pid ]] || break; sleep 0.1; done
check "the daemon removed its pid file when it finished serving" test ! -e "$tmp/d.pid"

# A pid file whose directory is missing: the error names the file.
expect daemon_wait 1 "(pid file $tmp/no/such/d.pid); exiting 1" -- --pid-file "$tmp/no/such/d.pid"

# Two instances never both hold the pid file, even when one starts as the
# other exits. A serves 1 s. B starts while A holds the file, and strace
# holds up B's first openat of it for 2.5 s, during which A removes the
# file and exits: B's lock then lands on A's removed file, which excludes
# nobody, so B must open the path again and hold the file there. C,
# started while B serves, must be refused naming B. strace follows B's
# daemon until it ends, so it runs in the background while C is tried.
if [[ $(uname -s) != Linux ]]; then
    echo "skip the pid file hand-over under strace: strace is Linux only"
elif ! need_cmd strace strace; then
    echo "FAIL the pid file hand-over under strace: no strace (apt-get install strace)"
    fail=1
else
    race="$tmp/race.pid"
    expect daemon_wait 0 "is ready; exiting 0" -- --pid-file "$race" --serve 1
    timeout 60 strace -f -qq -o "$tmp/race.strace" -P "$race" -e trace=openat \
        -e inject=openat:delay_exit=2500000:when=1 \
        "$bin/daemon_wait" --pid-file "$race" --serve 3 >"$tmp/race-b.out" 2>&1 &
    tracer=$!
    for _ in $(seq 1000); do grep -q "exiting" "$tmp/race-b.out" && break; sleep 0.02; done
    b=$(sed -n 's/^launcher: daemon \([0-9]*\) is ready.*/\1/p' "$tmp/race-b.out")
    check "B, started as A exits, is ready: $(cat "$tmp/race-b.out")" test -n "$b"
    check "the pid file names B (${b:-?}), not a file B locked after A removed it: it holds $(cat "$race" 2>/dev/null || echo nothing)" \
        test "$(cat "$race" 2>/dev/null)" = "$b"
    expect daemon_wait 4 "another instance (pid ${b:-?}) holds the pid file $race; exiting 4" -- --pid-file "$race"
    wait "$tracer" || true
    check "B removed its pid file when it finished serving" test ! -e "$race"
fi

# Double fork: the daemon is not a session leader; the launcher named its pid.
# Each step must see its evidence: a missing pid file, a daemon already gone
# or a launcher line naming another pid is a failure, not a pass.
expect_saving "$tmp/dd.out" daemon_wait 0 "is ready; exiting 0" -- --double-fork --pid-file "$tmp/dd.pid" --serve 2
dpid=$(cat "$tmp/dd.pid" 2>/dev/null || true)
# double_fork_not_leader PID: PID is a number, its /proc stat is readable
# (the daemon is still serving) and its session id is not its own pid.
# shellcheck disable=SC2317  # called through check
double_fork_not_leader() {
    local pid=$1 sid
    [[ $pid =~ ^[0-9]+$ ]] || { echo "    no pid in $tmp/dd.pid: '$pid'"; return 1; }
    sid=$(session_of "$pid" 2>/dev/null) || { echo "    /proc/$pid/stat unreadable: the daemon is gone"; return 1; }
    [[ -n $sid ]] || { echo "    no session id in /proc/$pid/stat"; return 1; }
    [[ $sid != "$pid" ]] || { echo "    daemon $pid leads its own session $sid"; return 1; }
}
check "the double-forked daemon ${dpid:-(no pid file)} is not a session leader" \
    double_fork_not_leader "$dpid"
check "the launcher's line names the daemon in the pid file: daemon ${dpid:-?} ($(grep -F 'is ready' "$tmp/dd.out" | head -1))" \
    grep -qF "launcher: daemon $dpid is ready" "$tmp/dd.out"
expect daemon_wait 2 "died before it was ready" -- --double-fork --crash

# --reexec: daemonizing by re-executing itself detached under ready::launch.
expect daemon_wait 0 "is ready; exiting 0" -- --reexec
expect daemon_wait 1 "reported that initialisation failed (it exited with status 1)" -- --reexec --fail
expect daemon_wait 2 "died before it was ready (it was killed by signal 9)" -- --reexec --crash
expect daemon_wait 0 "is ready; exiting 0" -- --reexec --pid-file "$tmp/rx.pid" --serve 2
rx=$(cat "$tmp/rx.pid" 2>/dev/null || echo none)
expect daemon_wait 4 "another instance (pid $rx) holds the pid file" -- --reexec --pid-file "$tmp/rx.pid"
expect daemon_wait 64 "exclude each other" -- --reexec --double-fork

# The launch example: a readiness-aware launcher that notices death.
# shellcheck disable=SC2016  # $TOKENPIPE_READY_FD is for the child's shell
expect launch 0 "is ready; exiting 0" -- -- /bin/sh -c 'printf "\001" >"/dev/fd/$TOKENPIPE_READY_FD"'
# shellcheck disable=SC2016  # as above
expect launch 1 "reported failure: " -- -- /bin/sh -c 'printf "\000\005\000\000\000" >"/dev/fd/$TOKENPIPE_READY_FD"; sleep 0.2'
expect launch 2 "sh exited with status 3 before it was ready; exiting 2" -- -- /bin/sh -c 'exit 3'
expect launch 3 "no report within 500ms; killed it (it was killed by signal 9); exiting 3" -- --timeout 0.5 -- sleep 5
expect launch 64 "usage:" -- --bogus
expect launch 64 "usage:" -- --timeout soon -- true

# Launchers with stdin and stdout closed behave the same (their one line
# goes nowhere, so the exit code speaks).
for args in "" "--fail" "--crash" "--double-fork"; do
    code=0
    # shellcheck disable=SC2086  # word splitting of the flags is wanted
    timeout 60 "$bin/daemon_wait" $args <&- >&- 2>/dev/null || code=$?
    want=0
    [[ $args == --fail ]] && want=1
    [[ $args == --crash ]] && want=2
    check "daemon_wait $args with stdin and stdout closed -> exit $code (want $want)" \
        test "$code" -eq "$want"
done

# No report within 30 s: stop the daemon during its 200 ms of
# initialisation; the launcher kills it and exits 3.
code=0
"$bin/daemon_wait" --pid-file "$tmp/hang.pid" >"$tmp/hang.out" 2>&1 &
launcher=$!
if wait_for_file "$tmp/hang.pid"; then
    kill -STOP "$(cat "$tmp/hang.pid")"
fi
wait "$launcher" || code=$?
# If the STOP missed the 200 ms window the daemon reported and kept running
# (the checks below fail); whichever way, it must not be left behind.
if [[ -s $tmp/hang.pid ]]; then kill -KILL "$(cat "$tmp/hang.pid")" 2>/dev/null || true; fi
check "a daemon that never reports: exit $code (want 3): $(cat "$tmp/hang.out")" \
    grep -q "did not report within 30s; killed it (it was killed by signal 9); exiting 3" "$tmp/hang.out"
check "exit 3 for a daemon that never reports" test "$code" -eq 3
expect self_pipe 0 "got SIGINT or SIGTERM, shutting down cleanly" -- --self-test
# The self-pipe is the crate's SignalInterrupt now: no unsafe left to copy.
# (Outside comments: a line whose code, before any //, says unsafe.)
check "examples/self_pipe.rs has no unsafe code" \
    test "$(sed 's|//.*||' examples/self_pipe.rs | grep -c '\bunsafe\b')" -eq 0
expect self_pipe 64 "usage:" -- --bogus
expect supervise 0 "is ready" --
expect supervise 0 "is ready" -- s6
expect supervise 1 "failed to start" -- fail
expect supervise 2 "died before it was ready (exit status: 9)" -- die
expect supervise 3 "timed out after 300 ms; killed it" -- hang --timeout-ms 300
expect supervise 64 "usage:" -- --bogus

# ready_daemon's contract without a launcher (ci/launchers.sh runs it under
# real ones): it says it has no channel and behaves the same; 0 ready, 1
# failed, 3 crashed, 64 usage, 1 for a channel it cannot use.
unset NOTIFY_SOCKET TOKENPIPE_READY_FD
expect ready_daemon 0 "no readiness channel" -- --serve 0.1
expect ready_daemon 0 "ready; serving for 100ms" -- --serve 0.1
expect ready_daemon 1 "initialisation failed (EIO); exiting 1" -- --fail
expect ready_daemon 3 "no readiness channel" -- --crash
expect ready_daemon 64 "usage: ready_daemon [--fail | --crash] [--notify-fd N] [--init SECS] [--serve SECS] [--pid-file PATH]" -- --bogus
expect ready_daemon 64 "exclude each other" -- --crash --fail
expect ready_daemon 64 "--serve takes seconds" -- --serve soon
expect ready_daemon 64 "--init takes seconds" -- --init soon
expect ready_daemon 64 "--notify-fd takes an fd number" -- --notify-fd -1
expect ready_daemon 1 "fd 999 is not open" -- --notify-fd 999
code=0
NOTIFY_SOCKET=relative/path timeout 60 "$bin/ready_daemon" >"$tmp/rd.out" 2>&1 || code=$?
check "ready_daemon with NOTIFY_SOCKET=relative/path -> exit $code (want 1): $(cat "$tmp/rd.out")" \
    test "$code" -eq 1

exit $fail
