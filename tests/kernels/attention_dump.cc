// Writes a paged-attention problem and the CPU kernel's answer to a directory, for the
// independent numpy check (numpy_attention_check.py):
//   meta.json; q.f32 [seqs][q_heads][dim]; k.f32, v.f32 [sum(lens)][kv_heads][dim] (the
//   K/V each sequence sees, in token order); out.f32 [seqs][q_heads][dim]; lse.f32.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "tests/kernels/kernel_test_util.h"

namespace {

void WriteFloats(const std::string& path, const std::vector<float>& v) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kvtier::kernels;
  if (argc != 2) {
    std::cerr << "usage: attention_dump DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  const uint32_t q_heads = 8, kv_heads = 2, dim = 128, page = 16;
  const std::vector<uint32_t> lens = {1, 15, 16, 17, 300, 1000};
  const testing::Batch b = testing::MakeBatch(lens, q_heads, kv_heads, dim, page,
                                              kvtier::DType::kBf16, kvtier::DType::kBf16, 2, 2024);
  const uint32_t layer = 1;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  std::vector<float> out(lens.size() * q_heads * dim), lse(lens.size() * q_heads);
  DecodeAttentionArgs args{.q = b.q.data(),
                           .q_dtype = b.q_dtype,
                           .out = out.data(),
                           .out_dtype = kvtier::DType::kFp32,
                           .lse = lse.data(),
                           .num_seqs = static_cast<uint32_t>(lens.size()),
                           .num_q_heads = q_heads,
                           .layer = layer,
                           .softmax_scale = scale,
                           .page_indptr = b.indptr.data(),
                           .page_indices = b.indices.data(),
                           .seq_lens = b.lens.data()};
  if (absl::Status s = PagedDecodeAttentionCpu(b.pool, args, {.split_tokens = 64}); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  std::vector<float> k, v;
  for (size_t s = 0; s < lens.size(); ++s) {
    for (uint32_t t = 0; t < lens[s]; ++t) {
      const uint32_t pg = b.indices[b.indptr[s] + t / page];
      for (uint32_t kv = 0; kv < 2; ++kv) {
        for (uint32_t h = 0; h < kv_heads; ++h) {
          for (uint32_t d = 0; d < dim; ++d) {
            const uint64_t i =
                ((((uint64_t{pg} * 2 + layer) * 2 + kv) * page + t % page) * kv_heads + h) * dim +
                d;
            (kv == 0 ? k : v).push_back(b.page_values[i]);
          }
        }
      }
    }
  }
  WriteFloats(dir + "/q.f32", b.q_values);
  WriteFloats(dir + "/k.f32", k);
  WriteFloats(dir + "/v.f32", v);
  WriteFloats(dir + "/out.f32", out);
  WriteFloats(dir + "/lse.f32", lse);
  std::ofstream meta(dir + "/meta.json");
  meta << "{\"q_heads\": " << q_heads << ", \"kv_heads\": " << kv_heads << ", \"dim\": " << dim
       << ", \"scale\": " << scale << ", \"lens\": [";
  for (size_t i = 0; i < lens.size(); ++i) meta << (i ? ", " : "") << lens[i];
  meta << "]}\n";
  return 0;
}
