// KV calibration: the scales a worker stores quantized (fp8_e4m3, int8) K/V with.
//
// A quantized page holds round(x / scale) per element, with one scale per layer, K or V,
// and KV head, carried inside the page (cache_store/kv_layout.h). The worker's scales are
// fixed per (layer, K|V, head) for its whole life, not computed from each block's own
// values: a block's K/V are written one token at a time and attention reads them before
// the block is full, so a scale that grew with later tokens would change what the earlier
// tokens' attention saw; a fixed scale makes a position's stored K/V a function of that
// position alone, and recomputing a prefix gives the bytes restoring it gives. Blocks carry
// their scales, so blocks quantized by workers with other scales are read correctly.
//
// Calibration prefills kCalibrationTokens fixed tokens into a temporary fp32 pool with the
// worker's decoder and takes, per (layer, K|V, head), scale = kHeadroom x max |x| / qmax
// (qmax 448 for fp8 e4m3, 127 for int8); larger values saturate. Deterministic: the same
// weights give the same scales.
#ifndef KVTIER_WORKER_KV_CALIBRATION_H_
#define KVTIER_WORKER_KV_CALIBRATION_H_

#include <vector>

#include "absl/status/statusor.h"
#include "cache_store/kv_layout.h"
#include "kernels/backend.h"
#include "worker/decoder.h"

namespace kvtier::worker {

inline constexpr uint32_t kCalibrationTokens = 64;
inline constexpr float kHeadroom = 1.5f;

// [num_layers][2][num_kv_heads] scales for `layout` (quantized; its shape the decoder's
// model's). INVALID_ARGUMENT for an unquantized layout.
absl::StatusOr<std::vector<float>> CalibrateKvScales(Decoder& decoder, const KvLayout& layout,
                                                     kernels::Backend backend);

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_KV_CALIBRATION_H_
