#include "cache_store/checksum.h"

#include <xxhash.h>

namespace kvtier {

uint64_t BlockChecksum(const void* data, size_t size) { return XXH3_64bits(data, size); }

}  // namespace kvtier
