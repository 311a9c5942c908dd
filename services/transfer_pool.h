// TransferPool: the threads that copy block payloads for same-node calls (between T1 and
// a client's attached region), so that a copy of hundreds of MiB never runs on a gRPC
// reaction thread, and a large one uses several cores.
//
// A job is `tasks` independent pieces of work (a batch of ranges); Run() queues it and
// returns at once. The pool's threads take tasks in order (a job's tasks before the next
// job's), any number of threads on one job at a time, and the thread that finishes a job's
// last task runs its `done`. Tasks must not block on other jobs. The destructor finishes
// every queued job first. Thread-safe.
#ifndef KVTIER_SERVICES_TRANSFER_POOL_H_
#define KVTIER_SERVICES_TRANSFER_POOL_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace kvtier {

class TransferPool {
 public:
  static constexpr unsigned kDefaultMax = 8;

  // `threads` <= 0: one per core, at most kDefaultMax.
  explicit TransferPool(int threads);
  ~TransferPool();
  TransferPool(const TransferPool&) = delete;
  TransferPool& operator=(const TransferPool&) = delete;

  // Runs task(0) ... task(tasks - 1), then done() once all have returned. With tasks == 0,
  // done runs on a pool thread all the same.
  void Run(size_t tasks, std::function<void(size_t)> task, std::function<void()> done);

  int threads() const { return static_cast<int>(threads_.size()); }

 private:
  struct Job {
    size_t tasks;
    std::function<void(size_t)> task;
    std::function<void()> done;
    std::atomic<size_t> next{0};
    std::atomic<size_t> remaining;
  };
  void Loop();

  absl::Mutex mu_;
  std::deque<std::shared_ptr<Job>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_TRANSFER_POOL_H_
