#!/usr/bin/env bash
# Minimal-target proof: builds ci/minimal (a #![no_std] #![no_main] static
# musl executable using tokenpipe with default-features = false, no
# allocator, panic = "abort", opt-level "z", lto, codegen-units = 1, strip),
# runs it on x86_64 (natively), aarch64 (qemu-aarch64) and armv7 musl
# (qemu-arm), and compares its stripped size with the same program in C over
# raw libc (ci/minimal/c).
#
# Usage: ci/minimal.sh
# Environment: CARGO_TARGET_DIR is ignored; builds go to target/minimal/.
# Result: a table on stdout, and one key=value line in target/minimal-size.txt
# (result=pass|fail, sizes in bytes, ratios), written only once all built and ran.
# Fails if a binary does not run to exit 0, is not static, or a Rust binary
# is more than 1.05x the size of the C program it is compared with.
#
# What decides the size (measured here, x86_64, Rust 1.95, Debian musl 1.2.3):
#
# * The linker, far more than the code. GNU ld (what `musl-gcc -static`
#   uses) aligns the text, rodata and data segments of a static binary to
#   4 KiB pages in the file (-z separate-code, the x86_64 default), so a
#   ~4 KiB program becomes ~13 KiB; lld packs them. The C program is 13,376
#   bytes through GNU ld and 4,880 through lld; the Rust one 13,424 and
#   4,968. So the script compares like with like, and gates both pairs:
#     rust-lld  : Rust linked by rust-lld (rustup's, the build users get)
#                 vs the C program linked by the same lld;
#     GNU ld    : Rust linked by musl-gcc against Debian's musl (crt and
#                 libc.a, -C link-self-contained=no) vs `musl-gcc -Os
#                 -static -s`, the same libc and linker as the C program.
#   It also gates the rust-lld binary against the plain `musl-gcc` C build.
#
# * Non-PIE: `-C relocation-model=static`. Rust's musl targets default to
#   static-pie, which adds a dynamic section, relative relocations and
#   musl's self-relocating start code (rcrt1.o): 6,856 bytes instead of
#   4,968 with rust-lld. Through musl-gcc, static-pie is worse than big:
#   musl-gcc's specs do not handle -static-pie and the result is a
#   *dynamically* linked PIE needing /lib/ld-musl-x86_64.so.1 (14,008
#   bytes). `-C target-feature=+crt-static` is the musl default already; it
#   is spelled out so the binary stays static whatever a config says. The
#   script checks for a PT_INTERP header and fails if one appears.
#
# * armv7-unknown-linux-musleabihf has no rustup std (not even core), so
#   core is built from the nightly's rust-src: `cargo +nightly build
#   -Zbuild-std=core` (compiler_builtins comes with it; no
#   -Zbuild-std-features needed: the release profile's panic = "abort"
#   applies to core too, and musl's libc.a has memcpy and friends). It links
#   with ci/armv7-musl-gcc (Debian's arm-linux-musleabihf-gcc: GNU ld,
#   Debian's armhf musl 1.2.3 crt files and libc.a; see ci/qemu.toml) and
#   -C link-self-contained=no. `-C force-unwind-tables=no`: otherwise each
#   function's .ARM.exidx entry refers to the EHABI personality routine
#   __aeabi_unwind_cpp_pr0, which only an unwinder (libgcc_eh) defines, and
#   a panic = "abort" binary has none. The C program is built by the same
#   arm-linux-musleabihf-gcc (-Os -static -s): same linker, same libc, same
#   crt files, so that ratio is gated too.
#
# * Linking libc: with default-features = false the libc crate does not link
#   libc, so src/main.rs says `#[link(name = "c")]`; musl's libc.a also
#   brings the crt start-up that calls our `extern "C" fn main`.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MIN="$ROOT/ci/minimal"
OUT="$ROOT/target/minimal"
BIN=tokenpipe-minimal
LIMIT=1.05
SIZE_FILE="$ROOT/target/minimal-size.txt"
mkdir -p "$OUT"
rm -f "$SIZE_FILE"

need_cmd cargo cargo || die "cargo is required (install Rust with rustup)"
need_cmd musl-gcc musl-tools || die "missing tool: musl-gcc (Debian package musl-tools)"
need_cmd qemu-aarch64 qemu-user || die "missing tool: qemu-aarch64 (Debian package qemu-user)"
need_cmd readelf binutils || die "missing tool: readelf (Debian package binutils)"
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    need_rust_target "$t" || die "missing Rust target $t"
done
ARMV7=armv7-unknown-linux-musleabihf
need_rust_src nightly || die "missing rust-src of the nightly toolchain (for -Zbuild-std=core on $ARMV7)"
apt_add_arch armhf || die "could not add the Debian architecture armhf (for musl-dev:armhf)"
apt_ensure musl-dev:armhf gcc-arm-linux-gnueabihf \
    || die "missing Debian packages for $ARMV7: musl-dev:armhf, gcc-arm-linux-gnueabihf (see above which)"
need_cmd arm-linux-musleabihf-gcc musl-dev:armhf || die "missing tool: arm-linux-musleabihf-gcc (Debian package musl-dev:armhf)"
need_cmd qemu-arm qemu-user || die "missing tool: qemu-arm (Debian package qemu-user)"
HOST="$(host_triple)"
LLD_DIR="$(rustc --print sysroot)/lib/rustlib/$HOST/bin"
[ -x "$LLD_DIR/rust-lld" ] || die "missing tool: rust-lld in $LLD_DIR (part of the rustup toolchain)"
[ -x "$LLD_DIR/gcc-ld/ld.lld" ] || die "missing tool: $LLD_DIR/gcc-ld/ld.lld (rustup's lld wrapper for cc)"

NONPIE=('"-C"' '"relocation-model=static"' '"-C"' '"target-feature=+crt-static"')
join() { local IFS=,; echo "$*"; }

# build NAME TARGET LINKER [extra rustflags...]: builds into $OUT/NAME and
# prints the path of the binary. $ARMV7 builds core with nightly -Zbuild-std.
build() {
    local name="$1" target="$2" linker="$3"; shift 3
    local flags=("${NONPIE[@]}" "$@") cargo=(cargo) zflags=()
    if [ "$target" = "$ARMV7" ]; then cargo=(cargo +nightly); zflags=(-Zbuild-std=core); fi
    log "build $name: ${cargo[*]} ${zflags[*]} $target, linker $linker, rustflags [$(join "${flags[@]}")]"
    (cd "$MIN" && CARGO_TARGET_DIR="$OUT/$name" "${cargo[@]}" build --release --target "$target" "${zflags[@]}" \
        --config "target.$target.linker=\"$linker\"" \
        --config "target.$target.rustflags=[$(join "${flags[@]}")]") >&2 \
        || die "build $name failed"
    echo "$OUT/$name/$target/release/$BIN"
}

# check NAME FILE [runner...]: must be static, and run to exit 0.
check() {
    local name="$1" f="$2"; shift 2
    if readelf -l "$f" | grep -q INTERP; then
        die "$name: $f is not static (it has a PT_INTERP program header)"
    fi
    local rc=0
    "$@" "$f" || rc=$?
    [ "$rc" -eq 0 ] || die "$name: $f exited $rc (1 make, 2 write, 3 read, 4 close, 5 end of stream)"
}
size() { stat -c %s "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
over() { awk -v r="$1" -v l="$LIMIT" 'BEGIN { exit !(r > l) }'; }

# --- Rust ---
rust_x86=$(build lld x86_64-unknown-linux-musl rust-lld)
check "rust x86_64 (rust-lld)" "$rust_x86"
rust_a64=$(build lld aarch64-unknown-linux-musl rust-lld)
check "rust aarch64 (rust-lld)" "$rust_a64" qemu-aarch64
rust_gnu=$(build gnuld x86_64-unknown-linux-musl musl-gcc '"-C"' '"link-self-contained=no"')
check "rust x86_64 (musl-gcc)" "$rust_gnu"
rust_armv7=$(build armv7 "$ARMV7" "$ROOT/ci/armv7-musl-gcc" \
    '"-C"' '"link-self-contained=no"' '"-C"' '"force-unwind-tables=no"')
check "rust armv7 musl (arm-linux-musleabihf-gcc)" "$rust_armv7" qemu-arm

# --- C ---
mkdir -p "$OUT/c"
c_gnu="$OUT/c/minimal-gnuld"
c_lld="$OUT/c/minimal-lld"
log "musl-gcc -Os -static -s ci/minimal/c/minimal.c"
musl-gcc -Os -static -s -o "$c_gnu" "$MIN/c/minimal.c" || die "C build (musl-gcc) failed"
check "C (musl-gcc)" "$c_gnu"
# The same, linked by rustup's lld (musl-gcc's specs always pass
# -dynamic-linker, which lld would honour even in a static link).
musl-gcc -Os -static -s -B"$LLD_DIR/gcc-ld" -fuse-ld=lld -Wl,--no-dynamic-linker \
    -o "$c_lld" "$MIN/c/minimal.c" || die "C build (musl-gcc with rust-lld) failed"
check "C (musl-gcc, lld)" "$c_lld"
c_armv7="$OUT/c/minimal-armv7"
log "arm-linux-musleabihf-gcc -Os -static -s ci/minimal/c/minimal.c"
arm-linux-musleabihf-gcc -Os -static -s -o "$c_armv7" "$MIN/c/minimal.c" \
    || die "C build (arm-linux-musleabihf-gcc) failed"
check "C armv7 (arm-linux-musleabihf-gcc)" "$c_armv7" qemu-arm

s_rx=$(size "$rust_x86"); s_ra=$(size "$rust_a64"); s_rg=$(size "$rust_gnu")
s_cg=$(size "$c_gnu"); s_cl=$(size "$c_lld")
s_r7=$(size "$rust_armv7"); s_c7=$(size "$c_armv7")
r_lld=$(ratio "$s_rx" "$s_cl")      # Rust vs C, both linked by lld
r_gnu=$(ratio "$s_rg" "$s_cg")      # Rust vs C, both linked by musl-gcc (GNU ld)
r_spec=$(ratio "$s_rx" "$s_cg")     # shipped Rust build vs `musl-gcc -Os -static -s`
r_armv7=$(ratio "$s_r7" "$s_c7")    # armv7 musl, both by arm-linux-musleabihf-gcc (GNU ld)

printf '\nminimal no_std binary, stripped static musl, non-PIE (sizes in bytes):\n'
printf '  %-52s %7s\n' \
    "Rust x86_64, rust-lld" "$s_rx" \
    "Rust aarch64, rust-lld (ran under qemu-aarch64)" "$s_ra" \
    "Rust x86_64, musl-gcc (GNU ld, Debian musl)" "$s_rg" \
    "C x86_64, musl-gcc -Os -static -s" "$s_cg" \
    "C x86_64, musl-gcc -Os -static -s, lld" "$s_cl" \
    "Rust armv7 musl, build-std=core, GNU ld (qemu-arm)" "$s_r7" \
    "C armv7, arm-linux-musleabihf-gcc -Os -static -s" "$s_c7"
printf '  ratio Rust/C: %s with lld, %s with GNU ld, %s rust-lld build vs musl-gcc C, %s armv7 musl (limit %s)\n' \
    "$r_lld" "$r_gnu" "$r_spec" "$r_armv7" "$LIMIT"

fail=0
for pair in "lld:$r_lld" "GNU ld:$r_gnu" "rust-lld vs musl-gcc C:$r_spec" "armv7 musl, GNU ld:$r_armv7"; do
    if over "${pair##*:}"; then
        log "size gate FAILED: Rust/C ratio ${pair##*:} (${pair%:*}) is above $LIMIT"
        fail=1
    fi
done
result=pass; [ "$fail" -eq 0 ] || result=fail

RUSTC="$(rustc -V | awk '{print $2}')"
RUSTC_NIGHTLY="$(rustc +nightly -V | awk '{print $2}')"   # built $ARMV7
echo "minimal-size result=$result rustc=$RUSTC rustc_nightly=$RUSTC_NIGHTLY rust_x86_64_lld=$s_rx rust_aarch64_lld=$s_ra rust_x86_64_gnuld=$s_rg c_x86_64_gnuld=$s_cg c_x86_64_lld=$s_cl ratio_lld=$r_lld ratio_gnuld=$r_gnu ratio_vs_musl_gcc_c=$r_spec rust_armv7_musl=$s_r7 c_armv7_musl=$s_c7 ratio_armv7_musl=$r_armv7 limit=$LIMIT" \
    >"$SIZE_FILE"
[ "$fail" -eq 0 ] || exit 1
echo "minimal: 4 Rust and 3 C binaries ran, sizes within ${LIMIT}x of C"
