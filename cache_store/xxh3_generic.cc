// XXH3 for the baseline instruction set (SSE2 on x86-64). See xxh3_impl.h.
#include "cache_store/xxh3_impl.h"

#define KVTIER_XXH3_IMPL kGeneric
#include "cache_store/xxh3_variant.inc"

namespace kvtier::internal {

const Xxh3Impl& Xxh3Generic() { return kGeneric; }

#if !defined(KVTIER_HAVE_XXH3_AVX2)
const Xxh3Impl* Xxh3Avx2() { return nullptr; }
#endif

}  // namespace kvtier::internal
