// CallPool: a fixed set of threads that run a sharded client's per-shard calls in
// parallel. Tasks never wait for other tasks, so a full queue only delays, never
// deadlocks.
#ifndef KVTIER_CLIENT_CALL_POOL_H_
#define KVTIER_CLIENT_CALL_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace kvtier {

class CallPool {
 public:
  explicit CallPool(int threads);
  ~CallPool();  // runs the queued tasks, then joins
  CallPool(const CallPool&) = delete;
  CallPool& operator=(const CallPool&) = delete;

  void Submit(std::function<void()> task);

  // Runs every task, tasks[0] on the calling thread and the rest on the pool, and returns
  // when all have ended.
  void RunAll(std::vector<std::function<void()>> tasks);

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_CALL_POOL_H_
