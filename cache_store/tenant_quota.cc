#include "cache_store/tenant_quota.h"

#include <array>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kvtier {
namespace {

// Debian's Abseil has its own string_view; StrCat takes that one.
absl::string_view Sv(std::string_view v) { return absl::string_view(v.data(), v.size()); }

}  // namespace

const TenantQuota& TenantQuotas::For(std::string_view tenant) const {
  auto it = tenants.find(absl::string_view(tenant.data(), tenant.size()));
  return it == tenants.end() ? defaults : it->second;
}

absl::Status TenantQuotas::ValidateAgainstCapacity(uint64_t t1_bytes, uint64_t t2_bytes) const {
  uint64_t t1 = 0, t2 = 0;
  for (const auto& [name, q] : tenants) {
    t1 += q.t1_guarantee;
    t2 += q.t2_guarantee;
  }
  if (t1 > t1_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("the tenants' T1 guarantees add up to ", t1,
                                                   " bytes, more than T1's ", t1_bytes));
  }
  if (t2 > t2_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the tenants' T2 guarantees add up to ", t2, " bytes, more than T2's ",
                     t2_bytes, t2_bytes == 0 ? " (no T2 is configured)" : ""));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  std::string_view digits = text;
  size_t n = 0;
  while (n < digits.size() && absl::ascii_isdigit(static_cast<unsigned char>(digits[n]))) ++n;
  const std::string_view suffix = text.substr(n);
  digits = digits.substr(0, n);
  uint64_t value = 0;
  if (digits.empty() || !absl::SimpleAtoi(Sv(digits), &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", Sv(text), "\" is not a size (an integer with an optional suffix K, M, G, "
                     "T, KiB, MiB, GiB or TiB)"));
  }
  static constexpr struct {
    const char* name;
    uint64_t factor;
  } kSuffixes[] = {{"", 1},
                   {"B", 1},
                   {"K", 1000},
                   {"M", 1000 * 1000},
                   {"G", 1000 * 1000 * 1000},
                   {"T", uint64_t{1000} * 1000 * 1000 * 1000},
                   {"KiB", uint64_t{1} << 10},
                   {"MiB", uint64_t{1} << 20},
                   {"GiB", uint64_t{1} << 30},
                   {"TiB", uint64_t{1} << 40}};
  for (const auto& s : kSuffixes) {
    if (suffix != s.name) continue;
    if (value > UINT64_MAX / s.factor) {
      return absl::InvalidArgumentError(absl::StrCat("size \"", Sv(text), "\" overflows 64 bits"));
    }
    return value * s.factor;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "\"", Sv(text), "\" has an unknown unit \"", Sv(suffix), "\" (K, M, G, T, KiB, MiB, GiB or TiB)"));
}

namespace {

absl::Status CheckQuota(const TenantQuota& q) {
  if (q.t1_limit != 0 && q.t1_guarantee > q.t1_limit) {
    return absl::InvalidArgumentError(absl::StrCat("t1_guarantee ", q.t1_guarantee,
                                                   " exceeds t1_limit ", q.t1_limit));
  }
  if (q.t2_limit != 0 && q.t2_guarantee > q.t2_limit) {
    return absl::InvalidArgumentError(absl::StrCat("t2_guarantee ", q.t2_guarantee,
                                                   " exceeds t2_limit ", q.t2_limit));
  }
  return absl::OkStatus();
}

bool ValidTenantName(std::string_view tenant) {
  if (tenant.empty() || tenant.size() > 64) return false;
  for (char c : tenant) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<TenantQuotas> ParseTenantQuotas(std::string_view text, std::string_view source,
                                               const TenantQuota& defaults) {
  TenantQuotas quotas;
  quotas.defaults = defaults;
  // The '*' line may come anywhere: tenants' unset keys take the final defaults, so each
  // line records which keys it set.
  struct Line {
    std::string tenant;
    TenantQuota quota;
    std::array<bool, 4> set{};
  };
  std::vector<Line> lines;
  bool saw_default = false;
  int n = 0;
  for (absl::string_view raw_line :
       absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    const std::string_view raw(raw_line.data(), raw_line.size());
    ++n;
    const std::string_view content = raw.substr(0, raw.find('#'));
    std::vector<std::string_view> fields;
    for (absl::string_view f : absl::StrSplit(absl::string_view(content.data(), content.size()),
                                              absl::ByAnyChar(" \t\r"), absl::SkipEmpty())) {
      fields.emplace_back(f.data(), f.size());
    }
    if (fields.empty()) continue;
    auto error = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(Sv(source), ":", n, ": ", why));
    };
    Line line;
    line.tenant = std::string(fields[0]);
    if (line.tenant != "*" && !ValidTenantName(line.tenant)) {
      return error(absl::StrCat("\"", line.tenant,
                                "\" is not a tenant name (1-64 characters of [A-Za-z0-9._-]) "
                                "or * (every tenant not listed)"));
    }
    if (fields.size() == 1) return error("expected TENANT KEY=BYTES ...");
    for (size_t i = 1; i < fields.size(); ++i) {
      const size_t eq = fields[i].find('=');
      if (eq == std::string_view::npos) {
        return error(absl::StrCat("\"", Sv(fields[i]), "\" is not KEY=BYTES"));
      }
      const std::string_view key = fields[i].substr(0, eq);
      absl::StatusOr<uint64_t> bytes = ParseByteSize(fields[i].substr(eq + 1));
      if (!bytes.ok()) return error(bytes.status().message());
      int k = -1;
      if (key == "t1_guarantee") k = 0;
      if (key == "t1_limit") k = 1;
      if (key == "t2_guarantee") k = 2;
      if (key == "t2_limit") k = 3;
      if (k < 0) {
        return error(absl::StrCat("unknown key \"", Sv(key),
                                  "\" (t1_guarantee, t1_limit, t2_guarantee, t2_limit)"));
      }
      if (line.set[k]) return error(absl::StrCat("\"", Sv(key), "\" is given twice"));
      line.set[k] = true;
      (k == 0   ? line.quota.t1_guarantee
       : k == 1 ? line.quota.t1_limit
       : k == 2 ? line.quota.t2_guarantee
                : line.quota.t2_limit) = *bytes;
    }
    if (line.tenant == "*") {
      if (saw_default) return error("a second * line");
      saw_default = true;
      if (line.quota.t1_guarantee != 0 || line.quota.t2_guarantee != 0) {
        return error("the * line cannot guarantee bytes (an unknown number of tenants cannot "
                     "each be promised some); list the tenants that need a guarantee");
      }
      if (line.set[1]) quotas.defaults.t1_limit = line.quota.t1_limit;
      if (line.set[3]) quotas.defaults.t2_limit = line.quota.t2_limit;
      if (absl::Status s = CheckQuota(quotas.defaults); !s.ok()) return error(s.message());
      continue;
    }
    for (const Line& l : lines) {
      if (l.tenant == line.tenant) return error(absl::StrCat("tenant ", line.tenant, " twice"));
    }
    lines.push_back(std::move(line));
  }
  if (quotas.defaults.t1_guarantee != 0 || quotas.defaults.t2_guarantee != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(source), ": the default quota cannot guarantee bytes to every tenant"));
  }
  for (const Line& l : lines) {
    TenantQuota q = quotas.defaults;
    if (l.set[0]) q.t1_guarantee = l.quota.t1_guarantee;
    if (l.set[1]) q.t1_limit = l.quota.t1_limit;
    if (l.set[2]) q.t2_guarantee = l.quota.t2_guarantee;
    if (l.set[3]) q.t2_limit = l.quota.t2_limit;
    if (absl::Status s = CheckQuota(q); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Sv(source), ": tenant ", l.tenant, ": ", s.message()));
    }
    quotas.tenants.emplace(l.tenant, q);
  }
  return quotas;
}

absl::StatusOr<TenantQuotas> LoadTenantQuotaFile(const std::string& path,
                                                 const TenantQuota& defaults) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read tenant quota file ", path));
  std::stringstream text;
  text << in.rdbuf();
  return ParseTenantQuotas(text.str(), path, defaults);
}

}  // namespace kvtier
