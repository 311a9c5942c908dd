// Handles the BlockStore gives out for work that spans more than one call:
//  - PendingPut: a Put in progress. Owns the slots reserved for its new blocks and a
//    protecting reference on its already-cached ones. Payload bytes arrive either in
//    order with Write() (a stream) or a block at a time with CopyBlock() (same-node, from a
//    client's memory); either way each layer is hashed once, as it lands in T1
//    (cache_store/checksum.h). Commit() checks the layer checksums the client announced, if
//    any, and publishes every block at once. Destroying it without a successful Commit()
//    abandons the Put and frees its slots: nothing of it ever becomes visible.
//  - BlockReadHandle: stable read access to committed blocks. While it lives, its blocks
//    are neither evicted nor overwritten (Delete hides them from new readers and frees them
//    when the last handle goes). Blocks read from T2 were verified when they were loaded;
//    T1 blocks are verified layer by layer by the reader, in the pass that sends or copies
//    them (Verify, CopyOut): bytes may be served only once verified, and a layer that fails
//    drops its block from the store (counted, reported as DATA_LOSS). A handle of a
//    streaming read (BlockStore::ReadBlocksStreaming) comes before its T2 blocks are read:
//    Loaded(i) says when block i's bytes are in place and verified, Failed(i) that they
//    never will be, and a listener hears each change.
// The store they came from must outlive them. PendingPut is used by one thread at a time
// (except CopyBlock, see there); BlockReadHandle's Verify and CopyOut may run concurrently
// for distinct layers.
#ifndef KVTIER_CACHE_STORE_BLOCK_HANDLES_H_
#define KVTIER_CACHE_STORE_BLOCK_HANDLES_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cache_store/block_key.h"
#include "cache_store/checksum.h"
#include "cache_store/tier.h"

namespace kvtier {

class BlockStore;

struct PutResult {
  uint32_t stored_blocks = 0;    // newly committed
  uint32_t existing_blocks = 0;  // already cached; their bytes were discarded
  std::vector<BlockKey> keys;    // of the carried blocks, in order
};

class PendingPut {
 public:
  ~PendingPut();
  PendingPut(const PendingPut&) = delete;
  PendingPut& operator=(const PendingPut&) = delete;

  // Appends the next payload bytes, in block order. INVALID_ARGUMENT (and nothing written)
  // when they would run past the announced blocks, or after CopyBlock.
  absl::Status Write(std::span<const uint8_t> data);
  // Copies all of carried block i from `src` (block_bytes() readable bytes). Calls for
  // distinct blocks may run concurrently; not mixed with Write. INVALID_ARGUMENT for a block
  // out of range, or copied already.
  absl::Status CopyBlock(size_t i, const uint8_t* src);
  // INVALID_ARGUMENT when fewer bytes than announced arrived, DATA_LOSS when a layer does
  // not match the checksum the client announced for it; otherwise commits all blocks.
  // The PendingPut is spent either way.
  absl::StatusOr<PutResult> Commit();

  size_t num_blocks() const { return blocks_.size(); }
  uint64_t block_bytes() const { return block_bytes_; }
  uint64_t expected_bytes() const { return block_bytes_ * blocks_.size(); }

 private:
  friend class BlockStore;

  struct Block {
    BlockKey key;
    std::optional<BlockKey> parent;
    std::optional<uint32_t> slot;      // reserved slot for a new block
    std::optional<uint32_t> existing;  // handle of an already cached block
    std::vector<uint64_t> expected;    // layer checksums the client announced (or empty)
    std::vector<uint64_t> layer_sums;  // computed as the bytes land (new blocks)
    bool filled = false;               // every byte arrived
    uint32_t depth = 0;
    bool prompt_tail = false;
    uint8_t blocks_to_end = 0;  // blocks after it in this Put (capped at 255)
    uint8_t origin = 0;  // PutOrigin (eviction_policy.h) of this Put's first new block
  };

  PendingPut(BlockStore* store, uint64_t block_bytes, uint64_t layout_fingerprint,
             uint32_t num_layers, std::string tenant);

  uint8_t* SlotData(const Block& b) const;

  BlockStore* store_;
  uint64_t block_bytes_;
  uint64_t layout_fingerprint_;
  uint32_t num_layers_;
  std::string tenant_;
  uint32_t output_tokens_ = 0;
  uint32_t tenant_id_ = UINT32_MAX;  // the store's account of the tenant (BlockStore::kNone: none)
  std::vector<Block> blocks_;
  uint64_t received_ = 0;                // bytes through Write
  std::unique_ptr<LayerHasher> hasher_;  // of the block Write is filling
  std::atomic<bool> copied_ = false;     // CopyBlock was used (by any thread)
  bool done_ = false;                    // committed or aborted
};

// One block as a reader sees it.
struct BlockView {
  BlockKey key;
  const uint8_t* data = nullptr;  // use only verified bytes (BlockReadHandle::Verify)
  uint64_t size = 0;
  uint64_t checksum = 0;                      // the block checksum
  std::span<const uint64_t> layer_checksums;  // num_layers of them, owned by the handle
  Tier tier = Tier::kHostDram;
  uint32_t num_layers = 0;
  uint64_t layout_fingerprint = 0;
  uint64_t layer_bytes() const { return size / num_layers; }
};

class BlockReadHandle {
 public:
  ~BlockReadHandle();
  BlockReadHandle(const BlockReadHandle&) = delete;
  BlockReadHandle& operator=(const BlockReadHandle&) = delete;

  std::span<const BlockView> blocks() const { return views_; }

  // Whether block i's bytes are in place and verified: always for T1 blocks; for a T2
  // block of a streaming read, once its disk read has ended and it verified. Failed(i):
  // it never will be (it could not be read or failed its checksum and is dropped from the
  // store; serve none of it). Before Loaded(i), neither Verify nor CopyOut may touch it.
  bool Loaded(size_t i) const;
  bool Failed(size_t i) const;
  // Streaming reads: `listener` runs on a T2 reader thread each time a block stops
  // loading, from now on (it replaces any previous one; check Loaded after setting it). It
  // must not block and must not call SetListener.
  void SetListener(absl::AnyInvocable<void()> listener);

  // Checks every layer of block i that [offset, offset + length) touches against its
  // checksum, once per layer. DATA_LOSS naming the block and layer when one fails: the
  // block is dropped from the store, and none of its bytes may be served.
  absl::Status Verify(size_t i, uint64_t offset, uint64_t length);
  // Copies [offset, offset + length) of block i to `dst`, verifying the layers it covers
  // in the same pass (layers verified already are only copied). On DATA_LOSS, as for
  // Verify, `dst` holds unverified bytes that must not be used.
  absl::Status CopyOut(size_t i, uint64_t offset, uint64_t length, uint8_t* dst);

 private:
  friend class BlockStore;
  BlockReadHandle(BlockStore* store, std::vector<uint32_t> handles, std::vector<BlockView> views,
                  std::vector<uint64_t> layer_checksums, std::vector<uint32_t> first_layer);
  // The failure of layer `layer` of block i: drops the block, returns DATA_LOSS.
  absl::Status Corrupt(size_t i, uint32_t layer);
  // The loader's side: block i starts loading (at open), or has loaded (ok) or failed;
  // the latter tells the listener.
  void MarkLoading(size_t i);
  void MarkLoaded(size_t i, bool ok);

  enum LoadState : uint8_t { kLoaded = 0, kLoading = 1, kFailed = 2 };
  // Per-block load state and the listener (apart, so that the handle's vectors need no lock).
  struct Loading {
    explicit Loading(size_t n) : state(new std::atomic<uint8_t>[n]) {
      for (size_t i = 0; i < n; ++i) state[i].store(kLoaded, std::memory_order_relaxed);
    }
    std::unique_ptr<std::atomic<uint8_t>[]> state;
    absl::Mutex mu;
    // Called without the lock held (a copy of the pointer is taken under it).
    std::shared_ptr<absl::AnyInvocable<void()>> listener ABSL_GUARDED_BY(mu);
  };

  struct FreeDeleter {
    void operator()(uint8_t* p) const;
  };

  BlockStore* store_;
  std::vector<uint32_t> handles_;
  std::vector<BlockView> views_;
  // Layer checksums of every view, flat; view i's start at first_layer_[i]. verified_ is
  // indexed the same way (bytes, not bits: distinct layers are written by distinct threads).
  std::vector<uint64_t> layer_checksums_;
  std::vector<uint32_t> first_layer_;
  std::vector<uint8_t> verified_;
  // Buffers for T2 blocks that could not be promoted into T1.
  std::vector<std::unique_ptr<uint8_t, FreeDeleter>> staging_;
  // T1 slots holding a copy that only this reader uses (another reader promoted first).
  std::vector<uint32_t> owned_t1_slots_;
  // Whether every block's layer checksums were known at open (a block recovered from T2 and
  // never read since has only its block checksum until it is loaded).
  bool layer_checksums_known_ = true;
  std::unique_ptr<Loading> loading_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_BLOCK_HANDLES_H_
