// ShardedClient::Fetch (client/sharded_client.h): the blocks gathered from their shards in
// parallel, reported to the caller layer by layer, failed shards' blocks fetched again
// from their next holder.
#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "client/sharded_client.h"
#include "client/sharded_client_shard.h"

namespace kvtier {

// ---------------------------------------------------------------------------------------
// Fetch

// What the shards of one Fetch have delivered, and what the caller has been told.
struct ShardedClient::FetchState {
  std::span<const std::span<uint8_t>> out;
  const FetchParams* params = nullptr;
  std::vector<BlockKey> keys;
  std::vector<std::vector<std::shared_ptr<Shard>>> holders;  // best first

  absl::Mutex mu;
  std::vector<uint64_t> delivered ABSL_GUARDED_BY(mu);    // verified bytes from offset 0
  std::vector<uint64_t> layer_bytes ABSL_GUARDED_BY(mu);  // learned from the first range
  std::vector<uint64_t> reported ABSL_GUARDED_BY(mu);     // bytes given to on_chunk
  std::vector<bool> done ABSL_GUARDED_BY(mu);
  std::vector<size_t> next_holder ABSL_GUARDED_BY(mu);  // holders[b] tried so far
  std::vector<v1::FetchedBlock> blocks ABSL_GUARDED_BY(mu);
  std::vector<uint32_t> to_retry ABSL_GUARDED_BY(mu);
  int running ABSL_GUARDED_BY(mu) = 0;
  uint64_t changes ABSL_GUARDED_BY(mu) = 0;
  absl::Status last_error ABSL_GUARDED_BY(mu);
};

void ShardedClient::StartFetch(FetchState& st, const std::shared_ptr<Shard>& shard,
                               std::vector<uint32_t> blocks) {
  // Blocks of which the caller holds bytes already land in scratch first, and only their
  // missing tail is copied over: bytes the caller was given are never rewritten.
  std::vector<bool> scratch(blocks.size());
  {
    absl::MutexLock lock(&st.mu);
    ++st.running;
    for (size_t i = 0; i < blocks.size(); ++i) scratch[i] = st.delivered[blocks[i]] > 0;
  }
  pool_.Submit([this, &st, shard, blocks = std::move(blocks), scratch = std::move(scratch)] {
    std::vector<std::vector<uint8_t>> temp(blocks.size());
    std::vector<std::span<uint8_t>> out;
    FetchTarget target;
    bool direct = true;
    for (size_t i = 0; i < blocks.size(); ++i) {
      target.keys.push_back(st.keys[blocks[i]]);
      if (scratch[i]) {
        temp[i].resize(st.out[blocks[i]].size());
        out.emplace_back(temp[i]);
        direct = false;
      } else {
        out.push_back(st.out[blocks[i]]);
      }
    }
    FetchParams p;
    p.order = st.params->order;
    p.max_chunk_bytes = st.params->max_chunk_bytes;
    p.on_chunk = [&](uint32_t i, uint64_t offset, uint64_t length) {
      if (i >= blocks.size()) return;
      const uint32_t b = blocks[i];
      absl::MutexLock lock(&st.mu);
      // Ranges of a block arrive in order; only what extends the verified prefix counts.
      if (offset > st.delivered[b] || offset + length <= st.delivered[b]) return;
      if (scratch[i]) {
        std::memcpy(st.out[b].data() + st.delivered[b], temp[i].data() + st.delivered[b],
                    offset + length - st.delivered[b]);
      }
      if (st.layer_bytes[b] == 0 && p.order == v1::FETCH_ORDER_LAYER_MAJOR) {
        st.layer_bytes[b] = length;
      }
      st.delivered[b] = offset + length;
      ++st.changes;
    };
    p.shm = shard->same_node && direct ? st.params->shm : nullptr;
    absl::StatusOr<FetchReply> reply = shard->client->Fetch(target, out, p);
    if (p.shm != nullptr && IsSameNodeRefusal(reply.status())) {
      bool nothing = true;
      {
        absl::MutexLock lock(&st.mu);
        for (uint32_t b : blocks) nothing = nothing && st.delivered[b] == 0;
      }
      if (nothing) {
        p.shm = nullptr;
        reply = shard->client->Fetch(target, out, p);
      }
    }
    shard->Note(options_, reply.status());
    if (reply.ok()) {
      shard->fetched_blocks += blocks.size();
    } else {
      ++shard->fetch_failures;
    }
    absl::MutexLock lock(&st.mu);
    for (size_t i = 0; i < blocks.size(); ++i) {
      const uint32_t b = blocks[i];
      if (reply.ok() && i < reply->blocks.size()) {
        const uint64_t size = reply->blocks[i].size_bytes();
        if (st.delivered[b] < size && scratch[i]) {
          std::memcpy(st.out[b].data() + st.delivered[b], temp[i].data() + st.delivered[b],
                      size - st.delivered[b]);
        }
        st.delivered[b] = std::max(st.delivered[b], size);
        st.blocks[b] = reply->blocks[i];
        st.done[b] = true;
      } else {
        st.to_retry.push_back(b);
      }
    }
    if (!reply.ok()) {
      st.last_error = absl::Status(reply.status().code(),
                                   absl::StrCat("store shard ", shard->id, " (", shard->target,
                                                "): ", reply.status().message()));
    }
    --st.running;
    ++st.changes;
  });
}

absl::StatusOr<FetchReply> ShardedClient::Fetch(const FetchTarget& target,
                                                std::span<const std::span<uint8_t>> out,
                                                const FetchParams& params) {
  FetchState st;
  st.out = out;
  st.params = &params;
  {
    absl::MutexLock lock(&leases_mu_);
    SweepLeases(absl::Now());
    if (target.lease_id != 0) {
      auto it = leases_.find(target.lease_id);
      if (it == leases_.end()) {
        return absl::NotFoundError(
            absl::StrCat("no lease ", target.lease_id, " (released or expired)"));
      }
      st.keys = target.keys.empty() ? it->second->keys : target.keys;
    } else {
      st.keys = target.keys;
    }
    for (const BlockKey& key : st.keys) {
      auto it = located_.find(key);
      if (it == located_.end()) {
        return absl::NotFoundError(absl::StrCat(
            "block ", key.ToHex().substr(0, 16),
            "… is not one this client found: a sharded Fetch takes the keys of a Lookup "
            "through the same client whose lease is still held"));
      }
      st.holders.push_back(it->second.holders);
    }
  }
  if (st.keys.empty()) return absl::InvalidArgumentError("a Fetch names at least one block");
  if (out.size() != st.keys.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a Fetch of ", st.keys.size(), " blocks needs as many buffers, not ", out.size()));
  }
  const size_t n = st.keys.size();
  {
    absl::MutexLock lock(&st.mu);
    st.delivered.assign(n, 0);
    st.layer_bytes.assign(n, 0);
    st.reported.assign(n, 0);
    st.done.assign(n, false);
    st.next_holder.assign(n, 0);
    st.blocks.assign(n, v1::FetchedBlock());
    for (uint32_t b = 0; b < n; ++b) st.to_retry.push_back(b);
  }

  const bool layered = params.order == v1::FETCH_ORDER_LAYER_MAJOR;
  uint64_t layers_reported = 0;
  uint64_t seen = std::numeric_limits<uint64_t>::max();
  std::vector<uint32_t> lost;
  absl::Status error;
  for (;;) {
    std::vector<std::tuple<uint32_t, uint64_t, uint64_t>> report;
    std::vector<std::pair<std::shared_ptr<Shard>, std::vector<uint32_t>>> launch;
    bool finished = false;
    {
      absl::MutexLock lock(&st.mu);
      struct Waiter {
        FetchState* st;
        uint64_t seen;
      } waiter{&st, seen};
      st.mu.Await(absl::Condition(
          +[](Waiter* w) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return w->st->changes != w->seen || !w->st->to_retry.empty();
          },
          &waiter));
      seen = st.changes;
      // Blocks whose shard failed go to their next live holder.
      const absl::Time now = absl::Now();
      absl::flat_hash_map<Shard*, size_t> group;
      for (uint32_t b : st.to_retry) {
        std::shared_ptr<Shard> next;
        while (st.next_holder[b] < st.holders[b].size()) {
          std::shared_ptr<Shard> h = st.holders[b][st.next_holder[b]++];
          if (h->Usable(now)) {
            next = std::move(h);
            break;
          }
        }
        if (next == nullptr) {
          lost.push_back(b);
          st.done[b] = true;
          continue;
        }
        if (st.next_holder[b] > 1) ++next->failover_blocks;
        auto [it, fresh] = group.try_emplace(next.get(), launch.size());
        if (fresh) launch.emplace_back(next, std::vector<uint32_t>{});
        launch[it->second].second.push_back(b);
      }
      st.to_retry.clear();
      if (!st.last_error.ok()) error = st.last_error;
      // What the caller may use now: in layer-major order, the layers every block has.
      if (params.on_chunk) {
        if (layered) {
          uint64_t ready = std::numeric_limits<uint64_t>::max();
          uint64_t most = 0;
          for (size_t b = 0; b < n; ++b) {
            const uint64_t have = st.layer_bytes[b] ? st.delivered[b] / st.layer_bytes[b] : 0;
            most = std::max(most, have);
            if (!st.done[b]) ready = std::min(ready, have);
          }
          ready = std::min(ready, most);
          for (; layers_reported < ready; ++layers_reported) {
            for (uint32_t b = 0; b < n; ++b) {
              const uint64_t lb = st.layer_bytes[b];
              if (lb == 0 || (layers_reported + 1) * lb > st.delivered[b]) continue;
              report.emplace_back(b, layers_reported * lb, lb);
              st.reported[b] = (layers_reported + 1) * lb;
            }
          }
        } else {
          for (uint32_t b = 0; b < n; ++b) {
            if (st.delivered[b] > st.reported[b]) {
              report.emplace_back(b, st.reported[b], st.delivered[b] - st.reported[b]);
              st.reported[b] = st.delivered[b];
            }
          }
        }
      }
      finished = st.running == 0 && launch.empty();
    }
    for (const auto& [b, offset, length] : report) params.on_chunk(b, offset, length);
    for (auto& [shard, blocks] : launch) StartFetch(st, shard, std::move(blocks));
    if (finished) break;
  }

  FetchReply reply;
  absl::MutexLock lock(&st.mu);
  if (!lost.empty()) {
    std::sort(lost.begin(), lost.end());
    return absl::UnavailableError(
        absl::StrCat(lost.size(), " of ", n, " blocks (first: block ", lost.front(),
                     ") could not be fetched from any store shard that held them",
                     error.ok() ? "" : absl::StrCat("; last error: ", error.message())));
  }
  reply.blocks = std::move(st.blocks);
  for (uint64_t d : st.delivered) reply.bytes += d;
  return reply;
}

}  // namespace kvtier
