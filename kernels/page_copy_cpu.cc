#include <cstring>
#include <vector>

#include "kernels/cpu_parallel.h"
#include "kernels/page_copy.h"

namespace kvtier::kernels {

absl::Status GatherPagesCpu(const PagePoolBytes& pool, std::span<const CopyFragment> fragments,
                            void* dst, uint64_t dst_bytes, int threads) {
  if (absl::Status s = ValidateFragments(pool, fragments, dst, dst_bytes, false); !s.ok()) return s;
  const std::vector<uint64_t> at = FragmentOffsets(fragments);
  const auto* base = static_cast<const uint8_t*>(pool.pages);
  ParallelFor(fragments.size(), threads, [&](size_t i) {
    const CopyFragment& f = fragments[i];
    if (f.length == 0) return;
    std::memcpy(static_cast<uint8_t*>(dst) + at[i],
                base + uint64_t{f.page} * pool.page_bytes + f.offset, f.length);
  });
  return absl::OkStatus();
}

absl::Status ScatterPagesCpu(const void* src, uint64_t src_bytes,
                             std::span<const CopyFragment> fragments, const PagePoolBytes& pool,
                             int threads) {
  if (absl::Status s = ValidateFragments(pool, fragments, src, src_bytes, true); !s.ok()) return s;
  const std::vector<uint64_t> at = FragmentOffsets(fragments);
  auto* base = static_cast<uint8_t*>(pool.pages);
  ParallelFor(fragments.size(), threads, [&](size_t i) {
    const CopyFragment& f = fragments[i];
    if (f.length == 0) return;
    std::memcpy(base + uint64_t{f.page} * pool.page_bytes + f.offset,
                static_cast<const uint8_t*>(src) + at[i], f.length);
  });
  return absl::OkStatus();
}

absl::Status MovePagesCpu(const PagePoolBytes& from, const PagePoolBytes& to,
                          std::span<const PageMove> moves, int threads) {
  if (absl::Status s = ValidateMoves(from, to, moves); !s.ok()) return s;
  const auto* src = static_cast<const uint8_t*>(from.pages);
  auto* dst = static_cast<uint8_t*>(to.pages);
  ParallelFor(moves.size(), threads, [&](size_t i) {
    const PageMove& m = moves[i];
    if (m.length == 0) return;
    std::memcpy(dst + uint64_t{m.dst_page} * to.page_bytes + m.offset,
                src + uint64_t{m.src_page} * from.page_bytes + m.offset, m.length);
  });
  return absl::OkStatus();
}

}  // namespace kvtier::kernels
