#!/usr/bin/env bash
# Runs the criterion benchmarks (benches/tokenpipe.rs, in the workspace
# member tokenpipe-benches) and the callgrind count
# (ci/instructions.sh), then reports each row's median and its ratio to the
# raw-libc row of its group: a table on stdout, the same as markdown
# in docs/bench.md (with date, machine and rustc) and as a bar chart in
# docs/bench.svg, both generated from criterion's results
# (<round>/<group>/<row>/new/{benchmark,estimates}.json); the same table and
# the instruction counts also fill their sections of docs/performance.md.
#
# Usage: ci/bench.sh [short|full]
#   short (default)  3 rounds of 0.5 s warm-up + 1.5 s measurement per row:
#                    about 2.5 minutes on 2 cores
#   full             5 rounds of 1 s warm-up + 4 s measurement per row:
#                    about 9 minutes
# Environment: CARGO_TARGET_DIR (default target/); criterion's results go to
# $CARGO_TARGET_DIR/bench-criterion/round-<n> (emptied first, so no stale
# row is reported), its log to $CARGO_TARGET_DIR/bench.log.
#
# Why rounds: criterion measures one row after another, and on a shared
# machine the load drifts between rows more than the few percent being
# claimed. Each round measures every row again; a row's ratio is the median
# over rounds of its ratio to the raw-libc row *of the same round*, measured
# seconds apart, so slow drift cancels and one disturbed round cannot move
# the result. The table shows the lowest and highest round's ratio as the
# noise.
#
# Ratios, not times, are the claim: the machine may be shared and noisy. The
# script prints whether the issue's targets were met (crate within 1.05x of
# raw libc for roundtrip, ping_pong and make_close; no peer faster beyond
# noise, i.e. faster in every round and by more than 5% in the median one;
# batch throughput at least 0.95x raw libc's) but exits 0 either
# way: a wall-clock miss on a noisy machine is a finding, not a build error.
set -euo pipefail
# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start="$(now)"

mode="${1:-short}"
case "$mode" in
    short) rounds=3 crit=(--warm-up-time 0.5 --measurement-time 1.5 --sample-size 30) ;;
    full) rounds=5 crit=(--warm-up-time 1 --measurement-time 4 --sample-size 60) ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown mode '$mode' (usage: ci/bench.sh [short|full])" ;;
esac

need_cmd python3 python3 || die "missing tool: python3 (draws the table and chart)"
command -v cargo >/dev/null 2>&1 || die "missing tool: cargo"

cd "$ROOT"
target="${CARGO_TARGET_DIR:-$ROOT/target}"
results="$target/bench-criterion"
rm -rf "$results" "$target/bench.log"
mkdir -p "$results" "$ROOT/docs"

bench=(cargo bench -p tokenpipe-benches --bench tokenpipe)
log "${bench[*]} --no-run"
"${bench[@]}" --no-run >>"$target/bench.log" 2>&1 \
    || { tail -n 30 "$target/bench.log" >&2; die "building the benches failed (log: $target/bench.log)"; }
for round in $(seq "$rounds"); do
    log "round $round of $rounds: ${bench[*]} -- ${crit[*]}"
    CRITERION_HOME="$results/round-$round" \
        "${bench[@]}" -- --noplot "${crit[@]}" >>"$target/bench.log" 2>&1 \
        || { tail -n 30 "$target/bench.log" >&2; die "cargo bench failed (log: $target/bench.log)"; }
done

# The exact count, for the same report. Its failure (over budget) is shown
# in the report rather than stopping it.
log "ci/instructions.sh"
instr_md="$target/instructions/instructions.md"
instr_status=pass
CARGO_TARGET_DIR="$target/instructions" "$ROOT/ci/instructions.sh" >/dev/null || instr_status=fail
[ -f "$instr_md" ] || die "ci/instructions.sh wrote no table ($instr_md)"

cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)"
python3 - "$results" "$ROOT/docs" "$mode" "$rounds x criterion ${crit[*]}" \
    "$(date -u +%Y-%m-%d)" "$(uname -srm)" "${cpu:-unknown CPU}" "$(nproc)" \
    "$(rustc --version)" "$instr_md" "$instr_status" <<'PY'
"""Turns criterion's results into docs/bench.md, docs/bench.svg and stdout."""
import glob, json, math, os, statistics, sys
from xml.sax.saxutils import escape

(results, docs, mode, setting, date, uname, cpu, ncpu, rustc,
 instr_md, instr_status) = sys.argv[1:]
FLOOR, CRATE, PLAIN = "raw libc", "tokenpipe", "token_write + token_read"
TOLERANCE = 1.05  # the issue's "within 1.05x"; also how much faster is "beyond noise"

def load(round_dir):
    """{(group, row): (median ns, mtime)} for one criterion run."""
    out = {}
    for bench in glob.glob(os.path.join(round_dir, "**", "new", "benchmark.json"), recursive=True):
        meta = json.load(open(bench))
        est = json.load(open(os.path.join(os.path.dirname(bench), "estimates.json")))
        tp = meta.get("throughput") or {}
        out[(meta["group_id"], meta["function_id"])] = dict(
            ns=est["median"]["point_estimate"], mtime=os.path.getmtime(bench),
            bytes=tp.get("Bytes") or tp.get("BytesDecimal"))
    return out

rounds = [load(d) for d in sorted(glob.glob(os.path.join(results, "round-*")))]
if not rounds or not rounds[0]:
    sys.exit("bench.sh: no criterion results under " + results)
# Rows in the order criterion ran them (a row's files are written when it
# finishes), so table and chart follow benches/tokenpipe.rs.
keys = sorted(rounds[0], key=lambda k: rounds[0][k]["mtime"])
groups = {}
for g, name in keys:
    if any((g, name) not in r for r in rounds):
        sys.exit(f"bench.sh: {g}/{name} is missing from a round")
    if (g, FLOOR) not in rounds[0]:
        sys.exit(f"bench.sh: group {g} has no '{FLOOR}' row")
    ns = [r[(g, name)]["ns"] for r in rounds]
    ratios = [r[(g, name)]["ns"] / r[(g, FLOOR)]["ns"] for r in rounds]
    groups.setdefault(g, []).append(dict(
        group=g, name=name, ns=statistics.median(ns), ratio=statistics.median(ratios),
        lo=min(ratios), hi=max(ratios), bytes=rounds[0][(g, name)]["bytes"]))
rows = [r for rs in groups.values() for r in rs]

def per_round(g, a, b):
    """Row a's median divided by row b's, in each round."""
    return [r[(g, a)]["ns"] / r[(g, b)]["ns"] for r in rounds]

def find(g, name):
    return next((r for r in groups.get(g, []) if r["name"] == name), None)

def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"

def median_cell(r):
    s = fmt_time(r["ns"])
    return s + f" ({r['bytes'] / r['ns']:.2f} GB/s)" if r["bytes"] else s

# The issue's targets, checked on these numbers: (True met / False missed /
# None for information, text).
verdicts = []
for g in ("roundtrip", "ping_pong", "make_close"):
    c = find(g, CRATE)
    if c is None:
        continue
    verdicts.append((c["ratio"] <= TOLERANCE,
                     f"{g}: {CRATE} at {c['ratio']:.3f}x raw libc (target <= {TOLERANCE}x)"))
    for p in groups[g]:
        if p["name"] in (FLOOR, CRATE):
            continue
        # Faster beyond noise: faster in every round, and by more than 5%
        # in the median round.
        rel = per_round(g, p["name"], CRATE)
        if max(rel) < 1 and statistics.median(rel) * TOLERANCE < 1:
            verdicts.append((False, f"{g}: {p['name']} is faster than {CRATE} in every round, "
                                    f"{1 / statistics.median(rel):.3f}x"))
        else:
            verdicts.append((True, f"{g}: {p['name']} is not faster than {CRATE} beyond noise "
                                   f"({statistics.median(rel):.3f}x its time)"))
c = find("batch", CRATE)
if c:
    verdicts.append((1 / c["ratio"] >= 0.95,
                     f"batch: {CRATE} throughput {1 / c['ratio']:.3f}x raw libc's (target >= 0.95x)"))
if find("extras", PLAIN):
    for r in groups["extras"]:
        if r["name"] not in (FLOOR, PLAIN):
            rel = statistics.median(per_round("extras", r["name"], PLAIN))
            verdicts.append((None, f"extras: {r['name']} costs {rel:.2f}x {PLAIN}"))

def mark(ok):
    return {True: "met", False: "MISSED", None: "note"}[ok]

# Markdown, for docs/bench.md (and, below, docs/performance.md).
md = [f"<!-- generated by ci/bench.sh {mode}; do not edit by hand -->",
      f"Measured {date} on `{uname}`, {cpu} ({ncpu} CPUs), `{rustc}`, "
      f"by `ci/bench.sh {mode}` ({setting}).",
      "",
      "Median time per operation, and its ratio to raw libc's median in the same "
      "group (lower is better): the median over rounds of the ratio within each "
      "round, with the lowest and highest round beside it. The machine is shared "
      "and noisy: the ratios are the claim, not the times.",
      "",
      "| group | pipe | median | × raw libc | rounds |",
      "| --- | --- | ---: | ---: | ---: |"]
for r in rows:
    name = f"**{r['name']}**" if r["name"] in (CRATE, PLAIN) else r["name"]
    md.append(f"| {r['group']} | {name} | {median_cell(r)} | {r['ratio']:.3f} "
              f"| {r['lo']:.2f}–{r['hi']:.2f} |")
md += ["", "Targets:", ""]
md += [f"- {mark(ok)}: {text}" for ok, text in verdicts]
md += ["", "User-space instructions per one-byte round trip (write + read), counted "
       "exactly by callgrind (`ci/instructions.sh`, "
       + ("within raw libc + 2" if instr_status == "pass" else "**over** the raw libc + 2 budget")
       + "):", "", open(instr_md).read().rstrip(), ""]
with open(os.path.join(docs, "bench.md"), "w") as out:
    out.write("\n".join(md))

# Stdout: the same table, aligned.
wn = max(len(r["name"]) for r in rows)
wm = max(len(median_cell(r)) for r in rows)
print(f"{'group':<11} {'pipe':<{wn}} {'median':>{wm}} {'x raw libc':>10}  rounds")
for r in rows:
    print(f"{r['group']:<11} {r['name']:<{wn}} {median_cell(r):>{wm}} {r['ratio']:>10.3f}"
          f"  {r['lo']:.2f}-{r['hi']:.2f}")
print()
for ok, text in verdicts:
    print(f"{mark(ok):<6} {text}")

# SVG: one horizontal bar per row, its length the ratio to raw libc, with
# the rounds' range as a whisker. The axis stops at AXIS_MAX so a slow extra
# does not squash the rows near 1.0; a longer bar is cut there and marked.
AXIS_MAX = max(1.5, min(2.0, math.ceil(max(r["hi"] for r in rows) * 4) / 4))
LABEL, BAR, GAP, VALUE, ROW, HEAD, TOP = 240, 440, 16, 150, 20, 24, 70
def x(ratio):
    return LABEL + BAR * min(ratio, AXIS_MAX) / AXIS_MAX
axis_y = TOP + sum(HEAD + ROW * len(rs) for rs in groups.values()) + 4
width, height = LABEL + BAR + GAP + VALUE, axis_y + 24
colours = {FLOOR: "#9a9a9a", CRATE: "#f7931a", PLAIN: "#f7931a"}
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
       f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
       f'<rect width="{width}" height="{height}" fill="white"/>',
       '<text x="10" y="20" font-size="15" font-weight="bold">'
       'tokenpipe against raw libc and its peers</text>',
       '<text x="10" y="38" fill="#444">median time ÷ raw libc\'s in the same group '
       '(lower is better); whiskers: lowest and highest round</text>',
       f'<text x="10" y="54" fill="#777" font-size="10">'
       f'{escape(f"{date}, {uname}, {cpu}, {rustc}, ci/bench.sh {mode}")}</text>']
t = 0.0
while t <= AXIS_MAX + 1e-9:  # grid first, so bars are drawn over it
    out.append(f'<line x1="{x(t):.1f}" y1="{TOP}" x2="{x(t):.1f}" y2="{axis_y}" stroke="#e6e6e6"/>')
    out.append(f'<text x="{x(t):.1f}" y="{axis_y + 14}" text-anchor="middle" '
               f'fill="#666" font-size="10">{t:g}×</text>')
    t += 0.25
y = TOP
for g, rs in groups.items():
    out.append(f'<text x="10" y="{y + 16}" font-weight="bold">{escape(g)}</text>')
    y += HEAD
    for r in rs:
        # In extras, the crate's opt-in calls in a lighter orange.
        colour = colours.get(r["name"], "#f9bf76" if g == "extras" else "#4a78b5")
        mid = y + ROW / 2
        out.append(f'<text x="{LABEL - 8}" y="{mid + 4}" text-anchor="end">{escape(r["name"])}</text>')
        out.append(f'<rect x="{LABEL}" y="{y + 3}" width="{x(r["ratio"]) - LABEL:.1f}" '
                   f'height="{ROW - 6}" fill="{colour}"/>')
        if r["hi"] > r["lo"]:
            out.append(f'<line x1="{x(r["lo"]):.1f}" y1="{mid}" x2="{x(r["hi"]):.1f}" y2="{mid}" '
                       f'stroke="#333" stroke-width="1"/>')
        if r["ratio"] > AXIS_MAX:
            out.append(f'<text x="{x(AXIS_MAX) + 2:.1f}" y="{mid + 4}" fill="#333">▶</text>')
        out.append(f'<text x="{LABEL + BAR + GAP}" y="{mid + 4}" fill="#222">'
                   f'{r["ratio"]:.2f}×  <tspan fill="#777">{escape(fmt_time(r["ns"]))}</tspan></text>')
        y += ROW
out.append(f'<line x1="{x(1):.1f}" y1="{TOP}" x2="{x(1):.1f}" y2="{axis_y}" stroke="#333"/>')
out.append(f'<line x1="{x(TOLERANCE):.1f}" y1="{TOP}" x2="{x(TOLERANCE):.1f}" y2="{axis_y}" '
           f'stroke="#c0392b" stroke-dasharray="4 3"/>')
out.append(f'<text x="{x(TOLERANCE) + 3:.1f}" y="{TOP - 3}" fill="#c0392b" font-size="10">'
           f'{TOLERANCE}× target</text>')
out.append("</svg>")
with open(os.path.join(docs, "bench.svg"), "w") as f:
    f.write("\n".join(out) + "\n")
PY

# docs/performance.md shows the headline table and the instruction counts
# between its markers; docs/bench.md stays the whole report.
{
    grep -m 1 '^Measured ' "$ROOT/docs/bench.md"
    echo
    awk '/^\| group \|/ { on = 1 } on && !/^\|/ { exit } on' "$ROOT/docs/bench.md"
    echo
    missed="$(sed -n 's/^- MISSED: //p' "$ROOT/docs/bench.md")"
    if [ -z "$missed" ]; then
        echo "Every target was met in this run (roundtrip, ping_pong and make_close within"
        echo "1.05x of raw libc, no peer faster beyond noise, batch throughput at least 0.95x"
        echo "raw libc's); [\`bench.md\`](bench.md) lists each."
    else
        echo "Missed in this run (the full list is in [\`bench.md\`](bench.md)):"
        echo
        while IFS= read -r line; do echo "- $line"; done <<<"$missed"
    fi
} | replace_section "$ROOT/docs/performance.md" bench-summary || die "docs/performance.md: no bench-summary section"
replace_section "$ROOT/docs/performance.md" instructions <"$instr_md" \
    || die "docs/performance.md: no instructions section"

echo
cat "$instr_md"
echo "bench: wrote docs/bench.md, docs/bench.svg and docs/performance.md's tables ($mode mode, $(elapsed "$start")s)"
