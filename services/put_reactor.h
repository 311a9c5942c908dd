// PutReactor: the server side of one CacheStore.Put stream.
//
// The first message must be a PutHeader: with the call's tenant it derives the keys and
// reserves slots (BlockStore::BeginPut). Each following message carries payload bytes,
// which go from the received gRPC slices straight into the reserved slots, hashed layer by
// layer as they land (the method is raw, see proto/payload_wire.h: no protobuf string in
// between). When the client half-closes, the announced layer checksums are checked and
// every block commits at once.
//
// Same-node Put (PutHeader.shm): the blocks are in the caller's attached region; the
// stream carries no data, and once the caller half-closes the TransferPool's threads copy
// the blocks into their slots (one block per task, hashed as they land), then the Put
// commits and the call finishes from the pool. A malformed message, a cancelled call or an
// expired deadline abandons the Put: nothing of it becomes visible. Deletes itself in
// OnDone.
#ifndef KVTIER_SERVICES_PUT_REACTOR_H_
#define KVTIER_SERVICES_PUT_REACTOR_H_

#include <memory>
#include <string>

#include "cache_store/block_store.h"
#include "kvtier/v1/cache_store.grpc.pb.h"
#include "services/rpc_timer.h"
#include "services/shm_regions.h"
#include "services/transfer_pool.h"

namespace kvtier {

class PutReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  // `regions` and `pool` may be null (no same-node data plane).
  PutReactor(grpc::CallbackServerContext* ctx, BlockStore* store, ShmRegions* regions,
             TransferPool* pool, std::string tenant, RpcTimer timer, grpc::ByteBuffer* response);

  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  absl::Status HandleMessage();
  absl::Status HandleHeader(const v1::PutHeader& header);
  // Commits and writes the response.
  absl::Status Commit();
  void FinishWith(const absl::Status& status);

  grpc::CallbackServerContext* ctx_;
  BlockStore* store_;
  ShmRegions* regions_;
  TransferPool* pool_;
  std::string tenant_;
  grpc::ByteBuffer* response_;
  RpcTimer timer_;
  grpc::ByteBuffer request_;
  std::unique_ptr<PendingPut> pending_;
  // Same-node: where the blocks are (block i at region base + shm_offsets_[i]).
  std::shared_ptr<const AttachedRegion> shm_region_;
  std::vector<uint64_t> shm_offsets_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_PUT_REACTOR_H_
