// Block integrity (DESIGN.md §2, docs/api.md "Integrity").
//
// A block is checked per layer: each layer of its payload (K then V of that layer,
// LayerBytes() = size / num_layers bytes) has its own XXH3-64, and the block's checksum is
// the XXH3-64 of those layer checksums as an array of little-endian u64. So any layer can be
// verified on its own, in the same pass that copies it (a layer-major restore verifies layer
// l as it lands), and a whole block costs one pass over its bytes, not one per check.
//
// Who hashes what: the client computes a Put's layer checksums (or leaves it to the store);
// the store computes them as the payload lands in T1 and keeps them with the block; a T1
// block is verified layer by layer as it is read out (the copy into a client's region, or
// before a chunk goes on the wire); a T2 block when it is read from disk; the client once
// more as each layer arrives. Each side hashes each byte once.
//
// Pure functions and a value-type hasher; thread-safe (LayerHasher: thread-compatible).
#ifndef KVTIER_CACHE_STORE_CHECKSUM_H_
#define KVTIER_CACHE_STORE_CHECKSUM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

namespace kvtier {

// XXH3-64 of `size` bytes (one layer, or any range).
uint64_t RangeChecksum(const void* data, size_t size);

// Payload bytes this process has hashed so far, by every function here, on every thread
// (not the small digests of layer checksums). What the hash-budget tests count: a T1 hit
// costs its bytes once on the store's side and once on the client's.
uint64_t HashedBytes();

// The block checksum: XXH3-64 of the layer checksums (u64 little-endian, in layer order).
uint64_t DigestLayerChecksums(std::span<const uint64_t> layer_checksums);

// Fills out[l] with the checksum of layer l of `block` (out.size() layers of layer_bytes) and
// returns the block checksum.
uint64_t ComputeLayerChecksums(const uint8_t* block, uint64_t layer_bytes, std::span<uint64_t> out);

// Copies `size` bytes and returns the XXH3-64 of one side, reading `src` once from memory:
// the copy and the hash go piece by piece, each piece hot in the cache for the second pass.
// Hash the side the caller trusts: T1 (kSource when a block is read out of the store,
// kDestination when a Put lands in it), never memory a client may be writing meanwhile.
// kSource writes `dst` with cache-bypassing stores (it is for another process to read).
enum class HashSide { kSource, kDestination };
uint64_t CopyAndChecksum(uint8_t* dst, const uint8_t* src, size_t size, HashSide side);

// Copies with stores that bypass the cache where the CPU has them, for a destination that is
// read later, not now (T1 slots, another process's region): pulling it into this core's cache
// first (the read-for-ownership of ordinary stores) only costs bandwidth and evicts what is
// hot. Ends with a fence, so the bytes are visible before whatever the caller does next.
void StreamingCopy(uint8_t* dst, const uint8_t* src, size_t size);

// XXH3-64 of bytes fed in pieces.
class StreamingChecksum {
 public:
  StreamingChecksum();
  ~StreamingChecksum();
  StreamingChecksum(const StreamingChecksum&) = delete;
  StreamingChecksum& operator=(const StreamingChecksum&) = delete;
  void Reset();
  void Update(const void* data, size_t size);
  uint64_t Digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Checksums of a block's layers from its bytes fed in order, in pieces of any size (the
// chunks of a stream): out[l] is written when layer l is complete.
class LayerHasher {
 public:
  // out.size() layers of layer_bytes each. REQUIRES: layer_bytes > 0.
  LayerHasher(uint64_t layer_bytes, std::span<uint64_t> out);
  ~LayerHasher();
  LayerHasher(const LayerHasher&) = delete;
  LayerHasher& operator=(const LayerHasher&) = delete;

  // The next bytes of the block; bytes past the last layer are ignored.
  void Update(const uint8_t* data, size_t size);
  // Bytes fed so far (capped at the block size).
  uint64_t fed() const { return fed_; }
  bool done() const { return fed_ == layer_bytes_ * out_.size(); }

 private:
  const uint64_t layer_bytes_;
  const std::span<uint64_t> out_;
  uint64_t fed_ = 0;
  std::unique_ptr<StreamingChecksum> partial_;  // of a layer fed in more than one piece
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_CHECKSUM_H_
