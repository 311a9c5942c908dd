// StoreClient: what callers of kvtier's cache store use, whether it is one store
// (CacheStoreClient) or a cluster of shards (ShardedClient), and the types of its calls.
//
// Every call has a deadline that covers all its attempts; no call holds its caller past it.
// Put is idempotent and Fetch rewrites the caller's buffers from the start. Fetch reports
// and returns only bytes verified against the checksums taken at Put.
#ifndef KVTIER_CLIENT_STORE_CLIENT_H_
#define KVTIER_CLIENT_STORE_CLIENT_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache_store/block_key.h"
#include "cache_store/kv_layout.h"
#include "client/shared_memory_region.h"
#include "kvtier/v1/cache_store.pb.h"

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
  // A client certificate chain and its private key (PEM contents) for a store that requires
  // one (kvtier-store --tls_client_ca_file); both empty: none.
  std::string tls_cert_chain;
  std::string tls_private_key;
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
  // The longest cached prefix, in blocks; keys and tiers describe those blocks (with
  // LookupParams::report_present: the blocks of present_blocks).
  uint32_t matched_blocks = 0;
  uint32_t total_blocks = 0;
  std::vector<BlockKey> keys;
  std::vector<v1::Tier> tiers;
  uint64_t lease_id = 0;
  absl::Duration lease_ttl;
  uint64_t block_bytes = 0;
  // With LookupParams::report_present: the indices of every cached block of the prompt.
  std::vector<uint32_t> present_blocks;
};

struct LookupParams {
  std::string salt;
  bool lease = true;
  absl::Duration lease_ttl = absl::ZeroDuration();  // zero: server default
  // One store of a cluster: report (and lease) every cached block of the prompt, not only
  // the longest cached prefix (LookupRequest.report_present).
  bool report_present = false;
};

struct PutParams {
  std::string salt;
  // The last block is the prompt's partial tail, padded (PutHeader.last_block_partial).
  bool last_block_partial = false;
  // Tokens the request generated after this prompt (or its max_tokens budget when the Put
  // comes before the request ends); 0: not said (PutHeader.output_tokens).
  uint32_t output_tokens = 0;
  // Same-node Put: every block lies in this region, and the store copies the blocks from
  // there (no payload on the socket). The region must stay unchanged until the call
  // returns; the store hashes what it copied, so the client does not hash at all.
  const SharedMemoryRegion* shm = nullptr;
  // Empty, or the prompt indices of the blocks (strictly ascending; first_block is then 0):
  // blocks[i] is block block_indices[i] (PutHeader.block_indices).
  std::span<const uint32_t> block_indices;
};

struct PutReply {
  uint32_t stored_blocks = 0;
  uint32_t existing_blocks = 0;
  std::vector<BlockKey> keys;
  // Carried blocks no store committed (a cluster whose owners of a block were all down).
  uint32_t failed_blocks = 0;
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

// The calls a cache user makes. Implementations are thread-safe.
class StoreClient {
 public:
  virtual ~StoreClient() = default;

  // The longest cached prefix of the prompt's full blocks (matched_blocks, keys, tiers),
  // with a lease on them when params.lease.
  virtual absl::StatusOr<LookupReply> Lookup(const KvLayout& layout,
                                             std::span<const uint32_t> tokens,
                                             const LookupParams& params = {}) = 0;

  // Puts blocks of the prompt from wherever they are (e.g. pages of a pool): blocks[i] is
  // block first_block + i (or params.block_indices[i]), exactly BlockBytes() long.
  virtual absl::StatusOr<PutReply> PutBlocks(const KvLayout& layout,
                                             std::span<const uint32_t> tokens, uint32_t first_block,
                                             std::span<const std::span<const uint8_t>> blocks,
                                             const PutParams& params) = 0;

  // Fetches into out[i] for block i; out[i] must be at least the block's size.
  virtual absl::StatusOr<FetchReply> Fetch(const FetchTarget& target,
                                           std::span<const std::span<uint8_t>> out,
                                           const FetchParams& params = {}) = 0;

  virtual absl::Status Release(uint64_t lease_id) = 0;
  // Returns the TTL granted.
  virtual absl::StatusOr<absl::Duration> Pin(std::span<const BlockKey> keys,
                                             absl::Duration ttl = absl::ZeroDuration()) = 0;
  virtual absl::StatusOr<uint32_t> Unpin(std::span<const BlockKey> keys) = 0;
  virtual absl::StatusOr<uint32_t> Delete(std::span<const BlockKey> keys) = 0;

  // Puts blocks [first_block, first_block + n) of the prompt, where
  // n = payload.size() / layout.BlockBytes(). The payload is the blocks' bytes
  // concatenated. INVALID_ARGUMENT locally when it is not a whole number of blocks.
  absl::StatusOr<PutReply> Put(const KvLayout& layout, std::span<const uint32_t> tokens,
                               uint32_t first_block, std::span<const uint8_t> payload,
                               const std::string& salt = "", bool last_block_partial = false);
  absl::StatusOr<PutReply> Put(const KvLayout& layout, std::span<const uint32_t> tokens,
                               uint32_t first_block, std::span<const uint8_t> payload,
                               const PutParams& params);
  absl::StatusOr<PutReply> PutBlocks(const KvLayout& layout, std::span<const uint32_t> tokens,
                                     uint32_t first_block,
                                     std::span<const std::span<const uint8_t>> blocks,
                                     const std::string& salt = "", bool last_block_partial = false);
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_STORE_CLIENT_H_
