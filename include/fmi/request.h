// FMI::Request: a non-blocking operation in flight (Communicator::isend, irecv,
// ibcast, ..., iallreduce; docs/nonblocking.md).
//
//   FMI::Request r = comm.iallreduce(grad, sum, FMI::Utils::Function<float>::sum());
//   compute_next_layer();      // the allreduce advances on a worker thread meanwhile
//   r.wait();                  // sum is complete; throws the operation's FMI error
//
// Buffers belong to the operation until it completes: do not read a receive
// buffer, write a send buffer, resize a vector behind a Data or destroy either
// before wait() returns (or test() / wait_for() returned true). A Request that is
// destroyed (or assigned to) while its operation runs waits for it first, so the
// library never writes into freed memory; its error, if any, is dropped then.
//
// Errors: what the calling peer can check alone (a peer out of range, a buffer
// of the wrong size, no channel) is thrown by the i-call itself, as by the
// blocking form, and no request is made. Everything the transfer meets
// (TimeoutError after the channel's max_timeout counted from the i-call,
// PeerError for a dead peer or a size that does not match the peer's,
// ChannelError) is thrown by wait(), by test() / wait_for() once complete, or by
// wait_all / wait_any.
//
// A Request completes once: after wait() returns or throws (or test() / wait_for()
// returned true or threw) it is inactive, and further calls return at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

namespace FMI {

namespace detail {
struct RequestState;
}

class Request {
 public:
  /// An inactive request: complete, with nothing to wait for.
  Request() noexcept = default;
  Request(Request&& other) noexcept = default;
  /// Waits for the operation this request still runs, then takes `other`'s.
  Request& operator=(Request&& other) noexcept;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  /// Waits for a running operation (never throws: its error is dropped).
  ~Request();

  /// Blocks until the operation is complete; throws its error (FMI::Error).
  void wait();
  /// True once complete (throwing its error then); never blocks.
  bool test();
  /// Waits up to `timeout`; false if the operation is still running then. True
  /// once complete, throwing its error then.
  bool wait_for(std::chrono::milliseconds timeout);
  /// False once completed (or default-constructed or moved from).
  bool active() const noexcept { return state_ != nullptr; }

  /// Made by the Communicator (start_nonblocking).
  explicit Request(std::shared_ptr<detail::RequestState> state) noexcept
      : state_(std::move(state)) {}

 private:
  friend std::size_t wait_any(std::vector<Request>& requests);
  // Marks this request inactive and throws the operation's error, if any.
  void finish();
  std::shared_ptr<detail::RequestState> state_;
};

/// Completes every request (in any order), then throws the first error found, in
/// vector order; all requests are inactive afterwards.
void wait_all(std::vector<Request>& requests);
/// Blocks (without spinning) until one active request completes, makes it inactive
/// and returns its index, throwing its error if it failed. UsageError when no
/// request in `requests` is active.
std::size_t wait_any(std::vector<Request>& requests);

}  // namespace FMI
