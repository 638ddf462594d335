#include "channels/direct/direct_channel.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "channels/direct/secure.h"
#include "fmi/errors.h"
#include "wire/auth.h"

namespace FMI::Comm {

namespace {
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
// Plaintext messages larger than this go out in pieces of about this size, one
// sendmsg each (send_piece() below says why).
constexpr std::size_t kSendPiece = std::size_t(128) << 10;
// A non-blocking probe while another thread leads waits at most this long for the
// leader's next pass over the sockets (it is woken from poll at once; this only
// bounds a leader stuck in a long step).
constexpr auto kProbePass = std::chrono::milliseconds(20);

void put_u64(std::byte* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = std::byte(std::uint8_t(v >> (56 - 8 * i)));
}
std::uint64_t get_u64(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
  return v;
}

// The bytes per sendmsg of a large plaintext message on `fd`. One sendmsg of a whole
// 1 MiB message ran 250-600 us where OpenMPI's one writev of the same size ran
// ~120 us (loopback, syscall tracepoints), and the receiver got the bytes in bursts
// with ~30 us gaps (sleeping in ppoll mid-message) instead of copying while the
// sender copies. Most likely because the socket stays owned by the sender for the
// whole call, and what TCP defers until the owner lets go (transmits held back, the
// peer's ACKs in the backlog) waits for its end; ending a sendmsg every piece
// flushes it (measured: 0.09 instead of 1.4 ppoll per 1 MiB ping-pong message). A piece is a whole
// number of the connection's current segment size (TCP_MAXSEG): a piece that ends inside a segment
// sends a runt segment per piece (256 KiB on loopback's 65483-byte segments: a 212-byte segment
// after every fourth, which made the 1 MiB stream slower than one sendmsg). The size, 128 KiB (two
// loopback segments; OpenMPI's TCP fragments are 128 KiB too), came from interleaved runs of 1, 2,
// 3, 4 and 16 segments per piece: all alike at 1-4 MiB, but at 64 MiB one or two segments took ~16
// ms per message where three, four or sixteen took 24-36 ms (one sendmsg: 35 ms).
std::size_t send_piece(int fd) {
  int mss = 0;
  socklen_t len = sizeof mss;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, &len) != 0 || mss <= 0) return kSendPiece;
  const auto seg = std::size_t(mss);
  return std::max<std::size_t>(1, kSendPiece / seg) * seg;
}

// Shortens iov[0, n) to `max` bytes in all; returns how many entries remain.
int trim(iovec* iov, int n, std::size_t max) {
  for (int i = 0; i < n; ++i) {
    if (iov[i].iov_len >= max) {
      iov[i].iov_len = max;
      return i + 1;
    }
    max -= iov[i].iov_len;
  }
  return n;
}
}  // namespace

/// One direction of one message in progress: header then payload. A probe's
/// transfer (`probe`) reads headers only, handing each message to the receive
/// that wants it or parking it; it never finishes.
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
  bool probe = false;
  Waiter* owner = nullptr;
  // Send larger than kSendPiece: bytes per send (send_piece()) and the socket it
  // was measured on (a transfer moves to a new connection between messages).
  std::size_t piece = 0;
  int piece_fd = -1;
  // The bytes per send of this message: 0 (all at once) up to kSendPiece, else the
  // piece measured on its current socket.
  std::size_t send_piece_size() {
    if (total() <= kSendPiece) return 0;
    if (piece_fd != fd) {
      piece = send_piece(fd);
      piece_fd = fd;
    }
    return piece;
  }
  // Encrypted connection (null: plaintext). Send: wire bytes [buf_begin, buf_end)
  // of this message are sealed in link->txbuf (`writer` seals them). Receive:
  // `body` reads the records into `data` and opens them in place.
  Direct::secure::Link* link = nullptr;
  std::size_t buf_begin = 0, buf_end = 0;
  Direct::secure::BodyWriter writer{};
  Direct::secure::BodyReader body{};

  std::size_t total() const { return kHeader + (link ? Direct::secure::body_size(size) : size); }
  bool finished() const { return done == total(); }
};

/// The stream from one source peer. One receive at a time reads it (`reader`);
/// the others registered for this source wait their turn in `recvs`. A header
/// that the reader does not want goes to the oldest other receive that wants its
/// tag (the bytes are given back to the stream, `pending`, and that receive
/// becomes the reader), or, when nobody waits for it, is parked: read here, by
/// whichever receive reads the stream, into the matcher.
struct DirectChannel::Inbound {
  std::vector<Transfer*> recvs;  // registration order
  Transfer* reader = nullptr;
  std::vector<std::byte> pending;  // stream bytes read ahead and given back
  bool parking = false;
  Tag park_tag{};
  std::vector<std::byte> park{};  // grows as bytes arrive, up to park_len (plaintext)
  std::size_t park_len = 0;       // the size its header announced
  std::size_t park_done = 0;
  std::byte park_hdr[kHeader]{};
  Direct::secure::BodyReader park_body{};
};

/// One call in progress (send, recv, sendrecv, a wait for connections, a probe),
/// registered in waiters_ while it waits. Completed by whichever thread leads.
struct DirectChannel::Waiter {
  const char* op;
  Utils::Deadline deadline;
  std::span<Transfer> ts{};
  std::span<const Utils::peer_num> connecting{};  // connections awaited
  const Envelope* take = nullptr;  // a receive's message (its source not needed once parked)
  bool connected = true;
  bool asked = false;                  // connecting want()ed (deferred while closes make room)
  std::span<const Envelope> wanted{};  // a probe's
  bool probing = false;
  std::span<const Utils::peer_num> later{};  // a probe's sources not connected yet
  bool one_pass = false;  // non-blocking probe: done after one pass of the leader
  std::uint64_t pass_after = 0;
  std::optional<Probed> hit{};
  std::exception_ptr error{};
  bool done = false;
};

/// A connection being closed to keep within the budget (docs/direct.md
/// "Connection budget"). The initiator sent CLOSE as its last bytes on it and reads
/// until the peer's ACK (or the peer's own CLOSE: both closed at once); the responder
/// read that CLOSE, lets its message in progress on it finish, writes ACK as its
/// last bytes and closes. Either side's new messages go on a new connection.
struct DirectChannel::Closing {
  Wire::Socket sock;
  std::unique_ptr<Direct::secure::Link> link;
  bool initiator;
  std::size_t ack_sent = 0;  // responder: bytes of the ACK frame written
};

namespace {
// The header of a connection control frame: op 0 is no operation (Tag), the length
// field says which frame; neither has a payload.
constexpr std::uint64_t kClose = 0, kAck = 1;
}  // namespace

DirectChannel::DirectChannel(DirectConfig cfg)
    : cfg_(std::move(cfg)), spin_(Direct::SpinBudget::from_env()), relay_(relay_from_env()) {
  // FMI_SECRET (if set) replaces the configured secret here, once.
  cfg_.secret = Wire::auth::resolve_secret(cfg_.secret);
  wake_ = Wire::Socket(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_) FMI_THROW(ChannelError, "Direct: eventfd failed: ", Wire::errno_text(errno));
}

DirectChannel::~DirectChannel() { finalize(); }

void DirectChannel::init(const ChannelContext& ctx) {
  if (ctx.num_peers == 0 || ctx.peer_id >= ctx.num_peers)
    FMI_THROW(UsageError, "Direct: init with peer id ", ctx.peer_id, " of ", ctx.num_peers,
              " peers");
  finalize();
  Lock lk(mu_);
  ctx_ = ctx;
  matcher_.clear();
  in_ = std::vector<Inbound>(ctx.num_peers);
  out_.assign(ctx.num_peers, {});
  probe_wanted_.assign(ctx.num_peers, false);
  lru_ = ctx.num_peers - 1 > cfg_.max_connections;
  last_used_.assign(ctx.num_peers, 0);
  closing_.clear();
  closing_.resize(ctx.num_peers);
  closing_n_ = 0;
  drains_ = std::vector<Transfer>(ctx.num_peers);
  for (Utils::peer_num p = 0; p < ctx.num_peers; ++p) {
    drains_[p].peer = p;
    drains_[p].fd = -1;
    drains_[p].probe = true;
  }
  rewanted_.assign(ctx.num_peers, false);
  rewanted_n_ = 0;
  max_open_ = 0;
  initialised_ = true;
  meshed_ = false;
  if (ctx.num_peers > 1) {
    Direct::MeshOptions o{cfg_.host,     cfg_.port, ctx.comm_name, ctx.peer_id,
                          ctx.num_peers, relay_,    cfg_.secret,   cfg_.encryption};
    mesh_ = std::make_unique<Direct::Mesh>(o, Utils::Clock::now() + cfg_.max_timeout);
    // Beyond the budget, connections other peers open to us wait for room too.
    if (lru_) {
      mesh_->set_admit([this](std::uint32_t p) { return admit(p); });
      mesh_->set_closing([this](std::uint32_t p) { return closing_[p] != nullptr; });
    }
  }
}

void DirectChannel::finalize() noexcept {
  Lock lk(mu_);
  closing_.clear();
  closing_n_ = 0;
  mesh_.reset();
  matcher_.clear();
  in_.clear();
  out_.clear();
  initialised_ = false;
}

std::string DirectChannel::local_endpoint() const {
  Lock lk(mu_);
  return mesh_ ? mesh_->local().str() : "";
}

unsigned DirectChannel::connected_peers() const {
  Lock lk(mu_);
  unsigned n = 0;
  if (mesh_)
    for (Utils::peer_num p = 0; p < ctx_.num_peers; ++p)
      n += p != ctx_.peer_id && mesh_->fd(p) >= 0;
  return n;
}

std::size_t DirectChannel::max_open_connections() const {
  Lock lk(mu_);
  return std::max(max_open_, held());
}

// Sockets to other peers this channel holds now: established and being closed.
std::size_t DirectChannel::held() const {
  return mesh_ ? mesh_->open_connections() + closing_n_ : 0;
}

void DirectChannel::check_peer(Utils::peer_num p, const char* op) const {
  if (!initialised_) FMI_THROW(UsageError, "Direct: ", op, " on a channel that is not initialised");
  if (p >= ctx_.num_peers)
    FMI_THROW(UsageError, "Direct: ", op, ": peer ", p, " out of range (", ctx_.num_peers,
              " peers)");
}

// Connections are opened on first use. The wait for them is a waiter like any
// other: the leader services the control plane for every thread at once, so a
// thread that connects never stops another's data, nor the reverse.
// `take`: the message a receive waits for; once it is parked, its source's
// connection is not waited for (see connected()).
void DirectChannel::ensure(std::span<const Utils::peer_num> peers, Utils::Deadline deadline,
                           const char* op, Lock& lk, const Envelope* take) {
  if (mesh_->ready(peers, op)) return;
  Waiter w{op, deadline};
  w.connecting = peers;
  w.connected = false;
  w.take = take;
  for (auto p : peers) last_used_[p] = ++use_clock_;
  want_or_defer(w);
  wait(w, lk);
}

void DirectChannel::connect(std::span<const Utils::peer_num> peers, Utils::Deadline deadline) {
  Lock lk(mu_);
  for (auto p : peers) check_peer(p, "connect");
  if (!mesh_) return;
  // A broken pair is left to the calls that use it: its peer may have sent its
  // last message and exited (a leaf of a reduce does), and the receive of that
  // message, parked by the drain that then read the end of the stream, still
  // succeeds; a send to it reports the broken pair with its reason.
  std::vector<Utils::peer_num> want;
  for (auto p : peers)
    if (p != ctx_.peer_id && mesh_->fd(p) < 0 && mesh_->broken(p).empty() &&
        std::find(want.begin(), want.end(), p) == want.end())
      want.push_back(p);
  if (!want.empty()) ensure(want, deadline, "connect", lk);
}

void DirectChannel::connect_all_locked(Utils::Deadline deadline, Lock& lk) {
  if (!mesh_) return;
  std::vector<Utils::peer_num> all;
  for (Utils::peer_num p = 0; p < ctx_.num_peers; ++p)
    if (p != ctx_.peer_id && mesh_->fd(p) < 0) all.push_back(p);
  if (!all.empty()) ensure(all, deadline, "connect_all", lk);
}

void DirectChannel::connect_all(Utils::Deadline deadline) {
  Lock lk(mu_);
  if (!initialised_)
    FMI_THROW(UsageError, "Direct: connect_all on a channel that is not initialised");
  connect_all_locked(deadline, lk);
}

// A connection failed mid-stream: it is out of step for good, so later calls on
// it say why instead of reading garbage.
void DirectChannel::lose(Utils::peer_num peer, const std::string& why, const char* hint) {
  mesh_->mark_broken(peer, why);
  FMI_THROW(PeerError, "Direct: ", why, hint);
}

// Reads up to `len` bytes of the stream from `peer`: first what was given back to
// it (pending), then the socket.
ssize_t DirectChannel::read_stream(Utils::peer_num peer, int fd, iovec* iov, int n) {
  auto& pend = in_[peer].pending;
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

// Gives stream bytes back (they come before whatever is pending).
void DirectChannel::unread(Utils::peer_num peer, const std::byte* a, std::size_t na,
                           const std::byte* b, std::size_t nb) {
  auto& pend = in_[peer].pending;
  pend.insert(pend.begin(), b, b + nb);
  pend.insert(pend.begin(), a, a + na);
}

// Moves as many bytes as the socket takes now. Returns true once the transfer is
// complete, false when the socket would block or another receive took over the
// stream; throws PeerError when the connection fails or the message does not
// match what the receiver expects.
bool DirectChannel::step(Transfer& t) {
  if (t.link) return t.sending ? sealed_send(t) : sealed_recv(t);
  while (!t.finished()) {
    if (!t.sending && in_[t.peer].parking) {
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
      if (const std::size_t piece = t.send_piece_size())
        // Pieces are counted from the message's start (the header's first byte), so
        // each sendmsg but the last ends on a segment boundary.
        n = trim(iov, n, piece - t.done % piece);
      msghdr mh{};
      mh.msg_iov = iov;
      mh.msg_iovlen = std::size_t(n);
      r = ::sendmsg(t.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
      // Header and payload in one call: a header for another message is caught
      // right after it arrives (below), and the bytes read past it given back.
      r = read_stream(t.peer, t.fd, iov, n);
    }
    if (!t.sending && (r == 0 || (r < 0 && errno == ECONNRESET)) && closed_by_peer(t)) return false;
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
      if (got.op == Utils::Operation{}) return control(t, len, t.done - kHeader);
      if (t.probe || !(got == t.tag)) {
        if (!other_header(t, got, len, t.data, t.done - kHeader)) return false;
        continue;
      }
      if (len != t.size) mismatch(t, got, len);
    }
  }
  return true;
}

// The reader `t` read the header of a message it does not take (another tag, or
// t is a probe's). `rest` is what the same read put past the header. Hands the
// message to the oldest other receive from this source that wants its tag (false:
// t stops reading), or starts parking it (true: t reads on).
bool DirectChannel::other_header(Transfer& t, Tag got, std::uint64_t len, const std::byte* rest,
                                 std::size_t nrest) {
  auto& in = in_[t.peer];
  auto reset = [&] {
    t.done = 0;
    t.checked = false;
    if (t.link) t.body.start(t.hdr, t.data, t.size);
  };
  for (Transfer* w : in.recvs)
    if (w != &t && !w->probe && w->tag == got) {
      unread(t.peer, t.hdr, kHeader, rest, nrest);
      reset();
      in.reader = w;
      return false;
    }
  // Checked here, where the header's length is read (before any allocation).
  check_park_budget(t, got, len);
  unread(t.peer, nullptr, 0, rest, nrest);
  start_parking(t, got, len);
  reset();
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
                    " bytes (" + to_string(got) + ") while " +
                    (t.probe ? std::string("a probe waits for its next message")
                             : "a receive waits for " + to_string(t.tag) + " with " +
                                   std::to_string(t.size) + " bytes") +
                    ", and " + std::to_string(parked_n) + " messages (" + std::to_string(parked) +
                    " bytes) from it are parked already";
  mesh_->mark_broken(t.peer, why);
  FMI_THROW(PeerError, "Direct: recv: ", why, "; at most ", kMaxParkedMessages, " messages and ",
            kMaxParkedBytes, " bytes are parked per peer (peers out of step, or not an FMI peer)");
}

// Parking state is the stream's, not the reader's: when the reader's call ends
// mid-message, the next receive from this source reads the rest.
void DirectChannel::start_parking(Transfer& t, Tag got, std::uint64_t len) {
  auto& in = in_[t.peer];
  in.parking = true;
  in.park_tag = got;
  in.park_len = std::size_t(len);
  in.park_done = 0;
  in.park.clear();
  if (t.link) {
    // The sealed path reads a record's tag before it can trust the length, so the
    // whole message is allocated at once (the budget bounded it).
    std::memcpy(in.park_hdr, t.hdr, kHeader);
    in.park.resize(in.park_len);
    in.park_body.start(in.park_hdr, in.park.data(), in.park.size());
  } else if (len == 0) {
    finish_parking(t.peer);
  }
}

// A parked message is complete: into the matcher, and straight to a receive from
// that source that registered for its tag while it was being read.
void DirectChannel::finish_parking(Utils::peer_num peer) {
  auto& in = in_[peer];
  in.parking = false;
  matcher_.park(peer, in.park_tag, std::move(in.park));
  in.park = {};
  auto it = std::find_if(in.recvs.begin(), in.recvs.end(),
                         [&](Transfer* w) { return !w->probe && w->tag == in.park_tag; });
  if (it == in.recvs.end()) return;
  Transfer& w = **it;
  in.recvs.erase(it);
  if (in.reader == &w) in.reader = nullptr;
  try {
    take_parked(peer, {w.data, w.size}, w.tag);
  } catch (...) {
    w.owner->error = std::current_exception();
  }
  w.done = w.total();
}

bool DirectChannel::park_step(Transfer& t) {
  if (t.link) return sealed_park_step(t);
  auto& in = in_[t.peer];
  if (in.park_done == in.park.size())
    in.park.resize(std::min(in.park_len, std::max(kParkGrowth, 2 * in.park.size())));
  iovec iov{in.park.data() + in.park_done, in.park.size() - in.park_done};
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
  in.park_done += std::size_t(r);
  if (in.park_done == in.park_len) finish_parking(t.peer);
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

// Sends piece after piece: each is sealed into the connection's buffer when the
// previous one is out (one seal and one send for a small message, the header going
// with its first piece), so the receiver decrypts piece k while this side seals
// k+1 (16 KiB pieces first and last, 64 KiB between); nothing is allocated per
// message. While the socket is full, the pieces that follow are sealed ahead into
// the rest of the buffer (up to one record): the wait is used, and the next send
// takes them all at once.
bool DirectChannel::sealed_send(Transfer& t) {
  namespace sec = Direct::secure;
  auto& link = *t.link;
  // Large messages: sends end on the connection's segment boundaries, counted from
  // the message's first byte, as plaintext ones do (send_piece() says why; pieces of
  // 128 KiB of payload plus header and tags ended inside a segment, a runt segment
  // per send).
  const std::size_t piece = t.send_piece_size();
  auto seal_next = [&] {
    // Pieces grow with what was sealed and shrink again towards the end (at most
    // half of what is left), so the receiver's last decryption is short too.
    const std::size_t sealed = t.writer.sealed();
    const std::size_t want =
        std::clamp(std::min(sealed, (t.size - sealed) / 2), sec::kFirstPiece, sec::kPiece);
    if (link.kTxBuf - (t.buf_end - t.buf_begin) < want + sec::kTag && t.done > t.buf_begin &&
        t.buf_end - t.done < sec::kPiece) {
      // The short unsent rest (it did not reach a segment boundary) to the front.
      std::memmove(link.txbuf.get(), link.txbuf.get() + (t.done - t.buf_begin), t.buf_end - t.done);
      t.buf_begin = t.done;
    }
    const std::size_t used = t.buf_end - t.buf_begin;
    const std::size_t n =
        t.writer.produce(link.tx, link.txbuf.get() + used, link.kTxBuf - used, want);
    t.buf_end += n;
    return n > 0;
  };
  while (!t.finished()) {
    if (t.done == t.buf_end) {
      t.buf_begin = t.done;
      if (t.done == 0) {
        std::memcpy(link.txbuf.get(), t.hdr, kHeader);
        t.buf_end = kHeader;
      }
      seal_next();
    }
    std::size_t len = t.buf_end - t.done;
    if (piece) {
      const std::size_t to_boundary = piece - t.done % piece;
      // Past the first pieces (sent as soon as sealed: the receiver starts early),
      // a send that would end short of the boundary waits for the next piece.
      if (len < to_boundary && t.writer.sealed() >= sec::kPiece && seal_next()) continue;
      len = std::min(len, to_boundary);
    }
    // No MSG_MORE on the pieces: it saved the short segment each piece ends in
    // (fewer segments per call), but held data back while the other side waited:
    // encrypted ping-pong of 64 MiB took 69 ms with it, 26 ms without (1 MiB: 479 vs
    // 274 us; allreduce 64 MiB on 4: 233 vs 212 ms; docs/benchmarks.md).
    ssize_t r =
        ::send(t.fd, link.txbuf.get() + (t.done - t.buf_begin), len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (seal_next()) continue;
        return false;
      }
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
    if (in_[t.peer].parking) {
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
    if ((r == 0 || errno == ECONNRESET) && closed_by_peer(t)) return false;
    if (r <= 0) io_failed(t, r);
    t.done += std::size_t(r);
    const std::size_t body = std::size_t(r) - std::min(hdr_left, std::size_t(r));
    if (!t.checked && t.done >= kHeader) {
      t.checked = true;
      Tag got = Tag::decode(get_u64(t.hdr));
      std::uint64_t len = get_u64(t.hdr + 8);
      if (got.op == Utils::Operation{}) return control(t, len, body);
      if (t.probe || !(got == t.tag)) {
        std::vector<std::byte> spill;
        t.body.spill(body, spill);
        if (!other_header(t, got, len, spill.data(), spill.size())) return false;
        continue;
      }
      if (len != t.size) mismatch(t, got, len);
    }
    const std::size_t rec = t.body.record();
    if (body && !t.body.advance(t.link->rx, body)) forged(t.peer, t.tag, rec);
  }
  return true;
}

bool DirectChannel::sealed_park_step(Transfer& t) {
  auto& in = in_[t.peer];
  iovec iov[2];
  int n = in.park_body.iov(iov);
  ssize_t r = read_stream(t.peer, t.fd, iov, n);
  if (r < 0 && errno == EINTR) return true;
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
  if (r <= 0) io_failed(t, r);
  const std::size_t rec = in.park_body.record();
  if (!in.park_body.advance(t.link->rx, std::size_t(r))) forged(t.peer, in.park_tag, rec);
  if (in.park_body.done()) finish_parking(t.peer);
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

// ---------------------------------------------------------------------------
// The connection budget (docs/direct.md "Connection budget").
//
// With more peers than cfg_.max_connections + 1, a function closes the least
// recently used idle connection (nothing queued to send, no receive or probe on
// it, nothing parked or read ahead from it, nobody waiting for it) before it opens
// one more, and after connections from others made it exceed the budget. The close
// is an exchange both sides understand, so that nothing in flight is lost:
//   - the initiator writes CLOSE (a 16-byte header with operation 0, length 0) as
//     its last bytes on the connection and takes the socket out of the mesh: its
//     new messages to that peer go on a new connection; its receives from that peer
//     read the old connection until the peer's ACK, then the new one;
//   - the peer reads CLOSE (every connection no receive reads is drained while a
//     call of the channel runs, so an idle one is seen too), lets its message in
//     progress on the connection finish, writes ACK (length 1) as its last bytes and
//     closes; its later messages go on a new connection;
//   - the initiator reads everything the peer sent before the ACK (parked as any
//     other message), then closes. Two CLOSEs that cross close both sides alike.
// Order per pair holds: each side reads the old connection to its end before the
// new one. An ACK nobody asked for, or bytes after CLOSE/ACK, break the pair
// (PeerError), as any other violation of the stream does.
// ---------------------------------------------------------------------------

// Attaches `t` to the connection its next message uses (only between messages: a
// message half moved stays on its connection). Reads take the connection being
// closed by us until its end, then the current one. False when there is none yet:
// `reconnect` then asks the mesh for one.
bool DirectChannel::bind(Transfer& t, bool reconnect) {
  if (t.done > 0 || t.checked) return true;
  int fd;
  Direct::secure::Link* link;
  const auto& c = closing_[t.peer];
  if (!t.sending && c && c->initiator) {
    fd = c->sock.fd();
    link = c->link.get();
  } else {
    fd = mesh_->fd(t.peer);
    link = mesh_->link(t.peer);
  }
  if (fd < 0) {
    if (reconnect) rewant(t.peer);
    return false;
  }
  if (t.fd != fd || t.link != link) {
    t.fd = fd;
    t.link = link;
    if (!t.sending && link) t.body.start(t.hdr, t.data, t.size);
    // A sealed send whose socket was full may have sealed pieces ahead with the old
    // connection's keys (nothing of them sent: done is 0); the new connection seals
    // the message again with its own.
    if (t.sending) {
      t.buf_begin = t.buf_end = 0;
      if (link) t.writer.start(t.hdr, t.data, t.size);
    }
  }
  return true;
}

// A transfer whose connection was closed (by us or the peer) waits for a new one.
// Within the budget as any other new connection: when there is no room, an idle
// connection is closed first and this is asked again at the leader's next pass.
void DirectChannel::rewant(Utils::peer_num p) {
  if (rewanted_[p] || mesh_->wanted(p) || !mesh_->broken(p).empty()) return;
  const Utils::peer_num one[] = {p};
  if (held() + mesh_->pending_connections() >= cfg_.max_connections &&
      (settling() || evict_one(one)))
    return;
  mesh_->want(one);
  rewanted_[p] = true;
  ++rewanted_n_;
}

// `t` read the header of a CLOSE or an ACK from its peer (nothing may follow it).
bool DirectChannel::control(Transfer& t, std::uint64_t len, std::size_t nrest) {
  const Utils::peer_num p = t.peer;
  const int fd = t.fd;
  t.done = 0;
  t.checked = false;
  if (t.link) t.body.start(t.hdr, t.data, t.size);
  auto& c = closing_[p];
  ++controls_;
  const std::string who = "peer " + std::to_string(p);
  if (nrest || !in_[p].pending.empty() || len > kAck)
    lose(p, who + " sent bytes after closing the connection", " (not an FMI peer?)");
  if (c && c->initiator && fd == c->sock.fd()) {
    // Its ACK, or its own CLOSE crossing ours: every byte it sent on the
    // connection has been read.
    c.reset();
    --closing_n_;
    return false;
  }
  if (len == kAck || c || fd != mesh_->fd(p))
    lose(p, who + " closed a connection that was not being closed", " (not an FMI peer?)");
  auto d = mesh_->detach(p);
  c = std::make_unique<Closing>(Closing{std::move(d.sock), std::move(d.link), false});
  ++closing_n_;
  try_ack(p);
  return false;
}

// The end of the stream (or a reset) where we wait for the peer's ACK, between
// messages: the peer closed its side without reading our CLOSE (it exited after
// its last message, or both closed at once); everything it sent there was read.
bool DirectChannel::closed_by_peer(Transfer& t) {
  auto& c = closing_[t.peer];
  if (!c || !c->initiator || t.fd != c->sock.fd() || t.done != 0 || in_[t.peer].parking ||
      !in_[t.peer].pending.empty())
    return false;
  c.reset();
  --closing_n_;
  ++controls_;
  return true;
}

// The responder's ACK, once its message in progress on the old connection is out.
void DirectChannel::try_ack(Utils::peer_num p) {
  auto& c = closing_[p];
  const auto& q = out_[p];
  if (!q.empty() && q.front()->done > 0 && q.front()->fd == c->sock.fd()) return;
  std::byte frame[kHeader];
  put_u64(frame, 0);
  put_u64(frame + 8, kAck);
  while (c->ack_sent < kHeader) {
    ssize_t w = ::send(c->sock.fd(), frame + c->ack_sent, kHeader - c->ack_sent,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // The initiator closed its side already (it exited, or had nothing more to
    // read): the connection is over either way; new messages use a new one.
    if (w <= 0) break;
    c->ack_sent += std::size_t(w);
  }
  c.reset();
  --closing_n_;
}

// A connection that no receive reads, which the leader reads (parking what comes)
// so that a CLOSE from the peer, or the ACK we wait for, is seen.
bool DirectChannel::drainable(Utils::peer_num p) {
  if (p == ctx_.peer_id || !mesh_->broken(p).empty()) return false;
  const auto& in = in_[p];
  if (in.reader || !in.recvs.empty()) return false;
  const bool old = closing_[p] && closing_[p]->initiator;
  if (!old && !(lru_ && mesh_->fd(p) >= 0)) return false;
  return bind(drains_[p], false);
}

void DirectChannel::drain(Utils::peer_num p) {
  if (closing_[p] && !closing_[p]->initiator) return try_ack(p);
  if (!drainable(p)) return;
  Transfer& d = drains_[p];
  try {
    step(d);
  } catch (const Error&) {
    // lose() marked the pair broken: the calls that need it say why.
    if (closing_[p]) {
      closing_[p].reset();
      --closing_n_;
    }
  }
  // A header half read goes back to the stream, for whichever receive reads next.
  if (!d.checked && d.done > 0) {
    unread(p, d.hdr, d.done, nullptr, 0);
    d.done = 0;
  }
}

// Closes the least recently used idle connection, not one of `keep`. False when
// every connection is busy. Messages parked from a peer do not keep its connection
// open: they stay parked (in memory, by source and tag) for the receives that come.
bool DirectChannel::evict_one(std::span<const Utils::peer_num> keep) {
  Utils::peer_num best = ctx_.peer_id;
  std::uint64_t oldest = ~std::uint64_t(0);
  for (Utils::peer_num q = 0; q < ctx_.num_peers; ++q) {
    const auto& in = in_[q];
    if (q == ctx_.peer_id || mesh_->fd(q) < 0 || closing_[q] || !out_[q].empty() ||
        !in.recvs.empty() || in.reader || in.parking || !in.pending.empty() || mesh_->wanted(q) ||
        rewanted_[q] || last_used_[q] >= oldest ||
        std::find(keep.begin(), keep.end(), q) != keep.end())
      continue;
    best = q;
    oldest = last_used_[q];
  }
  if (best == ctx_.peer_id) return false;
  std::byte frame[kHeader];
  put_u64(frame, 0);
  put_u64(frame + 8, kClose);
  ssize_t w;
  do {
    w = ::send(mesh_->fd(best), frame, kHeader, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (w < 0 && errno == EINTR);
  if (w != ssize_t(kHeader)) {
    // An idle connection whose socket cannot take 16 bytes is unusable anyway.
    if (w > 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
      mesh_->mark_broken(best, "closing the idle connection to peer " + std::to_string(best) +
                                   " failed: " + Wire::errno_text(errno));
    return false;
  }
  auto d = mesh_->detach(best);
  closing_[best] = std::make_unique<Closing>(Closing{std::move(d.sock), std::move(d.link), true});
  ++closing_n_;
  return true;
}

// Before `w` asks for its connections: room within the budget, by closing idle ones;
// while closes are still in progress (their sockets count), the want waits.
void DirectChannel::want_or_defer(Waiter& w) {
  if (lru_) {
    std::size_t need = 0;
    for (auto p : w.connecting) need += p != ctx_.peer_id && mesh_->fd(p) < 0 && !mesh_->wanted(p);
    const std::size_t pending = need ? mesh_->pending_connections() : 0;
    while (need && mesh_->open_connections() + pending + need > cfg_.max_connections &&
           evict_one(w.connecting)) {
    }
    // When nothing is idle the budget gives way (waiting would deadlock); closes in
    // progress end when their peers answer (any call of theirs does), connections in
    // progress when their handshakes do.
    if (need && held() + pending + need > cfg_.max_connections && settling()) return;
  }
  mesh_->want(w.connecting);
  w.asked = true;
}

// The gate on a connection another peer opened to us (puncher.h): room now, or
// once an idle connection closed (its ACK came); a pair we want ourselves has its
// room already.
bool DirectChannel::admit(Utils::peer_num p) {
  // While the pair's old connection is being closed, the peer may not know it yet:
  // a new one waits until both sides are done with the old one (puncher.h closing()).
  if (closing_[p]) return false;
  if (mesh_->wanted(p) || rewanted_[p]) return true;
  if (held() + mesh_->pending_connections() < cfg_.max_connections) return true;
  // Nothing idle to close and nothing that will change that soon: the budget gives
  // way rather than leave the peer waiting for a room that may not come (with a
  // budget of 2, every connection busy with a sendrecv whose partners wait, through
  // others, for this very peer).
  return !settling() && !evict_one({});
}

// What makes room soon without anybody else's progress: a close in progress (its
// ACK), or connections other peers opened to us that were admitted and are still
// in their handshake (idle once open, then closed in turn). While any lasts, a
// function at its budget waits instead of giving way; without the second, every
// peer held at the gate was admitted at once when one close ended, each counted
// against a room that the others had just taken.
// A third: a message half moved on one of our connections (a send that started, or
// a message from the peer being parked). It ends without anybody's new call, since
// both sides step every connection while any call of theirs runs, and leaves the
// connection idle (a send not started yet may belong to a call that waits for this
// very room: it does not count). Without it a function at a budget of 2, receiving on one
// connection while a faster peer's message was parked from the other, gave way to
// a third peer (CI: "held 3 connections at once (budget 2)").
bool DirectChannel::settling() const {
  if (closing_n_ > 0 || mesh_->admitted() > 0) return true;
  for (Utils::peer_num q = 0; q < ctx_.num_peers; ++q)
    if (q != ctx_.peer_id && mesh_->fd(q) >= 0 &&
        (in_[q].parking || (!out_[q].empty() && out_[q].front()->done > 0)))
      return true;
  return false;
}

// Connections other peers opened to us may exceed the budget: the least recently
// used idle ones go.
void DirectChannel::after_handshakes() {
  if (lru_)
    while (mesh_->open_connections() > cfg_.max_connections && evict_one({})) {
    }
  max_open_ = std::max(max_open_, held());
}

// ---------------------------------------------------------------------------
// The progress engine (leader/followers, see direct_channel.h).
//
// Rules that keep it free of deadlocks and lost messages:
//  - Only the leader touches sockets and the mesh's descriptors, always under
//    mu_; it releases mu_ only around sched_yield and ppoll, so every other
//    thread sees consistent queues and may register, take a parked message or
//    retire its own call meanwhile.
//  - The leader steps every registered transfer, not only its own: a thread
//    blocked in a recv from peer 1 keeps another thread's send to peer 2 and its
//    receive from peer 3 moving (and the control plane, while connections are
//    missing), so no peer waits on a thread of ours that is waiting elsewhere.
//  - Per source one reader; per destination one writer (the first queued send):
//    a message's bytes (and sealed records, with their sequence numbers) go out
//    whole and in order.
//  - A call whose transfer failed or timed out is retired by its own thread: a
//    half-moved message breaks the connection (every later or concurrent call on
//    it gets PeerError), a half-read header is given back to the stream.
// ---------------------------------------------------------------------------

bool DirectChannel::is_done(Waiter& w) {
  if (w.error) return true;
  if (!w.connected) return false;
  for (auto& t : w.ts)
    if (!t.probe && !t.finished()) return false;
  if (!w.probing) return true;
  if (!w.hit) w.hit = probed(w.wanted);
  if (w.hit) return true;
  // A source came up (or broke): probe() registers its stream (or raises).
  for (auto s : w.later)
    if (mesh_->fd(s) >= 0 || !mesh_->broken(s).empty()) return true;
  return w.one_pass && pumps_ > w.pass_after;
}

std::optional<Probed> DirectChannel::probed(std::span<const Envelope> wanted) const {
  std::optional<Probed> best;
  std::uint64_t first = 0;
  for (std::size_t i = 0; i < wanted.size(); ++i)
    if (auto m = matcher_.peek(wanted[i].src, wanted[i].tag))
      if (!best || m->arrival < first) {
        best = Probed{i, m->bytes};
        first = m->arrival;
      }
  return best;
}

// Whether the connections `w` waits for are there. A receive's source is not needed
// once the message it waits for is parked: it came on a connection that was closed
// to stay within the budget while the receive waited for its other connection (a
// sendrecv's destination) or for the reopen. Waiting for a new connection to that
// source anyway stalls when the source, done with us, never opens it (a relayed
// pair needs both sides to ask; a source that exited is not there at all).
bool DirectChannel::connected(const Waiter& w) const {
  if (!w.take || !matcher_.peek(w.take->src, w.take->tag)) return mesh_->ready(w.connecting, w.op);
  for (auto p : w.connecting)
    if (p != w.take->src && !mesh_->ready({&p, 1}, w.op)) return false;
  return true;
}

// Steps what of `w` may move now. Returns true when a connection it waits for
// came up (bytes moved are counted by the caller).
bool DirectChannel::pump_one(Waiter& w) {
  bool progress = false;
  if (!w.connected) {
    if (!w.asked) want_or_defer(w);
    if (!w.asked || !connected(w)) return false;
    w.connected = true;
    progress = true;
  }
  for (auto& t : w.ts) {
    if (t.finished()) continue;
    const std::string& broken = mesh_->broken(t.peer);
    if (!broken.empty())
      FMI_THROW(PeerError, "Direct: ", w.op, ": connection to peer ", t.peer,
                " is broken: ", broken);
    if (t.sending) {
      auto& q = out_[t.peer];
      if (q.front() != &t) continue;
      if (!bind(t)) continue;
      std::size_t before = t.done;
      bool fin = step(t);
      progress |= t.done != before;
      if (fin) q.erase(q.begin());
    } else {
      auto& in = in_[t.peer];
      if (!in.reader) in.reader = in.recvs.front();
      if (in.reader != &t) continue;
      if (!bind(t)) continue;
      std::size_t before =
          t.done + in.park_done + in.pending.size() + matcher_.parked_messages(t.peer) + controls_;
      bool fin = step(t);
      progress |= t.done + in.park_done + in.pending.size() + matcher_.parked_messages(t.peer) +
                      controls_ !=
                  before;
      if (fin) {
        // Not there when a parked message completed it during its own step
        // (finish_parking takes it out of recvs): erase(end()) would corrupt the heap.
        if (auto it = std::find(in.recvs.begin(), in.recvs.end(), &t); it != in.recvs.end())
          in.recvs.erase(it);
        in.reader = nullptr;
      } else if (in.reader != &t) {
        progress = true;  // handed over: the new reader goes on in this pass or the next
      }
    }
  }
  return progress;
}

// One pass over every registered call. Wakes the threads whose calls it finished.
bool DirectChannel::pump() {
  bool progress = false, connecting = false;
  for (Waiter* w : waiters_) {
    if (w->done) continue;
    try {
      progress |= pump_one(*w);
    } catch (...) {
      // A probe that found its message keeps it even if the stream broke right
      // after it (a source that sent and exited): the recv that follows gets it.
      if (!(w->probing && (w->hit = probed(w->wanted)))) w->error = std::current_exception();
      progress = true;
    }
    connecting |= (!w->connected || !w->later.empty()) && !w->error;
  }
  if (closing_n_)
    for (Utils::peer_num p = 0; p < ctx_.num_peers; ++p)
      if (closing_[p] && !closing_[p]->initiator) try_ack(p);
  if (rewanted_n_) {
    connecting = true;
    for (Utils::peer_num p = 0; p < ctx_.num_peers; ++p)
      if (rewanted_[p] && (mesh_->fd(p) >= 0 || !mesh_->broken(p).empty())) {
        const Utils::peer_num one[] = {p};
        mesh_->unwant(one);
        rewanted_[p] = false;
        --rewanted_n_;
      }
  }
  if (connecting) mesh_->timers(Utils::Clock::now());
  ++pumps_;
  bool finished = false;
  for (Waiter* w : waiters_)
    if (!w->done && is_done(*w)) finished = w->done = true;
  if (finished && sleepers_) cv_.notify_all();
  return progress;
}

// Sleeps in ppoll (without mu_) over the sockets the registered calls need now,
// the wake-up eventfd and, while some pair has no connection yet, the control
// plane: a peer may be opening one right now, for its own send, recv or
// collective, and its handshake needs our HELLO (and DECIDE, from the lower id).
// If we watched only our data sockets while, say, we wait for peer B, and B waits
// for peer C, and C waits for our half of its handshake, all three would wait for
// each other until the deadline (the test DataWaitAnswersAPeerConnectingLater in
// tests/direct/direct_test.cpp fails exactly so without this). Once every pair is
// settled nobody is left to answer (the listener would only see strangers, and a
// relayed pair is an ordinary data socket here), so then the data sockets alone
// are watched: complete() reads one counter, no syscall is added per message.
void DirectChannel::poll_once(Utils::Deadline until, Lock& lk,
                              Utils::Clock::time_point quiet_since) {
  fds_.clear();
  fds_.push_back({wake_.fd(), POLLIN, 0});
  for (Waiter* w : waiters_) {
    if (w->done) continue;
    for (auto& t : w->ts) {
      if (t.finished() || !mesh_->broken(t.peer).empty()) continue;
      if ((t.sending ? out_[t.peer].front() == &t : in_[t.peer].reader == &t) && bind(t, false))
        fds_.push_back({t.fd, short(t.sending ? POLLOUT : POLLIN), 0});
    }
  }
  // Connections no receive reads, while some may be closed by their peer (lru_) or
  // we wait for a peer's ACK; and responders' ACKs that did not fit the socket.
  //
  // Under the budget (lru_) the idle connections are watched only for a peer's
  // CLOSE, which can wait a little: they join the poll once the wait has gone on for
  // kDrainAfter without progress, and at least every kDrainEvery. Watched on every
  // poll, any message sent before its receive was posted woke the receiver to park
  // it (the drains were also most of what was polled): an allreduce of 4 B at 256
  // functions took 1.5-1.9x the full mesh's time (budget 128 against 300). A peer that waits for
  // our ACK waits that much longer at most; while we wait on the peers we need, we answer it within
  // kDrainAfter.
  const std::size_t drains_from = fds_.size();
  drain_at_.clear();
  bool drains = closing_n_ > 0;
  if (lru_ && !drains) {
    const auto now = Utils::Clock::now();
    const auto at = std::min(quiet_since + kDrainAfter, drains_polled_ + kDrainEvery);
    if (now >= at) {
      drains = true;
      drains_polled_ = now;
    } else {
      until = std::min(until, at);
    }
  }
  if (drains)
    for (Utils::peer_num p = 0; p < ctx_.num_peers; ++p) {
      if (closing_[p] && !closing_[p]->initiator) {
        fds_.push_back({closing_[p]->sock.fd(), POLLOUT, 0});
        drain_at_.push_back(p);
      } else if (drainable(p)) {
        fds_.push_back({drains_[p].fd, POLLIN, 0});
        drain_at_.push_back(p);
      }
    }
  const std::size_t own = fds_.size();
  const bool control = mesh_ && !mesh_->complete();
  if (control) {
    mesh_->add_pollfds(fds_);
    until = std::min(until, mesh_->next_expiry());
  }
  auto left = until - Utils::Clock::now();
  if (left < Utils::Clock::duration::zero()) left = Utils::Clock::duration::zero();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  timespec tsp{time_t(ns / 1000000000), long(ns % 1000000000)};
  polling_ = true;
  lk.unlock();
  int r = ::ppoll(fds_.data(), fds_.size(), &tsp, nullptr);
  int err = errno;
  lk.lock();
  polling_ = false;
  if (r < 0 && err != EINTR)
    FMI_THROW(ChannelError, "Direct: poll failed: ", Wire::errno_text(err));
  if (r > 0 && fds_[0].revents) {
    std::uint64_t v;
    [[maybe_unused]] auto n = ::read(wake_.fd(), &v, sizeof v);
  }
  if (r > 0)
    for (std::size_t k = 0; k < drain_at_.size(); ++k)
      if (fds_[drains_from + k].revents) drain(drain_at_[k]);
  // Also on a timeout (no revents): handle() runs the mesh's timers, which close
  // handshakes past their deadline.
  if (r >= 0 && control) {
    mesh_->handle(fds_.data() + own, fds_.size() - own);
  }
  // After retry_held too: a held candidate it admits may complete its handshake there.
  if (lru_ && mesh_) mesh_->retry_held();
  if (mesh_) after_handshakes();
}

void DirectChannel::wake_leader() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_.fd(), &one, sizeof one);
}

// The leader's loop: drives everyone until its own call is done or past its
// deadline. After the last progress it spins (yielding) for the budget spin_
// chooses before it sleeps in poll, and tells spin_ how long each wait took until
// progress and how long each yield took (Direct::SpinBudget: spinning only while
// waits are short and the core is not wanted by another task).
void DirectChannel::lead(Waiter& w, Lock& lk) {
  // A non-blocking probe: one look at the sockets (and at handshakes, so that
  // probing in a loop connects a source) without waiting.
  if (w.one_pass && mesh_ && !mesh_->complete()) poll_once(Utils::Clock::now(), lk);
  auto since = Utils::Clock::now();  // the last progress: the current wait began then
  auto spin_until = since + spin_.next();
  bool waited = false;  // yielded or polled since the last progress
  for (;;) {
    bool progress = pump();
    if (w.done) {
      // No clock read when the call is done without having waited (the fast path).
      if (progress && waited) spin_.waited(Utils::Clock::now() - since);
      return;
    }
    auto now = Utils::Clock::now();
    if (progress) {
      if (waited) spin_.waited(now - since);
      since = now;
      waited = false;
      spin_until = now + spin_.next();
    }
    if (now >= w.deadline) return;
    if (now < spin_until) {
      // Yielding keeps the spin cheap when processes outnumber cores: a peer that
      // waits hands its core to whoever must run to answer it (sched_yield returns
      // at once when nobody else is runnable). A yield that did not return at once
      // ran another task: spin_ then stops the spin.
      lk.unlock();
      ::sched_yield();
      auto back = Utils::Clock::now();
      lk.lock();
      waited = true;
      if (!spin_.tried(back - now)) spin_until = back;
      continue;
    }
    waited = true;
    auto until = w.deadline;
    if (rewanted_n_) until = std::min(until, mesh_->next_timer());
    for (Waiter* o : waiters_)
      if (!o->done && (!o->connected || !o->later.empty())) {
        until = std::min(until, mesh_->next_timer());
        break;
      }
    poll_once(until, lk, since);
    spin_until = Utils::Clock::now() + spin_.next();
  }
}

// Registers `w`, leads or follows until it is done or its deadline passed, then
// retires it; rethrows its error, or throws its TimeoutError.
void DirectChannel::wait(Waiter& w, Lock& lk) {
  const auto start = Utils::Clock::now();
  waiters_.push_back(&w);
  if (polling_) wake_leader();
  struct Retire {
    DirectChannel* c;
    Waiter* w;
    ~Retire() { c->retire(*w); }
  } retire{this, &w};
  w.done = is_done(w);
  while (!w.done) {
    if (!leading_) {
      leading_ = true;
      struct Handover {
        DirectChannel* c;
        ~Handover() {
          c->leading_ = false;
          if (c->sleepers_) c->cv_.notify_all();
        }
      } handover{this};
      lead(w, lk);
      break;
    }
    if (Utils::Clock::now() >= w.deadline) break;
    ++sleepers_;
    cv_.wait_until(lk, w.deadline);
    --sleepers_;
  }
  if (w.error) std::rethrow_exception(w.error);
  if (!w.done && !w.one_pass) timed_out(w, start);
}

void DirectChannel::timed_out(Waiter& w, Utils::Clock::time_point start) {
  if (!w.asked && !w.connected)
    FMI_THROW(TimeoutError, "Direct: ", w.op, " timed out after ",
              format_duration(Utils::Clock::now() - start), ": ", closing_n_,
              " connections being closed to stay within backends.Direct.max_connections = ",
              cfg_.max_connections, " were not acknowledged by their peers");
  // The caller's deadline shorter than max_timeout (less a margin for the time
  // between the caller computing it and this wait starting): a timeout of this call.
  if (!w.connected)
    mesh_->connect_timed_out(
        w.connecting, start, w.op,
        w.deadline - start + std::chrono::milliseconds(100) >= cfg_.max_timeout);
  auto now = Utils::Clock::now();
  std::string what;
  if (w.probing) {
    what = "no message from";
    for (auto& e : w.wanted)
      what += " peer " + std::to_string(e.src) + " (" + to_string(e.tag) + ")";
  }
  for (auto& t : w.ts) {
    if (t.finished() || t.probe) continue;
    what += std::string(what.empty() ? "" : ", ") + (t.sending ? "send to" : "receive from") +
            " peer " + std::to_string(t.peer) + " (" + to_string(t.tag) + ", " +
            std::to_string(t.done) + " of " + std::to_string(t.total()) + " bytes moved)";
  }
  FMI_THROW(TimeoutError, "Direct: ", w.op, " timed out after ", format_duration(now - start), ": ",
            what);
}

// Takes `w`'s transfers out of the queues. A message half moved leaves its stream
// out of step: the connection is given up (a concurrent call on it then fails
// with PeerError instead of waiting). A half-read header goes back to the stream.
void DirectChannel::retire(Waiter& w) {
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &w));
  if (!w.connecting.empty() && w.asked) mesh_->unwant(w.connecting);
  auto why = [&] {
    return std::string("a ") + w.op + (w.error ? " failed" : " timed out") + " mid-message";
  };
  for (auto& t : w.ts) {
    // A sealed send that sealed anything used sequence numbers the receiver will
    // never see, even with nothing sent yet: the direction is out of step as well.
    const bool half = !t.finished() && (t.done > 0 || t.buf_end > 0);
    if (t.sending) {
      auto& q = out_[t.peer];
      auto it = std::find(q.begin(), q.end(), &t);
      if (it == q.end()) continue;
      if (it == q.begin() && half) mesh_->mark_broken(t.peer, why());
      q.erase(it);
    } else {
      auto& in = in_[t.peer];
      auto it = std::find(in.recvs.begin(), in.recvs.end(), &t);
      if (it != in.recvs.end()) in.recvs.erase(it);
      if (in.reader != &t) continue;
      in.reader = nullptr;
      if (half && !t.checked)
        unread(t.peer, t.hdr, t.done, nullptr, 0);
      else if (half)
        mesh_->mark_broken(t.peer, why());
    }
  }
  // Another thread may now read the stream this one held, or be the first sender.
  if (leading_ && polling_) wake_leader();
}

// Registers one call's transfers and waits for them.
void DirectChannel::transfer(std::span<Transfer> ts, Utils::Deadline deadline, const char* op,
                             Lock& lk) {
  Waiter w{op, deadline};
  w.ts = ts;
  for (auto& t : ts) {
    t.owner = &w;
    last_used_[t.peer] = ++use_clock_;
    prepare(t);
    if (t.sending)
      out_[t.peer].push_back(&t);
    else
      in_[t.peer].recvs.push_back(&t);
  }
  wait(w, lk);
}

// Before its first message of a collective, the channel opens its full mesh, once:
// every peer reaches its first collective on this channel (the communicator picks
// the same channel everywhere), so all pairs are punched together instead of pair
// after pair inside the algorithm (a ring or a tree would otherwise wait for each
// connection in turn), and from then on its data waits need no control plane
// (poll_once). Point-to-point messages keep opening their one connection lazily.
// Two threads that get here at once both wait for the same connections.
//
// Only while the full mesh fits the budget (N-1 <= max_connections): the fastest
// for small communicators. Beyond it each collective opens the partners its
// algorithm uses, on first use or all at once by connect(), and keeps them (the
// least recently used idle one is closed when over budget).
void DirectChannel::open_mesh_for(Tag tag, Utils::Deadline deadline, Lock& lk) {
  if (meshed_ || tag.op == Utils::Operation::send) return;
  if (!lru_) connect_all_locked(deadline, lk);
  meshed_ = true;
}

void DirectChannel::send(Utils::peer_num dest, ConstBytes data, Tag tag, Utils::Deadline deadline) {
  Lock lk(mu_);
  check_peer(dest, "send");
  open_mesh_for(tag, deadline, lk);
  if (dest == ctx_.peer_id) {
    matcher_.park(dest, tag, std::vector<std::byte>(data.begin(), data.end()));
    if (polling_) wake_leader();  // a probe may wait for it
    return;
  }
  const Utils::peer_num peers[] = {dest};
  ensure(peers, deadline, "send", lk);
  Transfer t{true,        dest, mesh_->fd(dest), tag, const_cast<std::byte*>(data.data()),
             data.size(), {}};
  transfer({&t, 1}, deadline, "send", lk);
}

// Fills the header of a send and attaches the connection's keys (if encrypted).
void DirectChannel::prepare(Transfer& t) {
  t.link = mesh_->link(t.peer);
  if (t.sending) {
    put_u64(t.hdr, t.tag.encode());
    put_u64(t.hdr + 8, t.size);
    if (t.link) t.writer.start(t.hdr, t.data, t.size);
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
  Lock lk(mu_);
  check_peer(src, "recv");
  open_mesh_for(tag, deadline, lk);
  if (src == ctx_.peer_id) return self_recv(out, tag);
  if (take_parked(src, out, tag)) return;
  const Utils::peer_num peers[] = {src};
  // While we close the connection from src, the message may still come on it (the
  // receive reads it to its end first, then asks for a new one).
  const Envelope take{src, tag};
  if (!closing_[src] || !closing_[src]->initiator) try {
      ensure(peers, deadline, "recv", lk, &take);
    } catch (const PeerError&) {
      // src sent its message and exited meanwhile: parked by the drain, then the end
      // of its stream broke the pair. The message is still this receive's (below).
      if (!matcher_.peek(src, tag)) throw;
    }
  // While this thread waited for the connection, another one may have parked it.
  if (take_parked(src, out, tag)) return;
  Transfer t{false, src, mesh_->fd(src), tag, out.data(), out.size(), {}};
  transfer({&t, 1}, deadline, "recv", lk);
}

void DirectChannel::sendrecv(Utils::peer_num dest, ConstBytes data, Utils::peer_num src, Bytes out,
                             Tag tag, Utils::Deadline deadline) {
  Lock lk(mu_);
  check_peer(dest, "sendrecv");
  check_peer(src, "sendrecv");
  open_mesh_for(tag, deadline, lk);
  if (dest == ctx_.peer_id || src == ctx_.peer_id) {
    // Sending to ourselves never blocks, so doing the two halves in turn is safe.
    lk.unlock();
    send(dest, data, tag, deadline);
    recv(src, out, tag, deadline);
    return;
  }
  if (take_parked(src, out, tag)) {
    lk.unlock();
    send(dest, data, tag, deadline);
    return;
  }
  // Both connections are wanted at once: in a ring every peer waits for its two
  // neighbours, and each pair must be punched from both of its sides.
  const Utils::peer_num peers[] = {dest, src};
  try {
    const Envelope take{src, tag};
    ensure({peers, closing_[src] && closing_[src]->initiator ? 1u : 2u}, deadline, "sendrecv", lk,
           &take);
  } catch (const PeerError&) {
    // src may have sent its message and exited meanwhile (parked, then the end of
    // its stream broke the pair): the message is taken below, only the send is left.
    if (!matcher_.peek(src, tag)) throw;
  }
  if (take_parked(src, out, tag)) {
    lk.unlock();
    send(dest, data, tag, deadline);
    return;
  }
  Transfer ts[2] = {
      {true, dest, mesh_->fd(dest), tag, const_cast<std::byte*>(data.data()), data.size(), {}},
      {false, src, mesh_->fd(src), tag, out.data(), out.size(), {}}};
  transfer(ts, deadline, "sendrecv", lk);
}

// A probe waits for messages on the connected wanted sources and, meanwhile, for
// the others to connect (lazily, as a receive would, but without waiting for all
// of them first: a source that never sends to us never connects, and must not
// hold up the others' messages). When one comes up, its stream joins the probe.
std::optional<Probed> DirectChannel::probe(std::span<const Envelope> wanted, bool block,
                                           Utils::Deadline deadline) {
  Lock lk(mu_);
  if (wanted.empty()) FMI_THROW(UsageError, "Direct: probe without any envelope");
  for (const auto& e : wanted) check_peer(e.src, "probe");
  std::vector<Utils::peer_num> srcs;
  for (const auto& e : wanted)
    if (e.src != ctx_.peer_id && std::find(srcs.begin(), srcs.end(), e.src) == srcs.end())
      srcs.push_back(e.src);
  for (;;) {
    if (auto hit = probed(wanted)) return hit;
    if (srcs.empty() && !block) return std::nullopt;
    std::vector<Utils::peer_num> later;
    std::vector<Transfer> ts;
    if (mesh_) {
      mesh_->ready(srcs, "probe");  // PeerError for a source that is gone
      ts.reserve(srcs.size());
      for (auto s : srcs) {
        if (mesh_->fd(s) >= 0) {
          ts.push_back({false, s, mesh_->fd(s), wanted.front().tag, nullptr, 0, {}});
          ts.back().probe = true;
          continue;
        }
        later.push_back(s);
        // Punched while this or another thread drives the channel (never unwanted:
        // once the pair is connected nothing more is done for it).
        if (!probe_wanted_[s]) {
          probe_wanted_[s] = true;
          const Utils::peer_num one[] = {s};
          mesh_->want(one);
        }
      }
    }
    Waiter w{"probe", block ? deadline : std::min(deadline, Utils::Clock::now() + kProbePass)};
    w.ts = ts;
    w.wanted = wanted;
    w.probing = true;
    w.later = later;
    w.one_pass = !block;
    w.pass_after = pumps_;
    for (auto& t : ts) {
      t.owner = &w;
      prepare(t);
      in_[t.peer].recvs.push_back(&t);
    }
    wait(w, lk);
    if (w.hit || !block) return w.hit;
  }
}

}  // namespace FMI::Comm
