// Block payload checksum: XXH3-64, computed at Put and verified before a block is served.
// Thread-safe.
#ifndef KVTIER_CACHE_STORE_CHECKSUM_H_
#define KVTIER_CACHE_STORE_CHECKSUM_H_

#include <cstddef>
#include <cstdint>

namespace kvtier {

uint64_t BlockChecksum(const void* data, size_t size);

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_CHECKSUM_H_
