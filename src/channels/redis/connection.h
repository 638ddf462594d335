// One connection to a Redis server, used by one thread at a time.
//
// hiredis (0.14, Debian 12) connects and parses replies. Commands are written by
// this file instead of hiredis' formatter: every argument is length-prefixed (binary
// safe, a key never goes into a format string), payloads are sent straight from the
// caller's buffer with sendmsg (no copy of a 256 MiB message into hiredis' output
// buffer) and with MSG_NOSIGNAL, so a server that went away is an error, not a
// SIGPIPE that kills the function. Large bulk replies can likewise be received
// straight into the caller's buffer (Batch::add_into).
//
// Every exchange is bounded by a deadline: the socket's send and receive timeouts are
// set to the time left, so a server that stops answering ends in TimeoutError. Any
// I/O error closes the connection (its reply stream is out of step); the next
// exchange reconnects.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fmi/types.h"

struct redisContext;
struct redisReply;

namespace FMI::Comm::redis {

struct Endpoint {
  std::string host;
  std::uint16_t port = 6379;
  std::string username;  // Redis 6 ACL user; AUTH <user> <password> when set
  std::string password;  // AUTH when non-empty
  int db = 0;            // SELECT when non-zero
};

/// Commands sent together and answered in order (one round trip). A command's
/// `role` names what it works on ("notification list of bcast#3 from peer 0") for
/// error messages; its handler sees the reply (inside MULTI/EXEC: the command's own
/// result from the EXEC array) and may throw.
class Batch {
 public:
  using Handler = std::function<void(const redisReply&)>;

  /// Arguments are views: their bytes must outlive the exchange (use keep()).
  Batch& add(std::initializer_list<std::string_view> args, std::string_view role,
             Handler on_reply = {});
  Batch& add(std::vector<std::string_view> args, std::string_view role, Handler on_reply = {});
  /// A command answered by a bulk string of exactly into.size() bytes, which is
  /// received straight into `into` (large values skip hiredis' buffers and copies).
  /// Any other reply (nil, another type) goes to `otherwise`; a bulk string of
  /// another length is received, dropped and reported as a PeerError.
  Batch& add_into(std::vector<std::string_view> args, std::string_view role, Bytes into,
                  Handler otherwise);
  /// Stores a string for the lifetime of the batch and returns a view of it.
  std::string_view keep(std::string s);

  bool empty() const { return cmds_.empty(); }
  std::size_t size() const { return cmds_.size(); }

 private:
  friend class Connection;
  struct Cmd {
    std::vector<std::string_view> args;
    std::string_view role;
    Handler on_reply;
    Bytes into{};
    bool direct = false;
  };
  std::vector<Cmd> cmds_;
  std::deque<std::string> kept_;  // deque: views stay valid as it grows
};

class Connection {
 public:
  explicit Connection(Endpoint ep);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// "host:port", for messages.
  const std::string& address() const { return address_; }
  bool connected() const { return ctx_ != nullptr; }

  /// Connects, authenticates and selects the database, unless already connected.
  /// ChannelError naming host:port when that fails.
  void connect(Utils::Deadline deadline);

  /// Sends the batch and handles every reply. The socket gives up `grace` after the
  /// deadline: a blocking command (BLPOP) is answered by the server itself when its
  /// timeout (the deadline) passes, so the socket must not give up first.
  /// Every reply is read even when one is an error, so the connection stays in step;
  /// the first error is then thrown (ChannelError naming the command and its role, or
  /// whatever a handler threw).
  void exchange(Batch& batch, Utils::Deadline deadline,
                std::chrono::milliseconds grace = std::chrono::milliseconds(0));

  /// Sends the batch now and checks its replies at the start of the next exchange:
  /// clean-up commands that no caller waits for (the reader that consumed a message
  /// deletes it) cost a write, not a round trip. Handlers are not supported here.
  void send_unacknowledged(Batch& batch, Utils::Deadline deadline);

  /// Queues commands (arguments are copied) to go out with the next exchange's
  /// write, whose replies are checked first: clean-up that may wait until this
  /// connection is used again costs neither a round trip nor a system call. drain()
  /// sends what is queued.
  void defer(const Batch& batch);

  /// Sends deferred commands and reads the replies still owed to
  /// send_unacknowledged and defer (finalize).
  void drain(Utils::Deadline deadline);

  /// Closes the connection (idempotent).
  void close() noexcept;

 private:
  void set_socket_timeout(Utils::Deadline deadline, std::chrono::milliseconds grace);
  // Writes the deferred commands (moving them to pending_) and then `batch`, with
  // as few sendmsg calls as possible.
  void write_batch(const Batch* batch, Utils::Deadline deadline);
  struct ReplyDeleter {
    void operator()(redisReply* r) const noexcept;
  };
  using Reply = std::unique_ptr<redisReply, ReplyDeleter>;
  Reply read_reply(std::string_view command, std::string_view role, Utils::Deadline deadline);
  [[noreturn]] void fail_io(std::string_view command, std::string_view role, const char* what,
                            Utils::Deadline deadline);
  void read_pending(Utils::Deadline deadline, std::exception_ptr& first_error);
  bool read_bulk_into(const Batch::Cmd& cmd, Utils::Deadline deadline,
                      std::chrono::milliseconds grace, std::exception_ptr& first_error);

  Endpoint ep_;
  std::string address_;
  redisContext* ctx_ = nullptr;
  std::chrono::microseconds socket_timeout_{-1};
  Utils::Clock::time_point exchange_start_{};  // for the duration in timeout messages
  // Commands sent by send_unacknowledged whose replies are still on the wire:
  // "DEL on data of bcast#3 from peer 0" for each, in order.
  std::deque<std::string> pending_;
  Batch deferred_;       // commands queued by defer(), arguments owned by the batch
  std::string scratch_;  // encoding buffer, reused
};

}  // namespace FMI::Comm::redis
