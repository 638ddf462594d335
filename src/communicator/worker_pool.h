// The worker threads that run a communicator's non-blocking operations (issue 18,
// docs/nonblocking.md).
//
// Every operation gets a thread of its own for as long as it runs: an operation
// may block until a peer starts its match (an irecv waits for the peer's isend,
// which may have been started after a later irecv), so a fixed number of workers
// could deadlock two peers that each wait on a queued operation. Threads are
// started on first use and kept when their operation is done, to be reused by the
// next one (a step that starts k operations at a time costs k threads once); the
// destructor waits for every queued and running operation, then joins them all.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace FMI::detail {

class WorkerPool {
 public:
  WorkerPool() = default;
  /// Waits for every submitted task, then joins the threads.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  /// Runs `task` on an idle worker, or on a new one when none is idle. The task
  /// must not throw (the Communicator's tasks store their error in the request).
  void submit(std::function<void()> task);

  /// Threads started so far (tests: reused, not one per operation).
  std::size_t threads() const;

 private:
  void work();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;  // workers waiting for a task (each takes one queued task)
  bool stop_ = false;
};

}  // namespace FMI::detail
