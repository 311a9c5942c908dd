#!/usr/bin/env bash
# The concurrency, service and worker tests of a ThreadSanitizer build (make test-tsan), each
# test executable run whole; any TSan report fails the run (halt_on_error), and the report is
# printed. The real binaries they start (kvtier-store, kvtier-worker) are the TSan builds too.
# Usage: run_tsan_tests.sh BUILD_DIR
set -euo pipefail
build="$(cd "${1:?usage: run_tsan_tests.sh BUILD_DIR}" && pwd)"
root="$(cd "$(dirname "$0")/.." && pwd)"
tests=(
  cache_store/block_store_concurrency_test cache_store/tenant_quota_test
  cache_store/block_store_t2_test
  services/cache_store_service_test services/client_resilience_test
  services/fetch_integrity_test services/shm_data_plane_test services/sharded_cluster_test
  services/store_process_test services/tenant_identity_test services/worker_process_test
  worker/decode_engine_test worker/pipelined_restore_test worker/page_pool_test
)
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=4 \
suppressions=$root/tests/tsan/suppressions.txt"
failed=()
for t in "${tests[@]}"; do
  log="$build/tsan-$(basename "$t").log"
  echo "== $t"
  if ! "$build/tests/$t" >"$log" 2>&1; then
    failed+=("$t")
    grep -n -A40 "WARNING: ThreadSanitizer" "$log" | head -80 || tail -40 "$log"
  else
    grep -E "^\[  PASSED  \]|SKIPPED" "$log" | head -3
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "ThreadSanitizer: failures in ${failed[*]} (logs: $build/tsan-*.log)"
  exit 1
fi
echo "ThreadSanitizer: ${#tests[@]} test programs clean"
