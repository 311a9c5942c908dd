#!/usr/bin/env bash
# kvtierctl end to end, as an operator would use it: start kvtier-store from a flag file,
# put a block file, look the prompt up, get the blocks back and compare the bytes, watch
# events, read stats, check health, and see clear errors for bad input.
# Usage: kvtierctl_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/../../scripts/store_lib.sh"
build="$(cd "${1:?usage: kvtierctl_test.sh BUILD_DIR}" && pwd)"
store="$build/services/kvtier-store"
ctl="$build/client/kvtierctl"
work="$(mktemp -d)"
pid=""
shards=()
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  for p in "${shards[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$work/store.log" ] && cat "$work/store.log" >&2; exit 1; }

# A config file is a flag file.
cat >"$work/store.flags" <<FLAGS
--metrics_listen=
--t1_bytes=33554432
--t1_min_slot_bytes=65536
--t1_lock=none
--lease_ttl=5s
FLAGS
start_store "$store" "$work/store.log" --flagfile="$work/store.flags" || fail "store did not start"
pid=$store_pid
port=$store_port
grep -q "blocks of 65536 to" "$work/store.log" || fail "flag file not applied"

# Small layout: 2 layers x 2 heads x 64 dims x fp16 x 16 tokens x K,V = 16 KiB blocks.
layout=(--model=tiny --layers=2 --kv_heads=2 --head_dim=64 --dtype=fp16 --tokens_per_block=16)
c() { "$ctl" --target="127.0.0.1:$port" --tenant=ops "$@"; }

c health | grep -q SERVING || fail "health"
seq 1 50 | tr '\n' ',' >"$work/prompt.txt"      # 50 tokens: 3 full blocks
head -c $((3 * 16384)) /dev/urandom >"$work/blocks.bin"

c "${layout[@]}" watch --duration=10s --max_events=3 >"$work/events.jsonl" &
watcher=$!
sleep 0.5
c "${layout[@]}" put --tokens_file="$work/prompt.txt" --in="$work/blocks.bin" \
  | grep -q '"stored_blocks": 3' || fail "put"
c "${layout[@]}" lookup --tokens_file="$work/prompt.txt" >"$work/lookup.json"
grep -q '"matched_blocks": 3' "$work/lookup.json" || fail "lookup: $(cat "$work/lookup.json")"
grep -q '"matched_tokens": 48' "$work/lookup.json" || fail "lookup tokens"

for order in block layer; do
  c "${layout[@]}" get --tokens_file="$work/prompt.txt" --order=$order --out="$work/got.$order" \
    >/dev/null || fail "get ($order)"
  cmp "$work/blocks.bin" "$work/got.$order" || fail "bytes differ ($order order)"
done
key1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"][1])' "$work/lookup.json")
c "${layout[@]}" get --keys="$key1" --out="$work/got.key" >/dev/null || fail "get by key"
cmp <(tail -c +$((16384 + 1)) "$work/blocks.bin" | head -c 16384) "$work/got.key" \
  || fail "bytes of block 1 differ"

wait "$watcher" || fail "watch"
[ "$(grep -c '"type": "TYPE_STORED"' "$work/events.jsonl")" = 3 ] || fail "events: $(cat "$work/events.jsonl")"

c stats >"$work/stats.json"
python3 - "$work/stats.json" <<'PY' || fail "stats: $(cat "$work/stats.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert int(s["putStoredBlocks"]) == 3, s
assert int(s["tiers"][0]["usedBytes"]) == 3 * 16384, s
assert int(s["lookupHitBlocks"]) >= 3, s
PY

# Bad input: a clear message and a non-zero exit, nothing stored.
head -c 1000 /dev/urandom >"$work/short.bin"
if c "${layout[@]}" put --tokens_file="$work/prompt.txt" --in="$work/short.bin" 2>"$work/err"; then
  fail "a partial block was accepted"
fi
grep -q "whole number of 16384-byte blocks" "$work/err" || fail "unclear error: $(cat "$work/err")"
if c --layers=0 lookup --tokens=1,2 2>"$work/err"; then fail "zero layers accepted"; fi
grep -q "num_layers" "$work/err" || fail "unclear error: $(cat "$work/err")"
if c other 2>/dev/null; then fail "unknown command accepted"; fi
# Another tenant sees nothing.
"$ctl" --target="127.0.0.1:$port" --tenant=someone-else "${layout[@]}" lookup \
  --tokens_file="$work/prompt.txt" | grep -q '"matched_blocks": 0' || fail "tenant isolation"

kill -TERM "$pid"
wait "$pid" || fail "store exit code $?"
pid=""

# A cluster of two shards as one target: the blocks spread over both, two copies each,
# and come back whole; stats and health report each shard.
targets=""
for i in 0 1; do
  start_store "$store" "$work/shard$i.log" --flagfile="$work/store.flags" --shard_id=shard-$i \
    || fail "shard $i did not start"
  shards+=("$store_pid")
  targets="$targets${targets:+,}127.0.0.1:$store_port"
done
cc() { "$ctl" --target="$targets" --replication=2 --tenant=ops "$@"; }
seq 1 200 | tr '\n' ',' >"$work/long.txt"      # 200 tokens: 12 full blocks
head -c $((12 * 16384)) /dev/urandom >"$work/long.bin"
cc "${layout[@]}" put --tokens_file="$work/long.txt" --in="$work/long.bin" \
  | grep -q '"stored_blocks": 24' || fail "cluster put (2 copies of 12 blocks)"
cc "${layout[@]}" lookup --tokens_file="$work/long.txt" | grep -q '"matched_blocks": 12' \
  || fail "cluster lookup"
cc "${layout[@]}" get --tokens_file="$work/long.txt" --order=layer --out="$work/long.got" \
  >/dev/null || fail "cluster get"
cmp "$work/long.bin" "$work/long.got" || fail "cluster bytes differ"
cc health >"$work/health.json" || fail "cluster health: $(cat "$work/health.json")"
grep -q '"id": "shard-0"' "$work/health.json" && grep -q '"id": "shard-1"' "$work/health.json" \
  || fail "cluster health lists the shards: $(cat "$work/health.json")"
cc stats >"$work/cstats.json"
python3 - "$work/cstats.json" <<'PY' || fail "cluster stats: $(cat "$work/cstats.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert len(s["shards"]) == 2, s
assert sum(int(x["stats"]["putStoredBlocks"]) for x in s["shards"]) == 24, s
assert {x["stats"]["shardId"] for x in s["shards"]} == {"shard-0", "shard-1"}, s
PY
# One shard down: the other copy serves every block; health says which is down.
kill -KILL "${shards[1]}"
wait "${shards[1]}" 2>/dev/null || true
cc "${layout[@]}" get --tokens_file="$work/long.txt" --out="$work/long.got2" >/dev/null \
  || fail "cluster get with a shard down"
cmp "$work/long.bin" "$work/long.got2" || fail "bytes differ with a shard down"
if cc health >/dev/null; then fail "health passed with a shard down"; fi
echo "kvtierctl_test: all checks passed"
