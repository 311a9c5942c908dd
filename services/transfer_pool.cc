#include "services/transfer_pool.h"

#include <algorithm>

namespace kvtier {

TransferPool::TransferPool(int threads) {
  // A few threads saturate a socket's memory bandwidth; more only contend for it.
  if (threads <= 0) {
    threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, kDefaultMax));
  }
  threads_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

TransferPool::~TransferPool() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void TransferPool::Run(size_t tasks, std::function<void(size_t)> task, std::function<void()> done) {
  auto job = std::make_shared<Job>();
  job->tasks = tasks;
  job->task = std::move(task);
  job->done = std::move(done);
  // An empty job still needs one "task" for a thread to run its done.
  job->remaining = std::max<size_t>(tasks, 1);
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(job));
}

void TransferPool::Loop() {
  while (true) {
    std::shared_ptr<Job> job;
    size_t index = 0;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](TransferPool* p)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) { return !p->queue_.empty() || p->stop_; },
          this));
      if (queue_.empty()) return;  // stopping, and nothing left
      job = queue_.front();
      index = job->next.fetch_add(1);
      // The last task handed out takes the job off the queue; threads still on its other
      // tasks hold it through `job`.
      if (index + 1 >= std::max<size_t>(job->tasks, 1)) queue_.pop_front();
    }
    if (index < job->tasks) job->task(index);
    if (job->remaining.fetch_sub(1) == 1) job->done();
  }
}

}  // namespace kvtier
