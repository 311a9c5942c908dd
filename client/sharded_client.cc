#include "client/sharded_client.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "cache_store/log.h"
#include "client/shard_placement.h"

namespace kvtier {
namespace {

// Whether an error means "this shard is not answering" (skip it for a while) rather than
// "this request is wrong" (every shard would say the same).
bool IsShardFailure(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsCancelled(s) ||
         absl::IsUnknown(s) || absl::IsInternal(s) || absl::IsAborted(s) || absl::IsDataLoss(s);
}

}  // namespace

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

// ---------------------------------------------------------------------------------------
// Membership

absl::StatusOr<std::unique_ptr<ShardedClient>> ShardedClient::Create(ShardedClientOptions options) {
  absl::StatusOr<ShardEndpoints> endpoints = ShardEndpoints::Parse(options.targets);
  if (!endpoints.ok()) return endpoints.status();
  if (options.replication == 0) {
    return absl::InvalidArgumentError("the replication factor is at least 1");
  }
  std::unique_ptr<ShardedClient> client(
      new ShardedClient(std::move(options), *std::move(endpoints)));
  client->Refresh();
  client->refresher_ = std::thread([c = client.get()] { c->RefreshLoop(); });
  return client;
}

ShardedClient::ShardedClient(ShardedClientOptions options, ShardEndpoints endpoints)
    : options_(std::move(options)),
      endpoints_(std::move(endpoints)),
      pool_(options_.threads),
      view_(std::make_shared<View>()) {}

ShardedClient::~ShardedClient() {
  {
    absl::MutexLock lock(&stop_mu_);
    stop_ = true;
  }
  if (refresher_.joinable()) refresher_.join();
}

void ShardedClient::RefreshLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&stop_mu_);
      stop_mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.resolve_interval);
      if (stop_) return;
    }
    Refresh();
  }
}

void ShardedClient::Refresh() {
  absl::MutexLock refresh_lock(&refresh_mu_);
  absl::StatusOr<std::vector<std::string>> targets = endpoints_.Resolve();
  if (!targets.ok()) {
    // Keep the shards we know: a DNS hiccup must not empty the cache.
    KVTIER_LOG(WARNING) << "store shards: " << targets.status();
    return;
  }
  std::vector<std::shared_ptr<Shard>> unnamed;
  {
    absl::MutexLock lock(&mu_);
    absl::flat_hash_map<std::string, std::shared_ptr<Shard>> next;
    for (const std::string& t : *targets) {
      auto it = by_target_.find(t);
      if (it != by_target_.end()) {
        next[t] = it->second;
        continue;
      }
      auto shard = std::make_shared<Shard>();
      shard->target = t;
      ClientOptions o = options_.shard;
      o.target = t;
      o.max_attempts = 1;
      o.shm_socket.clear();
      shard->client = std::make_shared<CacheStoreClient>(o);
      next[t] = shard;
    }
    by_target_ = std::move(next);
    for (const auto& [t, shard] : by_target_) {
      if (shard->id.empty()) unnamed.push_back(shard);
    }
  }
  // Learn the names of new shards (in parallel: an unreachable one costs one deadline).
  std::vector<std::string> names(unnamed.size());
  std::vector<std::function<void()>> asks;
  for (size_t i = 0; i < unnamed.size(); ++i) {
    asks.push_back([&, i] {
      absl::StatusOr<v1::StatsResponse> stats = unnamed[i]->client->Stats();
      if (!stats.ok()) return;
      // A store from before shard names: its address is its name.
      names[i] = stats->shard_id().empty() ? unnamed[i]->target : stats->shard_id();
    });
  }
  pool_.RunAll(std::move(asks));

  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < unnamed.size(); ++i) {
    if (names[i].empty()) continue;
    Shard& shard = *unnamed[i];
    shard.id = names[i];
    shard.id_hash = ShardNameHash(shard.id);
    if (!options_.shm_socket_dir.empty()) {
      const std::string socket = absl::StrCat(options_.shm_socket_dir, "/", shard.id, ".sock");
      std::error_code ec;
      if (std::filesystem::exists(socket, ec)) {
        ClientOptions o = options_.shard;
        o.target = shard.target;
        o.max_attempts = 1;
        o.shm_socket = socket;
        shard.client = std::make_shared<CacheStoreClient>(o);
        shard.same_node = true;
      }
    }
    KVTIER_LOG(INFO) << "store shard " << shard.id << " joined at " << shard.target
                     << (shard.same_node ? " (same node)" : "");
  }
  auto view = std::make_shared<View>();
  for (const auto& [t, shard] : by_target_) {
    if (!shard->id.empty()) view->shards.push_back(shard);
  }
  std::sort(view->shards.begin(), view->shards.end(), [](const auto& a, const auto& b) {
    return a->id != b->id ? a->id < b->id : a->target < b->target;
  });
  // Two addresses with one name (a restarted pod whose old address still resolves): keep
  // one, so placement sees each name once.
  view->shards.erase(std::unique(view->shards.begin(), view->shards.end(),
                                 [](const auto& a, const auto& b) { return a->id == b->id; }),
                     view->shards.end());
  for (const auto& s : view->shards) view->hashes.push_back(s->id_hash);
  view_ = std::move(view);
}

std::shared_ptr<const ShardedClient::View> ShardedClient::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return view_;
}

std::vector<ShardStatus> ShardedClient::Shards() const {
  std::vector<std::shared_ptr<Shard>> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [t, s] : by_target_) all.push_back(s);
  }
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a->target < b->target; });
  std::vector<ShardStatus> out;
  const absl::Time now = absl::Now();
  for (const auto& s : all) {
    ShardStatus st;
    st.target = s->target;
    {
      absl::MutexLock lock(&mu_);  // Refresh names shards under it
      st.id = s->id;
      st.same_node = s->same_node;
    }
    st.healthy = !st.id.empty() && s->Usable(now);
    st.lookups = s->lookups;
    st.lookup_failures = s->lookup_failures;
    st.put_blocks_committed = s->put_blocks_committed;
    st.put_blocks_failed = s->put_blocks_failed;
    st.fetched_blocks = s->fetched_blocks;
    st.fetch_failures = s->fetch_failures;
    st.failover_blocks = s->failover_blocks;
    out.push_back(std::move(st));
  }
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<CacheStoreClient>>> ShardedClient::ShardClients()
    const {
  std::vector<std::pair<std::string, std::shared_ptr<CacheStoreClient>>> out;
  for (const auto& s : Snapshot()->shards) out.emplace_back(s->id, s->client);
  return out;
}

// ---------------------------------------------------------------------------------------
// Lookup and leases

absl::StatusOr<LookupReply> ShardedClient::Lookup(const KvLayout& layout,
                                                  std::span<const uint32_t> tokens,
                                                  const LookupParams& params) {
  if (absl::Status s = layout.Validate(); !s.ok()) return s;
  const std::shared_ptr<const View> view = Snapshot();
  const absl::Time now = absl::Now();
  LookupReply reply;
  reply.total_blocks = static_cast<uint32_t>(tokens.size() / layout.tokens_per_block);
  reply.block_bytes = layout.BlockBytes();

  const size_t n = view->shards.size();
  std::vector<std::optional<absl::StatusOr<LookupReply>>> answers(n);
  std::vector<std::function<void()>> asks;
  // One shard's own longest prefix is the cluster's: an ordinary Lookup (which the store
  // counts in its hit rate). Several shards hold scattered blocks: presence lookups.
  LookupParams shard_params = params;
  shard_params.report_present = n > 1;
  for (size_t i = 0; i < n; ++i) {
    if (!view->shards[i]->Usable(now)) continue;
    asks.push_back([&, i] {
      Shard& shard = *view->shards[i];
      ++shard.lookups;
      answers[i] = shard.client->Lookup(layout, tokens, shard_params);
      if (!answers[i]->ok()) ++shard.lookup_failures;
      shard.Note(options_, answers[i]->status());
    });
  }
  pool_.RunAll(std::move(asks));

  // Who holds each block: shard indices, rotated by block so reads spread over replicas.
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> holders(reply.total_blocks);
  std::optional<absl::Status> request_error;
  bool any_ok = false;
  for (size_t i = 0; i < n; ++i) {
    if (!answers[i]) continue;
    if (!answers[i]->ok()) {
      if (!IsShardFailure(answers[i]->status())) request_error = answers[i]->status();
      continue;
    }
    any_ok = true;
    LookupReply& a = **answers[i];
    if (!shard_params.report_present) {
      a.present_blocks.resize(a.matched_blocks);
      for (uint32_t b = 0; b < a.matched_blocks; ++b) a.present_blocks[b] = b;
    }
    for (uint32_t j = 0; j < a.present_blocks.size(); ++j) {
      const uint32_t b = a.present_blocks[j];
      if (b < holders.size()) holders[b].emplace_back(static_cast<uint32_t>(i), j);
    }
  }
  // Bad input is the caller's error (every shard refused it); a dead cluster is a miss.
  if (!any_ok && request_error) return *request_error;

  uint32_t matched = 0;
  while (matched < reply.total_blocks && !holders[matched].empty()) ++matched;
  std::vector<std::vector<std::shared_ptr<Shard>>> chosen(matched);
  for (uint32_t b = 0; b < matched; ++b) {
    auto& h = holders[b];
    std::rotate(h.begin(), h.begin() + (b % h.size()), h.end());
    std::stable_partition(h.begin(), h.end(),
                          [&](const auto& e) { return view->shards[e.first]->same_node; });
    const LookupReply& first = **answers[h.front().first];
    reply.keys.push_back(first.keys[h.front().second]);
    reply.tiers.push_back(first.tiers[h.front().second]);
    for (const auto& [shard, pos] : h) chosen[b].push_back(view->shards[shard]);
  }
  reply.matched_blocks = matched;

  // One lease of ours for the shards' leases.
  std::vector<std::pair<std::shared_ptr<Shard>, uint64_t>> shard_leases;
  absl::Duration ttl = absl::InfiniteDuration();
  for (size_t i = 0; i < n; ++i) {
    if (answers[i] && answers[i]->ok() && (*answers[i])->lease_id != 0) {
      shard_leases.emplace_back(view->shards[i], (*answers[i])->lease_id);
      ttl = std::min(ttl, (*answers[i])->lease_ttl);
    }
  }
  if (matched == 0 || !params.lease) {
    for (const auto& [shard, id] : shard_leases) (void)shard->client->Release(id);
    return reply;
  }
  auto record = std::make_unique<LeaseRecord>();
  record->shard_leases = std::move(shard_leases);
  record->keys = reply.keys;
  record->expires = now + ttl;
  absl::MutexLock lock(&leases_mu_);
  SweepLeases(now);
  for (uint32_t b = 0; b < matched; ++b) {
    Location& loc = located_[reply.keys[b]];
    if (loc.leases == 0) loc.holders = chosen[b];
    ++loc.leases;
  }
  reply.lease_id = next_lease_++;
  reply.lease_ttl = ttl;
  leases_[reply.lease_id] = std::move(record);
  return reply;
}

void ShardedClient::Forget(const LeaseRecord& record) {
  for (const BlockKey& key : record.keys) {
    auto it = located_.find(key);
    if (it != located_.end() && --it->second.leases == 0) located_.erase(it);
  }
}

void ShardedClient::SweepLeases(absl::Time now) {
  // The shards let an unreleased lease lapse at its TTL; so does this client.
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second->expires < now) {
      Forget(*it->second);
      leases_.erase(it++);
    } else {
      ++it;
    }
  }
}

absl::Status ShardedClient::Release(uint64_t lease_id) {
  std::unique_ptr<LeaseRecord> record;
  {
    absl::MutexLock lock(&leases_mu_);
    auto it = leases_.find(lease_id);
    if (it == leases_.end()) {
      return absl::NotFoundError(absl::StrCat("no lease ", lease_id, " (released or expired)"));
    }
    record = std::move(it->second);
    leases_.erase(it);
    Forget(*record);
  }
  std::vector<std::function<void()>> releases;
  const absl::Time now = absl::Now();
  for (const auto& [shard, id] : record->shard_leases) {
    if (!shard->Usable(now)) continue;  // a down shard's lease lapses at its TTL
    releases.push_back([this, shard = shard, id = id] {
      const absl::Status s = shard->client->Release(id);
      if (IsShardFailure(s)) shard->Failed(options_, s);
    });
  }
  pool_.RunAll(std::move(releases));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// Put

absl::StatusOr<PutReply> ShardedClient::PutBlocks(const KvLayout& layout,
                                                  std::span<const uint32_t> tokens,
                                                  uint32_t first_block,
                                                  std::span<const std::span<const uint8_t>> blocks,
                                                  const PutParams& params) {
  if (absl::Status s = layout.Validate(); !s.ok()) return s;
  if (blocks.empty()) return absl::InvalidArgumentError("a Put carries at least one block");
  std::vector<uint32_t> index(blocks.size());
  if (!params.block_indices.empty()) {
    if (params.block_indices.size() != blocks.size() || first_block != 0) {
      return absl::InvalidArgumentError(
          "a Put naming its blocks gives one index per block and first_block 0");
    }
    std::copy(params.block_indices.begin(), params.block_indices.end(), index.begin());
  } else {
    for (size_t i = 0; i < blocks.size(); ++i) index[i] = first_block + static_cast<uint32_t>(i);
  }
  for (size_t i = 1; i < index.size(); ++i) {
    if (index[i] <= index[i - 1]) {
      return absl::InvalidArgumentError("the Put's block indices must be strictly ascending");
    }
  }
  const uint64_t full = tokens.size() / layout.tokens_per_block;
  if (uint64_t{index.back()} >= full) {
    return absl::InvalidArgumentError(absl::StrCat("the Put carries block ", index.back(),
                                                   " but its ", tokens.size(),
                                                   " token ids hold only ", full, " full blocks"));
  }
  const std::shared_ptr<const View> view = Snapshot();
  if (view->shards.empty()) {
    return absl::UnavailableError(
        absl::StrCat("no store shard of '", options_.targets, "' has answered yet"));
  }
  const std::vector<BlockKey> routing =
      RoutingKeys(layout, params.salt, tokens, uint64_t{index.back()} + 1);

  // Owners: the first R live shards of the ranking of each block's run: runs of `span`
  // blocks from the first one this Put carries (its new blocks: what follows a shared
  // prefix is placed by its own key, not by the prefix's).
  const uint32_t span = std::max<uint32_t>(1, options_.placement_span);
  const absl::Time now = absl::Now();
  std::vector<bool> usable(view->shards.size());
  for (size_t s = 0; s < usable.size(); ++s) usable[s] = view->shards[s]->Usable(now);
  std::vector<std::vector<uint32_t>> per_shard(view->shards.size());  // positions in `blocks`
  for (uint32_t i = 0; i < blocks.size(); ++i) {
    uint32_t taken = 0;
    const uint32_t head = index[0] + (index[i] - index[0]) / span * span;
    for (uint32_t s : RankShards(view->hashes, routing[head])) {
      if (taken == options_.replication) break;
      if (!usable[s]) continue;
      per_shard[s].push_back(i);
      ++taken;
    }
  }

  struct Outcome {
    absl::StatusOr<PutReply> reply = absl::UnknownError("not run");
  };
  std::vector<Outcome> outcomes(view->shards.size());
  std::vector<std::function<void()>> puts;
  for (size_t s = 0; s < view->shards.size(); ++s) {
    if (per_shard[s].empty()) continue;
    puts.push_back([&, s] {
      Shard& shard = *view->shards[s];
      std::vector<std::span<const uint8_t>> mine;
      std::vector<uint32_t> mine_index;
      for (uint32_t i : per_shard[s]) {
        mine.push_back(blocks[i]);
        mine_index.push_back(index[i]);
      }
      PutParams p;
      p.salt = params.salt;
      p.last_block_partial = params.last_block_partial && per_shard[s].back() + 1 == blocks.size();
      p.block_indices = mine_index;
      p.shm = shard.same_node ? params.shm : nullptr;
      outcomes[s].reply = shard.client->PutBlocks(layout, tokens, 0, mine, p);
      if (p.shm != nullptr && IsSameNodeRefusal(outcomes[s].reply.status())) {
        p.shm = nullptr;
        outcomes[s].reply = shard.client->PutBlocks(layout, tokens, 0, mine, p);
      }
      shard.Note(options_, outcomes[s].reply.status());
      (outcomes[s].reply.ok() ? shard.put_blocks_committed : shard.put_blocks_failed) +=
          per_shard[s].size();
    });
  }
  pool_.RunAll(std::move(puts));

  PutReply reply;
  reply.keys.resize(blocks.size());
  std::vector<bool> committed(blocks.size(), false);
  std::optional<absl::Status> first_error;
  for (size_t s = 0; s < view->shards.size(); ++s) {
    if (per_shard[s].empty()) continue;
    if (!outcomes[s].reply.ok()) {
      if (!first_error) first_error = outcomes[s].reply.status();
      continue;
    }
    const PutReply& r = *outcomes[s].reply;
    reply.stored_blocks += r.stored_blocks;
    reply.existing_blocks += r.existing_blocks;
    for (size_t j = 0; j < per_shard[s].size() && j < r.keys.size(); ++j) {
      const uint32_t i = per_shard[s][j];
      if (!committed[i]) reply.keys[i] = r.keys[j];
      committed[i] = true;
    }
  }
  reply.failed_blocks =
      static_cast<uint32_t>(std::count(committed.begin(), committed.end(), false));
  if (reply.failed_blocks == blocks.size()) {
    return first_error ? *first_error
                       : absl::UnavailableError("every store shard that owns these blocks is down");
  }
  return reply;
}

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

// ---------------------------------------------------------------------------------------
// Pin, Unpin, Delete: every live shard.

template <typename T>
std::vector<absl::StatusOr<T>> ShardedClient::AskLiveShards(
    const std::function<absl::StatusOr<T>(CacheStoreClient&)>& call) {
  const std::shared_ptr<const View> view = Snapshot();
  const absl::Time now = absl::Now();
  std::vector<std::optional<absl::StatusOr<T>>> answers(view->shards.size());
  std::vector<std::function<void()>> calls;
  for (size_t i = 0; i < view->shards.size(); ++i) {
    if (!view->shards[i]->Usable(now)) continue;
    calls.push_back([&, i] {
      answers[i] = call(*view->shards[i]->client);
      view->shards[i]->Note(options_, answers[i]->status());
    });
  }
  pool_.RunAll(std::move(calls));
  std::vector<absl::StatusOr<T>> out;
  for (auto& a : answers) {
    if (a) out.push_back(*std::move(a));
  }
  return out;
}

namespace {

// The sum over the shards that answered; the last error when none did.
absl::StatusOr<uint32_t> SumOfAnswers(const std::vector<absl::StatusOr<uint32_t>>& answers) {
  uint32_t total = 0;
  bool any = false;
  absl::Status error = absl::UnavailableError("no store shard answered");
  for (const auto& a : answers) {
    if (!a.ok()) {
      error = a.status();
      continue;
    }
    total += *a;
    any = true;
  }
  if (any) return total;
  return error;
}

}  // namespace

absl::StatusOr<absl::Duration> ShardedClient::Pin(std::span<const BlockKey> keys,
                                                  absl::Duration ttl) {
  using Pinned = std::pair<absl::Duration, uint32_t>;  // TTL granted, blocks held
  const std::vector<absl::StatusOr<Pinned>> answers =
      AskLiveShards<Pinned>([&](CacheStoreClient& c) -> absl::StatusOr<Pinned> {
        uint32_t pinned = 0;
        absl::StatusOr<absl::Duration> granted = c.PinHeld(keys, ttl, &pinned);
        if (!granted.ok()) return granted.status();
        return Pinned{*granted, pinned};
      });
  std::optional<absl::Duration> granted;
  absl::Status error = absl::UnavailableError("no store shard answered");
  for (const auto& a : answers) {
    if (!a.ok()) {
      error = a.status();
    } else if (a->second > 0) {
      granted = granted ? std::min(*granted, a->first) : a->first;
    } else {
      error = absl::NotFoundError("no live store shard holds these blocks");
    }
  }
  if (granted) return *granted;
  return error;
}

absl::StatusOr<uint32_t> ShardedClient::Unpin(std::span<const BlockKey> keys) {
  return SumOfAnswers(
      AskLiveShards<uint32_t>([&](CacheStoreClient& c) { return c.UnpinHeld(keys); }));
}

absl::StatusOr<uint32_t> ShardedClient::Delete(std::span<const BlockKey> keys) {
  return SumOfAnswers(
      AskLiveShards<uint32_t>([&](CacheStoreClient& c) { return c.DeleteHeld(keys); }));
}

}  // namespace kvtier
