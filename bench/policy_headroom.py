#!/usr/bin/env python3
"""How much of the LRU-to-optimum gap an online policy can still hope to close, per trace
(docs/policy.md "Headroom"). For each trace, at one capacity (a fraction of its unique
blocks), it prints:

  lru, optimum, infinite   trace_oracle.py (../shared/tools), the references of the issue
  default                  kvtier-bench replay with the default policy
  default_warm             the default on a second copy of the trace (same structure, new
                           block ids) replayed right after the first: its class estimates are
                           learned on an identical workload before it starts. If this is no
                           better than `default`, learning speed is not what limits the policy;
                           the information in its features is.
  count_static             a clairvoyant reference (not online): keeps the blocks with the
                           most accesses over the whole trace, and bypasses blocks with fewer
                           than the least in the tier. Knows each block's total use count,
                           not when the uses come.
  count_and_last_use       the same, and it also knows which access of a block is its last
                           (a block at its last use leaves first).
  lru_told_returns         LRU told which accesses of a block are followed by another one:
                           a block at its last use is dropped, one never used again is not
                           admitted. The most a perfect "will it come back" classifier buys
                           a recency order; it does not know when a block comes back.
  new_tree_return_share    of the requests whose first block is new (a new prompt tree), the
                           share whose blocks are ever requested again; everything such a
                           request stores is decided by this, and nothing in the request
                           says which it is.
  first_block_return_share of all unique blocks, the share requested more than once.

and the SSD tier model (T1 at the given fraction, T2 at --t2-fraction, LRU over T1, a
segmented LRU over T2 as the store's default, T2 hits served in place so a block is written
once while it stays in T2; a Python model of the store's tiering, not the store): the hit
rate and SSD block writes per request when T2 takes every T1 victim but prompt tails, and
when it takes only the victims that will be requested again (clairvoyant admission): the
gap between the two is what admission can win.

Usage: policy_headroom.py --bench BUILD/bench/kvtier-bench [--fraction 0.05]
                          [--t2-fraction 0.40] TRACE.jsonl...
Output: one JSON object per trace on stdout, then a markdown table.
"""
import argparse
import collections
import heapq
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections import OrderedDict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(ROOT, "..", "shared", "tools", "trace_oracle.py")


def load_oracle():
    spec = importlib.util.spec_from_file_location("trace_oracle", ORACLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replay_hit_rate(bench, trace, capacity):
    out = subprocess.run([bench, "replay", f"--trace={trace}", f"--capacity_blocks={capacity}"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[0])["hit_rate"]


def doubled_hit_rate(bench, records, capacity):
    """The default's hit rate over two back-to-back copies of the trace, the second with new
    block ids (the same structure): 2 x this - the first copy's rate is the second's."""
    offset = max(x for r in records for x in r["hash_ids"]) + 1
    shift = records[-1]["timestamp"] + 1000
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        for r in records:
            f.write(json.dumps(dict(r, hash_ids=[x + offset for x in r["hash_ids"]],
                                    timestamp=r["timestamp"] + shift)) + "\n")
        doubled = f.name
    try:
        both = replay_hit_rate(bench, doubled, capacity)
    finally:
        os.unlink(doubled)
    return both


def clairvoyant_count(oracle, reqs, cap, last_use_known):
    """Keeps the blocks with the highest total use count (a min-heap on it); a newcomer that
    ranks below the tier's least is not admitted."""
    total = collections.Counter(x for ids in reqs for x in ids)
    seen = collections.Counter()
    cache, heap, hits, requested = {}, [], 0, 0
    for ids in reqs:
        hits += oracle.prefix_len(ids, cache)
        requested += len(ids)
        for x in ids:
            seen[x] += 1
            value = total[x]
            if last_use_known and seen[x] == total[x]:
                value = -1
            if x in cache:
                cache[x] = value
                heapq.heappush(heap, (value, x))
                continue
            if len(cache) >= cap:
                while True:
                    least, y = heapq.heappop(heap)
                    if cache.get(y) == least:
                        break
                if value < least:
                    heapq.heappush(heap, (least, y))
                    continue
                del cache[y]
            cache[x] = value
            heapq.heappush(heap, (value, x))
    return hits / requested


def lru_told_returns(oracle, reqs, cap):
    """LRU over the accesses that have a next use; a block leaves at its last use."""
    left = collections.Counter(x for ids in reqs for x in ids)
    cache, hits, requested = collections.OrderedDict(), 0, 0
    for ids in reqs:
        hits += oracle.prefix_len(ids, cache)
        requested += len(ids)
        for x in ids:
            left[x] -= 1
            if left[x] == 0:
                cache.pop(x, None)
                continue
            cache[x] = True
            cache.move_to_end(x)
            if len(cache) > cap:
                cache.popitem(last=False)
    return hits / requested


def structure(reqs):
    total = collections.Counter(x for ids in reqs for x in ids)
    seen, new_trees, returning_trees = set(), 0, 0
    for ids in reqs:
        if ids[0] not in seen:
            new_trees += 1
            returning_trees += total[ids[0]] > 1
        seen.update(ids)
    return {"new_tree_return_share": round(returning_trees / max(new_trees, 1), 4),
            "first_block_return_share": round(sum(c > 1 for c in total.values()) / len(total), 4)}


def tiered_model(reqs, c1, c2, clairvoyant, probation_share=0.7):
    """LRU T1 over an exclusive segmented-LRU T2 that serves its hits in place (the store's
    default promotes a block only on its 8th read from T2; the model never does)."""
    total = collections.Counter(x for ids in reqs for x in ids)
    seen = collections.Counter()
    t1, probation, protected = OrderedDict(), OrderedDict(), OrderedDict()
    tail_of = {}
    hits = requested = writes = 0

    def rebalance():
        while len(protected) > (1 - probation_share) * (len(protected) + len(probation)):
            y, _ = protected.popitem(last=False)
            probation[y] = True

    def demote(x):
        nonlocal writes
        if tail_of.get(x):
            return
        if clairvoyant and seen[x] >= total[x]:
            return
        writes += 1
        (protected if seen[x] >= 2 else probation)[x] = True
        rebalance()
        while len(probation) + len(protected) > c2:
            (probation if probation else protected).popitem(last=False)

    for ids in reqs:
        k = 0
        while k < len(ids) and (ids[k] in t1 or ids[k] in probation or ids[k] in protected):
            k += 1
        hits += k
        requested += len(ids)
        for j, x in enumerate(ids):
            seen[x] += 1
            tail_of.setdefault(x, j == len(ids) - 1)
            if x in t1:
                t1.move_to_end(x)
                continue
            if x in probation or x in protected:  # a T2 hit, served in place
                probation.pop(x, None)
                protected[x] = True
                protected.move_to_end(x)
                rebalance()
                continue
            t1[x] = True
            while len(t1) > c1:
                y, _ = t1.popitem(last=False)
                demote(y)
    return round(hits / requested, 4), round(writes / len(reqs), 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("traces", nargs="+")
    ap.add_argument("--bench", required=True)
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--t2-fraction", type=float, default=0.40)
    args = ap.parse_args()
    if not os.path.isfile(ORACLE):
        print(f"skipped: {ORACLE} is missing", file=sys.stderr)
        return 77
    oracle = load_oracle()
    rows = []
    for path in args.traces:
        records = [json.loads(line) for line in open(path) if line.strip()]
        reqs = [r["hash_ids"] for r in records]
        unique = len({x for ids in reqs for x in ids})
        cap = max(1, int(unique * args.fraction))
        default = replay_hit_rate(args.bench, path, cap)
        both = doubled_hit_rate(args.bench, records, cap)
        row = {"trace": os.path.basename(path)[:-6], "capacity_blocks": cap,
               "lru": round(oracle.lru(reqs, cap), 4),
               "optimum": round(oracle.belady(reqs, cap), 4),
               "infinite": round(oracle.infinite(reqs), 4),
               "default": round(default, 4),
               # Both copies request the same number of blocks.
               "default_warm": round(2 * both - default, 4),
               "count_static": round(clairvoyant_count(oracle, reqs, cap, False), 4),
               "count_and_last_use": round(clairvoyant_count(oracle, reqs, cap, True), 4),
               "lru_told_returns": round(lru_told_returns(oracle, reqs, cap), 4)}
        row.update(structure(reqs))
        c2 = max(1, int(unique * args.t2_fraction))
        row["tiered_model_all_but_tails"] = tiered_model(reqs, cap, c2, False)
        row["tiered_model_clairvoyant_admission"] = tiered_model(reqs, cap, c2, True)
        print(json.dumps(row), flush=True)
        rows.append(row)

    def gap(r, key):
        return (r[key] - r["lru"]) / (r["optimum"] - r["lru"]) if r["optimum"] > r["lru"] else 0

    print(f"\nT1 at {args.fraction:.0%} of unique blocks (share of the LRU-to-optimum gap):\n")
    print("| | " + " | ".join(r["trace"] for r in rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    for key in ["lru", "default", "default_warm", "count_static", "count_and_last_use",
                "lru_told_returns", "optimum"]:
        cells = [f"{r[key]:.4f}" + ("" if key in ("lru", "optimum") else f" ({gap(r, key):+.0%})")
                 for r in rows]
        print(f"| {key} | " + " | ".join(cells) + " |")
    for key in ["new_tree_return_share", "first_block_return_share"]:
        print(f"| {key} | " + " | ".join(f"{r[key]:.2f}" for r in rows) + " |")
    print(f"\nTiered model, T1 {args.fraction:.0%} + T2 {args.t2_fraction:.0%} "
          "(hit rate @ SSD block writes per request; infinite beside):\n")
    print("| | " + " | ".join(r["trace"] for r in rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    for key in ["tiered_model_all_but_tails", "tiered_model_clairvoyant_admission"]:
        print(f"| {key} | " + " | ".join(f"{r[key][0]:.4f} @ {r[key][1]:.1f}" for r in rows) + " |")
    print("| infinite | " + " | ".join(f"{r['infinite']:.4f}" for r in rows) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
