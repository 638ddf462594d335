#include "channels/direct/direct_channel.h"

#include <sched.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "channels/direct/secure.h"
#include "fmi/errors.h"
#include "wire/auth.h"

namespace FMI::Comm {

namespace {
// Before blocking in poll, a waiting call retries the non-blocking socket this
// long: a reply that arrives within a few microseconds is then picked up without
// the sleep/wake-up round trip (a function pays for its time either way).
// FMI_DIRECT_SPIN_US overrides it (0 turns spinning off: better on a machine with
// more busy processes than cores, where a spinning peer steals the CPU its partner
// needs to answer).
constexpr auto kDefaultSpin = std::chrono::microseconds(30);

std::chrono::microseconds spin_from_env() {
  const char* v = std::getenv("FMI_DIRECT_SPIN_US");
  if (!v || !*v) return kDefaultSpin;
  char* end = nullptr;
  long us = std::strtol(v, &end, 10);
  if (*end || us < 0 || us > 1000000)
    FMI_THROW(ConfigError, "FMI_DIRECT_SPIN_US='", v,
              "' is not a number of microseconds (0..1000000)");
  return std::chrono::microseconds(us);
}

// FMI_DIRECT_RELAY=auto|always|never: when pairs fall back to relaying through the
// rendezvous server (see mesh.h).
Direct::RelayMode relay_from_env() {
  const char* v = std::getenv("FMI_DIRECT_RELAY");
  if (!v || !*v || std::string(v) == "auto") return Direct::RelayMode::automatic;
  if (std::string(v) == "always") return Direct::RelayMode::always;
  if (std::string(v) == "never") return Direct::RelayMode::never;
  FMI_THROW(ConfigError, "FMI_DIRECT_RELAY='", v, "' must be auto, always or never");
}
constexpr std::size_t kHeader = 16;
// Messages with another tag than the one awaited are buffered ("parked"), per
// source peer, up to these limits (docs/direct.md): beyond them the peers are out
// of step, or the peer is hostile (PeerError naming the peer and the size). The
// buffer of a parked message grows with the bytes that arrive, never to what its
// 16-byte header announces: a forged header cannot make this process allocate.
constexpr std::uint64_t kMaxParkedBytes = std::uint64_t(1) << 30;  // per source peer
constexpr std::size_t kMaxParkedMessages = 4096;                   // per source peer
constexpr std::size_t kParkGrowth = std::size_t(1) << 20;          // first step, then x2

void put_u64(std::byte* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = std::byte(std::uint8_t(v >> (56 - 8 * i)));
}
std::uint64_t get_u64(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
  return v;
}
}  // namespace

/// One direction of one message in progress: header then payload.
struct DirectChannel::Transfer {
  bool sending;
  Utils::peer_num peer;
  int fd;
  Tag tag;
  std::byte* data;  // const for sends (never written through)
  std::size_t size;
  std::byte hdr[kHeader];
  std::size_t done = 0;  // bytes of header + payload moved
  bool checked = false;  // receive: header verified
  // Receive: a message with another tag arrived first (e.g. a point-to-point
  // message while we are inside a collective). It is read into `park` and kept
  // for the recv that asks for it; then this transfer reads the next header.
  bool parking = false;
  Tag park_tag{};
  std::vector<std::byte> park{};  // grows as bytes arrive, up to park_len
  std::size_t park_len = 0;       // the size its header announced
  std::size_t park_done = 0;
  // Encrypted connection (null: plaintext). Send: wire bytes [buf_begin, buf_end)
  // of this message are sealed in link->txbuf. Receive: `body` reads the records
  // into `data` and opens them in place; `park_body` does so for a parked message.
  Direct::secure::Link* link = nullptr;
  std::size_t buf_begin = 0, buf_end = 0;
  Direct::secure::BodyReader body{};
  std::byte park_hdr[kHeader]{};
  Direct::secure::BodyReader park_body{};

  std::size_t total() const { return kHeader + (link ? Direct::secure::body_size(size) : size); }
  bool finished() const { return done == total(); }
};

DirectChannel::DirectChannel(DirectConfig cfg)
    : cfg_(std::move(cfg)), spin_(spin_from_env()), relay_(relay_from_env()) {
  // FMI_SECRET (if set) replaces the configured secret here, once.
  cfg_.secret = Wire::auth::resolve_secret(cfg_.secret);
}

DirectChannel::~DirectChannel() { finalize(); }

void DirectChannel::init(const ChannelContext& ctx) {
  if (ctx.num_peers == 0 || ctx.peer_id >= ctx.num_peers)
    FMI_THROW(UsageError, "Direct: init with peer id ", ctx.peer_id, " of ", ctx.num_peers,
              " peers");
  finalize();
  ctx_ = ctx;
  matcher_.clear();
  pending_.assign(ctx.num_peers, {});
  initialised_ = true;
  meshed_ = false;
  if (ctx.num_peers > 1) {
    Direct::MeshOptions o{cfg_.host,     cfg_.port, ctx.comm_name, ctx.peer_id,
                          ctx.num_peers, relay_,    cfg_.secret,   cfg_.encryption};
    mesh_ = std::make_unique<Direct::Mesh>(o, Utils::Clock::now() + cfg_.max_timeout);
  }
}

void DirectChannel::finalize() noexcept {
  mesh_.reset();
  matcher_.clear();
  pending_.clear();
  initialised_ = false;
}

std::string DirectChannel::local_endpoint() const { return mesh_ ? mesh_->local().str() : ""; }

unsigned DirectChannel::connected_peers() const {
  unsigned n = 0;
  if (mesh_)
    for (Utils::peer_num p = 0; p < ctx_.num_peers; ++p)
      n += p != ctx_.peer_id && mesh_->fd(p) >= 0;
  return n;
}

void DirectChannel::check_peer(Utils::peer_num p, const char* op) const {
  if (!initialised_) FMI_THROW(UsageError, "Direct: ", op, " on a channel that is not initialised");
  if (p >= ctx_.num_peers)
    FMI_THROW(UsageError, "Direct: ", op, ": peer ", p, " out of range (", ctx_.num_peers,
              " peers)");
}

void DirectChannel::ensure(std::initializer_list<Utils::peer_num> peers, Utils::Deadline deadline,
                           const char* op) {
  bool missing = false;
  for (auto p : peers) {
    if (p == ctx_.peer_id) continue;
    if (!mesh_->broken(p).empty())
      FMI_THROW(PeerError, "Direct: ", op, ": connection to peer ", p,
                " is broken: ", mesh_->broken(p));
    missing |= mesh_->fd(p) < 0;
  }
  if (missing)
    mesh_->connect(std::span<const Utils::peer_num>(peers.begin(), peers.size()), deadline, op);
}

void DirectChannel::connect_all(Utils::Deadline deadline) {
  if (!initialised_)
    FMI_THROW(UsageError, "Direct: connect_all on a channel that is not initialised");
  if (!mesh_) return;
  std::vector<Utils::peer_num> all;
  for (Utils::peer_num p = 0; p < ctx_.num_peers; ++p)
    if (p != ctx_.peer_id && mesh_->fd(p) < 0) all.push_back(p);
  if (!all.empty()) mesh_->connect(all, deadline, "connect_all");
}

// A connection failed mid-stream: it is out of step for good, so later calls on
// it say why instead of reading garbage.
void DirectChannel::lose(Utils::peer_num peer, const std::string& why, const char* hint) {
  mesh_->mark_broken(peer, why);
  FMI_THROW(PeerError, "Direct: ", why, hint);
}

// Moves as many bytes as the socket takes now. Returns true once the transfer is
// complete; throws PeerError when the connection fails or the message does not
// match what the receiver expects.
// Reads up to `len` bytes of the stream from `peer`: first what an earlier
// mismatching read left over (pending_), then the socket.
ssize_t DirectChannel::read_stream(Utils::peer_num peer, int fd, iovec* iov, int n) {
  auto& pend = pending_[peer];
  if (pend.empty()) return ::readv(fd, iov, n);
  std::size_t used = 0;
  for (int i = 0; i < n && used < pend.size(); ++i) {
    std::size_t k = std::min(iov[i].iov_len, pend.size() - used);
    std::memcpy(iov[i].iov_base, pend.data() + used, k);
    used += k;
  }
  pend.erase(pend.begin(), pend.begin() + std::ptrdiff_t(used));
  return ssize_t(used);
}

bool DirectChannel::step(Transfer& t) {
  if (t.link) return t.sending ? sealed_send(t) : sealed_recv(t);
  while (!t.finished()) {
    if (t.parking) {
      if (!park_step(t)) return false;
      continue;
    }
    iovec iov[2];
    int n = 0;
    if (t.done < kHeader) iov[n++] = {t.hdr + t.done, kHeader - t.done};
    std::size_t off = t.done > kHeader ? t.done - kHeader : 0;
    if (t.size > off) iov[n++] = {t.data + off, t.size - off};
    ssize_t r;
    if (t.sending) {
      msghdr mh{};
      mh.msg_iov = iov;
      mh.msg_iovlen = std::size_t(n);
      r = ::sendmsg(t.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
      // Header and payload in one call: a mismatching header is caught right after
      // it arrives (below), and then the connection is given up anyway.
      r = read_stream(t.peer, t.fd, iov, n);
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      std::string why = std::string(t.sending ? "send to" : "receive from") + " peer " +
                        std::to_string(t.peer) + " failed after " + std::to_string(t.done) +
                        " of " + std::to_string(t.total()) + " bytes: " + Wire::errno_text(errno);
      lose(t.peer, why, " (peer died or closed the connection?)");
    }
    if (r == 0) {
      std::string why = "peer " + std::to_string(t.peer) + " closed the connection after " +
                        std::to_string(t.done) + " of " + std::to_string(t.total()) +
                        " bytes of a receive (peer exited or died?)";
      lose(t.peer, why, "");
    }
    t.done += std::size_t(r);
    if (!t.sending && !t.checked && t.done >= kHeader) {
      t.checked = true;
      Tag got = Tag::decode(get_u64(t.hdr));
      std::uint64_t len = get_u64(t.hdr + 8);
      if (!(got == t.tag)) {
        // Checked here, where the header's length is read (before any allocation).
        check_park_budget(t, got, len);
        start_parking(t, got, len);
        continue;
      }
      if (!(got == t.tag) || len != t.size) mismatch(t, got, len);
    }
  }
  return true;
}

// A header announcing a message with another tag: it will be parked. Any header
// can announce any size, so the bytes and messages parked per peer are bounded
// before anything is allocated (a stranger's 16 bytes must not cost 4 GiB).
void DirectChannel::check_park_budget(const Transfer& t, Tag got, std::uint64_t len) {
  const std::uint64_t parked = matcher_.parked_bytes(t.peer);
  const std::size_t parked_n = matcher_.parked_messages(t.peer);
  if (len <= kMaxParkedBytes - parked && parked_n < kMaxParkedMessages) return;
  std::string why = "peer " + std::to_string(t.peer) + " sent a message of " + std::to_string(len) +
                    " bytes (" + to_string(got) + ") while a receive waits for " +
                    to_string(t.tag) + " with " + std::to_string(t.size) + " bytes, and " +
                    std::to_string(parked_n) + " messages (" + std::to_string(parked) +
                    " bytes) from it are parked already";
  mesh_->mark_broken(t.peer, why);
  FMI_THROW(PeerError, "Direct: recv: ", why, "; at most ", kMaxParkedMessages, " messages and ",
            kMaxParkedBytes, " bytes are parked per peer (peers out of step, or not an FMI peer)");
}

// The header just read belongs to another message than the one this transfer
// waits for. The payload bytes that the same read already put into the caller's
// buffer are the start of that message (and, if it was short, of the stream
// after it): move them where they belong, then read the rest of the message.
void DirectChannel::start_parking(Transfer& t, Tag got, std::uint64_t len) {
  const std::size_t have = t.done - kHeader;  // stream bytes already in t.data
  const std::size_t take = std::min<std::size_t>(have, len);
  t.parking = true;
  t.park_tag = got;
  t.park_len = std::size_t(len);
  t.park.assign(t.data, t.data + take);
  t.park_done = take;
  if (have > take) {
    auto& pend = pending_[t.peer];
    pend.insert(pend.begin(), t.data + take, t.data + have);
  }
  t.done = 0;
  t.checked = false;
  finish_parking_if_done(t);
}

void DirectChannel::finish_parking_if_done(Transfer& t) {
  if (!t.parking || t.park_done < t.park_len) return;
  matcher_.park(t.peer, t.park_tag, std::move(t.park));
  t.park = {};
  t.parking = false;
}

bool DirectChannel::park_step(Transfer& t) {
  if (t.link) return sealed_park_step(t);
  if (t.park_done == t.park.size())
    t.park.resize(std::min(t.park_len, std::max(kParkGrowth, 2 * t.park.size())));
  iovec iov{t.park.data() + t.park_done, t.park.size() - t.park_done};
  ssize_t r = read_stream(t.peer, t.fd, &iov, 1);
  if (r < 0) {
    if (errno == EINTR) return true;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    std::string why =
        "receive from peer " + std::to_string(t.peer) + " failed: " + Wire::errno_text(errno);
    lose(t.peer, why, " (peer died or closed the connection?)");
  }
  if (r == 0) {
    std::string why = "peer " + std::to_string(t.peer) + " closed the connection mid-message";
    lose(t.peer, why, " (peer exited or died?)");
  }
  t.park_done += std::size_t(r);
  finish_parking_if_done(t);
  return true;
}

// The encrypted data path (channels/direct/secure.h has the record format).
// A failed read or write, or the end of the stream, on `t` (r <= 0 and not EAGAIN).
void DirectChannel::io_failed(Transfer& t, ssize_t r) {
  if (r == 0) {
    std::string why = "peer " + std::to_string(t.peer) + " closed the connection after " +
                      std::to_string(t.done) + " of " + std::to_string(t.total()) +
                      " bytes of a receive (peer exited or died, or the stream was cut)";
    lose(t.peer, why, "");
  }
  std::string why = std::string(t.sending ? "send to" : "receive from") + " peer " +
                    std::to_string(t.peer) + " failed after " + std::to_string(t.done) + " of " +
                    std::to_string(t.total()) + " bytes: " + Wire::errno_text(errno);
  lose(t.peer, why, " (peer died or closed the connection?)");
}

void DirectChannel::forged(Utils::peer_num peer, Tag tag, std::size_t record) {
  lose(peer,
       "record " + std::to_string(record) + " of a message from peer " + std::to_string(peer) +
           " (" + to_string(tag) + ") failed authentication",
       " (altered, replayed, reordered or cut on the way: the connection is not what the peer "
       "sent)");
}

// Sends record after record: each is sealed into the connection's buffer when the
// previous one is out (one seal and one send for a small message, the header
// going with its first record), so nothing is allocated per message.
bool DirectChannel::sealed_send(Transfer& t) {
  namespace sec = Direct::secure;
  auto& link = *t.link;
  while (!t.finished()) {
    if (t.done == t.buf_end) {
      const std::size_t i = t.done == 0 ? 0 : (t.done - kHeader) / (sec::kRecord + sec::kTag);
      const std::size_t off = i * sec::kRecord, n = sec::record_len(t.size, i);
      std::byte* b = link.txbuf.data();
      std::size_t k = 0;
      if (i == 0) {
        std::memcpy(b, t.hdr, kHeader);
        k = kHeader;
      }
      link.tx.seal(t.hdr, kHeader, t.data + off, n, b + k, b + k + n);
      t.buf_begin = t.done;
      t.buf_end = t.done + k + n + sec::kTag;
    }
    ssize_t r = ::send(t.fd, link.txbuf.data() + (t.done - t.buf_begin), t.buf_end - t.done,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      io_failed(t, r);
    }
    t.done += std::size_t(r);
  }
  return true;
}

// Reads the header and the current record in one call: the ciphertext straight
// into the caller's buffer, where it is opened in place once its tag is in.
bool DirectChannel::sealed_recv(Transfer& t) {
  while (!t.finished()) {
    if (t.parking) {
      if (!park_step(t)) return false;
      continue;
    }
    iovec iov[3];
    int n = 0;
    const std::size_t hdr_left = t.done < kHeader ? kHeader - t.done : 0;
    if (hdr_left) iov[n++] = {t.hdr + t.done, hdr_left};
    n += t.body.iov(iov + n);
    ssize_t r = read_stream(t.peer, t.fd, iov, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    if (r <= 0) io_failed(t, r);
    t.done += std::size_t(r);
    const std::size_t body = std::size_t(r) - std::min(hdr_left, std::size_t(r));
    if (!t.checked && t.done >= kHeader) {
      t.checked = true;
      Tag got = Tag::decode(get_u64(t.hdr));
      std::uint64_t len = get_u64(t.hdr + 8);
      if (!(got == t.tag)) {
        // The sealed path reads a record's tag before it can trust the length, so
        // the whole message is allocated at once: the budget bounds it first.
        check_park_budget(t, got, len);
        // Another message: what this read put past the header is its stream.
        auto& pend = pending_[t.peer];
        std::vector<std::byte> spill;
        t.body.spill(body, spill);
        pend.insert(pend.begin(), spill.begin(), spill.end());
        t.parking = true;
        t.park_tag = got;
        std::memcpy(t.park_hdr, t.hdr, kHeader);
        t.park.resize(len);
        t.park_body.start(t.park_hdr, t.park.data(), t.park.size());
        t.done = 0;
        t.checked = false;
        t.body.start(t.hdr, t.data, t.size);
        continue;
      }
      if (!(got == t.tag) || len != t.size) mismatch(t, got, len);
    }
    const std::size_t rec = t.body.record();
    if (body && !t.body.advance(t.link->rx, body)) forged(t.peer, t.tag, rec);
  }
  return true;
}

bool DirectChannel::sealed_park_step(Transfer& t) {
  iovec iov[2];
  int n = t.park_body.iov(iov);
  ssize_t r = read_stream(t.peer, t.fd, iov, n);
  if (r < 0 && errno == EINTR) return true;
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
  if (r <= 0) io_failed(t, r);
  const std::size_t rec = t.park_body.record();
  if (!t.park_body.advance(t.link->rx, std::size_t(r))) forged(t.peer, t.park_tag, rec);
  if (t.park_body.done()) {
    matcher_.park(t.peer, t.park_tag, std::move(t.park));
    t.park = {};
    t.parking = false;
  }
  return true;
}

void DirectChannel::mismatch(Transfer& t, Tag got, std::uint64_t len) {
  std::string why = "message from peer " + std::to_string(t.peer) + " does not match: expected " +
                    to_string(t.tag) + " with " + std::to_string(t.size) + " bytes, got " +
                    to_string(got) + " with " + std::to_string(len) + " bytes";
  mesh_->mark_broken(t.peer, why);
  FMI_THROW(PeerError, "Direct: recv: ", why,
            t.link ? " (peers disagree on the operation order or buffer sizes, or the header "
                     "was altered on the way)"
                   : " (peers disagree on the operation order or buffer sizes)");
}

// A message parked earlier (read while waiting for another tag) that this
// receive asks for. Returns false when there is none.
bool DirectChannel::take_parked(Utils::peer_num src, Bytes out, Tag tag) {
  return matcher_.take(src, tag, out, [&](std::size_t size) {
    FMI_THROW(PeerError, "Direct: recv: message from peer ", src, " (", to_string(tag), ") has ",
              size, " bytes, expected ", out.size(), " (peers disagree on buffer sizes)");
  });
}

void DirectChannel::run(std::span<Transfer> ts, Utils::Deadline deadline, const char* op) {
  auto start = Utils::Clock::now();
  auto spin_until = start + spin_;
  for (;;) {
    bool all = true, progress = false;
    for (auto& t : ts) {
      if (t.finished()) continue;
      std::size_t before = t.done;
      all &= step(t);
      progress |= t.done != before;
    }
    if (all) return;
    auto now = Utils::Clock::now();
    if (progress) spin_until = now + spin_;
    if (now < spin_until) {
      // Yielding keeps the spin cheap when processes outnumber cores: a peer that
      // waits hands its core to whoever must run to answer it (sched_yield returns
      // at once when nobody else is runnable).
      ::sched_yield();
      continue;
    }
    if (now >= deadline) {
      std::string what;
      for (auto& t : ts) {
        if (t.finished()) continue;
        what += std::string(what.empty() ? "" : ", ") + (t.sending ? "send to" : "receive from") +
                " peer " + std::to_string(t.peer) + " (" + to_string(t.tag) + ", " +
                std::to_string(t.done) + " of " + std::to_string(t.total()) + " bytes moved)";
        // A half-moved message leaves the stream out of step: give the connection up.
        if (t.done > 0)
          mesh_->mark_broken(t.peer, "a " + std::string(op) + " timed out mid-message");
      }
      FMI_THROW(TimeoutError, "Direct: ", op, " timed out after ", format_duration(now - start),
                ": ", what);
    }
    fds_.clear();
    for (auto& t : ts)
      if (!t.finished()) fds_.push_back({t.fd, short(t.sending ? POLLOUT : POLLIN), 0});
    std::size_t own = fds_.size();
    // The control plane (listener, handshakes, server, relay requests) is watched
    // here only while some peer has no connection to us yet. Such a peer may be
    // opening one right now, for its own send, recv or collective, and its
    // handshake needs our HELLO (and DECIDE, from the lower id): if we watched only
    // the sockets of this operation while, say, we wait for peer B, and B waits for
    // peer C, and C waits for our half of its handshake, all three would wait for
    // each other until the deadline (the test DataWaitAnswersAPeerConnectingLater
    // in tests/direct/direct_test.cpp fails exactly so without this). Once every
    // pair is settled nobody is left to answer: the listener would only see
    // strangers (they stay in its backlog), and a relayed pair is an ordinary data
    // socket here (after RELAY_READY the server only forwards bytes). So after the
    // channel opened its full mesh (before its first collective), and whenever the
    // lazily opened connections cover every peer, a wait polls the data sockets
    // alone. complete() reads one counter: no syscall is added per message.
    const bool control = !mesh_->complete();
    if (control) mesh_->add_pollfds(fds_);
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now).count();
    timespec tsp{time_t(ns / 1000000000), long(ns % 1000000000)};
    int r = ::ppoll(fds_.data(), fds_.size(), &tsp, nullptr);
    if (r < 0 && errno != EINTR)
      FMI_THROW(ChannelError, "Direct: ", op, ": poll failed: ", Wire::errno_text(errno));
    if (r > 0 && control) mesh_->handle(fds_.data() + own, fds_.size() - own);
    spin_until = Utils::Clock::now() + spin_;
  }
}

// Before its first message of a collective, the channel opens its full mesh, once:
// every peer reaches its first collective on this channel (the communicator picks
// the same channel everywhere), so all pairs are punched together instead of pair
// after pair inside the algorithm (a ring or a tree would otherwise wait for each
// connection in turn), and from then on its data waits need no control plane
// (run). Point-to-point messages keep opening their one connection lazily.
void DirectChannel::open_mesh_for(Tag tag, Utils::Deadline deadline) {
  if (meshed_ || tag.op == Utils::Operation::send) return;
  connect_all(deadline);
  meshed_ = true;
}

void DirectChannel::send(Utils::peer_num dest, ConstBytes data, Tag tag, Utils::Deadline deadline) {
  check_peer(dest, "send");
  open_mesh_for(tag, deadline);
  if (dest == ctx_.peer_id) {
    matcher_.park(dest, tag, std::vector<std::byte>(data.begin(), data.end()));
    return;
  }
  ensure({dest}, deadline, "send");
  Transfer t{true,        dest, mesh_->fd(dest), tag, const_cast<std::byte*>(data.data()),
             data.size(), {}};
  prepare(t);
  run({&t, 1}, deadline, "send");
}

// Fills the header of a send and attaches the connection's keys (if encrypted).
void DirectChannel::prepare(Transfer& t) {
  t.link = mesh_->link(t.peer);
  if (t.sending) {
    put_u64(t.hdr, t.tag.encode());
    put_u64(t.hdr + 8, t.size);
  } else if (t.link) {
    t.body.start(t.hdr, t.data, t.size);
  }
}

// A message to self never touches a socket: the send parked it in the matcher.
void DirectChannel::self_recv(Bytes out, Tag tag) {
  bool found = matcher_.take(ctx_.peer_id, tag, out, [&](std::size_t size) {
    FMI_THROW(PeerError, "Direct: recv from self (peer ", ctx_.peer_id, "): ", to_string(tag),
              " has ", size, " bytes, expected ", out.size());
  });
  if (!found)
    FMI_THROW(UsageError, "Direct: recv from self (peer ", ctx_.peer_id, ", ", to_string(tag),
              ") without a prior send to self");
}

void DirectChannel::recv(Utils::peer_num src, Bytes out, Tag tag, Utils::Deadline deadline) {
  check_peer(src, "recv");
  open_mesh_for(tag, deadline);
  if (src == ctx_.peer_id) return self_recv(out, tag);
  if (take_parked(src, out, tag)) return;
  ensure({src}, deadline, "recv");
  Transfer t{false, src, mesh_->fd(src), tag, out.data(), out.size(), {}};
  prepare(t);
  run({&t, 1}, deadline, "recv");
}

void DirectChannel::sendrecv(Utils::peer_num dest, ConstBytes data, Utils::peer_num src, Bytes out,
                             Tag tag, Utils::Deadline deadline) {
  check_peer(dest, "sendrecv");
  check_peer(src, "sendrecv");
  open_mesh_for(tag, deadline);
  if (dest == ctx_.peer_id || src == ctx_.peer_id) {
    // Sending to ourselves never blocks, so doing the two halves in turn is safe.
    send(dest, data, tag, deadline);
    recv(src, out, tag, deadline);
    return;
  }
  // Both connections are wanted at once: in a ring every peer waits for its two
  // neighbours, and each pair must be punched from both of its sides.
  if (take_parked(src, out, tag)) {
    send(dest, data, tag, deadline);
    return;
  }
  ensure({dest, src}, deadline, "sendrecv");
  Transfer ts[2] = {
      {true, dest, mesh_->fd(dest), tag, const_cast<std::byte*>(data.data()), data.size(), {}},
      {false, src, mesh_->fd(src), tag, out.data(), out.size(), {}}};
  prepare(ts[0]);
  prepare(ts[1]);
  run(ts, deadline, "sendrecv");
}

}  // namespace FMI::Comm
