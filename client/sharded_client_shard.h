// The parts of ShardedClient (client/sharded_client.h) that its two source files share: a
// shard's state and health, and a Lookup's lease. Private to sharded_client.cc and
// sharded_fetch.cc.
#ifndef KVTIER_CLIENT_SHARDED_CLIENT_SHARD_H_
#define KVTIER_CLIENT_SHARDED_CLIENT_SHARD_H_

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cache_store/log.h"
#include "client/sharded_client.h"

namespace kvtier {

// Whether an error means "this shard is not answering" (skip it for a while) rather than
// "this request is wrong" (every shard would say the same).
inline bool IsShardFailure(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsCancelled(s) ||
         absl::IsUnknown(s) || absl::IsInternal(s) || absl::IsAborted(s) || absl::IsDataLoss(s);
}

// ---------------------------------------------------------------------------------------
// A shard: its connection, its name once known, and its health.

struct ShardedClient::Shard {
  std::string target;
  std::shared_ptr<CacheStoreClient> client;
  std::string id;  // set once, before the shard joins a View
  uint64_t id_hash = 0;
  bool same_node = false;

  mutable absl::Mutex mu;
  absl::Time down_until ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  absl::Duration backoff ABSL_GUARDED_BY(mu) = absl::ZeroDuration();

  std::atomic<uint64_t> lookups{0}, lookup_failures{0};
  std::atomic<uint64_t> put_blocks_committed{0}, put_blocks_failed{0};
  std::atomic<uint64_t> fetched_blocks{0}, fetch_failures{0}, failover_blocks{0};

  bool Usable(absl::Time now) const {
    absl::MutexLock lock(&mu);
    return now >= down_until;
  }
  // A failed call: skip the shard for a jittered, doubling backoff.
  void Failed(const ShardedClientOptions& o, const absl::Status& why) {
    absl::MutexLock lock(&mu);
    const bool was_up = backoff == absl::ZeroDuration();
    backoff = std::clamp(backoff * 2, o.min_backoff, o.max_backoff);
    absl::BitGen gen;
    down_until = absl::Now() + backoff / 2 +
                 absl::Nanoseconds(
                     absl::Uniform<int64_t>(gen, 0, absl::ToInt64Nanoseconds(backoff / 2) + 1));
    if (was_up) {
      KVTIER_LOG(WARNING) << "store shard " << id << " (" << target << ") failed, skipping it for "
                          << backoff << ": " << why;
    }
  }
  void Succeeded() {
    absl::MutexLock lock(&mu);
    if (backoff != absl::ZeroDuration()) {
      KVTIER_LOG(INFO) << "store shard " << id << " (" << target << ") answers again";
    }
    backoff = absl::ZeroDuration();
    down_until = absl::InfinitePast();
  }
  // Records the outcome of a call: shard failures start or extend the backoff.
  void Note(const ShardedClientOptions& o, const absl::Status& s) {
    if (s.ok()) {
      Succeeded();
    } else if (IsShardFailure(s)) {
      Failed(o, s);
    }
  }
};

// A Lookup's lease: the shards' leases it stands for, and the blocks it matched.
struct ShardedClient::LeaseRecord {
  std::vector<std::pair<std::shared_ptr<Shard>, uint64_t>> shard_leases;
  std::vector<BlockKey> keys;
  absl::Time expires;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_SHARDED_CLIENT_SHARD_H_
