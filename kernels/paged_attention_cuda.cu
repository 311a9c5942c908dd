// Paged decode attention on the GPU: the kernels and their host launcher. The interface
// and the CPU reference are in paged_attention.h / paged_attention_cpu.cc.
//
// Decomposition. The launcher cuts every sequence into chunks of `split` tokens (split-KV)
// and launches one CTA per (chunk, KV head, tile of at most kMaxHeadsPerCta query heads of
// that KV head's group), so one K/V load serves every query head of the tile. A CTA is four
// warps; within a warp, kLanesPerRow = head_dim / 8 lanes hold one token's row (8 elements
// per lane, one 8/16/32-byte load), so a warp reads 32 / kLanesPerRow tokens per step. Each
// row keeps an online softmax (running max, denominator, weighted V) in registers, in the
// log2 domain (scores pre-multiplied by log2(e), exp2f). The rows of a CTA are merged in
// shared memory. A sequence of one chunk is written straight to out; the chunks of a longer
// one go to workspace partials (normalised output and log2-sum-exp) that a second kernel
// merges.
//
// Safety: the page table is validated on the host before anything is queued; the kernel
// still ignores page numbers outside the pool, so a bad upload cannot read out of bounds.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_elements.cuh"
#include "kernels/cuda_status.h"
#include "kernels/cuda_workspace.h"
#include "kernels/element_io.h"
#include "kernels/paged_attention.h"

namespace kvtier::kernels {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kVec = 8;  // K/V elements per lane
constexpr uint32_t kMaxHeadsPerCta = 8;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// One CTA's tokens: [first, last) of sequence `seq`, chunk `chunk` of `chunks`. Partials of
// a multi-chunk sequence live at rows [partial_base, partial_base + chunks).
struct WorkItem {
  uint32_t seq, first, last, chunk, chunks, partial_base;
};
// A sequence whose chunks the merge kernel combines.
struct MergeItem {
  uint32_t seq, chunks, partial_base;
};

struct Params {
  const uint8_t* pages;
  const float* scales;
  bool inline_scales;     // scales after the layer's K and V, at scale_offset
  uint64_t scale_offset;  // bytes from a layer's K to its K scales
  uint64_t page_bytes;
  uint64_t layer_offset;  // bytes from a page's start to this layer's K
  uint64_t v_offset;      // bytes from K to V within the layer
  uint64_t row_bytes;     // one token: [num_kv_heads][head_dim]
  uint32_t num_pages, num_layers, layer, tokens_per_page, num_kv_heads;
  uint32_t num_q_heads, group, head_tiles;
  const void* q;
  DType q_dtype;
  void* out;
  DType out_dtype;
  float* lse;
  float scale_log2;  // softmax_scale * log2(e)
  const uint32_t* page_indptr;
  const uint32_t* page_indices;
  const WorkItem* items;
  const MergeItem* merges;
  float* partial_out;  // [partials][num_q_heads][head_dim]
  float* partial_lse;  // [partials][num_q_heads], log2 domain
};

// grid: (work items, num_kv_heads * head_tiles); block: kThreads.
template <typename KV, int kDim, int kHeads>
__global__ void __launch_bounds__(kThreads) DecodeAttentionKernel(const Params p) {
  constexpr int kLanesPerRow = kDim / kVec;
  constexpr int kRows = 32 / kLanesPerRow;  // tokens per warp step
  constexpr int kCtaRows = kWarps * kRows;
  __shared__ float sm_max[kCtaRows][kHeads];
  __shared__ float sm_sum[kCtaRows][kHeads];
  __shared__ float sm_acc[kCtaRows][kHeads][kDim];

  const WorkItem it = p.items[blockIdx.x];
  const uint32_t kv_head = blockIdx.y / p.head_tiles;
  const uint32_t tile = blockIdx.y % p.head_tiles;
  const uint32_t head0 = kv_head * p.group + tile * kHeads;  // first query head of the tile
  const uint32_t heads = min(static_cast<uint32_t>(kHeads), p.group - tile * kHeads);
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int row = lane / kLanesPerRow;
  const int col = (lane % kLanesPerRow) * kVec;

  float q[kHeads][kVec];
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const uint64_t at = (uint64_t{it.seq} * p.num_q_heads + head0 + h) * kDim + col + i;
      q[h][i] = h < heads ? cuda::LoadElement(p.q, p.q_dtype, at) * p.scale_log2 : 0.0f;
    }
  }
  float run_max[kHeads], run_sum[kHeads], acc[kHeads][kVec];
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
    run_max[h] = -INFINITY;
    run_sum[h] = 0.0f;
#pragma unroll
    for (int i = 0; i < kVec; ++i) acc[h][i] = 0.0f;
  }

  const uint32_t* table = p.page_indices + p.page_indptr[it.seq];
  // Every lane of a warp runs the same trip count (base depends on the warp only), so the
  // shuffles below always see the full warp.
  for (uint32_t base = it.first + warp * kRows; base < it.last; base += kCtaRows) {
    const uint32_t t = base + row;
    bool valid = t < it.last;
    uint32_t page = 0;
    if (valid) {
      page = table[t / p.tokens_per_page];
      valid = page < p.num_pages;
    }
    float k[kVec], v[kVec];
    if (valid) {
      const uint8_t* layer = p.pages + page * p.page_bytes + p.layer_offset;
      const uint64_t at =
          (t % p.tokens_per_page) * p.row_bytes + (uint64_t{kv_head} * kDim + col) * sizeof(KV);
      cuda::Load8(reinterpret_cast<const KV*>(layer + at), k);
      cuda::Load8(reinterpret_cast<const KV*>(layer + p.v_offset + at), v);
      if (p.inline_scales) {
        const float* inline_scales = reinterpret_cast<const float*>(layer + p.scale_offset);
        const float ks = inline_scales[kv_head];
        const float vs = inline_scales[p.num_kv_heads + kv_head];
#pragma unroll
        for (int i = 0; i < kVec; ++i) k[i] *= ks, v[i] *= vs;
      } else if (p.scales != nullptr) {
        const uint64_t s = (uint64_t{page} * p.num_layers + p.layer) * 2 * p.num_kv_heads;
        const float ks = p.scales[s + kv_head];
        const float vs = p.scales[s + p.num_kv_heads + kv_head];
#pragma unroll
        for (int i = 0; i < kVec; ++i) k[i] *= ks, v[i] *= vs;
      }
    } else {
#pragma unroll
      for (int i = 0; i < kVec; ++i) k[i] = 0.0f, v[i] = 0.0f;
    }
#pragma unroll
    for (int h = 0; h < kHeads; ++h) {
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < kVec; ++i) s = fmaf(q[h][i], k[i], s);
#pragma unroll
      for (int offset = kLanesPerRow / 2; offset > 0; offset /= 2) {
        s += __shfl_xor_sync(0xffffffffu, s, offset);
      }
      if (valid) {
        const float new_max = fmaxf(run_max[h], s);
        const float correction = exp2f(run_max[h] - new_max);  // 0 on the first token
        const float w = exp2f(s - new_max);
        run_sum[h] = run_sum[h] * correction + w;
#pragma unroll
        for (int i = 0; i < kVec; ++i) acc[h][i] = fmaf(acc[h][i], correction, w * v[i]);
        run_max[h] = new_max;
      }
    }
  }

  // Merge the CTA's rows.
  const int cta_row = warp * kRows + row;
#pragma unroll
  for (int h = 0; h < kHeads; ++h) {
#pragma unroll
    for (int i = 0; i < kVec; ++i) sm_acc[cta_row][h][col + i] = acc[h][i];
    if (col == 0) {
      sm_max[cta_row][h] = run_max[h];
      sm_sum[cta_row][h] = run_sum[h];
    }
  }
  __syncthreads();
  for (uint32_t e = threadIdx.x; e < heads * kDim; e += kThreads) {
    const uint32_t h = e / kDim;
    const uint32_t d = e % kDim;
    float m = -INFINITY;
    for (int r = 0; r < kCtaRows; ++r) m = fmaxf(m, sm_max[r][h]);
    float sum = 0.0f, o = 0.0f;
    if (m != -INFINITY) {
      for (int r = 0; r < kCtaRows; ++r) {
        if (sm_max[r][h] == -INFINITY) continue;
        const float w = exp2f(sm_max[r][h] - m);
        sum += sm_sum[r][h] * w;
        o += sm_acc[r][h][d] * w;
      }
      o /= sum;
    }
    const float lse2 = m == -INFINITY ? -INFINITY : m + log2f(sum);
    const uint32_t head = head0 + h;
    if (it.chunks == 1) {
      cuda::StoreActivation(p.out, p.out_dtype,
                            (uint64_t{it.seq} * p.num_q_heads + head) * kDim + d, o);
      if (d == 0 && p.lse != nullptr) {
        p.lse[uint64_t{it.seq} * p.num_q_heads + head] = lse2 * kLn2;
      }
    } else {
      const uint64_t prow = uint64_t{it.partial_base + it.chunk} * p.num_q_heads + head;
      p.partial_out[prow * kDim + d] = o;
      if (d == 0) p.partial_lse[prow] = lse2;
    }
  }
}

// grid: (merge items, num_q_heads); block: head_dim threads, one per output element.
__global__ void MergeChunksKernel(const Params p, uint32_t dim) {
  const MergeItem m = p.merges[blockIdx.x];
  const uint32_t head = blockIdx.y;
  const uint32_t d = threadIdx.x;
  float top = -INFINITY;
  for (uint32_t c = 0; c < m.chunks; ++c) {
    top = fmaxf(top, p.partial_lse[uint64_t{m.partial_base + c} * p.num_q_heads + head]);
  }
  float sum = 0.0f, o = 0.0f;
  if (top != -INFINITY) {
    for (uint32_t c = 0; c < m.chunks; ++c) {
      const uint64_t prow = uint64_t{m.partial_base + c} * p.num_q_heads + head;
      const float l = p.partial_lse[prow];
      if (l == -INFINITY) continue;
      const float w = exp2f(l - top);
      sum += w;
      o += w * p.partial_out[prow * dim + d];
    }
    o /= sum;
  }
  cuda::StoreActivation(p.out, p.out_dtype, (uint64_t{m.seq} * p.num_q_heads + head) * dim + d, o);
  if (d == 0 && p.lse != nullptr) {
    p.lse[uint64_t{m.seq} * p.num_q_heads + head] =
        top == -INFINITY ? -INFINITY : (top + log2f(sum)) * kLn2;
  }
}

int MultiprocessorCount() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    return 100;
  }
  return count;
}

// The smallest instantiated tile that holds `group` heads (at most kMaxHeadsPerCta).
uint32_t HeadsPerCta(uint32_t group) {
  uint32_t tile = 1;
  while (tile < group && tile < kMaxHeadsPerCta) tile *= 2;
  return tile;
}

template <typename KV, int kDim>
cudaError_t LaunchForDim(uint32_t tile, dim3 grid, cudaStream_t stream, const Params& p) {
  switch (tile) {
    case 1:
      DecodeAttentionKernel<KV, kDim, 1><<<grid, kThreads, 0, stream>>>(p);
      break;
    case 2:
      DecodeAttentionKernel<KV, kDim, 2><<<grid, kThreads, 0, stream>>>(p);
      break;
    case 4:
      DecodeAttentionKernel<KV, kDim, 4><<<grid, kThreads, 0, stream>>>(p);
      break;
    default:
      DecodeAttentionKernel<KV, kDim, 8><<<grid, kThreads, 0, stream>>>(p);
      break;
  }
  return cudaGetLastError();
}

template <typename KV>
cudaError_t LaunchForType(uint32_t dim, uint32_t tile, dim3 grid, cudaStream_t stream,
                          const Params& p) {
  switch (dim) {
    case 64:
      return LaunchForDim<KV, 64>(tile, grid, stream, p);
    case 128:
      return LaunchForDim<KV, 128>(tile, grid, stream, p);
    default:
      return LaunchForDim<KV, 256>(tile, grid, stream, p);
  }
}

cudaError_t LaunchAttention(DType dtype, uint32_t dim, uint32_t tile, dim3 grid,
                            cudaStream_t stream, const Params& p) {
  switch (dtype) {
    case DType::kFp32:
      return LaunchForType<float>(dim, tile, grid, stream, p);
    case DType::kFp16:
      return LaunchForType<__half>(dim, tile, grid, stream, p);
    case DType::kBf16:
      return LaunchForType<__nv_bfloat16>(dim, tile, grid, stream, p);
    case DType::kFp8E4M3:
      return LaunchForType<__nv_fp8_e4m3>(dim, tile, grid, stream, p);
    case DType::kInt8:
      return LaunchForType<int8_t>(dim, tile, grid, stream, p);
  }
  return cudaErrorInvalidValue;
}

// Appends `count` elements of T to the upload blob at a 16-byte boundary; returns its offset.
template <typename T>
uint64_t Append(std::vector<uint8_t>& blob, const T* data, size_t count) {
  const uint64_t at = AlignUp(blob.size(), 16);
  blob.resize(at + count * sizeof(T));
  if (count > 0) std::memcpy(blob.data() + at, data, count * sizeof(T));
  return at;
}

}  // namespace

absl::Status PagedDecodeAttentionCuda(const KvPagePool& pool, const DecodeAttentionArgs& args,
                                      const CudaOptions& options) {
  if (absl::Status s = ValidateDecodeAttention(pool, args); !s.ok()) return s;
  if (args.num_seqs == 0) return absl::OkStatus();
  if (reinterpret_cast<uintptr_t>(pool.pages) % 16 != 0) {
    return absl::InvalidArgumentError("the GPU kernel needs 16-byte aligned pages");
  }
  const uint32_t kv_heads = pool.num_kv_heads;
  const uint32_t group = args.num_q_heads / kv_heads;
  const uint32_t tile = HeadsPerCta(group);
  const uint32_t head_tiles = (group + tile - 1) / tile;
  const uint32_t ctas_per_chunk = kv_heads * head_tiles;

  // Chunk size: enough CTAs for two waves of the device, but no chunk under 256 tokens.
  uint64_t total_tokens = 0;
  uint32_t longest = 0;
  for (uint32_t s = 0; s < args.num_seqs; ++s) {
    total_tokens += args.seq_lens[s];
    longest = std::max(longest, args.seq_lens[s]);
  }
  uint32_t split = options.split_tokens;
  if (split == 0) {
    const uint64_t target_chunks =
        std::max<uint64_t>(1, 2 * uint64_t(MultiprocessorCount()) / ctas_per_chunk);
    split = static_cast<uint32_t>(
        std::max<uint64_t>(256, AlignUp((total_tokens + target_chunks - 1) / target_chunks, 64)));
  }
  split = std::min(split, std::max(longest, 1u));

  std::vector<WorkItem> items;
  std::vector<MergeItem> merges;
  uint32_t partials = 0;
  for (uint32_t s = 0; s < args.num_seqs; ++s) {
    const uint32_t len = args.seq_lens[s];
    const uint32_t chunks = std::max(1u, (len + split - 1) / split);
    for (uint32_t c = 0; c < chunks; ++c) {
      items.push_back({s, c * split, std::min(len, (c + 1) * split), c, chunks, partials});
    }
    if (chunks > 1) {
      merges.push_back({s, chunks, partials});
      partials += chunks;
    }
  }
  if (items.size() > uint64_t{std::numeric_limits<int32_t>::max()}) {
    return absl::InvalidArgumentError("too many attention work items for one launch");
  }

  std::vector<uint8_t> blob;
  const uint64_t indptr_at = Append(blob, args.page_indptr, args.num_seqs + 1);
  const uint64_t indices_at = Append(blob, args.page_indices, args.page_indptr[args.num_seqs]);
  const uint64_t items_at = Append(blob, items.data(), items.size());
  const uint64_t merges_at = Append(blob, merges.data(), merges.size());
  const uint64_t partial_rows = uint64_t{partials} * args.num_q_heads;
  const uint64_t lse_at = AlignUp(partial_rows * pool.head_dim * sizeof(float), 256);
  const uint64_t scratch = lse_at + partial_rows * sizeof(float);

  CudaWorkspace& workspace = WorkspaceFor(options);
  absl::StatusOr<CudaWorkspace::Reservation> room =
      workspace.Reserve(blob.size(), scratch, options.stream);
  if (!room.ok()) return room.status();
  std::memcpy(room->host, blob.data(), blob.size());
  if (absl::Status s = workspace.Upload(blob.size(), options.stream); !s.ok()) return s;

  Params p{};
  p.pages = static_cast<const uint8_t*>(pool.pages);
  p.inline_scales = pool.InlineScales();
  p.scale_offset = pool.ScaleOffset();
  p.scales = IsQuantized(pool.dtype) && !p.inline_scales ? pool.scales : nullptr;
  p.page_bytes = pool.PageBytes();
  p.layer_offset = uint64_t{args.layer} * pool.LayerBytes();
  p.v_offset = uint64_t{pool.tokens_per_page} * pool.RowBytes();
  p.row_bytes = pool.RowBytes();
  p.num_pages = pool.num_pages;
  p.num_layers = pool.num_layers;
  p.layer = args.layer;
  p.tokens_per_page = pool.tokens_per_page;
  p.num_kv_heads = kv_heads;
  p.num_q_heads = args.num_q_heads;
  p.group = group;
  p.head_tiles = head_tiles;
  p.q = args.q;
  p.q_dtype = args.q_dtype;
  p.out = args.out;
  p.out_dtype = args.out_dtype;
  p.lse = args.lse;
  p.scale_log2 = args.softmax_scale * kLog2e;
  p.page_indptr = reinterpret_cast<const uint32_t*>(room->device + indptr_at);
  p.page_indices = reinterpret_cast<const uint32_t*>(room->device + indices_at);
  p.items = reinterpret_cast<const WorkItem*>(room->device + items_at);
  p.merges = reinterpret_cast<const MergeItem*>(room->device + merges_at);
  p.partial_out = reinterpret_cast<float*>(room->scratch);
  p.partial_lse = reinterpret_cast<float*>(room->scratch + lse_at);

  const auto stream = static_cast<cudaStream_t>(options.stream);
  const dim3 grid(static_cast<uint32_t>(items.size()), ctas_per_chunk);
  if (absl::Status s = CudaStatus(LaunchAttention(pool.dtype, pool.head_dim, tile, grid, stream, p),
                                  "launching paged decode attention");
      !s.ok()) {
    return s;
  }
  if (!merges.empty()) {
    MergeChunksKernel<<<dim3(static_cast<uint32_t>(merges.size()), args.num_q_heads), pool.head_dim,
                        0, stream>>>(p, pool.head_dim);
    if (absl::Status s = CudaStatus(cudaGetLastError(), "launching the split-KV merge"); !s.ok()) {
      return s;
    }
  }
  return workspace.Finish(options.stream);
}

}  // namespace kvtier::kernels
