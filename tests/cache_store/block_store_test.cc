#include "cache_store/block_store.h"

#include <gtest/gtest.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cache_store/checksum.h"
#include "tests/cache_store/test_blocks.h"

namespace kvtier {
namespace {

using ::kvtier::testing::BlockChecksumOf;
using ::kvtier::testing::KeysOf;
using ::kvtier::testing::LayerChecksumsOf;
using ::kvtier::testing::PayloadFor;
using ::kvtier::testing::PayloadsFor;
using ::kvtier::testing::PutBlocks;
using ::kvtier::testing::SmallLayout;
using ::kvtier::testing::SmallStoreOptions;
using ::kvtier::testing::Tokens;

class BlockStoreTest : public ::testing::Test {
 protected:
  void MakeStore(uint32_t slots) {
    auto s = BlockStore::Create(SmallStoreOptions(slots, &clock_));
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  void SetUp() override { MakeStore(16); }

  absl::StatusOr<LookupResult> Lookup(const std::vector<uint32_t>& tokens,
                                      std::string_view tenant = "a", bool lease = true) {
    return store_->Lookup({.tenant = tenant, .layout = &layout_, .tokens = tokens},
                          {.lease = lease});
  }
  uint32_t Matched(const std::vector<uint32_t>& tokens, std::string_view tenant = "a") {
    absl::StatusOr<LookupResult> r = Lookup(tokens, tenant, /*lease=*/false);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->matched_blocks() : 0;
  }
  PutSpec Spec(const std::vector<uint32_t>& tokens, uint32_t first, uint32_t n,
               std::string_view tenant = "a") {
    return PutSpec{.prompt = {.tenant = tenant, .layout = &layout_, .tokens = tokens},
                   .first_block = first,
                   .num_blocks = n};
  }

  ManualClock clock_;
  KvLayout layout_ = SmallLayout();
  std::unique_ptr<BlockStore> store_;
};

TEST_F(BlockStoreTest, PutLookupReadRoundTrip) {
  std::vector<uint32_t> tokens = Tokens(4 * 3 + 2, 1);  // 3 full blocks and a partial tail
  absl::StatusOr<PutResult> put = PutBlocks(*store_, "a", layout_, tokens, 0, 3);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored_blocks, 3u);

  absl::StatusOr<LookupResult> lookup = Lookup(tokens);
  ASSERT_TRUE(lookup.ok()) << lookup.status();
  EXPECT_EQ(lookup->total_blocks, 3u);
  EXPECT_EQ(lookup->matched_blocks(), 3u);
  EXPECT_EQ(lookup->keys, put->keys);
  EXPECT_NE(lookup->lease_id, 0u);

  auto read = store_->ReadLease("a", lookup->lease_id);
  ASSERT_TRUE(read.ok()) << read.status();
  std::vector<BlockKey> keys = KeysOf("a", layout_, tokens);
  ASSERT_EQ((*read)->blocks().size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const BlockView& v = (*read)->blocks()[i];
    EXPECT_EQ(v.key, keys[i]);
    ASSERT_EQ(v.size, layout_.BlockBytes());
    std::vector<uint8_t> expected = PayloadFor(keys[i], v.size);
    EXPECT_EQ(std::memcmp(v.data, expected.data(), v.size), 0) << "block " << i;
    EXPECT_EQ(v.checksum, BlockChecksumOf(layout_, expected.data()));
    ASSERT_EQ(v.layer_checksums.size(), layout_.num_layers);
    for (uint32_t l = 0; l < layout_.num_layers; ++l) {
      EXPECT_EQ(v.layer_checksums[l],
                RangeChecksum(expected.data() + l * layout_.LayerBytes(), layout_.LayerBytes()));
    }
    EXPECT_TRUE((*read)->Verify(i, 0, v.size).ok());
  }
  BlockStoreStats stats = store_->Stats();
  EXPECT_EQ(stats.t1_used_blocks, 3u);
  EXPECT_EQ(stats.t1_used_bytes, 3 * layout_.BlockBytes());
  EXPECT_EQ(stats.fetched_blocks, 3u);
  EXPECT_EQ(stats.lookup_hit_blocks, 3u);
  EXPECT_EQ(stats.lookup_hit_tokens, 12u);
  EXPECT_EQ(stats.lookup_requested_tokens, 14u);
}

TEST_F(BlockStoreTest, LookupMatchesTheLongestSharedPrefix) {
  std::vector<uint32_t> a = Tokens(16, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, a, 0, 4).ok());
  std::vector<uint32_t> b = a;
  b[9] = 777;  // diverges inside block 2
  EXPECT_EQ(Matched(b), 2u);
  EXPECT_EQ(Matched(std::vector<uint32_t>(a.begin(), a.begin() + 7)), 1u);
  EXPECT_EQ(Matched(Tokens(16, 2)), 0u);
  EXPECT_EQ(Matched(std::vector<uint32_t>(a.begin(), a.begin() + 3)), 0u);  // no full block
}

// A Put's new blocks carry where the Put began them (BlockTraits::origin): from the
// prompt's first block (a root), right after a cached block that ended the Put that stored
// it or was followed only by that Put's last block (a continuation: the next turn of a
// conversation, which also replaces a padded partial tail), or after any other cached
// block (a branch off a shared prefix). Blocks a Put finds cached keep their own.
TEST_F(BlockStoreTest, PutsRecordWhereTheyBeganTheirNewBlocks) {
  auto origin = [&](const std::vector<uint32_t>& tokens, uint32_t block) -> int {
    std::optional<BlockTraits> t = store_->TraitsOfKey(KeysOf("a", layout_, tokens)[block]);
    return t ? t->origin : -1;
  };
  const std::vector<uint32_t> turn1 = Tokens(4 * 3, 1);  // blocks 0-2
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, turn1, 0, 3).ok());
  for (uint32_t b = 0; b < 3; ++b) EXPECT_EQ(origin(turn1, b), kOriginRoot) << b;

  std::vector<uint32_t> turn2 = turn1;  // the whole first turn, then two blocks more
  for (uint32_t t : Tokens(8, 2)) turn2.push_back(t);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, turn2, 0, 5).ok());
  EXPECT_EQ(origin(turn2, 2), kOriginRoot);  // found cached: keeps its own
  EXPECT_EQ(origin(turn2, 3), kOriginContinuation);
  EXPECT_EQ(origin(turn2, 4), kOriginContinuation);

  // The first turn without its last block (a padded tail the next turn replaces).
  std::vector<uint32_t> retail(turn2.begin(), turn2.begin() + 4 * 4);
  for (uint32_t t : Tokens(4, 3)) retail.push_back(t);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, retail, 0, 5).ok());
  EXPECT_EQ(origin(retail, 4), kOriginContinuation);

  // A branch after block 0, which was followed by two blocks in the Put that stored it.
  std::vector<uint32_t> branch(turn1.begin(), turn1.begin() + 4);
  for (uint32_t t : Tokens(8, 4)) branch.push_back(t);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, branch, 0, 3).ok());
  EXPECT_EQ(origin(branch, 1), kOriginOther);
  EXPECT_EQ(origin(branch, 2), kOriginOther);
  // A Put of new blocks only, after a parent that is not cached, cannot say: other.
  const std::vector<uint32_t> orphan = Tokens(4 * 3, 5);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, orphan, 2, 1).ok());
  EXPECT_EQ(origin(orphan, 2), kOriginOther);
  EXPECT_EQ(origin(orphan, 0), -1);
}

TEST_F(BlockStoreTest, PutIsIdempotentAndCanExtendAPrefix) {
  std::vector<uint32_t> tokens = Tokens(16, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, tokens, 0, 2).ok());
  absl::StatusOr<PutResult> again = PutBlocks(*store_, "a", layout_, tokens, 0, 3);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->existing_blocks, 2u);
  EXPECT_EQ(again->stored_blocks, 1u);
  // A Put may start in the middle of the prompt: the engine put only its new blocks.
  absl::StatusOr<PutResult> tail = PutBlocks(*store_, "a", layout_, tokens, 3, 1);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_EQ(tail->stored_blocks, 1u);
  EXPECT_EQ(Matched(tokens), 4u);
  EXPECT_EQ(store_->Stats().t1_used_blocks, 4u);
}

TEST_F(BlockStoreTest, AnIncompletePutIsNeverVisible) {
  std::vector<uint32_t> tokens = Tokens(8, 1);
  std::vector<uint8_t> payload = PayloadsFor("a", layout_, tokens, 0, 2);
  {
    auto put = store_->BeginPut(Spec(tokens, 0, 2));
    ASSERT_TRUE(put.ok());
    ASSERT_TRUE((*put)->Write(std::span(payload).first(payload.size() - 1)).ok());
    EXPECT_EQ(Matched(tokens), 0u);  // nothing visible before Commit
    absl::StatusOr<PutResult> r = (*put)->Commit();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("ended before carried block 1 was complete"),
              std::string_view::npos);
    // The counts are those of the Put as announced (the message is made before the abort
    // drops its blocks).
    const std::string want = absl::StrCat(payload.size() - 1, " of ", payload.size(),
                                          " payload bytes arrived; 2 blocks of ");
    EXPECT_NE(r.status().message().find(want), std::string_view::npos) << r.status();
  }
  {
    auto put = store_->BeginPut(Spec(tokens, 0, 2));
    ASSERT_TRUE(put.ok());
    ASSERT_TRUE((*put)->Write(payload).ok());
    // Dropped without Commit: abandoned (a client that went away).
  }
  EXPECT_EQ(Matched(tokens), 0u);
  BlockStoreStats stats = store_->Stats();
  EXPECT_EQ(stats.t1_used_blocks, 0u);
  EXPECT_EQ(stats.t1_reserved_blocks, 0u);
  EXPECT_EQ(stats.put_failures, 2u);
  // All slots came back: the whole arena can still be filled.
  std::vector<uint32_t> big = Tokens(16 * 4, 9);
  EXPECT_TRUE(PutBlocks(*store_, "a", layout_, big, 0, 16).ok());
}

TEST_F(BlockStoreTest, PayloadPastTheAnnouncedBlocksIsRejected) {
  std::vector<uint32_t> tokens = Tokens(8, 1);
  auto put = store_->BeginPut(Spec(tokens, 0, 1));
  ASSERT_TRUE(put.ok());
  std::vector<uint8_t> payload(layout_.BlockBytes() + 1, 0);
  absl::Status s = (*put)->Write(payload);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("runs past"), std::string_view::npos) << s.message();
}

TEST_F(BlockStoreTest, ChecksumMismatchAtPutStoresNothing) {
  std::vector<uint32_t> tokens = Tokens(8, 1);
  std::vector<uint8_t> payload = PayloadsFor("a", layout_, tokens, 0, 2);
  std::vector<uint64_t> checksums = LayerChecksumsOf(layout_, payload, 2);
  checksums[layout_.num_layers + 1] ^= 1;  // wrong for layer 1 of block 1
  PutSpec spec = Spec(tokens, 0, 2);
  spec.layer_checksums = checksums;
  absl::StatusOr<PutResult> r = store_->Put(spec, payload);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find(absl::StrFormat(
                "the header announced %016x", checksums[layout_.num_layers + 1])),
            std::string_view::npos)
      << r.status();  // read before the abort frees the block (found by ASan)
  EXPECT_NE(r.status().message().find("checksum mismatch on carried block 1, layer 1"),
            std::string_view::npos)
      << r.status();
  EXPECT_EQ(Matched(tokens), 0u);  // not even block 0, whose checksum was right
  EXPECT_EQ(store_->Stats().t1_used_blocks, 0u);
}

TEST_F(BlockStoreTest, ACorruptedBlockIsNeverServed) {
  std::vector<uint32_t> tokens = Tokens(12, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, tokens, 0, 3).ok());
  std::vector<BlockKey> keys = KeysOf("a", layout_, tokens);
  auto sub = store_->events().Subscribe("a", [] {});
  {
    // Flip one bit of block 1 in T1, as a memory fault would.
    auto read = store_->ReadBlocks("a", std::span(keys).subspan(1, 1));
    ASSERT_TRUE(read.ok());
    const_cast<uint8_t*>((*read)->blocks()[0].data)[100] ^= 0x01;
  }
  // T1 blocks are verified as they are read out, layer by layer: the good ones pass, the
  // damaged layer fails (and drops its block), whether it is checked or copied.
  auto read = store_->ReadBlocks("a", keys);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE((*read)->Verify(0, 0, layout_.BlockBytes()).ok());
  EXPECT_TRUE((*read)->Verify(1, layout_.LayerBytes(), layout_.LayerBytes()).ok());  // layer 1
  std::vector<uint8_t> copy(layout_.BlockBytes());
  absl::Status s = (*read)->CopyOut(1, 0, layout_.BlockBytes(), copy.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("failed its checksum in layer 0"), std::string_view::npos) << s;
  EXPECT_EQ((*read)->Verify(1, 0, 1).code(), absl::StatusCode::kDataLoss);  // still bad
  read->reset();
  EXPECT_EQ(Matched(tokens), 1u);  // block 1 dropped, so the prefix ends before it
  BlockStoreStats stats = store_->Stats();
  EXPECT_EQ(stats.checksum_failures, 1u);
  EXPECT_EQ(stats.t1_used_blocks, 2u);
  EventLog::Batch batch = store_->events().Read(*sub, 10);
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_EQ(batch.events[0].type, BlockEvent::Type::kRemoved);
  EXPECT_EQ(batch.events[0].reason, BlockEvent::Reason::kCorrupted);
  EXPECT_EQ(batch.events[0].key, keys[1]);
  store_->events().Unsubscribe(sub);
}

TEST_F(BlockStoreTest, EvictsTheLeastRecentlyUsedBlockWhenFull) {
  MakeStore(4);
  std::vector<std::vector<uint32_t>> prompts;
  for (uint32_t i = 0; i < 4; ++i) {
    prompts.push_back(Tokens(4, 10 + i));
    ASSERT_TRUE(PutBlocks(*store_, "a", layout_, prompts.back(), 0, 1).ok());
  }
  EXPECT_EQ(Matched(prompts[0]), 1u);  // touch 0: now 1 is the least recent
  std::vector<uint32_t> fresh = Tokens(4, 99);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, fresh, 0, 1).ok());
  EXPECT_EQ(Matched(prompts[1]), 0u);
  EXPECT_EQ(Matched(prompts[0]), 1u);
  EXPECT_EQ(Matched(prompts[2]), 1u);
  EXPECT_EQ(Matched(fresh), 1u);
  BlockStoreStats stats = store_->Stats();
  EXPECT_EQ(stats.evicted_blocks, 1u);
  EXPECT_EQ(stats.t1_used_blocks, 4u);
}

TEST_F(BlockStoreTest, LeasedBlocksAreNeverEvictedAndAFullStoreSaysSo) {
  MakeStore(2);
  std::vector<uint32_t> tokens = Tokens(8, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, tokens, 0, 2).ok());
  absl::StatusOr<LookupResult> lookup = Lookup(tokens);
  ASSERT_TRUE(lookup.ok());
  ASSERT_EQ(lookup->matched_blocks(), 2u);
  absl::StatusOr<PutResult> r = PutBlocks(*store_, "a", layout_, Tokens(4, 2), 0, 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("T1 has no room"), std::string_view::npos) << r.status();
  EXPECT_EQ(Matched(tokens), 2u);
  ASSERT_TRUE(store_->Release("a", lookup->lease_id).ok());
  EXPECT_TRUE(PutBlocks(*store_, "a", layout_, Tokens(4, 2), 0, 1).ok());
  EXPECT_EQ(store_->Stats().evicted_blocks, 1u);
}

TEST_F(BlockStoreTest, LeasesExpireAfterTheirTtl) {
  MakeStore(1);
  std::vector<uint32_t> tokens = Tokens(4, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, tokens, 0, 1).ok());
  absl::StatusOr<LookupResult> lookup =
      store_->Lookup({.tenant = "a", .layout = &layout_, .tokens = tokens},
                     {.lease = true, .lease_ttl = absl::Seconds(2)});
  ASSERT_TRUE(lookup.ok());
  EXPECT_EQ(lookup->lease_ttl, absl::Seconds(2));
  EXPECT_EQ(PutBlocks(*store_, "a", layout_, Tokens(4, 2), 0, 1).status().code(),
            absl::StatusCode::kResourceExhausted);
  clock_.Advance(absl::Seconds(3));
  absl::Status s = store_->ReadLease("a", lookup->lease_id).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("expired"), std::string_view::npos) << s;
  EXPECT_EQ(store_->Stats().active_leases, 0u);
  EXPECT_TRUE(PutBlocks(*store_, "a", layout_, Tokens(4, 2), 0, 1).ok());  // now evictable
}

TEST_F(BlockStoreTest, LeaseTtlIsCappedAtTheMaximum) {
  std::vector<uint32_t> tokens = Tokens(4, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, tokens, 0, 1).ok());
  absl::StatusOr<LookupResult> lookup =
      store_->Lookup({.tenant = "a", .layout = &layout_, .tokens = tokens},
                     {.lease = true, .lease_ttl = absl::Hours(100)});
  ASSERT_TRUE(lookup.ok());
  EXPECT_EQ(lookup->lease_ttl, BlockStoreOptions().max_lease_ttl);
}

TEST_F(BlockStoreTest, PinnedBlocksStayUntilUnpinOrTtl) {
  MakeStore(2);
  std::vector<uint32_t> system_prompt = Tokens(4, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, system_prompt, 0, 1).ok());
  std::vector<BlockKey> keys = KeysOf("a", layout_, system_prompt);
  absl::StatusOr<absl::Duration> ttl = store_->Pin("a", keys, absl::Minutes(5));
  ASSERT_TRUE(ttl.ok());
  EXPECT_EQ(*ttl, absl::Minutes(5));
  EXPECT_EQ(store_->Stats().pinned_blocks, 1u);
  for (uint32_t i = 0; i < 5; ++i) {  // churn through the one unpinned slot
    ASSERT_TRUE(PutBlocks(*store_, "a", layout_, Tokens(4, 10 + i), 0, 1).ok());
  }
  EXPECT_EQ(Matched(system_prompt), 1u);
  clock_.Advance(absl::Minutes(6));  // the pin expires
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, Tokens(4, 20), 0, 1).ok());
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, Tokens(4, 21), 0, 1).ok());
  EXPECT_EQ(Matched(system_prompt), 0u);
  EXPECT_EQ(store_->Stats().pinned_blocks, 0u);
}

TEST_F(BlockStoreTest, UnpinMakesABlockEvictableAgain) {
  MakeStore(1);
  std::vector<uint32_t> tokens = Tokens(4, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, tokens, 0, 1).ok());
  std::vector<BlockKey> keys = KeysOf("a", layout_, tokens);
  ASSERT_TRUE(store_->Pin("a", keys, absl::ZeroDuration()).ok());
  EXPECT_EQ(PutBlocks(*store_, "a", layout_, Tokens(4, 2), 0, 1).status().code(),
            absl::StatusCode::kResourceExhausted);
  absl::StatusOr<uint32_t> unpinned = store_->Unpin("a", keys);
  ASSERT_TRUE(unpinned.ok());
  EXPECT_EQ(*unpinned, 1u);
  EXPECT_TRUE(PutBlocks(*store_, "a", layout_, Tokens(4, 2), 0, 1).ok());
}

TEST_F(BlockStoreTest, TenantsCannotSeeEachOthersBlocks) {
  std::vector<uint32_t> tokens = Tokens(8, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, tokens, 0, 2).ok());
  auto sub_b = store_->events().Subscribe("b", [] {});
  std::vector<BlockKey> keys_a = KeysOf("a", layout_, tokens);
  EXPECT_EQ(Matched(tokens, "b"), 0u);
  // Even with a's exact keys, b gets the same answer as for keys that do not exist.
  EXPECT_EQ(store_->ReadBlocks("b", keys_a).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Pin("b", keys_a, absl::ZeroDuration()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Unpin("b", keys_a).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete("b", keys_a).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<LookupResult> lookup_a = Lookup(tokens, "a");
  ASSERT_TRUE(lookup_a.ok());
  EXPECT_EQ(store_->ReadLease("b", lookup_a->lease_id).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Release("b", lookup_a->lease_id).code(), absl::StatusCode::kNotFound);
  // b's Put of the same tokens is a separate block in b's namespace.
  absl::StatusOr<PutResult> put_b = PutBlocks(*store_, "b", layout_, tokens, 0, 2);
  ASSERT_TRUE(put_b.ok());
  EXPECT_EQ(put_b->stored_blocks, 2u);
  EXPECT_NE(put_b->keys[0], keys_a[0]);
  EXPECT_EQ(Matched(tokens, "a"), 2u);
  ASSERT_TRUE(store_->Delete("a", keys_a).ok());
  EventLog::Batch batch = store_->events().Read(*sub_b, 100);
  ASSERT_EQ(batch.events.size(), 2u);  // only b's own two stores
  for (const BlockEvent& e : batch.events) EXPECT_EQ(e.tenant, "b");
  store_->events().Unsubscribe(sub_b);
}

TEST_F(BlockStoreTest, SaltSeparatesNamespaces) {
  std::vector<uint32_t> tokens = Tokens(4, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, tokens, 0, 1).ok());
  absl::StatusOr<LookupResult> salted =
      store_->Lookup({.tenant = "a", .layout = &layout_, .salt = "lora-7", .tokens = tokens}, {});
  ASSERT_TRUE(salted.ok());
  EXPECT_EQ(salted->matched_blocks(), 0u);
}

TEST_F(BlockStoreTest, DeleteWhileReadingKeepsTheBytesUntilTheReaderIsDone) {
  MakeStore(1);
  std::vector<uint32_t> tokens = Tokens(4, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, tokens, 0, 1).ok());
  std::vector<BlockKey> keys = KeysOf("a", layout_, tokens);
  auto read = store_->ReadBlocks("a", keys);
  ASSERT_TRUE(read.ok());
  absl::StatusOr<uint32_t> deleted = store_->Delete("a", keys);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 1u);
  EXPECT_EQ(Matched(tokens), 0u);
  // The slot is still the reader's: a new Put cannot take it.
  EXPECT_EQ(PutBlocks(*store_, "a", layout_, Tokens(4, 2), 0, 1).status().code(),
            absl::StatusCode::kResourceExhausted);
  std::vector<uint8_t> expected = PayloadFor(keys[0], layout_.BlockBytes());
  EXPECT_EQ(std::memcmp((*read)->blocks()[0].data, expected.data(), expected.size()), 0);
  read->reset();
  EXPECT_TRUE(PutBlocks(*store_, "a", layout_, Tokens(4, 2), 0, 1).ok());
}

TEST_F(BlockStoreTest, BadInputIsRejectedByNameAndChangesNothing) {
  std::vector<uint32_t> tokens = Tokens(8, 1);
  KvLayout bad_layout = layout_;
  bad_layout.head_dim = 0;
  PutSpec spec = Spec(tokens, 0, 1);
  spec.prompt.layout = &bad_layout;
  auto r = store_->BeginPut(spec);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("head_dim"), std::string_view::npos);

  r = store_->BeginPut(Spec(tokens, 1, 2));  // blocks [1, 3) but only 2 full blocks
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("hold only 2 full blocks"), std::string_view::npos)
      << r.status();

  r = store_->BeginPut(Spec(tokens, 0, 0));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);

  std::vector<uint64_t> one = {1};
  spec = Spec(tokens, 0, 2);
  spec.layer_checksums = one;
  r = store_->BeginPut(spec);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("layer checksums"), std::string_view::npos);

  KvLayout huge = layout_;
  huge.tokens_per_block = 8;
  huge.head_dim = 4096;  // 512 KiB blocks: more than a quarter of this small store
  spec = Spec(tokens, 0, 1);
  spec.prompt.layout = &huge;
  r = store_->BeginPut(spec);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("max_block_bytes"), std::string_view::npos) << r.status();

  std::vector<uint32_t> too_long(BlockStoreOptions().max_prompt_tokens + 1, 1);
  EXPECT_EQ(Lookup(too_long).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(store_->ReadLease("a", 12345).status().code(), absl::StatusCode::kNotFound);
  BlockStoreStats stats = store_->Stats();
  EXPECT_EQ(stats.t1_used_blocks, 0u);
  EXPECT_EQ(stats.t1_reserved_blocks, 0u);
}

TEST_F(BlockStoreTest, EventsFollowStoresAndEvictionsInOrder) {
  MakeStore(1);
  auto sub = store_->events().Subscribe("a", [] {});
  std::vector<uint32_t> first = Tokens(8, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, first, 0, 1).ok());
  std::vector<uint32_t> second = Tokens(4, 2);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, second, 0, 1).ok());
  EventLog::Batch batch = store_->events().Read(*sub, 10);
  ASSERT_EQ(batch.events.size(), 3u);
  EXPECT_EQ(batch.events[0].type, BlockEvent::Type::kStored);
  EXPECT_EQ(batch.events[0].key, KeysOf("a", layout_, first)[0]);
  EXPECT_FALSE(batch.events[0].parent.has_value());
  EXPECT_EQ(batch.events[1].type, BlockEvent::Type::kRemoved);
  EXPECT_EQ(batch.events[1].reason, BlockEvent::Reason::kEvicted);
  EXPECT_EQ(batch.events[2].type, BlockEvent::Type::kStored);
  EXPECT_EQ(batch.events[2].layout_fingerprint, layout_.Fingerprint());
  EXPECT_LT(batch.events[0].seq, batch.events[1].seq);
  EXPECT_LT(batch.events[1].seq, batch.events[2].seq);
  store_->events().Unsubscribe(sub);
}

TEST_F(BlockStoreTest, ChildKeepsParentKeyAndPutOfChildProtectsCachedParents) {
  MakeStore(3);
  std::vector<uint32_t> tokens = Tokens(12, 1);
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, tokens, 0, 2).ok());
  ASSERT_TRUE(PutBlocks(*store_, "a", layout_, Tokens(4, 5), 0, 1).ok());  // store is full
  // Putting blocks 0..2 again must not evict blocks 0 and 1 to make room for block 2.
  absl::StatusOr<PutResult> r = PutBlocks(*store_, "a", layout_, tokens, 0, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Matched(tokens), 3u);
}

// A shard of a cluster holds a scattered subset of a prompt's blocks: a Put names them by
// index, a presence Lookup reports (and leases) each of them, and Pin/Unpin/Delete of keys
// it does not hold skip them when asked to.
TEST_F(BlockStoreTest, AShardStoresAndReportsScatteredBlocks) {
  const std::vector<uint32_t> tokens = Tokens(4 * 6, 3);  // 6 full blocks
  const std::vector<BlockKey> keys = KeysOf("a", layout_, tokens);
  const std::vector<uint32_t> mine = {1, 2, 4};
  std::vector<uint8_t> payload;
  for (uint32_t b : mine) {
    const std::vector<uint8_t> p = PayloadFor(keys[b], layout_.BlockBytes());
    payload.insert(payload.end(), p.begin(), p.end());
  }
  PutSpec spec = Spec(tokens, 0, 3);
  spec.block_indices = mine;
  absl::StatusOr<PutResult> put = store_->Put(spec, payload);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->stored_blocks, 3u);
  EXPECT_EQ(put->keys, (std::vector<BlockKey>{keys[1], keys[2], keys[4]}));

  EXPECT_EQ(Matched(tokens), 0u);  // block 0 is elsewhere
  absl::StatusOr<LookupResult> present = store_->Lookup(
      {.tenant = "a", .layout = &layout_, .tokens = tokens}, {.report_present = true});
  ASSERT_TRUE(present.ok()) << present.status();
  EXPECT_EQ(present->matched_blocks(), 0u);
  EXPECT_EQ(present->present, mine);
  EXPECT_EQ(present->keys, (std::vector<BlockKey>{keys[1], keys[2], keys[4]}));
  ASSERT_NE(present->lease_id, 0u);
  absl::StatusOr<std::unique_ptr<BlockReadHandle>> read = store_->ReadLease("a", present->lease_id);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ((*read)->blocks().size(), 3u);
  EXPECT_EQ(std::memcmp((*read)->blocks()[2].data, payload.data() + 2 * layout_.BlockBytes(),
                        layout_.BlockBytes()),
            0);
  read->reset();
  ASSERT_TRUE(store_->Release("a", present->lease_id).ok());
  // A presence lookup is not a hit-rate sample of this shard.
  const BlockStoreStats stats = store_->Stats();
  EXPECT_EQ(stats.presence_lookups, 1u);
  EXPECT_EQ(stats.presence_requested_blocks, 6u);
  EXPECT_EQ(stats.presence_held_blocks, 3u);
  EXPECT_EQ(stats.lookups, 1u);  // the ordinary one above
  EXPECT_EQ(stats.lookup_hit_blocks, 0u);
  // Another tenant: nothing present.
  absl::StatusOr<LookupResult> other = store_->Lookup(
      {.tenant = "b", .layout = &layout_, .tokens = tokens}, {.report_present = true});
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->present.empty());

  // Bad index lists are refused by name, and nothing is stored.
  for (std::vector<uint32_t> bad : std::vector<std::vector<uint32_t>>{{2, 1, 4}, {1, 1, 4},
                                                                       {1, 2, 6}}) {
    PutSpec b = Spec(tokens, 0, 3);
    b.block_indices = bad;
    absl::StatusOr<PutResult> r = store_->Put(b, payload);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  }
  PutSpec count = Spec(tokens, 0, 2);
  count.block_indices = mine;
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Put(count, payload).status()));

  // Every key of the prompt: strict calls fail on the missing ones, skipping calls count.
  EXPECT_TRUE(absl::IsNotFound(store_->Pin("a", keys, absl::Seconds(5)).status()));
  uint32_t pinned = 0;
  ASSERT_TRUE(store_->Pin("a", keys, absl::Seconds(5), /*skip_missing=*/true, &pinned).ok());
  EXPECT_EQ(pinned, 3u);
  absl::StatusOr<uint32_t> unpinned = store_->Unpin("a", keys, /*skip_missing=*/true);
  ASSERT_TRUE(unpinned.ok());
  EXPECT_EQ(*unpinned, 3u);
  EXPECT_TRUE(absl::IsNotFound(store_->Delete("a", keys).status()));
  absl::StatusOr<uint32_t> deleted = store_->Delete("b", keys, /*skip_missing=*/true);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 0u);  // not b's blocks
  deleted = store_->Delete("a", keys, /*skip_missing=*/true);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 3u);
}

}  // namespace
}  // namespace kvtier
