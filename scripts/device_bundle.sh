#!/usr/bin/env bash
# Packs what a session with a GPU machine needs to run the CUDA tests and benchmarks there.
# That machine has the NVIDIA driver, CUDA tools and PyTorch but none of kvtier's C++
# dependencies (gRPC, Abseil, GoogleTest...), so the binaries built here travel with their
# shared libraries (everything outside glibc) in .device/ (git-ignored; ~20 MB stripped).
#
#   make build && bash scripts/device_bundle.sh [build-dir]
#   then, on the device (carry .device):  bash scripts/device_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
if ! grep -q "KVTIER_CUDA:BOOL=ON" "$build/CMakeCache.txt" 2>/dev/null; then
  echo "device_bundle: $build was not configured with KVTIER_CUDA=ON" >&2
  exit 1
fi
rm -rf .device
mkdir -p .device/lib .device/bin
for b in tests/kernels/kernels_cuda_test tests/kernels/paged_attention_cpu_test \
         tests/kernels/decoder_ops_cuda_test tests/worker/cuda_decoder_test \
         tests/worker/pipelined_restore_test bench/kvtier-bench; do
  strip -o ".device/bin/$(basename "$b")" "$build/$b"
done
for b in .device/bin/*; do
  ldd "$b" | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*) ;;  # the device's glibc
    *) cp -L "$lib" .device/lib/ ;;
  esac
done
du -sh .device
