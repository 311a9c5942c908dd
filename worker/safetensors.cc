#include "worker/safetensors.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <variant>

#include "absl/strings/str_cat.h"
#include "kernels/numeric.h"

namespace kvtier::worker {
namespace {

// The JSON subset of a safetensors header: objects, arrays, strings, non-negative
// integers (and other numbers, which are rejected where an integer is needed).
struct Json;
using JsonObject = std::map<std::string, Json>;
using JsonArray = std::vector<Json>;
struct Json {
  std::variant<std::monostate, std::string, double, JsonArray, JsonObject, bool> v;
};

class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : s_(text) {}

  absl::StatusOr<Json> ParseDocument() {
    absl::StatusOr<Json> value = Value(0);
    if (!value.ok()) return value;
    Space();
    if (pos_ != s_.size()) return Error("trailing characters");
    return value;
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("header JSON: ", std::string(what), " at byte ", pos_));
  }
  static int HexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  void Space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }
  absl::StatusOr<std::string> String() {
    if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected a string");
    ++pos_;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c == '\\') {
        if (pos_ >= s_.size()) break;
        const char e = s_[pos_++];
        switch (e) {
          case 'n':
            c = '\n';
            break;
          case 't':
            c = '\t';
            break;
          case 'r':
            c = '\r';
            break;
          case 'b':
            c = '\b';
            break;
          case 'f':
            c = '\f';
            break;
          case 'u': {
            if (pos_ + 4 > s_.size()) return Error("bad \\u escape");
            unsigned code = 0;
            for (size_t k = 0; k < 4; ++k) {
              const int digit = HexDigit(s_[pos_ + k]);
              if (digit < 0) return Error("bad \\u escape");
              code = code * 16 + static_cast<unsigned>(digit);
            }
            pos_ += 4;
            if (code >= 0x80) return Error("non-ASCII \\u escape");
            c = static_cast<char>(code);
            break;
          }
          default:
            c = e;
        }
      }
      out.push_back(c);
    }
    if (pos_ >= s_.size()) return Error("unterminated string");
    ++pos_;
    return out;
  }
  absl::StatusOr<Json> Value(int depth) {
    if (depth > 8) return Error("nesting too deep");
    Space();
    if (pos_ >= s_.size()) return Error("unexpected end");
    const char c = s_[pos_];
    if (c == '"') {
      absl::StatusOr<std::string> str = String();
      if (!str.ok()) return str.status();
      return Json{*std::move(str)};
    }
    if (c == '{') {
      ++pos_;
      JsonObject object;
      Space();
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return Json{std::move(object)};
      }
      while (true) {
        Space();
        absl::StatusOr<std::string> key = String();
        if (!key.ok()) return key.status();
        Space();
        if (pos_ >= s_.size() || s_[pos_] != ':') return Error("expected ':'");
        ++pos_;
        absl::StatusOr<Json> value = Value(depth + 1);
        if (!value.ok()) return value;
        if (!object.emplace(*key, *std::move(value)).second) {
          return Error(absl::StrCat("duplicate key \"", *key, "\""));
        }
        Space();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == '}') {
          ++pos_;
          return Json{std::move(object)};
        }
        return Error("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++pos_;
      JsonArray array;
      Space();
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return Json{std::move(array)};
      }
      while (true) {
        absl::StatusOr<Json> value = Value(depth + 1);
        if (!value.ok()) return value;
        array.push_back(*std::move(value));
        Space();
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < s_.size() && s_[pos_] == ']') {
          ++pos_;
          return Json{std::move(array)};
        }
        return Error("expected ',' or ']'");
      }
    }
    if (s_.substr(pos_, 4) == "true") {
      pos_ += 4;
      return Json{true};
    }
    if (s_.substr(pos_, 5) == "false") {
      pos_ += 5;
      return Json{false};
    }
    if (s_.substr(pos_, 4) == "null") {
      pos_ += 4;
      return Json{};
    }
    const size_t start = pos_;
    while (pos_ < s_.size() &&
           (std::isdigit(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '-' ||
            s_[pos_] == '+' || s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
    }
    if (start == pos_) return Error("unexpected character");
    try {
      return Json{std::stod(std::string(s_.substr(start, pos_ - start)))};
    } catch (...) {
      return Error("bad number");
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

bool AsU64(const Json& j, uint64_t* out) {
  const double* d = std::get_if<double>(&j.v);
  if (d == nullptr || *d < 0 || *d > 9.0e15 ||
      *d != static_cast<double>(static_cast<uint64_t>(*d))) {
    return false;
  }
  *out = static_cast<uint64_t>(*d);
  return true;
}

uint64_t DtypeBytes(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  return 0;
}

}  // namespace

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open weights file ", path));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  return FromBytes(std::move(bytes), path);
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::FromBytes(std::vector<uint8_t> bytes,
                                                           const std::string& path) {
  auto fail = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
  };
  if (bytes.size() < 8) return fail("shorter than the 8-byte header length");
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  if (header > bytes.size() - 8 || header > (100u << 20)) {
    return fail(absl::StrCat("header length ", header, " runs past the file"));
  }
  absl::StatusOr<Json> doc =
      HeaderParser({reinterpret_cast<const char*>(bytes.data()) + 8, header}).ParseDocument();
  if (!doc.ok()) return fail(std::string(doc.status().message()));
  const JsonObject* top = std::get_if<JsonObject>(&doc->v);
  if (top == nullptr) return fail("the header is not a JSON object");
  SafetensorsFile file;
  file.path_ = path;
  file.data_.assign(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header), bytes.end());
  for (const auto& [name, value] : *top) {
    if (name == "__metadata__") continue;
    const JsonObject* t = std::get_if<JsonObject>(&value.v);
    if (t == nullptr) return fail(absl::StrCat("tensor ", name, " is not an object"));
    Entry e;
    auto dtype = t->find("dtype");
    auto shape = t->find("shape");
    auto offsets = t->find("data_offsets");
    if (dtype == t->end() || shape == t->end() || offsets == t->end() ||
        !std::holds_alternative<std::string>(dtype->second.v) ||
        !std::holds_alternative<JsonArray>(shape->second.v) ||
        !std::holds_alternative<JsonArray>(offsets->second.v)) {
      return fail(absl::StrCat("tensor ", name, " needs dtype, shape and data_offsets"));
    }
    e.dtype = std::get<std::string>(dtype->second.v);
    if (DtypeBytes(e.dtype) == 0) {
      return fail(
          absl::StrCat("tensor ", name, " has dtype ", e.dtype, " (supported: F32, F16, BF16)"));
    }
    uint64_t elements = 1;
    for (const Json& d : std::get<JsonArray>(shape->second.v)) {
      uint64_t n = 0;
      if (!AsU64(d, &n) || n > (1ull << 40))
        return fail(absl::StrCat("tensor ", name, ": bad shape"));
      e.shape.push_back(n);
      elements *= n;
      if (elements > (1ull << 40)) return fail(absl::StrCat("tensor ", name, ": too large"));
    }
    const JsonArray& off = std::get<JsonArray>(offsets->second.v);
    if (off.size() != 2 || !AsU64(off[0], &e.begin) || !AsU64(off[1], &e.end) || e.end < e.begin ||
        e.end > file.data_.size()) {
      return fail(absl::StrCat("tensor ", name, ": data_offsets outside the file's ",
                               file.data_.size(), " data bytes"));
    }
    if (e.end - e.begin != elements * DtypeBytes(e.dtype)) {
      return fail(absl::StrCat("tensor ", name, ": ", e.end - e.begin, " bytes for ", elements, " ",
                               e.dtype, " elements"));
    }
    file.entries_.emplace(name, std::move(e));
  }
  return file;
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadF32(const std::string& name,
                                                            std::span<const uint64_t> shape) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor ", name));
  }
  const Entry& e = it->second;
  if (!std::equal(e.shape.begin(), e.shape.end(), shape.begin(), shape.end())) {
    auto dims = [](std::span<const uint64_t> s) {
      std::string out = "[";
      for (size_t i = 0; i < s.size(); ++i) absl::StrAppend(&out, i ? ", " : "", s[i]);
      return out + "]";
    };
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": tensor ", name, " has shape ", dims(e.shape), ", the model needs ", dims(shape)));
  }
  const uint8_t* p = data_.data() + e.begin;
  const uint64_t n = (e.end - e.begin) / DtypeBytes(e.dtype);
  std::vector<float> out(n);
  for (uint64_t i = 0; i < n; ++i) {
    if (e.dtype == "F32") {
      std::memcpy(&out[i], p + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = e.dtype == "F16" ? kernels::HalfToFloat(h) : kernels::Bf16ToFloat(h);
    }
  }
  return out;
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors) {
  std::string header = "{";
  uint64_t at = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const NamedTensor& t = tensors[i];
    std::string shape;
    for (size_t d = 0; d < t.shape.size(); ++d) absl::StrAppend(&shape, d ? "," : "", t.shape[d]);
    const uint64_t bytes = t.values.size() * 4;
    absl::StrAppend(&header, i ? "," : "", "\"", t.name, "\":{\"dtype\":\"F32\",\"shape\":[", shape,
                    "],\"data_offsets\":[", at, ",", at + bytes, "]}");
    at += bytes;
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';  // the format pads the header to 8 bytes
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", path));
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const NamedTensor& t : tensors) {
    out.write(reinterpret_cast<const char*>(t.values.data()),
              static_cast<std::streamsize>(t.values.size() * 4));
  }
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("writing ", path, " failed"));
  return absl::OkStatus();
}

}  // namespace kvtier::worker
