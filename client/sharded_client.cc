#include "client/sharded_client.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "cache_store/log.h"
#include "client/shard_placement.h"
#include "client/sharded_client_shard.h"

namespace kvtier {

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
      p.output_tokens = params.output_tokens;
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
