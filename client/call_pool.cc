#include "client/call_pool.h"

#include <algorithm>
#include <memory>

#include "absl/synchronization/blocking_counter.h"

namespace kvtier {

CallPool::CallPool(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { Loop(); });
}

CallPool::~CallPool() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void CallPool::Submit(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
}

void CallPool::Loop() {
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](CallPool* p)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) { return p->stop_ || !p->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // stopping, and nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void CallPool::RunAll(std::vector<std::function<void()>> tasks) {
  if (tasks.empty()) return;
  if (tasks.size() == 1) return tasks[0]();
  absl::BlockingCounter left(static_cast<int>(tasks.size()) - 1);
  for (size_t i = 1; i < tasks.size(); ++i) {
    Submit([&left, task = std::move(tasks[i])] {
      task();
      left.DecrementCount();
    });
  }
  tasks[0]();
  left.Wait();
}

}  // namespace kvtier
