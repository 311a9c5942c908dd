#include "cache_store/checksum.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <vector>

#include "cache_store/xxh3_impl.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace kvtier {
namespace {

// Pieces small enough that a piece copied is still in L1/L2 when it is hashed.
constexpr size_t kCopyPiece = 64 << 10;

std::atomic<uint64_t> hashed_bytes{0};

void CountHashed(size_t size) { hashed_bytes.fetch_add(size, std::memory_order_relaxed); }

const internal::Xxh3Impl& Xxh3() {
  static const internal::Xxh3Impl* impl = [] {
#if defined(__x86_64__)
    if (internal::Xxh3Avx2() != nullptr && __builtin_cpu_supports("avx2")) {
      return internal::Xxh3Avx2();
    }
#endif
    return &internal::Xxh3Generic();
  }();
  return *impl;
}

}  // namespace

void StreamingCopy(uint8_t* dst, const uint8_t* src, size_t size) {
#if defined(__x86_64__)
  const size_t head = std::min(size, (16 - reinterpret_cast<uintptr_t>(dst) % 16) % 16);
  std::memcpy(dst, src, head);
  size_t i = head;
  for (; i + 64 <= size; i += 64) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
  }
  std::memcpy(dst + i, src + i, size - i);
  _mm_sfence();
#else
  std::memcpy(dst, src, size);
#endif
}

uint64_t RangeChecksum(const void* data, size_t size) {
  CountHashed(size);
  return Xxh3().hash(data, size);
}

uint64_t HashedBytes() { return hashed_bytes.load(std::memory_order_relaxed); }

uint64_t DigestLayerChecksums(std::span<const uint64_t> layer_checksums) {
  if constexpr (std::endian::native == std::endian::little) {
    return Xxh3().hash(layer_checksums.data(), layer_checksums.size_bytes());
  } else {
    std::vector<uint8_t> bytes(layer_checksums.size_bytes());
    for (size_t i = 0; i < layer_checksums.size(); ++i) {
      for (int b = 0; b < 8; ++b) {
        bytes[i * 8 + b] = static_cast<uint8_t>(layer_checksums[i] >> (8 * b));
      }
    }
    return Xxh3().hash(bytes.data(), bytes.size());
  }
}

uint64_t ComputeLayerChecksums(const uint8_t* block, uint64_t layer_bytes,
                               std::span<uint64_t> out) {
  for (size_t l = 0; l < out.size(); ++l)
    out[l] = RangeChecksum(block + l * layer_bytes, layer_bytes);
  return DigestLayerChecksums(out);
}

uint64_t CopyAndChecksum(uint8_t* dst, const uint8_t* src, size_t size, HashSide side) {
  if (side == HashSide::kSource && size > internal::kXxh3MidsizeMax &&
      reinterpret_cast<uintptr_t>(dst) % 16 == 0) {
    // One pass over memory: each stripe is stored right after it is hashed, from L1.
    CountHashed(size);
    return Xxh3().copy_hash_long(dst, src, size);
  }
  if (size <= kCopyPiece) {
    if (side == HashSide::kSource) {
      const uint64_t sum = RangeChecksum(src, size);  // reads src into the cache
      StreamingCopy(dst, src, size);
      return sum;
    }
    std::memcpy(dst, src, size);
    return RangeChecksum(dst, size);  // while dst is in the cache
  }
  StreamingChecksum sum;
  for (size_t off = 0; off < size; off += kCopyPiece) {
    const size_t n = std::min(kCopyPiece, size - off);
    if (side == HashSide::kSource) {
      sum.Update(src + off, n);
      StreamingCopy(dst + off, src + off, n);
    } else {
      std::memcpy(dst + off, src + off, n);
      sum.Update(dst + off, n);
    }
  }
  return sum.Digest();
}

struct StreamingChecksum::State {
  alignas(64) unsigned char bytes[internal::kXxh3StateBytes];
};

StreamingChecksum::StreamingChecksum() : state_(std::make_unique<State>()) { Reset(); }
StreamingChecksum::~StreamingChecksum() = default;
void StreamingChecksum::Reset() { Xxh3().reset(state_->bytes); }
void StreamingChecksum::Update(const void* data, size_t size) {
  CountHashed(size);
  Xxh3().update(state_->bytes, data, size);
}
uint64_t StreamingChecksum::Digest() const { return Xxh3().digest(state_->bytes); }

LayerHasher::LayerHasher(uint64_t layer_bytes, std::span<uint64_t> out)
    : layer_bytes_(layer_bytes), out_(out) {}

LayerHasher::~LayerHasher() = default;

void LayerHasher::Update(const uint8_t* data, size_t size) {
  const uint64_t total = layer_bytes_ * out_.size();
  while (size > 0 && fed_ < total) {
    const uint64_t layer = fed_ / layer_bytes_;
    const uint64_t in_layer = fed_ % layer_bytes_;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(size, layer_bytes_ - in_layer));
    if (in_layer == 0 && n == layer_bytes_) {
      out_[layer] = RangeChecksum(data, n);  // a whole layer in one piece: the common case
    } else {
      if (partial_ == nullptr) partial_ = std::make_unique<StreamingChecksum>();
      if (in_layer == 0) partial_->Reset();
      partial_->Update(data, n);
      if (in_layer + n == layer_bytes_) out_[layer] = partial_->Digest();
    }
    fed_ += n;
    data += n;
    size -= n;
  }
}

}  // namespace kvtier
