#!/usr/bin/env bash
# The daemon's side of readiness, proven against launchers that no one here
# wrote, from Debian's packages: examples/ready_daemon is started by
#   - start-stop-daemon --notify-await (dpkg): systemd's notify socket, as
#     Debian's init scripts use it;
#   - s6-supervise with a notification-fd file, waited for by s6-svwait -U
#     (s6): the notification fd;
#   - socat binding the notify socket itself, by path and by @abstract name
#     (socat), which shows the exact datagrams a systemd-style receiver
#     reads, next to what systemd's own sender, systemd-notify, sends;
# and the launcher's side, examples/launch, against systemd-notify (with its
# barriers), ready_daemon on each channel, and another user's sender.
# Each mode (ready, --fail, --crash) must come out as each launcher defines
# it. One "ok   ..." or "FAIL ..." line per check; exits 1 if any failed.
# Every process it leaves running is stopped and every file removed on the
# way out; the ready_daemon --serve 1 that examples/launch starts (and leaves
# running, as a launcher does) are not tracked: each exits by itself a second
# after it is ready, well before the last check, which looks for any
# ready_daemon still running.
#
# Usage: ci/launchers.sh            (Linux; installs dpkg, s6, socat and
#                                    systemd's packages when missing)
# Environment: CARGO_TARGET_DIR (default target/). About 20 s.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start="$(now)"

[ "$(uname -s)" = Linux ] || die "Linux only (abstract sockets, s6, start-stop-daemon); this is $(uname -s)"
# start-stop-daemon lives in sbin, which a non-login shell may not have.
PATH="$PATH:/usr/sbin:/sbin"
command -v cargo >/dev/null 2>&1 || die "missing tool: cargo"
need_cmd start-stop-daemon dpkg || die "missing tool: start-stop-daemon (Debian package dpkg)"
for cmd in s6-supervise s6-svok s6-svwait s6-svstat s6-svc; do
    need_cmd "$cmd" s6 || die "missing tool: $cmd (Debian package s6)"
done
need_cmd socat socat || die "missing tool: socat (Debian package socat)"
need_cmd systemd-notify systemd || die "missing tool: systemd-notify (Debian package systemd)"
start-stop-daemon --help 2>&1 | grep -q -- --notify-await \
    || die "$(start-stop-daemon --version | head -n 1) has no --notify-await"

# Whatever launched this script must not be what ready_daemon reports to.
unset NOTIFY_SOCKET TOKENPIPE_READY_FD

cd "$ROOT"
log "cargo build --example ready_daemon"
bin="$(cargo build --example ready_daemon --message-format=json-render-diagnostics \
    | grep -o '"executable":"[^"]*ready_daemon[^"]*"' | cut -d'"' -f4 | tail -n 1)" \
    || die "building the ready_daemon example failed"
[ -x "$bin" ] || die "could not find the built ready_daemon example"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/launchers.XXXXXX")"
bg_pids=()     # socat receivers and s6-supervise processes we started
services=()    # s6 service directories, for s6-svc -dx

# Stops everything this script started, whatever state it got to: the s6
# services, the daemons start-stop-daemon left running (by their pid files),
# then our own background processes, by pid.
cleanup() {
    local svc pidfile pid
    for svc in "${services[@]}"; do
        if s6-svok "$svc" 2>/dev/null; then s6-svc -dx "$svc" 2>/dev/null || true; fi
    done
    for pidfile in "$tmp"/*.pid; do
        [ -e "$pidfile" ] || continue
        start-stop-daemon --stop --quiet --oknodo --pidfile "$pidfile" --exec "$bin" \
            --retry TERM/2/KILL/2 >/dev/null 2>&1 || true
    done
    for pid in "${bg_pids[@]}"; do
        stop_pid "$pid"
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
# Interrupted by hand or by a CI timeout: still clean up (through exit).
trap 'exit 130' INT
trap 'exit 143' TERM


# stop_pid PID: ends our background process PID (SIGTERM, up to 5 s, then
# SIGKILL) and reaps it. Once only: after that the number may be reused.
stopped=" "
stop_pid() {
    local pid=$1 _
    [[ $stopped == *" $pid "* ]] && return 0
    stopped+="$pid "
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# start-stop-daemon --notify-await: it binds a socket in a directory of its
# own, sets NOTIFY_SOCKET for the daemon, and waits for READY=1 or ERRNO=.
# Each start has its own pid file: with --exec alone it would refuse to
# start a program that is already running ("... already running.", exit 1).

# ssd_start NAME FLAGS...: sets ssd_out (what it printed), ssd_code, ssd_secs.
ssd_start() {
    local name=$1 t0
    shift
    t0="$(now)"
    ssd_code=0
    ssd_out="$(timeout 30 start-stop-daemon --start --notify-await --notify-timeout 5 \
        --background --pidfile "$tmp/ssd-$name.pid" --make-pidfile \
        --output "$tmp/ssd-$name.log" --exec "$bin" -- "$@" --serve 30 2>&1)" || ssd_code=$?
    ssd_secs="$(elapsed "$t0")"
}

ssd_start ready
pid="$(cat "$tmp/ssd-ready.pid" 2>/dev/null || echo none)"
said="$(one_line "$(cat "$tmp/ssd-ready.log" 2>/dev/null)")"
if [ "$ssd_code" -eq 0 ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$bin" ] \
        && grep -q "reporting through Notifier::Socket" "$tmp/ssd-ready.log"; then
    pass "start-stop-daemon --notify-await, ready: exit 0 after ${ssd_secs}s, daemon $pid running (it said: $said)"
else
    fail "start-stop-daemon --notify-await, ready: exit $ssd_code (want 0) after ${ssd_secs}s, daemon ${pid} $(readlink "/proc/$pid/exe" 2>/dev/null || echo 'not running'); printed: $(one_line "$ssd_out"); daemon said: $said"
fi
stop_code=0
timeout 30 start-stop-daemon --stop --quiet --pidfile "$tmp/ssd-ready.pid" --exec "$bin" \
    --retry TERM/5/KILL/5 --remove-pidfile || stop_code=$?
if [ "$stop_code" -eq 0 ]; then
    pass "start-stop-daemon --stop stopped the ready daemon $pid"
else
    fail "start-stop-daemon --stop, ready daemon $pid: exit $stop_code (want 0)"
fi

ssd_start fail --fail
said="$(one_line "$(cat "$tmp/ssd-fail.log" 2>/dev/null)")"
if [ "$ssd_code" -eq 2 ] && [ "$ssd_out" = "start-stop-daemon: program failed to initialize (Input/output error)" ]; then
    pass "start-stop-daemon --notify-await, --fail: exit 2 after ${ssd_secs}s: $ssd_out (the daemon said: $said)"
else
    fail "start-stop-daemon --notify-await, --fail: exit $ssd_code (want 2) after ${ssd_secs}s; printed: $(one_line "$ssd_out") (want: program failed to initialize (Input/output error)); daemon said: $said"
fi

# start-stop-daemon does not watch the child: a daemon that dies without a
# word is noticed only when the whole --notify-timeout has passed.
ssd_start crash --crash
if [ "$ssd_code" -ne 0 ] && [ "$ssd_out" = "start-stop-daemon: timed out waiting for a notification" ]; then
    pass "start-stop-daemon --notify-await, --crash: waited out the 5 s timeout, exit $ssd_code after ${ssd_secs}s: $ssd_out"
else
    fail "start-stop-daemon --notify-await, --crash: exit $ssd_code (want non-zero) after ${ssd_secs}s; printed: $(one_line "$ssd_out") (want: timed out waiting for a notification)"
fi

# ---------------------------------------------------------------------------
# s6: s6-supervise opens a pipe on fd 3 (notification-fd) before it execs
# run; the daemon writes a newline there when ready. s6-svwait -U waits for
# that. The finish script logs how each run ended.

# s6_service NAME FLAGS...: a service directory $tmp/NAME running
# ready_daemon --notify-fd 3 --serve 30 FLAGS, logging to $tmp/NAME.log;
# starts s6-supervise on it and waits until it runs.
s6_service() {
    local name=$1 svc="$tmp/$1" pid
    shift
    mkdir "$svc"
    echo 3 >"$svc/notification-fd"
    printf '#!/bin/sh\nexec 2>>%q\nexec %q --notify-fd 3 --serve 30 %s\n' \
        "$tmp/$name.log" "$bin" "$*" >"$svc/run"
    # finish gets the exit code and the signal of the run that ended.
    # shellcheck disable=SC2016  # $1 and $2 are finish's, not ours
    printf '#!/bin/sh\necho "finish: exit $1, signal $2" >>%q\n' "$tmp/$name.log" >"$svc/finish"
    chmod +x "$svc/run" "$svc/finish"
    services+=("$svc")
    s6-supervise "$svc" </dev/null &
    pid=$!
    bg_pids+=("$pid")
    wait_until 5 s6-svok "$svc" || log "s6-supervise $svc is not running"
}

# s6_stop NAME: s6-svc -dx (down, then s6-supervise exits), and waits.
s6_stop() {
    local svc="$tmp/$1"
    if s6-svok "$svc" 2>/dev/null; then s6-svc -dx "$svc"; fi
    # shellcheck disable=SC2016  # $1 is the inner shell's
    wait_until 5 sh -c '! s6-svok "$1" 2>/dev/null' sh "$svc" || true
}

s6_service s6-ready
code=0
out="$(timeout 30 s6-svwait -U -t 10000 "$tmp/s6-ready" 2>&1)" || code=$?
stat="$(s6-svstat "$tmp/s6-ready" 2>&1 || true)"
if [ "$code" -eq 0 ] && [[ $stat == up*ready* ]]; then
    pass "s6-svwait -U -t 10000, ready: exit 0; s6-svstat: $stat"
else
    fail "s6-svwait -U -t 10000, ready: exit $code (want 0): $(one_line "$out"); s6-svstat: $stat; daemon said: $(one_line "$(cat "$tmp/s6-ready.log" 2>/dev/null)")"
fi
s6_stop s6-ready

# --fail closes fd 3 without a newline and exits 1; --crash exits 3 without
# a word. Neither may ever count as ready: s6-svwait -U times out (exit 99)
# while s6-supervise restarts the daemon once a second.
for mode in fail crash; do
    s6_service "s6-$mode" "--$mode"
    code=0
    out="$(timeout 30 s6-svwait -U -t 3000 "$tmp/s6-$mode" 2>&1)" || code=$?
    s6_stop "s6-$mode"
    want_exit=1
    [ "$mode" = crash ] && want_exit=3
    # Every run ended with the mode's exit code, but the last, which our
    # s6-svc -d may have ended with SIGTERM.
    runs="$(grep -c "^finish: exit $want_exit, signal 0\$" "$tmp/s6-$mode.log" 2>/dev/null || true)"
    others="$(grep '^finish:' "$tmp/s6-$mode.log" 2>/dev/null \
        | grep -v -e "^finish: exit $want_exit, signal 0\$" -e '^finish: exit 256, signal 15$' || true)"
    if [ "$code" -eq 99 ] && [ "$out" = "s6-svwait: fatal: timed out" ] \
            && [ "${runs:-0}" -ge 1 ] && [ -z "$others" ] \
            && ! grep -q "ready; serving" "$tmp/s6-$mode.log"; then
        pass "s6-svwait -U -t 3000, --$mode: not ready, exit 99: $out ($runs runs under s6-supervise, each ended with exit $want_exit, none ready)"
    else
        fail "s6-svwait -U -t 3000, --$mode: exit $code (want 99, timed out): $(one_line "$out"); log: $(one_line "$(cat "$tmp/s6-$mode.log" 2>/dev/null)")"
    fi
done

# ---------------------------------------------------------------------------
# socat as the receiver: it binds the notify socket (a path, or an @abstract
# name) and writes what it receives; its -v dump gives each datagram's
# length, so the capture splits back into datagrams. A last datagram of our
# own marks the end, so nothing sent before it can still be in flight.

# socat_listen ADDR: starts socat receiving on ADDR (/path or @name).
socat_listen() {
    local addr=$1 recv
    case $addr in
        @*) recv="ABSTRACT-RECV:${addr#@}" ;;
        *) recv="UNIX-RECV:$addr" ;;
    esac
    : >"$tmp/capture"
    socat -u -v "$recv" "OPEN:$tmp/capture,append" 2>"$tmp/capture.v" </dev/null &
    socat_pid=$!
    bg_pids+=("$socat_pid")
    case $addr in
        @*) wait_until 5 grep -q " ${addr}\$" /proc/net/unix ;;
        *) wait_until 5 test -S "$addr" ;;
    esac || log "socat did not bind $addr"
}

# socat_datagrams ADDR: sends the end mark to ADDR, waits for it, stops
# socat, and prints one line per datagram received before the mark.
socat_datagrams() {
    local addr=$1 send data off=0 n datagram
    case $addr in
        @*) send="ABSTRACT-SENDTO:${addr#@}" ;;
        *) send="UNIX-SENDTO:$addr" ;;
    esac
    printf 'X-END=1' | timeout 10 socat -u STDIN "$send" || true
    wait_until 5 grep -q 'X-END=1$' "$tmp/capture" || true
    stop_pid "$socat_pid"
    data="$(LC_ALL=C cat "$tmp/capture")"
    while read -r n; do
        datagram="${data:off:n}"
        off=$((off + n))
        if [ "$datagram" != X-END=1 ]; then echo "$datagram"; fi
    done < <(grep -ao 'length=[0-9]*' "$tmp/capture.v" | cut -d= -f2)
}

n=0
for addr in "$tmp/notify" "@tokenpipe-launchers-$$-$RANDOM"; do
    for mode in ready fail crash; do
        flags=()
        want_code=0
        want="STATUS=initialising READY=1 STATUS=serving"
        case $mode in
            fail) flags=(--fail) want_code=1 want="STATUS=initialising ERRNO=5" ;;
            crash) flags=(--crash) want_code=3 want="STATUS=initialising" ;;
        esac
        # A fresh path each time: socat does not bind over an old socket file.
        [[ $addr == /* ]] && addr="$tmp/notify-$((n += 1))"
        socat_listen "$addr"
        code=0
        NOTIFY_SOCKET="$addr" timeout 30 "$bin" "${flags[@]}" --serve 0.2 2>"$tmp/daemon.err" \
            || code=$?
        got="$(socat_datagrams "$addr" | tr '\n' ' ' | sed 's/ $//')"
        kind=path
        [[ $addr == @* ]] && kind="@abstract name"
        if [ "$code" -eq "$want_code" ] && [ "$got" = "$want" ]; then
            pass "socat on NOTIFY_SOCKET ($kind), ${flags[*]:-ready}: exit $code; datagrams: $got"
        else
            fail "socat on NOTIFY_SOCKET ($kind), ${flags[*]:-ready}: exit $code (want $want_code); datagrams: '$got' (want '$want'); daemon said: $(one_line "$(cat "$tmp/daemon.err")")"
        fi
    done
done

# systemd's own sender, to the same kind of receiver: its READY=1 and
# STATUS= datagrams are the very bytes ready() and status() send. (--no-block:
# socat does not take part in BARRIER=1, which systemd-notify sends after.)
addr="$tmp/notify-systemd"
socat_listen "$addr"
code=0
{ NOTIFY_SOCKET="$addr" timeout 10 systemd-notify --no-block --ready \
    && NOTIFY_SOCKET="$addr" timeout 10 systemd-notify --no-block --status=serving; } \
    2>"$tmp/systemd-notify.err" || code=$?
got="$(socat_datagrams "$addr" | tr '\n' ' ' | sed 's/ $//')"
if [ "$code" -eq 0 ] && [ "$got" = "READY=1 STATUS=serving" ]; then
    pass "systemd-notify --ready, --status=serving ($(systemd-notify --version | head -n 1)): datagrams: $got, the same bytes as ready_daemon's"
else
    fail "systemd-notify --ready, --status=serving: exit $code; datagrams: '$got' (want 'READY=1 STATUS=serving'): $(one_line "$(cat "$tmp/systemd-notify.err")")"
fi

# ---------------------------------------------------------------------------
# The launcher's side: ready::launch, as examples/launch, against systemd's
# own sender (which follows each message with BARRIER=1 and waits for the
# fd it passed to be closed) and against ready_daemon.
log "cargo build --example launch"
launch_bin="$(cargo build --example launch --message-format=json-render-diagnostics \
    | grep -o '"executable":"[^"]*/launch[^"]*"' | cut -d'"' -f4 | tail -n 1)" \
    || die "building the launch example failed"
[ -x "$launch_bin" ] || die "could not find the built launch example"
need_cmd setpriv util-linux || die "missing tool: setpriv (Debian package util-linux)"

# launch_case WHAT WANT_EXIT MAX_SECONDS ARGS...: runs launch ARGS, checks its
# exit code and that it answered within MAX_SECONDS.
launch_case() {
    local what="$1" want="$2" max="$3" t0 out code=0 took
    shift 3
    t0="$(now)"
    # Into a file, not $(...): the program launch leaves running holds
    # launch's stdout, and a capture would wait for it too.
    timeout 60 "$launch_bin" "$@" >"$tmp/launch.out" 2>&1 || code=$?
    launch_code=$code
    took="$(elapsed "$t0")"
    out="$(cat "$tmp/launch.out")"
    if [ "$code" -eq "$want" ] && awk -v t="$took" -v m="$max" 'BEGIN { exit !(t < m) }'; then
        pass "launch $what: exit $code after ${took}s: $(one_line "$out")"
    else
        fail "launch $what: exit $code after ${took}s (want $want within ${max}s): $(one_line "$out")"
    fi
}

launch_case "-- systemd-notify --ready" 0 5 -- systemd-notify --ready
launch_case "-- sh -c 'systemd-notify --status=up && systemd-notify --ready' (barriers completed at once)" \
    0 2 -- sh -c 'systemd-notify --status=up && systemd-notify --ready'
launch_case "-- ready_daemon --crash (its death seen, not the timeout)" 2 1 -- "$bin" --crash
launch_case "-- ready_daemon --serve 1 (the token pipe)" 0 5 -- "$bin" --serve 1
launch_case "-- ready_daemon --fail" 1 5 -- "$bin" --fail
# shellcheck disable=SC2016  # expanded by the launched shell
launch_case "-- sh -c 'exec ready_daemon --notify-fd \$TOKENPIPE_READY_FD' (s6 style)" 0 5 \
    -- sh -c 'exec "$0" --notify-fd "$TOKENPIPE_READY_FD" --serve 1' "$bin"
launch_case "--timeout 1 -- a program that never reports (killed at the timeout)" 3 5 \
    --timeout 1 -- sh -c 'exec sleep 30'
# Who is heard on a launch's socket is decided by who sent, not by who can
# reach the path: a process the launch contains is heard whatever its user
# (a program started as another user, here systemd-notify as nobody,
# holding on until its barrier is served), and another user's process
# outside the launch is not (it reaches the socket, and its READY=1 is
# dropped: only the timeout ends that launch). The shells record, in $tmp,
# the uid systemd-notify ran as and its exit status, so each check sees why.
if [ "$(id -u)" -ne 0 ]; then
    fail "launch -- systemd-notify as another user (uid 65534): needs root, to run setpriv --reuid (as do this script's apt installs); run it as root"
else
    rm -f "$tmp/nobody.uid" "$tmp/nobody.rc" "$tmp/nobody.err"
    launch_code=-1
    # shellcheck disable=SC2016  # expanded by the launched shell
    launch_case "--timeout 10 -- setpriv --reuid=65534 systemd-notify --ready (a contained process of another user is heard)" 0 10 \
        --timeout 10 -- sh -c 'rc=0
            setpriv --reuid=65534 --regid=65534 --clear-groups \
                sh -c "id -u >&3; exec systemd-notify --ready" \
                3>"$0/nobody.uid" 2>"$0/nobody.err" || rc=$?
            echo "$rc" >"$0/nobody.rc"
            exec sleep 30' "$tmp"
    for _ in $(seq 500); do [ -s "$tmp/nobody.rc" ] && break; sleep 0.01; done
    n_uid="$(cat "$tmp/nobody.uid" 2>/dev/null || echo none)"
    n_rc="$(cat "$tmp/nobody.rc" 2>/dev/null || echo none)"
    n_err="$(cat "$tmp/nobody.err" 2>/dev/null || true)"
    if [ "$n_uid" = 65534 ] && [ "$n_rc" = 0 ] && [ "$launch_code" -eq 0 ]; then
        pass "a contained process of another user is heard: systemd-notify as uid $n_uid exited $n_rc, its barrier served; launch exited $launch_code"
    else
        fail "a contained process of another user is heard: want systemd-notify as uid 65534 to exit 0 and launch to exit 0; got uid $n_uid, exit $n_rc, stderr '$(one_line "$n_err")', launch exit $launch_code"
    fi
    rm -f "$tmp/outsider.sock" "$tmp/outsider.rc"
    # shellcheck disable=SC2016  # expanded by the launched shell
    "$launch_bin" --timeout 3 -- sh -c 'echo "$NOTIFY_SOCKET" >"$0/outsider.sock"; exec sleep 30' "$tmp" \
        >"$tmp/outsider.out" 2>&1 &
    outsider_launch=$!
    for _ in $(seq 500); do [ -s "$tmp/outsider.sock" ] && break; sleep 0.01; done
    o_rc=0
    NOTIFY_SOCKET="$(cat "$tmp/outsider.sock" 2>/dev/null)" setpriv --reuid=65534 --regid=65534 --clear-groups \
        systemd-notify --no-block --ready 2>"$tmp/outsider.err" || o_rc=$?
    o_code=0
    wait "$outsider_launch" || o_code=$?
    if [ "$o_rc" -eq 0 ] && [ "$o_code" -eq 3 ]; then
        pass "another user's process outside the launch is not heard: its systemd-notify reached the socket (exit 0), and launch timed out (exit 3)"
    else
        fail "another user's process outside the launch is not heard: want its systemd-notify to exit 0 and launch to exit 3; got $o_rc ('$(one_line "$(cat "$tmp/outsider.err")")') and $o_code ($(one_line "$(cat "$tmp/outsider.out")"))"
    fi
fi

# ---------------------------------------------------------------------------
# Nothing may outlive the script: stop what is left now, then look.
for svc in "${services[@]}"; do s6_stop "$(basename "$svc")"; done
for pid in "${bg_pids[@]}"; do stop_pid "$pid"; done
left=""
for proc in /proc/[0-9]*; do
    if [ "$(readlink "$proc/exe" 2>/dev/null)" = "$bin" ]; then left="$left ${proc#/proc/}"; fi
done
# Background jobs of this shell that were never reaped.
for pid in $(jobs -p); do left="$left $pid"; done
if [ -z "$left" ]; then
    pass "no ready_daemon, s6-supervise or socat this script started is still running"
else
    fail "still running:$left"
fi

echo "launchers: $passes passed, $failures failed ($(elapsed "$start")s)"
[ "$failures" -eq 0 ]
