// FetchReactor: streams verified blocks to one CacheStore.Fetch caller.
//
// Holds a BlockReadHandle for the whole stream (until OnDone), so the blocks can be
// neither evicted nor overwritten while they are sent: each chunk message references the
// slot's bytes instead of copying them (the method is raw, see proto/payload_wire.h). The first
// message lists the blocks; every following message carries one chunk (block index, offset, bytes).
// Block-major order sends each block whole in turn; layer-major order sends layer l of every block
// before layer l+1. One write is in flight at a time (gRPC flow control paces it). Deletes itself
// in OnDone.
//
// Same-node delivery (a ShmWriter): the same ranges in the same order are written into the
// client's shared-memory file instead, and each message lists the ranges written since the
// last one (ShmChunk: block, offset, length, XXH3), about kShmMessageBytes of payload per
// message, so the stream carries a few small messages rather than the bytes.
#ifndef KVTIER_SERVICES_FETCH_REACTOR_H_
#define KVTIER_SERVICES_FETCH_REACTOR_H_

#include <memory>
#include <vector>

#include "cache_store/block_store.h"
#include "kvtier/v1/cache_store.grpc.pb.h"
#include "services/rpc_timer.h"
#include "services/shm_writer.h"

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

class FetchReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  static constexpr uint64_t kShmMessageBytes = 4 << 20;

  // `shm` (may be null) with one offset per block, already checked (CheckPlacement).
  FetchReactor(std::unique_ptr<BlockReadHandle> read, v1::FetchOrder order, uint32_t chunk_bytes,
               RpcTimer timer, std::unique_ptr<ShmWriter> shm = nullptr,
               std::vector<uint64_t> shm_offsets = {});

  void OnWriteDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  void WriteNext();
  // The next message of same-node delivery, after writing its ranges; false on a failed
  // write (the call is finished).
  bool NextShmMessage();

  std::unique_ptr<BlockReadHandle> read_;
  std::vector<FetchRange> plan_;
  uint64_t chunk_bytes_;
  RpcTimer timer_;
  size_t next_range_ = 0;
  uint64_t next_offset_ = 0;  // within plan_[next_range_]
  grpc::ByteBuffer message_;
  std::unique_ptr<ShmWriter> shm_;
  std::vector<uint64_t> shm_offsets_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_FETCH_REACTOR_H_
