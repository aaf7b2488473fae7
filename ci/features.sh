#!/usr/bin/env bash
# What each feature set of the crate pulls in, from `cargo tree` (no build):
# tokio (and its reactor, mio) only with the `tokio` feature, never with the
# defaults nor in the no_std core, so a user who does not ask for async
# compiles nothing of it; and with the feature, tokio is there. loom only
# with `--cfg tokenpipe_loom`.
#
#   bash ci/features.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
source ci/lib.sh

need_cmd cargo cargo || die "cargo is required (install Rust with rustup)"

# The crate's normal dependencies (not its tests' or examples'), one name
# per line, for every target (tokio is a Unix-only dependency), or for
# $TARGET.
deps() {
    cargo tree -p tokenpipe -e normal --target "${TARGET:-all}" --prefix none "$@" |
        awk '{print $1}' | sort -u
}

fail=0
check() { # LABEL WANT(yes|no) CRATE -- cargo tree args
    local label=$1 want=$2 crate=$3; shift 4
    local list; list=$(deps "$@") || die "cargo tree $* failed"
    if grep -qx "$crate" <<<"$list"; then got=yes; else got=no; fi
    if [ "$got" = "$want" ]; then
        log "ok: $label: $crate $( [ "$want" = yes ] && echo present || echo absent ) ($(wc -l <<<"$list") crates)"
    else
        log "FAIL: $label: $crate should be $( [ "$want" = yes ] && echo present || echo absent ), the tree is:"
        printf '%s\n' "$list" >&2
        fail=1
    fi
}

check "default features" no tokio --
check "default features" no mio --
check "--no-default-features" no tokio -- --no-default-features
check "--features tokio" yes tokio -- --features tokio
check "--features tokio" yes mio -- --features tokio
check "--all-features" yes tokio -- --all-features
# loom only in the model checker's build (ci/loom.sh). `--target all`
# takes every `cfg` as true, ours too, so these ask for the host.
host="$(host_triple)"
TARGET=$host check "default features, host" no loom --
TARGET=$host RUSTFLAGS="${RUSTFLAGS:-} --cfg tokenpipe_loom" check "--cfg tokenpipe_loom, host" yes loom --

[ "$fail" = 0 ] || die "a feature set pulls in what it should not (or misses what it should)"
log "every feature set pulls in what it should"
