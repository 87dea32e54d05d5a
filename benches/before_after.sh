#!/usr/bin/env bash
# Before/after benchmark of two commits, back to back on this machine.
#
#   benches/before_after.sh OLD_REV [FILTER ...]
#
# Builds OLD_REV in a git worktree with this checkout's benchmark harness
# (src/bench.rs and benches/kernels.rs copied over it, so both sides run the same
# cases; the harness uses only the library's public API), then runs each FILTER
# (a substring of the case names; default: every case) on the old build and
# then on this one, alternating, REPEAT times (default 3), and prints a Markdown
# table: per case the median over the repeats of each side's median of
# CONDENSER_BENCH_RUNS runs, the range over the repeats, and the after/before
# ratio of the medians. Shared VMs swing by 2x from minute to minute: read the
# ranges. Machines differ: only compare numbers from one run of this script.
set -euo pipefail
old=${1:?usage: benches/before_after.sh OLD_REV [FILTER ...]}
shift
filters=("$@")
[ ${#filters[@]} -eq 0 ] && filters=("")
here=$(git rev-parse --show-toplevel)
work=${BEFORE_AFTER_DIR:-$here/target/before-after}
runs=${CONDENSER_BENCH_RUNS:-5}
repeat=${REPEAT:-3}
if [ ! -d "$work/tree" ]; then
    git -C "$here" worktree add --detach "$work/tree" "$old" >&2
else
    # Drop the harness an earlier run copied in, then move to OLD_REV.
    git -C "$work/tree" reset --quiet --hard
    git -C "$work/tree" checkout --quiet --detach "$old"
fi
cp "$here/src/bench.rs" "$work/tree/src/bench.rs"
cp "$here/benches/kernels.rs" "$work/tree/benches/kernels.rs"
# Cargo builds the binary with a bench: an older main.rs may build BenchOptions
# without the fields added since, so let it take their defaults.
grep -q "profile" "$work/tree/src/main.rs" ||
    perl -0pi -e 's/(let opts = BenchOptions \{[^}]*?quick,)/$1\n                ..Default::default()/' "$work/tree/src/main.rs"
(cd "$work/tree" && cargo bench --bench kernels --no-run >&2)
(cd "$here" && cargo bench --bench kernels --no-run >&2)
out="$work/results.jsonl"
: > "$out"
for _ in $(seq "$repeat"); do
    for f in "${filters[@]}"; do
        for side in before after; do
            dir=$here
            [ "$side" = before ] && dir=$work/tree
            (cd "$dir" && CONDENSER_BENCH_JSON=1 CONDENSER_BENCH_RUNS=$runs CONDENSER_BENCH_FILTER="$f" \
                cargo bench --bench kernels 2>/dev/null) | grep '^{' | sed "s/^{/{\"side\":\"$side\",/" >> "$out"
        done
    done
done
python3 - "$out" "$old" "$(git -C "$here" rev-parse --short HEAD)" "$repeat" <<'PY'
import json, statistics, sys
UNITS = (("gflops", "GFLOP/s"), ("gbps", "GB/s"), ("images_per_s", "images/s"))
rates, shapes, order, adapter = {}, {}, [], ""
for line in open(sys.argv[1]):
    r = json.loads(line)
    key, unit = next((k, u) for k, u in UNITS if k in r)
    if r["name"] not in shapes:
        order.append(r["name"])
    shapes[r["name"]] = (r["shape"], unit)
    rates.setdefault((r["name"], r["side"]), []).append(r[key])
    adapter = r["adapter"]
print(f"adapter: {adapter}; before {sys.argv[2]}, after {sys.argv[3]}; {sys.argv[4]} alternations\n")
print("| case | shape | before | after | after / before |")
print("|---|---|---|---|---|")
def cell(v, unit):
    return f"{statistics.median(v):.2f} {unit} ({min(v):.2f}-{max(v):.2f})"
for name in order:
    b, a = rates.get((name, "before")), rates.get((name, "after"))
    if not (b and a):
        continue
    shape, unit = shapes[name]
    ratio = statistics.median(a) / statistics.median(b)
    print(f"| {name} | {shape} | {cell(b, unit)} | {cell(a, unit)} | {ratio:.2f}x |")
PY
