// Safetensors read/write and the errors for damaged or mismatched files.
#include "worker/safetensors.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "kernels/numeric.h"

namespace kvtier::worker {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          (name + "." + std::to_string(::getpid()) + ".safetensors"))
      .string();
}

void WriteRaw(const std::string& path, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
}

TEST(SafetensorsTest, RoundTripsF32Tensors) {
  const std::string path = TempPath("roundtrip");
  ASSERT_TRUE(WriteSafetensors(path, {{"a.weight", {2, 3}, {1, 2, 3, 4, 5, 6}},
                                      {"b", {4}, {-1.5f, 0, 2.25f, 1e-3f}}})
                  .ok());
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->entries().size(), 2u);
  const std::vector<uint64_t> shape{2, 3};
  absl::StatusOr<std::vector<float>> a = file->ReadF32("a.weight", shape);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  const std::vector<uint64_t> wrong{3, 2};
  absl::Status s = file->ReadF32("a.weight", wrong).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("a.weight has shape [2, 3], the model needs [3, 2]"),
            std::string::npos)
      << s;
  EXPECT_EQ(file->ReadF32("missing", shape).status().code(), absl::StatusCode::kNotFound);
  std::remove(path.c_str());
}

TEST(SafetensorsTest, ReadsBf16AndF16) {
  const std::string path = TempPath("halves");
  const uint16_t bf[2] = {kernels::FloatToBf16(1.5f), kernels::FloatToBf16(-2.0f)};
  const uint16_t hf[2] = {kernels::FloatToHalf(0.25f), kernels::FloatToHalf(3.0f)};
  std::string data(8, '\0');
  std::memcpy(data.data(), bf, 4);
  std::memcpy(data.data() + 4, hf, 4);
  WriteRaw(
      path,
      R"({"__metadata__":{"format":"pt"},"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
      R"("y":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}})",
      data);
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const std::vector<uint64_t> two{2};
  EXPECT_EQ(*file->ReadF32("x", two), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(*file->ReadF32("y", two), (std::vector<float>{0.25f, 3.0f}));
  std::remove(path.c_str());
}

TEST(SafetensorsTest, HexEscapesInNamesDecode) {
  const std::string path = TempPath("escape");
  WriteRaw(path, R"({"a\u0042c":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
           std::string(4, '\0'));
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->Has("aBc"));
  std::remove(path.c_str());
}

TEST(SafetensorsTest, DamagedFilesAreClearErrors) {
  const std::string path = TempPath("bad");
  struct Case {
    std::string header, data, expect;
  };
  const std::vector<Case> cases = {
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234", "outside the file"},
      {R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678", "8 bytes for 3"},
      {R"({"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", "12345678", "dtype I64"},
      {R"({"x":{"dtype":"F32","shape":[2]}})", "12345678", "needs dtype, shape and data_offsets"},
      {R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})", "12345678", "header JSON"},
      // Found by safetensors_fuzzer: a \u escape that is not hex threw out of the parser.
      {R"({"x\uzzzz":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "12345678",
       "bad \\u escape"},
      {R"({"x\u00":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "12345678", "header JSON"},
  };
  for (const Case& c : cases) {
    WriteRaw(path, c.header, c.data);
    absl::Status s = SafetensorsFile::Open(path).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.header;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s;
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "abc";
  EXPECT_NE(SafetensorsFile::Open(path).status().message().find("8-byte"), std::string::npos);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      << std::string("\xff\xff\xff\x7f\0\0\0\0", 8);
  EXPECT_NE(SafetensorsFile::Open(path).status().message().find("runs past"), std::string::npos);
  EXPECT_EQ(SafetensorsFile::Open(path + ".none").status().code(), absl::StatusCode::kNotFound);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace kvtier::worker
