// Fragment validation and placement shared by the CPU and CUDA page copies.
#include "kernels/page_copy.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kvtier::kernels {
namespace {

// `spans` are absolute [begin, end) byte ranges of one pool; sorts them.
absl::Status CheckNoOverlap(std::vector<std::pair<uint64_t, uint64_t>>& spans, const char* what) {
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].first < spans[i - 1].second) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " overlap at pool byte ", spans[i].first));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRange(const PagePoolBytes& pool, const char* side, size_t i, uint32_t page,
                        uint64_t offset, uint64_t length) {
  if (page >= pool.num_pages) {
    return absl::OutOfRangeError(absl::StrCat(side, " of move ", i, " names page ", page,
                                              " of a pool of ", pool.num_pages, " pages"));
  }
  if (offset > pool.page_bytes || length > pool.page_bytes - offset) {
    return absl::OutOfRangeError(absl::StrCat("move ", i, " [", offset, ", ", offset + length,
                                              ") runs past a ", side, " page of ", pool.page_bytes,
                                              " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateMoves(const PagePoolBytes& from, const PagePoolBytes& to,
                           std::span<const PageMove> moves) {
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (size_t i = 0; i < moves.size(); ++i) {
    const PageMove& m = moves[i];
    if (absl::Status s = CheckRange(from, "source", i, m.src_page, m.offset, m.length); !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckRange(to, "destination", i, m.dst_page, m.offset, m.length);
        !s.ok()) {
      return s;
    }
    if (m.length == 0) continue;
    const uint64_t begin = uint64_t{m.dst_page} * to.page_bytes + m.offset;
    spans.emplace_back(begin, begin + m.length);
  }
  if (!spans.empty() && (from.pages == nullptr || to.pages == nullptr)) {
    return absl::InvalidArgumentError("a pool of the move has no pages");
  }
  return CheckNoOverlap(spans, "move destinations");
}

absl::Status ValidateFragments(const PagePoolBytes& pool, std::span<const CopyFragment> fragments,
                               const void* buffer, uint64_t buffer_bytes, bool for_scatter) {
  uint64_t total = 0;
  for (size_t i = 0; i < fragments.size(); ++i) {
    const CopyFragment& f = fragments[i];
    if (f.page >= pool.num_pages) {
      return absl::OutOfRangeError(absl::StrCat("fragment ", i, " names page ", f.page,
                                                " of a pool of ", pool.num_pages, " pages"));
    }
    if (f.offset > pool.page_bytes || f.length > pool.page_bytes - f.offset) {
      return absl::OutOfRangeError(absl::StrCat("fragment ", i, " [", f.offset, ", ",
                                                f.offset + f.length, ") runs past a page of ",
                                                pool.page_bytes, " bytes"));
    }
    total += f.length;
  }
  if (total > buffer_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the fragments hold ", total, " bytes but the buffer has ", buffer_bytes));
  }
  if (total > 0 && pool.pages == nullptr) return absl::InvalidArgumentError("pages is null");
  if (total > 0 && buffer == nullptr) return absl::InvalidArgumentError("the buffer is null");
  if (for_scatter) {
    std::vector<std::pair<uint64_t, uint64_t>> spans;  // absolute [begin, end)
    for (const CopyFragment& f : fragments) {
      if (f.length == 0) continue;
      const uint64_t begin = uint64_t{f.page} * pool.page_bytes + f.offset;
      spans.emplace_back(begin, begin + f.length);
    }
    return CheckNoOverlap(spans, "scatter fragments");
  }
  return absl::OkStatus();
}

std::vector<uint64_t> FragmentOffsets(std::span<const CopyFragment> fragments) {
  std::vector<uint64_t> at(fragments.size());
  uint64_t pos = 0;
  for (size_t i = 0; i < fragments.size(); ++i) {
    at[i] = pos;
    pos += fragments[i].length;
  }
  return at;
}

}  // namespace kvtier::kernels
