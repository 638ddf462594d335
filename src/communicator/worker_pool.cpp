#include "communicator/worker_pool.h"

namespace FMI::detail {

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::submit(std::function<void()> task) {
  std::lock_guard lk(mu_);
  queue_.push_back(std::move(task));
  // Each waiting worker takes one queued task; a task beyond them needs a thread
  // of its own, since the tasks before it may block until a peer catches up.
  if (queue_.size() > idle_)
    threads_.emplace_back([this] { work(); });
  else
    cv_.notify_one();
}

std::size_t WorkerPool::threads() const {
  std::lock_guard lk(mu_);
  return threads_.size();
}

void WorkerPool::work() {
  std::unique_lock lk(mu_);
  for (;;) {
    if (!queue_.empty()) {
      auto task = std::move(queue_.front());
      queue_.pop_front();
      lk.unlock();
      task();
      task = nullptr;  // what the task holds (channel, function) goes now, not at the next one
      lk.lock();
      continue;
    }
    if (stop_) return;
    ++idle_;
    cv_.wait(lk, [this] { return !queue_.empty() || stop_; });
    --idle_;
  }
}

}  // namespace FMI::detail
