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
  cache_store/block_store_t2_test cache_store/t2_admission_test cache_store/t2_promotion_test
  services/cache_store_service_test services/client_resilience_test
  services/fetch_integrity_test services/shm_data_plane_test services/sharded_cluster_test
  services/store_process_test services/tenant_identity_test services/worker_process_test
  services/t2_fetch_test
  worker/decode_engine_test worker/pipelined_restore_test worker/page_pool_test
)
# The checked-in suppressions, and one called_from_lib line per uninstrumented gRPC, Abseil,
# protobuf or OpenSSL library the programs load (tests/tsan/suppressions.txt says why).
suppressions="$build/tsan-suppressions.txt"
cp "$root/tests/tsan/suppressions.txt" "$suppressions"
for t in "${tests[@]}" services/kvtier-store services/kvtier-worker; do
  bin="$build/$t"
  [ -x "$bin" ] || bin="$build/tests/$t"
  ldd "$bin" | awk '{print $1}'
done | grep -E '^lib(grpc|gpr|absl_|protobuf|upb|address_sorting|ssl|crypto)' | sort -u \
  | sed 's/^/called_from_lib:/' >>"$suppressions"
# Reports go to files, one per process: the real kvtier-store and kvtier-worker processes a
# test starts report there too (their own logs are the tests' temporary files).
reports="$build/tsan-reports"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=4 \
suppressions=$suppressions log_path=$reports/report"
failed=()
for t in "${tests[@]}"; do
  log="$build/tsan-$(basename "$t").log"
  echo "== $t"
  rm -rf "$reports" && mkdir -p "$reports"
  status=0
  timeout 900 "$build/tests/$t" >"$log" 2>&1 || status=$?
  if compgen -G "$reports/report.*" >/dev/null; then
    cat "$reports"/report.* >>"$log"
    [ "$status" -ne 0 ] || status=66  # TSan's exit code: only a started process reported
  fi
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    [ "$status" -ne 124 ] || echo "timed out after 900 s"
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
