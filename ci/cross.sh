#!/usr/bin/env bash
# Cross-target test matrix: builds and runs the whole test suite (unit,
# integration and doc tests) with `--all-features` and with
# `--no-default-features` for each target, then prints one line per target.
#
# Usage:
#   ci/cross.sh                 # the full matrix (the targets listed below)
#   ci/cross.sh TARGET...       # only these targets
#
# Environment:
#   CROSS_MODE=auto|qemu|cross  auto (default): use `cross` when a container
#                               engine answers (`docker info` or `podman info`
#                               succeeds), the qemu runners otherwise.
#   CARGO_TARGET_DIR            default: target/cross (never the main target/,
#                               so a developer's cargo is not blocked)
#   CROSS_TEST_TIMEOUT_MIN      minutes one `cargo test` may take before it is
#                               killed and the target fails as hung (25)
#   CI_DROP_TARGET_BUILDS=1     remove each target's build once its result
#                               is written (.ci/run sets it: small disks)
#
# Targets rustup serves no standard library for (BUILD_STD_TARGETS below;
# `rustup target add` answers 404): built with `cargo +nightly test
# -Zbuild-std`, std compiled from the nightly's rust-src (installed when
# missing), linked against Debian's multiarch musl for that architecture
# (dpkg --add-architecture, added when missing, then musl-dev:<arch>) with
# the linker ci/qemu.toml names, always in qemu mode. Their `how` column says
# so. armv7-unknown-linux-musleabihf is one; riscv64gc-unknown-linux-musl is
# not in the matrix: Debian bookworm has no musl-dev:riscv64 (riscv64 is an
# official Debian architecture only from trixie on).
#
# qemu mode (this machine: no binfmt_misc, no container engine): the linkers
# and runners (and C compilers for the cc crate) come from ci/qemu.toml,
# passed with `cargo --config`; this script reads that file to know which
# tools the target needs and installs what is missing: Debian's gcc-<triple>
# with libc6-dev-<arch>-cross (only a Recommends of it), qemu-user and
# musl-tools, and the Rust target with rustup. A tool or target that cannot
# be installed fails that target with a message naming it; nothing is skipped
# silently.
#
# Output: logs in $CARGO_TARGET_DIR/logs/<target>.log, one summary line per
# target on stdout, and a tab-separated line per target in
# $CARGO_TARGET_DIR/results/<target>.tsv (target, result, passed, failed,
# ignored, seconds, how, date) that ci/platform-table.sh reads. Exit status
# is non-zero when any target fails.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MATRIX=(
    x86_64-unknown-linux-musl
    i686-unknown-linux-musl
    aarch64-unknown-linux-musl
    aarch64-unknown-linux-gnu
    armv7-unknown-linux-gnueabihf
    armv7-unknown-linux-musleabihf
    riscv64gc-unknown-linux-gnu
    powerpc64le-unknown-linux-gnu
    powerpc64-unknown-linux-gnu
    s390x-unknown-linux-gnu
)
# Each: TARGET DEBIAN_ARCH DEBIAN_PACKAGES... (the musl to link against and
# what its linker in ci/qemu.toml runs).
BUILD_STD_TARGETS=(
    "armv7-unknown-linux-musleabihf armhf musl-dev:armhf gcc-arm-linux-gnueabihf"
)
BUILD_STD_TOOLCHAIN=nightly
CONFIG="$ROOT/ci/qemu.toml"
FEATURE_SETS=("--all-features" "--no-default-features")

check_target_args "$@"
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${MATRIX[@]}"); fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/cross}"

# qemu-user forks the guest together with its own threads' state, and
# GLib's slice allocator (which qemu uses to insert translated blocks) is
# not fork-safe: a fork while another vCPU thread holds its lock leaves the
# child blocked in g_slice_alloc for good. Seen here under load: a daemon
# test's child on qemu-ppc64 hung in tcg_tb_insert -> g_slice_alloc while
# its launcher waited for its report. With always-malloc GLib uses malloc,
# which glibc keeps fork-safe. (GLib 2.76 dropped the slice allocator;
# Debian bookworm ships 2.74.) The runner inherits this from cargo.
export G_SLICE=always-malloc
# A backstop, so an emulator hang fails the target with a message instead
# of stalling the whole run: minutes per `cargo test` (build included).
TEST_TIMEOUT_MIN="${CROSS_TEST_TIMEOUT_MIN:-25}"
LOGDIR="$CARGO_TARGET_DIR/logs"
mkdir -p "$LOGDIR"
mkdir -p "$CARGO_TARGET_DIR/results"

need_cmd cargo cargo || die "cargo is required (install Rust with rustup)"
HOST="$(host_triple)"

# The BUILD_STD_TARGETS entry of target $1 (fails when it has none).
build_std_entry() {
    local e
    for e in "${BUILD_STD_TARGETS[@]}"; do
        [ "${e%% *}" = "$1" ] && { echo "$e"; return 0; }
    done
    return 1
}

# ---- choose the mode ------------------------------------------------------
engine_answers() {
    local e
    for e in docker podman; do
        if command -v "$e" >/dev/null 2>&1 && timeout 20 "$e" info >/dev/null 2>&1; then
            echo "$e"; return 0
        fi
    done
    return 1
}
MODE="${CROSS_MODE:-auto}"
ENGINE=""
case "$MODE" in
    auto)
        if ENGINE="$(engine_answers)"; then MODE=cross; else MODE=qemu; fi ;;
    cross)
        ENGINE="$(engine_answers)" || die "CROSS_MODE=cross but neither 'docker info' nor 'podman info' succeeds" ;;
    qemu) ;;
    *) die "CROSS_MODE must be auto, qemu or cross (got '$MODE')" ;;
esac
if [ "$MODE" = cross ]; then
    log "container engine '$ENGINE' answers: using cross with Cross.toml"
    export CROSS_CONTAINER_ENGINE="$ENGINE"
    if ! command -v cross >/dev/null 2>&1; then
        log "cargo install cross --locked"
        cargo install cross --locked >&2 || die "missing tool: cross (cargo install cross failed)"
    fi
else
    log "no container engine answers: using qemu-user runners from ci/qemu.toml"
fi

# ---- what a target needs (qemu mode), read from ci/qemu.toml ---------------
# Prints the body of [target.$1] in ci/qemu.toml.
toml_section() {
    awk -v hdr="[target.$1]" '
        /^\[/ { on = ($0 == hdr); next }
        on && !/^[[:space:]]*(#|$)/ { print }' "$CONFIG"
}
# Debian package that provides a linker or runner command.
pkg_for() {
    case "$1" in
        ci/*) echo "" ;;   # a script of ours (see ci/qemu.toml)
        qemu-*) echo qemu-user ;;
        musl-gcc|*-linux-musl-gcc) echo musl-tools ;;
        *-gcc) echo "gcc-${1%-gcc}" ;;
        *) echo "" ;;
    esac
}
# Debian package with the target glibc's crt objects, libc.so and headers
# that the gcc-<triple> cross linker $1 needs to link anything. It is only a
# Recommends of gcc-<triple>, which apt_ensure does not install
# (--no-install-recommends), so it is asked for by name.
libc_dev_for() {
    case "${1%-gcc}" in
        aarch64-linux-gnu) echo libc6-dev-arm64-cross ;;
        arm-linux-gnueabihf) echo libc6-dev-armhf-cross ;;
        powerpc64le-linux-gnu) echo libc6-dev-ppc64el-cross ;;
        powerpc64-linux-gnu) echo libc6-dev-ppc64-cross ;;
        riscv64-linux-gnu) echo libc6-dev-riscv64-cross ;;
        s390x-linux-gnu) echo libc6-dev-s390x-cross ;;
        *) echo "" ;;
    esac
}
# The C compiler ci/qemu.toml's [env] gives the cc crate for target $1.
cc_for() {
    local var="CC_${1//-/_}"
    awk '/^\[/ { on = ($0 == "[env]"); next } on' "$CONFIG" \
        | sed -n "s/^$var *= *\"\([^\"]*\)\".*/\1/p"
}
# Prepares everything target $1 needs; prints how its tests run. On failure
# prints "MISSING: <what>" and returns 1.
prepare_qemu_target() {
    local t="$1" sec linker runner sysroot cc pkg libc how entry bs="" arch p pkgs
    if entry="$(build_std_entry "$t")"; then
        need_rust_src "$BUILD_STD_TOOLCHAIN" \
            || { echo "MISSING: rust-src of the $BUILD_STD_TOOLCHAIN toolchain (rustup component add rust-src --toolchain $BUILD_STD_TOOLCHAIN)"; return 1; }
        read -r _ arch pkgs <<<"$entry"
        apt_add_arch "$arch" || { echo "MISSING: Debian architecture $arch (dpkg --add-architecture $arch)"; return 1; }
        for p in $pkgs; do
            apt_ensure "$p" || { echo "MISSING: Debian package $p"; return 1; }
        done
        bs=" + build-std ($(rustc "+$BUILD_STD_TOOLCHAIN" -V | sed 's/^rustc //; s/[()]//g'))"
        bs="$bs + Debian ${pkgs%% *} $(dpkg-query -W -f='${Version}' "${pkgs%% *}")"
    else
        need_rust_target "$t" || { echo "MISSING: Rust target $t (rustup target add $t)"; return 1; }
    fi
    if [ "$t" = "$HOST" ]; then echo native; return 0; fi
    sec="$(toml_section "$t")"
    [ -n "$sec" ] || { echo "MISSING: no [target.$t] section in ci/qemu.toml"; return 1; }
    linker="$(sed -n 's/^linker *= *"\([^"]*\)".*/\1/p' <<<"$sec")"
    runner="$(sed -n 's/^runner *= *\[ *"\([^"]*\)".*/\1/p' <<<"$sec")"
    sysroot="$(sed -n 's/^runner *=.*"-L", *"\([^"]*\)".*/\1/p' <<<"$sec")"
    if [[ "$linker" == ci/* ]]; then
        [ -x "$ROOT/$linker" ] || { echo "MISSING: linker $ROOT/$linker (not executable)"; return 1; }
    elif [ "$linker" = rust-lld ]; then
        [ -x "$(rustc --print sysroot)/lib/rustlib/$HOST/bin/rust-lld" ] \
            || { echo "MISSING: rust-lld in the Rust toolchain (rustup component add rust-std? reinstall the toolchain)"; return 1; }
    elif [ -n "$linker" ]; then
        pkg="$(pkg_for "$linker")"
        need_cmd "$linker" "${pkg:-?}" || { echo "MISSING: linker $linker (Debian package ${pkg:-unknown})"; return 1; }
        libc="$(libc_dev_for "$linker")"
        if [ -n "$libc" ]; then
            apt_ensure "$libc" || { echo "MISSING: target glibc for $linker (Debian package $libc)"; return 1; }
        fi
    fi
    cc="$(cc_for "$t")"
    if [ -n "$cc" ]; then
        pkg="$(pkg_for "$cc")"
        need_cmd "$cc" "${pkg:-?}" || { echo "MISSING: C compiler $cc (Debian package ${pkg:-unknown})"; return 1; }
    fi
    how=native
    if [ -n "$runner" ]; then
        pkg="$(pkg_for "$runner")"
        need_cmd "$runner" "${pkg:-?}" || { echo "MISSING: runner $runner (Debian package ${pkg:-unknown})"; return 1; }
        how="qemu-user ($runner)"
    fi
    how="$how$bs"
    if [ -n "$sysroot" ] && [ ! -e "$sysroot/lib" ]; then
        echo "MISSING: target glibc in $sysroot (Debian package $(libc_dev_for "$linker"))"
        return 1
    fi
    echo "$how"
}

# The mode target $1 runs in: build-std targets always in qemu mode (the
# musl they link with is Debian's, installed here, not in a cross image).
target_mode() {
    if build_std_entry "$1" >/dev/null; then echo qemu; else echo "$MODE"; fi
}

# Install every missing Debian package up front, in one apt-get run
# (apt_ensure skips those already installed). Foreign architectures are
# added first, so that the one apt-get update fetches their indexes too.
want=()
for t in "${TARGETS[@]}"; do
    [ "$(target_mode "$t")" = qemu ] || continue
    if entry="$(build_std_entry "$t")"; then
        read -r _ arch pkgs <<<"$entry"
        if apt_add_arch "$arch"; then
            # shellcheck disable=SC2206
            want+=($pkgs)
        else
            log "$t: could not add the Debian architecture $arch; $t will fail"
        fi
    fi
    while read -r cmd; do
        [ -n "$cmd" ] || continue
        p="$(libc_dev_for "$cmd")"; [ -n "$p" ] && want+=("$p")
        command -v "$cmd" >/dev/null 2>&1 && continue
        p="$(pkg_for "$cmd")"; [ -n "$p" ] && want+=("$p")
    done < <(toml_section "$t" | sed -n 's/^linker *= *"\([^"]*\)".*/\1/p; s/^runner *= *\[ *"\([^"]*\)".*/\1/p'; cc_for "$t")
done
if [ "${#want[@]}" -gt 0 ]; then
    # shellcheck disable=SC2046
    apt_ensure $(printf '%s\n' "${want[@]}" | sort -u) \
        || log "some packages failed to install; the targets needing them will fail"
fi

# ---- run ------------------------------------------------------------------
# Sums the "test result:" lines of a cargo test log: passed failed ignored.
count_tests() {
    awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d %d %d\n", p, f, i }' "$1"
}

FAILED_TARGETS=()
SUMMARY=()
total_start="$(now)"
for t in "${TARGETS[@]}"; do
    logf="$LOGDIR/$t.log"
    : >"$logf"
    start="$(now)"
    result=pass
    tmode="$(target_mode "$t")"
    if [ "$tmode" = qemu ]; then
        if ! how="$(prepare_qemu_target "$t")"; then
            result=fail
            echo "$how" >>"$logf"
            log "$t: $how"
        fi
    else
        how="cross ($ENGINE)"
        need_rust_target "$t" >/dev/null 2>&1 || true   # cross installs it too
    fi
    if [ "$result" = pass ]; then
        for fs in "${FEATURE_SETS[@]}"; do
            log "$t: test $fs ($how)"
            echo "=== $t: cargo test $fs ($how)" >>"$logf"
            if build_std_entry "$t" >/dev/null; then
                cmd=(cargo "+$BUILD_STD_TOOLCHAIN" --config "$CONFIG" test -Zbuild-std --target "$t" "$fs")
            elif [ "$tmode" = qemu ]; then
                cmd=(cargo --config "$CONFIG" test --target "$t" "$fs")
            else
                cmd=(cross test --target "$t" --target-dir "$CARGO_TARGET_DIR" "$fs")
            fi
            rc=0
            (cd "$ROOT" && timeout --kill-after=30 "${TEST_TIMEOUT_MIN}m" "${cmd[@]}") >>"$logf" 2>&1 || rc=$?
            if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
                result=fail
                echo "=== FAILED: still running after $TEST_TIMEOUT_MIN minutes, killed (a hang): ${cmd[*]}" >>"$logf"
            elif [ "$rc" -ne 0 ]; then
                result=fail
                echo "=== FAILED: ${cmd[*]}" >>"$logf"
            fi
        done
    fi
    secs="$(elapsed "$start")"
    read -r passed failed ignored < <(count_tests "$logf")
    if [ "$result" = fail ]; then
        FAILED_TARGETS+=("$t")
        log "$t FAILED; last lines of $logf:"
        tail -n 40 "$logf" | sed 's/^/    /' >&2
    fi
    line="$(printf '%-32s %-4s passed=%-4d failed=%-3d ignored=%-3d %6ss  %s' \
        "$t" "$result" "$passed" "$failed" "$ignored" "$secs" "$how")"
    SUMMARY+=("$line")
    printf '%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n' "$t" "$result" "$passed" "$failed" "$ignored" \
        "$secs" "$how" "$(date -u +%F)" >"$CARGO_TARGET_DIR/results/$t.tsv"
    # One target's test build is 2 to 4 GB; CI drops it once its log and
    # result are written (a person keeps it to rerun a failing case).
    [ "${CI_DROP_TARGET_BUILDS:-0}" != 1 ] || rm -rf "${CARGO_TARGET_DIR:?}/$t"
done

echo
echo "cross-target matrix ($MODE mode, ${#TARGETS[@]} targets, $(elapsed "$total_start")s; counts are tests over both feature sets, doc tests included):"
printf '%s\n' "${SUMMARY[@]}"
n_fail="${#FAILED_TARGETS[@]}"
echo "targets: $(( ${#TARGETS[@]} - n_fail )) passed, $n_fail failed"
[ "$n_fail" -eq 0 ] || { log "failed targets: ${FAILED_TARGETS[*]} (logs in $LOGDIR)"; exit 1; }
