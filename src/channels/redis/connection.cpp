#include "channels/redis/connection.h"

#include <hiredis/hiredis.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fmi/errors.h"

namespace FMI::Comm::redis {

namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using Utils::Clock;
using Utils::Deadline;

// Arguments at least this long are sent from the caller's memory by their own
// iovec; shorter ones are copied next to the protocol framing.
constexpr std::size_t kExternalArg = 16 * 1024;

timeval to_timeval(microseconds d) {
  if (d < milliseconds(1)) d = milliseconds(1);  // zero would mean "wait forever"
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(d.count() % 1000000);
  return tv;
}

std::string reply_text(const redisReply& r) {
  if (r.str != nullptr) return std::string(r.str, r.len);
  return "(no message)";
}

}  // namespace

Batch& Batch::add(std::initializer_list<std::string_view> args, std::string_view role,
                  Handler on_reply) {
  return add(std::vector<std::string_view>(args), role, std::move(on_reply));
}

Batch& Batch::add(std::vector<std::string_view> args, std::string_view role, Handler on_reply) {
  cmds_.push_back(Cmd{std::move(args), role, std::move(on_reply)});
  return *this;
}

Batch& Batch::add_into(std::vector<std::string_view> args, std::string_view role, Bytes into,
                       Handler otherwise) {
  cmds_.push_back(Cmd{std::move(args), role, std::move(otherwise), into, true});
  return *this;
}

std::string_view Batch::keep(std::string s) {
  kept_.push_back(std::move(s));
  return kept_.back();
}

void Connection::ReplyDeleter::operator()(redisReply* r) const noexcept { freeReplyObject(r); }

Connection::Connection(Endpoint ep)
    : ep_(std::move(ep)), address_(ep_.host + ":" + std::to_string(ep_.port)) {}

Connection::~Connection() { close(); }

void Connection::close() noexcept {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
  pending_.clear();
  deferred_ = Batch();
  socket_timeout_ = microseconds(-1);
}

void Connection::connect(Deadline deadline) {
  if (ctx_ != nullptr) return;
  const auto left = std::chrono::duration_cast<microseconds>(deadline - Clock::now());
  // hiredis resolves host names (getaddrinfo) and applies the timeout to connect().
  redisContext* c = redisConnectWithTimeout(ep_.host.c_str(), ep_.port, to_timeval(left));
  if (c == nullptr) FMI_THROW(ChannelError, "Redis ", address_, ": cannot allocate a connection");
  if (c->err != 0) {
    std::string why = c->errstr;
    redisFree(c);
    FMI_THROW(ChannelError, "Redis ", address_, ": cannot connect: ", why);
  }
  ctx_ = c;
  socket_timeout_ = microseconds(-1);
  pending_.clear();

  // Authenticate and select the database before anything else, and check that the
  // server answers at all (a password-protected server refuses a PING).
  Batch hello;
  std::string as_user = ep_.username.empty() ? std::string("the connection")
                                             : "the connection as user '" + ep_.username + "'";
  if (!ep_.password.empty()) {
    if (!ep_.username.empty())
      hello.add({"AUTH", ep_.username, ep_.password}, as_user);
    else
      hello.add({"AUTH", ep_.password}, as_user);
  } else {
    hello.add({"PING"}, as_user);
  }
  std::string db = std::to_string(ep_.db);
  std::string db_role = "database " + db;
  if (ep_.db != 0) hello.add({"SELECT", db}, db_role);
  try {
    exchange(hello, deadline);
  } catch (...) {
    close();
    throw;
  }
}

void Connection::set_socket_timeout(Deadline deadline, milliseconds grace) {
  const auto need = std::chrono::duration_cast<microseconds>(deadline - Clock::now()) + grace;
  // Two setsockopt calls per exchange are measurable next to a 30 us round trip;
  // waking up to 0.7 s after the deadline when the server hangs is not. Operations
  // mostly have deadlines of the same length (now + max_timeout), and puts and gets
  // alternate, so a timeout set with some headroom is mostly kept.
  if (socket_timeout_ >= need && socket_timeout_ <= need + milliseconds(700)) return;
  const auto set = std::max<microseconds>(need, milliseconds(1)) + milliseconds(100);
  if (redisSetTimeout(ctx_, to_timeval(set)) != REDIS_OK)
    FMI_THROW(ChannelError, "Redis ", address_, ": cannot set the socket timeout: ", ctx_->errstr);
  socket_timeout_ = set;
}

void Connection::fail_io(std::string_view command, std::string_view role, const char* what,
                         Deadline deadline) {
  const int err = errno;
  std::string why = what != nullptr ? what : std::strerror(err);
  close();
  const auto now = Clock::now();
  if (err == EAGAIN || err == EWOULDBLOCK || now >= deadline) {
    FMI_THROW(TimeoutError, "Redis ", address_, ": ", command, " on ", role,
              ": no answer before the deadline (", why, "; ",
              format_duration(now - exchange_start_), " into the request)");
  }
  FMI_THROW(ChannelError, "Redis ", address_, ": ", command, " on ", role,
            " failed, connection lost: ", why);
}

void Connection::write_batch(const Batch* batch, Deadline deadline) {
  // The deferred commands go first; their replies come first.
  std::vector<const Batch::Cmd*> cmds;
  for (const auto& c : deferred_.cmds_) cmds.push_back(&c);
  if (batch != nullptr)
    for (const auto& c : batch->cmds_) cmds.push_back(&c);

  // RESP framing: *<argc>\r\n then $<len>\r\n<bytes>\r\n per argument. Short pieces
  // go into scratch_, long arguments get an iovec of their own.
  struct Seg {
    const char* ext;  // nullptr: bytes are scratch_[off, off+len)
    std::size_t off, len;
    std::size_t cmd;
  };
  std::vector<Seg> segs;
  scratch_.clear();
  std::size_t small_start = 0;
  std::size_t cmd_index = 0;
  auto close_small = [&] {
    if (scratch_.size() > small_start)
      segs.push_back(Seg{nullptr, small_start, scratch_.size() - small_start, cmd_index});
    small_start = scratch_.size();
  };
  for (; cmd_index < cmds.size(); ++cmd_index) {
    const auto& cmd = *cmds[cmd_index];
    scratch_ += '*';
    scratch_ += std::to_string(cmd.args.size());
    scratch_ += "\r\n";
    for (std::string_view a : cmd.args) {
      scratch_ += '$';
      scratch_ += std::to_string(a.size());
      scratch_ += "\r\n";
      if (a.size() >= kExternalArg) {
        close_small();
        segs.push_back(Seg{a.data(), 0, a.size(), cmd_index});
      } else {
        scratch_.append(a);
      }
      scratch_ += "\r\n";
    }
    close_small();
  }

  // From here on the deferred commands are on their way: their replies are owed.
  for (const auto& c : deferred_.cmds_) {
    std::string what(c.args[0]);
    what += " on ";
    what += c.role;
    pending_.push_back(std::move(what));
  }
  Batch keep_alive = std::move(deferred_);  // owns their bytes until written
  deferred_ = Batch();

  std::vector<iovec> iov(segs.size());
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const char* p = segs[i].ext != nullptr ? segs[i].ext : scratch_.data() + segs[i].off;
    iov[i].iov_base = const_cast<char*>(p);
    iov[i].iov_len = segs[i].len;
  }
  std::size_t i = 0;
  while (i < iov.size()) {
    // The socket timeout bounds each wait, not a long transfer that keeps moving.
    if (i > 0 && Clock::now() > deadline) {
      errno = EAGAIN;
      const auto& cmd = *cmds[segs[i].cmd];
      fail_io(cmd.args[0], cmd.role, "deadline passed while sending", deadline);
    }
    msghdr msg{};
    msg.msg_iov = &iov[i];
    msg.msg_iovlen = std::min<std::size_t>(iov.size() - i, IOV_MAX);
    const ssize_t n = ::sendmsg(ctx_->fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      const auto& cmd = *cmds[segs[i].cmd];
      fail_io(cmd.args[0], cmd.role, nullptr, deadline);
    }
    // Short writes: skip what went out, resume inside the iovec it stopped in.
    std::size_t sent = static_cast<std::size_t>(n);
    while (sent > 0 && i < iov.size()) {
      if (sent >= iov[i].iov_len) {
        sent -= iov[i].iov_len;
        ++i;
      } else {
        iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + sent;
        iov[i].iov_len -= sent;
        sent = 0;
      }
    }
    while (i < iov.size() && iov[i].iov_len == 0) ++i;
  }
}

Connection::Reply Connection::read_reply(std::string_view command, std::string_view role,
                                         Deadline deadline) {
  void* r = nullptr;
  errno = 0;
  if (redisGetReply(ctx_, &r) != REDIS_OK || r == nullptr) {
    // hiredis reports a receive timeout as an I/O error with errno EAGAIN, which
    // fail_io still sees; a closed connection is REDIS_ERR_EOF.
    const char* what = ctx_->err != 0 ? ctx_->errstr : nullptr;
    std::string copy = what != nullptr ? what : "";
    if (ctx_->err == REDIS_ERR_EOF) errno = 0;
    fail_io(command, role, copy.empty() ? nullptr : copy.c_str(), deadline);
  }
  return Reply(static_cast<redisReply*>(r));
}

bool Connection::read_bulk_into(const Batch::Cmd& cmd, Deadline deadline, milliseconds grace,
                                std::exception_ptr& first_error) {
  // hiredis may already hold the start of this reply (it reads 16 KiB at a time):
  // its reader's unread bytes are buf[pos, len). Take the header line and what is
  // buffered from there, then receive the rest straight into the destination.
  // Only called at a reply boundary, where the reader has no partial state.
  redisReader* r = ctx_->reader;
  const char* nl = nullptr;
  for (;;) {
    const std::size_t avail = r->len - r->pos;
    nl = avail > 0 ? static_cast<const char*>(std::memchr(r->buf + r->pos, '\n', avail)) : nullptr;
    if (nl != nullptr || avail > 32) break;  // a bulk header is "$<len>\r\n"
    errno = 0;
    if (redisBufferRead(ctx_) != REDIS_OK) {
      std::string why = ctx_->errstr;
      if (ctx_->err == REDIS_ERR_EOF) errno = 0;
      fail_io(cmd.args[0], cmd.role, why.c_str(), deadline);
    }
  }
  const char* p = r->buf + r->pos;
  if (nl == nullptr || p[0] != '$' || p[1] == '-') return false;  // nil, error, ...: hiredis
  std::size_t len = 0;
  for (const char* q = p + 1; q < nl && *q != '\r'; ++q) {
    if (*q < '0' || *q > '9') return false;
    len = len * 10 + static_cast<std::size_t>(*q - '0');
  }
  r->pos += static_cast<std::size_t>(nl - p) + 1;

  const bool fits = len == cmd.into.size();
  std::vector<char> sink;  // a value of the wrong length is read and dropped
  auto dest = [&](std::size_t at, std::size_t& n) -> char* {
    if (fits) return reinterpret_cast<char*>(cmd.into.data()) + at;
    sink.resize(std::min<std::size_t>(len, 1 << 20));
    n = std::min(n, sink.size());
    return sink.data();
  };
  // The value and its trailing CRLF; never more, so the next reply stays unread.
  std::size_t got = 0;
  const std::size_t total = len + 2;
  char crlf[2];
  while (got < total) {
    const std::size_t avail = r->len - r->pos;
    std::size_t n = got < len ? len - got : total - got;
    char* to = got < len ? dest(got, n) : crlf + (got - len);
    if (avail > 0) {
      n = std::min(n, avail);
      std::memcpy(to, r->buf + r->pos, n);
      r->pos += n;
      got += n;
      continue;
    }
    if (Clock::now() > deadline + grace) {
      errno = EAGAIN;
      fail_io(cmd.args[0], cmd.role, "deadline passed while receiving", deadline);
    }
    const ssize_t k = ::recv(ctx_->fd, to, n, 0);
    if (k < 0) {
      if (errno == EINTR) continue;
      fail_io(cmd.args[0], cmd.role, nullptr, deadline);
    }
    if (k == 0) {
      errno = 0;
      fail_io(cmd.args[0], cmd.role, "Server closed the connection", deadline);
    }
    got += static_cast<std::size_t>(k);
  }
  if (!fits && !first_error) {
    try {
      FMI_THROW(PeerError, "Redis ", address_, ": ", cmd.args[0], " on ", cmd.role, ": holds ", len,
                " bytes, expected ", cmd.into.size());
    } catch (...) {
      first_error = std::current_exception();
    }
  }
  return true;
}

void Connection::read_pending(Deadline deadline, std::exception_ptr& first_error) {
  while (!pending_.empty()) {
    const std::string what = pending_.front();
    Reply r = read_reply(what, "(clean-up)", deadline);
    pending_.pop_front();
    if (r->type == REDIS_REPLY_ERROR && !first_error) {
      try {
        FMI_THROW(ChannelError, "Redis ", address_, ": ", what, " failed: ", reply_text(*r));
      } catch (...) {
        first_error = std::current_exception();
      }
    }
  }
}

void Connection::exchange(Batch& batch, Deadline deadline, milliseconds grace) {
  exchange_start_ = Clock::now();
  connect(deadline);
  set_socket_timeout(deadline, grace);
  write_batch(&batch, deadline);

  std::exception_ptr first_error;
  auto record = [&](std::exception_ptr e) {
    if (!first_error) first_error = std::move(e);
  };
  auto error_reply = [&](const Batch::Cmd& cmd, const redisReply& r) {
    try {
      FMI_THROW(ChannelError, "Redis ", address_, ": ", cmd.args[0], " on ", cmd.role,
                " failed: ", reply_text(r));
    } catch (...) {
      record(std::current_exception());
    }
  };
  auto dispatch = [&](const Batch::Cmd& cmd, const redisReply& r) {
    if (r.type == REDIS_REPLY_ERROR) return error_reply(cmd, r);
    if (!cmd.on_reply) return;
    try {
      cmd.on_reply(r);
    } catch (...) {
      record(std::current_exception());
    }
  };

  read_pending(deadline, first_error);

  // Inside MULTI ... EXEC the server answers QUEUED to each command and gives the
  // results as the elements of EXEC's reply, in order.
  bool in_multi = false;
  std::vector<std::size_t> queued;
  for (std::size_t i = 0; i < batch.cmds_.size(); ++i) {
    const auto& cmd = batch.cmds_[i];
    if (i > 0 && Clock::now() > deadline + grace) {
      errno = EAGAIN;
      fail_io(cmd.args[0], cmd.role, "deadline passed while receiving", deadline);
    }
    if (cmd.direct && !in_multi && read_bulk_into(cmd, deadline, grace, first_error)) continue;
    Reply r = read_reply(cmd.args[0], cmd.role, deadline);
    const std::string_view name = cmd.args[0];
    if (name == "MULTI") {
      in_multi = true;
      queued.clear();
      if (r->type == REDIS_REPLY_ERROR) error_reply(cmd, *r);
    } else if (name == "EXEC") {
      in_multi = false;
      if (r->type == REDIS_REPLY_ERROR) {
        error_reply(cmd, *r);
      } else if (r->type != REDIS_REPLY_ARRAY || r->elements != queued.size()) {
        try {
          FMI_THROW(ChannelError, "Redis ", address_, ": EXEC on ", cmd.role,
                    ": the transaction was not executed");
        } catch (...) {
          record(std::current_exception());
        }
      } else {
        for (std::size_t j = 0; j < queued.size(); ++j)
          dispatch(batch.cmds_[queued[j]], *r->element[j]);
      }
    } else if (in_multi) {
      queued.push_back(i);
      if (r->type == REDIS_REPLY_ERROR) error_reply(cmd, *r);
    } else {
      dispatch(cmd, *r);
    }
  }
  if (first_error) std::rethrow_exception(first_error);
}

void Connection::send_unacknowledged(Batch& batch, Deadline deadline) {
  exchange_start_ = Clock::now();
  connect(deadline);
  set_socket_timeout(deadline, milliseconds(0));
  write_batch(&batch, deadline);
  for (const auto& cmd : batch.cmds_) {
    std::string what(cmd.args[0]);
    what += " on ";
    what += cmd.role;
    pending_.push_back(std::move(what));
  }
}

void Connection::defer(const Batch& batch) {
  for (const auto& c : batch.cmds_) {
    std::vector<std::string_view> args;
    for (std::string_view a : c.args) args.push_back(deferred_.keep(std::string(a)));
    deferred_.add(std::move(args), deferred_.keep(std::string(c.role)));
  }
}

void Connection::drain(Deadline deadline) {
  if (ctx_ == nullptr || (pending_.empty() && deferred_.empty())) return;
  exchange_start_ = Clock::now();
  set_socket_timeout(deadline, milliseconds(0));
  if (!deferred_.empty()) write_batch(nullptr, deadline);
  std::exception_ptr first_error;
  read_pending(deadline, first_error);
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace FMI::Comm::redis
