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
#include "kvtier/v1/cache_store.grpc.pb.h"

namespace kvtier {

struct ClientOptions {
  std::string target = "127.0.0.1:50051";
  // Deadline of each call, retries included.
  absl::Duration timeout = absl::Seconds(10);
  int max_attempts = 4;
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // Sent as x-kvtier-tenant (servers without an auth token file). Empty: not sent.
  std::string tenant;
  // Sent as `authorization: Bearer <token>`. Empty: not sent.
  std::string auth_token;
  // Payload bytes per Put message; must fit the server's max message size.
  uint32_t put_chunk_bytes = 4 << 20;
  // TLS to the server: `tls`, verified against `tls_root_certs` (PEM contents; empty: the
  // system's roots).
  bool tls = false;
  std::string tls_root_certs;
  // Largest message accepted from the server.
  int max_message_bytes = 16 << 20;
  // The same-node data plane: the store's attach socket (kvtier-store --shm_socket) as seen
  // from this process. Empty: calls naming a SharedMemoryRegion fail with
  // FAILED_PRECONDITION (callers fall back to the socket).
  std::string shm_socket;
  // A channel of its own (its own connection) rather than one shared with other clients
  // of the same target and settings, as gRPC does by default.
  bool own_connection = false;
};

struct LookupReply {
  uint32_t matched_blocks = 0;
  uint32_t total_blocks = 0;
  std::vector<BlockKey> keys;
  std::vector<v1::Tier> tiers;
  uint64_t lease_id = 0;
  absl::Duration lease_ttl;
  uint64_t block_bytes = 0;
};

struct LookupParams {
  std::string salt;
  bool lease = true;
  absl::Duration lease_ttl = absl::ZeroDuration();  // zero: server default
};

struct PutParams {
  std::string salt;
  // The last block is the prompt's partial tail, padded (PutHeader.last_block_partial).
  bool last_block_partial = false;
  // Same-node Put: every block lies in this region, and the store copies the blocks from
  // there (no payload on the socket). The region must stay unchanged until the call
  // returns; the store hashes what it copied, so the client does not hash at all.
  const SharedMemoryRegion* shm = nullptr;
};

struct PutReply {
  uint32_t stored_blocks = 0;
  uint32_t existing_blocks = 0;
  std::vector<BlockKey> keys;
};

// What to fetch: the blocks of a lease, or explicit keys.
struct FetchTarget {
  uint64_t lease_id = 0;
  std::vector<BlockKey> keys;
};

struct FetchReply {
  std::vector<v1::FetchedBlock> blocks;
  uint64_t bytes = 0;  // verified bytes delivered
};

struct FetchParams {
  v1::FetchOrder order = v1::FETCH_ORDER_BLOCK_MAJOR;
  uint32_t max_chunk_bytes = 0;  // zero: server default
  // Called as soon as a range of a block is in the caller's buffer and verified (block,
  // offset, length; whole layers), e.g. to start on layer 0 while later layers arrive.
  // Runs on the calling thread. Once it has reported a range, a Fetch that breaks is not
  // retried (the caller may be using those bytes): its error is returned.
  std::function<void(uint32_t block, uint64_t offset, uint64_t length)> on_chunk;
  // Same-node delivery: every `out` buffer lies in this region, which the client attaches
  // to the store (ClientOptions::shm_socket) on first use; the store copies the blocks
  // into it directly and the client verifies each layer where it landed. The region must
  // not be written by the caller while the Fetch runs.
  const SharedMemoryRegion* shm = nullptr;
};

class CacheStoreClient {
 public:
  explicit CacheStoreClient(const ClientOptions& options);
  // For tests and embedders with their own channel.
  CacheStoreClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options);

  absl::StatusOr<LookupReply> Lookup(const KvLayout& layout, std::span<const uint32_t> tokens,
                                     const LookupParams& params = {});

  // Puts blocks [first_block, first_block + n) of the prompt, where
  // n = payload.size() / layout.BlockBytes(). The payload is the blocks' bytes
  // concatenated. INVALID_ARGUMENT locally when it is not a whole number of blocks.
  absl::StatusOr<PutReply> Put(const KvLayout& layout, std::span<const uint32_t> tokens,
                               uint32_t first_block, std::span<const uint8_t> payload,
                               const std::string& salt = "", bool last_block_partial = false);

  // The same, with the blocks wherever they are (e.g. pages of a pool): blocks[i] is block
  // first_block + i, exactly BlockBytes() long. Sent without copying, or same-node.
  absl::StatusOr<PutReply> PutBlocks(const KvLayout& layout, std::span<const uint32_t> tokens,
                                     uint32_t first_block,
                                     std::span<const std::span<const uint8_t>> blocks,
                                     const PutParams& params);
  absl::StatusOr<PutReply> PutBlocks(const KvLayout& layout, std::span<const uint32_t> tokens,
                                     uint32_t first_block,
                                     std::span<const std::span<const uint8_t>> blocks,
                                     const std::string& salt = "", bool last_block_partial = false);

  // Fetches into out[i] for block i; out[i] must be at least the block's size.
  absl::StatusOr<FetchReply> Fetch(const FetchTarget& target,
                                   std::span<const std::span<uint8_t>> out,
                                   const FetchParams& params = {});

  absl::Status Release(uint64_t lease_id);
  // Returns the TTL granted.
  absl::StatusOr<absl::Duration> Pin(std::span<const BlockKey> keys,
                                     absl::Duration ttl = absl::ZeroDuration());
  absl::StatusOr<uint32_t> Unpin(std::span<const BlockKey> keys);
  absl::StatusOr<uint32_t> Delete(std::span<const BlockKey> keys);
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
