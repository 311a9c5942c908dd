// PendingPut and BlockReadHandle (block_handles.h): the parts of a Put and of a read that
// run outside the store's mutex, on the bytes their slots hold.
#include "cache_store/block_handles.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "cache_store/block_store.h"

namespace kvtier {

// ---------------------------------------------------------------------------------------
// PendingPut

PendingPut::PendingPut(BlockStore* store, uint64_t block_bytes, uint64_t layout_fingerprint,
                       uint32_t num_layers, std::string tenant)
    : store_(store),
      block_bytes_(block_bytes),
      layout_fingerprint_(layout_fingerprint),
      num_layers_(num_layers),
      tenant_(std::move(tenant)) {}

PendingPut::~PendingPut() {
  if (!done_) store_->AbortPut(*this);
}

uint8_t* PendingPut::SlotData(const Block& b) const { return store_->t1_->SlotData(*b.slot); }

absl::Status PendingPut::Write(std::span<const uint8_t> data) {
  if (done_) return absl::FailedPreconditionError("this Put has already ended");
  if (copied_) return absl::InvalidArgumentError("this Put's blocks come from shared memory");
  if (received_ + data.size() > expected_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the Put payload runs past the announced ", blocks_.size(), " blocks of ", block_bytes_,
        " bytes (", expected_bytes(), " bytes; got at least ", received_ + data.size(), ")"));
  }
  const uint64_t layer_bytes = block_bytes_ / num_layers_;
  while (!data.empty()) {
    Block& b = blocks_[received_ / block_bytes_];
    const uint64_t offset = received_ % block_bytes_;
    const size_t n = std::min<uint64_t>(data.size(), block_bytes_ - offset);
    // Bytes of an already cached block are discarded: committed blocks never change.
    if (b.slot) {
      if (offset == 0) {
        b.layer_sums.assign(num_layers_, 0);
        hasher_ = std::make_unique<LayerHasher>(layer_bytes, b.layer_sums);
      }
      // `data` is the store's own memory (what the transport received), so hashing it is
      // hashing what lands in T1; it was just written, so it is read from the cache, and T1
      // is written around the cache (a Put's block is read later, if ever).
      uint8_t* dst = SlotData(b) + offset;
      for (size_t done = 0; done < n;) {
        const size_t piece = std::min<size_t>(n - done, size_t{64} << 10);
        hasher_->Update(data.data() + done, piece);
        StreamingCopy(dst + done, data.data() + done, piece);
        done += piece;
      }
    }
    if (offset + n == block_bytes_) b.filled = true;
    received_ += n;
    data = data.subspan(n);
  }
  return absl::OkStatus();
}

absl::Status PendingPut::CopyBlock(size_t i, const uint8_t* src) {
  if (done_) return absl::FailedPreconditionError("this Put has already ended");
  if (i >= blocks_.size() || received_ != 0 || blocks_[i].filled) {
    return absl::InvalidArgumentError(
        absl::StrCat("carried block ", i, " cannot be copied (out of range, or filled already)"));
  }
  copied_ = true;
  Block& b = blocks_[i];
  if (b.slot) {
    const uint64_t layer_bytes = block_bytes_ / num_layers_;
    b.layer_sums.assign(num_layers_, 0);
    uint8_t* dst = SlotData(b);
    for (uint32_t l = 0; l < num_layers_; ++l) {
      b.layer_sums[l] = CopyAndChecksum(dst + l * layer_bytes, src + l * layer_bytes, layer_bytes,
                                        HashSide::kDestination);
    }
  }
  b.filled = true;
  return absl::OkStatus();
}

absl::StatusOr<PutResult> PendingPut::Commit() {
  if (done_) return absl::FailedPreconditionError("this Put has already ended");
  return store_->CommitPut(*this);
}

// ---------------------------------------------------------------------------------------
// BlockReadHandle

BlockReadHandle::BlockReadHandle(BlockStore* store, std::vector<uint32_t> handles,
                                 std::vector<BlockView> views,
                                 std::vector<uint64_t> layer_checksums,
                                 std::vector<uint32_t> first_layer)
    : store_(store),
      handles_(std::move(handles)),
      views_(std::move(views)),
      layer_checksums_(std::move(layer_checksums)),
      first_layer_(std::move(first_layer)),
      verified_(layer_checksums_.size(), 0),
      loading_(std::make_unique<Loading>(views_.size())) {
  for (size_t i = 0; i < views_.size(); ++i) {
    views_[i].layer_checksums =
        std::span<const uint64_t>(layer_checksums_).subspan(first_layer_[i], views_[i].num_layers);
  }
}

bool BlockReadHandle::Loaded(size_t i) const {
  return loading_->state[i].load(std::memory_order_acquire) == kLoaded;
}

bool BlockReadHandle::Failed(size_t i) const {
  return loading_->state[i].load(std::memory_order_acquire) == kFailed;
}

void BlockReadHandle::SetListener(absl::AnyInvocable<void()> listener) {
  auto shared = std::make_shared<absl::AnyInvocable<void()>>(std::move(listener));
  absl::MutexLock lock(&loading_->mu);
  loading_->listener = std::move(shared);
}

void BlockReadHandle::MarkLoading(size_t i) {
  loading_->state[i].store(kLoading, std::memory_order_relaxed);
}

void BlockReadHandle::MarkLoaded(size_t i, bool ok) {
  // The bytes, their layer checksums and verified_ were written before: release them.
  loading_->state[i].store(ok ? kLoaded : kFailed, std::memory_order_release);
  std::shared_ptr<absl::AnyInvocable<void()>> listener;
  {
    absl::MutexLock lock(&loading_->mu);
    listener = loading_->listener;
  }
  if (listener != nullptr && *listener) (*listener)();
}

absl::Status BlockReadHandle::Corrupt(size_t i, uint32_t layer) {
  store_->DropCorrupt(handles_[i], layer);
  return absl::DataLossError(absl::StrCat("block ", i, " (key ", views_[i].key.ShortHex(),
                                          "…) failed its checksum in layer ", layer,
                                          " and was dropped; treat it as a miss"));
}

absl::Status BlockReadHandle::Verify(size_t i, uint64_t offset, uint64_t length) {
  const BlockView& v = views_[i];
  if (length == 0) return absl::OkStatus();
  const uint64_t layer_bytes = v.layer_bytes();
  const auto first = static_cast<uint32_t>(offset / layer_bytes);
  const auto last = static_cast<uint32_t>((offset + length - 1) / layer_bytes);
  for (uint32_t l = first; l <= last && l < v.num_layers; ++l) {
    uint8_t& verified = verified_[first_layer_[i] + l];
    if (verified) continue;
    if (RangeChecksum(v.data + l * layer_bytes, layer_bytes) != v.layer_checksums[l]) {
      return Corrupt(i, l);
    }
    verified = 1;
  }
  return absl::OkStatus();
}

absl::Status BlockReadHandle::CopyOut(size_t i, uint64_t offset, uint64_t length, uint8_t* dst) {
  const BlockView& v = views_[i];
  const uint64_t layer_bytes = v.layer_bytes();
  if (offset % layer_bytes != 0 || length % layer_bytes != 0) {
    // Not whole layers: check the layers it touches first, then copy.
    if (absl::Status s = Verify(i, offset, length); !s.ok()) return s;
    std::memcpy(dst, v.data + offset, length);
    return absl::OkStatus();
  }
  for (uint64_t done = 0; done < length; done += layer_bytes) {
    const auto l = static_cast<uint32_t>((offset + done) / layer_bytes);
    uint8_t& verified = verified_[first_layer_[i] + l];
    const uint8_t* src = v.data + offset + done;
    if (verified) {
      std::memcpy(dst + done, src, layer_bytes);
      continue;
    }
    if (CopyAndChecksum(dst + done, src, layer_bytes, HashSide::kSource) != v.layer_checksums[l]) {
      return Corrupt(i, l);
    }
    verified = 1;
  }
  return absl::OkStatus();
}

BlockReadHandle::~BlockReadHandle() {
  if (!handles_.empty() || !owned_t1_slots_.empty()) store_->ReleaseRead(handles_, owned_t1_slots_);
}

void BlockReadHandle::FreeDeleter::operator()(uint8_t* p) const { std::free(p); }

}  // namespace kvtier
