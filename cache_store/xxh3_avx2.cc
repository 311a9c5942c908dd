// XXH3 compiled for AVX2 (this file alone is built with -mavx2; it is called only where
// the CPU has AVX2). See xxh3_impl.h.
#include "cache_store/xxh3_impl.h"

#define KVTIER_XXH3_IMPL kAvx2
#include "cache_store/xxh3_variant.inc"

namespace kvtier::internal {

const Xxh3Impl* Xxh3Avx2() { return &kAvx2; }

}  // namespace kvtier::internal
