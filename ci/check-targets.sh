#!/usr/bin/env bash
# Type-checks the crate for Unix targets that cannot be run here, and builds
# it for a bare-metal target where the crate must be an empty no_std library.
#
# Usage:
#   ci/check-targets.sh             # all targets below
#   ci/check-targets.sh TARGET...   # only these
#
# For each Unix target: `cargo check --all-targets` with `--all-features`
# (std) and with `--no-default-features` (the no_std core). For
# thumbv7em-none-eabihf (no OS; the libc crate is empty there):
# `cargo build --lib --no-default-features`. Only rustup's rust-std for the
# target is needed (installed when missing); no linker, nothing runs.
#
# C in dependencies: build scripts still run under `cargo check`, and one
# that compiles C with the cc crate (criterion's alloca, a dev-dependency)
# needs a C compiler for the target, which Debian does not have for macOS,
# the BSDs or illumos. Nothing is linked in a check, so for the check-only
# targets the host's cc and ar stand in (CC_<target>=cc, AR_<target>=ar,
# CRATE_CC_NO_DEFAULTS=1 so cc-rs adds no target flags such as -arch): the
# object is never used, and the Rust code is still checked for the target.
#
# Environment: CARGO_TARGET_DIR (default target/check). Prints one line per
# target, writes $CARGO_TARGET_DIR/results/<target>.tsv (target, result,
# seconds, how, date; read by ci/platform-table.sh) and logs in
# $CARGO_TARGET_DIR/logs/. Exit status non-zero if any fails.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHECK_TARGETS=(
    x86_64-apple-darwin
    aarch64-apple-darwin
    x86_64-unknown-freebsd
    x86_64-unknown-netbsd
    x86_64-unknown-illumos
)
BARE_TARGETS=(thumbv7em-none-eabihf)

check_target_args "$@"
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${CHECK_TARGETS[@]}" "${BARE_TARGETS[@]}"); fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/check}"
LOGDIR="$CARGO_TARGET_DIR/logs"
mkdir -p "$LOGDIR"
mkdir -p "$CARGO_TARGET_DIR/results"
need_cmd cargo cargo || die "cargo is required (install Rust with rustup)"
need_cmd cc gcc || die "missing tool: cc (Debian package gcc), the stand-in C compiler"
need_cmd ar binutils || die "missing tool: ar (Debian package binutils)"

is_bare() { case "$1" in *-none-*|*-none) return 0 ;; *) return 1 ;; esac; }

SUMMARY=()
FAILED=()
total_start="$(now)"
for t in "${TARGETS[@]}"; do
    logf="$LOGDIR/$t.log"
    : >"$logf"
    start="$(now)"
    result=pass
    if is_bare "$t"; then
        how="built (lib, no_std, empty)"
        cmds=("cargo build --lib --no-default-features --target $t")
    else
        how="type-checked (all targets, std and no_std)"
        cmds=("cargo check --all-targets --all-features --target $t"
              "cargo check --all-targets --no-default-features --target $t")
    fi
    if ! need_rust_target "$t" >>"$logf" 2>&1; then
        result=fail
        echo "MISSING: Rust target $t (rustup target add $t failed)" | tee -a "$logf" >&2
    else
        for c in "${cmds[@]}"; do
            log "$c"
            echo "=== $c" >>"$logf"
            # shellcheck disable=SC2086  # $c is our own word list
            v="${t//-/_}"
            if ! (cd "$ROOT" && export "CC_$v=cc" "AR_$v=ar" CRATE_CC_NO_DEFAULTS=1 && $c) >>"$logf" 2>&1; then
                result=fail
                echo "=== FAILED: $c" >>"$logf"
            fi
        done
    fi
    secs="$(elapsed "$start")"
    if [ "$result" = fail ]; then
        FAILED+=("$t")
        log "$t FAILED; last lines of $logf:"
        tail -n 40 "$logf" | sed 's/^/    /' >&2
    fi
    SUMMARY+=("$(printf '%-32s %-4s %6ss  %s' "$t" "$result" "$secs" "$how")")
    printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$result" "$secs" "$how" "$(date -u +%F)" \
        >"$CARGO_TARGET_DIR/results/$t.tsv"
done

echo
echo "check-only targets (${#TARGETS[@]} targets, $(elapsed "$total_start")s):"
printf '%s\n' "${SUMMARY[@]}"
echo "targets: $(( ${#TARGETS[@]} - ${#FAILED[@]} )) passed, ${#FAILED[@]} failed"
[ "${#FAILED[@]}" -eq 0 ] || { log "failed targets: ${FAILED[*]} (logs in $LOGDIR)"; exit 1; }
