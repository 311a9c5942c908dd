// The replay's definition: trace parsing, prefix hit counting, and that with policy lru the
// engine evicts exactly as a textbook LRU over blocks (the oracle's definition) does.
#include "bench/replay.h"
#include "bench/noisy_neighbor_bench.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <list>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace kvtier::bench {
namespace {

TEST(TraceTest, ParsesRecordsAndSkipsUnknownFields) {
  auto r = ParseTraceLine(
      R"({"timestamp": 27, "input_length": 1030, "output_length": 4, "note": {"a": [1, "x]"]}, )"
      R"("hash_ids": [0, 1, 2], "flag": true})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->timestamp_ms, 27);
  EXPECT_EQ(r->input_length, 1030);
  EXPECT_EQ(r->output_length, 4);
  EXPECT_EQ(r->hash_ids, (std::vector<uint64_t>{0, 1, 2}));
  auto empty = ParseTraceLine(R"({"hash_ids": []})");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->hash_ids.empty());
}

TEST(TraceTest, BadRecordsAreErrorsThatNameTheProblem) {
  auto missing = ParseTraceLine(R"({"timestamp": 1})");
  EXPECT_NE(missing.status().message().find("hash_ids"), std::string_view::npos);
  auto negative = ParseTraceLine(R"({"hash_ids": [1, -2]})");
  EXPECT_NE(negative.status().message().find("non-negative"), std::string_view::npos);
  // Found by trace_parser_fuzzer: a number beyond int64 was cast before it was checked.
  for (const char* huge : {R"({"timestamp": 6.6e72, "hash_ids": [1]})",
                           R"({"hash_ids": [1e300]})", R"({"input_length": 1e19, "hash_ids": [1]})"}) {
    auto r = ParseTraceLine(huge);
    ASSERT_FALSE(r.ok()) << huge;
    EXPECT_NE(r.status().message().find("non-negative whole number"), std::string_view::npos)
        << r.status();
  }
  auto fractional = ParseTraceLine(R"({"input_length": 1.5, "hash_ids": [1]})");
  EXPECT_NE(fractional.status().message().find("input_length"), std::string_view::npos);
  EXPECT_FALSE(ParseTraceLine(R"({"hash_ids": [1, 2})").ok());
  EXPECT_FALSE(ParseTraceLine(R"({"hash_ids": [1]} trailing)").ok());
  EXPECT_FALSE(ParseTraceLine("not json").ok());

  const std::string path = ::testing::TempDir() + "/kvtier_bad_trace.jsonl";
  std::ofstream(path) << R"({"hash_ids": [1]})"
                      << "\n\n"
                      << R"({"hash_ids": [x]})"
                      << "\n";
  auto trace = LoadTrace(path);
  ASSERT_FALSE(trace.ok());
  EXPECT_NE(trace.status().message().find("line 3"), std::string_view::npos) << trace.status();
  EXPECT_EQ(LoadTrace(path + ".missing").status().code(), absl::StatusCode::kNotFound);
}

// A trace with the structure of KV workloads: shared system prompts, multi-turn sessions
// that extend their previous prompt, and one-off documents.
std::vector<TraceRequest> SyntheticTrace(int requests, uint32_t seed, int doc_blocks = 5,
                                         int doc_spread = 20) {
  std::mt19937_64 rng(seed);
  std::vector<TraceRequest> out;
  uint64_t next_id = 0;
  std::vector<std::vector<uint64_t>> systems(4), sessions;
  for (auto& s : systems) {
    for (int i = 0; i < 4; ++i) s.push_back(next_id++);
  }
  for (int i = 0; i < requests; ++i) {
    TraceRequest r;
    const int kind = static_cast<int>(rng() % 10);
    if (kind < 5 && !sessions.empty()) {  // continue a session
      auto& s = sessions[rng() % sessions.size()];
      for (int k = 0; k < 1 + static_cast<int>(rng() % 3); ++k) s.push_back(next_id++);
      r.hash_ids = s;
    } else if (kind < 8) {  // start a session on a system prompt
      std::vector<uint64_t> s = systems[rng() % systems.size()];
      for (int k = 0; k < 2 + static_cast<int>(rng() % 6); ++k) s.push_back(next_id++);
      sessions.push_back(s);
      r.hash_ids = s;
    } else {  // one-off document
      for (int k = 0; k < doc_blocks + static_cast<int>(rng() % doc_spread); ++k) {
        r.hash_ids.push_back(next_id++);
      }
    }
    r.input_length = static_cast<int64_t>(r.hash_ids.size()) * 512 - 100;
    out.push_back(std::move(r));
  }
  return out;
}

// The oracle's LRU, written out: prefix hits, then every block touched in order.
double ReferenceLruHitRate(const std::vector<TraceRequest>& trace, size_t capacity) {
  std::list<uint64_t> order;  // front = most recent
  absl::flat_hash_map<uint64_t, std::list<uint64_t>::iterator> where;
  uint64_t hits = 0, total = 0;
  for (const TraceRequest& r : trace) {
    size_t k = 0;
    while (k < r.hash_ids.size() && where.contains(r.hash_ids[k])) ++k;
    hits += k;
    total += r.hash_ids.size();
    for (uint64_t id : r.hash_ids) {
      if (auto it = where.find(id); it != where.end()) {
        order.erase(it->second);
      } else if (where.size() == capacity) {
        where.erase(order.back());
        order.pop_back();
      }
      order.push_front(id);
      where[id] = order.begin();
    }
  }
  return double(hits) / double(total);
}

double InfiniteHitRate(const std::vector<TraceRequest>& trace) {
  absl::flat_hash_set<uint64_t> seen;
  uint64_t hits = 0, total = 0;
  for (const TraceRequest& r : trace) {
    size_t k = 0;
    while (k < r.hash_ids.size() && seen.contains(r.hash_ids[k])) ++k;
    hits += k;
    total += r.hash_ids.size();
    seen.insert(r.hash_ids.begin(), r.hash_ids.end());
  }
  return double(hits) / double(total);
}

// A replay on a fresh engine; with T2, on an emptied directory (a replay never reuses
// another's SSD records).
ReplayResult RunEngine(const std::vector<TraceRequest>& trace, EngineBackendOptions o) {
  if (!o.ssd_dir.empty()) std::filesystem::remove_all(o.ssd_dir);
  auto backend = MakeEngineBackend(o);
  EXPECT_TRUE(backend.ok()) << backend.status();
  auto result = Replay(trace, **backend);
  EXPECT_TRUE(result.ok()) << result.status();
  return *result;
}

TEST(ReplayTest, LruReplayIsExactlyTheReferenceLru) {
  const std::vector<TraceRequest> trace = SyntheticTrace(1500, 7);
  const uint64_t unique = UniqueBlocks(trace);
  for (double fraction : {0.05, 0.2, 0.5}) {
    const auto capacity = static_cast<uint64_t>(unique * fraction);
    const ReplayResult r = RunEngine(trace, {.capacity_blocks = capacity, .policy = "lru"});
    EXPECT_EQ(r.requests, trace.size());
    EXPECT_DOUBLE_EQ(r.hit_rate(), ReferenceLruHitRate(trace, capacity)) << fraction;
    EXPECT_EQ(r.t2_hit_blocks, 0u);
    EXPECT_EQ(r.fetch_failures, 0u);
  }
  // A cache that holds everything is the infinite cache.
  const ReplayResult all = RunEngine(trace, {.capacity_blocks = unique, .policy = "lru"});
  EXPECT_DOUBLE_EQ(all.hit_rate(), InfiniteHitRate(trace));
}

TEST(ReplayTest, AdaptiveIsNoWorseThanLruOnKvShapedTraffic) {
  const std::vector<TraceRequest> trace = SyntheticTrace(3000, 11);
  const uint64_t unique = UniqueBlocks(trace);
  for (double fraction : {0.05, 0.1, 0.2}) {
    const auto capacity = static_cast<uint64_t>(unique * fraction);
    const double lru = RunEngine(trace, {.capacity_blocks = capacity, .policy = "lru"}).hit_rate();
    const double adaptive =
        RunEngine(trace, {.capacity_blocks = capacity, .policy = "adaptive"}).hit_rate();
    EXPECT_GE(adaptive, lru) << "capacity fraction " << fraction;
  }
}

TEST(ReplayTest, TwoTiersServeHitsFromBothAndLoseNothingAgainstOneFlatCache) {
  const std::vector<TraceRequest> trace = SyntheticTrace(1500, 3);
  const uint64_t unique = UniqueBlocks(trace);
  const std::string dir = ::testing::TempDir() + "/kvtier_replay_t2";
  const auto t1 = static_cast<uint64_t>(unique * 0.05);
  const auto t2 = static_cast<uint64_t>(unique * 0.4);
  const ReplayResult r =
      RunEngine(trace, {.capacity_blocks = t1, .ssd_capacity_blocks = t2, .ssd_dir = dir});
  EXPECT_GT(r.t1_hit_blocks, 0u);
  EXPECT_GT(r.t2_hit_blocks, 0u);
  EXPECT_EQ(r.fetch_failures, 0u);
  EXPECT_GT(r.counters.demoted_blocks, 0u);
  EXPECT_GT(r.counters.promoted_blocks, 0u);
  EXPECT_GE(r.hit_rate(), ReferenceLruHitRate(trace, t1 + t2));
  const std::string json = r.ToJson();
  for (const char* field : {"\"hit_rate\"", "\"t1_hit_rate\"", "\"t2_hit_rate\"",
                            "\"requests_per_second\"", "\"ssd_capacity_blocks\"",
                            "\"capacity_blocks\"", "\"policy\"", "\"blocks\"", "\"requests\""}) {
    EXPECT_NE(json.find(field), std::string::npos) << field;
  }
}

// The SSD tier's default policy (segmented LRU) never does worse than plain LRU there, on
// KV-shaped traffic at several T2 sizes.
TEST(ReplayTest, SegmentedT2IsNoWorseThanLruT2) {
  const std::vector<TraceRequest> trace = SyntheticTrace(3000, 11);
  const uint64_t unique = UniqueBlocks(trace);
  const auto t1 = static_cast<uint64_t>(unique * 0.05);
  for (double t2_fraction : {0.1, 0.4}) {
    const auto t2 = static_cast<uint64_t>(unique * t2_fraction);
    double rate[2];
    for (int i = 0; i < 2; ++i) {
      const std::string dir = ::testing::TempDir() + "/kvtier_replay_slru";
      rate[i] = RunEngine(trace, {.capacity_blocks = t1,
                                  .ssd_capacity_blocks = t2,
                                  .ssd_dir = dir,
                                  .ssd_policy = i == 0 ? "lru" : "slru"})
                    .hit_rate();
    }
    EXPECT_GE(rate[1], rate[0]) << "T2 " << t2_fraction;
  }
}

// T2 admission by learned return probability (the default) writes fewer blocks to the
// SSD than the T1-score filter on chat traffic mixed with long one-off documents (a scan:
// "summarise this file"), for a hit rate no lower, at two T2 sizes; and writes less still
// with promoted copies.
TEST(ReplayTest, PredictedT2AdmissionWritesLessThanTheScoreFilterForNoLowerHitRate) {
  const std::vector<TraceRequest> trace = SyntheticTrace(3000, 11, /*doc_blocks=*/64, 40);
  const uint64_t unique = UniqueBlocks(trace);
  const auto t1 = static_cast<uint64_t>(unique * 0.05);
  const std::string dir = ::testing::TempDir() + "/kvtier_replay_predict";
  for (double t2_fraction : {0.1, 0.4}) {
    const auto t2 = static_cast<uint64_t>(unique * t2_fraction);
    ReplayResult r[3];
    for (int i = 0; i < 3; ++i) {
      r[i] = RunEngine(trace, {.capacity_blocks = t1,
                               .ssd_capacity_blocks = t2,
                               .ssd_dir = dir,
                               .t2_admission = i == 0 ? "score" : "predict",
                               .t2_keep_promoted_copy = i == 2,
                               .t2_promote_after_reads = 1,  // copies matter only then
                               .t2_sync = true});
    }
    const ReplayResult& score = r[0];
    const ReplayResult& predict = r[1];
    const ReplayResult& copies = r[2];
    EXPECT_GE(predict.hit_rate(), score.hit_rate()) << "T2 " << t2_fraction;
    EXPECT_LT(predict.counters.demoted_blocks, score.counters.demoted_blocks * 0.9)
        << "T2 " << t2_fraction;
    EXPECT_GT(predict.counters.demotion_rejected_blocks, 0u);
    EXPECT_LT(copies.counters.demoted_blocks, predict.counters.demoted_blocks)
        << "T2 " << t2_fraction;
    EXPECT_EQ(predict.fetch_failures, 0u);
    std::printf("T2 %.1f: score %.4f @ %lu writes, predict %.4f @ %lu, + copies %.4f @ %lu\n",
                t2_fraction, score.hit_rate(),
                static_cast<unsigned long>(score.counters.demoted_blocks), predict.hit_rate(),
                static_cast<unsigned long>(predict.counters.demoted_blocks), copies.hit_rate(),
                static_cast<unsigned long>(copies.counters.demoted_blocks));
  }
}

// Serving T2 hits in place until a block's 8th read (the default) writes far fewer blocks
// to the SSD than promoting on every read, for the same hit rate, at two T2 sizes: a
// promoted block is written to T2 again when T1 evicts it.
TEST(ReplayTest, ServingT2HitsInPlaceWritesFewerBlocksForTheSameHitRate) {
  const std::vector<TraceRequest> trace = SyntheticTrace(3000, 11, /*doc_blocks=*/64, 40);
  const uint64_t unique = UniqueBlocks(trace);
  const auto t1 = static_cast<uint64_t>(unique * 0.05);
  const std::string dir = ::testing::TempDir() + "/kvtier_replay_in_place";
  for (double t2_fraction : {0.1, 0.4}) {
    const auto t2 = static_cast<uint64_t>(unique * t2_fraction);
    ReplayResult r[2];
    for (int i = 0; i < 2; ++i) {
      EngineBackendOptions o{.capacity_blocks = t1, .ssd_capacity_blocks = t2, .ssd_dir = dir};
      o.t2_sync = true;
      if (i == 0) o.t2_promote_after_reads = 1;
      r[i] = RunEngine(trace, o);
    }
    const ReplayResult& promote = r[0];
    const ReplayResult& in_place = r[1];
    EXPECT_LT(in_place.counters.demoted_blocks, promote.counters.demoted_blocks * 0.8)
        << "T2 " << t2_fraction;
    EXPECT_GE(in_place.hit_rate(), promote.hit_rate() - 0.005) << "T2 " << t2_fraction;
    EXPECT_LT(in_place.counters.promoted_blocks * 4, promote.counters.promoted_blocks);
    EXPECT_EQ(in_place.fetch_failures, 0u);
    std::printf("T2 %.1f: promote on every read %.4f @ %lu writes (%lu promoted), "
                "in place until the 8th %.4f @ %lu (%lu)\n",
                t2_fraction, promote.hit_rate(),
                static_cast<unsigned long>(promote.counters.demoted_blocks),
                static_cast<unsigned long>(promote.counters.promoted_blocks), in_place.hit_rate(),
                static_cast<unsigned long>(in_place.counters.demoted_blocks),
                static_cast<unsigned long>(in_place.counters.promoted_blocks));
  }
}

// Sessions on shared system prompts that either continue (the next turn extends the
// prompt) or end. A turn's output is short (10-63 tokens: a tool call, a short answer) when
// the session goes on and long (300-999: a final answer) when it ends, as the trace says
// in output_length. Prompts that continue and final ones have the same shapes: only the
// output length tells them apart.
std::vector<TraceRequest> SessionTrace(int requests, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<TraceRequest> out;
  uint64_t next_id = 0;
  std::vector<std::vector<uint64_t>> systems(4);
  for (auto& s : systems) {
    for (int i = 0; i < 4; ++i) s.push_back(next_id++);
  }
  struct Session {
    std::vector<uint64_t> ids;
    int turns_left;
  };
  std::vector<Session> live;
  for (int i = 0; i < requests; ++i) {
    TraceRequest r;
    size_t at;
    if (live.empty() || rng() % 2 == 0) {  // a new session: 60% end after one turn
      live.push_back(
          {systems[rng() % systems.size()], rng() % 10 < 6 ? 1 : 2 + static_cast<int>(rng() % 5)});
      at = live.size() - 1;
    } else {
      at = rng() % live.size();
    }
    Session& s = live[at];
    for (int k = 0; k < 2 + static_cast<int>(rng() % 6); ++k) s.ids.push_back(next_id++);
    r.hash_ids = s.ids;
    r.input_length = static_cast<int64_t>(r.hash_ids.size()) * 512 - 100;
    const bool last = --s.turns_left == 0;
    r.output_length =
        last ? 300 + static_cast<int64_t>(rng() % 700) : 10 + static_cast<int64_t>(rng() % 54);
    if (last) {
      live[at] = std::move(live.back());
      live.pop_back();
    }
    out.push_back(std::move(r));
  }
  return out;
}

// T2 admission learns from the output length a client reports (PutHeader.output_tokens):
// where it tells final turns from turns that continue, the store writes far fewer blocks
// to the SSD for no lower hit rate than when the client does not report it. Where it says
// nothing (random lengths on a trace whose one-off documents admission refuses), reporting
// it costs (almost) nothing.
TEST(ReplayTest, ReportedOutputLengthsCutSsdWritesWhereTheyTellReturnsApart) {
  const std::string dir = ::testing::TempDir() + "/kvtier_replay_output";
  for (bool informative : {true, false}) {
    std::vector<TraceRequest> said = SessionTrace(4000, 5);
    if (!informative) {
      said = SyntheticTrace(3000, 11, /*doc_blocks=*/64, 40);
      std::mt19937_64 rng(3);
      for (TraceRequest& r : said) r.output_length = 1 + static_cast<int64_t>(rng() % 1000);
    }
    std::vector<TraceRequest> unsaid = said;
    for (TraceRequest& r : unsaid) r.output_length = 0;
    const uint64_t unique = UniqueBlocks(said);
    for (double t2_fraction : {0.1, 0.3}) {
      ReplayResult r[2];
      for (int i = 0; i < 2; ++i) {
        EngineBackendOptions o{.capacity_blocks = static_cast<uint64_t>(unique * 0.05),
                               .ssd_capacity_blocks = static_cast<uint64_t>(unique * t2_fraction),
                               .ssd_dir = dir};
        o.t2_sync = true;
        r[i] = RunEngine(i == 0 ? unsaid : said, o);
      }
      const ReplayResult& without = r[0];
      const ReplayResult& with = r[1];
      std::printf(
          "%s output lengths, T2 %.1f: not reported %.4f @ %lu writes, reported %.4f @ "
          "%lu\n",
          informative ? "informative" : "random", t2_fraction, without.hit_rate(),
          static_cast<unsigned long>(without.counters.demoted_blocks), with.hit_rate(),
          static_cast<unsigned long>(with.counters.demoted_blocks));
      EXPECT_EQ(with.fetch_failures, 0u);
      if (informative) {
        EXPECT_LT(with.counters.demoted_blocks, without.counters.demoted_blocks * 0.8)
            << "T2 " << t2_fraction;
        EXPECT_GE(with.hit_rate(), without.hit_rate()) << "T2 " << t2_fraction;
      } else {
        EXPECT_LT(with.counters.demoted_blocks, without.counters.demoted_blocks * 1.1)
            << "T2 " << t2_fraction;
        EXPECT_GE(with.hit_rate(), without.hit_rate() - 0.005) << "T2 " << t2_fraction;
      }
    }
  }
}

// Requests in flight at once (tiered, so lookups overlap disk reads): every request is
// counted once, nothing fails, the hit rate stays near the one-at-a-time replay's (the
// order differs only where requests overlap), and a backend that cannot take concurrent
// requests is refused rather than raced.
TEST(ReplayTest, ConcurrentRequestsCountEachRequestOnceAndKeepTheHitRate) {
  const std::vector<TraceRequest> trace = SyntheticTrace(1500, 3);
  const uint64_t unique = UniqueBlocks(trace);
  const std::string dir = ::testing::TempDir() + "/kvtier_replay_concurrent";
  const auto t1 = static_cast<uint64_t>(unique * 0.05);
  const auto t2 = static_cast<uint64_t>(unique * 0.4);
  const ReplayResult one =
      RunEngine(trace, {.capacity_blocks = t1, .ssd_capacity_blocks = t2, .ssd_dir = dir});
  std::filesystem::remove_all(dir);
  auto backend =
      MakeEngineBackend({.capacity_blocks = t1, .ssd_capacity_blocks = t2, .ssd_dir = dir});
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<ReplayResult> many = Replay(trace, **backend, 0, 4);
  ASSERT_TRUE(many.ok()) << many.status();
  EXPECT_EQ(many->requests, trace.size());
  EXPECT_EQ(many->blocks, one.blocks);
  EXPECT_EQ(many->fetch_failures, 0u);
  EXPECT_EQ(many->hit_blocks, many->t1_hit_blocks + many->t2_hit_blocks);
  EXPECT_GT(many->t2_hit_blocks, 0u);
  EXPECT_NEAR(many->hit_rate(), one.hit_rate(), 0.03);
  EXPECT_NE(many->ToJson().find("\"concurrency\": 4"), std::string::npos);

  class OneAtATime final : public ReplayBackend {
   public:
    absl::StatusOr<Hits> LookupFetchRelease(const ReplayPrompt&) override { return Hits{}; }
    absl::Status Put(const ReplayPrompt&, uint32_t, std::span<const uint8_t>, bool) override {
      return absl::OkStatus();
    }
    absl::StatusOr<Counters> Stats() override { return Counters{}; }
  } serial;
  EXPECT_EQ(Replay(trace, serial, 0, 2).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Replay(trace, **backend, 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

// A guarantee keeps a tenant's hit rate while a neighbour scans far more than the store
// holds; without quotas the scan takes it (LRU has no defence of its own).
TEST(NoisyNeighborTest, AGuaranteeHoldsTheHitRateAScanWouldTake) {
  const std::vector<TraceRequest> trace = SyntheticTrace(1500, 11);
  absl::StatusOr<NoisyNeighborResult> r = RunNoisyNeighborBench(
      trace, "synthetic", {.guarantee_fraction = 0.1, .store_multiple = 3, .policy = "lru"});
  ASSERT_TRUE(r.ok()) << r.status();
  for (const std::string& line : r->lines) std::cout << line << std::endl;
  ASSERT_GT(r->alone, 0.05);
  EXPECT_GE(r->with_quota, 0.95 * r->alone);
  EXPECT_LT(r->without_quota, 0.9 * r->alone);
  EXPECT_FALSE(RunNoisyNeighborBench(trace, "x", {.guarantee_fraction = 0}).ok());
}

}  // namespace
}  // namespace kvtier::bench
