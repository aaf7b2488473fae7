#!/usr/bin/env bash
# MSRV check: reads `rust-version` from Cargo.toml, installs that toolchain
# (rustup, minimal profile) and runs `cargo +<version> check --lib` with the
# default features (std), with all features, and with `--no-default-features`
# (the no_std core). The library only: tests and examples may use newer Rust,
# and so may the workspace's other members, tests/heavy/ and benches/ (test
# and bench targets only, no library, no rust-version; `--lib` passes them
# by).
#
# Usage: ci/msrv.sh
# Environment: CARGO_TARGET_DIR (default target/msrv); the result line is
# also written to $CARGO_TARGET_DIR/result.txt for ci/platform-table.sh.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/msrv}"
mkdir -p "$CARGO_TARGET_DIR"
echo "fail: ci/msrv.sh did not finish" >"$CARGO_TARGET_DIR/result.txt"
start="$(now)"

command -v rustup >/dev/null 2>&1 || die "missing tool: rustup (the MSRV toolchain is installed with it)"
MSRV="$(sed -n 's/^rust-version *= *"\([^"]*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
[ -n "$MSRV" ] || die "no rust-version in $ROOT/Cargo.toml"
echo "fail: rust $MSRV (see ci/msrv.sh output)" >"$CARGO_TARGET_DIR/result.txt"

if ! rustup run "$MSRV" rustc --version >/dev/null 2>&1; then
    log "rustup toolchain install $MSRV --profile minimal"
    rustup toolchain install "$MSRV" --profile minimal >&2 \
        || die "missing toolchain: rustup toolchain install $MSRV failed"
fi

cd "$ROOT"
for fs in "" "--all-features" "--no-default-features"; do
    log "cargo +$MSRV check --lib $fs"
    # shellcheck disable=SC2086  # empty $fs must vanish
    cargo "+$MSRV" check --lib $fs || die "cargo +$MSRV check --lib $fs failed"
done
line="rust $MSRV ($(rustup run "$MSRV" rustc --version)): lib checks with std, all features and no_std pass ($(elapsed "$start")s)"
echo "$line" >"$CARGO_TARGET_DIR/result.txt"
echo "msrv: $line"
