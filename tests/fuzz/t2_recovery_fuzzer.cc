// T2 recovery from a slab file of arbitrary bytes: a store restarted on a damaged or hostile
// kvtier-t2.slab serves only records that verify, drops the rest, and never crashes. The
// input is a list of patches (u16 offset in 64-byte units, u8 length, bytes) applied to a
// real slab file written by a store that demoted blocks, so the fuzzer reaches past the
// superblock into the slab table and the record headers.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "cache_store/block_store.h"
#include "cache_store/log.h"

namespace {

using namespace kvtier;

std::string* dir = nullptr;
std::vector<uint8_t>* image = nullptr;

KvLayout Layout() {
  return KvLayout{.model_id = "fuzz", .num_layers = 2, .num_kv_heads = 1, .head_dim = 16,
                  .dtype = DType::kFp16, .tokens_per_block = 4};
}

BlockStoreOptions Options() {
  BlockStoreOptions o;
  o.t1 = {.capacity_bytes = 64 << 10, .min_slot_bytes = 4096, .lock_mode = MemoryLockMode::kNone};
  o.t2 = {.directory = *dir, .capacity_bytes = 128 << 10, .direct_io = false};
  o.eviction_policy = "lru";
  o.t2_admit_min_score = 0;
  o.t2_admit_min_return = 0;
  return o;
}

std::string SlabPath() { return *dir + "/kvtier-t2.slab"; }

// A store whose T1 overflows into T2 leaves a slab file of real records.
void MakeImage() {
  dir = new std::string(std::filesystem::temp_directory_path() /
                        ("kvtier-fuzz-t2-" + std::to_string(getpid())));
  std::filesystem::remove_all(*dir);
  std::filesystem::create_directories(*dir);
  std::atexit([] { std::filesystem::remove_all(*dir); });
  {
    std::unique_ptr<BlockStore> store = *BlockStore::Create(Options());
    const KvLayout layout = Layout();
    for (uint32_t p = 0; p < 24; ++p) {
      std::vector<uint32_t> tokens(8);
      for (uint32_t i = 0; i < 8; ++i) tokens[i] = p * 100 + i;
      std::vector<uint8_t> payload(2 * layout.BlockBytes(), static_cast<uint8_t>(p));
      KVTIER_CHECK(store
                       ->Put({.prompt = {.tenant = p % 2 ? "a" : "b", .layout = &layout,
                                         .tokens = tokens},
                              .num_blocks = 2},
                             payload)
                       .ok());
    }
    store->FlushT2Writes();
    KVTIER_CHECK(store->Stats().t2_used_blocks > 0) << "the image has no T2 records";
  }
  std::ifstream in(SlabPath(), std::ios::binary);
  image = new std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  MakeImage();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> file = *image;
  for (size_t i = 0; i + 3 <= size;) {
    const size_t offset = (size_t{data[i]} | size_t{data[i + 1]} << 8) * 64;
    const size_t length = data[i + 2];
    i += 3;
    for (size_t k = 0; k < length && i < size; ++k, ++i) {
      if (offset + k < file.size()) file[offset + k] = data[i];
    }
  }
  std::ofstream(SlabPath(), std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(file.data()), static_cast<std::streamsize>(file.size()));
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Create(Options());
  if (!store.ok()) return 0;  // refused with a reason: fine
  const BlockStoreStats stats = (*store)->Stats();
  KVTIER_CHECK(stats.t2_used_blocks + stats.t2_recovery_drops <= 1024) << "implausible recovery";
  // Whatever was recovered is served only if it verifies: read every recovered block.
  const KvLayout layout = Layout();
  for (uint32_t p = 0; p < 24; ++p) {
    std::vector<uint32_t> tokens(8);
    for (uint32_t i = 0; i < 8; ++i) tokens[i] = p * 100 + i;
    const std::string_view tenant = p % 2 ? "a" : "b";
    absl::StatusOr<LookupResult> found = (*store)->Lookup(
        {.tenant = tenant, .layout = &layout, .tokens = tokens}, {.report_present = true});
    if (!found.ok() || found->lease_id == 0) continue;
    absl::StatusOr<std::unique_ptr<BlockReadHandle>> read =
        (*store)->ReadLease(tenant, found->lease_id);
    if (read.ok()) {
      // A block that verifies holds exactly the bytes that were put.
      for (size_t b = 0; b < (*read)->blocks().size(); ++b) {
        const uint64_t bytes = (*read)->blocks()[b].size;
        std::vector<uint8_t> got(bytes);
        if (!(*read)->CopyOut(b, 0, bytes, got.data()).ok()) continue;
        for (uint8_t x : got) {
          KVTIER_CHECK(x == static_cast<uint8_t>(p)) << "a recovered block was altered";
        }
      }
    }
    read = absl::UnknownError("released");
    (void)(*store)->Release(tenant, found->lease_id);
  }
  return 0;
}
