// Fragment validation and placement shared by the CPU and CUDA page copies.
#include "kernels/page_copy.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kvtier::kernels {

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
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i) {
      if (spans[i].first < spans[i - 1].second) {
        return absl::InvalidArgumentError(
            absl::StrCat("scatter fragments overlap at pool byte ", spans[i].first));
      }
    }
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
