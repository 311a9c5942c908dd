// DecodeEngine: the decode worker's core. It owns the page pool, the decoder (worker/decoder.h:
// the reference decoder on the CPU backend, the CUDA decoder on device pages) and the open
// sequences, restores known prefixes from the store, and offloads new full blocks.
//
// Opening a sequence for prompt P (its K/V must cover P[0, n-1) before the last token runs,
// so at most floor((n-1) / tokens_per_block) blocks are reused):
//   1. local hits: pages of the pool's prefix cache, by block key (tenant, layout and salt
//      are part of the key, so tenants never share pages);
//   2. store hits: Lookup (with a lease) for the rest of the prefix, then a layer-major Fetch
//      on another thread (PipelinedRestore: every chunk verified by the client before it
//      counts) straight into fresh host pages, or, on the CUDA backend, into pinned staging
//      from which each verified chunk is copied to its device page asynchronously;
//   3. the remaining tokens are computed layer by layer, layer l as soon as layer l of the
//      restored pages is in, so compute overlaps the transfer. If the fetch fails, the
//      restored pages and what was computed on them are dropped and the prompt is
//      recomputed after the local prefix.
// Any store failure (unreachable, past its deadline, a block that fails its checksum,
// pool full) costs recomputation, never a wrong or failed answer; it is counted.
//
// Closing a sequence publishes its full blocks in the prefix cache and hands those the store
// does not have yet to the offloader; the pages stay until the store has them. Under memory
// pressure an idle open sequence does the same and gives up its pages (swap-out); its next
// step gets them back from the cache or the store, or recomputes, and decodes identically.
//
// Thread-safe: calls are serialised by one mutex (the decoder runs one step at a time); the
// offloader runs on its own thread.
#ifndef KVTIER_WORKER_DECODE_ENGINE_H_
#define KVTIER_WORKER_DECODE_ENGINE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client/cache_store_client.h"
#include "kernels/cuda_workspace.h"
#include "kernels/dispatch.h"
#include "worker/decoder.h"
#include "worker/kv_offloader.h"
#include "worker/page_pool.h"
#include "worker/pipelined_restore.h"
#include "worker/restore_uploader.h"

namespace kvtier::worker {

struct DecodeEngineOptions {
  uint32_t pages = 256;  // page pool capacity, in blocks
  // Namespaces the worker's own prefix cache (tenants never share pages). The store keys
  // blocks by the tenant it authenticates; restores use the keys it returns.
  std::string tenant = "default";
  std::string salt;
  kernels::KernelContext kernels;
  // The same-node data plane (the store client has a shm_socket): restores and offloads go
  // through a SharedMemoryRegion that the store copies into and out of directly: the host
  // pages on the CPU backend, pinned staging (registered with CUDA) on the GPU.
  bool same_node = false;
};

class DecodeEngine {
 public:
  struct Opened {
    uint64_t id = 0;
    uint32_t prompt_tokens = 0;
    uint32_t local_tokens = 0;     // from the worker's pages
    uint32_t store_tokens = 0;     // restored from the store
    uint32_t computed_tokens = 0;  // run through the model
    std::vector<float> logits;     // after the last prompt token
    uint32_t next_token = 0;       // greedy choice from logits
    double seconds = 0;            // time to first token
  };
  struct Stats {
    uint64_t open_sequences = 0;
    uint64_t local_tokens = 0, store_tokens = 0, computed_tokens = 0;
    uint64_t restores = 0, restored_bytes = 0;
    uint64_t shm_restores = 0;  // delivered into shared memory by a store on this node
    uint64_t shm_offloads = 0;  // copied out of shared memory by a store on this node
    double restore_seconds = 0;
    uint64_t restore_failures = 0;  // store trouble that cost a recompute
    uint64_t decode_steps = 0, decoded_tokens = 0;
    uint64_t swapped_out = 0, swapped_in = 0;  // idle sequences that gave up their pages
    double decode_seconds = 0;
    PagePool::Counts pages;
    KvOffloader::Counts offload;
  };

  // `store` may be null: then nothing is restored or offloaded.
  static absl::StatusOr<std::unique_ptr<DecodeEngine>> Create(
      std::shared_ptr<const LlamaWeights> weights, std::shared_ptr<StoreClient> store,
      const DecodeEngineOptions& options);
  ~DecodeEngine();

  // reuse = false computes every token (a baseline for time to first token) and leaves the
  // sequence's blocks out of the caches.
  absl::StatusOr<Opened> Open(std::span<const uint32_t> prompt, bool reuse = true);
  // Runs `tokens` as further input of the sequence (its pending greedy token is discarded)
  // and returns the logits after the last of them.
  absl::StatusOr<std::vector<float>> Append(uint64_t id, std::span<const uint32_t> tokens);
  // One batched decode step: each sequence consumes its pending greedy token and produces
  // the next. Returns the new pending tokens, in the order of `ids`.
  absl::StatusOr<std::vector<uint32_t>> Step(std::span<const uint64_t> ids);
  // Every token of the sequence so far (prompt, appended and decoded; not the pending one).
  absl::StatusOr<std::vector<uint32_t>> Tokens(uint64_t id) const;
  absl::Status Close(uint64_t id);

  // Waits for queued offloads (tests, shutdown).
  void FlushOffloads();
  Stats stats() const;
  const LlamaConfig& config() const { return weights_->config; }
  const KvLayout& layout() const { return pool_->layout(); }

 private:
  struct Sequence {
    std::vector<uint32_t> tokens;  // K/V computed for these
    std::vector<uint32_t> pages;   // page of block b
    uint32_t next_token = 0;
    uint32_t generated = 0;  // tokens decoded so far: the offloads' output_tokens
    bool cacheable = true;
    bool swapped = false;  // pages given up under memory pressure; SwapIn restores them
    uint64_t last_used = 0;
  };

  DecodeEngine(std::shared_ptr<const LlamaWeights> weights, std::shared_ptr<StoreClient> store,
               std::unique_ptr<PagePool> pool, std::unique_ptr<Decoder> decoder,
               const DecodeEngineOptions& options);

  // A restore in flight: its pages (appended to the sequence's), their keys, its lease.
  struct Restore {
    std::chrono::steady_clock::time_point start;
    uint64_t lease_id = 0;
    std::vector<uint32_t> pages;
    std::vector<BlockKey> keys;
    std::unique_ptr<PipelinedRestore> fetch;
    bool shm = false;  // asked for same-node delivery
  };
  // Looks up the prompt in the store and starts fetching blocks [have, matched) of `keys`
  // into new pages, appended to `pages`; null when nothing is to be restored.
  std::unique_ptr<Restore> StartRestore(std::span<const uint32_t> prompt,
                                        std::span<const BlockKey> keys, uint32_t have,
                                        std::vector<uint32_t>& pages)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Releases the lease; publishes the pages when `ok`, else counts a failure (the caller
  // releases them). REQUIRES: restore.fetch finished, if any.
  void FinishRestore(Restore& restore, bool ok) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A page from the pool. Under pressure it first waits for pending offloads, then swaps
  // out the least recently used idle open sequence (not one in busy_).
  absl::StatusOr<uint32_t> AllocatePage() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes the sequence's full blocks and hands the new ones to the offloader.
  void PublishAndOffload(Sequence& seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool SwapOutColdest() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives a swapped-out sequence its pages back: its own cached pages, then the store, then
  // recomputation of whatever is left.
  absl::Status SwapIn(Sequence& seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes sure `seq` has pages for positions [0, end).
  absl::Status EnsurePages(Sequence& seq, uint32_t end) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<float>> RunTokens(Sequence& seq, std::span<const uint32_t> tokens)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleasePages(Sequence& seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Releases pages [first, end) of the sequence's page table.
  void ReleasePagesFrom(Sequence& seq, size_t first) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends the worker's own pages for the leading `keys` it holds; returns how many.
  uint32_t AcquireCachedPrefix(std::span<const BlockKey> keys, std::vector<uint32_t>& pages)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::shared_ptr<const LlamaWeights> weights_;
  std::shared_ptr<StoreClient> store_;
  std::unique_ptr<PagePool> pool_;
  const DecodeEngineOptions options_;
  const BlockKey namespace_key_;
  std::unique_ptr<KvOffloader> offloader_;  // null without a store

  mutable absl::Mutex mu_;
  std::unique_ptr<Decoder> decoder_ ABSL_GUARDED_BY(mu_);
  // CUDA backend: where restores land before their copy to the device (mapped pinned, the
  // pool's size), the copy stream and its workspace. One restore at a time (under mu_).
  kernels::CudaBuffer restore_staging_;
  // ... or, same-node, a shared-memory region registered with CUDA.
  std::unique_ptr<SharedMemoryRegion> staging_region_;
  kernels::CudaHostRegistration staging_registration_;
  // Set when the store refused same-node delivery once: later restores use the socket.
  bool shm_refused_ ABSL_GUARDED_BY(mu_) = false;
  kernels::CudaStream restore_stream_;
  std::unique_ptr<kernels::CudaWorkspace> restore_workspace_;
  absl::flat_hash_map<uint64_t, Sequence> sequences_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t use_clock_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<const Sequence*> busy_ ABSL_GUARDED_BY(mu_);  // in the current call
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_DECODE_ENGINE_H_
