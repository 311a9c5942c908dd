#include "worker/decode_engine.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "cache_store/log.h"
#include "kernels/cuda_memory.h"
#include "worker/kv_calibration.h"

namespace kvtier::worker {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<DecodeEngine>> DecodeEngine::Create(
    std::shared_ptr<const LlamaWeights> weights, std::shared_ptr<StoreClient> store,
    const DecodeEngineOptions& options) {
  if (weights == nullptr) return absl::InvalidArgumentError("no model weights");
  if (absl::Status s = weights->config.Validate(); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<Decoder>> decoder = MakeDecoder(weights, options.kernels);
  if (!decoder.ok()) return decoder.status();
  const KvLayout layout = weights->config.Layout();
  std::vector<float> kv_scales;
  if (layout.quantized()) {
    absl::StatusOr<std::vector<float>> scales =
        CalibrateKvScales(**decoder, layout, options.kernels.backend);
    if (!scales.ok()) return scales.status();
    kv_scales = *std::move(scales);
  }
  absl::StatusOr<std::unique_ptr<PagePool>> pool =
      PagePool::Create(layout, options.pages, options.kernels.backend,
                       store != nullptr && options.same_node, std::move(kv_scales));
  if (!pool.ok()) return pool.status();
  auto engine = std::unique_ptr<DecodeEngine>(new DecodeEngine(
      std::move(weights), std::move(store), *std::move(pool), *std::move(decoder), options));
  if (options.kernels.backend == kernels::Backend::kCuda && engine->store_ != nullptr) {
    // Restores land in pinned staging and are copied to the device on their own stream.
    // Every restored page comes from the pool, so staging the pool's size always suffices.
    // Same-node, the staging is a shared-memory region, registered with CUDA, that a store
    // on this node copies into directly.
    const uint64_t bytes = engine->pool_->page_bytes() * engine->pool_->num_pages();
    if (!options.same_node) {
      absl::StatusOr<kernels::CudaBuffer> staging =
          kernels::CudaBuffer::Allocate(bytes, kernels::CudaBuffer::Kind::kPinnedHost);
      if (!staging.ok()) return staging.status();
      engine->restore_staging_ = *std::move(staging);
    } else {
      absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
          SharedMemoryRegion::Create(bytes);
      if (!region.ok()) return region.status();
      absl::StatusOr<kernels::CudaHostRegistration> registered =
          kernels::CudaHostRegistration::Register((*region)->data(), bytes);
      if (!registered.ok()) return registered.status();
      engine->staging_region_ = *std::move(region);
      engine->staging_registration_ = *std::move(registered);
    }
    absl::StatusOr<kernels::CudaStream> stream = kernels::CudaStream::Create();
    if (!stream.ok()) return stream.status();
    engine->restore_stream_ = *std::move(stream);
    engine->restore_workspace_ = std::make_unique<kernels::CudaWorkspace>();
  }
  return engine;
}

DecodeEngine::DecodeEngine(std::shared_ptr<const LlamaWeights> weights,
                           std::shared_ptr<StoreClient> store, std::unique_ptr<PagePool> pool,
                           std::unique_ptr<Decoder> decoder, const DecodeEngineOptions& options)
    : weights_(std::move(weights)),
      store_(std::move(store)),
      pool_(std::move(pool)),
      options_(options),
      namespace_key_(NamespaceKey(options.tenant, pool_->layout().Fingerprint(), options.salt)),
      decoder_(std::move(decoder)) {
  if (store_ != nullptr) {
    offloader_ =
        std::make_unique<KvOffloader>(store_, pool_.get(), options.salt, options.same_node);
  }
}

DecodeEngine::~DecodeEngine() {
  offloader_.reset();  // finishes queued offloads while the pool still exists
}

absl::StatusOr<uint32_t> DecodeEngine::AllocatePage() {
  while (true) {
    absl::StatusOr<uint32_t> page = pool_->Allocate();
    if (page.ok() || !absl::IsResourceExhausted(page.status())) return page;
    if (offloader_ != nullptr && pool_->counts().unsafe > 0) {
      // Pages wait for their offload: let the queued offloads finish (they do not need
      // mu_), after which those pages may be evicted.
      offloader_->Flush();
      continue;
    }
    if (!SwapOutColdest()) return page;
  }
}

void DecodeEngine::PublishAndOffload(Sequence& seq) {
  const uint32_t tpb = pool_->layout().tokens_per_block;
  std::vector<BlockKey> keys =
      seq.cacheable ? ChainBlockKeys(namespace_key_, seq.tokens, tpb) : std::vector<BlockKey>{};
  if (keys.size() > seq.pages.size()) keys.resize(seq.pages.size());
  // Runs of blocks new to the cache go to the store.
  std::vector<KvOffloader::Job> jobs;
  for (uint32_t b = 0; b < keys.size(); ++b) {
    const bool fresh = !pool_->IsKeyed(seq.pages[b]);
    const bool safe = offloader_ == nullptr;
    if (!fresh || !pool_->Publish(seq.pages[b], keys[b], safe) || safe) continue;
    if (jobs.empty() || jobs.back().first_block + jobs.back().pages.size() != b) {
      jobs.push_back({.first_block = b});
    }
    jobs.back().pages.push_back(seq.pages[b]);
    jobs.back().keys.push_back(keys[b]);
  }
  for (KvOffloader::Job& job : jobs) {
    const uint32_t end = (job.first_block + static_cast<uint32_t>(job.pages.size())) * tpb;
    job.tokens.assign(seq.tokens.begin(), seq.tokens.begin() + end);
    job.output_tokens = seq.generated;
    offloader_->Enqueue(std::move(job));
  }
}

bool DecodeEngine::SwapOutColdest() {
  Sequence* coldest = nullptr;
  for (auto& [id, seq] : sequences_) {
    if (seq.swapped || seq.pages.empty() ||
        std::find(busy_.begin(), busy_.end(), &seq) != busy_.end()) {
      continue;
    }
    if (coldest == nullptr || seq.last_used < coldest->last_used) coldest = &seq;
  }
  if (coldest == nullptr) return false;
  PublishAndOffload(*coldest);
  ReleasePages(*coldest);
  coldest->swapped = true;
  ++stats_.swapped_out;
  return true;
}

absl::Status DecodeEngine::SwapIn(Sequence& seq) {
  if (!seq.swapped) return absl::OkStatus();
  const uint32_t tpb = pool_->layout().tokens_per_block;
  const std::vector<uint32_t> tokens = seq.tokens;
  const std::vector<BlockKey> keys =
      seq.cacheable ? ChainBlockKeys(namespace_key_, tokens, tpb) : std::vector<BlockKey>{};
  uint32_t have = AcquireCachedPrefix(keys, seq.pages);
  if (store_ != nullptr && have < keys.size()) {
    if (std::unique_ptr<Restore> restore = StartRestore(tokens, keys, have, seq.pages)) {
      const bool ok = restore->fetch->Finish().ok();
      FinishRestore(*restore, ok);
      if (ok) {
        have += static_cast<uint32_t>(restore->pages.size());
      } else {
        ReleasePagesFrom(seq, have);
      }
    }
  }
  // Recompute what neither the cache nor the store had, from the tokens.
  seq.tokens.assign(tokens.begin(), tokens.begin() + uint64_t{have} * tpb);
  seq.swapped = false;
  if (seq.tokens.size() < tokens.size()) {
    absl::StatusOr<std::vector<float>> logits =
        RunTokens(seq, std::span(tokens).subspan(seq.tokens.size()));
    if (!logits.ok()) {
      ReleasePages(seq);
      seq.tokens = tokens;
      seq.swapped = true;
      return logits.status();
    }
  }
  ++stats_.swapped_in;
  return absl::OkStatus();
}

absl::Status DecodeEngine::EnsurePages(Sequence& seq, uint32_t end) {
  const uint32_t tpb = pool_->layout().tokens_per_block;
  while (seq.pages.size() * tpb < end) {
    absl::StatusOr<uint32_t> page = AllocatePage();
    if (!page.ok()) return page.status();
    seq.pages.push_back(*page);
  }
  return absl::OkStatus();
}

void DecodeEngine::ReleasePages(Sequence& seq) { ReleasePagesFrom(seq, 0); }

void DecodeEngine::ReleasePagesFrom(Sequence& seq, size_t first) {
  for (size_t i = first; i < seq.pages.size(); ++i) pool_->Release(seq.pages[i]);
  seq.pages.resize(std::min(first, seq.pages.size()));
}

uint32_t DecodeEngine::AcquireCachedPrefix(std::span<const BlockKey> keys,
                                           std::vector<uint32_t>& pages) {
  uint32_t n = 0;
  for (const BlockKey& key : keys) {
    std::optional<uint32_t> page = pool_->Acquire(key);
    if (!page.has_value()) break;
    pages.push_back(*page);
    ++n;
  }
  return n;
}

absl::StatusOr<std::vector<float>> DecodeEngine::RunTokens(Sequence& seq,
                                                           std::span<const uint32_t> tokens) {
  const uint32_t first = static_cast<uint32_t>(seq.tokens.size());
  if (absl::Status s = EnsurePages(seq, first + static_cast<uint32_t>(tokens.size())); !s.ok()) {
    return s;
  }
  absl::StatusOr<std::vector<float>> logits = decoder_->Prefill(tokens, first, seq.pages, *pool_);
  if (!logits.ok()) return logits;
  seq.tokens.insert(seq.tokens.end(), tokens.begin(), tokens.end());
  stats_.computed_tokens += tokens.size();
  return logits;
}

std::unique_ptr<DecodeEngine::Restore> DecodeEngine::StartRestore(std::span<const uint32_t> prompt,
                                                                  std::span<const BlockKey> keys,
                                                                  uint32_t have,
                                                                  std::vector<uint32_t>& pages) {
  auto restore = std::make_unique<Restore>();
  restore->start = std::chrono::steady_clock::now();
  ++stats_.restores;
  absl::StatusOr<LookupReply> found =
      store_->Lookup(pool_->layout(), prompt, {.salt = options_.salt, .lease = true});
  if (!found.ok()) {
    ++stats_.restore_failures;
    stats_.restore_seconds += SecondsSince(restore->start);
    KVTIER_LOG(WARNING) << "store lookup failed, recomputing: " << found.status();
    return nullptr;
  }
  restore->lease_id = found->lease_id;
  // The store's keys come from its view of the tenant (which an auth token may decide);
  // they name the same prompt blocks under the same layout, so its bytes are ours.
  const uint32_t matched =
      std::min<uint32_t>({found->matched_blocks, static_cast<uint32_t>(keys.size()),
                          static_cast<uint32_t>(found->keys.size())});
  std::vector<BlockKey> fetch_keys;
  for (uint32_t b = have; b < matched; ++b) {
    absl::StatusOr<uint32_t> page = AllocatePage();
    if (!page.ok()) break;  // restore what fits; the rest is computed
    restore->pages.push_back(*page);
    restore->keys.push_back(keys[b]);
    fetch_keys.push_back(found->keys[b]);
  }
  if (restore->pages.empty()) {
    FinishRestore(*restore, /*ok=*/true);
    return nullptr;
  }
  pages.insert(pages.end(), restore->pages.begin(), restore->pages.end());
  // Host pages receive the fetch directly; device pages through pinned staging.
  std::vector<uint8_t*> landing;
  std::unique_ptr<RestoreUploader> uploader;
  if (pool_->backend() == kernels::Backend::kCuda) {
    const uint64_t block_bytes = pool_->page_bytes();
    uint8_t* staging = staging_region_ != nullptr ? staging_region_->data()
                                                  : static_cast<uint8_t*>(restore_staging_.data());
    for (size_t i = 0; i < restore->pages.size(); ++i) landing.push_back(staging + i * block_bytes);
    absl::StatusOr<std::unique_ptr<CudaRestoreUploader>> made = CudaRestoreUploader::Create(
        {.pages = staging, .page_bytes = block_bytes, .num_pages = pool_->num_pages()},
        {.pages = pool_->PageData(0), .page_bytes = block_bytes, .num_pages = pool_->num_pages()},
        restore->pages, pool_->layout().num_layers, restore_stream_.get(),
        restore_workspace_.get());
    if (!made.ok()) {
      KVTIER_LOG(WARNING) << "restore upload unavailable, recomputing: " << made.status();
      FinishRestore(*restore, /*ok=*/false);
      pages.resize(pages.size() - restore->pages.size());
      for (uint32_t page : restore->pages) pool_->Release(page);
      return nullptr;
    }
    uploader = *std::move(made);
  } else {
    for (uint32_t page : restore->pages) landing.push_back(pool_->PageData(page));
  }
  const SharedMemoryRegion* shm =
      shm_refused_ ? nullptr
                   : (uploader != nullptr ? staging_region_.get() : pool_->shared_memory());
  restore->shm = shm != nullptr;
  restore->fetch =
      std::make_unique<PipelinedRestore>(store_.get(), pool_->layout(), std::move(fetch_keys),
                                         std::move(landing), std::move(uploader), shm);
  return restore;
}

void DecodeEngine::FinishRestore(Restore& restore, bool ok) {
  if (restore.lease_id != 0) (void)store_->Release(restore.lease_id);
  if (ok) {
    // Already in the store: safe to evict whenever they are not in use.
    for (size_t i = 0; i < restore.pages.size(); ++i) {
      pool_->Publish(restore.pages[i], restore.keys[i], /*safe=*/true);
    }
    stats_.restored_bytes += restore.pages.size() * pool_->page_bytes();
    if (restore.fetch != nullptr && restore.fetch->delivered_by_shm()) {
      ++stats_.shm_restores;
    } else if (restore.shm && !shm_refused_) {
      shm_refused_ = true;
      KVTIER_LOG(WARNING) << "the store does not deliver into this worker's shared memory "
                             "(same node? the store's --shm_socket given to the worker?); "
                             "restores use the socket from now on";
    }
  } else {
    ++stats_.restore_failures;
  }
  // Lookup to the last verified byte (the computation it overlapped is not counted).
  const auto end =
      restore.fetch != nullptr ? restore.fetch->end() : std::chrono::steady_clock::now();
  stats_.restore_seconds += std::chrono::duration<double>(end - restore.start).count();
}

absl::StatusOr<DecodeEngine::Opened> DecodeEngine::Open(std::span<const uint32_t> prompt,
                                                        bool reuse) {
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt is empty");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] >= config().vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("prompt token ", i, " (", prompt[i],
                                                     ") is outside the vocabulary of ",
                                                     config().vocab_size));
    }
  }
  const auto start = std::chrono::steady_clock::now();
  absl::MutexLock lock(&mu_);
  const uint32_t tpb = pool_->layout().tokens_per_block;
  const uint32_t n = static_cast<uint32_t>(prompt.size());
  // The last prompt token always runs: its logits choose the first new token.
  const std::vector<BlockKey> keys =
      reuse ? ChainBlockKeys(namespace_key_, prompt, tpb, (n - 1) / tpb) : std::vector<BlockKey>{};
  Sequence seq;
  seq.cacheable = reuse;
  const uint32_t local = AcquireCachedPrefix(keys, seq.pages);
  std::unique_ptr<Restore> restore;
  if (store_ != nullptr && local < keys.size()) {
    restore = StartRestore(prompt, keys, local, seq.pages);
  }
  uint32_t from_store = restore ? static_cast<uint32_t>(restore->pages.size()) : 0;
  uint32_t reused = (local + from_store) * tpb;
  seq.tokens.assign(prompt.begin(), prompt.begin() + reused);
  absl::StatusOr<std::vector<float>> logits;
  if (restore != nullptr) {
    // The new tokens run layer by layer, each layer as soon as the prefix's layer is in.
    absl::Status pages = EnsurePages(seq, n);
    logits = pages.ok() ? decoder_->PrefillLayerMajor(
                              prompt.subspan(reused), reused, seq.pages, *pool_,
                              [&](uint32_t l) { return restore->fetch->WaitLayer(l); })
                        : absl::StatusOr<std::vector<float>>(pages);
    const absl::Status fetched = restore->fetch->Finish();
    const bool ok = fetched.ok() && logits.ok();
    if (!fetched.ok()) {
      KVTIER_LOG(WARNING) << "store fetch failed, recomputing: " << fetched;
    }
    FinishRestore(*restore, ok);
    if (ok) {
      seq.tokens.assign(prompt.begin(), prompt.end());
      stats_.computed_tokens += n - reused;
    } else {
      // Drop the restored pages and everything computed on them; start again after the
      // local prefix.
      ReleasePagesFrom(seq, local);
      from_store = 0;
      reused = local * tpb;
      seq.tokens.assign(prompt.begin(), prompt.begin() + reused);
      logits = RunTokens(seq, prompt.subspan(reused));
    }
  } else {
    logits = RunTokens(seq, prompt.subspan(reused));
  }
  if (!logits.ok()) {
    ReleasePages(seq);
    return logits.status();
  }
  Opened opened;
  opened.id = next_id_++;
  opened.prompt_tokens = n;
  opened.local_tokens = local * tpb;
  opened.store_tokens = from_store * tpb;
  opened.computed_tokens = n - reused;
  opened.next_token = Decoder::Greedy(*logits);
  opened.logits = *std::move(logits);
  opened.seconds = SecondsSince(start);
  seq.next_token = opened.next_token;
  seq.last_used = ++use_clock_;
  stats_.local_tokens += opened.local_tokens;
  stats_.store_tokens += opened.store_tokens;
  sequences_.emplace(opened.id, std::move(seq));
  return opened;
}

absl::StatusOr<std::vector<float>> DecodeEngine::Append(uint64_t id,
                                                        std::span<const uint32_t> tokens) {
  if (tokens.empty()) return absl::InvalidArgumentError("no tokens to append");
  for (uint32_t t : tokens) {
    if (t >= config().vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token ", t, " is outside the vocabulary"));
    }
  }
  absl::MutexLock lock(&mu_);
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return absl::NotFoundError(absl::StrCat("no open sequence ", id));
  Sequence& seq = it->second;
  seq.last_used = ++use_clock_;
  busy_ = {&seq};
  absl::Status in = SwapIn(seq);
  absl::StatusOr<std::vector<float>> logits =
      in.ok() ? RunTokens(seq, tokens) : absl::StatusOr<std::vector<float>>(in);
  busy_.clear();
  if (logits.ok()) seq.next_token = Decoder::Greedy(*logits);
  return logits;
}

absl::StatusOr<std::vector<uint32_t>> DecodeEngine::Step(std::span<const uint64_t> ids) {
  const auto start = std::chrono::steady_clock::now();
  absl::MutexLock lock(&mu_);
  std::vector<Sequence*> seqs;
  for (uint64_t id : ids) {
    auto it = sequences_.find(id);
    if (it == sequences_.end()) return absl::NotFoundError(absl::StrCat("no open sequence ", id));
    for (Sequence* other : seqs) {
      if (other == &it->second) {
        return absl::InvalidArgumentError(absl::StrCat("sequence ", id, " twice in one step"));
      }
    }
    seqs.push_back(&it->second);
  }
  busy_.assign(seqs.begin(), seqs.end());
  std::vector<Decoder::Step> batch;
  for (Sequence* seq : seqs) {
    seq->last_used = ++use_clock_;
    const uint32_t position = static_cast<uint32_t>(seq->tokens.size());
    absl::Status s = SwapIn(*seq);
    if (s.ok()) s = EnsurePages(*seq, position + 1);
    if (!s.ok()) {
      busy_.clear();
      return s;
    }
  }
  batch.reserve(seqs.size());
  for (Sequence* seq : seqs) {  // page tables are final only once every sequence has its pages
    batch.push_back({seq->next_token, static_cast<uint32_t>(seq->tokens.size()), seq->pages});
  }
  busy_.clear();
  absl::StatusOr<std::vector<std::vector<float>>> logits = decoder_->Run(batch, *pool_);
  if (!logits.ok()) return logits.status();
  std::vector<uint32_t> next;
  for (size_t i = 0; i < seqs.size(); ++i) {
    seqs[i]->tokens.push_back(seqs[i]->next_token);
    ++seqs[i]->generated;
    seqs[i]->next_token = Decoder::Greedy((*logits)[i]);
    next.push_back(seqs[i]->next_token);
  }
  ++stats_.decode_steps;
  stats_.decoded_tokens += seqs.size();
  stats_.decode_seconds += SecondsSince(start);
  return next;
}

absl::StatusOr<std::vector<uint32_t>> DecodeEngine::Tokens(uint64_t id) const {
  absl::MutexLock lock(&mu_);
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return absl::NotFoundError(absl::StrCat("no open sequence ", id));
  return it->second.tokens;
}

absl::Status DecodeEngine::Close(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return absl::NotFoundError(absl::StrCat("no open sequence ", id));
  Sequence& seq = it->second;
  PublishAndOffload(seq);
  ReleasePages(seq);
  sequences_.erase(it);
  return absl::OkStatus();
}

void DecodeEngine::FlushOffloads() {
  if (offloader_ != nullptr) offloader_->Flush();
}

DecodeEngine::Stats DecodeEngine::stats() const {
  absl::MutexLock lock(&mu_);
  Stats s = stats_;
  s.open_sequences = sequences_.size();
  s.pages = pool_->counts();
  if (offloader_ != nullptr) s.offload = offloader_->counts();
  return s;
}

}  // namespace kvtier::worker
