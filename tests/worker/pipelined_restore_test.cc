// PipelinedRestore against a real in-process store, on both of its paths: straight into host
// pages, and through staging and a RestoreUploader (the device path's structure). The
// uploader here is a host stand-in for CudaRestoreUploader: it performs each queued copy on
// its own thread after a delay, like a copy engine, so the test can tell whether WaitLayer
// really waits for a layer's copies, and whether Finish waits for all of them. The CUDA
// uploader itself is exercised by the GPU tests (cuda_decoder_test).
#include "worker/pipelined_restore.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <random>

#include "absl/synchronization/mutex.h"
#include "tests/services/test_store_server.h"

namespace kvtier::worker {
namespace {

KvLayout Layout() {
  return KvLayout{.model_id = "restore-test",
                  .num_layers = 4,
                  .num_kv_heads = 2,
                  .head_dim = 64,
                  .dtype = DType::kBf16,
                  .tokens_per_block = 16};
}

class AsyncHostUploader final : public RestoreUploader {
 public:
  AsyncHostUploader(std::vector<const uint8_t*> staging, std::vector<uint8_t*> pages,
                    uint32_t layers, uint64_t layer_bytes, int fail_at_layer = -1)
      : staging_(std::move(staging)),
        pages_(std::move(pages)),
        layer_bytes_(layer_bytes),
        fail_at_layer_(fail_at_layer),
        done_marks_(layers, false) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~AsyncHostUploader() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  absl::Status Copy(uint32_t block, uint64_t offset, uint64_t length) override {
    if (static_cast<int>(offset / layer_bytes_) == fail_at_layer_) {
      return absl::InternalError("injected copy failure");
    }
    absl::MutexLock lock(&mu_);
    queue_.push_back({block, offset, length, -1});
    copied_requests_ += length;
    return absl::OkStatus();
  }
  absl::Status LayerQueued(uint32_t layer) override {
    absl::MutexLock lock(&mu_);
    queue_.push_back({0, 0, 0, static_cast<int>(layer)});
    return absl::OkStatus();
  }
  absl::Status WaitLayer(uint32_t layer) override {
    absl::MutexLock lock(&mu_);
    auto done = [this, layer]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return static_cast<bool>(done_marks_[layer]);
    };
    mu_.Await(absl::Condition(&done));
    return absl::OkStatus();
  }
  absl::Status Drain() override {
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return queue_.empty() && !busy_; };
    mu_.Await(absl::Condition(&idle));
    drained_ = true;
    return absl::OkStatus();
  }

  uint64_t copied_requests() {
    absl::MutexLock lock(&mu_);
    return copied_requests_;
  }
  bool drained() {
    absl::MutexLock lock(&mu_);
    return drained_;
  }

 private:
  struct Item {
    uint32_t block;
    uint64_t offset, length;
    int mark;  // >= 0: a layer mark
  };

  void Loop() {
    while (true) {
      Item item;
      {
        absl::MutexLock lock(&mu_);
        auto work = [this]()
                        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); };
        mu_.Await(absl::Condition(&work));
        if (queue_.empty()) return;
        item = queue_.front();
        queue_.pop_front();
        busy_ = true;
      }
      if (item.mark < 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));  // a slow copy engine
        std::memcpy(pages_[item.block] + item.offset, staging_[item.block] + item.offset,
                    item.length);
      }
      absl::MutexLock lock(&mu_);
      if (item.mark >= 0) done_marks_[item.mark] = true;
      busy_ = false;
    }
  }

  const std::vector<const uint8_t*> staging_;
  const std::vector<uint8_t*> pages_;
  const uint64_t layer_bytes_;
  const int fail_at_layer_;
  absl::Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> done_marks_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool drained_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t copied_requests_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

// Host staging and "device" pages of n blocks, and the pointer lists the restore takes.
struct Staged {
  Staged(uint32_t n, uint64_t block_bytes)
      : staging(n, std::vector<uint8_t>(block_bytes)),
        pages(n, std::vector<uint8_t>(block_bytes)) {}
  std::vector<uint8_t*> landing() {
    std::vector<uint8_t*> v;
    for (auto& s : staging) v.push_back(s.data());
    return v;
  }
  std::vector<const uint8_t*> staged() {
    std::vector<const uint8_t*> v;
    for (auto& s : staging) v.push_back(s.data());
    return v;
  }
  std::vector<uint8_t*> device() {
    std::vector<uint8_t*> v;
    for (auto& p : pages) v.push_back(p.data());
    return v;
  }
  std::vector<std::vector<uint8_t>> staging, pages;
};

class PipelinedRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClientOptions o;
    o.target = store_.target();
    o.tenant = "t";
    client_ = std::make_unique<CacheStoreClient>(o);
    const KvLayout layout = Layout();
    tokens_.resize(kBlocks * layout.tokens_per_block);
    for (size_t i = 0; i < tokens_.size(); ++i) tokens_[i] = static_cast<uint32_t>(i * 7 + 3);
    payload_.resize(kBlocks * layout.BlockBytes());
    std::mt19937 rng(5);
    for (uint8_t& b : payload_) b = static_cast<uint8_t>(rng());
    absl::StatusOr<PutReply> put = client_->Put(layout, tokens_, 0, payload_);
    ASSERT_TRUE(put.ok()) << put.status();
    keys_ = put->keys;
    ASSERT_EQ(keys_.size(), kBlocks);
  }

  // Expected bytes of layer l of block b.
  const uint8_t* Layer(uint32_t b, uint32_t l) const {
    return payload_.data() + b * Layout().BlockBytes() + l * Layout().LayerBytes();
  }
  // Layer l of every block is in `pages` (one buffer per block), byte for byte.
  void ExpectLayerIn(const std::vector<std::vector<uint8_t>>& pages, uint32_t l) const {
    const uint64_t n = Layout().LayerBytes();
    for (uint32_t b = 0; b < kBlocks; ++b) {
      ASSERT_EQ(std::memcmp(pages[b].data() + l * n, Layer(b, l), n), 0)
          << "block " << b << " layer " << l;
    }
  }

  static constexpr uint32_t kBlocks = 6;
  testing::TestStoreServer store_{{.min_slot_bytes = Layout().BlockBytes()}};
  std::unique_ptr<CacheStoreClient> client_;
  std::vector<uint32_t> tokens_;
  std::vector<uint8_t> payload_;
  std::vector<BlockKey> keys_;
};

TEST_F(PipelinedRestoreTest, HostPagesReceiveTheFetchDirectly) {
  const KvLayout layout = Layout();
  std::vector<std::vector<uint8_t>> pages(kBlocks, std::vector<uint8_t>(layout.BlockBytes()));
  std::vector<uint8_t*> landing;
  for (auto& p : pages) landing.push_back(p.data());
  PipelinedRestore restore(client_.get(), layout, keys_, landing);
  for (uint32_t l = 0; l < layout.num_layers; ++l) {
    ASSERT_TRUE(restore.WaitLayer(l).ok());
    ASSERT_NO_FATAL_FAILURE(ExpectLayerIn(pages, l));
  }
  ASSERT_TRUE(restore.Finish().ok());
  EXPECT_FALSE(restore.WaitLayer(layout.num_layers).ok());
}

TEST_F(PipelinedRestoreTest, StagedPagesAreUsableOnlyOnceTheirCopiesCompleted) {
  const KvLayout layout = Layout();
  Staged buffers(kBlocks, layout.BlockBytes());
  std::vector<std::vector<uint8_t>>& pages = buffers.pages;
  auto uploader = std::make_unique<AsyncHostUploader>(buffers.staged(), buffers.device(),
                                                      layout.num_layers, layout.LayerBytes());
  AsyncHostUploader* u = uploader.get();
  PipelinedRestore restore(client_.get(), layout, keys_, buffers.landing(), std::move(uploader));
  for (uint32_t l = 0; l < layout.num_layers; ++l) {
    ASSERT_TRUE(restore.WaitLayer(l).ok());
    // Every byte of the layer is in the pages the moment WaitLayer returns.
    ASSERT_NO_FATAL_FAILURE(ExpectLayerIn(pages, l));
  }
  ASSERT_TRUE(restore.Finish().ok());
  EXPECT_TRUE(u->drained());
  EXPECT_EQ(u->copied_requests(), payload_.size());  // every byte copied exactly once
  for (uint32_t b = 0; b < kBlocks; ++b) {
    EXPECT_EQ(std::memcmp(pages[b].data(), payload_.data() + b * layout.BlockBytes(),
                          layout.BlockBytes()),
              0);
  }
}

TEST_F(PipelinedRestoreTest, AFailedCopyFailsItsLayerAndTheRestore) {
  const KvLayout layout = Layout();
  Staged buffers(kBlocks, layout.BlockBytes());
  auto uploader =
      std::make_unique<AsyncHostUploader>(buffers.staged(), buffers.device(), layout.num_layers,
                                          layout.LayerBytes(), /*fail_at_layer=*/2);
  AsyncHostUploader* u = uploader.get();
  PipelinedRestore restore(client_.get(), layout, keys_, buffers.landing(), std::move(uploader));
  EXPECT_TRUE(restore.WaitLayer(0).ok());
  EXPECT_TRUE(restore.WaitLayer(1).ok());
  const absl::Status layer2 = restore.WaitLayer(2);
  EXPECT_FALSE(layer2.ok());
  EXPECT_NE(layer2.message().find("injected copy failure"), std::string::npos) << layer2;
  EXPECT_FALSE(restore.WaitLayer(3).ok());
  EXPECT_FALSE(restore.Finish().ok());
  EXPECT_TRUE(u->drained());  // even a failed restore leaves no copy running
}

TEST_F(PipelinedRestoreTest, AMissingBlockFailsTheRestore) {
  const KvLayout layout = Layout();
  std::vector<BlockKey> keys = keys_;
  keys[3].bytes[0] ^= 1;  // not in the store
  std::vector<std::vector<uint8_t>> pages(kBlocks, std::vector<uint8_t>(layout.BlockBytes()));
  std::vector<uint8_t*> landing;
  for (auto& p : pages) landing.push_back(p.data());
  PipelinedRestore restore(client_.get(), layout, keys, landing);
  EXPECT_FALSE(restore.WaitLayer(layout.num_layers - 1).ok());
  EXPECT_FALSE(restore.Finish().ok());
}

}  // namespace
}  // namespace kvtier::worker
