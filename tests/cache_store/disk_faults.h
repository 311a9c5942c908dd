// A disk that the test can stall or break: DiskFaults::Injector() goes into
// SsdTierOptions::fault_injector. Stalled I/O waits (counted in blocked()) until the test
// resumes it; failing I/O returns an error as a broken disk would. StallReadsAfter and
// FailReadsAfter let a number of reads through first (with one reader thread, the first
// blocks of a read).
#ifndef KVTIER_TESTS_CACHE_STORE_DISK_FAULTS_H_
#define KVTIER_TESTS_CACHE_STORE_DISK_FAULTS_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kvtier::testing {

class DiskFaults {
 public:
  void StallReads(bool on) { Set(&stall_reads_, on); }
  void StallWrites(bool on) { Set(&stall_writes_, on); }
  void FailReads(bool on) { Set(&fail_reads_, on); }
  // The next n reads go through; the ones after stall (until StallReads(false)) or fail
  // (until FailReads(false)).
  void StallReadsAfter(int n) {
    absl::MutexLock lock(&mu_);
    passing_reads_ = n;
    stall_reads_ = true;
  }
  void FailReadsAfter(int n) {
    absl::MutexLock lock(&mu_);
    passing_reads_ = n;
    fail_reads_ = true;
  }
  // I/O calls waiting in a stall now.
  int blocked() {
    absl::MutexLock lock(&mu_);
    return blocked_;
  }
  // Waits until at least n calls are stalled; false after `timeout`.
  bool AwaitBlocked(int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto cond = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return blocked_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
  }

  std::function<absl::Status(bool, uint32_t)> Injector() {
    return [this](bool write, uint32_t) -> absl::Status {
      absl::MutexLock lock(&mu_);
      if (!write && passing_reads_ > 0) {
        --passing_reads_;
        return absl::OkStatus();
      }
      if (!write && fail_reads_) return absl::UnavailableError("injected: the disk failed a read");
      bool* stall = write ? &stall_writes_ : &stall_reads_;
      ++blocked_;
      mu_.Await(absl::Condition(+[](bool* s) { return !*s; }, stall));
      --blocked_;
      return absl::OkStatus();
    };
  }

 private:
  void Set(bool* flag, bool on) {
    absl::MutexLock lock(&mu_);
    *flag = on;
  }
  absl::Mutex mu_;
  bool stall_reads_ ABSL_GUARDED_BY(mu_) = false;
  bool stall_writes_ ABSL_GUARDED_BY(mu_) = false;
  bool fail_reads_ ABSL_GUARDED_BY(mu_) = false;
  int passing_reads_ ABSL_GUARDED_BY(mu_) = 0;
  int blocked_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kvtier::testing

#endif  // KVTIER_TESTS_CACHE_STORE_DISK_FAULTS_H_
