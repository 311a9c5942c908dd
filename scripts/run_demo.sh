#!/usr/bin/env bash
# `make run`: start kvtier-store and kvtier-worker on their embedded defaults, wait until both
# report SERVING, run a multi-turn conversation through the worker, restart the worker (its
# page pool starts empty) and run the conversation again: the prefixes now come from the
# store. Then stop both with SIGTERM (graceful drain) and show the hit counters.
set -euo pipefail
build="${1:-build}"
store_bin="$build/services/kvtier-store"
worker_bin="$build/services/kvtier-worker"
ctl="$build/client/kvtierctl"
demo="$build/client/kvtier-worker-demo"
store_target="127.0.0.1:50051"
worker_target="127.0.0.1:50061"
store_log="$(mktemp -t kvtier-store.XXXXXX.log)"
worker_log="$(mktemp -t kvtier-worker.XXXXXX.log)"
store_pid=""
worker_pid=""

stop() {  # SIGTERM, then wait for the drain
  local pid="$1"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" || true
  fi
}
cleanup() {
  stop "$worker_pid"
  stop "$store_pid"
}
trap cleanup EXIT

wait_healthy() {  # name pid target log
  for _ in $(seq 1 100); do
    if ! kill -0 "$2" 2>/dev/null; then
      echo "$1 exited during start-up:" >&2
      cat "$4" >&2
      exit 1
    fi
    if "$ctl" --target="$3" --timeout=1s health >/dev/null 2>&1; then
      return
    fi
    sleep 0.1
  done
  echo "$1 did not become healthy:" >&2
  cat "$4" >&2
  exit 1
}

start_worker() {
  "$worker_bin" --store="$store_target" >"$worker_log" 2>&1 &
  worker_pid=$!
  wait_healthy kvtier-worker "$worker_pid" "$worker_target" "$worker_log"
}

"$store_bin" >"$store_log" 2>&1 &
store_pid=$!
wait_healthy kvtier-store "$store_pid" "$store_target" "$store_log"
start_worker
echo "== kvtier-store (defaults; log: $store_log)"
cat "$store_log"
echo "== kvtier-worker (defaults; log: $worker_log)"
cat "$worker_log"

echo
echo "== a conversation through the worker: later turns reuse the worker's own pages"
"$demo" --worker="$worker_target"

echo
echo "== the worker restarted (empty page pool): the same conversation, prefixes from the store"
stop "$worker_pid"
start_worker
"$demo" --worker="$worker_target"

echo
echo "== worker metrics (http://127.0.0.1:9092/metrics): prompt tokens by source"
curl -s http://127.0.0.1:9092/metrics | grep -E '^kvtier_worker_(prefix_tokens|restored_bytes|offloaded_blocks)' || true
echo "== store metrics (http://127.0.0.1:9091/metrics): cache hits"
curl -s http://127.0.0.1:9091/metrics | grep -E '^kvtier_(lookup_(requested|hit)_blocks|put_blocks|put_output_reported_blocks|tier_used_bytes)' || true
