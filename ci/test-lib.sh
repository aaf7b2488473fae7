#!/usr/bin/env bash
# Tests ci/lib.sh's apt helpers against fake apt-get, dpkg-query, dpkg, sudo
# and sleep commands (put first on PATH, in a temporary directory), so the
# failures that real mirrors produce now and then can be had on demand:
#
#   a  a failing `apt-get update` (exit 100, "E: Failed to fetch ... File has
#      unexpected size ... Mirror sync in progress?") is a warning: the
#      install still runs and apt_ensure returns 0 when it succeeds;
#   b  a package that cannot be installed makes apt_ensure return non-zero,
#      and its log names exactly that package (not the ones that installed);
#   c  a package already installed (dpkg-query: "install ok installed") is
#      not passed to apt-get install, and with nothing missing apt-get is
#      not run at all;
#   d  apt_add_arch after an apt-get update makes the next apt_ensure run
#      apt-get update again (the new architecture's indexes), and adds an
#      architecture that is already there no second time.
#
# Usage: ci/test-lib.sh
# Environment: CI_LIB=path/to/lib.sh tests another copy of lib.sh. That is
# how each check was seen to fail against a broken copy: a fails when a
# failed update dies (the old behaviour) or its apt lines are not passed on;
# b when the log names every missing package instead of the one that
# failed; c when the dpkg-query check is dropped; d when apt_add_arch does
# not reset the once-per-run update.
# Output: one line per check, then "test-lib: N passed, M failed"; exit
# status non-zero when any check failed. Needs nothing but bash, coreutils
# and grep; touches no real package.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
LIB="${CI_LIB:-$ROOT/ci/lib.sh}"
[ -f "$LIB" ] || die "no such lib.sh: $LIB"

FAKE="$(mktemp -d)"
trap 'rm -rf "$FAKE"' EXIT
BIN="$FAKE/bin"
mkdir -p "$BIN"

# apt-get: every call is appended to $FAKE_CALLS. `update` prints a mirror
# sync error and exits $FAKE_UPDATE_RC (0 by default). `install` fails
# (exit 100) when it is asked for any package in $FAKE_UNINSTALLABLE.
cat >"$BIN/apt-get" <<'EOF'
#!/usr/bin/env bash
echo "apt-get $*" >>"$FAKE_CALLS"
case " $* " in
    *" update "*)
        if [ "${FAKE_UPDATE_RC:-0}" -ne 0 ]; then
            echo "E: Failed to fetch http://deb.debian.org/debian-security/dists/bookworm-security/main/binary-armhf/Packages.xz  File has unexpected size (354092 != 354048). Mirror sync in progress? [IP: 127.0.0.1 80]"
            echo "E: Some index files failed to download. They have been ignored, or old ones used instead."
        fi
        exit "${FAKE_UPDATE_RC:-0}" ;;
    *" install "*)
        for a in "$@"; do
            case " ${FAKE_UNINSTALLABLE:-} " in
                *" $a "*) echo "E: Unable to locate package $a" >&2; exit 100 ;;
            esac
        done
        exit 0 ;;
esac
exit 0
EOF
# dpkg-query -W -f='${Status}' PKG: installed when PKG is in $FAKE_INSTALLED.
cat >"$BIN/dpkg-query" <<'EOF'
#!/usr/bin/env bash
pkg="${!#}"
case " ${FAKE_INSTALLED:-} " in
    *" $pkg "*) printf 'install ok installed'; exit 0 ;;
esac
echo "dpkg-query: no packages found matching $pkg" >&2
exit 1
EOF
# dpkg: amd64 native, foreign architectures in the file $FAKE_ARCHS.
cat >"$BIN/dpkg" <<'EOF'
#!/usr/bin/env bash
echo "dpkg $*" >>"$FAKE_CALLS"
case "$1" in
    --print-architecture) echo amd64 ;;
    --print-foreign-architectures) cat "$FAKE_ARCHS" ;;
    --add-architecture) echo "$2" >>"$FAKE_ARCHS" ;;
    *) exit 2 ;;
esac
EOF
printf '#!/bin/sh\nexec "$@"\n' >"$BIN/sudo"   # as_root when not root
printf '#!/bin/sh\nexit 0\n' >"$BIN/sleep"     # the 5 s before a retry
chmod +x "$BIN"/*

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); printf 'ok   %s\n' "$1"; }
bad() {
    FAIL=$((FAIL + 1)); printf 'FAIL %s: %s\n' "$1" "$2"
    printf '     calls:\n'; sed 's/^/       /' "$FAKE/calls"
    printf '     log:\n'; sed 's/^/       /' "$FAKE/log"
}

# run_fake SHELL-CODE: runs it in a fresh bash with the fakes first on PATH
# and LIB sourced; its stderr goes to $FAKE/log, the fakes' calls to
# $FAKE/calls. Sets RC.
run_fake() {
    : >"$FAKE/calls"; : >"$FAKE/log"
    RC=0
    # shellcheck disable=SC2016 # $LIB is expanded by the inner bash
    env PATH="$BIN:$PATH" FAKE_CALLS="$FAKE/calls" FAKE_ARCHS="$FAKE/archs" LIB="$LIB" \
        bash -c 'set -euo pipefail; source "$LIB"; '"$1" 2>"$FAKE/log" >/dev/null || RC=$?
}
calls() { grep -c -- "$1" "$FAKE/calls" || true; }

# a: update fails, the install goes on and succeeds.
export FAKE_UPDATE_RC=100 FAKE_UNINSTALLABLE="" FAKE_INSTALLED=""
run_fake 'apt_ensure pkg-one pkg-two'
if [ "$RC" -ne 0 ]; then
    bad a "apt_ensure returned $RC after a failed apt-get update (want 0: the install succeeded)"
elif [ "$(calls 'apt-get update')" -lt 1 ]; then
    bad a "apt-get update was not run"
elif ! grep -q 'install .*pkg-one pkg-two' "$FAKE/calls"; then
    bad a "apt-get install pkg-one pkg-two was not run after the failed update"
elif ! grep -q 'warning: apt-get update exited 100' "$FAKE/log"; then
    bad a "no warning naming the failed update"
elif ! grep -q 'Mirror sync in progress?' "$FAKE/log"; then
    bad a "the warning does not pass on apt's line naming the index that failed"
else
    ok "a: a failed apt-get update is a warning; the install goes on and apt_ensure returns 0"
fi

# b: one package cannot be installed.
export FAKE_UPDATE_RC=0 FAKE_UNINSTALLABLE="pkg-gone" FAKE_INSTALLED=""
run_fake 'apt_ensure pkg-one pkg-gone pkg-two'
named="$(sed -n 's/.*could not install Debian package(s): \([^(]*\).*/\1/p' "$FAKE/log" | sed 's/ *$//')"
if [ "$RC" -eq 0 ]; then
    bad b "apt_ensure returned 0 though pkg-gone could not be installed"
elif [ "$named" != pkg-gone ]; then
    bad b "the log names '${named:-nothing}' as not installable (want exactly pkg-gone)"
else
    ok "b: a package that cannot be installed fails apt_ensure, and the log names exactly it"
fi

# c: an installed package is not installed again; nothing missing, no apt-get.
export FAKE_UPDATE_RC=0 FAKE_UNINSTALLABLE="" FAKE_INSTALLED="pkg-have"
run_fake 'apt_ensure pkg-have pkg-new'
if [ "$RC" -ne 0 ]; then
    bad c "apt_ensure returned $RC"
elif ! grep -q 'install .*pkg-new' "$FAKE/calls"; then
    bad c "the missing pkg-new was not installed"
elif grep -q 'install .*pkg-have' "$FAKE/calls"; then
    bad c "the installed pkg-have was passed to apt-get install"
else
    run_fake 'apt_ensure pkg-have'
    if [ "$RC" -ne 0 ] || [ -s "$FAKE/calls" ]; then
        bad c "with every package installed apt_ensure returned $RC and ran: $(tr '\n' ';' <"$FAKE/calls")"
    else
        ok "c: installed packages are not passed to apt-get; none missing, no apt-get at all"
    fi
fi

# d: a new architecture makes the next apt_ensure update again.
export FAKE_UPDATE_RC=0 FAKE_UNINSTALLABLE="" FAKE_INSTALLED=""
: >"$FAKE/archs"
run_fake 'apt_ensure pkg-one; apt_add_arch armhf; apt_ensure pkg-arm:armhf; apt_add_arch armhf; apt_add_arch amd64'
if [ "$RC" -ne 0 ]; then
    bad d "returned $RC"
elif [ "$(calls 'dpkg --add-architecture armhf')" -ne 1 ]; then
    bad d "dpkg --add-architecture armhf ran $(calls 'dpkg --add-architecture armhf') times (want 1: once added, it is there; amd64 is native)"
elif [ "$(calls 'dpkg --add-architecture')" -ne 1 ]; then
    bad d "the native amd64 was added as a foreign architecture"
elif [ "$(calls 'apt-get update')" -ne 2 ]; then
    bad d "apt-get update ran $(calls 'apt-get update') times (want 2: once, then again after adding armhf)"
elif [ "$(sed -n '/add-architecture armhf/,$p' "$FAKE/calls" | grep -m1 -- 'apt-get' | grep -c update)" -ne 1 ]; then
    bad d "the install of pkg-arm:armhf did not come after a fresh apt-get update"
else
    ok "d: apt_add_arch adds an architecture once, and the next apt_ensure updates again"
fi

echo "test-lib: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
