// Clock: the time source of the engine, injectable so that lease and pin expiry can be
// tested without sleeping. Implementations are thread-safe.
#ifndef KVTIER_CACHE_STORE_CLOCK_H_
#define KVTIER_CACHE_STORE_CLOCK_H_

#include <atomic>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace kvtier {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // The process-wide wall clock.
  static Clock* Real();
};

// A clock that moves only when told to (tests).
class ManualClock : public Clock {
 public:
  explicit ManualClock(absl::Time start = absl::UnixEpoch() + absl::Hours(1))
      : now_ns_(absl::ToUnixNanos(start)) {}
  absl::Time Now() const override { return absl::FromUnixNanos(now_ns_.load()); }
  void Advance(absl::Duration d) { now_ns_ += absl::ToInt64Nanoseconds(d); }

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_CLOCK_H_
