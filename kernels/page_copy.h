// Page gather/scatter: many (page, offset, length) fragments between the page pool and a
// contiguous buffer in one call, for the cases where one DMA per fragment is slow (a
// restore of many partial layers, an offload of scattered blocks).
//
//   gather:  dst = fragment_0 ‖ fragment_1 ‖ ...      (pages → contiguous)
//   scatter: fragment_i = the next length_i bytes of src (contiguous → pages)
//   move:    to.page[dst_page][offset, +length) = from.page[src_page][same range]
//            (pages → pages of another pool: a restore's layer from the pinned staging
//            blocks into the device pages, in one launch)
//
// Fragments lie inside one page each. Scatter fragments, and the destinations of moves,
// must not overlap (checked).
// Errors name the bad fragment; nothing is copied unless every fragment is valid.
#ifndef KVTIER_KERNELS_PAGE_COPY_H_
#define KVTIER_KERNELS_PAGE_COPY_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "kernels/backend.h"

namespace kvtier::kernels {

struct CopyFragment {
  uint32_t page = 0;
  uint64_t offset = 0;  // within the page
  uint64_t length = 0;
};

struct PagePoolBytes {
  void* pages = nullptr;
  uint64_t page_bytes = 0;
  uint32_t num_pages = 0;
};

// A byte range of one page of a pool copied to the same range of a page of another.
struct PageMove {
  uint32_t src_page = 0;
  uint32_t dst_page = 0;
  uint64_t offset = 0;  // within both pages
  uint64_t length = 0;
};

// Checks every fragment against the pool and the total against the buffer.
absl::Status ValidateFragments(const PagePoolBytes& pool, std::span<const CopyFragment> fragments,
                               const void* buffer, uint64_t buffer_bytes, bool for_scatter);
// Checks every move against both pools; destinations must not overlap.
absl::Status ValidateMoves(const PagePoolBytes& from, const PagePoolBytes& to,
                           std::span<const PageMove> moves);
// Where each fragment starts in the contiguous buffer: the lengths before it, summed.
std::vector<uint64_t> FragmentOffsets(std::span<const CopyFragment> fragments);

absl::Status GatherPagesCpu(const PagePoolBytes& pool, std::span<const CopyFragment> fragments,
                            void* dst, uint64_t dst_bytes, int threads = 0);
absl::Status ScatterPagesCpu(const void* src, uint64_t src_bytes,
                             std::span<const CopyFragment> fragments, const PagePoolBytes& pool,
                             int threads = 0);
absl::Status MovePagesCpu(const PagePoolBytes& from, const PagePoolBytes& to,
                          std::span<const PageMove> moves, int threads = 0);

// GPU kernels (page_copy_cuda.cu): pool.pages and the buffer are device memory or mapped
// pinned host memory (a restore reads pinned staging directly); the fragment list is a host
// array. One launch copies every fragment. Asynchronous (kernels/backend.h).
absl::Status GatherPagesCuda(const PagePoolBytes& pool, std::span<const CopyFragment> fragments,
                             void* dst, uint64_t dst_bytes, const CudaOptions& options = {});
absl::Status ScatterPagesCuda(const void* src, uint64_t src_bytes,
                              std::span<const CopyFragment> fragments, const PagePoolBytes& pool,
                              const CudaOptions& options = {});
absl::Status MovePagesCuda(const PagePoolBytes& from, const PagePoolBytes& to,
                           std::span<const PageMove> moves, const CudaOptions& options = {});

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_PAGE_COPY_H_
