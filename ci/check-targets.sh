#!/usr/bin/env bash
# Type-checks the crate for Unix targets that cannot be run here, and builds
# it for a bare-metal target where the crate must be an empty no_std library.
#
# Usage:
#   ci/check-targets.sh               # the lists below (what CI runs)
#   ci/check-targets.sh TARGET...     # only these (a build-std target if it
#                                     # is not installable with rustup)
#   ci/check-targets.sh --every-unix  # every target rustc knows whose
#                                     # target_family is unix, core only (for
#                                     # people: about 200 targets, ~1 hour)
#
# Three kinds of target:
#
# * RUSTUP_TARGETS (rustup serves their standard library): `cargo check
#   --all-targets` (library, tests, examples) with `--all-features` (std) and
#   with `--no-default-features` (the no_std core). No linker, nothing runs.
# * BUILD_STD_TARGETS (no standard library from rustup here: tier 3, or
#   tier 2 without host tools): `cargo +nightly check -Zbuild-std=core --lib
#   --no-default-features`, and where the target's own std builds (listed in
#   STD_BUILDS) also `-Zbuild-std=std,panic_abort --lib --features std`:
#   the `tokio` feature is checked on the RUSTUP_TARGETS only, the
#   platforms tokio supports (docs/platforms.md).
#   Needs the nightly's rust-src component (installed when missing).
# * BARE_TARGETS (no OS; the libc crate is empty there): `cargo build --lib
#   --no-default-features`, the empty library.
#
# A check passes only if the crate compiles with no warning of its own (a
# dead function or an unused import on one platform is a cfg mistake), and,
# for EMPTY_TARGETS, only if build.rs said it builds the empty library there.
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
# seconds, how, date, what the crate offers there as build.rs decided; read
# by ci/platform-table.sh; --every-unix writes every-unix/ instead) and logs
# in $CARGO_TARGET_DIR/logs/. Exit status non-zero if any fails.
# CI_DROP_TARGET_BUILDS=1 (.ci/run sets it) removes each target's build
# once its result is written.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUSTUP_TARGETS=(
    x86_64-apple-darwin
    aarch64-apple-darwin
    aarch64-apple-ios
    aarch64-linux-android
    x86_64-linux-android
    armv7-linux-androideabi
    x86_64-unknown-freebsd
    x86_64-unknown-netbsd
    x86_64-unknown-illumos
)
# Issue 11's list first, then one target for every other Unix OS Rust
# knows, so each OS's branch of build.rs is compiled somewhere, and a
# 32-bit musl with 64-bit time_t (armv7 OpenHarmony), whose timespec has
# private padding fields.
BUILD_STD_TARGETS=(
    riscv32imc-esp-espidf
    riscv32imac-esp-espidf
    i686-unknown-haiku
    x86_64-pc-nto-qnx710
    x86_64-unknown-openbsd
    x86_64-unknown-dragonfly
    x86_64-unknown-hurd-gnu
    x86_64-unknown-redox
    x86_64-pc-solaris
    x86_64-pc-cygwin
    aarch64-apple-tvos
    aarch64-apple-watchos
    aarch64-apple-visionos
    aarch64-unknown-fuchsia
    aarch64-unknown-linux-ohos
    armv7-unknown-linux-ohos
    armv5te-unknown-linux-uclibceabi
    x86_64-unknown-l4re-uclibc
    wasm32-unknown-emscripten
    aarch64-wrs-vxworks
    aarch64-unknown-nuttx
    armv7-rtems-eabihf
    armv6k-nintendo-3ds
    armv7-sony-vita-newlibeabihf
    powerpc64-ibm-aix
    hexagon-unknown-qurt
    x86_64-lynx-lynxos178
    aarch64-unknown-managarm-mlibc
    x86_64-unknown-linux-none
    aarch64-unknown-nto-qnx800
)
# The build-std targets whose own std builds with this nightly. For the
# others std itself (or its libc) fails to compile: NuttX, VxWorks, L4Re,
# AIX, QuRT, LynxOS-178, managarm, QNX 8.0 and Linux without a libc.
STD_BUILDS=(
    riscv32imc-esp-espidf riscv32imac-esp-espidf i686-unknown-haiku
    x86_64-pc-nto-qnx710 x86_64-unknown-openbsd x86_64-unknown-dragonfly
    x86_64-unknown-hurd-gnu x86_64-unknown-redox x86_64-pc-solaris
    x86_64-pc-cygwin aarch64-apple-tvos aarch64-apple-watchos
    aarch64-apple-visionos aarch64-unknown-fuchsia aarch64-unknown-linux-ohos
    armv7-unknown-linux-ohos
    armv5te-unknown-linux-uclibceabi wasm32-unknown-emscripten
    armv7-rtems-eabihf armv6k-nintendo-3ds armv7-sony-vita-newlibeabihf
)
# Unix targets where the crate is the empty library on purpose (build.rs).
EMPTY_TARGETS=(hexagon-unknown-qurt x86_64-lynx-lynxos178 aarch64-unknown-managarm-mlibc x86_64-unknown-linux-none
    aarch64-unknown-nto-qnx800)
BARE_TARGETS=(thumbv7em-none-eabihf)

in_list() { local x="$1"; shift; case " $* " in *" $x "*) return 0 ;; esac; return 1; }
is_bare() { case "$1" in *-none-*|*-none) ! in_list "$1" "${BUILD_STD_TARGETS[@]}" ;; *) return 1 ;; esac; }

EVERY_UNIX=0
if [ "${1:-}" = "--every-unix" ]; then
    EVERY_UNIX=1
    shift
fi
check_target_args "$@"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/check}"
LOGDIR="$CARGO_TARGET_DIR/logs"
RESULTS="$CARGO_TARGET_DIR/results"
[ "$EVERY_UNIX" -eq 0 ] || RESULTS="$CARGO_TARGET_DIR/every-unix"
mkdir -p "$LOGDIR" "$RESULTS"
need_cmd cargo cargo || die "cargo is required (install Rust with rustup)"
need_cmd cc gcc || die "missing tool: cc (Debian package gcc), the stand-in C compiler"
need_cmd ar binutils || die "missing tool: ar (Debian package binutils)"

need_nightly_src() {
    rustup run nightly rustc -V >/dev/null 2>&1 \
        || { log "rustup toolchain install nightly"; rustup toolchain install nightly --profile minimal >&2; } \
        || { log "missing Rust toolchain: nightly (rustup toolchain install nightly failed)"; return 1; }
    rustup +nightly component list --installed 2>/dev/null | grep -q '^rust-src' && return 0
    log "rustup +nightly component add rust-src"
    rustup +nightly component add rust-src >&2 \
        || { log "missing Rust component: rust-src for nightly (rustup +nightly component add rust-src failed)"; return 1; }
}

if [ "$EVERY_UNIX" -eq 1 ]; then
    need_nightly_src || die "-Zbuild-std needs the nightly's rust-src"
    mapfile -t TARGETS < <(for t in $(rustc +nightly --print target-list); do
        rustc +nightly --print cfg --target "$t" 2>/dev/null | grep -qx 'target_family="unix"' && echo "$t"
    done)
    BUILD_STD_TARGETS=("${TARGETS[@]}")
    STD_BUILDS=()
elif [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=("${RUSTUP_TARGETS[@]}" "${BUILD_STD_TARGETS[@]}" "${BARE_TARGETS[@]}")
fi

# Runs one cargo command for target $1 (the rest: the command), logging to
# $logf. Fails on a compile error, and on any warning about this crate.
run_check() {
    local t="$1"; shift
    local v="${t//-/_}" out rc=0
    log "$t: $*"
    echo "=== $*" >>"$logf"
    out="$(cd "$ROOT" && export "CC_$v=cc" "AR_$v=ar" CRATE_CC_NO_DEFAULTS=1 && "$@" 2>&1)" || rc=$?
    printf '%s\n' "$out" >>"$logf"
    if [ "$rc" -ne 0 ]; then
        # shellcheck disable=SC2016  # the backquotes are cargo's
        # Not the crate's only if the target's own library failed, and not
        # for want of disk or memory (which is the machine's, and fails).
        if grep -Eq '^error: could not compile `(core|compiler_builtins|alloc|std)`' <<<"$out" \
            && ! grep -q 'could not compile `tokenpipe`' <<<"$out" \
            && ! grep -Eq 'No space left on device|Cannot allocate memory' <<<"$out"; then
            echo "=== NOT THE CRATE'S: the target's own library does not build: $*" >>"$logf"; return 2
        fi
        echo "=== FAILED (exit $rc): $*" >>"$logf"; return 1
    fi
    # shellcheck disable=SC2016  # the backquotes are cargo's, not ours
    if grep -q '^warning: `tokenpipe` (lib' <<<"$out"; then
        echo "=== FAILED: the crate compiled with warnings (see above): $*" >>"$logf"; return 1
    fi
    if in_list "$t" "${EMPTY_TARGETS[@]}" && ! grep -q 'builds as an empty library here' <<<"$out"; then
        echo "=== FAILED: expected build.rs to build the empty library for $t" >>"$logf"; return 1
    fi
}

SUMMARY=()
FAILED=()
total_start="$(now)"
for t in "${TARGETS[@]}"; do
    logf="$LOGDIR/$t.log"
    : >"$logf"
    start="$(now)"
    result=pass
    how="type-checked with nightly -Zbuild-std"
    if is_bare "$t"; then
        how="built (lib, no_std, empty)"
        need_rust_target "$t" >>"$logf" 2>&1 || { result=fail; echo "MISSING: Rust target $t" | tee -a "$logf" >&2; }
        [ "$result" = fail ] || run_check "$t" cargo build --lib --no-default-features --target "$t" || result=fail
    elif in_list "$t" "${BUILD_STD_TARGETS[@]}" || ! rustup target list 2>/dev/null | grep -q "^$t\b"; then
        if ! need_nightly_src >>"$logf" 2>&1; then
            result=fail; echo "MISSING: the nightly toolchain's rust-src" | tee -a "$logf" >&2
        else
            rc=0; run_check "$t" cargo +nightly check -Zbuild-std=core --lib --no-default-features --target "$t" || rc=$?
            case "$rc" in 0) ;; 2) result=n/a; how="not checked: the target's own core does not build with this nightly" ;; *) result=fail ;; esac
            if [ "$result" = n/a ]; then
                :
            elif in_list "$t" "${STD_BUILDS[@]}"; then
                how="type-checked with nightly -Zbuild-std: core (no_std) and std (feature std)"
                run_check "$t" cargo +nightly check -Zbuild-std=std,panic_abort --lib --features std --target "$t" || result=fail
            else
                how="type-checked with nightly -Zbuild-std: core (no_std) only; the target's own std does not build"
            fi
            if in_list "$t" "${EMPTY_TARGETS[@]}"; then how="$how; the empty library (no pipe in its libc binding, or libc does not build)"; fi
        fi
    else
        how="type-checked (all targets, std and no_std)"
        if ! need_rust_target "$t" >>"$logf" 2>&1; then
            result=fail; echo "MISSING: Rust target $t (rustup target add $t failed)" | tee -a "$logf" >&2
        else
            run_check "$t" cargo check --all-targets --all-features --target "$t" || result=fail
            run_check "$t" cargo check --all-targets --no-default-features --target "$t" || result=fail
        fi
    fi
    secs="$(elapsed "$start")"
    if [ "$result" = fail ]; then
        FAILED+=("$t")
        log "$t FAILED; last lines of $logf:"
        tail -n 40 "$logf" | sed 's/^/    /' >&2
    fi
    what="$(crate_offers "$CARGO_TARGET_DIR" "$t")"
    SUMMARY+=("$(printf '%-34s %-4s %6ss  %s: %s' "$t" "$result" "$secs" "$how" "$what")")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$result" "$secs" "$how" "$(date -u +%F)" "$what" >"$RESULTS/$t.tsv"
    # ~100 MB of std and core per target (GBs for the rustup targets checked
    # with tests and tokio): all of them would fill a small disk. CI drops
    # each when done; a person keeps them to look into.
    if [ "$EVERY_UNIX" -ne 0 ] || [ "${CI_DROP_TARGET_BUILDS:-0}" = 1 ]; then rm -rf "${CARGO_TARGET_DIR:?}/$t"; fi
done

echo
echo "check-only targets (${#TARGETS[@]} targets, $(elapsed "$total_start")s):"
printf '%s\n' "${SUMMARY[@]}"
n_na="$(printf '%s\n' "${SUMMARY[@]}" | awk '$2 == "n/a"' | wc -l)"
echo "targets: $(( ${#TARGETS[@]} - ${#FAILED[@]} - n_na )) passed, ${#FAILED[@]} failed, $n_na not checked (their own core does not build)"
[ "${#FAILED[@]}" -eq 0 ] || { log "failed targets: ${FAILED[*]} (logs in $LOGDIR)"; exit 1; }
