#include "server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <sstream>

#include "fmi/errors.h"
#include "wire/auth.h"

namespace FMI::Rendezvous {

namespace {
constexpr std::size_t kMaxIn = proto::kHeaderSize + proto::kMaxRequestPayload;

std::string utc_now() {
  char buf[32];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Log lines carry client-chosen strings (comm names, error texts): every byte that
// could end a line, move the cursor or pass for another encoding is written as
// \xNN (and the backslash doubled), so that one line in the log is one event.
std::string escape_for_log(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char ch : s) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch < 0x20 || ch >= 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", unsigned(ch));
      out += hex;
    } else {
      out += char(ch);
    }
  }
  return out;
}

// "1.2.3.4:5" -> "1.2.3.4", "[::1]:5" -> "[::1]".
std::string without_port(const std::string& addr) {
  auto colon = addr.rfind(':');
  return colon == std::string::npos ? addr : addr.substr(0, colon);
}

constexpr auto kLogInterval = std::chrono::seconds(10);

// Sessions of sent tables kept for relay checks, at most (8 bytes each plus the
// map entry: some tens of MiB at worst).
constexpr std::size_t kMaxTableSessions = std::size_t(1) << 20;

// Raises the soft descriptor limit to the hard one: the default soft limit (1024 on
// most systems) is far below --max-connections. Returns the limit in force.
rlim_t raise_nofile_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return rl.rlim_cur;
}
}  // namespace

template <typename... A>
void Server::log(bool important, const A&... a) {
  if (opt_.quiet && !important) return;
  std::ostringstream os;
  os << utc_now() << " fmi-rendezvous: ";
  std::ostringstream msg;
  (msg << ... << a);
  os << escape_for_log(msg.str()) << '\n';
  std::cerr << os.str() << std::flush;
}

template <typename... A>
void Server::log_limited(const std::string& key, const A&... a) {
  auto now = Clock::now();
  auto [it, fresh] = log_limits_.try_emplace(key);
  Limited& l = it->second;
  if (!fresh && now - l.last < kLogInterval) {
    ++l.dropped;
    return;
  }
  if (l.dropped)
    log(true, a..., " (", l.dropped, " more like this in the last ",
        std::chrono::duration_cast<std::chrono::seconds>(now - l.last).count(), " s)");
  else
    log(true, a...);
  l.last = now;
  l.dropped = 0;
}

Server::Server(Options opt) : opt_(std::move(opt)) {
  rlim_t fds = raise_nofile_limit();
  auto eps = Wire::resolve(opt_.bind, opt_.port, Clock::now() + std::chrono::seconds(5));
  const proto::Endpoint& ep = eps.front();
  listener_ = Wire::make_socket(ep.v6 ? AF_INET6 : AF_INET);
  int one = 1;
  // SO_REUSEADDR only (not REUSEPORT): a restarted server can rebind at once, but
  // two servers can never silently share a port.
  ::setsockopt(listener_.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss;
  unsigned len = ep.to_sockaddr(ss);
  if (::bind(listener_.fd(), reinterpret_cast<sockaddr*>(&ss), len) < 0)
    FMI_THROW(ChannelError, "fmi-rendezvous: cannot bind ", ep.str(), ": ",
              Wire::errno_text(errno));
  // Hundreds of functions start at once and all register at once: a backlog of
  // their number (the kernel caps it at net.core.somaxconn) instead of SYNs
  // dropped and retransmitted seconds later.
  if (::listen(listener_.fd(), int(std::min<std::size_t>(opt_.max_connections, 65535))) < 0)
    FMI_THROW(ChannelError, "fmi-rendezvous: listen failed: ", Wire::errno_text(errno));
  port_ = Wire::local_endpoint(listener_.fd()).port;

  epoll_ = Wire::Socket(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) FMI_THROW(ChannelError, "fmi-rendezvous: epoll_create1: ", Wire::errno_text(errno));

  // Signals arrive as readable events of the loop, so shutdown happens between
  // events, never in the middle of one.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) < 0)
    FMI_THROW(ChannelError, "fmi-rendezvous: sigprocmask: ", Wire::errno_text(errno));
  signal_ = Wire::Socket(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_) FMI_THROW(ChannelError, "fmi-rendezvous: signalfd: ", Wire::errno_text(errno));
  ::signal(SIGPIPE, SIG_IGN);

  for (int fd : {listener_.fd(), signal_.fd()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_.fd(), EPOLL_CTL_ADD, fd, &ev) < 0)
      FMI_THROW(ChannelError, "fmi-rendezvous: epoll_ctl: ", Wire::errno_text(errno));
  }
  proto::Endpoint shown = ep;
  shown.port = port_;
  // The readiness line has a fixed form (no timestamp) for scripts that wait for it.
  std::cerr << "fmi-rendezvous listening on " << shown.str() << std::endl;
  if (fds != 0 && fds != RLIM_INFINITY && opt_.max_connections + 16 > fds)
    log(true, "warning: --max-connections ", opt_.max_connections,
        " is above the descriptor limit ", fds,
        " (raise `ulimit -Hn`); accept backs off when descriptors run out");
  log(true, opt_.secret.empty()
                ? "no shared secret: any client can register (see docs/security.md)"
                : "shared secret set: registrations and relay requests must prove it");
}

Server::~Server() = default;

void Server::run() {
  std::vector<epoll_event> events(256);
  auto next_sweep = Clock::now();
  while (!stopping_) {
    if (accept_paused_until_ != Clock::time_point{} && Clock::now() >= accept_paused_until_) {
      accept_paused_until_ = {};
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = listener_.fd();
      ::epoll_ctl(epoll_.fd(), EPOLL_CTL_ADD, listener_.fd(), &ev);
    }
    int wait_ms = 250;
    if (accept_paused_until_ != Clock::time_point{})
      wait_ms = int(std::clamp<long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(accept_paused_until_ - Clock::now())
                  .count() +
              1,
          1, 250));
    int n = ::epoll_wait(epoll_.fd(), events.data(), int(events.size()), wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      FMI_THROW(ChannelError, "fmi-rendezvous: epoll_wait: ", Wire::errno_text(errno));
    }
    for (int i = 0; i < n && !stopping_; ++i) {
      int fd = int(std::uint32_t(events[i].data.u64));
      if (fd == listener_.fd()) {
        accept_all();
        continue;
      }
      if (fd == signal_.fd()) {
        signalfd_siginfo si{};
        if (::read(fd, &si, sizeof si) == sizeof si)
          log(true, "received ", strsignal(int(si.ssi_signo)), ", shutting down");
        stopping_ = true;
        break;
      }
      auto it = conns_.find(fd);
      // Closed earlier in this batch, or closed and its descriptor reused by an
      // accept earlier in this batch: the event was the old connection's.
      if (it == conns_.end() || it->second->id != std::uint32_t(events[i].data.u64 >> 32)) continue;
      Conn& c = *it->second;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
        on_readable(c);
        if (!conns_.count(fd)) continue;
      }
      if (events[i].events & EPOLLOUT) on_writable(c);
      // An error, or a hang-up outside a relay (nothing more can come or go): close,
      // whatever the handlers above made of it. A relayed connection that hung up may
      // still hold data for its partner; update_events takes it out of the epoll set
      // while it waits (epoll reports EPOLLHUP on every wait, whatever it is asked).
      if (auto still = conns_.find(fd);
          still != conns_.end() &&
          ((events[i].events & EPOLLERR) ||
           ((events[i].events & EPOLLHUP) && still->second->state != State::relaying)))
        close_conn(fd, events[i].events & EPOLLERR ? "connection error" : "connection hung up");
    }
    if (Clock::now() >= next_sweep) {
      sweep();
      next_sweep = Clock::now() + std::chrono::milliseconds(250);
    }
  }
  std::size_t waiting = 0;
  for (auto& [name, g] : groups_) waiting += g.count();
  log(true, "stopped: closing ", conns_.size(), " connections (", waiting, " registrations of ",
      groups_.size(), " incomplete communicators dropped)");
  conns_.clear();
  groups_.clear();
}

void Server::accept_all() {
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(listener_.fd(), reinterpret_cast<sockaddr*>(&ss), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      pause_accepting(errno);
      return;
    }
    auto c = std::make_unique<Conn>();
    c->sock = Wire::Socket(fd);
    c->public_ep = proto::Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
    c->addr = c->public_ep.str();
    c->ip = without_port(c->addr);
    if (conns_.size() >= opt_.max_connections) {
      refuse(fd, "max-connections",
             "refusing connections: " + std::to_string(conns_.size()) +
                 " open (--max-connections " + std::to_string(opt_.max_connections) + "), e.g. " +
                 c->addr,
             "server overloaded");
      continue;  // the Socket closes it
    }
    if (opt_.max_per_address != 0) {
      auto pa = per_address_.find(c->ip);
      if (pa != per_address_.end() && pa->second >= opt_.max_per_address) {
        refuse(fd, "address " + c->ip,
               "refusing connections from " + c->ip + ": " + std::to_string(pa->second) +
                   " open (--max-per-address " + std::to_string(opt_.max_per_address) + ")",
               "too many connections from your address");
        continue;
      }
    }
    c->deadline = Clock::now() + opt_.hello_timeout;
    c->id = ++next_conn_id_;
    if (c->id == 0) c->id = ++next_conn_id_;  // 0 marks the listener's and signal's events
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = event_key(*c);
    if (::epoll_ctl(epoll_.fd(), EPOLL_CTL_ADD, fd, &ev) < 0) {
      log(true, "epoll_ctl for ", c->addr, " failed: ", Wire::errno_text(errno));
      continue;
    }
    // Every connection starts with a CHALLENGE: a client with a secret needs its
    // nonce to make a proof that is good for this connection only (no replay), and
    // learns whether this server wants one at all.
    proto::Challenge ch;
    ch.auth = !opt_.secret.empty();
    if (ch.auth) ch.nonce = Wire::auth::random_nonce();
    c->nonce = ch.nonce;
    Conn& conn = *conns_.emplace(fd, std::move(c)).first->second;
    ++per_address_[conn.ip];
    queue(conn, ch);
  }
}

void Server::refuse(int fd, const std::string& key, const std::string& text,
                    const std::string& reply) {
  log_limited(key, text);
  auto frame = proto::encode(proto::ErrorMsg{proto::ErrorCode::overloaded, reply});
  (void)!::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// Out of descriptors (EMFILE/ENFILE) or kernel memory: the pending connection stays
// in the backlog and the listener stays readable, so accepting again at once would
// spin. The listener leaves the epoll set for a moment instead; closing connections
// (timeouts, finished registrations) frees descriptors meanwhile.
void Server::pause_accepting(int err) {
  ::epoll_ctl(epoll_.fd(), EPOLL_CTL_DEL, listener_.fd(), nullptr);
  accept_paused_until_ = Clock::now() + opt_.accept_backoff;
  log_limited("accept", "accept failed: ", Wire::errno_text(err), " with ", conns_.size(),
              " connections open; not accepting for ", opt_.accept_backoff.count(), " ms");
}

void Server::on_readable(Conn& c) {
  if (c.state == State::relaying) return relay_read(c);
  int fd = c.sock.fd();
  std::byte buf[4096];
  // A bounded number of reads per event: a client that floods cannot starve the
  // others (the level-triggered epoll reports it again next round).
  for (int round = 0; round < 16; ++round) {
    // Input is bounded: a request never exceeds one maximal frame; once that much is
    // buffered without a complete frame the parser has already rejected it.
    std::size_t room = c.state == State::awaiting_register ? kMaxIn - c.in.size() : sizeof buf;
    if (room == 0) room = 1;  // lets us notice EOF; the parser rejects the overflow
    ssize_t r = ::recv(fd, buf, std::min(room, sizeof buf), 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      close_conn(fd, "read error: " + Wire::errno_text(errno));
      return;
    }
    if (r == 0) {
      if (c.state == State::relay_waiting)
        close_conn(fd, "relay request withdrawn");
      else if (c.state == State::registered)
        close_conn(fd, "peer " + std::to_string(c.peer_id) + " of comm '" + c.comm +
                           "' disconnected before every peer registered");
      else if (c.state == State::awaiting_register)
        close_conn(
            fd, c.in.empty() ? "closed without registering" : "closed in the middle of a request");
      else
        close_conn(fd, "");
      return;
    }
    if (c.state != State::awaiting_register) {
      if (c.state == State::registered || c.state == State::relay_waiting) {
        fail(c, proto::ErrorCode::bad_request, "unexpected data after the request");
        return;
      }
      continue;  // closing: discard
    }
    c.in.insert(c.in.end(), buf, buf + r);
    try {
      std::size_t used = 0;
      auto hdr_ok = c.in.size() >= proto::kHeaderSize;
      if (hdr_ok) {
        auto h = proto::decode_header(c.in, proto::kMaxRequestPayload);
        if (h.version != proto::kVersion) {
          fail(c, proto::ErrorCode::bad_version,
               "unsupported protocol version " + std::to_string(h.version) +
                   ", this server speaks version " + std::to_string(proto::kVersion));
          return;
        }
      }
      auto m = proto::try_decode(c.in, proto::kMaxRequestPayload, used);
      if (!m) continue;
      if (used != c.in.size()) {
        fail(c, proto::ErrorCode::bad_request, "unexpected data after the request");
        return;
      }
      c.in.clear();
      handle(c, *m);
      return;
    } catch (const ChannelError& e) {
      log(false, "dropping ", c.addr, ": ", e.what());
      close_conn(fd, "");
      return;
    }
  }
}

void Server::handle(Conn& c, const proto::Message& m) {
  if (auto* r = std::get_if<proto::Register>(&m)) {
    handle_register(c, *r);
    return;
  }
  if (auto* r = std::get_if<proto::Relay>(&m)) {
    handle_relay(c, *r);
    return;
  }
  fail(c, proto::ErrorCode::bad_request,
       "expected REGISTER or RELAY, got message type " + std::to_string(m.index()));
}

bool Server::authenticate(Conn& c, const std::optional<proto::Proof>& proof,
                          const proto::Mac& expected, const std::string& who) {
  if (opt_.secret.empty()) return true;
  if (proof && Wire::auth::equal(proof->mac, expected)) return true;
  fail(c, proto::ErrorCode::auth_failed,
       who + ": " +
           (proof ? "wrong proof of the shared secret (a different secret?)"
                  : "no proof of the shared secret (this server requires FMI_SECRET or "
                    "backends.Direct.secret)"));
  return false;
}

void Server::handle_register(Conn& c, const proto::Register& r) {
  // Before anything touches the tables: an unauthenticated client can neither
  // squat a peer id nor learn anybody's address.
  std::string who = "comm '" + r.comm + "' peer " + std::to_string(r.peer_id) + " from " + c.addr;
  if (!opt_.secret.empty() &&
      !authenticate(c, r.proof,
                    r.proof ? Wire::auth::register_mac(opt_.secret, r, c.nonce) : proto::Mac{},
                    who))
    return;
  auto [it, created] = groups_.try_emplace(r.comm);
  Group& g = it->second;
  if (created) {
    g.num_peers = r.num_peers;
  } else if (g.num_peers != r.num_peers) {
    fail(c, proto::ErrorCode::num_peers_mismatch,
         "comm '" + r.comm + "' has " + std::to_string(g.num_peers) + " peers, peer " +
             std::to_string(r.peer_id) + " registered with num_peers " +
             std::to_string(r.num_peers));
    return;
  }
  // A live registration of the same (comm, peer id) is a restarted function: the
  // newer one wins and the old connection is told so.
  if (auto om = g.members.find(r.peer_id); om != g.members.end()) {
    Conn& o = *conns_.at(om->second.fd);
    // Taken out of the group here (not by fail) so that the group never empties.
    o.state = State::closing;
    g.members.erase(om);
    log(true, "comm '", r.comm, "' peer ", r.peer_id, ": registration from ", o.addr,
        " replaced by ", c.addr);
    fail(o, proto::ErrorCode::replaced,
         "peer " + std::to_string(r.peer_id) + " of comm '" + r.comm + "' registered again from " +
             c.addr);
  }
  g.members[r.peer_id] =
      Member{c.sock.fd(), proto::PeerEntry{c.public_ep, r.private_ep, r.session}};
  c.state = State::registered;
  c.comm = r.comm;
  c.peer_id = r.peer_id;
  c.deadline = Clock::now() + opt_.registration_ttl;
  log(false, "register comm '", r.comm, "' peer ", r.peer_id, "/", r.num_peers, " public ", c.addr,
      " private ", r.private_ep.str(), " (", g.count(), " of ", g.num_peers, ")");
  int fd = c.sock.fd();
  std::string comm = r.comm;
  queue(c, proto::Registered{c.public_ep});  // may close c (and shrink the group)
  if (!conns_.count(fd)) return;
  it = groups_.find(comm);
  if (it == groups_.end() || it->second.count() < it->second.num_peers) return;

  proto::Table table;
  std::vector<int> members;
  SentTable sent;
  for (auto& [id, m] : it->second.members) {
    table.peers.push_back(m.entry);
    sent.sessions.push_back(m.entry.session);
    members.push_back(m.fd);
  }
  groups_.erase(it);
  // The pairs of this table, and only they, may ask for a relay from now on.
  sent.until = Clock::now() + opt_.relay_window;
  table_sessions_ += sent.sessions.size();
  table_order_.emplace_back(sent.until, comm);
  if (auto old = sent_tables_.find(comm); old != sent_tables_.end())
    table_sessions_ -= old->second.sessions.size();
  sent_tables_[comm] = std::move(sent);
  // Bounded whatever the rate of completed registrations (one-peer comms are cheap
  // to make): the oldest tables go first.
  while (table_sessions_ > kMaxTableSessions && !table_order_.empty()) forget_oldest_table();
  // Encoded once: every member gets the same bytes (O(N) work for the table, not
  // O(N^2), and one buffer in memory however many members are still reading it).
  auto frame = std::make_shared<const std::vector<std::byte>>(proto::encode(table));
  for (int fd : members) {
    auto ci = conns_.find(fd);
    if (ci == conns_.end()) continue;
    Conn& m = *ci->second;
    m.state = State::closing;
    queue_shared(m, frame);
  }
  log(false, "comm '", comm, "' complete: endpoint table sent to ", members.size(), " peers");
}

// ", missing: 3, 17, 40 (and 12 more)" for the peers of `g` that did not register.
std::string Server::missing_peers(const Group& g) {
  constexpr unsigned kNamed = 10;
  std::string out;
  unsigned named = 0, more = 0;
  auto next = g.members.begin();
  for (std::uint32_t p = 0; p < g.num_peers; ++p) {
    if (next != g.members.end() && next->first == p) {
      ++next;
      continue;
    }
    if (named == kNamed) {
      ++more;
      continue;
    }
    out += (named++ == 0 ? ", missing: " : ", ") + std::to_string(p);
  }
  if (more > 0) out += " (and " + std::to_string(more) + " more)";
  return out;
}

namespace {
// Bytes forwarded but not yet written to the other side, per direction: reading
// pauses above this, so a relay holds at most this much per direction.
constexpr std::size_t kRelayBuffer = 1 << 20;
// Most bytes one recv moves into a relay buffer.
constexpr std::size_t kRelayChunk = 256 * 1024;
// A drained relay buffer holding more capacity than this gives it back: a burst
// must not pin its peak for the relay's lifetime.
constexpr std::size_t kRelayKeep = 64 * 1024;

std::string relay_key(const std::string& comm, std::uint32_t from, std::uint32_t to,
                      std::uint64_t fs, std::uint64_t ts) {
  return "'" + comm + "' " + std::to_string(from) + "(" + std::to_string(fs) + ")->" +
         std::to_string(to) + "(" + std::to_string(ts) + ")";
}
}  // namespace

// Relay for pairs behind NATs that cannot be punched: both peers open a connection
// and send RELAY naming each other; the server pairs the two and forwards bytes
// both ways (the peers then run their normal handshake through it).
void Server::handle_relay(Conn& c, const proto::Relay& r) {
  if (!opt_.secret.empty() &&
      !authenticate(c, r.proof,
                    r.proof ? Wire::auth::relay_mac(opt_.secret, r, c.nonce) : proto::Mac{},
                    "relay of comm '" + r.comm + "' " + std::to_string(r.from) + "->" +
                        std::to_string(r.to) + " from " + c.addr))
    return;
  // Only pairs of a table this server sent, with the sessions it sent: a stranger
  // cannot use the server as a free pipe between two connections of its own choice.
  auto st = sent_tables_.find(r.comm);
  const char* why = nullptr;
  if (st == sent_tables_.end() || Clock::now() >= st->second.until)
    why = "no endpoint table of this comm was sent (or it is too old)";
  else if (r.from == r.to || r.from >= st->second.sessions.size() ||
           r.to >= st->second.sessions.size())
    why = "the peer ids are not a pair of the comm's table";
  else if (st->second.sessions[r.from] != r.from_session ||
           st->second.sessions[r.to] != r.to_session)
    why = "the sessions are not those of the comm's table";
  if (why) {
    log_limited("relay " + c.ip, "refusing relay of comm '", r.comm, "' ", r.from, "->", r.to,
                " from ", c.addr, ": ", why);
    leave_group(c);
    c.state = State::closing;
    queue(c, proto::ErrorMsg{proto::ErrorCode::bad_request, std::string("relay refused: ") + why});
    return;
  }
  std::string mine = relay_key(r.comm, r.from, r.to, r.from_session, r.to_session);
  std::string theirs = relay_key(r.comm, r.to, r.from, r.to_session, r.from_session);
  if (auto old = relay_waiting_.find(mine); old != relay_waiting_.end()) {
    int ofd = old->second;
    relay_waiting_.erase(old);
    if (auto oc = conns_.find(ofd); oc != conns_.end()) {
      oc->second->state = State::closing;
      fail(*oc->second, proto::ErrorCode::replaced, "relay " + mine + " requested again");
    }
  }
  c.relay_key = mine;
  auto it = relay_waiting_.find(theirs);
  if (it == relay_waiting_.end()) {
    relay_waiting_.emplace(mine, c.sock.fd());
    c.state = State::relay_waiting;
    c.deadline = Clock::now() + opt_.registration_ttl;
    log(false, "relay ", mine, " requested by ", c.addr, ", waiting for the other side");
    return;
  }
  Conn& o = *conns_.at(it->second);
  relay_waiting_.erase(it);
  int one = 1;
  for (Conn* x : {&c, &o}) {
    x->state = State::relaying;
    x->deadline = Clock::time_point::max();
    x->last_moved = Clock::now();
    ::setsockopt(x->sock.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  c.partner = o.sock.fd();
  o.partner = c.sock.fd();
  log(true, "relaying ", mine, " between ", c.addr, " and ", o.addr);
  int ofd = o.sock.fd();
  auto ready = proto::encode(proto::RelayReady{});
  c.out.insert(c.out.end(), ready.begin(), ready.end());
  o.out.insert(o.out.end(), ready.begin(), ready.end());
  on_writable(c);
  if (auto oi = conns_.find(ofd); oi != conns_.end()) on_writable(*oi->second);
}

void Server::relay_read(Conn& c) {
  auto pi = conns_.find(c.partner);
  if (pi == conns_.end()) {
    close_conn(c.sock.fd(), "relay partner gone");
    return;
  }
  Conn& o = *pi->second;
  int fd = c.sock.fd();
  while (!c.read_closed) {
    std::size_t pending = o.out.size() - o.out_off;
    if (pending >= kRelayBuffer) {
      c.paused = true;  // resumed by relay_flushed once the partner drained
      break;
    }
    // Read into one scratch buffer shared by all relays and append only what
    // arrived: resizing `o.out` by the whole window left every relay side holding
    // 256 KiB of capacity for its lifetime (681 MiB of server memory at 64 NATed
    // functions), although most relayed messages are a few bytes.
    if (relay_scratch_.empty()) relay_scratch_.resize(kRelayChunk);
    std::size_t room = std::min(kRelayBuffer - pending, kRelayChunk);
    ssize_t r = ::recv(fd, relay_scratch_.data(), room, 0);
    if (r > 0) o.out.insert(o.out.end(), relay_scratch_.begin(), relay_scratch_.begin() + r);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      close_conn(fd, "relay read error: " + Wire::errno_text(errno));
      return;
    }
    if (r == 0) {
      c.read_closed = true;
      break;
    }
    c.relayed += std::uint64_t(r);
    c.last_moved = o.last_moved = Clock::now();
    if (opt_.relay_max_bytes != 0 && c.relayed + o.relayed > opt_.relay_max_bytes) {
      log(true, "relay ", c.relay_key, " between ", c.addr, " and ", o.addr, " closed: more than ",
          opt_.relay_max_bytes, " bytes (--relay-max-bytes)");
      close_conn(fd, "");
      return;
    }
  }
  update_events(c);
  on_writable(o);  // forwards what arrived; may close both
}

void Server::relay_flushed(Conn& c) {
  int fd = c.sock.fd();
  if (c.out_off == c.out.size()) {
    if (c.out.capacity() > kRelayKeep)
      std::vector<std::byte>().swap(c.out);
    else
      c.out.clear();
    c.out_off = 0;
  } else if (c.out_off > kRelayBuffer) {
    c.out.erase(c.out.begin(), c.out.begin() + std::ptrdiff_t(c.out_off));
    c.out_off = 0;
  }
  auto pi = conns_.find(c.partner);
  if (pi == conns_.end()) {
    // The other side is gone: deliver what is buffered, then close.
    if (c.out.empty())
      close_conn(fd, "");
    else
      update_events(c);
    return;
  }
  Conn& o = *pi->second;
  if (o.paused && c.out.size() - c.out_off < kRelayBuffer) {
    o.paused = false;
    update_events(o);
  }
  // A side that finished sending: pass the end of stream on once its data is out.
  if (o.read_closed && c.out.empty()) ::shutdown(fd, SHUT_WR);
  if (c.read_closed && o.read_closed && c.out.empty() && o.out.empty()) {
    close_conn(fd, "");
    return;
  }
  update_events(c);
}

void Server::queue(Conn& c, const proto::Message& m) {
  auto frame = proto::encode(m);
  c.out.insert(c.out.end(), frame.begin(), frame.end());
  if (c.state == State::closing) c.deadline = Clock::now() + opt_.write_timeout;
  on_writable(c);
}

void Server::queue_shared(Conn& c, std::shared_ptr<const std::vector<std::byte>> frame) {
  // The table is the last message a connection gets: one shared frame at most.
  c.shared = std::move(frame);
  c.shared_off = 0;
  if (c.state == State::closing) c.deadline = Clock::now() + opt_.write_timeout;
  on_writable(c);
}

bool Server::write_some(Conn& c, const std::vector<std::byte>& buf, std::size_t& off) {
  int fd = c.sock.fd();
  while (off < buf.size()) {
    ssize_t w = ::send(fd, buf.data() + off, buf.size() - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      close_conn(fd, "write error: " + Wire::errno_text(errno));
      return false;
    }
    off += std::size_t(w);
    if (c.state == State::relaying) c.last_moved = Clock::now();
  }
  return true;
}

void Server::on_writable(Conn& c) {
  int fd = c.sock.fd();
  if (!write_some(c, c.out, c.out_off)) return;
  if (c.state == State::relaying) {
    relay_flushed(c);
    return;
  }
  if (c.out_off == c.out.size()) {
    c.out.clear();
    c.out_off = 0;
    if (c.shared) {
      if (!write_some(c, *c.shared, c.shared_off)) return;
      if (c.shared_off == c.shared->size()) c.shared.reset();
    }
    if (!c.shared && c.state == State::closing) {
      // Everything this client will ever get has been sent.
      close_conn(fd, "");
      return;
    }
  }
  update_events(c);
}

void Server::update_events(Conn& c) {
  bool want = c.out_off < c.out.size() || c.shared;
  bool read = !c.paused && !c.read_closed;
  if (want == c.want_write && read == c.want_read) return;
  c.want_write = want;
  c.want_read = read;
  // Wanting nothing (a relay side paused or finished reading, with nothing to
  // write): out of the epoll set, because EPOLLHUP/EPOLLERR cannot be masked and a
  // half-shut socket would wake the loop on every wait (100% CPU).
  if (!read && !want) {
    if (c.in_epoll) ::epoll_ctl(epoll_.fd(), EPOLL_CTL_DEL, c.sock.fd(), nullptr);
    c.in_epoll = false;
    return;
  }
  epoll_event ev{};
  ev.events = (read ? EPOLLIN | EPOLLRDHUP : 0u) | (want ? EPOLLOUT : 0u);
  ev.data.u64 = event_key(c);
  ::epoll_ctl(epoll_.fd(), c.in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.sock.fd(), &ev);
  c.in_epoll = true;
}

void Server::fail(Conn& c, proto::ErrorCode code, const std::string& text) {
  log(true, "error to ", c.addr, ": ", proto::to_string(code), ": ", text);
  leave_group(c);
  c.state = State::closing;
  queue(c, proto::ErrorMsg{code, text});
}

void Server::leave_group(Conn& c) {
  if (c.state == State::relay_waiting) {
    auto it = relay_waiting_.find(c.relay_key);
    if (it != relay_waiting_.end() && it->second == c.sock.fd()) relay_waiting_.erase(it);
    c.state = State::closing;
    return;
  }
  if (c.state != State::registered) return;
  auto it = groups_.find(c.comm);
  if (it != groups_.end()) {
    auto m = it->second.members.find(c.peer_id);
    if (m != it->second.members.end() && m->second.fd == c.sock.fd()) {
      it->second.members.erase(m);
      if (it->second.members.empty()) groups_.erase(it);
    }
  }
  c.state = State::closing;
}

// The epoll payload of a connection: its descriptor and its id (see Conn::id).
std::uint64_t Server::event_key(const Conn& c) {
  return std::uint64_t(c.id) << 32 | std::uint32_t(c.sock.fd());
}

void Server::close_conn(int fd, const std::string& why) {
  auto it = conns_.find(fd);
  if (it == conns_.end()) return;
  Conn& c = *it->second;
  if (!why.empty()) log(false, "closing ", c.addr, ": ", why);
  leave_group(c);
  int partner = c.state == State::relaying ? c.partner : -1;
  if (partner >= 0)
    log(false, "relay ", c.relay_key, " ended after ", c.relayed, " bytes from ", c.addr);
  ::epoll_ctl(epoll_.fd(), EPOLL_CTL_DEL, fd, nullptr);
  if (auto pa = per_address_.find(c.ip); pa != per_address_.end() && --pa->second == 0)
    per_address_.erase(pa);
  conns_.erase(it);
  if (partner >= 0) {
    auto pi = conns_.find(partner);
    if (pi != conns_.end()) {
      pi->second->partner = -1;
      close_conn(partner, "relay partner gone");
    }
  }
}

void Server::forget_oldest_table() {
  auto [until, comm] = std::move(table_order_.front());
  table_order_.pop_front();
  // A comm sent again later has a later `until`: that newer table stays.
  auto it = sent_tables_.find(comm);
  if (it == sent_tables_.end() || it->second.until != until) return;
  table_sessions_ -= it->second.sessions.size();
  sent_tables_.erase(it);
}

void Server::sweep() {
  auto now = Clock::now();
  std::vector<int> late;
  for (auto& [fd, c] : conns_) {
    if (now >= c->deadline) late.push_back(fd);
    if (c->state == State::relaying) {
      auto p = conns_.find(c->partner);
      auto moved =
          std::max(c->last_moved, p == conns_.end() ? c->last_moved : p->second->last_moved);
      if (now - moved >= opt_.relay_idle) late.push_back(fd);
    }
  }
  while (!table_order_.empty() && now >= table_order_.front().first) forget_oldest_table();
  for (auto it = log_limits_.begin(); it != log_limits_.end();)
    it = now - it->second.last >= 6 * kLogInterval && it->second.dropped == 0
             ? log_limits_.erase(it)
             : std::next(it);
  // Which peers a comm still waits for, once per comm and sweep: every member of
  // a comm that did not complete expires in the same sweep, and each is told.
  std::map<std::string, std::string> waiting_for;
  for (int fd : late) {
    auto it = conns_.find(fd);
    if (it == conns_.end()) continue;
    Conn& c = *it->second;
    switch (c.state) {
      case State::awaiting_register:
        close_conn(fd, "no complete REGISTER within " + std::to_string(opt_.hello_timeout.count()) +
                           " ms (slow or half-open connection)");
        break;
      case State::registered: {
        auto g = groups_.find(c.comm);
        std::string have = g == groups_.end() ? "?" : std::to_string(g->second.count());
        std::string want = g == groups_.end() ? "?" : std::to_string(g->second.num_peers);
        auto [w, fresh] = waiting_for.try_emplace(c.comm);
        if (fresh && g != groups_.end()) w->second = missing_peers(g->second);
        fail(c, proto::ErrorCode::expired,
             "registration of peer " + std::to_string(c.peer_id) + " of comm '" + c.comm +
                 "' expired after " + std::to_string(opt_.registration_ttl.count()) +
                 " ms: " + have + " of " + want + " peers registered" + w->second);
        break;
      }
      case State::relay_waiting:
        fail(c, proto::ErrorCode::expired,
             "relay " + c.relay_key + ": the other peer did not ask for it within " +
                 std::to_string(opt_.registration_ttl.count()) + " ms");
        break;
      case State::relaying:
        log(true, "relay ", c.relay_key, " from ", c.addr, " closed: idle for ",
            opt_.relay_idle.count(), " ms (--relay-idle-ms)");
        close_conn(fd, "");
        break;
      case State::closing:
        close_conn(fd,
                   "reply not read within " + std::to_string(opt_.write_timeout.count()) + " ms");
        break;
    }
  }
}

}  // namespace FMI::Rendezvous
