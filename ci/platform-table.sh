#!/usr/bin/env bash
# Writes the platform table (markdown) from the results the other ci/ scripts
# left in target/: target/cross/results/*.tsv (ci/cross.sh),
# target/check/results/*.tsv (ci/check-targets.sh), target/minimal-size.txt
# (ci/minimal.sh) and target/msrv/result.txt (ci/msrv.sh). Rows whose script
# has not run say so.
#
# Usage: ci/platform-table.sh [--update-docs] [OUT]   (default: target/platform-table.md)
# With --update-docs the table also replaces the platform-table section of
# docs/platforms.md, the tracked copy; without it the working tree is left
# as it was.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

update_docs=0
if [ "${1:-}" = --update-docs ]; then update_docs=1; shift; fi
OUT="${1:-$ROOT/target/platform-table.md}"
T="$ROOT/target"
big_endian() { case "$1" in powerpc64-*|s390x-*) echo ", big-endian" ;; esac; }
num() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }

{
echo "| Target | How tested | What the crate offers there | Result of last run |"
echo "| --- | --- | --- | --- |"
shopt -s nullglob
# Runnable targets in ci/cross.sh's order (the host first), then any others.
mapfile -t ORDER < <(echo x86_64-unknown-linux-gnu; sed -n '/^MATRIX=(/,/^)/p' "$ROOT/ci/cross.sh" | sed '1d;$d; s/^ *//')
cross_files=()
for t in "${ORDER[@]}"; do
    [ -f "$T/cross/results/$t.tsv" ] && cross_files+=("$T/cross/results/$t.tsv")
done
for f in "$T"/cross/results/*.tsv; do
    case " ${ORDER[*]} " in *" $(basename "$f" .tsv) "*) ;; *) cross_files+=("$f") ;; esac
done
for f in "${cross_files[@]}"; do
    IFS=$'\t' read -r t result passed failed ignored secs how date <"$f"
    case "$how" in
        native) if [ "${t%%-*}" = i686 ]; then how="run natively (32-bit, on the x86_64 kernel)"; else how="run natively"; fi ;;
        # ci/cross.sh's build-std targets: "qemu-user (RUNNER) + build-std
        # (RUSTC VERSION) + Debian PACKAGE VERSION".
        qemu-user*"+ build-std ("*)
            runner="${how#*(}"; runner="${runner%%)*}"
            bs="${how#*build-std (}"; bs="${bs%%)*}"
            how="run under qemu-user ($runner), std built from rust-src with \`cargo +nightly -Zbuild-std\` (rustc $bs: rustup has no std for this target) and linked against Debian's musl (${how##*+ Debian })" ;;
        qemu-user*) how="run under qemu-user (${how#*(}"; how="${how%)})$(big_endian "$t")" ;;
        cross*) how="run with \`cross\` ${how#cross }$(big_endian "$t")" ;;
        MISSING*) how="not run: ${how#MISSING: }" ;;
    esac
    extra=""; [ "$ignored" -gt 0 ] && extra=", $ignored ignored"
    [ "$result" = fail ] && [ $((passed + failed)) -eq 0 ] && extra="$extra; did not build or did not start (see target/cross/logs/$t.log)"
    echo "| \`$t\` | $how: \`cargo test\`, all features and no default features, doc tests included | $(crate_offers "$T/cross" "$t") | $result: $passed passed, $failed failed$extra ($secs s, $date) |"
done
# Check-only targets in ci/check-targets.sh's order.
mapfile -t CORDER < <(awk '
    /^(RUSTUP|BUILD_STD|BARE)_TARGETS=\(/ { on = 1; sub(/^[A-Z_]+=\(/, "") }
    on { line = $0; gsub(/[()]/, " ", line); n = split(line, w, " "); for (i = 1; i <= n; i++) print w[i] }
    on && /\)/ { on = 0 }' "$ROOT/ci/check-targets.sh")
check_files=()
for t in "${CORDER[@]}"; do
    [ -f "$T/check/results/$t.tsv" ] && check_files+=("$T/check/results/$t.tsv")
done
for f in "$T"/check/results/*.tsv; do
    case " ${CORDER[*]} " in *" $(basename "$f" .tsv) "*) ;; *) check_files+=("$f") ;; esac
done
for f in "${check_files[@]}"; do
    IFS=$'\t' read -r t result secs how date what <"$f"
    case "$how" in
        built*) how="built: \`cargo build --lib --no-default-features\`"; what="${what:-empty library}" ;;
        "type-checked (all targets"*) how="type-checked: \`cargo check --all-targets\`, all features and no default features" ;;
        *"core (no_std) and std"*) how="type-checked: \`cargo +nightly check -Zbuild-std\`, core with no default features and std with all features" ;;
        *"core (no_std) only"*) how="type-checked: \`cargo +nightly check -Zbuild-std=core\`, no default features (the target's own std does not build)" ;;
    esac
    echo "| \`$t\` | $how | ${what:-?} | $result ($secs s, $date) |"
done
if [ -f "$T/minimal-size.txt" ]; then
    m() { tr ' ' '\n' <"$T/minimal-size.txt" | sed -n "s/^$1=//p"; }
    echo "| \`x86_64-unknown-linux-musl\`, minimal binary | built (\`#![no_std]\`, \`#![no_main]\`, no allocator, static, non-PIE) and run natively | make, write, read, close | $(m result): $(num "$(m rust_x86_64_lld)") bytes stripped; the same program in C: $(num "$(m c_x86_64_lld)") bytes (ratio $(m ratio_lld), both linked by lld); with GNU ld: Rust $(num "$(m rust_x86_64_gnuld)"), C \`musl-gcc -Os -static -s\` $(num "$(m c_x86_64_gnuld)") (ratio $(m ratio_gnuld)) |"
    echo "| \`aarch64-unknown-linux-musl\`, minimal binary | built as above and run under qemu-user (qemu-aarch64) | make, write, read, close | $(m result): $(num "$(m rust_aarch64_lld)") bytes stripped |"
    if [ -n "$(m rust_armv7_musl)" ]; then
        echo "| \`armv7-unknown-linux-musleabihf\`, minimal binary | built as above with \`cargo +nightly -Zbuild-std=core\` (rustup has no std for this target), linked by GNU ld against Debian's armhf musl, run under qemu-user (qemu-arm) | make, write, read, close | $(m result): $(num "$(m rust_armv7_musl)") bytes stripped; the same program in C, \`arm-linux-musleabihf-gcc -Os -static -s\` (same linker and libc): $(num "$(m c_armv7_musl)") (ratio $(m ratio_armv7_musl)) |"
    fi
else
    echo "| minimal binary | ci/minimal.sh | | not run |"
fi
if [ -f "$T/msrv/result.txt" ]; then
    echo "| MSRV | \`cargo +<rust-version> check --lib\`: std, all features, no_std | | $(cut -d'(' -f1 <"$T/msrv/result.txt" | sed 's/ *$//'): $(sed 's/.*: //' <"$T/msrv/result.txt") |"
else
    echo "| MSRV | ci/msrv.sh | | not run |"
fi
cat <<'NOTE'

How the runnable targets are run: `ci/cross.sh` uses [`cross`](https://github.com/cross-rs/cross)
with the root `Cross.toml` when a container engine answers (`docker info` or `podman info`
succeeds); otherwise (no container engine, as on this project's CI machine) it installs Debian's
`qemu-user` and `gcc-<triple>` cross linkers and runs `cargo --config ci/qemu.toml test
--target <triple>`, with `qemu-<arch> -L /usr/<gnu-triple>` as the runner (explicit runners: no
binfmt_misc needed). `CROSS_MODE=qemu` or `CROSS_MODE=cross` forces either. The musl targets link
with `rust-lld` and rustup's own musl; x86_64 and i686 run natively. `armv7-unknown-linux-musleabihf`,
for which rustup serves no standard library, is built with `cargo +nightly test -Zbuild-std` (std
compiled from the nightly's `rust-src`) and linked by Debian's `arm-linux-musleabihf-gcc` against
Debian's armhf musl 1.2.3 (`musl-dev:armhf`), in qemu mode always; `riscv64gc-unknown-linux-musl`
is not tested: Debian bookworm has no riscv64 musl. Doc tests run on every target:
since Rust 1.89 `cargo test --target` cross-compiles them and runs them through the runner; under a
runner rustdoc runs the merged doc tests in one process instead of one process each. A test
that re-executes its own binary starts it through the runner named in `TOKENPIPE_TEST_RUNNER`,
which the qemu runners set (without binfmt_misc a foreign binary cannot be exec'd directly).
NOTE
} >"$OUT"
log "wrote $OUT"
if [ "$update_docs" -eq 1 ]; then
    replace_section "$ROOT/docs/platforms.md" platform-table <"$OUT" \
        || die "docs/platforms.md: no platform-table section"
    log "wrote docs/platforms.md's platform-table section"
fi
