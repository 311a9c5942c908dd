#!/usr/bin/env bash
# The adaptive policy's ablation table (docs/policy.md "Ablation"): on the bundled trace and
# the synthetic ones of bench/gen_traces.py, the T1 hit rate at one capacity (default 5% of
# each trace's unique blocks) of LRU, the default policy, and the default with each
# ingredient turned off in turn (--policy=adaptive:-NAME, AdaptivePolicy::Ingredients), with
# the share of the LRU-to-optimum gap each closes (optimum: ../shared/tools/trace_oracle.py,
# same run). Usage: bench/policy_ablation.sh [BUILD_DIR] [CAPACITY_FRACTION] [REQUESTS]
# Exits 77 (skipped) when the shared trace or its oracle is not beside the checkout.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
fraction="${2:-0.05}"
requests="${3:-4000}"
bench="$build/bench/kvtier-bench"
oracle="$root/../shared/tools/trace_oracle.py"
trace="$root/../shared/data/traces/mooncake_synthetic_trace.jsonl"
if [[ ! -f "$oracle" || ! -f "$trace" ]]; then
  echo "skipped: $oracle or $trace is missing" >&2
  exit 77
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 "$root/bench/gen_traces.py" all "$work/traces" --requests "$requests"
traces=("$trace")
for k in chat rag agent mixed; do traces+=("$work/traces/$k.jsonl"); done
variants=(lru adaptive adaptive:-count adaptive:-tail adaptive:-depth adaptive:-blocks_to_end adaptive:-output
          adaptive:-origin
          adaptive:-ghost_count adaptive:-bonus adaptive:-tune adaptive:-leaves_only)
for t in "${traces[@]}"; do
  name="$(basename "$t" .jsonl)"
  python3 "$oracle" "$t" --capacity-fraction "$fraction" >"$work/$name.oracle"
  for v in "${variants[@]}"; do
    "$bench" replay --trace="$t" --capacity_fraction="$fraction" --policy="$v" |
      sed "s/^{/{\"variant\": \"$v\", /" >>"$work/$name.t1"
  done
done
python3 - "$work" "$fraction" "${variants[@]}" -- "${traces[@]}" <<'PY'
import json, os, sys
w, fraction = sys.argv[1], float(sys.argv[2])
split = sys.argv.index("--")
variants, traces = sys.argv[3:split], [os.path.basename(t)[:-6] for t in sys.argv[split + 1:]]
rows = {}
for n in traces:
    o = json.loads(open(f"{w}/{n}.oracle").readline())
    runs = {r["variant"]: r["hit_rate"] for r in map(json.loads, open(f"{w}/{n}.t1"))}
    lru, opt = runs["lru"], o["belady"]
    for v in variants:
        h = runs[v]
        gap = (h - lru) / (opt - lru) if opt > lru else float("nan")
        rows.setdefault(v, []).append(f"{h:.4f} ({gap:+.0%})")
    rows.setdefault("optimum", []).append(f"{opt:.4f}")
print(f"T1 hit rate at {fraction:.0%} of unique blocks (share of the LRU-to-optimum gap closed):\n")
print("| policy | " + " | ".join(traces) + " |")
print("| --- |" + " --- |" * len(traces))
names = {"lru": "LRU", "adaptive": "default (adaptive)"}
for v in variants + ["optimum"]:
    label = names.get(v, v.replace("adaptive:-", "default without "))
    print(f"| {label} | " + " | ".join(rows[v]) + " |")
PY
