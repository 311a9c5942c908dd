#!/usr/bin/env bash
# Tenant isolation on the bundled Mooncake trace: tenant b replays it while tenant a floods
# the store with a scan; with its guarantee, b keeps >= 0.95x its hit rate alone (in a store
# of exactly its guarantee), with the default policy and with LRU, at two guarantee sizes.
# Exits 77 (ctest: skipped) when the trace is absent.
# Usage: noisy_neighbor_test.sh BUILD_DIR TRACE
set -euo pipefail
build="$(cd "${1:?usage: noisy_neighbor_test.sh BUILD_DIR TRACE}" && pwd)"
trace="${2:?}"
if [ ! -f "$trace" ]; then
  echo "SKIP: trace ($trace) not found"
  exit 77
fi
bench="$build/bench/kvtier-bench"
for args in "" "--policy=lru" "--guarantee_fraction=0.1 --store_multiple=2" \
            "--scan_requests=16"; do
  echo "== kvtier-bench noisy $args"
  # shellcheck disable=SC2086
  "$bench" noisy --trace="$trace" --min_ratio=0.95 $args | tail -1
done
