#!/usr/bin/env bash
# What SSD writes cost in hit rate: T1 5% + T2 40% (--t2_sync) on each trace given, under
# issue 17's starting setup (score admission, every T2 read promoting, output lengths not
# reported), the default, and the predict admission at a range of thresholds up to 1.0,
# which a Laplace estimate never reaches: there no block is written before it has shown
# reuse (a frequency of two). Prints per trace the hit rate and SSD block writes per
# request of each setup beside the start's, so the trade-off curve shows how much hit rate
# a given cut in writes costs.
# Usage: bench/t2_admission_sweep.sh BUILD_DIR TRACE...
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR TRACE... (BUILD_DIR holds bench/kvtier-bench)" >&2
  exit 2
fi
build="$(cd "$1" && pwd)"
shift
bench="$build/bench/kvtier-bench"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

setups=("start|--t2_admission=score --t2_promote_after_reads=1 --output_tokens=false"
        "default (predict 0.04)|")
for x in 0.10 0.20 0.35 0.50 0.70 1.0; do setups+=("predict $x|--t2_admit_min_return=$x"); done
for t in "$@"; do
  name="$(basename "$t" .jsonl)"
  for row in "${setups[@]}"; do
    d="$(mktemp -d -p "$work")"
    # shellcheck disable=SC2086
    "$bench" replay --trace="$t" --capacity_fraction=0.05 --ssd_capacity_fraction=0.40 \
      --ssd_dir="$d" --t2_sync ${row#*|} | sed "s/^{/{\"name\": \"$name\", \"setup\": \"${row%%|*}\", /" \
      >>"$work/rows"
    rm -rf "$d"
  done
done
python3 - "$work/rows" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| trace | setup | hit rate | - start (points) | SSD block writes / request | / start |")
print("| --- | --- | --- | --- | --- | --- |")
for r in rows:
    s = next(x for x in rows if x["name"] == r["name"] and x["setup"] == "start")
    w, ws = r["ssd_blocks_written_per_request"], s["ssd_blocks_written_per_request"]
    print(f"| {r['name']} | {r['setup']} | {r['hit_rate']:.4f} | "
          f"{100 * (r['hit_rate'] - s['hit_rate']):+.2f} | {w:.2f} | {w / ws:.2f}x |")
PY
