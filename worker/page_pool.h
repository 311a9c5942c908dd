// PagePool: the worker's KV memory. A fixed number of pages, each holding one block payload
// (the layer-major layout of kernels/paged_attention.h; for a quantized layout the
// store's compressed format, with each layer's per-head scales inside the page, so a
// page is offloaded and restored as it is), allocated once at start: device
// memory on the CUDA backend, 64-byte-aligned host memory on the CPU backend (optionally a
// SharedMemoryRegion, so that a store on the same node writes restored blocks straight into
// the pages). The capacity is hard: when no page can be had, Allocate fails with
// RESOURCE_EXHAUSTED.
//
// States of a page:
//   free    unused.
//   active  referenced by one or more sequences (refcount > 0). Never evicted or moved.
//   cached  refcount 0 and holding a full block under its key: found again by Acquire,
//           evicted least-recently-released first when Allocate needs a page, but only
//           once its block is safe: already in the store, offloaded, or deliberately
//           dropped (MarkSafe). A page whose offload is in flight stays.
// A key names at most one page; the contents of a keyed page never change.
// Thread-safe.
#ifndef KVTIER_WORKER_PAGE_POOL_H_
#define KVTIER_WORKER_PAGE_POOL_H_

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cache_store/block_key.h"
#include "cache_store/kv_layout.h"
#include "client/shared_memory_region.h"
#include "kernels/backend.h"
#include "kernels/cuda_memory.h"
#include "kernels/paged_attention.h"

namespace kvtier::worker {

class PagePool {
 public:
  struct Counts {
    uint32_t free = 0, active = 0, cached = 0, unsafe = 0;  // unsafe: keyed, offload pending
    uint64_t evictions = 0;
  };

  // `shared_memory` (CPU backend only): the pages live in a SharedMemoryRegion, so that a
  // store on this node can copy blocks straight into and out of them. `kv_scales`: for a
  // quantized layout (fp8_e4m3, int8), the scales new K/V are stored with,
  // [num_layers][2][num_kv_heads] (K's then V's; worker/kv_calibration.h); required then,
  // empty otherwise.
  static absl::StatusOr<std::unique_ptr<PagePool>> Create(const KvLayout& layout,
                                                          uint32_t num_pages,
                                                          kernels::Backend backend,
                                                          bool shared_memory = false,
                                                          std::vector<float> kv_scales = {});
  ~PagePool();

  // A page for new K/V, with refcount 1: a free one, else the least recently released
  // safe cached page (its key is forgotten).
  absl::StatusOr<uint32_t> Allocate();
  // The page holding `key`, with one more reference; nullopt if none.
  std::optional<uint32_t> Acquire(const BlockKey& key);
  // Records that `page` (active) now holds the full block `key`. `safe`: the block is in
  // the store already. Returns false (and leaves the page unkeyed) if another page holds
  // the key.
  bool Publish(uint32_t page, const BlockKey& key, bool safe);
  // The block under `key` is in the store or deliberately dropped: its page may be evicted.
  void MarkSafe(const BlockKey& key);
  bool IsKeyed(uint32_t page) const;
  // Drops one reference; at zero a keyed page becomes cached, an unkeyed one free.
  void Release(uint32_t page);

  // Host or device address of a page (backend()).
  uint8_t* PageData(uint32_t page) const { return base_ + uint64_t{page} * page_bytes_; }
  kernels::KvPagePool KernelView() const;
  const KvLayout& layout() const { return layout_; }
  // The scales K/V are stored with (quantized layouts; empty otherwise), on the host, and
  // on the device for the CUDA backend.
  const std::vector<float>& kv_scales() const { return kv_scales_; }
  const float* device_kv_scales() const { return static_cast<const float*>(device_scales_.data()); }
  kernels::Backend backend() const { return backend_; }
  uint32_t num_pages() const { return num_pages_; }
  uint64_t page_bytes() const { return page_bytes_; }
  // The region holding the pages, or null.
  const SharedMemoryRegion* shared_memory() const { return region_.get(); }
  Counts counts() const;

 private:
  struct Page {
    uint32_t refs = 0;
    bool keyed = false;
    bool safe = false;
    BlockKey key;
    std::list<uint32_t>::iterator lru;  // valid while cached
    bool in_lru = false;
  };

  PagePool(const KvLayout& layout, uint32_t num_pages, kernels::Backend backend, uint8_t* base,
           kernels::CudaBuffer device, std::unique_ptr<SharedMemoryRegion> region,
           std::vector<float> kv_scales, kernels::CudaBuffer device_scales);
  void Forget(uint32_t page) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const KvLayout layout_;
  const uint32_t num_pages_;
  const uint64_t page_bytes_;
  const kernels::Backend backend_;
  uint8_t* const base_;
  kernels::CudaBuffer device_;                  // owns base_ on the CUDA backend
  std::unique_ptr<SharedMemoryRegion> region_;  // owns base_ when the pages are shared
  const std::vector<float> kv_scales_;
  kernels::CudaBuffer device_scales_;

  mutable absl::Mutex mu_;
  std::vector<Page> pages_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_ ABSL_GUARDED_BY(mu_);
  std::list<uint32_t> lru_ ABSL_GUARDED_BY(mu_);  // cached pages, least recent first
  absl::flat_hash_map<BlockKey, uint32_t> by_key_ ABSL_GUARDED_BY(mu_);
  uint64_t evictions_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_PAGE_POOL_H_
