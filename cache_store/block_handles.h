// Handles the BlockStore gives out for work that spans more than one call:
//  - PendingPut: a Put in progress. Owns the slots reserved for its new blocks and a
//    protecting reference on its already-cached ones. Payload bytes are appended with
//    Write() in block order; Commit() verifies and publishes every block at once.
//    Destroying it without a successful Commit() abandons the Put and frees its slots:
//    nothing of it ever becomes visible.
//  - BlockReadHandle: verified, stable read access to committed blocks. While it lives,
//    its blocks are neither evicted nor overwritten (Delete hides them from new readers
//    and frees them when the last handle goes).
// Each handle is used by one thread at a time; the store they came from must outlive them.
#ifndef KVTIER_CACHE_STORE_BLOCK_HANDLES_H_
#define KVTIER_CACHE_STORE_BLOCK_HANDLES_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "cache_store/block_key.h"
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

  // Appends the next payload bytes. INVALID_ARGUMENT (and nothing written) when they
  // would run past the announced blocks.
  absl::Status Write(std::span<const uint8_t> data);
  // INVALID_ARGUMENT when fewer bytes than announced arrived, DATA_LOSS when a block's
  // payload does not match its announced checksum; otherwise commits all blocks.
  // The PendingPut is spent either way.
  absl::StatusOr<PutResult> Commit();

  uint64_t expected_bytes() const { return block_bytes_ * blocks_.size(); }
  uint64_t received_bytes() const { return received_; }

 private:
  friend class BlockStore;

  struct Block {
    BlockKey key;
    std::optional<BlockKey> parent;
    std::optional<uint32_t> slot;      // reserved slot for a new block
    std::optional<uint32_t> existing;  // handle of an already cached block
    std::optional<uint64_t> expected_checksum;
    uint64_t checksum = 0;  // computed at commit
    uint32_t depth = 0;
    bool prompt_tail = false;
  };

  PendingPut(BlockStore* store, uint64_t block_bytes, uint64_t layout_fingerprint,
             uint32_t num_layers, std::string tenant)
      : store_(store),
        block_bytes_(block_bytes),
        layout_fingerprint_(layout_fingerprint),
        num_layers_(num_layers),
        tenant_(std::move(tenant)) {}

  BlockStore* store_;
  uint64_t block_bytes_;
  uint64_t layout_fingerprint_;
  uint32_t num_layers_;
  std::string tenant_;
  std::vector<Block> blocks_;
  uint64_t received_ = 0;
  bool done_ = false;  // committed or aborted
};

// One block as a reader sees it.
struct BlockView {
  BlockKey key;
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  uint64_t checksum = 0;
  Tier tier = Tier::kHostDram;
  uint32_t num_layers = 0;
  uint64_t layout_fingerprint = 0;
};

class BlockReadHandle {
 public:
  ~BlockReadHandle();
  BlockReadHandle(const BlockReadHandle&) = delete;
  BlockReadHandle& operator=(const BlockReadHandle&) = delete;

  std::span<const BlockView> blocks() const { return views_; }

 private:
  friend class BlockStore;
  BlockReadHandle(BlockStore* store, std::vector<uint32_t> handles, std::vector<BlockView> views)
      : store_(store), handles_(std::move(handles)), views_(std::move(views)) {}

  struct FreeDeleter {
    void operator()(uint8_t* p) const;
  };

  BlockStore* store_;
  std::vector<uint32_t> handles_;
  std::vector<BlockView> views_;
  // Buffers for T2 blocks that could not be promoted into T1.
  std::vector<std::unique_ptr<uint8_t, FreeDeleter>> staging_;
  // T1 slots holding a copy that only this reader uses (another reader promoted first).
  std::vector<uint32_t> owned_t1_slots_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_BLOCK_HANDLES_H_
