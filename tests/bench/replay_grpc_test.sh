#!/usr/bin/env bash
# grpc mode drives a real kvtier-store through the client and must measure exactly what
# engine mode measures in process (same policy, same capacity: the policy measured is the
# policy that serves). Also checks that a capacity mismatch is refused with a clear error.
# Usage: replay_grpc_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/../../scripts/store_lib.sh"
build="$(cd "${1:?usage: replay_grpc_test.sh BUILD_DIR}" && pwd)"
bench="$build/bench/kvtier-bench"
store="$build/services/kvtier-store"
work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$work/store.log" ] && tail -20 "$work/store.log" >&2; exit 1; }

# A small trace with shared prefixes, sessions that grow, and one-off prompts.
python3 - "$work/trace.jsonl" <<'PY'
import json, random, sys
rng = random.Random(5)
nxt = 0
def new(n):
    global nxt
    ids = list(range(nxt, nxt + n)); nxt += n; return ids
systems = [new(3) for _ in range(3)]
sessions = []
with open(sys.argv[1], "w") as f:
    for i in range(600):
        k = rng.random()
        if k < 0.5 and sessions:
            s = rng.choice(sessions); s += new(rng.randint(1, 3)); ids = list(s)
        elif k < 0.8:
            s = rng.choice(systems) + new(rng.randint(2, 6)); sessions.append(s); ids = list(s)
        else:
            ids = new(rng.randint(4, 20))
        f.write(json.dumps({"timestamp": i * 10, "input_length": len(ids) * 512 - 7,
                            "output_length": 5, "hash_ids": ids}) + "\n")
PY

capacity=300
for policy in lru adaptive; do
  start_store "$store" "$work/store.log" --metrics_listen= --t1_lock=none --t1_slot_bytes=4096 \
    --t1_bytes=$((capacity * 4096)) --eviction_policy=$policy || fail "store did not start"
  pid=$store_pid
  port=$store_port

  if "$bench" replay --trace="$work/trace.jsonl" --mode=grpc --target=127.0.0.1:$port \
      --capacity_blocks=$((capacity + 1)) 2>"$work/err.txt"; then
    fail "a capacity mismatch was accepted"
  fi
  grep -q "holds $capacity T1 blocks" "$work/err.txt" || fail "unclear mismatch error: $(cat "$work/err.txt")"

  "$bench" replay --trace="$work/trace.jsonl" --mode=grpc --target=127.0.0.1:$port \
    >"$work/grpc.json" || fail "grpc replay ($policy)"
  # The issue's spelling: hyphens, space-separated values.
  "$bench" replay --trace "$work/trace.jsonl" --capacity-blocks $capacity --policy $policy \
    >"$work/engine.json" || fail "engine replay ($policy)"
  kill -TERM "$pid"; wait "$pid" || true; pid=""
  cat "$work/grpc.json" "$work/engine.json"
  python3 - "$work/grpc.json" "$work/engine.json" "$policy" <<'PY' || fail "grpc and engine differ"
import json, sys
g, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert g["policy"] == e["policy"] == sys.argv[3], (g["policy"], e["policy"])
for k in ("requests", "blocks", "capacity_blocks", "hit_rate", "t1_hit_rate"):
    assert g[k] == e[k], (k, g[k], e[k])
assert g["fetch_failures"] == 0
assert g["hit_rate"] > 0.1, g["hit_rate"]
PY
done
echo OK
