// BlockStore: Puts. BeginPut validates the prompt, touches the blocks already cached and
// reserves a T1 slot and a handle for each new one (evicting, and demoting, as needed); the
// caller writes the bytes into the PendingPut (block_handles.h), which hashes each layer as
// it lands; CommitPut checks that every block arrived whole and matches the layer
// checksums its header announced, then publishes the new blocks under the lock. AbortPut
// gives every reservation back.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "cache_store/block_store.h"
#include "cache_store/checksum.h"

namespace kvtier {

PutOrigin BlockStore::OriginOf(const std::vector<BlockKey>& keys, uint32_t first_new) const {
  if (first_new == 0) return kOriginRoot;
  const std::optional<uint32_t> parent = index_.Find(keys[first_new - 1]);
  if (parent && entries_[*parent].blocks_to_end <= 1) return kOriginContinuation;
  return kOriginOther;
}

absl::StatusOr<std::unique_ptr<PendingPut>> BlockStore::BeginPut(const PutSpec& spec) {
  if (absl::Status s = ValidatePrompt(spec.prompt); !s.ok()) return s;
  const KvLayout& layout = *spec.prompt.layout;
  if (spec.num_blocks == 0) {
    return absl::InvalidArgumentError("a Put must carry at least one block (num_blocks = 0)");
  }
  const uint64_t full_blocks = spec.prompt.tokens.size() / layout.tokens_per_block;
  // The carried blocks' indices in the prompt.
  std::vector<uint32_t> carried;
  if (!spec.block_indices.empty()) {
    if (spec.block_indices.size() != spec.num_blocks || spec.first_block != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a Put naming its blocks (block_indices: ", spec.block_indices.size(),
          ") must announce as many (num_blocks = ", spec.num_blocks, ") and first_block = 0 (got ",
          spec.first_block, ")"));
    }
    for (size_t i = 0; i < spec.block_indices.size(); ++i) {
      if (i > 0 && spec.block_indices[i] <= spec.block_indices[i - 1]) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the Put's block_indices must be strictly ascending (", spec.block_indices[i - 1],
            " then ", spec.block_indices[i], " at position ", i, ")"));
      }
    }
    carried.assign(spec.block_indices.begin(), spec.block_indices.end());
  }
  const uint64_t end_block = carried.empty() ? uint64_t{spec.first_block} + spec.num_blocks
                                             : uint64_t{carried.back()} + 1;
  if (end_block > full_blocks) {
    return absl::InvalidArgumentError(
        absl::StrCat("the Put announces blocks up to index ", end_block - 1, " but its ",
                     spec.prompt.tokens.size(), " token ids hold only ", full_blocks,
                     " full blocks of ", layout.tokens_per_block, " tokens"));
  }
  if (carried.empty()) {
    carried.resize(spec.num_blocks);
    for (uint32_t i = 0; i < spec.num_blocks; ++i) carried[i] = spec.first_block + i;
  }
  const uint64_t sums_expected = uint64_t{spec.num_blocks} * layout.num_layers;
  if (!spec.layer_checksums.empty() && spec.layer_checksums.size() != sums_expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("the Put carries ", spec.layer_checksums.size(), " layer checksums for ",
                     spec.num_blocks, " blocks of ", layout.num_layers, " layers; send none or ",
                     sums_expected, " (one per layer of each block)"));
  }
  const uint64_t block_bytes = layout.BlockBytes();
  if (block_bytes > t1_->max_block_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a block of this layout is ", block_bytes, " bytes; this store takes blocks of at most ",
        t1_->max_block_bytes(), " bytes (raise the store's --max_block_bytes)"));
  }

  const BlockKey ns = NamespaceKey(spec.prompt.tenant, layout.Fingerprint(), spec.prompt.salt);
  const std::vector<BlockKey> keys =
      ChainBlockKeys(ns, spec.prompt.tokens, layout.tokens_per_block, end_block);
  std::unique_ptr<PendingPut> put(new PendingPut(
      this, block_bytes, layout.Fingerprint(), layout.num_layers, std::string(spec.prompt.tenant)));
  put->blocks_.reserve(spec.num_blocks);
  put->output_tokens_ = spec.output_tokens;

  Reservation reservation;
  {
    absl::MutexLock lock(&mu_);
    Sweep(clock_->Now());
    put->tenant_id_ = ledger_.Acquire(spec.prompt.tenant);
    std::optional<PutOrigin> origin;  // set at the Put's first new block
    for (uint32_t i = 0; i < spec.num_blocks; ++i) {
      const uint32_t b = carried[i];
      PendingPut::Block block;
      block.key = keys[b];
      if (b > 0) block.parent = keys[b - 1];
      if (!spec.layer_checksums.empty()) {
        const auto sums =
            spec.layer_checksums.subspan(uint64_t{i} * layout.num_layers, layout.num_layers);
        block.expected.assign(sums.begin(), sums.end());
      }
      block.depth = b;
      block.prompt_tail = spec.last_block_partial && i + 1 == spec.num_blocks;
      block.blocks_to_end = static_cast<uint8_t>(std::min<uint32_t>(spec.num_blocks - 1 - i, 255));
      if (std::optional<uint32_t> h = index_.Find(block.key)) {
        // Already cached: an access, and protected until this Put ends so that reserving
        // slots for its successors cannot evict it.
        Touch(*h);
        Ref(*h);
        block.existing = *h;
      } else {
        if (!origin) origin = OriginOf(keys, b);
        block.origin = *origin;
        std::optional<uint32_t> slot = AllocateT1(block_bytes, put->tenant_id_, reservation);
        const bool handle = slot && ReserveHandle(put->tenant_id_);
        if (!handle) {
          if (slot) t1_->slots().Free(*slot);
          const uint64_t limit = ledger_.quota(put->tenant_id_).t1_limit;
          const bool at_limit = ledger_.OverLimit(put->tenant_id_, Tier::kHostDram, block_bytes);
          // The slots reserved so far go back to T1: demotions reading from them are
          // abandoned (their blocks dropped), since another Put may reuse the slots.
          for (Demotion& d : reservation.demotions) d.status = absl::AbortedError("the Put failed");
          FinishDemotions(reservation);
          AbortPutLocked(*put);
          if (at_limit) {
            return absl::ResourceExhaustedError(absl::StrCat(
                "tenant ", std::string(spec.prompt.tenant), " is at its T1 limit of ", limit,
                " bytes and none of its blocks can be evicted to take a block of ",
                absl::StrCat(block_bytes,
                             " bytes: they are leased, pinned, read or in flight; retry later")));
          }
          return absl::ResourceExhaustedError(absl::StrCat(
              slot ? absl::StrCat("the store holds --max_blocks=", entries_.size(),
                                  " blocks and none can be evicted to take one more")
                   : absl::StrCat("T1 has no room for a block of ", block_bytes, " bytes"),
              ": the blocks that could make room are leased, pinned, read or in flight",
              ledger_.enabled() ? " or within other tenants' guarantees" : "", "; retry later"));
        }
        ++reserved_blocks_;
        ledger_.Charge(put->tenant_id_, Tier::kHostDram, static_cast<int64_t>(block_bytes), 0);
        block.slot = *slot;
      }
      put->blocks_.push_back(block);
    }
  }
  if (!reservation.empty()) {
    // The evicted blocks' bytes are still in the slots this Put reserved; they reach T2
    // before the Put may write there.
    RunDemotions(reservation);
    absl::MutexLock lock(&mu_);
    FinishDemotions(reservation);
  }
  return put;
}

absl::StatusOr<PutResult> BlockStore::Put(const PutSpec& spec, std::span<const uint8_t> payload) {
  absl::StatusOr<std::unique_ptr<PendingPut>> put = BeginPut(spec);
  if (!put.ok()) return put.status();
  if (absl::Status s = (*put)->Write(payload); !s.ok()) return s;
  return (*put)->Commit();
}

absl::StatusOr<PutResult> BlockStore::CommitPut(PendingPut& put) {
  for (size_t i = 0; i < put.blocks_.size(); ++i) {
    if (!put.blocks_[i].filled) {
      const uint64_t arrived = put.copied_ ? 0 : put.received_;
      // The message first: aborting drops the blocks it counts.
      absl::Status incomplete = absl::InvalidArgumentError(
          absl::StrCat("the Put ended before carried block ", i, " was complete (", arrived, " of ",
                       put.expected_bytes(), " payload bytes arrived; ", put.blocks_.size(),
                       " blocks of ", put.block_bytes_, " bytes were announced)"));
      AbortPut(put);
      return incomplete;
    }
  }
  // Every layer was hashed as it landed; only the announced checksums are left to check.
  for (size_t i = 0; i < put.blocks_.size(); ++i) {
    const PendingPut::Block& b = put.blocks_[i];
    if (!b.slot || b.expected.empty()) continue;
    for (uint32_t l = 0; l < put.num_layers_; ++l) {
      if (b.expected[l] != b.layer_sums[l]) {
        // The message first: aborting frees the blocks `b` refers to.
        absl::Status mismatch = absl::DataLossError(absl::StrFormat(
            "checksum mismatch on carried block %d, layer %d: the payload's XXH3 is %016x but "
            "the header announced %016x",
            i, l, b.layer_sums[l], b.expected[l]));
        AbortPut(put);
        return mismatch;
      }
    }
  }

  PutResult result;
  absl::MutexLock lock(&mu_);
  Sweep(clock_->Now());
  for (PendingPut::Block& b : put.blocks_) {
    result.keys.push_back(b.key);
    if (b.existing) {
      Unref(*b.existing);
      ++result.existing_blocks;
      continue;
    }
    --reserved_blocks_;
    --reserved_handles_;
    ledger_.Charge(put.tenant_id_, Tier::kHostDram, -static_cast<int64_t>(put.block_bytes_), 0);
    if (index_.Find(b.key)) {  // a concurrent Put of the same block committed first
      t1_->slots().Free(*b.slot);
      ++result.existing_blocks;
      continue;
    }
    const uint32_t h = NewHandle();
    Entry& e = entries_[h];
    e.tier = Tier::kHostDram;
    e.slot = *b.slot;
    e.key = b.key;
    e.parent = b.parent;
    e.tenant = put.tenant_;
    e.tenant_id = ledger_.Acquire(put.tenant_);
    e.layout_fingerprint = put.layout_fingerprint_;
    e.num_layers = put.num_layers_;
    e.depth = b.depth;
    e.prompt_tail = b.prompt_tail;
    e.blocks_to_end = b.blocks_to_end;
    e.origin = b.origin;
    e.output_tokens = put.output_tokens_;
    e.size = put.block_bytes_;
    e.checksum = DigestLayerChecksums(b.layer_sums);
    e.layer_sums = std::move(b.layer_sums);
    const uint64_t fingerprint = TraitsOf(e).key_fingerprint;
    e.returned = returns_.Take(fingerprint).has_value();
    predictor_.OnReturn(fingerprint);
    AddResident(h);
    ++result.stored_blocks;
    events_.Append(EventFor(e, BlockEvent::Type::kStored, BlockEvent::Reason::kPut));
  }
  put.done_ = true;
  ReleasePutTenant(put);
  counters_.put_stored_blocks += result.stored_blocks;
  if (put.output_tokens_ > 0) counters_.put_output_reported_blocks += result.stored_blocks;
  counters_.put_existing_blocks += result.existing_blocks;
  counters_.put_bytes += put.expected_bytes();
  return result;
}

void BlockStore::ReleasePutTenant(PendingPut& put) {
  if (put.tenant_id_ == kNone) return;
  ledger_.Release(put.tenant_id_);
  put.tenant_id_ = kNone;
}

void BlockStore::AbortPut(PendingPut& put) {
  absl::MutexLock lock(&mu_);
  AbortPutLocked(put);
}

void BlockStore::AbortPutLocked(PendingPut& put) {
  for (const PendingPut::Block& b : put.blocks_) {
    if (b.slot) {
      t1_->slots().Free(*b.slot);
      --reserved_blocks_;
      --reserved_handles_;
      ledger_.Charge(put.tenant_id_, Tier::kHostDram, -static_cast<int64_t>(put.block_bytes_), 0);
    } else if (b.existing) {
      Unref(*b.existing);
    }
  }
  put.blocks_.clear();
  put.done_ = true;
  ReleasePutTenant(put);
  ++counters_.put_failures;
}

}  // namespace kvtier
