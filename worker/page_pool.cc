#include "worker/page_pool.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_memory.h"

namespace kvtier::worker {
absl::StatusOr<std::unique_ptr<PagePool>> PagePool::Create(const KvLayout& layout,
                                                           uint32_t num_pages,
                                                           kernels::Backend backend,
                                                           bool shared_memory,
                                                           std::vector<float> kv_scales) {
  if (absl::Status s = layout.Validate(); !s.ok()) return s;
  if (num_pages == 0) return absl::InvalidArgumentError("the page pool needs at least one page");
  if (layout.kind != LayoutKind::kKvHeads) {
    return absl::InvalidArgumentError("the worker's pages hold K/V-head layouts only");
  }
  const uint64_t want_scales =
      layout.quantized() ? uint64_t{2} * layout.num_layers * layout.num_kv_heads : 0;
  if (kv_scales.size() != want_scales) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a page pool of ", DTypeName(layout.dtype), " K/V needs ", want_scales,
        " K/V scales (num_layers x 2 x num_kv_heads), got ", kv_scales.size()));
  }
  for (float s : kv_scales) {
    if (!(s > 0) || !std::isfinite(s)) {
      return absl::InvalidArgumentError(absl::StrCat("K/V scale ", s, " is not finite and > 0"));
    }
  }
  kernels::CudaBuffer device_scales;
  if (backend == kernels::Backend::kCuda && !kv_scales.empty()) {
    absl::StatusOr<kernels::CudaBuffer> b =
        kernels::CudaBuffer::Allocate(kv_scales.size() * sizeof(float));
    if (!b.ok()) return b.status();
    device_scales = *std::move(b);
    if (absl::Status s = kernels::CudaCopy(device_scales.data(), kv_scales.data(),
                                           kv_scales.size() * sizeof(float));
        !s.ok()) {
      return s;
    }
  }
  const uint64_t bytes = layout.BlockBytes() * num_pages;
  uint8_t* base = nullptr;
  kernels::CudaBuffer device;
  std::unique_ptr<SharedMemoryRegion> region;
  if (shared_memory && backend == kernels::Backend::kCpu) {
    absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> r = SharedMemoryRegion::Create(bytes);
    if (!r.ok()) return r.status();
    region = *std::move(r);
    base = region->data();
  } else if (backend == kernels::Backend::kCuda) {
    absl::StatusOr<kernels::CudaBuffer> buffer = kernels::CudaBuffer::Allocate(bytes);
    if (!buffer.ok()) return buffer.status();
    device = *std::move(buffer);
    base = static_cast<uint8_t*>(device.data());
  } else {
    base = static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
    if (base == nullptr) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot allocate ", bytes, " bytes for ", num_pages, " pages"));
    }
  }
  return std::unique_ptr<PagePool>(new PagePool(layout, num_pages, backend, base,
                                                std::move(device), std::move(region),
                                                std::move(kv_scales), std::move(device_scales)));
}

PagePool::PagePool(const KvLayout& layout, uint32_t num_pages, kernels::Backend backend,
                   uint8_t* base, kernels::CudaBuffer device,
                   std::unique_ptr<SharedMemoryRegion> region, std::vector<float> kv_scales,
                   kernels::CudaBuffer device_scales)
    : layout_(layout),
      num_pages_(num_pages),
      page_bytes_(layout.BlockBytes()),
      backend_(backend),
      base_(base),
      device_(std::move(device)),
      region_(std::move(region)),
      kv_scales_(std::move(kv_scales)),
      device_scales_(std::move(device_scales)),
      pages_(num_pages) {
  free_.reserve(num_pages);
  for (uint32_t p = num_pages; p > 0; --p) free_.push_back(p - 1);
}

PagePool::~PagePool() {
  if (backend_ == kernels::Backend::kCpu && region_ == nullptr) std::free(base_);
}

kernels::KvPagePool PagePool::KernelView() const {
  return kernels::KvPagePool{.pages = base_,
                             .num_pages = num_pages_,
                             .num_layers = layout_.num_layers,
                             .tokens_per_page = layout_.tokens_per_block,
                             .num_kv_heads = layout_.num_kv_heads,
                             .head_dim = layout_.head_dim,
                             .dtype = layout_.dtype,
                             .inline_scales = layout_.quantized()};
}

void PagePool::Forget(uint32_t page) {
  Page& p = pages_[page];
  if (p.keyed) by_key_.erase(p.key);
  p.keyed = false;
  p.safe = false;
}

absl::StatusOr<uint32_t> PagePool::Allocate() {
  absl::MutexLock lock(&mu_);
  uint32_t page = 0;
  if (!free_.empty()) {
    page = free_.back();
    free_.pop_back();
  } else {
    auto victim = lru_.end();
    for (auto it = lru_.begin(); it != lru_.end(); ++it) {
      if (pages_[*it].safe) {
        victim = it;
        break;
      }
    }
    if (victim == lru_.end()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "all ", num_pages_, " pages are in use or wait for their offload to finish"));
    }
    page = *victim;
    lru_.erase(victim);
    pages_[page].in_lru = false;
    Forget(page);
    ++evictions_;
  }
  pages_[page].refs = 1;
  return page;
}

std::optional<uint32_t> PagePool::Acquire(const BlockKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return std::nullopt;
  Page& p = pages_[it->second];
  if (p.in_lru) {
    lru_.erase(p.lru);
    p.in_lru = false;
  }
  ++p.refs;
  return it->second;
}

bool PagePool::Publish(uint32_t page, const BlockKey& key, bool safe) {
  absl::MutexLock lock(&mu_);
  Page& p = pages_[page];
  if (p.keyed) return p.key == key;
  if (!by_key_.emplace(key, page).second) return false;
  p.keyed = true;
  p.key = key;
  p.safe = safe;
  return true;
}

bool PagePool::IsKeyed(uint32_t page) const {
  absl::MutexLock lock(&mu_);
  return pages_[page].keyed;
}

void PagePool::MarkSafe(const BlockKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = by_key_.find(key);
  if (it != by_key_.end()) pages_[it->second].safe = true;
}

void PagePool::Release(uint32_t page) {
  absl::MutexLock lock(&mu_);
  Page& p = pages_[page];
  if (p.refs == 0) return;  // a double release is ignored rather than corrupting the lists
  if (--p.refs > 0) return;
  if (p.keyed) {
    p.lru = lru_.insert(lru_.end(), page);
    p.in_lru = true;
  } else {
    free_.push_back(page);
  }
}

PagePool::Counts PagePool::counts() const {
  absl::MutexLock lock(&mu_);
  Counts c;
  c.free = static_cast<uint32_t>(free_.size());
  c.cached = static_cast<uint32_t>(lru_.size());
  c.active = num_pages_ - c.free - c.cached;
  for (const Page& p : pages_) {
    if (p.keyed && !p.safe) ++c.unsafe;
  }
  c.evictions = evictions_;
  return c;
}

}  // namespace kvtier::worker
