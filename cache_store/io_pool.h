// IoPool: a fixed set of threads that run submitted tasks in order of submission. The store
// runs T2 disk reads and writes on two of them (readers and writers), so that no caller
// thread (a gRPC reaction thread above all) waits on the disk, reads are not queued behind
// writes, and several reads of one Fetch are in flight at once.
//
// Submit never blocks. The destructor runs every task already submitted, then joins.
// Thread-safe.
#ifndef KVTIER_CACHE_STORE_IO_POOL_H_
#define KVTIER_CACHE_STORE_IO_POOL_H_

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace kvtier {

class IoPool {
 public:
  IoPool(int threads, std::string name);
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  void Submit(absl::AnyInvocable<void() &&> task) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until every task submitted before the call has run.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);
  size_t queued() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string name_;
  mutable absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> tasks_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_IO_POOL_H_
