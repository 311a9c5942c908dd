// PutReactor: the server side of one CacheStore.Put stream.
//
// The first message must be a PutHeader: with the call's tenant it derives the keys and
// reserves slots (BlockStore::BeginPut). Each following message carries payload bytes,
// which go from the received gRPC slices straight into the reserved slots (the method is
// raw, see proto/payload_wire.h: no protobuf string in between). When the client half-closes, every
// block is verified and committed at once. A malformed message, a cancelled call or an expired
// deadline abandons the Put: nothing of it becomes visible. Deletes itself in OnDone.
#ifndef KVTIER_SERVICES_PUT_REACTOR_H_
#define KVTIER_SERVICES_PUT_REACTOR_H_

#include <memory>
#include <string>

#include "cache_store/block_store.h"
#include "kvtier/v1/cache_store.grpc.pb.h"
#include "services/rpc_timer.h"

namespace kvtier {

class PutReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  PutReactor(grpc::CallbackServerContext* ctx, BlockStore* store, std::string tenant,
             RpcTimer timer, grpc::ByteBuffer* response);

  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  absl::Status HandleMessage();
  absl::Status HandleEnd();
  void FinishWith(const absl::Status& status);

  grpc::CallbackServerContext* ctx_;
  BlockStore* store_;
  std::string tenant_;
  grpc::ByteBuffer* response_;
  RpcTimer timer_;
  grpc::ByteBuffer request_;
  std::unique_ptr<PendingPut> pending_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_PUT_REACTOR_H_
