// FMI::Request, wait_all and wait_any.
//
// One mutex and condition variable for every request of the process: a request
// completes once, and wait_any must sleep until any one of several requests
// completes without spinning and without registering itself with each of them.
// Waiters are few (the threads of a function that wait), so waking all of them
// at each completion costs little.
#include "communicator/request.h"

#include <condition_variable>
#include <mutex>

#include "fmi/errors.h"

namespace FMI {

namespace {
std::mutex& done_mu() {
  static std::mutex mu;
  return mu;
}
std::condition_variable& done_cv() {
  static std::condition_variable cv;
  return cv;
}
}  // namespace

namespace detail {
void complete(RequestState& s, std::exception_ptr error) noexcept {
  {
    std::lock_guard lk(done_mu());
    s.done = true;
    s.error = std::move(error);
  }
  done_cv().notify_all();
}
}  // namespace detail

Request& Request::operator=(Request&& other) noexcept {
  if (this != &other) {
    try {
      wait();
    } catch (...) {
      // Dropped, as by the destructor: the request is being replaced.
    }
    state_ = std::move(other.state_);
  }
  return *this;
}

Request::~Request() {
  try {
    wait();
  } catch (...) {
    // A destructor must not throw; whoever wanted the error waits before.
  }
}

void Request::finish() {
  auto s = std::move(state_);
  std::exception_ptr e;
  {
    std::lock_guard lk(done_mu());
    e = s->error;
  }
  if (e) std::rethrow_exception(e);
}

void Request::wait() {
  if (!state_) return;
  {
    std::unique_lock lk(done_mu());
    done_cv().wait(lk, [&] { return state_->done; });
  }
  finish();
}

bool Request::test() {
  if (!state_) return true;
  {
    std::lock_guard lk(done_mu());
    if (!state_->done) return false;
  }
  finish();
  return true;
}

bool Request::wait_for(std::chrono::milliseconds timeout) {
  if (!state_) return true;
  {
    std::unique_lock lk(done_mu());
    if (!done_cv().wait_for(lk, timeout, [&] { return state_->done; })) return false;
  }
  finish();
  return true;
}

void wait_all(std::vector<Request>& requests) {
  std::exception_ptr first;
  for (auto& r : requests) {
    try {
      r.wait();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

std::size_t wait_any(std::vector<Request>& requests) {
  std::size_t found = requests.size();
  {
    std::unique_lock lk(done_mu());
    done_cv().wait(lk, [&] {
      bool any_active = false;
      for (std::size_t i = 0; i < requests.size(); ++i) {
        if (!requests[i].state_) continue;
        any_active = true;
        if (requests[i].state_->done) {
          found = i;
          return true;
        }
      }
      return !any_active;
    });
  }
  if (found == requests.size())
    FMI_THROW(UsageError, "wait_any: none of the ", requests.size(), " requests is active");
  requests[found].finish();
  return found;
}

}  // namespace FMI
