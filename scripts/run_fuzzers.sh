#!/usr/bin/env bash
# Runs every fuzz target of a `make fuzz` build (libFuzzer) for SECONDS each, starting from
# its seed corpus (tests/fuzz/corpus/NAME) and the corpus earlier runs grew in
# BUILD_DIR/fuzz-corpus/NAME. A crash, leak, sanitizer report or timeout fails the run and
# leaves the input in BUILD_DIR/fuzz-artifacts/ (copy it into the seed corpus as crash-* with
# the fix, so `make test` replays it from then on).
# Usage: run_fuzzers.sh BUILD_DIR SECONDS [TARGET...]
set -euo pipefail
build="$(cd "${1:?usage: run_fuzzers.sh BUILD_DIR SECONDS [TARGET...]}" && pwd)"
seconds="${2:?}"
shift 2
root="$(cd "$(dirname "$0")/.." && pwd)"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(trace_parser_fuzzer safetensors_fuzzer payload_wire_fuzzer store_requests_fuzzer
           t2_recovery_fuzzer)
fi
mkdir -p "$build/fuzz-artifacts"
failed=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/$t"
  corpus="$build/fuzz-corpus/$t"
  mkdir -p "$corpus"
  echo "== $t: ${seconds}s"
  # detect_leaks=0 for the gRPC server target: gRPC keeps process-lifetime allocations.
  leaks=1
  [ "$t" = store_requests_fuzzer ] && leaks=0
  if ! ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=1" \
       UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
       "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
       -artifact_prefix="$build/fuzz-artifacts/$t-" "$corpus" "$root/tests/fuzz/corpus/$t" \
       2>"$build/fuzz-artifacts/$t.log"; then
    failed+=("$t")
    tail -60 "$build/fuzz-artifacts/$t.log"
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/fuzz-artifacts/$t.log" || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (inputs in $build/fuzz-artifacts/)"
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, nothing found"
