// The shared state of a FMI::Request (include/fmi/request.h): written once by the
// worker that runs the operation, read by the thread that waits for it.
#pragma once

#include <exception>

#include "fmi/request.h"

namespace FMI::detail {

struct RequestState {
  // Both guarded by the completion mutex of request.cpp.
  bool done = false;
  std::exception_ptr error;
};

/// Marks `s` complete with `error` (null: success) and wakes every waiter, those
/// of wait_any included. The caller must not touch `s` afterwards: its owner (the
/// Request) may destroy it as soon as it sees it complete.
void complete(RequestState& s, std::exception_ptr error) noexcept;

}  // namespace FMI::detail
