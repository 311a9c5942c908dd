// Deterministic prompts and payload bytes for the service and process tests.
#ifndef KVTIER_TESTS_SERVICES_TEST_PROMPTS_H_
#define KVTIER_TESTS_SERVICES_TEST_PROMPTS_H_

#include <cstdint>
#include <vector>

namespace kvtier::testing {

// n token ids; different seeds give prompts that share no block.
inline std::vector<uint32_t> Tokens(size_t n, uint32_t seed) {
  std::vector<uint32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = seed * 7919u + static_cast<uint32_t>(i);
  return t;
}

// n pseudo-random bytes (xorshift), a pure function of the seed.
inline std::vector<uint8_t> RandomBytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> out(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = static_cast<uint8_t>(x);
  }
  return out;
}

}  // namespace kvtier::testing

#endif  // KVTIER_TESTS_SERVICES_TEST_PROMPTS_H_
