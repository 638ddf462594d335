#include "requests.h"

#include <chrono>
#include <cmath>

#include "fmi/errors.h"

namespace fmipy {

PyRequest::~PyRequest() {
  if (req_.active()) {
    py::gil_scoped_release nogil;
    req_ = FMI::Request();  // waits; the error is dropped, as in C++
  }
}

void PyRequest::release() {
  views_.clear();
  reduction_.reset();
  keep_.clear();
}

py::object PyRequest::wait() {
  try {
    py::gil_scoped_release nogil;
    req_.wait();
  } catch (...) {
    release();
    throw;
  }
  release();
  return result_;
}

bool PyRequest::test() {
  bool done = false;
  try {
    done = req_.test();
  } catch (...) {
    release();
    throw;
  }
  if (done) release();
  return done;
}

bool PyRequest::wait_for(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds))
    FMI_THROW(FMI::UsageError,
              "Request.wait_for: timeout must be a finite number of seconds >= 0, got ", seconds);
  const auto ms = std::chrono::milliseconds(static_cast<long long>(std::ceil(seconds * 1000)));
  bool done = false;
  try {
    py::gil_scoped_release nogil;
    done = req_.wait_for(ms);
  } catch (...) {
    release();
    throw;
  }
  if (done) release();
  return done;
}

void wait_all(const std::vector<std::shared_ptr<PyRequest>>& reqs) {
  std::exception_ptr first;
  for (const auto& r : reqs) {
    if (!r) continue;
    try {
      r->wait();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

py::ssize_t wait_any(const std::vector<std::shared_ptr<PyRequest>>& reqs) {
  // FMI::wait_any works on a vector of requests: they are moved there for the wait
  // and back (a move is a pointer's), so one condition variable wakes this thread.
  std::vector<FMI::Request> all;
  all.reserve(reqs.size());
  for (const auto& r : reqs) all.push_back(r ? std::move(r->req_) : FMI::Request());
  auto put_back = [&] {
    for (std::size_t i = 0; i < reqs.size(); ++i)
      if (reqs[i]) reqs[i]->req_ = std::move(all[i]);
  };
  std::size_t k = 0;
  std::exception_ptr error;
  {
    py::gil_scoped_release nogil;
    try {
      k = FMI::wait_any(all);
    } catch (...) {
      error = std::current_exception();
    }
  }
  put_back();
  // The request that completed (failed or not) is the inactive one whose
  // resources are still held; without an error it is all[k].
  for (const auto& r : reqs)
    if (r && !r->active()) r->release();
  if (error) std::rethrow_exception(error);
  return static_cast<py::ssize_t>(k);
}

}  // namespace fmipy
