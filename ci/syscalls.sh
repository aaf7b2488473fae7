#!/usr/bin/env bash
# One syscall per operation, proven: runs examples/syscall_probe under
# `strace -f` and checks the exact syscalls each call made, between the
# probe's markers (`write(-1, "@phase NAME", len)`): `make` = one pipe2,
# `token_write` = one write, `token_read` = one read, `close` = one close,
# `set_nonblocking` = one ioctl(FIONBIO), a closed end = none, and the
# extras as the README lists them (token_write_nosignal = its write inside
# a SIGPIPE guard of rt_sigprocmask and rt_sigpending; token_read_timeout =
# poll then read). The EPIPE phase (token_write_nosignal_epipe): a write to
# a pipe whose reader is closed fails with EPIPE inside the same guard, and
# the pending SIGPIPE it raised is taken with rt_sigtimedwait before the
# mask is restored, so no signal reaches the process. The readiness
# phases: finding NOTIFY_SOCKET (from_env_notify_socket) = none; `ready()`
# over NOTIFY_SOCKET = socket, one sendmsg of READY=1, close; over the token
# pipe = one write and one close, the write inside the SIGPIPE guard; a
# second `ready()` = none. SignalInterrupt: the first trigger on a fresh
# interrupt = getpid (whose pipe: this process's or a fork parent's) +
# pipe2(O_NONBLOCK|O_CLOEXEC) + one write of the token; a second trigger =
# none; `wait()` on a triggered interrupt = none (it returns on the flag);
# `reset()` = getpid + one read; an untriggered `wait_timeout(ZERO)` =
# getpid + one poll with timeout 0; dropping it = getpid + two closes. Any extra, missing or different call fails, with
# a diff of expected against traced.
#
# Usage: ci/syscalls.sh            (Linux; installs strace when missing)
# Environment: CARGO_TARGET_DIR (default target/); the trace is kept in
# $CARGO_TARGET_DIR/syscalls/strace.log.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start="$(now)"

[ "$(uname -s)" = Linux ] || die "Linux only (strace); this is $(uname -s)"
need_cmd strace strace || die "missing tool: strace (apt-get install strace)"
command -v cargo >/dev/null 2>&1 || die "missing tool: cargo"

cd "$ROOT"
target="${CARGO_TARGET_DIR:-$ROOT/target}"
work="$target/syscalls"
mkdir -p "$work"

log "cargo build --example syscall_probe"
probe="$(cargo build --example syscall_probe --message-format=json-render-diagnostics \
    | grep -o '"executable":"[^"]*syscall_probe[^"]*"' | cut -d'"' -f4 | tail -n 1)" \
    || die "building the syscall_probe example failed"
[ -x "$probe" ] || die "could not find the built syscall_probe example"

# The probe binds its notify socket here: a short path (a Unix socket's
# path is at most 107 bytes), which the expected sendmsg names.
sockdir="$(mktemp -d "${TMPDIR:-/tmp}/tp-probe.XXXXXX")"
trap 'rm -rf "$sockdir"' EXIT
sock="$sockdir/notify"

# -f follows any thread or child; -qq and signal=none keep the log to
# syscalls; -s 64 shows the markers whole.
status=0
strace -f -qq -e signal=none -s 64 -o "$work/strace.log" "$probe" "$sock" || status=$?
[ "$status" -eq 0 ] || die "syscall_probe exited with $status under strace (see $work/strace.log)"

# "phase: syscall(args) = result" for every syscall after a marker, and
# "phase: (none)" for a phase with none. strace prefixes each line with the
# pid (with -f and -o) and pads before "="; both are dropped.
awk '
    { sub(/^[0-9]+ +/, ""); gsub(/ +=  */, " = ") }
    /^write\(-1, "@phase / {
        if (phase != "" && !seen) print phase ": (none)"
        phase = $0; sub(/^write\(-1, "@phase /, "", phase); sub(/".*/, "", phase)
        seen = 0
        if (phase == "end") exit
        next
    }
    phase != "" { print phase ": " $0; seen = 1 }
' "$work/strace.log" >"$work/traced.txt"

# The fds come from the traced pipe2s (the main pipe's and the orphan's,
# whose reader is dropped at once); everything else must match exactly.
fds() { sed -n "s/^$1: pipe2(\\[\\([0-9]*\\), \\([0-9]*\\)\\], O_CLOEXEC) = 0\$/\\1 \\2/p" "$work/traced.txt"; }
read -r R W < <(fds make)
read -r OR OW < <(fds orphan)
# The interrupt's pipe, made by its first trigger.
read -r SR SW < <(sed -n 's/^si_first_trigger: pipe2(\[\([0-9]*\), \([0-9]*\)\], O_NONBLOCK|O_CLOEXEC) = 0$/\1 \2/p' "$work/traced.txt")
# The token pipe handed to the notifier was made before the first marker;
# the probe noted its write end. The notify socket's sender is traced.
RW="$(sed -n 's/^[0-9]* *write(-1, "@note ready_writer=\([0-9]*\)", [0-9]*) .*/\1/p' "$work/strace.log")"
S="$(sed -n 's/^ready_notify_socket: socket(AF_UNIX, SOCK_DGRAM|SOCK_CLOEXEC, 0) = \([0-9]*\)$/\1/p' "$work/traced.txt")"
R="${R:-R}" W="${W:-W}" OR="${OR:-OR}" OW="${OW:-OW}" RW="${RW:-RW}" S="${S:-S}"
SR="${SR:-SR}" SW="${SW:-SW}"
# This process's id, as the interrupt's getpid saw it.
P="$(sed -n 's/^si_first_trigger: getpid() = \([0-9]*\)$/\1/p' "$work/traced.txt")"
P="${P:-P}"
# sockaddr_un's length: the family (2 bytes), the path and its NUL.
SOCKLEN=$((2 + ${#sock} + 1))
sed -e "s/{R}/$R/g" -e "s/{W}/$W/g" -e "s/{OR}/$OR/g" -e "s/{OW}/$OW/g" \
    -e "s/{RW}/$RW/g" -e "s/{SR}/$SR/g" -e "s/{SW}/$SW/g" -e "s/{P}/$P/g" -e "s/{S}/$S/g" -e "s|{SOCK}|$sock|g" -e "s/{SOCKLEN}/$SOCKLEN/g" \
    >"$work/expected.txt" <<'EOF'
make: pipe2([{R}, {W}], O_CLOEXEC) = 0
split: (none)
token_write: write({W}, "x", 1) = 1
token_read: read({R}, "x", 1) = 1
write_tokens: write({W}, "abc", 3) = 3
read_tokens: read({R}, "abc", 8) = 3
token_write_nosignal: rt_sigprocmask(SIG_BLOCK, [PIPE], [], 8) = 0
token_write_nosignal: rt_sigpending([], 8) = 0
token_write_nosignal: write({W}, "y", 1) = 1
token_write_nosignal: rt_sigprocmask(SIG_SETMASK, [], NULL, 8) = 0
token_read_timeout: poll([{fd={R}, events=POLLIN}], 1, 5000) = 1 ([{fd={R}, revents=POLLIN}])
token_read_timeout: read({R}, "y", 1) = 1
set_nonblocking: ioctl({R}, FIONBIO, [1]) = 0
orphan: pipe2([{OR}, {OW}], O_CLOEXEC) = 0
orphan: close({OR}) = 0
token_write_nosignal_epipe: rt_sigprocmask(SIG_BLOCK, [PIPE], [], 8) = 0
token_write_nosignal_epipe: rt_sigpending([], 8) = 0
token_write_nosignal_epipe: write({OW}, "z", 1) = -1 EPIPE (Broken pipe)
token_write_nosignal_epipe: rt_sigtimedwait([PIPE], NULL, {tv_sec=0, tv_nsec=0}, 8) = 13 (SIGPIPE)
token_write_nosignal_epipe: rt_sigprocmask(SIG_SETMASK, [], NULL, 8) = 0
orphan_drop: close({OW}) = 0
close: close({W}) = 0
close_again: (none)
closed_token_write: (none)
closed_token_read: (none)
closed_drop: (none)
new_end_drop: (none)
token_read_eos: read({R}, "", 1) = 0
drop: close({R}) = 0
from_env_notify_socket: (none)
ready_notify_socket: socket(AF_UNIX, SOCK_DGRAM|SOCK_CLOEXEC, 0) = {S}
ready_notify_socket: sendmsg({S}, {msg_name={sa_family=AF_UNIX, sun_path="{SOCK}"}, msg_namelen={SOCKLEN}, msg_iov=[{iov_base="READY=1", iov_len=7}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, 0) = 7
ready_notify_socket: close({S}) = 0
ready_token_pipe: rt_sigprocmask(SIG_BLOCK, [PIPE], [], 8) = 0
ready_token_pipe: rt_sigpending([], 8) = 0
ready_token_pipe: write({RW}, "\1", 1) = 1
ready_token_pipe: rt_sigprocmask(SIG_SETMASK, [], NULL, 8) = 0
ready_token_pipe: close({RW}) = 0
ready_token_pipe_again: (none)
si_first_trigger: getpid() = {P}
si_first_trigger: pipe2([{SR}, {SW}], O_NONBLOCK|O_CLOEXEC) = 0
si_first_trigger: write({SW}, "x", 1) = 1
si_second_trigger: (none)
si_wait_triggered: (none)
si_reset: getpid() = {P}
si_reset: read({SR}, "x", 1) = 1
si_wait_timeout_zero: getpid() = {P}
si_wait_timeout_zero: poll([{fd={SR}, events=POLLIN}], 1, 0) = 0 (Timeout)
si_drop: getpid() = {P}
si_drop: close({SR}) = 0
si_drop: close({SW}) = 0
EOF

if ! diff -u "$work/expected.txt" "$work/traced.txt" >"$work/diff.txt"; then
    cat "$work/diff.txt" >&2
    die "syscalls differ from the expected ones above (- expected, + traced; full trace: $work/strace.log)"
fi
sed 's/^/ok   /' "$work/traced.txt"
echo "syscalls: every call made exactly the expected syscalls ($(elapsed "$start")s)"
