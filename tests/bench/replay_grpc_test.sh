#!/usr/bin/env bash
# grpc mode drives a real kvtier-store through the client and must measure what engine mode
# measures in process (same policy, same capacity: the policy measured is the policy that
# serves; equal up to readers released after the stream ends, see below). Also checks that a capacity mismatch is refused with a clear error.
# Usage: replay_grpc_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/../../scripts/store_lib.sh"
build="$(cd "${1:?usage: replay_grpc_test.sh BUILD_DIR}" && pwd)"
bench="$build/bench/kvtier-bench"
store="$build/services/kvtier-store"
work="$(mktemp -d)"
pid=""
shard_pids=()
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  for p in "${shard_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$work/store.log" ] && tail -20 "$work/store.log" >&2; exit 1; }

# Two traces. trace.jsonl: shared prefixes, sessions that grow, and one-off prompts.
# sessions.jsonl (the T2 section below): sessions on shared system prompts whose continuing
# turns have short outputs and whose final turns long ones, the same prompt shapes either way.
python3 - "$work/trace.jsonl" "$work/sessions.jsonl" <<'PY'
import json, random, sys
nxt = 0
def new(n):
    global nxt
    ids = list(range(nxt, nxt + n)); nxt += n; return ids
def record(i, ids, output_length):
    return json.dumps({"timestamp": i * 10, "input_length": len(ids) * 512 - 7,
                       "output_length": output_length, "hash_ids": list(ids)}) + "\n"

rng = random.Random(5)
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
        f.write(record(i, ids, 5))

rng, nxt = random.Random(7), 0
systems = [new(4) for _ in range(4)]
live = []  # [prompt ids, turns left]
with open(sys.argv[2], "w") as f:
    for i in range(2000):
        if not live or rng.random() < 0.5:  # a new session: 60% end after one turn
            live.append([rng.choice(systems)[:], 1 if rng.random() < 0.6 else rng.randint(2, 6)])
            at = len(live) - 1
        else:
            at = rng.randrange(len(live))
        s = live[at]
        s[0] += new(rng.randint(2, 7))
        s[1] -= 1
        last = s[1] == 0
        f.write(record(i, s[0], rng.randint(300, 999) if last else rng.randint(10, 63)))
        if last:
            live[at] = live[-1]; live.pop()
PY

capacity=300
for policy in lru adaptive; do
  start_store "$store" "$work/store.log" --metrics_listen= --t1_lock=none --t1_min_slot_bytes=4096 \
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
for k in ("requests", "blocks", "capacity_blocks"):
    assert g[k] == e[k], (k, g[k], e[k])
# The same policy on the same capacity: the same hits, except that a store releases a
# Fetch's readers when the stream completes, after the client has its last bytes, so on a
# loaded machine a Put that follows a Fetch at once can find the blocks just read still
# held (not evictable) and evict another. That moves a few hits of 6455 blocks, no more.
for k in ("hit_rate", "t1_hit_rate"):
    assert abs(g[k] - e[k]) <= 0.005, (k, g[k], e[k])
assert g["fetch_failures"] == 0
assert g["hit_rate"] > 0.1, g["hit_rate"]
PY
done

# T2 admission over gRPC learns from the output lengths the client reports
# (PutHeader.output_tokens): on sessions whose continuing turns have short outputs and whose
# final turns long ones (the same prompt shapes either way), a store that is told writes
# far fewer blocks to its SSD for no lower hit rate than one that is not.
for reported in true false; do
  rm -rf "$work/t2"
  start_store "$store" "$work/store.log" --metrics_listen= --t1_lock=none --t1_min_slot_bytes=4096 \
    --t1_bytes=$((450 * 4096)) --t2_dir="$work/t2" --t2_bytes=$((900 * 8192)) \
    || fail "T2 store did not start"
  pid=$store_pid
  "$bench" replay --trace="$work/sessions.jsonl" --mode=grpc --target=127.0.0.1:$store_port \
    --output_tokens=$reported >"$work/t2_$reported.json" || fail "T2 replay (reported $reported)"
  kill -TERM "$pid"; wait "$pid" || true; pid=""
  cat "$work/t2_$reported.json"
done
python3 - "$work/t2_true.json" "$work/t2_false.json" <<'PY' || fail "reported output lengths did not cut T2 writes"
import json, sys
said, unsaid = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert said["ssd_capacity_blocks"] > 0 and said["fetch_failures"] == unsaid["fetch_failures"] == 0
assert said["demoted_blocks"] < 0.85 * unsaid["demoted_blocks"], (said["demoted_blocks"], unsaid["demoted_blocks"])
assert said["hit_rate"] >= unsaid["hit_rate"] - 0.005, (said["hit_rate"], unsaid["hit_rate"])
PY

# A cluster: two stores of half the capacity as one cache (grpc mode with a list target),
# and kvtier-bench cluster's three setups on the same trace.
shard_pids=()
targets=""
for i in 0 1; do
  start_store "$store" "$work/shard$i.log" --metrics_listen= --t1_lock=none --t1_min_slot_bytes=4096 \
    --t1_bytes=$((capacity / 2 * 4096)) --shard_id=shard-$i || fail "shard $i did not start"
  shard_pids+=("$store_pid")
  targets="$targets${targets:+,}127.0.0.1:$store_port"
done
"$bench" replay --trace="$work/trace.jsonl" --mode=grpc --target="$targets" --replication=1 \
  >"$work/cluster.json" || fail "cluster replay"
for p in "${shard_pids[@]}"; do kill -TERM "$p"; wait "$p" || true; done
cat "$work/cluster.json"
python3 - "$work/cluster.json" "$work/engine.json" <<'PY' || fail "cluster replay"
import json, sys
c, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert c["capacity_blocks"] == e["capacity_blocks"], (c, e)
assert c["fetch_failures"] == 0
assert c["hit_rate"] > 0.9 * e["hit_rate"], (c["hit_rate"], e["hit_rate"])
assert c["lookup_p99_ms"] > 0
PY
"$bench" cluster --trace="$work/trace.jsonl" --shards=2 --capacity_fraction=0.2 \
  >"$work/bench.jsonl" 2>"$work/bench.err" || fail "kvtier-bench cluster: $(tail -5 "$work/bench.err")"
cat "$work/bench.jsonl"
python3 - "$work/bench.jsonl" <<'PY' || fail "kvtier-bench cluster output"
import json, sys
rows = {(r["shards"], r["setup"]): r for r in map(json.loads, open(sys.argv[1]))}
one, cache, iso = rows[(1, "one_store")], rows[(2, "one_cache")], rows[(2, "isolated_round_robin")]
assert one["capacity_blocks"] == cache["capacity_blocks"] == iso["capacity_blocks"], rows
assert cache["hit_rate"] > iso["hit_rate"], rows
assert all(r["fetch_failures"] == 0 and r["requests_per_second"] > 0 for r in rows.values())
PY
echo OK
