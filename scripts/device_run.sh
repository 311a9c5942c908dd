#!/usr/bin/env bash
# Runs on a GPU machine, from the repository root, with .device/ (scripts/device_bundle.sh)
# carried along: the GPU-vs-CPU tests, the same tests under compute-sanitizer, and the GPU
# benchmarks with their same-run references (device-to-device copy, pinned cudaMemcpy,
# PyTorch scaled_dot_product_attention). Output goes to stdout and, when $OUT is set, to
# $OUT/*.log / *.jsonl.
set -uo pipefail
out="${OUT:-/tmp/kvtier-device}"
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin=.device/bin
nvidia-smi -L | tee "$out/device.log"

echo "== GPU tests"
"$bin/kernels_cuda_test" 2>&1 | tail -n 40 | tee "$out/kernels_cuda_test.log"
"$bin/decoder_ops_cuda_test" 2>&1 | tail -n 40 | tee "$out/decoder_ops_cuda_test.log"
"$bin/cuda_decoder_test" 2>&1 | tail -n 40 | tee "$out/cuda_decoder_test.log"
"$bin/pipelined_restore_test" 2>&1 | tail -n 20 | tee "$out/pipelined_restore_test.log"

echo "== compute-sanitizer (memcheck) over a cross-section of the GPU tests"
compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/kernels_cuda_test" \
  --gtest_filter='*group4_dim128*:*group12_dim64*:*Errors*:*Copy*:*Quantize*:*TwoStreams*' \
  2>&1 | tail -n 20 | tee "$out/sanitizer.log"
compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/decoder_ops_cuda_test" \
  2>&1 | tail -n 20 | tee -a "$out/sanitizer.log"
compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/cuda_decoder_test" \
  --gtest_filter='*Batching*:*BadInput*' 2>&1 | tail -n 20 | tee -a "$out/sanitizer.log"

echo "== benchmarks"
"$bin/kvtier-bench" attention --backend=cuda --batches=1,16,64 --contexts=1024,4096,32768 \
  --iterations=20 | tee "$out/attention_cuda.jsonl"
python3 bench/attention_torch.py --device=cuda --batches=1,16,64 --contexts=1024,4096,32768 \
  --iterations=20 | tee "$out/attention_torch.jsonl"
"$bin/kvtier-bench" copy --backend=cuda --pages=512 --iterations=10 | tee "$out/copy_cuda.jsonl"
"$bin/kvtier-bench" copy --backend=cuda --pages=512 --fragment-bytes=4096 --iterations=5 \
  | tee -a "$out/copy_cuda.jsonl"
echo "== time to first token on the GPU (Llama-3-8B dimensions, random weights)"
"$bin/kvtier-bench" ttft --backend=cuda --model=llama-3-8b --prefixes=1024,8192,32768 \
  | tee "$out/ttft_cuda.jsonl"
"$bin/kvtier-bench" ttft --backend=cuda --model=llama-3-8b --prefixes=32768 --same_node \
  | tee -a "$out/ttft_cuda.jsonl"
