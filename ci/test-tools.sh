#!/usr/bin/env bash
# The tools the cargo tests start, installed if missing: the launch tests
# run systemd-notify (Debian package systemd) as a real sender, setpriv
# (util-linux) to send as an unprivileged user, and strace to inject the
# faults real launchers meet (a refused kill, a slow recvmsg). A missing
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
[ "$missing" = 0 ] || die "the tests above need these tools"
log "systemd-notify, setpriv and strace are here"
