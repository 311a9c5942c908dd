// The safetensors reader (worker/safetensors.h) on arbitrary files: Open validates the
// header or refuses it by name; every tensor it accepts reads back within the file.
#include <cstdint>
#include <vector>

#include "cache_store/log.h"
#include "worker/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<kvtier::worker::SafetensorsFile> file =
      kvtier::worker::SafetensorsFile::FromBytes(std::vector<uint8_t>(data, data + size), "fuzz");
  if (!file.ok()) {
    KVTIER_CHECK(file.status().message().find("fuzz") != std::string_view::npos)
        << "an error that does not name the file: " << file.status();
    return 0;
  }
  for (const auto& [name, entry] : file->entries()) {
    absl::StatusOr<std::vector<float>> t = file->ReadF32(name, entry.shape);
    KVTIER_CHECK(t.ok()) << "an accepted tensor does not read: " << t.status();
    uint64_t elements = 1;
    for (uint64_t d : entry.shape) elements *= d;
    KVTIER_CHECK(t->size() == elements) << name;
  }
  return 0;
}
