#!/usr/bin/env bash
# Prints the replay table of docs/benchmarks.md: hit rates of LRU, the default policy, the
# offline optimum and an infinite cache, T1-only and T1+T2, and replay throughput in engine
# and grpc mode. Usage: bench/replay_matrix.sh [TRACE] [BUILD_DIR]
set -euo pipefail
source "$(dirname "$0")/../scripts/store_lib.sh"
root="$(cd "$(dirname "$0")/.." && pwd)"
trace="${1:-$root/../shared/data/traces/mooncake_synthetic_trace.jsonl}"
build="$(cd "${2:-$root/build}" && pwd)"
oracle="$root/../shared/tools/trace_oracle.py"
bench="$build/bench/kvtier-bench"
work="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

fractions=(0.02 0.05 0.1 0.2)
python3 "$oracle" "$trace" --capacity-fraction "${fractions[@]}" 0.45 >"$work/oracle.jsonl"
for f in "${fractions[@]}"; do
  for p in lru adaptive; do
    "$bench" replay --trace="$trace" --capacity_fraction="$f" --policy="$p" >>"$work/t1.jsonl"
  done
done
# T1 5% + T2 40%: all-LRU tiers that admit everything, and the defaults.
"$bench" replay --trace="$trace" --capacity_fraction=0.05 --ssd_capacity_fraction=0.40 \
  --policy=lru --ssd_policy=lru --t2_admit_min_score=0 --ssd_dir="$work/t2a" >"$work/t2_lru.json"
"$bench" replay --trace="$trace" --capacity_fraction=0.05 --ssd_capacity_fraction=0.40 \
  --ssd_dir="$work/t2b" >"$work/t2_default.json"

# grpc mode: the same replay through a real kvtier-store on loopback.
unique=$(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['unique_blocks'])" "$work/oracle.jsonl")
cap=$(python3 -c "print(int($unique * 0.05))")
start_store "$build/services/kvtier-store" "$work/store.log" --metrics_listen= --t1_lock=none \
  --t1_min_slot_bytes=4096 --t1_bytes=$((cap * 4096))
pid=$store_pid
port=$store_port
"$bench" replay --trace="$trace" --mode=grpc --target="127.0.0.1:$port" >"$work/grpc.json"
kill -TERM "$pid"; wait "$pid" || true; pid=""

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
oracle = {o["capacity_blocks"]: o for o in map(json.loads, open(f"{w}/oracle.jsonl"))}
t1 = [json.loads(l) for l in open(f"{w}/t1.jsonl")]
name = t1[0]["trace"]
print(f"T1 only ({name}, {t1[0]['requests']} requests, {t1[0]['blocks']} blocks, "
      f"{t1[0]['unique_blocks']} unique):\n")
print("| capacity | blocks | LRU | default (adaptive) | default / LRU | offline optimum | infinite | replay req/s (LRU, adaptive) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for cap in sorted({r["capacity_blocks"] for r in t1}):
    l = next(r for r in t1 if r["capacity_blocks"] == cap and r["policy"] == "lru")
    a = next(r for r in t1 if r["capacity_blocks"] == cap and r["policy"] == "adaptive")
    o = oracle[cap]
    print(f"| {o['capacity_fraction']:.0%} | {cap} | {l['hit_rate']:.4f} | {a['hit_rate']:.4f} | "
          f"{a['hit_rate'] / l['hit_rate']:.3f} | {o['belady']:.4f} | {o['infinite']:.4f} | "
          f"{l['requests_per_second']:.0f}, {a['requests_per_second']:.0f} |")
flat = [o for o in oracle.values() if round(o["capacity_fraction"], 2) == 0.45][0]
print("\nT1 5% + T2 40% against one flat cache of 45%:\n")
print("| setup | hit rate | T1 hits | T2 hits | SSD block writes / request | rejected by admission | replay req/s |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for label, f in (("LRU tiers, admit all", "t2_lru"), ("defaults (adaptive T1, LRU T2, filter 0.05)", "t2_default")):
    r = json.load(open(f"{w}/{f}.json"))
    print(f"| {label} | {r['hit_rate']:.4f} | {r['t1_hit_rate']:.4f} | {r['t2_hit_rate']:.4f} | "
          f"{r['ssd_blocks_written_per_request']:.2f} | {r['demotion_rejected_blocks']} | {r['requests_per_second']:.0f} |")
print(f"| flat LRU 45% (oracle) | {flat['lru']:.4f} | | | | | |")
print(f"| flat offline optimum 45% (oracle) | {flat['belady']:.4f} | | | | | |")
g = json.load(open(f"{w}/grpc.json"))
e = next(r for r in t1 if r["capacity_blocks"] == g["capacity_blocks"] and r["policy"] == g["policy"])
print(f"\ngrpc mode (kvtier-store on loopback, T1 {g['capacity_blocks']} blocks, {g['policy']}): "
      f"hit rate {g['hit_rate']:.4f} (engine mode: {e['hit_rate']:.4f}), "
      f"{g['requests_per_second']:.0f} requests/s (engine mode: {e['requests_per_second']:.0f})")
PY
