#include "bench/trace.h"

#include <cctype>
#include <cmath>
#include <charconv>
#include <fstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace kvtier::bench {
namespace {

// A cursor over one line of JSON with just enough grammar for flat trace records: an
// object whose values are numbers, strings, booleans, null, or arrays of numbers.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  void SkipSpace() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool Eat(char c) {
    SkipSpace();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  absl::Status Expect(char c) {
    if (Eat(c)) return absl::OkStatus();
    return Error(absl::StrCat("expected '", std::string(1, c), "'"));
  }
  absl::StatusOr<std::string> String() {
    SkipSpace();
    if (i_ >= s_.size() || s_[i_] != '"') return Error("expected a string");
    std::string out;
    for (++i_; i_ < s_.size() && s_[i_] != '"'; ++i_) {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) ++i_;
      out.push_back(s_[i_]);
    }
    if (i_ >= s_.size()) return Error("unterminated string");
    ++i_;
    return out;
  }
  absl::StatusOr<double> Number() {
    SkipSpace();
    const char* begin = s_.data() + i_;
    const char* end = s_.data() + s_.size();
    double v = 0;
    auto [ptr, ec] = std::from_chars(begin, end, v);
    if (ec != std::errc() || ptr == begin) return Error("expected a number");
    i_ += static_cast<size_t>(ptr - begin);
    return v;
  }
  // Skips any value (for unknown keys).
  absl::Status SkipValue() {
    SkipSpace();
    if (i_ >= s_.size()) return Error("expected a value");
    const char c = s_[i_];
    if (c == '"') return String().status();
    if (c == '[' || c == '{') {
      const char close = c == '[' ? ']' : '}';
      int depth = 0;
      for (; i_ < s_.size(); ++i_) {
        if (s_[i_] == '"') {
          if (absl::Status st = String().status(); !st.ok()) return st;
          --i_;
          continue;
        }
        if (s_[i_] == c) ++depth;
        if (s_[i_] == close && --depth == 0) {
          ++i_;
          return absl::OkStatus();
        }
      }
      return Error("unterminated value");
    }
    for (std::string_view word : {"true", "false", "null"}) {
      if (s_.substr(i_, word.size()) == word) {
        i_ += word.size();
        return absl::OkStatus();
      }
    }
    return Number().status();
  }
  bool AtEnd() {
    SkipSpace();
    return i_ == s_.size();
  }
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(std::string(what), " at column ", i_ + 1,
                                                   " (near \"", std::string(s_.substr(i_, 20)),
                                                   "\")"));
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

absl::StatusOr<int64_t> WholeNumber(Cursor& c, std::string_view field) {
  absl::StatusOr<double> v = c.Number();
  if (!v.ok())
    return absl::InvalidArgumentError(absl::StrCat(std::string(field), ": ", v.status().message()));
  // Checked before any cast: a double outside int64's range does not convert (undefined).
  constexpr double kLargest = 9007199254740992.0;  // 2^53: every whole number below is exact
  if (!(*v >= 0 && *v <= kLargest) || *v != std::floor(*v)) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(field), " must be a non-negative whole number, got ", *v));
  }
  return static_cast<int64_t>(*v);
}

}  // namespace

absl::StatusOr<TraceRequest> ParseTraceLine(std::string_view line) {
  Cursor c(line);
  TraceRequest r;
  bool has_ids = false;
  if (absl::Status s = c.Expect('{'); !s.ok()) return s;
  if (!c.Eat('}')) {
    do {
      absl::StatusOr<std::string> key = c.String();
      if (!key.ok()) return key.status();
      if (absl::Status s = c.Expect(':'); !s.ok()) return s;
      if (*key == "hash_ids") {
        if (absl::Status s = c.Expect('['); !s.ok()) return s;
        if (!c.Eat(']')) {
          do {
            absl::StatusOr<int64_t> id = WholeNumber(c, "hash_ids");
            if (!id.ok()) return id.status();
            r.hash_ids.push_back(static_cast<uint64_t>(*id));
          } while (c.Eat(','));
          if (absl::Status s = c.Expect(']'); !s.ok()) return s;
        }
        has_ids = true;
      } else if (*key == "timestamp" || *key == "input_length" || *key == "output_length") {
        absl::StatusOr<int64_t> v = WholeNumber(c, *key);
        if (!v.ok()) return v.status();
        (*key == "timestamp"      ? r.timestamp_ms
         : *key == "input_length" ? r.input_length
                                  : r.output_length) = *v;
      } else if (absl::Status s = c.SkipValue(); !s.ok()) {
        return s;
      }
    } while (c.Eat(','));
    if (absl::Status s = c.Expect('}'); !s.ok()) return s;
  }
  if (!c.AtEnd()) return c.Error("unexpected text after the object");
  if (!has_ids) return absl::InvalidArgumentError("the record has no hash_ids");
  return r;
}

absl::StatusOr<std::vector<TraceRequest>> LoadTrace(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open trace ", path));
  std::vector<TraceRequest> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    absl::StatusOr<TraceRequest> r = ParseTraceLine(line);
    if (!r.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " line ", n, ": ", r.status().message()));
    }
    out.push_back(*std::move(r));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, " holds no requests"));
  return out;
}

uint64_t UniqueBlocks(const std::vector<TraceRequest>& trace) {
  absl::flat_hash_set<uint64_t> ids;
  for (const TraceRequest& r : trace) ids.insert(r.hash_ids.begin(), r.hash_ids.end());
  return ids.size();
}

}  // namespace kvtier::bench
