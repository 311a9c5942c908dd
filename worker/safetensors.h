// Safetensors files, the Hugging Face weight format: an 8-byte little-endian header length
// N, N bytes of JSON mapping each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end)} (offsets into the data that follows; an optional "__metadata__" entry of
// strings), then the data. Tensors are read as fp32 from F32, F16 or BF16.
//
// Open validates the whole header up front (sizes, offsets inside the file, byte counts
// matching shape × dtype) and errors name the file and the tensor. Immutable after Open;
// thread-safe for reading.
#ifndef KVTIER_WORKER_SAFETENSORS_H_
#define KVTIER_WORKER_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier::worker {

class SafetensorsFile {
 public:
  struct Entry {
    std::string dtype;  // "F32", "F16" or "BF16"
    std::vector<uint64_t> shape;
    uint64_t begin = 0, end = 0;  // within the data section
  };

  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);
  // The same from the file's bytes; `path` names it in errors.
  static absl::StatusOr<SafetensorsFile> FromBytes(std::vector<uint8_t> bytes,
                                                   const std::string& path);

  bool Has(const std::string& name) const { return entries_.count(name) != 0; }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  // The tensor as fp32. NOT_FOUND if absent; INVALID_ARGUMENT if its shape is not `shape`.
  absl::StatusOr<std::vector<float>> ReadF32(const std::string& name,
                                             std::span<const uint64_t> shape) const;

 private:
  std::string path_;
  std::map<std::string, Entry> entries_;
  std::vector<uint8_t> data_;
};

struct NamedTensor {
  std::string name;
  std::vector<uint64_t> shape;
  std::vector<float> values;  // written as F32
};
// Writes a safetensors file of F32 tensors (tests, and exporting seeded weights).
absl::Status WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors);

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_SAFETENSORS_H_
