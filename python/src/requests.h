// fmi.Request: the Python face of FMI::Request (docs/nonblocking.md).
//
// A request owns what its operation uses until it completes: the arrays and
// buffers (so Python cannot free them under the worker thread), the reduction
// object, and the result that wait() returns. It is created and destroyed with
// the GIL held; every wait releases the GIL, so a custom reduction running on the
// communicator's worker thread can take it (no deadlock with a waiting caller).
#pragma once

#include <memory>
#include <vector>

#include "buffers.h"
#include "fmi/request.h"
#include "reductions.h"

namespace fmipy {

class PyRequest {
 public:
  PyRequest() = default;
  /// Waits (GIL released) for a running operation before dropping what it uses.
  ~PyRequest();
  PyRequest(const PyRequest&) = delete;
  PyRequest& operator=(const PyRequest&) = delete;

  /// Blocks until complete (GIL released); returns the result (the output array,
  /// or None); raises the operation's fmi error.
  py::object wait();
  /// True once complete (raising its error then); never blocks.
  bool test();
  /// Waits up to `seconds`; False if still running then.
  bool wait_for(double seconds);
  bool active() const { return req_.active(); }

  // Filled by the communicator's i-methods (communicator.cpp).
  FMI::Request req_;
  py::object result_ = py::none();
  std::vector<py::object> keep_;                    // arrays and objects the operation uses
  std::vector<std::unique_ptr<BufferView>> views_;  // held buffers (v-forms)
  std::unique_ptr<Reduction> reduction_;

 private:
  friend void wait_all(const std::vector<std::shared_ptr<PyRequest>>&);
  friend py::ssize_t wait_any(const std::vector<std::shared_ptr<PyRequest>>&);
  // Drops what the completed operation used (GIL held).
  void release();
};

/// fmi.wait_all(reqs): completes every request, then raises the first error.
void wait_all(const std::vector<std::shared_ptr<PyRequest>>& reqs);
/// fmi.wait_any(reqs): index of a request that completed (now inactive).
py::ssize_t wait_any(const std::vector<std::shared_ptr<PyRequest>>& reqs);

}  // namespace fmipy
