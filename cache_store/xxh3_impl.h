// The XXH3-64 implementations checksum.cc chooses between at run time: the one compiled
// for the baseline instruction set, and (x86-64) one compiled for AVX2, three times faster
// on data in the cache (49 vs 16 GB/s on the development VM) with the same results.
// Internal to cache_store/checksum.cc.
#ifndef KVTIER_CACHE_STORE_XXH3_IMPL_H_
#define KVTIER_CACHE_STORE_XXH3_IMPL_H_

#include <cstddef>
#include <cstdint>

namespace kvtier::internal {

// Room for an XXH3_state_t (576 bytes in xxHash 0.8) with its 64-byte alignment.
inline constexpr size_t kXxh3StateBytes = 1024;

struct Xxh3Impl {
  uint64_t (*hash)(const void* data, size_t size);
  // `state` is kXxh3StateBytes, 64-byte aligned, used only with this implementation.
  void (*reset)(void* state);
  void (*update)(void* state, const void* data, size_t size);
  uint64_t (*digest)(const void* state);
  // Copies `size` bytes (more than kXxh3MidsizeMax) to `dst` (16-byte aligned) with
  // cache-bypassing stores, reading `src` once, and returns hash(src, size).
  uint64_t (*copy_hash_long)(void* dst, const void* src, size_t size);
};

// Above this many bytes XXH3 runs its long loop (XXH3_MIDSIZE_MAX in xxHash 0.8).
inline constexpr size_t kXxh3MidsizeMax = 240;

const Xxh3Impl& Xxh3Generic();
// Null where the build has no AVX2 variant.
const Xxh3Impl* Xxh3Avx2();

}  // namespace kvtier::internal

#endif  // KVTIER_CACHE_STORE_XXH3_IMPL_H_
