#!/usr/bin/env bash
# Before/after benchmark of two commits, back to back on this machine.
#
#   benches/before_after.sh OLD_REV [FILTER ...]
#
# Builds OLD_REV in a git worktree with this checkout's benchmark harness
# (src/bench.rs and benches/kernels.rs copied over it, so both sides run the same
# cases; the harness uses only the library's public API), then runs each FILTER
# (a substring of the case names; default: every case) on the old build and
# then on this one, alternating, and prints a Markdown table of the medians with
# the after/before ratio. Machines differ: only compare numbers from one run.
set -euo pipefail
old=${1:?usage: benches/before_after.sh OLD_REV [FILTER ...]}
shift
filters=("$@")
[ ${#filters[@]} -eq 0 ] && filters=("")
here=$(git rev-parse --show-toplevel)
work=${BEFORE_AFTER_DIR:-$here/target/before-after}
runs=${CONDENSER_BENCH_RUNS:-5}
if [ ! -d "$work/tree" ]; then
    git -C "$here" worktree add --detach "$work/tree" "$old" >&2
else
    git -C "$work/tree" checkout --quiet --detach "$old"
fi
cp "$here/src/bench.rs" "$work/tree/src/bench.rs"
cp "$here/benches/kernels.rs" "$work/tree/benches/kernels.rs"
(cd "$work/tree" && cargo bench --bench kernels --no-run >&2)
(cd "$here" && cargo bench --bench kernels --no-run >&2)
out="$work/results.jsonl"
: > "$out"
for f in "${filters[@]}"; do
    for side in before after; do
        dir=$here
        [ "$side" = before ] && dir=$work/tree
        (cd "$dir" && CONDENSER_BENCH_JSON=1 CONDENSER_BENCH_RUNS=$runs CONDENSER_BENCH_FILTER="$f" \
            cargo bench --bench kernels 2>/dev/null) | grep '^{' | sed "s/^{/{\"side\":\"$side\",/" >> "$out"
    done
done
python3 - "$out" "$old" "$(git -C "$here" rev-parse --short HEAD)" <<'PY'
import json, sys
rows, order = {}, []
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["name"] not in rows:
        rows[r["name"]] = {}
        order.append(r["name"])
    rows[r["name"]][r["side"]] = r
    adapter = r["adapter"]
print(f"adapter: {adapter}; before {sys.argv[2]}, after {sys.argv[3]}\n")
print("| case | shape | before | after | after / before |")
print("|---|---|---|---|---|")
for name in order:
    sides = rows[name]
    def rate(r):
        for key, unit in (("gflops", "GFLOP/s"), ("gbps", "GB/s"), ("images_per_s", "images/s")):
            if key in r:
                return r[key], unit
    b, a = sides.get("before"), sides.get("after")
    if not (b and a):
        continue
    (rb, unit), (ra, _) = rate(b), rate(a)
    print(f"| {name} | {a['shape']} | {rb:.2f} {unit} | {ra:.2f} {unit} | {ra / rb:.2f}x |")
PY
