#!/usr/bin/env bash
# The daemon's side of readiness under the real thing: systemd (Debian 12's
# 252) as PID 1 of a fresh set of namespaces, starting this crate's examples
# as its units and judged by what systemd itself says of them
# (`systemctl show -p ... --value`):
#   - ready_daemon as Type=notify: ready is active/running with the STATUS=
#     text it sent after READY=1; --fail is failed with StatusErrno=5;
#     --crash fails at once, not at the start timeout; a daemon that is
#     ready and then exits 0 ends inactive with Result=success; stopped,
#     it exits 0 on the SIGTERM (ExecMainCode=exited, not killed);
#   - shutdown as Type=notify: active with its STATUS= text; systemctl stop
#     returns in under 1 s, the workers stopped cleanly, Result=success,
#     ExecMainStatus=0;
#   - WatchdogSec=1: shutdown, which pings every 0.5 s, is still active
#     (the same MainPID) 3 s later; the control, ready_daemon, which never
#     pings, is killed and fails with Result=watchdog;
#   - systemctl reload of shutdown (ExecReload=/bin/kill -HUP $MAINPID):
#     exit 0; it answers RELOADING=1 (with MONOTONIC_USEC=), then READY=1,
#     and is active/running again, the same MainPID, its status text and
#     log saying it reloaded;
#   - socket activation: ec-notify.socket (ListenStream=/run/echo.sock)
#     listens and starts nothing; the first connection starts echo_service
#     as Type=notify on that socket, and the line sent comes back; it
#     reports READY=1, takes a reload, and stops with exit 0;
#   - tokio_service as Type=notify (KillMode=mixed): active with StatusText
#     "serving; helper PID N ready" once the helper it launched with
#     launch_async is; systemctl stop returns in under 1 s, Result=success,
#     ExecMainStatus=0, and the helper it stopped is gone;
#   - EXTEND_TIMEOUT_USEC=: ready_daemon --init 4 under TimeoutStartSec=2
#     comes up, asking for more time as it goes; the control, a 4 s start
#     that asks for nothing, is killed at 2 s with Result=timeout;
#   - daemon_wait as Type=forking with PIDFile=: MainPID is the daemon named
#     in the pid file, not the launcher; after stop, nothing is left, and
#     the daemon removed its pid file itself.
# One "ok   ..." or "FAIL ..." line per check; exits 1 if any failed.
#
# The host is protected from the systemd it starts: its units carry
# DefaultDependencies=no and the start unit pulls in nothing, so
# sysinit.target (and its systemd-tmpfiles --boot --remove) never runs; and
# before systemd is exec'd, the namespace has private tmpfs on /run, /tmp,
# /var/tmp and /dev/shm, a read-only view of / (and of /sys, /proc/sys,
# /proc/sysrq-trigger), its own cgroup2 tree in a cgroup of its own, no
# CAP_SYS_MODULE, CAP_SYS_TIME, CAP_SYSLOG or CAP_WAKE_ALARM, /dev/console
# on /dev/null, and /dev/kmsg on a file of ours, where systemd's own log
# goes. The init script checks that a marker file in the host's /tmp cannot
# be seen and that / cannot be written, or refuses to start systemd.
# On the way out (pass, fail or interrupted) systemd is killed and waited
# for (the kernel then kills everything else in its namespace, and the
# mounts go with the namespace), its cgroups are removed, and the last
# checks confirm nothing is left. Every wait has a bound.
#
# Usage: ci/systemd.sh              (Linux, as root; installs util-linux,
#                                    procps and systemd when missing)
# Environment: CARGO_TARGET_DIR (default target/; anywhere, /tmp included,
# though the namespace hides /tmp, /var/tmp, /run and /dev/shm: the work
# directory is mounted from an fd held before). The units' logs and
# systemd's own (systemd.log) stay in <target>/systemd-ci/log. About 17 s.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start="$(now)"

[ "$(uname -s)" = Linux ] || die "Linux only (namespaces, cgroup2, systemd); this is $(uname -s)"
[ "$(id -u)" -eq 0 ] || die "needs root: it makes namespaces, mounts and a cgroup, and runs systemd as PID 1"
PATH="$PATH:/usr/sbin:/sbin"
command -v cargo >/dev/null 2>&1 || die "missing tool: cargo"
for cmd in unshare nsenter setpriv mountpoint; do
    need_cmd "$cmd" util-linux || die "missing tool: $cmd (Debian package util-linux)"
done
need_cmd pgrep procps || die "missing tool: pgrep (Debian package procps)"
need_cmd socat socat || die "missing tool: socat (Debian package socat)"
need_cmd systemctl systemd || die "missing tool: systemctl (Debian package systemd)"
systemd_bin=/lib/systemd/systemd
[ -x "$systemd_bin" ] || apt_ensure systemd || true
[ -x "$systemd_bin" ] || die "missing tool: $systemd_bin (Debian package systemd)"
systemd_version="$("$systemd_bin" --version | head -n 1)"

# The cgroup2 hierarchy (hybrid hosts have it at /sys/fs/cgroup/unified) and
# our place in it: systemd gets a cgroup below ours, as its whole tree.
cg2_root="$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)"
[ -n "$cg2_root" ] || die "no cgroup2 hierarchy mounted (systemd here runs on its own cgroup2 tree)"
cg2_self="$(sed -n 's/^0:://p' /proc/self/cgroup)"
[ -n "$cg2_self" ] || die "this process is in no cgroup2 cgroup (/proc/self/cgroup has no 0:: line)"

# Whatever launched this script must not be what the examples report to.
unset NOTIFY_SOCKET TOKENPIPE_READY_FD

cd "$ROOT"
log "cargo build --examples"
built="$(cargo build --examples --message-format=json-render-diagnostics \
    | grep -o '"executable":"[^"]*"' | cut -d'"' -f4)" \
    || die "building the examples failed"
rd_bin="$(grep '/ready_daemon$' <<<"$built" | tail -n 1)" || true
dw_bin="$(grep '/daemon_wait$' <<<"$built" | tail -n 1)" || true
sd_bin="$(grep '/shutdown$' <<<"$built" | tail -n 1)" || true
ec_bin="$(grep '/echo_service$' <<<"$built" | tail -n 1)" || true
[ -x "$rd_bin" ] || die "could not find the built ready_daemon example"
[ -x "$dw_bin" ] || die "could not find the built daemon_wait example"
[ -x "$sd_bin" ] || die "could not find the built shutdown example"
[ -x "$ec_bin" ] || die "could not find the built echo_service example"
# tokio_service needs the tokio feature (required-features), so the build
# above skips it.
log "cargo build --features tokio --example tokio_service"
ts_bin="$(cargo build --features tokio --example tokio_service --message-format=json-render-diagnostics \
    | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep '/tokio_service$' | tail -n 1)" \
    || die "building the tokio_service example failed"
[ -x "$ts_bin" ] || die "could not find the built tokio_service example"

# The work directory: what the namespace sees of the host besides the
# read-only root (as /run/ci). It may be anywhere, /tmp included: the init
# holds it open before it hides /tmp, /var/tmp, /run and /dev/shm, and
# mounts it from that fd.
work="$(realpath -m "${CARGO_TARGET_DIR:-$ROOT/target}")/systemd-ci"
rm -rf "$work"
mkdir -p "$work/bin" "$work/units" "$work/log"
cp "$rd_bin" "$dw_bin" "$sd_bin" "$ts_bin" "$ec_bin" "$work/bin/"
: >"$work/log/systemd.log"

cgparent="$cg2_root${cg2_self%/}"
cgroup="$cgparent/tokenpipe-systemd-ci.$$"

# What a run killed outright left: its (empty) cgroups and its marker, named
# after the pid of a script that is no longer running.
for stale in "$cgparent"/tokenpipe-systemd-ci.* /tmp/tokenpipe-systemd-ci.*; do
    [ -e "$stale" ] || continue
    pid="${stale##*/tokenpipe-systemd-ci.}"
    pid="${pid%%.*}"
    case $pid in "" | *[!0-9]*) continue ;; esac
    if [ "$pid" -ne $$ ] && ! kill -0 "$pid" 2>/dev/null; then
        log "removing $stale, left by an earlier run (pid $pid) that was killed"
        if [ -d "$stale" ]; then
            find "$stale" -depth -type d -exec rmdir {} + 2>/dev/null \
                || log "could not remove $stale (still has processes?)"
        else
            rm -f "$stale"
        fi
    fi
done
marker=""
unshare_pid=""
pid1=""
torn_down=0

# Stops systemd and everything in its namespace and removes its cgroups.
# Safe to call more than once, and at any stage of the set-up.
teardown() {
    [ "$torn_down" -eq 0 ] || return 0
    torn_down=1
    local _
    if [ -n "$pid1" ]; then kill -KILL "$pid1" 2>/dev/null || true; fi
    if [ -n "$unshare_pid" ]; then
        # unshare exits once its child, the namespace's PID 1, has; and
        # PID 1 exits only after every other process in the namespace.
        for _ in $(seq 100); do kill -0 "$unshare_pid" 2>/dev/null || break; sleep 0.1; done
        # Still there: kill it; --kill-child makes the kernel kill PID 1.
        kill -KILL "$unshare_pid" 2>/dev/null || true
        wait "$unshare_pid" 2>/dev/null || true
    fi
    if [ -d "$cgroup" ]; then
        # Emptied cgroups can stay busy for a moment while the kernel
        # finishes with the processes that were in them.
        for _ in $(seq 50); do
            find "$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null || true
            [ -d "$cgroup" ] || break
            sleep 0.1
        done
    fi
}
trap 'teardown; rm -f "$marker"' EXIT
# A file in the host's /tmp that the namespace must not see, and that must
# still be there at the end.
marker="$(mktemp "/tmp/tokenpipe-systemd-ci.$$.XXXXXX")"
# Interrupted by hand or by a CI timeout: still tear down (through exit).
trap 'exit 130' INT
trap 'exit 143' TERM


# ---------------------------------------------------------------------------
# The units. Every one has DefaultDependencies=no: without it a service
# pulls in sysinit.target, whose systemd-tmpfiles --boot --remove empties
# /tmp. Their output goes to log/NAME.log (the namespace's /run/ci/log).

# unit NAME TYPE [KEY=VALUE...]: writes units/NAME.service.
unit() {
    local name=$1 type=$2 line
    shift 2
    {
        printf '[Unit]\nDescription=tokenpipe CI: %s\nDefaultDependencies=no\n\n' "$name"
        printf '[Service]\nType=%s\n' "$type"
        for line in "$@"; do printf '%s\n' "$line"; done
        printf 'StandardOutput=append:/run/ci/log/%s.log\nStandardError=inherit\n' "$name"
    } >"$work/units/$name.service"
}

# The start unit pulls in nothing. Its After= on every other unit starts
# none of them, but it does keep each loaded once it has run: systemd
# unloads (garbage-collects) an inactive unit nothing refers to, and one
# loaded afresh shows default properties (Result=success, no timestamps),
# which would make "ended with Result=success" true of any unit.
write_start_target() {
    local f
    printf '[Unit]\nDescription=tokenpipe CI: the start unit (pulls in nothing)\nDefaultDependencies=no\n'
    for f in "$work"/units/*.service; do printf 'After=%s\n' "${f##*/}"; done
}

# NotifyAccess=main: ready_daemon is the unit's main process itself (no
# shell, no fork) and sends every message from it, so no other process in
# the unit needs to be heard; =all would let any of them report for it.
# (Seen here: under a wrapper shell that does not exec, systemd drops each
# message "from PID 49, but reception only permitted for main PID 48", and
# the start times out; =none is taken as =main for Type=notify.)
rd=/run/ci/bin/ready_daemon
notify=("NotifyAccess=main" "TimeoutStartSec=30")
unit rd-ready notify "${notify[@]}" "ExecStart=$rd --serve 300"
unit rd-fail notify "${notify[@]}" "ExecStart=$rd --fail"
unit rd-crash notify "${notify[@]}" "ExecStart=$rd --crash"
unit rd-exit notify "${notify[@]}" "ExecStart=$rd --serve 1"
unit rd-extend notify NotifyAccess=main TimeoutStartSec=2 "ExecStart=$rd --init 4 --serve 300"
# The control: the same 4 s before READY=1, but spent in a shell that then
# execs ready_daemon with its default 0.2 s initialisation, which asks for
# no more time.
unit rd-noextend notify NotifyAccess=main TimeoutStartSec=2 \
    "ExecStart=/bin/sh -c 'sleep 4; exec $rd --serve 300'"
# daemon_wait: the launcher (the shell, which records its pid, then execs
# daemon_wait) forks the daemon, which takes the pid file and reports; the
# launcher then exits 0, and systemd reads the pid file. ExecStopPost
# records whether the pid file was still there once the daemon had gone.
# ($$$$ is the shell's $$: systemd reads $$ as a literal $.)
unit dw-forking forking PIDFile=/run/dw.pid TimeoutStartSec=30 \
    "ExecStart=/bin/sh -c 'echo \$\$\$\$ >/run/ci/log/dw-launcher.pid; exec /run/ci/bin/daemon_wait --pid-file /run/dw.pid --serve 300'" \
    "ExecStopPost=/bin/sh -c 'if [ -e /run/dw.pid ]; then echo present; else echo absent; fi >/run/ci/log/dw-stoppost'"

# shutdown: three workers that take 0.2 s to drain once asked to stop.
# TimeoutStopSec=10: a stop that took that long would fail the 1 s check,
# not end in a SIGKILL that hides why.
# WatchdogSec=1: it pings every 0.5 s. ExecReload: SIGHUP to it, which
# answers RELOADING=1, then READY=1.
unit sd-notify notify NotifyAccess=main TimeoutStartSec=30 TimeoutStopSec=10 WatchdogSec=1 \
    "ExecStart=/run/ci/bin/shutdown --workers 3 --drain 0.2" \
    'ExecReload=/bin/kill -HUP $MAINPID'
# The watchdog's control: ready_daemon reports READY=1 and never pings.
# WatchdogSignal=SIGKILL, not the default SIGABRT: nothing may dump core
# (the host's core_pattern could hand the dump to a host program).
unit rd-nowatchdog notify NotifyAccess=main TimeoutStartSec=30 WatchdogSec=1 WatchdogSignal=SIGKILL \
    "ExecStart=$rd --serve 300"

# tokio_service: launches itself as a helper (launch_async), reports
# READY=1 once the helper is ready, and on SIGTERM stops the helper and
# exits 0. KillMode=mixed, as its docs say: the SIGTERM goes to the main
# process alone, which stops its helper itself (the default, control-group,
# would signal the helper too, and hide whether tokio_service stops it).
unit ts-notify notify NotifyAccess=main KillMode=mixed TimeoutStartSec=30 TimeoutStopSec=10 \
    "ExecStart=/run/ci/bin/tokio_service"

# echo_service by socket activation: ec-notify.socket listens on
# /run/echo.sock (the namespace's private /run) and starts ec-notify.service
# on the first connection, handing it the socket as fd 3. Without it
# echo_service has no socket (no --listen) and exits 64: serving proves
# the activation. DefaultDependencies=no here too: a socket unit would
# otherwise pull in sockets.target and sysinit.target.
unit ec-notify notify NotifyAccess=main TimeoutStartSec=30 TimeoutStopSec=10 WatchdogSec=1 \
    "ExecStart=/run/ci/bin/echo_service" \
    'ExecReload=/bin/kill -HUP $MAINPID'
printf '[Unit]\nDescription=tokenpipe CI: ec-notify socket\nDefaultDependencies=no\n\n[Socket]\nListenStream=/run/echo.sock\n' \
    >"$work/units/ec-notify.socket"

write_start_target >"$work/units/tokenpipe-ci.target"

# ---------------------------------------------------------------------------
# The namespace's init: runs as its PID 1, makes the host invisible or
# read-only, checks that it is, and only then execs systemd.
cat >"$work/init.sh" <<'EOF'
set -euo pipefail
work=$1 marker=$2 systemd_bin=$3
say() { echo "init: $*" >&2; }
cd /
# fstype MOUNTPOINT: the type and source of what is mounted there last.
fstype() { awk -v m="$1" '$5 == m { for (i = 7; $i != "-"; i++); t = $(i + 1) " " $(i + 2) } END { print t }' /proc/self/mountinfo; }
# The work directory may be under one of the directories hidden next
# (a clone in /tmp): held open first, it is mounted from the fd, which
# still names it once its path is covered.
exec 9<"$work"
for dir in /run /tmp /var/tmp /dev/shm; do
    mode=1777
    [ "$dir" = /run ] && mode=0755
    mount -t tmpfs -o "mode=$mode,nosuid,nodev" tokenpipe-systemd-ci "$dir"
done
mkdir /run/ci
mount --bind /proc/self/fd/9 /run/ci
exec 9<&-
# PID 1 logs to the console or to the kernel's ring buffer, the host's
# both: the console goes nowhere (systemd wants a terminal there, and
# /dev/null is none, so it does not even write), and the ring buffer is a
# file of ours (--log-target=kmsg; systemd writes it as it would the real).
mount --bind /dev/null /dev/console
[ -c /dev/kmsg ] || { say "no /dev/kmsg to put systemd's log on"; exit 1; }
mount --bind /run/ci/log/systemd.log /dev/kmsg
# systemd's cgroup tree: a fresh cgroup2 mount, rooted (by the cgroup
# namespace) at the cgroup made for it; no host hierarchy stays visible.
umount -R /sys/fs/cgroup
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
for ro in /proc/sys /proc/sysrq-trigger; do
    [ -e "$ro" ] || continue   # no sysrq-trigger in a kernel without magic SysRq
    mount --bind "$ro" "$ro"
    mount -o remount,bind,ro "$ro"
done
mount -o remount,bind,ro /sys
mount -o remount,bind,ro /
# Refuse to go on unless the host is out of reach.
for dir in /run /tmp /var/tmp /dev/shm; do
    [ "$(fstype "$dir")" = "tmpfs tokenpipe-systemd-ci" ] \
        || { say "$dir is $(fstype "$dir"), not our private tmpfs"; exit 1; }
done
[ ! -e "$marker" ] || { say "the host's $marker is visible: /tmp is not private"; exit 1; }
if touch /etc/.tokenpipe-systemd-ci 2>/dev/null; then
    rm -f /etc/.tokenpipe-systemd-ci
    say "/etc is writable: the root is not read-only"
    exit 1
fi
[ "$(fstype /sys/fs/cgroup)" = "cgroup2 cgroup2" ] || { say "/sys/fs/cgroup is $(fstype /sys/fs/cgroup)"; exit 1; }
mkdir -p /run/systemd/system
cp /run/ci/units/* /run/systemd/system/
say "host out of reach; exec $systemd_bin"
exec setpriv --bounding-set -sys_module,-sys_time,-syslog,-wake_alarm \
    env -i container=other PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    "$systemd_bin" --system --unit=tokenpipe-ci.target \
    --log-target=kmsg --log-color=no --show-status=no
EOF

log "systemd as PID 1 of a fresh namespace ($systemd_version)"
mkdir "$cgroup"
# A subshell moves itself into the cgroup, then becomes unshare; its child
# (our PID 1) starts in that cgroup, the root of its cgroup namespace.
# Should this script be killed outright (SIGKILL: no trap runs), the kernel
# still kills unshare (--pdeathsig), then PID 1 (--kill-child); only the
# empty cgroup would be left. (When PID 1 dies of SIGKILL, unshare says
# "sigprocmask unblock failed": it cannot reset SIGKILL to re-raise it.)
(
    echo "$BASHPID" >"$cgroup/cgroup.procs"
    exec setpriv --pdeathsig KILL \
        unshare --fork --kill-child --pid --mount --mount-proc --cgroup --uts --ipc --net \
        --propagation private bash "$work/init.sh" "$work" "$marker" "$systemd_bin"
) </dev/null >"$work/log/init.log" 2>&1 &
unshare_pid=$!

# ns CMD...: CMD inside the namespace (a bounded wait).
ns() { timeout 60 nsenter -t "$pid1" -m -p -u -i -C -n -- "$@"; }
# prop UNIT PROPERTY: what systemd says of UNIT's PROPERTY.
prop() { ns systemctl show -p "$2" --value "$1" 2>/dev/null || echo "?"; }
# diag UNIT: the unit's own log and what systemd logged about it.
diag() {
    printf 'its log: %s; systemd: %s' \
        "$(one_line "$(cat "$work/log/$1.log" 2>/dev/null)")" \
        "$(one_line "$(grep -F "$1" "$work/log/systemd.log" | tail -n 6)")"
}
# timed VERB UNIT: systemctl VERB UNIT, timed; sets VERB_code, VERB_out and
# VERB_secs (start_code, stop_secs, ...).
timed() {
    local t0 code=0 out
    t0="$(now)"
    out="$(ns systemctl "$1" "$2" 2>&1)" || code=$?
    printf -v "$1_code" '%s' "$code"
    printf -v "$1_out" '%s' "$out"
    printf -v "$1_secs" '%s' "$(elapsed "$t0")"
}
start_code=0 start_out="" start_secs=0 stop_code=0 stop_out="" stop_secs=0
reload_code=0 reload_out="" reload_secs=0
start_unit() { timed start "$1"; }
stop_unit() { timed stop "$1"; }
# lt A B / ge A B: compare two decimals.
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

booted() {
    kill -0 "$unshare_pid" 2>/dev/null || return 2
    [ -n "$pid1" ] || pid1="$(pgrep -P "$unshare_pid" | head -n 1)" || true
    [ -n "$pid1" ] || return 1
    [ "$(readlink "/proc/$pid1/exe" 2>/dev/null)" = "$(readlink -f "$systemd_bin")" ] || return 1
    [ "$(ns systemctl is-system-running 2>/dev/null)" = running ]
}
t0="$(now)"
code=1
while [ "$code" -eq 1 ] && lt "$(elapsed "$t0")" 30; do
    code=0
    booted || code=$?
    [ "$code" -ne 1 ] || sleep 0.05
done
if [ "$code" -ne 0 ]; then
    why="it did not come up within 30 s"
    [ "$code" -eq 2 ] && why="its namespace ended"
    [ -n "$pid1" ] && why="$why; systemctl is-system-running: $(ns systemctl is-system-running 2>&1 || true)"
    fail "systemd as PID 1: $why; init said: $(one_line "$(cat "$work/log/init.log")"); systemd said: $(one_line "$(tail -n 20 "$work/log/systemd.log")")"
    echo "systemd: $passes passed, $failures failed ($(elapsed "$start")s)"
    exit 1
fi
boot_secs="$(elapsed "$t0")"

# The isolation, seen from outside and inside: nothing pulled in
# sysinit.target or systemd-tmpfiles, the host sees none of the
# namespace's mounts, the namespace sees none of the host's /tmp.
sysinit="$(prop sysinit.target ActiveState)"
tmpfiles="$(prop systemd-tmpfiles-setup.service ActiveState)"
leaked="$(grep -c tokenpipe-systemd-ci /proc/self/mountinfo || true)"
if [ "$sysinit" = inactive ] && [ "$tmpfiles" = inactive ] && [ "$leaked" -eq 0 ] \
        && ns test ! -e "$marker" && [ -e "$marker" ]; then
    pass "isolation: PID 1 is systemd (host pid $pid1, running after ${boot_secs}s); sysinit.target and systemd-tmpfiles-setup never started; the host's /tmp marker is invisible inside; the host sees none of its mounts"
else
    fail "isolation: sysinit.target $sysinit, systemd-tmpfiles-setup $tmpfiles (want inactive, inactive); namespace mounts visible on the host: $leaked (want 0); marker inside: $(ns ls "$marker" 2>&1 || true)"
fi

# ---------------------------------------------------------------------------
# 1. Ready: start returns once READY=1 is in; STATUS=serving comes in a
# datagram of its own just after, so StatusText may take a moment.
start_unit rd-ready
status_is_serving() { [ "$(prop rd-ready StatusText)" = serving ]; }
wait_until 5 status_is_serving || true
st="$(prop rd-ready ActiveState)/$(prop rd-ready SubState)"
text="$(prop rd-ready StatusText)"
if [ "$start_code" -eq 0 ] && [ "$st" = active/running ] && [ "$text" = serving ]; then
    pass "Type=notify, ready: start exit 0 after ${start_secs}s; $st; StatusText=$text"
else
    fail "Type=notify, ready: start exit $start_code after ${start_secs}s (want 0): $(one_line "$start_out"); $st (want active/running); StatusText='$text' (want serving); $(diag rd-ready)"
fi
# ended_clean UNIT: "Result ExecMainCode ExecMainStatus" of UNIT; the
# caller wants "success 1 0" (1 is CLD_EXITED: it exited, not killed).
ended_clean() {
    echo "$(prop "$1" Result) $(prop "$1" ExecMainCode) $(prop "$1" ExecMainStatus)"
}
# Stopped with SIGTERM while it serves: it stops at once and exits 0. (It
# used to die of the SIGTERM: Result=success all the same, since systemd
# counts SIGTERM as a clean end, but ExecMainCode=2 and status 15.)
stop_unit rd-ready
ended="$(ended_clean rd-ready)"
if [ "$stop_code" -eq 0 ] && [ "$ended" = "success 1 0" ] && lt "$stop_secs" 1; then
    pass "Type=notify, stop: exit 0 after ${stop_secs}s; Result ExecMainCode ExecMainStatus: $ended (exited 0 on SIGTERM)"
else
    fail "Type=notify, stop: exit $stop_code after ${stop_secs}s (want 0 within 1 s): $(one_line "$stop_out"); Result ExecMainCode ExecMainStatus: $ended (want success 1 0: exited 0, not killed); $(diag rd-ready)"
fi

# 2. --fail: ERRNO=5, then exit 1.
start_unit rd-fail
st="$(prop rd-fail ActiveState)"
result="$(prop rd-fail Result)"
errno="$(prop rd-fail StatusErrno)"
if [ "$start_code" -ne 0 ] && [ "$st" = failed ] && [ "$errno" = 5 ]; then
    pass "Type=notify, --fail: start exit $start_code after ${start_secs}s; $st, Result=$result, StatusErrno=$errno"
else
    fail "Type=notify, --fail: start exit $start_code after ${start_secs}s (want non-zero); ActiveState $st (want failed); StatusErrno '$errno' (want 5); Result=$result; $(diag rd-fail)"
fi

# 3. --crash: exit 3 without a word; systemd sees the main process die and
# fails the start then, not at TimeoutStartSec=30.
start_unit rd-crash
st="$(prop rd-crash ActiveState)"
result="$(prop rd-crash Result)"
status="$(prop rd-crash ExecMainStatus)"
if [ "$start_code" -ne 0 ] && [ "$st" = failed ] && lt "$start_secs" 3; then
    pass "Type=notify, --crash: start exit $start_code after ${start_secs}s (TimeoutStartSec=30); $st, Result=$result, ExecMainStatus=$status"
else
    fail "Type=notify, --crash: start exit $start_code after ${start_secs}s (want non-zero within 3 s); ActiveState $st (want failed); Result=$result; $(diag rd-crash)"
fi

# 4. Ready, then exit 0 a second later: a start that succeeds (so the unit
# was active), then inactive with Result=success.
start_unit rd-exit
is_inactive() { [ "$(prop rd-exit ActiveState)" = inactive ]; }
wait_until 10 is_inactive || true
st="$(prop rd-exit ActiveState)"
result="$(prop rd-exit Result)"
status="$(prop rd-exit ExecMainStatus)"
entered="$(prop rd-exit ActiveEnterTimestampMonotonic)"
# A unit loaded afresh would have no invocation and no timestamps.
invocation="$(prop rd-exit InvocationID)"
if [ "$start_code" -eq 0 ] && [ "$st" = inactive ] && [ "$result" = success ] \
        && [ "$status" = 0 ] && [ "${entered:-0}" != 0 ] && [ -n "$invocation" ]; then
    pass "Type=notify, ready then exit 0: start exit 0 after ${start_secs}s; then $st, Result=$result, ExecMainStatus=$status"
else
    fail "Type=notify, ready then exit 0: start exit $start_code (want 0): $(one_line "$start_out"); then $st (want inactive), Result=$result (want success), ExecMainStatus=$status (want 0), ActiveEnterTimestampMonotonic=$entered (want non-zero), InvocationID '$invocation' (want one: else the unit was unloaded and these are defaults); $(diag rd-exit)"
fi

# 5. EXTEND_TIMEOUT_USEC=: 4 s of initialisation under TimeoutStartSec=2,
# asking for 1 s more every 0.5 s; and the control without the asking.
start_unit rd-extend
timeout_prop="$(prop rd-extend TimeoutStartUSec)"
st="$(prop rd-extend ActiveState)/$(prop rd-extend SubState)"
if [ "$start_code" -eq 0 ] && [ "$st" = active/running ] && [ "$timeout_prop" = 2s ] \
        && ge "$start_secs" 3.5; then
    pass "Type=notify, EXTEND_TIMEOUT_USEC=: ready_daemon --init 4 under TimeoutStartSec=$timeout_prop came up: start exit 0 after ${start_secs}s; $st"
else
    fail "Type=notify, EXTEND_TIMEOUT_USEC=: ready_daemon --init 4 under TimeoutStartSec=$timeout_prop (want 2s): start exit $start_code after ${start_secs}s (want 0 after at least 3.5 s): $(one_line "$start_out"); $st (want active/running); $(diag rd-extend)"
fi
ns systemctl stop rd-extend || true

start_unit rd-noextend
st="$(prop rd-noextend ActiveState)"
result="$(prop rd-noextend Result)"
if [ "$start_code" -ne 0 ] && [ "$st" = failed ] && [ "$result" = timeout ] && lt "$start_secs" 3.5; then
    pass "Type=notify, the control: a 4 s start that asks for no more time, under TimeoutStartSec=2: start exit $start_code after ${start_secs}s; $st, Result=$result"
else
    fail "Type=notify, the control: a 4 s start without EXTEND_TIMEOUT_USEC= under TimeoutStartSec=2: start exit $start_code after ${start_secs}s (want non-zero within 3.5 s); $st (want failed), Result=$result (want timeout); $(diag rd-noextend)"
fi

# 6. daemon_wait as Type=forking with PIDFile=.
start_unit dw-forking
main_pid="$(prop dw-forking MainPID)"
file_pid="$(ns cat /run/dw.pid 2>/dev/null | tr -d '[:space:]')" || true
launcher_pid="$(tr -d '[:space:]' <"$work/log/dw-launcher.pid" 2>/dev/null)" || true
st="$(prop dw-forking ActiveState)/$(prop dw-forking SubState)"
# The process at MainPID, inside the namespace: its name and its parent.
main_comm="$(ns cat "/proc/$main_pid/comm" 2>/dev/null)" || main_comm="(none)"
# shellcheck disable=SC2016  # awk's $2
main_ppid="$(ns awk '/^PPid:/ { print $2 }' "/proc/$main_pid/status" 2>/dev/null)" || main_ppid="?"
launcher_alive=no
if ns kill -0 "${launcher_pid:-0}" 2>/dev/null; then launcher_alive=yes; fi
if [ "$start_code" -eq 0 ] && [ "$st" = active/running ] && [ -n "$file_pid" ] \
        && [ "$main_pid" = "$file_pid" ] && [ "$main_comm" = daemon_wait ] \
        && [ -n "$launcher_pid" ] && [ "$main_pid" != "$launcher_pid" ] && [ "$launcher_alive" = no ]; then
    pass "Type=forking, PIDFile=: start exit 0 after ${start_secs}s; $st; MainPID $main_pid = the pid file's, a daemon_wait whose parent is $main_ppid; the launcher ($launcher_pid) has exited"
else
    fail "Type=forking, PIDFile=: start exit $start_code after ${start_secs}s (want 0): $(one_line "$start_out"); $st (want active/running); MainPID '$main_pid', pid file '$file_pid' (want equal), its name '$main_comm' (want daemon_wait); launcher '$launcher_pid' (want another pid, gone: alive=$launcher_alive); $(diag dw-forking)"
fi

# Stop: SIGTERM to the daemon, which stops serving at once and removes its
# pid file (ExecStopPost finds it gone). Before the daemon handled SIGTERM
# it died leaving the file, and systemd removed it once the unit was dead
# (systemd.service(5): "it will remove the file after the service has shut
# down if it still exists"): the check says who did, and wants the daemon.
stop_unit dw-forking
st="$(prop dw-forking ActiveState)"
result="$(prop dw-forking Result)"
file_left=no
if ns test -e /run/dw.pid; then file_left=yes; fi
daemon_alive=no
if ns kill -0 "${main_pid:-0}" 2>/dev/null; then daemon_alive=yes; fi
at_stoppost="$(cat "$work/log/dw-stoppost" 2>/dev/null || echo unknown)"
case $at_stoppost in
    present) who="systemd removed it (still there when ExecStopPost ran: the daemon, ended by SIGTERM, did not)" ;;
    absent) who="the daemon removed it (already gone when ExecStopPost ran)" ;;
    *) who="ExecStopPost did not record whether it was still there" ;;
esac
if [ "$stop_code" -eq 0 ] && [ "$st" = inactive ] && [ "$file_left" = no ] && [ "$daemon_alive" = no ] \
        && [ "$at_stoppost" = absent ]; then
    pass "Type=forking, stop: exit 0 after ${stop_secs}s; $st, Result=$result; the daemon is gone and so is /run/dw.pid: $who"
else
    fail "Type=forking, stop: exit $stop_code after ${stop_secs}s (want 0): $(one_line "$stop_out"); $st (want inactive), Result=$result; pid file left: $file_left (want no), daemon alive: $daemon_alive (want no); at ExecStopPost the pid file was $at_stoppost (want absent: the daemon removes it); $(diag dw-forking)"
fi

# 7. shutdown as Type=notify: READY=1 once its workers run, then its
# STATUS= text; systemctl stop (SIGTERM) drains them in 0.2 s and it exits
# 0, so the stop returns in under 1 s with Result=success.
start_unit sd-notify
sd_status_is_serving() { [ "$(prop sd-notify StatusText)" = "serving with 3 workers" ]; }
wait_until 5 sd_status_is_serving || true
st="$(prop sd-notify ActiveState)/$(prop sd-notify SubState)"
text="$(prop sd-notify StatusText)"
if [ "$start_code" -eq 0 ] && [ "$st" = active/running ] && [ "$text" = "serving with 3 workers" ]; then
    pass "Type=notify, shutdown: start exit 0 after ${start_secs}s; $st; StatusText=$text"
else
    fail "Type=notify, shutdown: start exit $start_code after ${start_secs}s (want 0): $(one_line "$start_out"); $st (want active/running); StatusText='$text' (want 'serving with 3 workers'); $(diag sd-notify)"
fi
# 7a. WatchdogSec=1: 3 s later it is still the same process, running,
# and systemd has heard a ping within the last second.
sd_main="$(prop sd-notify MainPID)"
sleep 3
st="$(prop sd-notify ActiveState)/$(prop sd-notify SubState)"
wd="$(prop sd-notify WatchdogUSec)"
sd_main_now="$(prop sd-notify MainPID)"
# WatchdogTimestampMonotonic: when systemd last heard WATCHDOG=1 (or
# READY=1); /proc/uptime is CLOCK_BOOTTIME, close enough to compare
# (no suspend in CI), and the same in the namespace.
ping_usec="$(prop sd-notify WatchdogTimestampMonotonic)"
ping_age="$(awk -v p="${ping_usec:-0}" '{ printf "%.2f", $1 - p / 1e6 }' /proc/uptime)"
if [ "$st" = active/running ] && [ "$wd" = 1s ] && [ -n "$sd_main" ] && [ "$sd_main" != 0 ] \
        && [ "$sd_main_now" = "$sd_main" ] && [ "${ping_usec:-0}" != 0 ] && lt "$ping_age" 1; then
    pass "WatchdogSec=1, shutdown: 3 s after the start $st, MainPID $sd_main still; WatchdogUSec=$wd; last ping ${ping_age}s ago"
else
    fail "WatchdogSec=1, shutdown: 3 s after the start $st (want active/running); WatchdogUSec=$wd (want 1s); MainPID $sd_main, now $sd_main_now (want the same); last ping ${ping_age}s ago (WatchdogTimestampMonotonic=$ping_usec; want under 1 s); $(diag sd-notify)"
fi

# 7b. systemctl reload: ExecReload sends SIGHUP; it answers RELOADING=1
# with MONOTONIC_USEC=, its status, then READY=1, and serves on. The
# reload job may end with ExecReload, before the answer: wait for it.
timed reload sd-notify
sd_reloaded() {
    [ "$(prop sd-notify StatusText)" = "serving with 3 workers; reloads: 1" ] \
        && [ "$(prop sd-notify ActiveState)/$(prop sd-notify SubState)" = active/running ]
}
wait_until 5 sd_reloaded || true
st="$(prop sd-notify ActiveState)/$(prop sd-notify SubState)"
text="$(prop sd-notify StatusText)"
said="$(grep -m 1 "SIGHUP" "$work/log/sd-notify.log" 2>/dev/null)" || said=""
sd_main_now="$(prop sd-notify MainPID)"
if [ "$reload_code" -eq 0 ] && [ "$st" = active/running ] && [ "$sd_main_now" = "$sd_main" ] \
        && [ "$text" = "serving with 3 workers; reloads: 1" ] && [ "$said" = "shutdown: got SIGHUP; reload 1 done" ]; then
    pass "systemctl reload, shutdown: exit 0 after ${reload_secs}s; $st, MainPID $sd_main still; StatusText=$text; it said: $said"
else
    fail "systemctl reload, shutdown: exit $reload_code after ${reload_secs}s (want 0): $(one_line "$reload_out"); $st (want active/running, not reloading); MainPID $sd_main_now (want $sd_main); StatusText='$text' (want 'serving with 3 workers; reloads: 1'); it said '$said' (want 'shutdown: got SIGHUP; reload 1 done'); $(diag sd-notify)"
fi

stop_unit sd-notify
ended="$(ended_clean sd-notify)"
st="$(prop sd-notify ActiveState)"
stopped="$(grep -c "^shutdown: worker [0-9]* stopped after" "$work/log/sd-notify.log" 2>/dev/null || true)"
last="$(tail -n 1 "$work/log/sd-notify.log" 2>/dev/null)"
if [ "$stop_code" -eq 0 ] && lt "$stop_secs" 1 && [ "$st" = inactive ] && [ "$ended" = "success 1 0" ] \
        && [ "$stopped" = 3 ] && [[ $last == "shutdown: all 3 workers stopped in "*"; exiting 0" ]]; then
    pass "Type=notify, shutdown, stop: exit 0 after ${stop_secs}s; $st; Result ExecMainCode ExecMainStatus: $ended; $stopped workers stopped; it said: $last"
else
    fail "Type=notify, shutdown, stop: exit $stop_code after ${stop_secs}s (want 0 within 1 s): $(one_line "$stop_out"); $st (want inactive); Result ExecMainCode ExecMainStatus: $ended (want success 1 0); workers stopped: $stopped (want 3); $(diag sd-notify)"
fi

# 7c. The watchdog's control: ready_daemon, ready and never pinging,
# under WatchdogSec=1: killed (WatchdogSignal=SIGKILL) about 1 s after
# READY=1, and the unit fails with Result=watchdog.
start_unit rd-nowatchdog
nowd_failed() { [ "$(prop rd-nowatchdog ActiveState)" = failed ]; }
wait_until 5 nowd_failed || true
st="$(prop rd-nowatchdog ActiveState)"
result="$(prop rd-nowatchdog Result)"
if [ "$start_code" -eq 0 ] && [ "$st" = failed ] && [ "$result" = watchdog ]; then
    pass "WatchdogSec=1, the control: ready_daemon, which never pings: start exit 0 after ${start_secs}s; then $st, Result=$result"
else
    fail "WatchdogSec=1, the control: ready_daemon, which never pings: start exit $start_code after ${start_secs}s (want 0): $(one_line "$start_out"); then $st (want failed), Result=$result (want watchdog); $(diag rd-nowatchdog)"
fi

# 8. Socket activation: the socket unit listens, nothing runs yet; a
# connection starts echo_service (Type=notify), which echoes the line.
timed start ec-notify.socket
sock_st="$(prop ec-notify.socket ActiveState)/$(prop ec-notify.socket SubState)"
svc_before="$(prop ec-notify.service ActiveState)"
if [ "$start_code" -eq 0 ] && [ "$sock_st" = active/listening ] && [ "$svc_before" = inactive ] \
        && ns test -S /run/echo.sock; then
    pass "socket activation: ec-notify.socket started, exit 0 after ${start_secs}s; $sock_st on /run/echo.sock; ec-notify.service $svc_before until a connection"
else
    fail "socket activation: start ec-notify.socket exit $start_code after ${start_secs}s (want 0): $(one_line "$start_out"); socket $sock_st (want active/listening); service $svc_before (want inactive); /run/echo.sock a socket: $(ns test -S /run/echo.sock && echo yes || echo no); $(diag ec-notify)"
fi
echoed="$(printf 'hello, activated\n' | ns socat -t 5 - UNIX-CONNECT:/run/echo.sock 2>&1)" || true
ec_ready() { [ "$(prop ec-notify.service ActiveState)/$(prop ec-notify.service SubState)" = active/running ]; }
wait_until 5 ec_ready || true
st="$(prop ec-notify.service ActiveState)/$(prop ec-notify.service SubState)"
text="$(prop ec-notify.service StatusText)"
listening="$(grep -m 1 "listening on" "$work/log/ec-notify.log" 2>/dev/null)" || listening=""
if [ "$echoed" = "hello, activated" ] && [ "$st" = active/running ] && [ "$text" = "serving on 1 socket" ] \
        && [ "$listening" = "echo_service: listening on unix:/run/echo.sock" ]; then
    pass "socket activation: the first connection started echo_service and got back '$echoed'; $st; StatusText=$text; it said: $listening"
else
    fail "socket activation: sent 'hello, activated', got back '$(one_line "$echoed")'; service $st (want active/running); StatusText='$text' (want 'serving on 1 socket'); it said '$listening' (want 'echo_service: listening on unix:/run/echo.sock'); $(diag ec-notify)"
fi
timed reload ec-notify.service
ec_reloaded() {
    [ "$(prop ec-notify.service StatusText)" = "serving on 1 socket; reloads: 1" ] && ec_ready
}
wait_until 5 ec_reloaded || true
st="$(prop ec-notify.service ActiveState)/$(prop ec-notify.service SubState)"
text="$(prop ec-notify.service StatusText)"
echoed="$(printf 'after the reload\n' | ns socat -t 5 - UNIX-CONNECT:/run/echo.sock 2>&1)" || true
if [ "$reload_code" -eq 0 ] && [ "$st" = active/running ] && [ "$text" = "serving on 1 socket; reloads: 1" ] \
        && [ "$echoed" = "after the reload" ]; then
    pass "socket activation, reload: exit 0 after ${reload_secs}s; $st; StatusText=$text; still echoes"
else
    fail "socket activation, reload: exit $reload_code after ${reload_secs}s (want 0): $(one_line "$reload_out"); $st (want active/running); StatusText='$text' (want 'serving on 1 socket; reloads: 1'); echoed '$(one_line "$echoed")'; $(diag ec-notify)"
fi
stop_unit ec-notify.service
ended="$(ended_clean ec-notify.service)"
last="$(tail -n 1 "$work/log/ec-notify.log" 2>/dev/null)"
ns systemctl stop ec-notify.socket || true
if [ "$stop_code" -eq 0 ] && lt "$stop_secs" 1 && [ "$ended" = "success 1 0" ] \
        && [ "$last" = "echo_service: got SIGTERM; stopping; exiting 0" ]; then
    pass "socket activation, stop: exit 0 after ${stop_secs}s; Result ExecMainCode ExecMainStatus: $ended; it said: $last"
else
    fail "socket activation, stop: exit $stop_code after ${stop_secs}s (want 0 within 1 s): $(one_line "$stop_out"); Result ExecMainCode ExecMainStatus: $ended (want success 1 0); last line '$last'; $(diag ec-notify)"
fi

# 9. tokio_service as Type=notify: READY=1 once its helper (launched with
# launch_async, reporting on a socket of the launch's own) is ready, then
# STATUS=serving; helper PID N ready. systemctl stop (SIGTERM to it alone,
# KillMode=mixed): it sends the helper SIGTERM, awaits its end and exits
# 0, all in under 1 s.
start_unit ts-notify
ts_status_is_serving() { [[ $(prop ts-notify StatusText) == "serving; helper PID "*" ready" ]]; }
wait_until 5 ts_status_is_serving || true
st="$(prop ts-notify ActiveState)/$(prop ts-notify SubState)"
text="$(prop ts-notify StatusText)"
ts_main="$(prop ts-notify MainPID)"
ts_helper="$(sed -n 's/^serving; helper PID \([0-9]*\) ready$/\1/p' <<<"$text")"
# The helper, inside the namespace: its name, its parent and whether it runs.
ts_helper_comm="$(ns cat "/proc/${ts_helper:-0}/comm" 2>/dev/null)" || ts_helper_comm="(none)"
# shellcheck disable=SC2016  # awk's $2
ts_helper_ppid="$(ns awk '/^PPid:/ { print $2 }' "/proc/${ts_helper:-0}/status" 2>/dev/null)" || ts_helper_ppid="?"
if [ "$start_code" -eq 0 ] && [ "$st" = active/running ] && [ -n "$ts_helper" ] \
        && [ "$ts_helper_comm" = tokio_service ] && [ "$ts_helper_ppid" = "$ts_main" ]; then
    pass "Type=notify, tokio_service: start exit 0 after ${start_secs}s; $st; StatusText=$text; the helper $ts_helper runs, a child of MainPID $ts_main"
else
    fail "Type=notify, tokio_service: start exit $start_code after ${start_secs}s (want 0): $(one_line "$start_out"); $st (want active/running); StatusText='$text' (want 'serving; helper PID N ready'); helper '$ts_helper' named '$ts_helper_comm' (want tokio_service), its parent '$ts_helper_ppid' (want MainPID $ts_main); $(diag ts-notify)"
fi
stop_unit ts-notify
ended="$(ended_clean ts-notify)"
st="$(prop ts-notify ActiveState)"
last="$(tail -n 1 "$work/log/ts-notify.log" 2>/dev/null)"
ts_helper_alive=no
if [ -n "$ts_helper" ] && ns kill -0 "$ts_helper" 2>/dev/null; then ts_helper_alive=yes; fi
if [ "$stop_code" -eq 0 ] && lt "$stop_secs" 1 && [ "$st" = inactive ] && [ "$ended" = "success 1 0" ] \
        && grep -qx "tokio_service: got SIGTERM; stopping" "$work/log/ts-notify.log" \
        && [ "$last" = "tokio_service: helper exited 0; exiting 0" ] && [ -n "$ts_helper" ] \
        && [ "$ts_helper_alive" = no ]; then
    pass "Type=notify, tokio_service, stop: exit 0 after ${stop_secs}s; $st; Result ExecMainCode ExecMainStatus: $ended; the helper $ts_helper is gone; it said: $last"
else
    fail "Type=notify, tokio_service, stop: exit $stop_code after ${stop_secs}s (want 0 within 1 s): $(one_line "$stop_out"); $st (want inactive); Result ExecMainCode ExecMainStatus: $ended (want success 1 0); last line '$last' (want 'tokio_service: helper exited 0; exiting 0', after 'got SIGTERM; stopping'); helper '$ts_helper' alive: $ts_helper_alive (want no); $(diag ts-notify)"
fi

# ---------------------------------------------------------------------------
# Nothing may outlive the script: tear down now, then look.
teardown
left=""
for proc in /proc/[0-9]*; do
    case "$(readlink "$proc/exe" 2>/dev/null)" in
        "$work"/bin/*) left="$left ${proc#/proc/}" ;;
    esac
done
if kill -0 "$pid1" 2>/dev/null; then left="$left $pid1(systemd)"; fi
for pid in $(jobs -p); do left="$left $pid"; done
mounts="$(grep -c -e tokenpipe-systemd-ci -e " $work" /proc/self/mountinfo || true)"
if [ -z "$left" ] && [ "$mounts" -eq 0 ] && [ ! -d "$cgroup" ] && [ -e "$marker" ]; then
    pass "nothing left behind: systemd and every process of its namespace gone, no mount of it on the host, its cgroup removed; the host's /tmp marker is still there"
else
    fail "left behind: processes:${left:- none}; host mounts of the namespace: $mounts; cgroup $cgroup still there: $([ -d "$cgroup" ] && echo yes || echo no); the host's /tmp marker $marker still there: $([ -e "$marker" ] && echo yes || echo "NO: something emptied /tmp")"
fi

echo "systemd: $passes passed, $failures failed ($(elapsed "$start")s)"
[ "$failures" -eq 0 ]
