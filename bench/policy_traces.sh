#!/usr/bin/env bash
# The policy on several KV workloads: generates the synthetic traces of bench/gen_traces.py
# (chat, rag, agent, mixed) and, with the bundled trace, prints for each the T1 hit rates of
# LRU and the default policy at 2/5/10/20% of its unique blocks beside the offline optimum
# and an infinite cache (../shared/tools/trace_oracle.py), the share of the LRU-to-optimum
# gap the default closes, and T1 5% + T2 40% under each T2 admission and promotion setting,
# with and without the output lengths reported, with the SSD block writes and T2 reads
# (hits served from the SSD) per request. Usage: bench/policy_traces.sh [BUILD_DIR] [REQUESTS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
requests="${2:-4000}"
bench="$build/bench/kvtier-bench"
oracle="$root/../shared/tools/trace_oracle.py"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 "$root/bench/gen_traces.py" all "$work/traces" --requests "$requests"
traces=("$root/../shared/data/traces/mooncake_synthetic_trace.jsonl")
for k in chat rag agent mixed; do traces+=("$work/traces/$k.jsonl"); done
# --t2_sync: the disk I/O on the calling thread, so that the hit rates do not depend on how
# the I/O threads are scheduled (a demotion still queued is served from memory).
# The replay reports each request's output_length as PutHeader.output_tokens unless
# --output_tokens=false (a client that does not know it).
tiers=("predict (default)|"
       "predict, output lengths not reported|--output_tokens=false"
       "predict, promote on every read|--t2_promote_after_reads=1"
       "score, promote on every read, not reported (issue 17's start)|--t2_admission=score --t2_promote_after_reads=1 --output_tokens=false"
       "predict, never promote|--t2_promote_after_reads=0"
       "predict 0.08|--t2_admit_min_return=0.08"
       "predict + copies, promote on every read|--t2_keep_promoted_copy=true --t2_promote_after_reads=1")
for t in "${traces[@]}"; do
  name="$(basename "$t" .jsonl)"
  python3 "$oracle" "$t" --capacity-fraction 0.02 0.05 0.1 0.2 0.45 >"$work/$name.oracle"
  for f in 0.02 0.05 0.1 0.2; do
    for p in lru adaptive; do
      "$bench" replay --trace="$t" --capacity_fraction="$f" --policy="$p" >>"$work/$name.t1"
    done
  done
  for row in "${tiers[@]}"; do
    d="$(mktemp -d -p "$work")"
    # shellcheck disable=SC2086
    "$bench" replay --trace="$t" --capacity_fraction=0.05 --ssd_capacity_fraction=0.40 \
      --ssd_dir="$d" --t2_sync ${row#*|} | sed "s/^{/{\"setup\": \"${row%%|*}\", /" >>"$work/$name.t2"
    rm -rf "$d"
  done
done
python3 - "$work" "${traces[@]}" <<'PY'
import json, os, sys
w = sys.argv[1]
print("| trace | capacity | LRU | default | default / LRU | optimum | infinite | gap closed |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for t in sys.argv[2:]:
    n = os.path.basename(t)[:-6]
    orc = {o["capacity_blocks"]: o for o in map(json.loads, open(f"{w}/{n}.oracle"))}
    t1 = [json.loads(l) for l in open(f"{w}/{n}.t1")]
    for cap in sorted({r["capacity_blocks"] for r in t1}):
        l = next(r for r in t1 if r["capacity_blocks"] == cap and r["policy"] == "lru")["hit_rate"]
        a = next(r for r in t1 if r["capacity_blocks"] == cap and r["policy"] == "adaptive")["hit_rate"]
        o = orc[cap]
        gap = (a - l) / (o["belady"] - l) if o["belady"] > l else float("nan")
        print(f"| {n} | {o['capacity_fraction']:.0%} | {l:.4f} | {a:.4f} | {a / l:.3f} | "
              f"{o['belady']:.4f} | {o['infinite']:.4f} | {gap:.0%} |")
print("\nT1 5% + T2 40% (default adaptive T1, SLRU T2), by T2 admission and promotion:\n")
print("| trace | setup | hit rate | / infinite | SSD block writes / request | T2 reads / request | replay req/s |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for t in sys.argv[2:]:
    n = os.path.basename(t)[:-6]
    inf = json.loads(open(f"{w}/{n}.oracle").readline())["infinite"]
    flat = [o for o in map(json.loads, open(f"{w}/{n}.oracle")) if round(o["capacity_fraction"], 2) == 0.45][0]
    for r in map(json.loads, open(f"{w}/{n}.t2")):
        print(f"| {n} | {r['setup']} | {r['hit_rate']:.4f} | {r['hit_rate'] / inf:.3f} | "
              f"{r['ssd_blocks_written_per_request']:.2f} | {r['t2_hit_rate'] * r['blocks'] / r['requests']:.2f} | "
              f"{r['requests_per_second']:.0f} |")
    print(f"| {n} | flat LRU 45% (oracle) | {flat['lru']:.4f} | {flat['lru'] / inf:.3f} | | | |")
PY
