// The CUDA entry points of a build without the CUDA toolkit (KVTIER_CUDA=OFF): they exist,
// so callers link the same way, and they say why they cannot run.
#include "kernels/backend.h"
#include "kernels/cuda_memory.h"
#include "kernels/cuda_workspace.h"
#include "kernels/decoder_ops.h"
#include "kernels/kv_quantize.h"
#include "kernels/page_copy.h"
#include "kernels/paged_attention.h"

namespace kvtier::kernels {
namespace {

absl::Status NotBuilt() {
  return absl::UnimplementedError("kvtier was built without CUDA (cmake -DKVTIER_CUDA=ON)");
}

}  // namespace

bool CudaBuilt() { return false; }
bool CudaDeviceAvailable() { return false; }
std::string CudaDeviceDescription() { return "built without CUDA"; }
absl::Status CudaSynchronize(void*) { return NotBuilt(); }

absl::Status PagedDecodeAttentionCuda(const KvPagePool&, const DecodeAttentionArgs&,
                                      const CudaOptions&) {
  return NotBuilt();
}
absl::Status GatherPagesCuda(const PagePoolBytes&, std::span<const CopyFragment>, void*, uint64_t,
                             const CudaOptions&) {
  return NotBuilt();
}
absl::Status ScatterPagesCuda(const void*, uint64_t, std::span<const CopyFragment>,
                              const PagePoolBytes&, const CudaOptions&) {
  return NotBuilt();
}
absl::Status MovePagesCuda(const PagePoolBytes&, const PagePoolBytes&, std::span<const PageMove>,
                           const CudaOptions&) {
  return NotBuilt();
}
absl::Status QuantizeKvCuda(const void*, DType, const KvPageShape&, DType, void*, float*,
                            const CudaOptions&) {
  return NotBuilt();
}
absl::Status DequantizeKvCuda(const void*, DType, const float*, const KvPageShape&, DType, void*,
                              const CudaOptions&) {
  return NotBuilt();
}

absl::Status GemmBf16Cuda(const uint16_t*, const uint16_t*, float*, uint32_t, uint32_t, uint32_t,
                          bool, const CudaOptions&) {
  return NotBuilt();
}
absl::Status RmsNormToBf16Cuda(const float*, const float*, float, uint32_t, uint32_t, uint16_t*,
                               const CudaOptions&) {
  return NotBuilt();
}
absl::Status EmbedCuda(const uint16_t*, uint32_t, uint32_t, const uint32_t*, uint32_t, float*,
                       const CudaOptions&) {
  return NotBuilt();
}
absl::Status RopeAndStoreKvCuda(const KvPagePool&, const RopeKvArgs&, const CudaOptions&) {
  return NotBuilt();
}
absl::Status SiluMulToBf16Cuda(const float*, uint32_t, uint32_t, uint16_t*, const CudaOptions&) {
  return NotBuilt();
}

struct CudaWorkspace::State {};
CudaWorkspace::CudaWorkspace() = default;
CudaWorkspace::~CudaWorkspace() = default;
absl::StatusOr<CudaWorkspace::Reservation> CudaWorkspace::Reserve(uint64_t, uint64_t, void*) {
  return NotBuilt();
}
absl::Status CudaWorkspace::Upload(uint64_t, void*) { return NotBuilt(); }
absl::Status CudaWorkspace::Finish(void*) { return NotBuilt(); }
uint64_t CudaWorkspace::device_bytes() const { return 0; }

absl::StatusOr<CudaBuffer> CudaBuffer::Allocate(uint64_t, Kind) { return NotBuilt(); }
CudaBuffer::CudaBuffer(CudaBuffer&& other) noexcept = default;
CudaBuffer& CudaBuffer::operator=(CudaBuffer&& other) noexcept = default;
CudaBuffer::~CudaBuffer() {}  // NOLINT(modernize-use-equals-default): matches the CUDA build
void CudaBuffer::Free() {}
absl::StatusOr<CudaHostRegistration> CudaHostRegistration::Register(void*, uint64_t) {
  return NotBuilt();
}
CudaHostRegistration::CudaHostRegistration(CudaHostRegistration&& other) noexcept = default;
CudaHostRegistration& CudaHostRegistration::operator=(CudaHostRegistration&& other) noexcept =
    default;
CudaHostRegistration::~CudaHostRegistration() {}  // NOLINT(modernize-use-equals-default)
absl::StatusOr<CudaStream> CudaStream::Create() { return NotBuilt(); }
CudaStream::CudaStream(CudaStream&& other) noexcept = default;
CudaStream& CudaStream::operator=(CudaStream&& other) noexcept = default;
CudaStream::~CudaStream() {}  // NOLINT(modernize-use-equals-default): matches the CUDA build
absl::StatusOr<CudaEvent> CudaEvent::Create() { return NotBuilt(); }
CudaEvent::CudaEvent(CudaEvent&& other) noexcept = default;
CudaEvent& CudaEvent::operator=(CudaEvent&& other) noexcept = default;
CudaEvent::~CudaEvent() {}  // NOLINT(modernize-use-equals-default): matches the CUDA build
absl::Status CudaEvent::Record(void*) { return NotBuilt(); }
absl::Status CudaEvent::Synchronize() { return NotBuilt(); }
absl::Status CudaCopy(void*, const void*, uint64_t) { return NotBuilt(); }
absl::Status CudaCopyAsync(void*, const void*, uint64_t, void*) { return NotBuilt(); }
absl::Status CudaFill(void*, uint8_t, uint64_t) { return NotBuilt(); }
absl::StatusOr<double> CudaTimePerCall(void*, int, const std::function<absl::Status()>&) {
  return NotBuilt();
}

}  // namespace kvtier::kernels
