# Shared helpers for the ci/*.sh scripts. Source it; do not run it.
#
#   ROOT            the repository root (the directory holding Cargo.toml)
#   log MSG...      prints "[script] MSG" to stderr
#   die MSG...      prints "[script] error: MSG" to stderr and exits 1
#   apt_ensure PKG...   installs the Debian packages that are not installed yet
#                   (apt_update_once first); returns non-zero, naming each
#                   package that could not be installed, on failure
#   apt_update_once     apt-get update, at most once per script run; a failed
#                   update is retried once after 5 s, then logged as a warning
#                   (with apt's lines naming the index that failed) and not an
#                   error: the install goes on from the indexes that did
#                   download, and only a package that cannot be had fails
#   need_cmd CMD PKG    makes sure command CMD exists, installing Debian package
#                   PKG when it is missing; returns non-zero (after printing what
#                   is missing) when it still is not there
#   need_rust_target TRIPLE [TOOLCHAIN]   rustup target add, when missing
#   need_rust_src TOOLCHAIN   the toolchain (rustup toolchain install, minimal
#                   profile) and its rust-src component (what -Zbuild-std
#                   builds the standard library from), when missing
#   apt_add_arch ARCH   dpkg --add-architecture ARCH (a Debian architecture
#                   such as armhf, for multiarch packages like musl-dev:armhf)
#                   when it is not the native one nor added yet; after adding
#                   it, the next apt_update_once runs apt-get update again,
#                   since the indexes fetched so far lack the new architecture
#   host_triple     the host's target triple (rustc -vV)
#   check_target_args ARG...   handles -h/--help (prints the calling
#                   script's header) and rejects empty or option-like targets
#   as_root CMD...  runs CMD as root: directly when root, else through sudo;
#                   returns 1 (after saying so) when neither is possible
#   crate_offers DIR TRIPLE   what build.rs let the crate offer on TRIPLE,
#                   as last built in target dir DIR, in a few words
#   now             wall-clock seconds since the epoch, with a fraction
#   elapsed T0      seconds since T0 (a `now` reading), to one decimal
#   replace_section FILE NAME   replaces what lies between the lines
#                   "<!-- NAME:start -->" and "<!-- NAME:end -->" of FILE (a
#                   docs/ page) with stdin, keeping the markers; returns 1,
#                   changing nothing, when FILE lacks either marker

# shellcheck shell=bash disable=SC2034
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CI_NAME="$(basename "${0%.sh}")"
CI_APT_UPDATED=0
CI_APT_UPDATE_FAILED=0

log() { printf '[%s] %s\n' "$CI_NAME" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$CI_NAME" "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root (or sudo) to run: $*"
        return 1
    fi
}

# apt-get update exits non-zero when any one index fails to download (say a
# foreign-architecture security index in mid mirror sync: "File has unexpected
# size ... Mirror sync in progress?"), yet every index that did download still
# serves installs. So a failed update is a warning here, never fatal.
apt_update_once() {
    [ "$CI_APT_UPDATED" -eq 0 ] || return 0
    CI_APT_UPDATED=1
    local out rc try lines line
    for try in 1 2; do
        log "apt-get update"
        rc=0
        out="$(as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq 2>&1)" || rc=$?
        if [ "$rc" -eq 0 ]; then
            [ -z "$out" ] || printf '%s\n' "$out" >&2   # apt's own warnings, if any
            return 0
        fi
        [ "$try" -eq 2 ] || { log "apt-get update exited $rc; retrying in 5 s"; sleep 5; }
    done
    CI_APT_UPDATE_FAILED=1
    log "warning: apt-get update exited $rc; going on with the indexes that did download. apt said:"
    # apt's E:/W:/Err: lines name the index that failed; without any (a
    # message from as_root, say), the end of whatever it printed.
    lines="$(grep -E '^(E|W|Err):' <<<"$out")" || lines="$(tail -n 20 <<<"$out")"
    while IFS= read -r line; do log "    $line"; done <<<"$lines"
    return 0
}

apt_ensure() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        log "missing packages ${missing[*]} and there is no apt-get to install them"
        return 1
    fi
    apt_update_once
    log "apt-get install ${missing[*]}"
    if ! as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
        # One at a time, so the failure names the package that cannot be had.
        local failed=()
        for p in "${missing[@]}"; do
            as_root env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends "$p" >&2 || failed+=("$p")
        done
        if [ "${#failed[@]}" -gt 0 ]; then
            local why=""
            [ "$CI_APT_UPDATE_FAILED" -eq 0 ] || why=" (apt-get update had failed: see the warning above)"
            log "could not install Debian package(s): ${failed[*]}$why"
            return 1
        fi
    fi
}

need_cmd() {
    local cmd="$1" pkg="$2"
    command -v "$cmd" >/dev/null 2>&1 && return 0
    apt_ensure "$pkg" || true
    command -v "$cmd" >/dev/null 2>&1 && return 0
    log "missing tool: $cmd (Debian package $pkg)"
    return 1
}

need_rust_target() {
    local triple="$1" tc="${2:-}"
    local plus=()
    [ -n "$tc" ] && plus=("--toolchain" "$tc")
    command -v rustup >/dev/null 2>&1 || { log "missing tool: rustup"; return 1; }
    if rustup target list --installed "${plus[@]}" 2>/dev/null | grep -qx "$triple"; then
        return 0
    fi
    log "rustup target add $triple ${tc:+(toolchain $tc)}"
    rustup target add "${plus[@]}" "$triple" >&2 \
        || { log "missing Rust target: rustup target add $triple failed"; return 1; }
}

need_rust_src() {
    local tc="$1"
    command -v rustup >/dev/null 2>&1 || { log "missing tool: rustup"; return 1; }
    if ! rustup toolchain list 2>/dev/null | grep -q "^${tc}[- ]"; then
        log "rustup toolchain install $tc --profile minimal --component rust-src"
        rustup toolchain install "$tc" --profile minimal --component rust-src >&2 \
            || { log "missing Rust toolchain: rustup toolchain install $tc failed"; return 1; }
    fi
    if ! rustup component list --installed --toolchain "$tc" 2>/dev/null | grep -qx rust-src; then
        log "rustup component add rust-src --toolchain $tc"
        rustup component add rust-src --toolchain "$tc" >&2 \
            || { log "missing rust-src for $tc: rustup component add rust-src --toolchain $tc failed"; return 1; }
    fi
}

apt_add_arch() {
    local arch="$1"
    command -v dpkg >/dev/null 2>&1 || { log "missing tool: dpkg (needed to add the Debian architecture $arch)"; return 1; }
    [ "$(dpkg --print-architecture)" = "$arch" ] && return 0
    dpkg --print-foreign-architectures | grep -qx "$arch" && return 0
    log "dpkg --add-architecture $arch"
    as_root dpkg --add-architecture "$arch" \
        || { log "could not add the Debian architecture $arch (dpkg --add-architecture $arch failed)"; return 1; }
    CI_APT_UPDATED=0   # the next apt_update_once fetches the new architecture's indexes
}

host_triple() { rustc -vV | sed -n 's/^host: //p'; }

# Wall-clock seconds since the epoch, with a fraction, for timings.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

replace_section() {
    local file="$1" name="$2" new
    new="$(mktemp)"
    cat >"$new"
    if ! grep -qxF "<!-- $name:start -->" "$file" 2>/dev/null \
        || ! grep -qxF "<!-- $name:end -->" "$file"; then
        rm -f "$new"
        log "error: $file has no <!-- $name:start --> ... <!-- $name:end --> section"
        return 1
    fi
    awk -v start="<!-- $name:start -->" -v end="<!-- $name:end -->" -v new="$new" '
        $0 == start { print; while ((getline line < new) > 0) print line; skip = 1; next }
        $0 == end { skip = 0 }
        !skip { print }' "$file" >"$file.tmp" && mv "$file.tmp" "$file"
    rm -f "$new"
}

check_target_args() {
    local a
    for a in "$@"; do
        case "$a" in
            -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
            ""|-*) die "not a target: '$a' (usage: ci/$CI_NAME.sh [TARGET...])" ;;
        esac
    done
}

# What the crate offers on target $2 as built in target dir $1, from the
# cfg flags build.rs gave it (the build script's `output` file from the
# last build there), in a few words; "?" if it was not built there.
crate_offers() {
    local out flags parts=() missing=() joined
    # Of the build script's runs for this target (one per feature set), the
    # one that set the most flags: the std build's, where there was one.
    local f n best=-1
    out=""
    for f in "$1/$2"/debug/build/tokenpipe-*/output; do
        [ -f "$f" ] || continue
        n="$(grep -c '^cargo::rustc-cfg=' "$f")" || true
        if [ "$n" -gt "$best" ]; then best="$n"; out="$f"; fi
    done
    [ -n "$out" ] || { echo "?"; return; }
    flags=" $(sed -n 's/^cargo::rustc-cfg=\(tokenpipe_[a-z0-9_]*\).*/\1/p' "$out" | tr '\n' ' ')"
    has() { case "$flags" in *" tokenpipe_$1 "*) return 0 ;; esac; return 1; }
    if ! has sys; then echo "empty library"; return; fi
    if has pipe2; then parts+=("pipe2"); else parts+=("pipe + fcntl"); fi
    if has nosigpipe; then parts+=("F_SETNOSIGPIPE"); elif has sigmask; then parts+=("SIGPIPE masked");
    else parts+=("no SIGPIPE to mask"); fi
    has fork || missing+=("daemon")
    has launch || missing+=("launch")
    has unix_socket || missing+=("notify socket")
    if has fork && ! has record_locks; then missing+=("pid file lock"); fi
    joined="${parts[0]}, ${parts[1]}"
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "everything ($joined)"
    else
        local IFS=,
        local m="${missing[*]}"
        echo "all but: ${m//,/, } ($joined)"
    fi
}

# The check scripts' tally (ci/launchers.sh, ci/systemd.sh): pass/fail print
# one ok/FAIL line each and count it in $passes/$failures.
passes=0
failures=0
pass() { echo "ok   $*"; passes=$((passes + 1)); }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# wait_until SECONDS CMD...: polls CMD every 20 ms until it succeeds.
wait_until() {
    local tries=$(($1 * 50)) _
    shift
    for _ in $(seq "$tries"); do "$@" && return 0; sleep 0.02; done
    return 1
}

# one_line TEXT: TEXT with its lines joined by " | ", for an ok/FAIL line.
one_line() { tr '\n' '|' <<<"$1" | sed 's/|$//; s/|/ | /g'; }
