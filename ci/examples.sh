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
    local out code=0 features=()
    # tokio_service needs the crate's tokio feature (required-features).
    [[ $name == tokio_service ]] && features=(--features tokio)
    out=$(timeout 60 cargo run -q "${features[@]}" --example "$name" -- "$@" 2>&1) || code=$?
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
# Skipped above for want of the tokio feature; built with it, as it runs.
cargo build -q --features tokio --example tokio_service
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
expect daemon_wait 0 "is ready; exiting 0" -- --reexec --pid-file "$tmp/rx.pid" --serve 10
rx=$(cat "$tmp/rx.pid" 2>/dev/null || echo none)
expect daemon_wait 4 "another instance (pid $rx) holds the pid file" -- --reexec --pid-file "$tmp/rx.pid"
# Done with it: it would serve on for the rest of its 10 s.
kill "$rx" 2>/dev/null || true
expect daemon_wait 64 "exclude each other" -- --reexec --double-fork

# The launch example: a readiness-aware launcher that notices death.
# shellcheck disable=SC2016  # $TOKENPIPE_READY_FD is for the child's shell
expect launch 0 "is ready; exiting 0" -- -- /bin/sh -c 'printf "\001" >"/dev/fd/$TOKENPIPE_READY_FD"'
# shellcheck disable=SC2016  # as above
expect launch 1 "reported failure: " -- -- /bin/sh -c 'printf "\000\005\000\000\000" >"/dev/fd/$TOKENPIPE_READY_FD"; sleep 0.2'
expect launch 2 "sh exited with status 3 before it was ready; exiting 2" -- -- /bin/sh -c 'exit 3'
expect launch 3 "no report within 500ms; killed it (it was killed by signal 9); exiting 3" -- --timeout 0.5 -- sleep 5
expect launch 64 "usage:" -- --bogus
# PROGRAM without launch's own `--`: what `cargo run --example launch --
# PROGRAM` passes (cargo takes the first `--`), as the README writes it.
expect launch 0 "systemd-notify (pid" -- systemd-notify --ready
expect launch 2 "exited with status 3 before it was ready; exiting 2" -- --timeout 5 /bin/sh -c 'exit 3'
expect launch 64 "usage:" -- --timeout soon -- true

# Launchers with stdin and stdout closed. A Rust program cannot be started
# so: std reopens fds 0-2 on /dev/null before main (the old check here ran
# daemon_wait with them closed and so tested nothing). What can happen is a
# program that closes them itself and then launches: the library cases
# that do exactly that run here by name, and must run (two of them).
closed_out="$(cargo test --all-features --test launch_reaches_processes_by_handle \
    a_launcher_with_stdin_and_stdout_closed 2>&1)" || true
check "a launcher that closed its stdin and stdout launches and detaches as any other (2 library cases)" \
    grep -q "test result: ok. 2 passed" <<<"$closed_out"

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
expect self_pipe 0 "got SIGTERM, shutting down cleanly" -- --self-test
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


# ---------------------------------------------------------------------------
# Stopping by signal: SignalInterrupt in shutdown, ready_daemon and
# daemon_wait. sigrun (python3, which tells a child killed by SIGINT,
# returncode -2, from one that exited 130, which bash's $? cannot) starts
# the command, waits for its cue, sends the signals 0.3 s apart, and prints
# "rc=N after=SECS": N the exit status, or minus the signal that killed it;
# SECS from the last signal to the end.
#   sigrun CUE TARGET SIGNALS OUT -- CMD...
#   CUE: line:TEXT (TEXT in its output) or file:PATH (PATH is not empty)
#   TARGET: child (the command), or pidfile:PATH (the pid PATH names, once
#   the command, a launcher, has exited; rc is then "gone" once that
#   process has ended: no longer in /proc, or a zombie)
#   SIGNALS: space-separated names, e.g. "INT INT"; OUT: its whole output.
sigrun() {
    local cue=$1 target=$2 signals=$3 out=$4
    shift 5
    timeout 60 python3 - "$cue" "$target" "$signals" "$out" "$@" <<'PY'
import os, signal, subprocess, sys, time
cue, target, signals, out, cmd = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4], sys.argv[5:]
log = open(out, "w+b")
child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
def cued():
    if cue.startswith("line:"):
        log.seek(0)
        return cue[5:].encode() in log.read()
    path = cue[5:]
    return os.path.exists(path) and os.path.getsize(path) > 0
deadline = time.monotonic() + 20
while not cued():
    if time.monotonic() > deadline or (target == "child" and child.poll() is not None):
        print("rc=nocue after=0")
        child.kill()
        sys.exit(0)
    time.sleep(0.005)
def gone(pid):
    # A zombie (state Z) has ended: only its reaper is missing.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
if target == "child":
    pid = child.pid
else:
    child.wait()
    pid = int(open(target[8:]).read().split()[0])
for i, name in enumerate(signals):
    if i:
        time.sleep(0.3)
    os.kill(pid, getattr(signal, "SIG" + name))
sent = time.monotonic()
if target == "child":
    try:
        rc = child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill(); child.wait(); rc = "hung"
else:
    while not gone(pid) and time.monotonic() - sent < 30:
        time.sleep(0.005)
    rc = "gone" if gone(pid) else "hung"
print(f"rc={rc} after={time.monotonic() - sent:.3f}")
PY
}
# sigcheck WHAT WANT_RC MAX_SECS RESULT: RESULT is sigrun's line.
sigcheck() {
    local what=$1 want=$2 max=$3 result=$4 rc after
    rc=$(sed -n 's/^rc=\([^ ]*\) .*/\1/p' <<<"$result")
    after=$(sed -n 's/.* after=\(.*\)/\1/p' <<<"$result")
    check "$what: $result (want rc=$want within ${max}s)" \
        awk -v rc="$rc" -v want="$want" -v a="$after" -v m="$max" \
        'BEGIN { exit !(rc == want && a + 0 <= m + 0) }'
}
# shellcheck disable=SC2317  # called through check
workers_all_stopped() {
    [[ $(grep -c "^shutdown: worker [0-9]* stopped after" "$1") -eq $2 ]] &&
        grep -q "^shutdown: all $2 workers stopped in .*; exiting 0$" "$1"
}

expect shutdown 0 "all 2 workers stopped" -- --self-test --workers 2
expect shutdown 64 "usage: shutdown [--workers N] [--drain SECS] [--self-test]" -- --bogus
expect shutdown 64 "--workers takes 1 to 256" -- --workers 0
expect shutdown 64 "--drain takes seconds" -- --drain soon
expect echo_service 64 "usage: echo_service [--listen unix:PATH | --listen tcp:HOST:PORT]..." -- --listen nowhere
expect echo_service 64 "--listen tcp: takes HOST:PORT" -- --listen tcp:localhost
expect echo_service 64 "no sockets: none by socket activation, and no --listen" --
expect echo_service 1 "cannot listen on unix:$tmp:" -- --listen "unix:$tmp"
check "examples/shutdown.rs has no unsafe code" \
    test "$(sed 's|//.*||' examples/shutdown.rs | grep -c '\bunsafe\b')" -eq 0

if ! need_cmd python3 python3; then
    echo "FAIL the stop-by-signal checks: no python3 (apt-get install python3)"
    fail=1
else
    # SIGTERM: a 0.5 s drain, then exit 0 within 1 s of the drain's end,
    # every worker having said it stopped.
    r=$(sigrun "line:serving with 3 workers" child TERM "$tmp/sd-term.out" \
        -- "$bin/shutdown" --workers 3 --drain 0.5)
    sigcheck "shutdown --workers 3 --drain 0.5, SIGTERM: a clean stop" 0 1.5 "$r"
    check "shutdown, SIGTERM: 3 'worker I stopped' lines, then: $(tail -n 1 "$tmp/sd-term.out")" \
        workers_all_stopped "$tmp/sd-term.out" 3
    # Ctrl-C twice in a 10 s drain: killed by SIGINT at once (-2, not 130).
    r=$(sigrun "line:serving with 4 workers" child "INT INT" "$tmp/sd-int2.out" \
        -- "$bin/shutdown" --drain 10)
    sigcheck "shutdown --drain 10, SIGINT twice: killed by SIGINT" -2 1 "$r"
    check "shutdown, SIGINT twice: no worker got to the end of its drain" \
        test "$(grep -c "stopped after" "$tmp/sd-int2.out")" -eq 0
    # Ctrl-C once: the clean stop.
    r=$(sigrun "line:serving with 4 workers" child INT "$tmp/sd-int1.out" \
        -- "$bin/shutdown" --drain 0.3)
    sigcheck "shutdown --drain 0.3, SIGINT once: a clean stop" 0 1.3 "$r"
    check "shutdown, SIGINT once: 4 'worker I stopped' lines, then: $(tail -n 1 "$tmp/sd-int1.out")" \
        workers_all_stopped "$tmp/sd-int1.out" 4
    # SIGHUP reloads and serves on (it used to kill it); SIGTERM 0.3 s
    # later is still the clean stop.
    r=$(sigrun "line:serving with 2 workers" child "HUP TERM" "$tmp/sd-hup.out" \
        -- "$bin/shutdown" --workers 2 --drain 0.1)
    sigcheck "shutdown --workers 2 --drain 0.1, SIGHUP then SIGTERM: a reload, then a clean stop" 0 1.1 "$r"
    check "shutdown, SIGHUP: $(grep -m 1 "SIGHUP" "$tmp/sd-hup.out" || echo "no SIGHUP line")" \
        grep -qx "shutdown: got SIGHUP; reload 1 done" "$tmp/sd-hup.out"
    check "shutdown, SIGHUP then SIGTERM: 2 'worker I stopped' lines, then: $(tail -n 1 "$tmp/sd-hup.out")" \
        workers_all_stopped "$tmp/sd-hup.out" 2

    # echo_service on sockets it binds itself (the systemd run covers
    # socket activation): a line sent on each comes back; SIGHUP reloads;
    # SIGTERM stops it, exit 0, and it removes the socket file it made.
    rm -f "$tmp/echo.sock"
    "$bin/echo_service" --listen "unix:$tmp/echo.sock" --listen tcp:127.0.0.1:0 >"$tmp/echo.out" 2>&1 &
    echo_pid=$!
    for _ in $(seq 500); do grep -q "^echo_service: serving" "$tmp/echo.out" && break; sleep 0.02; done
    echo_port=$(sed -n 's/^echo_service: listening on tcp:127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/echo.out")
    # echo_round ADDR: sends two lines to ADDR (a path, or a TCP port) and
    # prints what came back once the second line is in (5 s at most).
    # shellcheck disable=SC2317  # called below
    echo_round() {
        timeout 10 python3 - "$1" <<'PY'
import socket, sys
addr = sys.argv[1]
if addr.isdigit():
    s = socket.create_connection(("127.0.0.1", int(addr)), timeout=5)
else:
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(addr)
s.sendall(b"one line\nand another\n")
got = b""
while got.count(b"\n") < 2:
    chunk = s.recv(4096)
    if not chunk:
        break
    got += chunk
sys.stdout.write(got.decode(errors="replace").replace("\n", "|"))
PY
    }
    got=$(echo_round "$tmp/echo.sock" 2>&1) || true
    check "echo_service --listen unix:PATH: two lines back: $got" test "$got" = "one line|and another|"
    got=$(echo_round "${echo_port:-0}" 2>&1) || true
    check "echo_service --listen tcp:127.0.0.1:0 (port ${echo_port:-?}): two lines back: $got" \
        test "$got" = "one line|and another|"
    kill -HUP "$echo_pid" 2>/dev/null || true
    for _ in $(seq 250); do grep -q "SIGHUP" "$tmp/echo.out" && break; sleep 0.02; done
    check "echo_service, SIGHUP: $(grep -m 1 SIGHUP "$tmp/echo.out" || echo "no SIGHUP line")" \
        grep -qx "echo_service: got SIGHUP; reload 1 done" "$tmp/echo.out"
    got=$(echo_round "$tmp/echo.sock" 2>&1) || true
    check "echo_service, after the reload: still echoes: $got" test "$got" = "one line|and another|"
    kill -TERM "$echo_pid" 2>/dev/null || true
    code=0
    timeout 10 tail --pid="$echo_pid" -f /dev/null || kill -KILL "$echo_pid" 2>/dev/null || true
    wait "$echo_pid" || code=$?
    check "echo_service, SIGTERM: exit $code (want 0): $(tail -n 1 "$tmp/echo.out")" \
        test "$code" -eq 0 -a "$(tail -n 1 "$tmp/echo.out")" = "echo_service: got SIGTERM; stopping; exiting 0"
    check "echo_service, SIGTERM: it removed the socket file it made" test ! -e "$tmp/echo.sock"

    # ready_daemon: SIGTERM while it serves 30 s ends it at once, exit 0,
    # its pid file removed.
    r=$(sigrun "file:$tmp/rd.pid" child TERM "$tmp/rd-term.out" \
        -- "$bin/ready_daemon" --pid-file "$tmp/rd.pid" --serve 30)
    sigcheck "ready_daemon --pid-file --serve 30, SIGTERM: exit 0 at once" 0 1 "$r"
    check "ready_daemon, SIGTERM: its pid file is removed" test ! -e "$tmp/rd.pid"
    check "ready_daemon, SIGTERM: $(tail -n 1 "$tmp/rd-term.out")" \
        grep -q "stopped cleanly; exiting 0" "$tmp/rd-term.out"

    # daemon_wait: SIGTERM to the daemon (the pid its pid file names) while
    # it serves 30 s ends it at once, its pid file removed.
    r=$(sigrun "file:$tmp/dws.pid" "pidfile:$tmp/dws.pid" TERM "$tmp/dw-term.out" \
        -- "$bin/daemon_wait" --pid-file "$tmp/dws.pid" --serve 30)
    sigcheck "daemon_wait --pid-file --serve 30, SIGTERM to the daemon: gone at once" gone 1 "$r"
    check "daemon_wait, SIGTERM: the daemon removed its pid file" test ! -e "$tmp/dws.pid"
fi

# ---------------------------------------------------------------------------
# tokio_service: launch_async, ReadyChild::exited and
# SignalInterrupt::triggered on a current-thread runtime. Contract:
#   tokio_service [--helper-delay SECS] [--self-test]
# ready: "tokio_service: ready (helper PID)"; SIGTERM or SIGINT: "got
# SIGTERM; stopping", the helper stopped with SIGTERM, "helper exited 0;
# exiting 0", exit 0 well under 1 s; usage errors 64.
# shellcheck disable=SC2317  # called through check
ts_clean_stop() {
    grep -q "^tokio_service: helper [0-9]* reported ready after .*; the ticker ticked [1-9][0-9]* times meanwhile$" "$1" &&
        grep -q "^tokio_service: ready (helper [0-9]*)$" "$1" &&
        grep -q "^tokio_service: got $2; stopping$" "$1" &&
        [[ $(tail -n 1 "$1") == "tokio_service: helper exited 0; exiting 0" ]]
}
# ts_helper OUT: the helper's pid from the ready line.
ts_helper() { sed -n 's/^tokio_service: ready (helper \([0-9]*\))$/\1/p' "$1" | head -n 1; }
# shellcheck disable=SC2317  # called through check
pid_gone() {
    [[ $1 =~ ^[0-9]+$ ]] || { echo "    no helper pid: '$1'"; return 1; }
    [[ ! -e /proc/$1 ]] || [[ $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) == Z ]] ||
        { echo "    helper $1 still runs: $(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)"; return 1; }
}
expect_saving "$tmp/ts-self.out" tokio_service 0 "tokio_service: helper exited 0; exiting 0" -- --self-test
check "tokio_service --self-test: ticker ticked while the helper started, ready, got SIGTERM, helper exited 0" \
    ts_clean_stop "$tmp/ts-self.out" SIGTERM
ts_self_helper=$(ts_helper "$tmp/ts-self.out")
check "tokio_service --self-test: the helper (${ts_self_helper:-?}) is gone" pid_gone "$ts_self_helper"
expect tokio_service 64 "usage: tokio_service [--helper-delay SECS] [--self-test]" -- --bogus
expect tokio_service 64 "--helper-delay takes seconds" -- --helper-delay soon
expect tokio_service 64 "--helper-delay needs SECS" -- --helper-delay
# --helper is hidden and only first: anywhere else it is a usage error.
expect tokio_service 64 "unknown argument \"--helper\"" -- --self-test --helper
check "examples/tokio_service.rs has no unsafe code" \
    test "$(sed 's|//.*||' examples/tokio_service.rs | grep -c '\bunsafe\b')" -eq 0

if ! need_cmd python3 python3; then
    echo "FAIL the tokio_service stop-by-signal checks: no python3 (apt-get install python3)"
    fail=1
else
    # One signal once ready (SIGTERM, then Ctrl-C's SIGINT): exit 0 within
    # 1 s, the lines of a clean stop, the helper stopped and reaped.
    # shellcheck disable=SC2317  # called below
    ts_stops_on() { # SIG (TERM or INT), then tokio_service's arguments
        local sig=$1 out="$tmp/ts-$1.out" r helper; shift
        r=$(sigrun "line:tokio_service: ready (helper" child "$sig" "$out" \
            -- "$bin/tokio_service" "$@")
        sigcheck "tokio_service${*:+ $*}, SIG$sig: a clean stop" 0 1 "$r"
        check "tokio_service, SIG$sig: the lines, then: $(tail -n 1 "$out")" \
            ts_clean_stop "$out" "SIG$sig"
        helper=$(ts_helper "$out")
        check "tokio_service, SIG$sig: the helper (${helper:-?}) is gone" pid_gone "$helper"
    }
    ts_stops_on TERM
    ts_stops_on INT --helper-delay 0.05
    # SIGTERM while the helper takes 30 s to start: the launch is given up
    # at once (not after the helper's 30 s, nor launch_async's 30 s
    # timeout), and the helper killed with it.
    r=$(sigrun "line:tokio_service: launching the helper" child TERM "$tmp/ts-early.out" \
        -- "$bin/tokio_service" --helper-delay 30)
    sigcheck "tokio_service --helper-delay 30, SIGTERM while it starts: exit 0 at once" 0 1 "$r"
    check "tokio_service, SIGTERM while it starts: $(tail -n 1 "$tmp/ts-early.out")" \
        grep -q "^tokio_service: got SIGTERM while the helper was starting; killed it; exiting 0$" "$tmp/ts-early.out"
    # shellcheck disable=SC2317  # called through check
    no_slow_helper() { ! pgrep -f -- "tokio_service --helper --helper-delay 30\$" >/dev/null; }
    check "tokio_service, SIGTERM while it starts: no helper left running" no_slow_helper
    # A helper that dies while serving: one line, exit 1.
    "$bin/tokio_service" >"$tmp/ts-die.out" 2>&1 &
    ts=$!
    for _ in $(seq 1000); do [[ -n $(ts_helper "$tmp/ts-die.out") ]] && break; sleep 0.01; done
    ts_die_helper=$(ts_helper "$tmp/ts-die.out")
    if [[ -n $ts_die_helper ]]; then
        kill -KILL "$ts_die_helper"
    else
        kill -KILL "$ts" # never ready: do not wait for it forever
    fi
    code=0
    wait "$ts" || code=$?
    check "tokio_service, its helper killed: exit $code (want 1): $(tail -n 1 "$tmp/ts-die.out")" \
        grep -q "^tokio_service: helper ${ts_die_helper:-?} was killed by signal 9 while serving; exiting 1$" "$tmp/ts-die.out"
    check "exit 1 for a helper that dies while serving" test "$code" -eq 1
fi

# ---------------------------------------------------------------------------
# launch --wait: supervising a ready service. Contract (examples/launch.rs):
#   launch [--timeout SECS] [--detach] [--wait [--watchdog SECS]]
#          [--listen unix:PATH | --listen tcp:HOST:PORT]... -- PROGRAM [ARGS...]
# With --wait, after "NAME (pid N) is ready...; waiting for it to end" one
# line per later notification ("launch: NAME: STATUS=...", "RELOADING=1
# MONOTONIC_USEC=N", "READY=1", "STOPPING=1", "WATCHDOG=1", "watchdog
# expired: ..."); SIGTERM, SIGINT and SIGHUP forwarded ("launch: forwarded
# SIGTERM to NAME (pid N)"); exit: the program's status (128+N for signal
# N), or 5 when the watchdog expired. --watchdog without --wait, or a
# --listen of neither form: 64; a --listen address not bound: 71.
#
# The background launches here are signalled by their own pid, never
# through timeout(1): timeout passes a signal to its whole process group,
# so the program would get it twice (and a second SIGTERM forces a stop).
# A background job of a script starts with SIGINT ignored, and launch (as
# SignalInterrupt does) leaves an inherited-ignored signal ignored: env
# --default-signal=INT gives it SIGINT as a terminal would.
# lw_start OUT LAUNCH_ARGS...: starts launch (pid in lw_pid), its output
# in OUT, and waits up to 20 s for its "waiting for it to end" line.
lw_start() {
    local out=$1
    shift
    env --default-signal=INT "$bin/launch" "$@" >"$out" 2>&1 </dev/null &
    lw_pid=$!
    wait_until 20 grep -q "; waiting for it to end$" "$out"
}
# lw_program OUT: the program's pid, from launch's ready line.
lw_program() { sed -n 's/^launch: .* (pid \([0-9]*\)) is ready.*/\1/p' "$1" | head -n 1; }
# lw_end OUT SECS: waits up to SECS for lw_pid to end; lw_code is then its
# exit status, or "hung" (launch and its program are killed then).
lw_end() {
    local prog
    if timeout "$2" tail -s 0.05 --pid="$lw_pid" -f /dev/null; then
        lw_code=0
        wait "$lw_pid" || lw_code=$?
    else
        prog=$(lw_program "$1")
        kill -KILL "$lw_pid" 2>/dev/null || true
        [[ -z $prog ]] || kill -KILL "$prog" 2>/dev/null || true
        wait "$lw_pid" || true
        lw_code=hung
    fi
}
# lw_check OUT WHAT CONDITION...: check, printing OUT (indented) on failure.
lw_check() {
    local out=$1 what=$2
    shift 2
    if "$@"; then
        echo "ok   $what"
    else
        echo "FAIL $what; launch's output:"
        sed 's/^/    /' "$out"
        fail=1
    fi
}
# lw_in_order OUT TEXT...: each TEXT is on a line of OUT after the line of
# the one before.
# shellcheck disable=SC2317  # called through lw_check
lw_in_order() {
    local out=$1 from=0 n text
    shift
    for text in "$@"; do
        n=$(awk -v from="$from" -v s="$text" 'NR > from && index($0, s) { print NR; exit }' "$out")
        [[ -n $n ]] || { echo "    no '$text' after line $from"; return 1; }
        from=$n
    done
}
# lw_runs PID: PID is a number and a live process (not a zombie).
# shellcheck disable=SC2317  # called through lw_check
lw_runs() {
    [[ $1 =~ ^[0-9]+$ ]] && [[ -e /proc/$1 ]] &&
        [[ $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) != Z ]]
}
# shellcheck disable=SC2317  # called through wait_until
lw_gone() { ! lw_runs "$1"; }
# shellcheck disable=SC2317  # called through lw_check
lw_both_run() { lw_runs "$1" && lw_runs "$2"; }
# lw_ends_within SECS PID: PID is a number, and no live process by SECS.
# shellcheck disable=SC2317  # called through lw_check
lw_ends_within() { [[ $2 =~ ^[0-9]+$ ]] && wait_until "$1" lw_gone "$2"; }
# lw_count OUT TEXT: how many lines of OUT hold TEXT.
lw_count() { grep -cF -- "$2" "$1" || true; }

# Usage and binding, which need no tool.
expect launch 64 "--watchdog needs --wait" -- --watchdog 1 -- true
expect launch 64 "--watchdog takes a positive number of seconds" -- --wait --watchdog 0 -- true
expect launch 64 "--watchdog takes seconds" -- --wait --watchdog soon -- true
expect launch 64 "--listen takes unix:PATH or tcp:HOST:PORT, not \"bogus\"" -- --listen bogus -- true
expect launch 64 "--listen needs an address" -- --listen
# Neither form either (echo_service refuses both, 64): an empty path, a
# TCP address with no port.
expect launch 64 "usage:" -- --listen unix: -- true
expect launch 64 "usage:" -- --listen tcp:localhost -- true
expect launch 71 "launch: cannot listen on unix:$tmp/no-such-dir/x.sock: " \
    -- --listen "unix:$tmp/no-such-dir/x.sock" -- true
# A path that exists is not replaced: 71, and the file is as it was.
echo "not a socket" >"$tmp/lw-taken"
expect launch 71 "launch: cannot listen on unix:$tmp/lw-taken: " -- --listen "unix:$tmp/lw-taken" -- true
check "launch --listen unix:PATH left the file at PATH as it was: $(cat "$tmp/lw-taken" 2>&1)" \
    test -f "$tmp/lw-taken" -a "$(cat "$tmp/lw-taken" 2>&1)" = "not a socket"

lw_tools=1
need_cmd systemd-notify systemd || { echo "FAIL the launch --wait checks: no systemd-notify (Debian package systemd)"; lw_tools=0; fail=1; }
need_cmd socat socat || { echo "FAIL the launch --wait checks: no socat (Debian package socat)"; lw_tools=0; fail=1; }
if [[ $lw_tools -eq 1 ]]; then
    # Without --wait, as before: ready, exit 0, the program left running.
    expect launch 0 "is ready; exiting 0 and leaving it running" -- -- systemd-notify --ready

    # Its exit code, and a STATUS= said after ready, in its own line.
    expect_saving "$tmp/lw-7.out" launch 7 "launch: sh: STATUS=working" \
        -- --wait -- sh -c 'systemd-notify --ready; systemd-notify STATUS=working; exit 7'
    lw_check "$tmp/lw-7.out" "launch --wait, exit 7: ready, then STATUS=working, then: $(tail -n 1 "$tmp/lw-7.out")" \
        lw_in_order "$tmp/lw-7.out" "; waiting for it to end" "launch: sh: STATUS=working" \
        "launch: sh exited with status 7; exiting 7"
    # Killed by a signal after ready: 128+N.
    # shellcheck disable=SC2016  # $$ is the child shell's
    expect launch 143 "launch: sh was killed by signal 15; exiting 143" \
        -- --wait -- sh -c 'systemd-notify --ready; kill -TERM $$'

    # shutdown: SIGHUP forwarded, the reload in protocol words; then
    # SIGTERM forwarded, STOPPING=1, and shutdown's clean stop, exit 0.
    out="$tmp/lw-sd.out"
    sd="$bin/shutdown"
    if lw_start "$out" --wait -- "$sd" --workers 2 --drain 0.1; then
        kill -HUP "$lw_pid" 2>/dev/null || true
        wait_until 20 grep -q "^launch: $sd: READY=1$" "$out" || true
        lw_check "$out" "launch --wait -- shutdown, SIGHUP: forwarded, then RELOADING=1 MONOTONIC_USEC=, READY=1: $(grep -F "$sd: RELOADING" "$out" || echo "no RELOADING line")" \
            lw_in_order "$out" "launch: forwarded SIGHUP to $sd (pid " \
            "launch: $sd: RELOADING=1 MONOTONIC_USEC=" "launch: $sd: READY=1"
        lw_check "$out" "launch --wait -- shutdown, SIGHUP: MONOTONIC_USEC is a number" \
            grep -qE "^launch: $sd: RELOADING=1 MONOTONIC_USEC=[0-9]+$" "$out"
        kill -TERM "$lw_pid" 2>/dev/null || true
        lw_end "$out" 20
        lw_check "$out" "launch --wait -- shutdown, SIGTERM: exit $lw_code (want 0: shutdown's clean stop): $(tail -n 1 "$out")" \
            test "$lw_code" = 0
        lw_check "$out" "launch --wait -- shutdown, SIGTERM: forwarded, STOPPING=1, all workers stopped, exiting 0" \
            lw_in_order "$out" "launch: forwarded SIGTERM to $sd (pid " "launch: $sd: STOPPING=1" \
            "launch: $sd exited with status 0; exiting 0"
        lw_check "$out" "launch --wait -- shutdown, SIGTERM: shutdown's clean stop: $(grep -m 1 "workers stopped" "$out" || echo "no 'workers stopped' line")" \
            grep -q "^shutdown: all 2 workers stopped in .*; exiting 0$" "$out"
    else
        lw_end "$out" 1
        lw_check "$out" "launch --wait -- shutdown: ready within 20 s (exit $lw_code)" false
    fi

    # SIGINT is forwarded too: shutdown's Ctrl-C clean stop, exit 0.
    out="$tmp/lw-int.out"
    if lw_start "$out" --wait -- "$sd" --workers 1 --drain 0.1; then
        kill -INT "$lw_pid" 2>/dev/null || true
        lw_end "$out" 20
        lw_check "$out" "launch --wait -- shutdown, SIGINT: exit $lw_code (want 0): $(tail -n 1 "$out")" \
            test "$lw_code" = 0
        lw_check "$out" "launch --wait -- shutdown, SIGINT: forwarded, shutdown got SIGINT, STOPPING=1" \
            lw_in_order "$out" "launch: forwarded SIGINT to $sd (pid " "launch: $sd: STOPPING=1" \
            "launch: $sd exited with status 0; exiting 0"
        lw_check "$out" "launch --wait -- shutdown, SIGINT: $(grep -m 1 "got SIG" "$out" || echo "no 'got SIG' line")" \
            grep -q "^shutdown: got SIGINT" "$out"
    else
        lw_end "$out" 1
        lw_check "$out" "launch --wait -- shutdown (for SIGINT): ready within 20 s (exit $lw_code)" false
    fi

    # --watchdog 1: shutdown pings every 0.5 s (WATCHDOG_USEC and
    # WATCHDOG_PID set for it); 3 s on, it still runs, no expiry.
    out="$tmp/lw-wd.out"
    if lw_start "$out" --wait --watchdog 1 -- "$sd" --workers 1 --drain 0.1; then
        sleep 3
        pings=$(lw_count "$out" "launch: $sd: WATCHDOG=1")
        prog=$(lw_program "$out")
        lw_check "$out" "launch --wait --watchdog 1 -- shutdown, 3 s: $pings WATCHDOG=1 lines (want 3 or more)" \
            test "$pings" -ge 3
        lw_check "$out" "launch --wait --watchdog 1 -- shutdown, 3 s: no 'watchdog expired' line" \
            test "$(lw_count "$out" "watchdog expired")" -eq 0
        lw_check "$out" "launch --wait --watchdog 1 -- shutdown, 3 s: launch ($lw_pid) and shutdown (${prog:-?}) still run" \
            lw_both_run "$lw_pid" "$prog"
        kill -TERM "$lw_pid" 2>/dev/null || true
        lw_end "$out" 20
        lw_check "$out" "launch --wait --watchdog 1 -- shutdown, SIGTERM: exit $lw_code (want 0): $(tail -n 1 "$out")" \
            lw_in_order "$out" "launch: forwarded SIGTERM to $sd (pid " "launch: $sd: STOPPING=1" \
            "launch: $sd exited with status 0; exiting 0"
        lw_check "$out" "launch --wait --watchdog 1 -- shutdown: exit code $lw_code is 0" test "$lw_code" = 0
    else
        lw_end "$out" 1
        lw_check "$out" "launch --wait --watchdog 1 -- shutdown: ready within 20 s (exit $lw_code)" false
    fi

    # --watchdog 0.5 and no ping: SIGABRT, exit 5 (well before the 5 s
    # grace: sh dies of SIGABRT), and what it started (the sleep, whose
    # pid it wrote) killed with it.
    out="$tmp/lw-wdx.out"
    rm -f "$tmp/lw-sleep.pid"
    t0=$(now)
    code=0
    # shellcheck disable=SC2016  # $! and $1 are the child shell's
    timeout 60 "$bin/launch" --wait --watchdog 0.5 \
        -- sh -c 'systemd-notify --ready; sleep 30 & echo $! >"$1"; wait' sh "$tmp/lw-sleep.pid" \
        >"$out" 2>&1 </dev/null || code=$?
    took=$(elapsed "$t0")
    lw_check "$out" "launch --wait --watchdog 0.5 -- (no pings): exit $code in ${took}s (want 5 within 10 s): $(tail -n 1 "$out")" \
        awk -v c="$code" -v t="$took" 'BEGIN { exit !(c == 5 && t + 0 <= 10) }'
    lw_check "$out" "launch --wait --watchdog 0.5 -- (no pings): ready, 'watchdog expired', then the exit 5 line" \
        lw_in_order "$out" "; waiting for it to end" "launch: sh: watchdog expired: " \
        "launch: sh was killed by signal 6 after its watchdog expired; exiting 5"
    lw_sleep=$(cat "$tmp/lw-sleep.pid" 2>/dev/null || true)
    lw_check "$out" "launch --wait --watchdog 0.5: the program's sleep (${lw_sleep:-no pid written}) is gone" \
        lw_ends_within 5 "$lw_sleep"
    if lw_runs "$lw_sleep"; then kill -KILL "$lw_sleep" 2>/dev/null || true; fi

    # Socket activation: echo_service on the sockets launch bound (its own
    # --listen ignored, as it says), a line back on each; SIGTERM forwarded,
    # STOPPING=1 and echo_service's clean stop, exit 0.
    out="$tmp/lw-echo.out"
    sock="$tmp/lw-echo.sock"
    es="$bin/echo_service"
    rm -f "$sock"
    if lw_start "$out" --wait --watchdog 2 --listen "unix:$sock" --listen tcp:127.0.0.1:0 \
        -- "$es" --listen "unix:$tmp/lw-ignored.sock"; then
        port=$(sed -n 's/^echo_service: listening on tcp:127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
        lw_check "$out" "launch --listen unix: --listen tcp:127.0.0.1:0 -- echo_service: $(grep -m 1 "socket activation" "$out" || echo "no 'socket activation' line")" \
            grep -qx "echo_service: 2 sockets by socket activation; --listen ignored" "$out"
        lw_check "$out" "launch --listen -- echo_service: listening on unix:$sock, then on TCP port ${port:-?}" \
            lw_in_order "$out" "echo_service: listening on unix:$sock" "echo_service: listening on tcp:127.0.0.1:"
        check "launch --listen -- echo_service: its own --listen made no socket" test ! -e "$tmp/lw-ignored.sock"
        got=$(printf 'hello\n' | timeout 10 socat -t 5 - "UNIX-CONNECT:$sock" 2>&1) || true
        lw_check "$out" "launch --listen unix:$sock -- echo_service: 'hello' back: '$got'" test "$got" = hello
        got=$(printf 'over tcp\n' | timeout 10 socat -t 5 - "TCP:127.0.0.1:${port:-1}" 2>&1) || true
        lw_check "$out" "launch --listen tcp:127.0.0.1:0 -- echo_service (port ${port:-?}): 'over tcp' back: '$got'" \
            test "$got" = "over tcp"
        kill -TERM "$lw_pid" 2>/dev/null || true
        lw_end "$out" 20
        lw_check "$out" "launch --wait --listen -- echo_service, SIGTERM: exit $lw_code (want 0): $(tail -n 1 "$out")" \
            test "$lw_code" = 0
        lw_check "$out" "launch --wait --listen -- echo_service, SIGTERM: forwarded, echo_service's clean stop, exiting 0" \
            lw_in_order "$out" "launch: forwarded SIGTERM to $es (pid " \
            "launch: $es exited with status 0; exiting 0"
        lw_check "$out" "launch --wait --listen -- echo_service, SIGTERM: $(grep -m 1 "^echo_service: got" "$out" || echo "no 'got' line")" \
            grep -qx "echo_service: got SIGTERM; stopping; exiting 0" "$out"
        # echo_service says STOPPING=1 just before it exits: launch must
        # still print it (what was said before the end is not dropped).
        lw_check "$out" "launch --wait --listen -- echo_service, SIGTERM: $(grep -m 1 "STOPPING" "$out" || echo "no STOPPING=1 line")" \
            grep -qx "launch: $es: STOPPING=1" "$out"
    else
        lw_end "$out" 1
        lw_check "$out" "launch --wait --listen -- echo_service: ready within 20 s (exit $lw_code)" false
    fi
fi

exit $fail
