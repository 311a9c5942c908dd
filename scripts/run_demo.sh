#!/usr/bin/env bash
# `make run`: start kvtier-store on its embedded defaults, wait until it reports SERVING,
# run the demo conversation against it, then stop it with SIGTERM (graceful drain).
set -euo pipefail
build="${1:-build}"
store="$build/services/kvtier-store"
ctl="$build/client/kvtierctl"
demo="$build/client/kvtier-demo"
target="127.0.0.1:50051"
log="$(mktemp -t kvtier-store.XXXXXX.log)"

"$store" >"$log" 2>&1 &
pid=$!
stop() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" || true
  fi
}
trap stop EXIT

for _ in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "kvtier-store exited during start-up:" >&2
    cat "$log" >&2
    exit 1
  fi
  if "$ctl" --target="$target" --timeout=1s health >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done
echo "== kvtier-store (defaults; log: $log)"
cat "$log"
echo
"$demo" --target="$target"
echo
echo "== metrics (http://127.0.0.1:9091/metrics), cache-hit counters:"
curl -s http://127.0.0.1:9091/metrics | grep -E '^kvtier_(lookup_(requested|hit)_blocks|put_blocks|fetched_bytes|tier_used_bytes)' || true
