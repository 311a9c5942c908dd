// Page gather/scatter on the GPU: one launch copies a whole fragment list. The interface
// and the CPU implementation are in page_copy.h / page_copy_cpu.cc.
//
// The launcher validates the fragments on the host (ValidateFragments), cuts each into
// pieces of at most kPieceBytes so long and short fragments spread evenly over the device,
// and uploads the piece list through the workspace. One CTA copies one piece with 16-byte
// loads when source, destination and length allow, bytes otherwise. Either side may be
// mapped pinned host memory: a restore reads its pinned staging over PCIe directly.
#include <cuda_runtime.h>

#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cuda_status.h"
#include "kernels/cuda_workspace.h"
#include "kernels/page_copy.h"

namespace kvtier::kernels {
namespace {

constexpr uint64_t kPieceBytes = 64 * 1024;
constexpr int kThreads = 256;

struct Piece {
  const uint8_t* src;
  uint8_t* dst;
  uint64_t length;
};

// grid: pieces; block: kThreads.
__global__ void __launch_bounds__(kThreads) CopyPiecesKernel(const Piece* pieces) {
  const Piece piece = pieces[blockIdx.x];
  const bool vector = ((reinterpret_cast<uintptr_t>(piece.src) |
                        reinterpret_cast<uintptr_t>(piece.dst) | piece.length) &
                       15) == 0;
  if (vector) {
    const auto* src = reinterpret_cast<const uint4*>(piece.src);
    auto* dst = reinterpret_cast<uint4*>(piece.dst);
    for (uint64_t i = threadIdx.x; i < piece.length / 16; i += kThreads) dst[i] = src[i];
  } else {
    for (uint64_t i = threadIdx.x; i < piece.length; i += kThreads) piece.dst[i] = piece.src[i];
  }
}

// Queues one launch that copies every piece.
absl::Status LaunchPieces(const std::vector<Piece>& pieces, const CudaOptions& options) {
  if (pieces.empty()) return absl::OkStatus();
  if (pieces.size() > uint64_t{std::numeric_limits<int32_t>::max()}) {
    return absl::InvalidArgumentError("too many copy pieces for one launch");
  }
  const uint64_t bytes = pieces.size() * sizeof(Piece);
  CudaWorkspace& workspace = WorkspaceFor(options);
  absl::StatusOr<CudaWorkspace::Reservation> room = workspace.Reserve(bytes, 0, options.stream);
  if (!room.ok()) return room.status();
  std::memcpy(room->host, pieces.data(), bytes);
  if (absl::Status s = workspace.Upload(bytes, options.stream); !s.ok()) return s;
  CopyPiecesKernel<<<static_cast<uint32_t>(pieces.size()), kThreads, 0,
                     static_cast<cudaStream_t>(options.stream)>>>(
      reinterpret_cast<const Piece*>(room->device));
  if (absl::Status s = CudaStatus(cudaGetLastError(), "launching the page copy"); !s.ok()) {
    return s;
  }
  return workspace.Finish(options.stream);
}

// pages_to_buffer: gather; otherwise scatter.
absl::Status CopyFragments(const PagePoolBytes& pool, std::span<const CopyFragment> fragments,
                           uint8_t* buffer, bool pages_to_buffer, const CudaOptions& options) {
  const std::vector<uint64_t> at = FragmentOffsets(fragments);
  std::vector<Piece> pieces;
  auto* pages = static_cast<uint8_t*>(pool.pages);
  for (size_t i = 0; i < fragments.size(); ++i) {
    const CopyFragment& f = fragments[i];
    uint8_t* page_side = pages + uint64_t{f.page} * pool.page_bytes + f.offset;
    uint8_t* buffer_side = buffer + at[i];
    for (uint64_t done = 0; done < f.length; done += kPieceBytes) {
      const uint64_t n = std::min(kPieceBytes, f.length - done);
      if (pages_to_buffer) {
        pieces.push_back({page_side + done, buffer_side + done, n});
      } else {
        pieces.push_back({buffer_side + done, page_side + done, n});
      }
    }
  }
  return LaunchPieces(pieces, options);
}

}  // namespace

absl::Status GatherPagesCuda(const PagePoolBytes& pool, std::span<const CopyFragment> fragments,
                             void* dst, uint64_t dst_bytes, const CudaOptions& options) {
  if (absl::Status s = ValidateFragments(pool, fragments, dst, dst_bytes, false); !s.ok()) return s;
  return CopyFragments(pool, fragments, static_cast<uint8_t*>(dst), true, options);
}

absl::Status ScatterPagesCuda(const void* src, uint64_t src_bytes,
                              std::span<const CopyFragment> fragments, const PagePoolBytes& pool,
                              const CudaOptions& options) {
  if (absl::Status s = ValidateFragments(pool, fragments, src, src_bytes, true); !s.ok()) return s;
  // The kernel only reads through the buffer side in a scatter.
  return CopyFragments(pool, fragments, const_cast<uint8_t*>(static_cast<const uint8_t*>(src)),
                       false, options);
}

absl::Status MovePagesCuda(const PagePoolBytes& from, const PagePoolBytes& to,
                           std::span<const PageMove> moves, const CudaOptions& options) {
  if (absl::Status s = ValidateMoves(from, to, moves); !s.ok()) return s;
  std::vector<Piece> pieces;
  const auto* src = static_cast<const uint8_t*>(from.pages);
  auto* dst = static_cast<uint8_t*>(to.pages);
  for (const PageMove& m : moves) {
    const uint8_t* s = src + uint64_t{m.src_page} * from.page_bytes + m.offset;
    uint8_t* d = dst + uint64_t{m.dst_page} * to.page_bytes + m.offset;
    for (uint64_t done = 0; done < m.length; done += kPieceBytes) {
      pieces.push_back({s + done, d + done, std::min(kPieceBytes, m.length - done)});
    }
  }
  return LaunchPieces(pieces, options);
}

}  // namespace kvtier::kernels
