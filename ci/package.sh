#!/usr/bin/env bash
# What the published package holds, after `cargo publish --dry-run` (run
# just before by .ci/run) has built it: what a user needs (the library's
# source, the examples, the tests that run from the package, the docs,
# README, licenses, CHANGELOG) and no CI machinery, nor the workspace's
# other packages. Then the packaged tests compile on their own, from the
# unpacked package, as a user's `cargo test` there would.
# Usage: ci/package.sh
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

list="$(cargo package --list -p tokenpipe --allow-dirty 2>/dev/null)"
fail=0
must() {
    if grep -qx -- "$1" <<<"$list"; then
        echo "ok   the package holds $1"
    else
        echo "FAIL the package lacks $1"
        fail=1
    fi
}
must_not() {
    local hits
    hits="$(grep -E -- "$1" <<<"$list" || true)"
    if [ -z "$hits" ]; then
        echo "ok   the package holds nothing matching $1 ($2)"
    else
        echo "FAIL the package holds $2: $(tr '\n' ' ' <<<"$hits")"
        fail=1
    fi
}
for f in Cargo.toml README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE build.rs src/lib.rs \
    examples/launch.rs examples/daemon_wait.rs tests/common/mod.rs \
    tests/launch_supervises_a_ready_service.rs docs/readiness.md; do
    must "$f"
done
must_not '^(\.ci|ci|fuzz|benches|target)/' "CI machinery, fuzz targets, benches or build output"
must_not '^tests/heavy/' "the heavy tests, a package of their own"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
unpacked="$ROOT/target/package/tokenpipe-$version"
[ -f "$unpacked/Cargo.toml" ] || die "no unpacked package at $unpacked: run cargo publish --dry-run -p tokenpipe first"
if CARGO_TARGET_DIR="$ROOT/target/package-tests" cargo test --no-run --all-features \
    --manifest-path "$unpacked/Cargo.toml" >"$ROOT/target/package-tests.log" 2>&1; then
    echo "ok   the packaged tests and examples compile from the unpacked package"
else
    echo "FAIL the packaged tests do not compile on their own; last lines of target/package-tests.log:"
    tail -n 20 "$ROOT/target/package-tests.log" | sed 's/^/    /'
    fail=1
fi
exit "$fail"
