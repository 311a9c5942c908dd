// CacheStoreClient: the C++ client of kvtier.v1.CacheStore.
//
// Every call has a deadline (ClientOptions::timeout, or the call's own) that covers all
// its attempts: a caller is never held past it. A call that fails with UNAVAILABLE is
// retried with jittered exponential backoff while the deadline allows; no other error is
// retried. Put is idempotent and Fetch rewrites the caller's buffers from the start, so
// retrying either is safe.
//
// Integrity (docs/api.md "Integrity"): Put computes the XXH3 of every layer of every block
// (one pass over the payload) and the store refuses a Put whose bytes do not match; Fetch
// verifies every layer against the checksums taken at Put as soon as it is complete, and
// reports (on_chunk) and returns only verified bytes: a mismatch is DATA_LOSS (treat as a
// miss).
//
// Put sends the caller's payload without copying it into protobufs, and Fetch streams
// straight into caller memory (one copy, from the received gRPC slices). With the same-node
// data plane (ClientOptions::shm_socket and buffers in a SharedMemoryRegion), the store
// copies blocks straight between its memory and the caller's: no copy on this side at all.
//
// Thread-safe: one client (one channel) serves any number of threads.
#ifndef KVTIER_CLIENT_CACHE_STORE_CLIENT_H_
#define KVTIER_CLIENT_CACHE_STORE_CLIENT_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache_store/block_key.h"
#include "cache_store/kv_layout.h"
#include "client/shared_memory_region.h"
#include "client/store_client.h"
#include "kvtier/v1/cache_store.grpc.pb.h"

namespace kvtier {

class CacheStoreClient final : public StoreClient {
 public:
  explicit CacheStoreClient(const ClientOptions& options);
  // For tests and embedders with their own channel.
  CacheStoreClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options);

  absl::StatusOr<LookupReply> Lookup(const KvLayout& layout, std::span<const uint32_t> tokens,
                                     const LookupParams& params = {}) override;

  using StoreClient::PutBlocks;
  absl::StatusOr<PutReply> PutBlocks(const KvLayout& layout, std::span<const uint32_t> tokens,
                                     uint32_t first_block,
                                     std::span<const std::span<const uint8_t>> blocks,
                                     const PutParams& params) override;

  absl::StatusOr<FetchReply> Fetch(const FetchTarget& target,
                                   std::span<const std::span<uint8_t>> out,
                                   const FetchParams& params = {}) override;

  absl::Status Release(uint64_t lease_id) override;
  absl::StatusOr<absl::Duration> Pin(std::span<const BlockKey> keys,
                                     absl::Duration ttl = absl::ZeroDuration()) override;
  absl::StatusOr<uint32_t> Unpin(std::span<const BlockKey> keys) override;
  absl::StatusOr<uint32_t> Delete(std::span<const BlockKey> keys) override;
  // The same for one shard of a cluster, which is sent every key: the blocks it does not
  // hold are skipped (not NOT_FOUND); the counts say how many it held.
  absl::StatusOr<absl::Duration> PinHeld(std::span<const BlockKey> keys, absl::Duration ttl,
                                         uint32_t* pinned);
  absl::StatusOr<uint32_t> UnpinHeld(std::span<const BlockKey> keys);
  absl::StatusOr<uint32_t> DeleteHeld(std::span<const BlockKey> keys);
  absl::StatusOr<v1::StatsResponse> Stats();
  // True when grpc.health.v1 says SERVING.
  absl::StatusOr<bool> Healthy();

  // Streams block events to on_message until it returns false, the stream ends, or
  // `duration` passes (then OK). The first message is empty: the watch is live.
  absl::Status WatchEvents(const std::function<bool(const v1::WatchEventsResponse&)>& on_message,
                           absl::Duration duration);

  // The deadline used for calls started now.
  absl::Time DeadlineFromNow() const { return absl::Now() + options_.timeout; }

 private:
  // Runs attempt(context) until it returns something other than UNAVAILABLE, the attempts
  // run out, or the next backoff would pass the deadline.
  absl::Status WithRetries(const std::function<grpc::Status(grpc::ClientContext&)>& attempt,
                           absl::Time deadline);
  void PrepareContext(grpc::ClientContext& ctx, absl::Time deadline) const;
  absl::StatusOr<absl::Duration> PinKeys(std::span<const BlockKey> keys, absl::Duration ttl,
                                         bool skip_missing, uint32_t* pinned);
  absl::StatusOr<uint32_t> UnpinKeys(std::span<const BlockKey> keys, bool skip_missing);
  absl::StatusOr<uint32_t> DeleteKeys(std::span<const BlockKey> keys, bool skip_missing);
  // The region's id at this client's store, attaching it on first use.
  absl::StatusOr<std::string> RegionId(const SharedMemoryRegion& region) const;
  // The region's id and where each block lies in it, for a same-node call; INVALID_ARGUMENT
  // for a block outside the region.
  absl::StatusOr<v1::SharedMemoryBlocks> ShmBlocks(
      const SharedMemoryRegion& region, std::span<const std::span<const uint8_t>> blocks) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CacheStore::Stub> stub_;
  // Put and Fetch go raw (payload_wire.h), so block bytes are never staged in protobufs.
  grpc::GenericStub generic_;
};

// Whether a same-node call failed only because same-node delivery is not available between
// this client and its store (no socket, another node's store, a store without
// --shm_socket, a region it does not know): the same call over the socket may succeed.
bool IsSameNodeRefusal(const absl::Status& status);

// The default channel arguments of kvtier clients (message size, keepalive).
std::shared_ptr<grpc::Channel> MakeStoreChannel(const ClientOptions& options);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_CACHE_STORE_CLIENT_H_
