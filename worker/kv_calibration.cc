#include "worker/kv_calibration.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_memory.h"
#include "kernels/numeric.h"
#include "worker/page_pool.h"

namespace kvtier::worker {

absl::StatusOr<std::vector<float>> CalibrateKvScales(Decoder& decoder, const KvLayout& layout,
                                                     kernels::Backend backend) {
  if (!layout.quantized()) {
    return absl::InvalidArgumentError(
        absl::StrCat("K/V scales are for fp8_e4m3 and int8, not ", DTypeName(layout.dtype)));
  }
  const LlamaConfig& c = decoder.config();
  KvLayout fp32 = layout;
  fp32.dtype = DType::kFp32;
  const uint32_t tpb = layout.tokens_per_block;
  const uint32_t pages = (kCalibrationTokens + tpb - 1) / tpb;
  absl::StatusOr<std::unique_ptr<PagePool>> pool = PagePool::Create(fp32, pages, backend);
  if (!pool.ok()) return pool.status();
  std::vector<uint32_t> page_table;
  for (uint32_t p = 0; p < pages; ++p) {
    absl::StatusOr<uint32_t> page = (*pool)->Allocate();
    if (!page.ok()) return page.status();
    page_table.push_back(*page);
  }
  std::vector<uint32_t> tokens(kCalibrationTokens);
  for (uint32_t i = 0; i < kCalibrationTokens; ++i) {
    tokens[i] = static_cast<uint32_t>((uint64_t{i} * 2654435761u + 11) % c.vocab_size);
  }
  absl::StatusOr<std::vector<float>> logits = decoder.Prefill(tokens, 0, page_table, **pool);
  if (!logits.ok()) return logits.status();

  std::vector<uint8_t> host((*pool)->page_bytes() * pages);
  if (backend == kernels::Backend::kCuda) {
    if (absl::Status s = kernels::CudaCopy(host.data(), (*pool)->PageData(0), host.size());
        !s.ok()) {
      return s;
    }
  } else {
    std::memcpy(host.data(), (*pool)->PageData(0), host.size());
  }
  const float qmax = layout.dtype == DType::kInt8 ? 127.0f : kernels::kE4m3Max;
  const uint64_t row = uint64_t{c.num_kv_heads} * c.head_dim;  // floats per token
  std::vector<float> scales(uint64_t{c.num_layers} * 2 * c.num_kv_heads, 0.0f);
  for (uint32_t t = 0; t < kCalibrationTokens; ++t) {
    const uint8_t* page = host.data() + uint64_t{page_table[t / tpb]} * (*pool)->page_bytes();
    for (uint32_t l = 0; l < c.num_layers; ++l) {
      const auto* layer = reinterpret_cast<const float*>(page + l * fp32.LayerBytes());
      for (uint32_t kv = 0; kv < 2; ++kv) {
        const float* x = layer + (uint64_t{kv} * tpb + t % tpb) * row;
        for (uint32_t h = 0; h < c.num_kv_heads; ++h) {
          float& amax = scales[(uint64_t{l} * 2 + kv) * c.num_kv_heads + h];
          for (uint32_t d = 0; d < c.head_dim; ++d) {
            amax = std::max(amax, std::fabs(x[uint64_t{h} * c.head_dim + d]));
          }
        }
      }
    }
  }
  for (float& s : scales) s = s > 0 && std::isfinite(s) ? s * kHeadroom / qmax : 1.0f;
  return scales;
}

}  // namespace kvtier::worker
