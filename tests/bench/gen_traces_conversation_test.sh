#!/usr/bin/env bash
# bench/gen_traces.py's conversation kind has the structure its docstring claims, and the
# default policy beats LRU on it at 5% of its unique blocks (docs/policy.md, "Workloads").
# Usage: gen_traces_conversation_test.sh BUILD_DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bench="$1/bench/kvtier-bench"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 "$root/bench/gen_traces.py" conversation "$work/c.jsonl" --requests 3000 --seed 4
python3 - "$work/c.jsonl" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert len(reqs) == 3000, len(reqs)
seen, prompts, follow_ups, added = set(), {}, 0, []
for r in reqs:
    ids = r["hash_ids"]
    assert ids[0] == reqs[0]["hash_ids"][0], f"a prompt does not start with the shared block: {ids[:3]}"
    assert 0 < r["input_length"] <= 512 * len(ids), r
    if len(ids) > 1 and ids[1] in seen:
        # A follow-up: the whole previous prompt of its session, last block included,
        # then a few new blocks.
        prev = max((p for p in range(2, len(ids)) if tuple(ids[:p]) in prompts), default=None)
        assert prev is not None, f"follow-up without its whole previous prompt: {ids[:4]}"
        assert all(x not in seen for x in ids[prev:]), "a follow-up's new blocks were seen before"
        added.append(len(ids) - prev)
        follow_ups += 1
    else:
        assert all(x not in seen for x in ids[1:]), "a first prompt shares more than the first block"
    prompts[tuple(ids)] = True
    seen.update(ids)
added.sort()
assert added[0] >= 1 and added[len(added) // 2] <= 2, f"new blocks per turn: median {added[len(added) // 2]}"
share = follow_ups / len(reqs)
assert 0.25 <= share <= 0.5, f"follow-up share {share:.2f}"
print(f"structure ok: {follow_ups} follow-ups of {len(reqs)} requests")
PY
rate() { "$bench" replay --trace="$work/c.jsonl" --capacity_fraction=0.05 --policy="$1" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["hit_rate"])'; }
lru="$(rate lru)"
adaptive="$(rate adaptive)"
echo "T1 5%: lru $lru adaptive $adaptive"
python3 -c "import sys; a, l = $adaptive, $lru; sys.exit(0 if a >= 1.2 * l else 1)" ||
  { echo "the default is below 1.2x LRU on the conversation trace at 5%" >&2; exit 1; }
