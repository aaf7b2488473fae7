#!/usr/bin/env bash
# The tools the cargo tests start, installed if missing: the launch tests
# run systemd-notify (Debian package systemd) as a real sender, setpriv
# (util-linux) to send as an unprivileged user, and strace to inject the
# faults real launchers meet (a refused kill, a slow recvmsg); kill(1)
# (procps), which the README's self-pipe recipe and the self_pipe and
# shutdown examples' --self-test use to send their process SIGTERM. A missing
# tool is an error that names it, never a test quietly skipped.
#
# Usage: ci/test-tools.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/lib.sh

missing=0
need_cmd systemd-notify systemd || missing=1
need_cmd setpriv util-linux || missing=1
need_cmd strace strace || missing=1
# `type -P`, not need_cmd's `command -v`: the shell's own kill builtin
# would answer for a program the tests start that is not there.
if ! type -P kill >/dev/null; then
    apt_ensure procps || true
    type -P kill >/dev/null || { log "missing tool: kill (Debian package procps)"; missing=1; }
fi
[ "$missing" = 0 ] || die "the tests above need these tools"
log "systemd-notify, setpriv, strace and kill are here"
