// FetchReactor: streams verified blocks to one CacheStore.Fetch caller.
//
// Holds a BlockReadHandle for the whole stream (until OnDone), so the blocks can be
// neither evicted nor overwritten while they are sent. The first message lists the blocks
// with their layer checksums; the payload follows in the plan's order (PlanFetch):
// block-major sends each block whole in turn, layer-major sends layer l of every block
// before layer l+1. Every layer is verified against its checksum once, just before its
// first byte leaves (BlockReadHandle::Verify); a layer that fails ends the stream with
// DATA_LOSS (the block is dropped from the store).
//
// Over the socket, each message carries the plan's next ranges up to the chunk size (several
// layers of a layer-major plan), referencing the slots' bytes instead of copying them (the
// method is raw, see proto/payload_wire.h); one write is in flight at a time and gRPC flow
// control paces it.
//
// Same-node delivery (a ShmTarget): the ranges are copied into the caller's attached
// region instead, on the TransferPool's threads (never on a reaction thread), verified in
// the same pass (BlockReadHandle::CopyOut), about kShmBatchBytes at a time; after each
// batch one small message lists the ranges copied. Batches are copied one
// after another without waiting for their messages to be written (those queue, one write
// in flight), so the caller verifies batch k while batch k+1 is copied. Deletes itself in
// OnDone.
#ifndef KVTIER_SERVICES_FETCH_REACTOR_H_
#define KVTIER_SERVICES_FETCH_REACTOR_H_

#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache_store/block_store.h"
#include "kvtier/v1/cache_store.grpc.pb.h"
#include "services/rpc_timer.h"
#include "services/shm_regions.h"
#include "services/transfer_pool.h"

namespace kvtier {

// A byte range of one block: what one chunk message (or several) carries.
struct FetchRange {
  uint32_t block = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// The ranges of a fetch in wire order. Layer-major splits each block into its layers
// (size / num_layers bytes each).
std::vector<FetchRange> PlanFetch(std::span<const BlockView> blocks, v1::FetchOrder order);

// Where same-node delivery puts the blocks: block i at region->base() + offsets[i] (placement
// checked already), copied by `pool`.
struct ShmTarget {
  std::shared_ptr<const AttachedRegion> region;
  std::vector<uint64_t> offsets;
  TransferPool* pool = nullptr;
};

class FetchReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  static constexpr uint64_t kShmBatchBytes = 8 << 20;

  // A Fetch whose blocks are opened already.
  FetchReactor(std::unique_ptr<BlockReadHandle> read, v1::FetchOrder order, uint32_t chunk_bytes,
               RpcTimer timer, std::unique_ptr<ShmTarget> shm = nullptr);
  // A Fetch whose blocks are still being read (from T2, on the store's reader threads):
  // nothing is written until the callback of Opener() or StreamOpener() delivers them. A
  // cancelled call (the client went away, or its deadline passed) finishes at once, disk or
  // not; blocks that arrive after are released.
  FetchReactor(v1::FetchOrder order, uint32_t chunk_bytes, RpcTimer timer,
               std::unique_ptr<ShmTarget> shm = nullptr);
  // For the second constructor, before the reactor is returned, one of: what the store's
  // asynchronous read calls once every block is read (exactly once); or, over the socket,
  // what its streaming read calls as soon as the blocks are opened: the block list goes out
  // at once and each block's bytes as soon as its disk read has ended and it verified (in
  // the plan's order; a block that fails ends the stream with DATA_LOSS).
  BlockStore::ReadDone Opener();
  BlockStore::ReadOpened StreamOpener();

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Shared by the reactor and the pending read, which may end after the reactor.
  struct Waiter {
    absl::Mutex mu;
    FetchReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;  // nullptr once the call is done
    bool begun ABSL_GUARDED_BY(mu) = false;      // the blocks arrived and writing began
    bool cancelled ABSL_GUARDED_BY(mu) = false;  // finished before they arrived
    // Streaming: no write in flight, the next block still on its way from the disk; the
    // read's listener resumes writing (or OnCancel finishes).
    bool stalled ABSL_GUARDED_BY(mu) = false;
  };
  // Writes the block list, then the bytes.
  void Begin(std::shared_ptr<BlockReadHandle> read);
  // Writes the next message of bytes, or stalls (Waiter::stalled) until the block it needs
  // has loaded. With a Waiter, called with its mutex held.
  void WriteNextChunk();
  // Same-node: plans the next batch and starts its copy on the pool; false when every range
  // has been copied. The batch's end (OnBatchCopied) queues its message and starts the next.
  bool CopyNextBatch();
  void OnBatchCopied(grpc::ByteBuffer message, const absl::Status& status)
      ABSL_LOCKS_EXCLUDED(shm_mu_);
  // Starts the next queued write, or finishes the call once it has ended, nothing is queued
  // or being written, and no batch is being copied (a copy refers to this reactor).
  void Progress() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shm_mu_);
  void FinishWith(const absl::Status& status);

  std::shared_ptr<BlockReadHandle> read_;
  v1::FetchOrder order_;
  std::shared_ptr<Waiter> waiter_;  // the second constructor's
  std::vector<FetchRange> plan_;
  uint64_t chunk_bytes_;
  RpcTimer timer_;
  size_t next_range_ = 0;
  uint64_t next_offset_ = 0;  // within plan_[next_range_]
  grpc::ByteBuffer message_;
  std::unique_ptr<ShmTarget> shm_;
  // Same-node: messages of copied batches waiting to be written, whether one is being
  // written, whether a batch is being copied, and how the stream ends (set by the last
  // batch, the first failure, or a broken stream).
  absl::Mutex shm_mu_;
  std::deque<grpc::ByteBuffer> queued_ ABSL_GUARDED_BY(shm_mu_);
  bool writing_ ABSL_GUARDED_BY(shm_mu_) = false;
  bool copying_ ABSL_GUARDED_BY(shm_mu_) = false;
  std::optional<absl::Status> end_ ABSL_GUARDED_BY(shm_mu_);
  bool finished_ ABSL_GUARDED_BY(shm_mu_) = false;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_FETCH_REACTOR_H_
