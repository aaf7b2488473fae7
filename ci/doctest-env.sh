#!/usr/bin/env bash
# Doc tests that read or change the environment must each run in a process
# of their own. Since the 2024 edition rustdoc merges doc tests into one
# binary and runs them on parallel threads, so a test that sets
# NOTIFY_SOCKET races one that removes it (seen once under qemu-s390x:
# "left as it was" failed), and libc's getenv racing a setenv is undefined
# behaviour. The `standalone_crate` attribute gives a test its own process.
#
# Usage: ci/doctest-env.sh   Lists each offending doc test; exit 1 if any.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bad="$(find src -name '*.rs' -print0 | sort -z | xargs -0 awk '
    FNR == 1 { inside = 0 }
    /^[[:space:]]*\/\/[\/!][[:space:]]*```/ {
        if (!inside) {
            inside = 1; start = FNR; tag = $0; sub(/.*```/, "", tag); touches = 0
        } else {
            runs = tag !~ /(ignore|no_run|compile_fail|text)/
            if (runs && touches && tag !~ /standalone_crate/)
                printf "%s:%d: a doc test that touches the environment is not standalone_crate\n", FILENAME, start
            inside = 0
        }
        next
    }
    inside && /(set_var|remove_var|from_env|watchdog_interval|getenv|env::var)/ { touches = 1 }
')"
if [ -n "$bad" ]; then
    echo "$bad" >&2
    exit 1
fi
echo "doc tests touching the environment: each in a process of its own"
