#include "channels/direct/mesh.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <thread>

#include "fmi/errors.h"

namespace FMI::Direct {

namespace {
// An attempt whose SYN got no answer is abandoned after this long and retried with
// a fresh socket: behind a NAT the first SYNs of a pair are dropped until the other
// side's SYN has opened its NAT, and the kernel's own retransmission (1 s, 3 s, ...)
// would be far too slow.
// The limit (PeerState::attempt_timeout, first 250 ms) doubles per attempt, up to
// 2 s, so that a path with a long round trip still gets its SYN-ACK back in time.
constexpr auto kMaxAttemptTimeout = std::chrono::milliseconds(2000);
constexpr auto kMaxBackoff = std::chrono::milliseconds(200);
// A candidate that does not finish its handshake in time is dropped (it is not
// an FMI peer, or a peer that will never answer).
constexpr auto kHandshakeTimeout = std::chrono::seconds(30);
constexpr std::size_t kMaxCandidatesPerPeer = 4;

int poll_until(std::vector<pollfd>& fds, Deadline until) {
  auto left = until - Clock::now();
  if (left < Clock::duration::zero()) left = Clock::duration::zero();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  timespec ts{time_t(ns / 1000000000), long(ns % 1000000000)};
  int r = ::ppoll(fds.data(), fds.size(), &ts, nullptr);
  if (r < 0 && errno != EINTR)
    FMI_THROW(ChannelError, "Direct: poll failed: ", errno_text(errno));
  return r;
}

bool send_frame(int fd, const proto::Message& m) {
  auto frame = proto::encode(m);
  // Handshake frames are tens of bytes on a fresh connection whose send buffer is
  // empty: a short write means the connection is unusable, never "try later".
  ssize_t w;
  do {
    w = ::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (w < 0 && errno == EINTR);
  return w == ssize_t(frame.size());
}

std::string ms_text(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}
}  // namespace

Mesh::Mesh(MeshOptions opt, Deadline deadline) : opt_(std::move(opt)) {
  peers_.resize(opt_.num_peers);
  std::random_device rd;
  session_ = (std::uint64_t(rd()) << 32) ^ rd();

  auto eps = resolve(opt_.server_host, opt_.server_port, deadline);
  std::string last;
  auto start = Clock::now();
  // A refused connection is retried until the deadline: functions may start a
  // moment before the server (a launcher starting both at once).
  for (;;) {
    if (try_register(eps, deadline, last)) return;
    if (Clock::now() + std::chrono::milliseconds(100) >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FMI_THROW(ChannelError, "Direct: cannot connect to rendezvous server ", opt_.server_host, ":",
            opt_.server_port, " (config direct.host/direct.port) within ",
            ms_text(Clock::now() - start), ": ", last);
}

bool Mesh::try_register(const std::vector<proto::Endpoint>& eps, Deadline deadline,
                        std::string& last) {
  for (const auto& ep : eps) {
    server_ep_ = ep;
    int family = ep.v6 ? AF_INET6 : AF_INET;
    // The listener takes the port first (port 0: the kernel picks a free one); the
    // server connection then binds the same port.
    bind_addr_ = proto::Endpoint{};
    bind_addr_.v6 = ep.v6;
    Socket l = make_socket(family);
    set_reuse(l.fd());
    sockaddr_storage ss;
    unsigned len = bind_addr_.to_sockaddr(ss);
    if (::bind(l.fd(), reinterpret_cast<sockaddr*>(&ss), len) < 0 ||
        ::listen(l.fd(), int(std::min<std::uint32_t>(4 * opt_.num_peers + 64, 4096))) < 0)
      FMI_THROW(ChannelError, "Direct: cannot bind/listen on a local port: ", errno_text(errno));
    bind_addr_.port = local_endpoint(l.fd()).port;

    Socket s = make_socket(family);
    set_reuse(s.fd());
    len = bind_addr_.to_sockaddr(ss);
    if (::bind(s.fd(), reinterpret_cast<sockaddr*>(&ss), len) < 0)
      FMI_THROW(ChannelError, "Direct: cannot bind local port ", bind_addr_.port, ": ",
                errno_text(errno));
    len = ep.to_sockaddr(ss);
    int rc;
    do {
      rc = ::connect(s.fd(), reinterpret_cast<sockaddr*>(&ss), len);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0 && errno != EINPROGRESS) {
      last = errno_text(errno);
      continue;
    }
    std::vector<pollfd> p{{s.fd(), POLLOUT, 0}};
    while (rc < 0) {
      if (Clock::now() >= deadline)
        FMI_THROW(TimeoutError, "Direct: connecting to rendezvous server ", server_str(),
                  " did not finish before the deadline");
      if (poll_until(p, deadline) > 0) {
        int err = 0;
        socklen_t el = sizeof err;
        ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0) {
          last = errno_text(err);
          break;
        }
        rc = 0;
      }
    }
    if (rc < 0) continue;
    local_ = local_endpoint(s.fd());
    proto::Register reg{opt_.comm, opt_.peer_id, opt_.num_peers, session_, local_};
    bool server_auth = false;
    if (!opt_.secret.empty()) {
      // The proof covers the server's nonce for this connection, so it waits for
      // the CHALLENGE (one round trip, only with a secret).
      auto m = read_one_frame(s.fd(), deadline, "its CHALLENGE");
      auto* ch = std::get_if<proto::Challenge>(&m);
      if (!ch)
        FMI_THROW(ChannelError, "Direct: rendezvous server ", server_str(),
                  " did not start with a CHALLENGE (not an fmi-rendezvous of protocol version ",
                  int(proto::kVersion), "?)");
      // A server without a secret cannot check a proof; the peers still
      // authenticate each other in the handshake.
      server_auth = ch->auth;
      if (server_auth) {
        reg.proof = proto::Proof{auth::random_nonce(), {}};
        reg.proof->mac = auth::register_mac(opt_.secret, reg, ch->nonce);
      }
    }
    if (!send_frame(s.fd(), reg))
      FMI_THROW(ChannelError, "Direct: sending the registration to rendezvous server ",
                server_str(), " failed: ", errno_text(errno));
    if (server_auth) {
      // Wait for the verdict here, so that a wrong secret fails init() itself.
      auto m = read_one_frame(s.fd(), deadline, "an answer to the registration");
      if (!std::holds_alternative<proto::Registered>(m))
        FMI_THROW(ChannelError, "Direct: rendezvous server ", server_str(),
                  " answered the registration of peer ", opt_.peer_id, " of comm '", opt_.comm,
                  "' with an unexpected message (not REGISTERED)");
    }
    listener_ = std::move(l);
    server_ = std::move(s);
    return true;
  }
  return false;
}

Mesh::~Mesh() = default;

// One frame from the server on a blocking exchange (registration with a secret),
// read exactly to its end so that later frames stay in the socket for read_server.
// An ERROR frame becomes a ChannelError carrying the server's text.
proto::Message Mesh::read_one_frame(int fd, Deadline deadline, const char* what) {
  std::vector<std::byte> in;
  std::size_t need = proto::kHeaderSize;
  std::vector<pollfd> p{{fd, POLLIN, 0}};
  auto start = Clock::now();
  while (in.size() < need) {
    std::size_t have = in.size();
    in.resize(need);
    ssize_t r = ::recv(fd, in.data() + have, need - have, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      in.resize(have);
      if (Clock::now() >= deadline)
        FMI_THROW(TimeoutError, "Direct: rendezvous server ", server_str(), " sent no ", what,
                  " within ", ms_text(Clock::now() - start));
      poll_until(p, deadline);
      continue;
    }
    if (r <= 0)
      FMI_THROW(ChannelError, "Direct: rendezvous server ", server_str(),
                " closed the connection before ", what, " (peer ", opt_.peer_id, " of comm '",
                opt_.comm, "'): ", r == 0 ? std::string("end of stream") : errno_text(errno));
    in.resize(have + std::size_t(r));
    if (in.size() == proto::kHeaderSize && need == proto::kHeaderSize)
      need += proto::decode_header(in, proto::kMaxReplyPayload).length;
  }
  std::size_t used;
  auto m = proto::try_decode(in, proto::kMaxReplyPayload, used);
  if (auto* e = std::get_if<proto::ErrorMsg>(&*m))
    FMI_THROW(ChannelError, "Direct: rendezvous server ", server_str(),
              " refused the registration of peer ", opt_.peer_id, " of comm '", opt_.comm,
              "': ", proto::to_string(e->code), ": ", e->text);
  return std::move(*m);
}

std::string Mesh::server_str() const {
  return opt_.server_host + ":" + std::to_string(opt_.server_port);
}

void Mesh::read_server() {
  if (!server_) return;
  std::byte buf[4096];
  for (;;) {
    ssize_t r = ::recv(server_.fd(), buf, sizeof buf, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      server_error_ = "connection error: " + errno_text(errno);
      server_.reset();
      return;
    }
    if (r == 0) {
      if (!have_table_ && server_error_.empty())
        server_error_ = "server closed the connection before sending the endpoint table";
      server_.reset();
      return;
    }
    server_in_.insert(server_in_.end(), buf, buf + r);
    try {
      std::size_t used;
      while (auto m = proto::try_decode(server_in_, proto::kMaxReplyPayload, used)) {
        server_in_.erase(server_in_.begin(), server_in_.begin() + std::ptrdiff_t(used));
        if (auto* t = std::get_if<proto::Table>(&*m)) {
          if (t->peers.size() != opt_.num_peers)
            FMI_THROW(ChannelError, "endpoint table has ", t->peers.size(), " peers, expected ",
                      opt_.num_peers);
          on_table(std::move(*t));
        } else if (auto* e = std::get_if<proto::ErrorMsg>(&*m)) {
          server_error_ = std::string(proto::to_string(e->code)) + ": " + e->text;
        } else if (!std::holds_alternative<proto::Registered>(*m) &&
                   !std::holds_alternative<proto::Challenge>(*m)) {
          FMI_THROW(ChannelError, "unexpected ", m->index(), " message");
        }
      }
    } catch (const ChannelError& e) {
      server_error_ = e.what();
      server_.reset();
      return;
    }
  }
}

void Mesh::on_table(proto::Table t) {
  table_ = std::move(t);
  have_table_ = true;
  // The server closes after the table; we are done with it too.
  server_.reset();
  for (auto& c : cands_)
    if (c && c->state == CState::hello_pending_table && (!on_hello(*c) || !c->sock)) c.reset();
  std::erase_if(cands_, [](const auto& c) { return !c; });
}

std::vector<proto::Endpoint> Mesh::targets(std::uint32_t p) const {
  const auto& me = table_.peers[opt_.peer_id];
  const auto& them = table_.peers[p];
  std::vector<proto::Endpoint> out{them.public_ep};
  // Behind the same NAT (same public address) the NAT may not hairpin: the
  // private endpoint is then the way, and often the faster one anyway.
  if (me.public_ep.same_address(them.public_ep) && !(them.private_ep == them.public_ep) &&
      them.private_ep.v6 == bind_addr_.v6)
    out.push_back(them.private_ep);
  std::erase_if(out, [&](const proto::Endpoint& e) { return e.v6 != bind_addr_.v6; });
  return out;
}

void Mesh::start_attempts(std::uint32_t p, Clock::time_point now) {
  for (const auto& target : targets(p)) {
    Attempt a;
    a.sock = make_socket(target.v6 ? AF_INET6 : AF_INET);
    a.peer = p;
    a.target = target;
    a.started = now;
    a.timeout = peers_[p].attempt_timeout;
    set_reuse(a.sock.fd());
    sockaddr_storage ss;
    unsigned len = bind_addr_.to_sockaddr(ss);
    int rc = ::bind(a.sock.fd(), reinterpret_cast<sockaddr*>(&ss), len);
    if (rc == 0) {
      len = target.to_sockaddr(ss);
      do {
        rc = ::connect(a.sock.fd(), reinterpret_cast<sockaddr*>(&ss), len);
      } while (rc < 0 && errno == EINTR);
    }
    if (rc == 0) {
      peers_[p].tcp_ever = true;
      new_candidate(std::move(a.sock), p, target.str());
    } else if (errno == EINPROGRESS) {
      attempts_.push_back(std::move(a));
    } else {
      // EADDRNOTAVAIL here usually means a connection with this very 4-tuple already
      // exists (the peer's SYN reached our listener first): its handshake settles it.
      peers_[p].last_error = "connect to " + target.str() + ": " + errno_text(errno);
    }
  }
  auto& ps = peers_[p];
  ps.attempt_timeout = std::min(kMaxAttemptTimeout, ps.attempt_timeout * 2);
  ps.next_attempt = now + ps.backoff;
  ps.backoff = std::min(kMaxBackoff, ps.backoff * 2);
}

// When to fall back to the relay for pair p: soon if either NAT rewrote the port
// it used towards the server (a port-randomising NAT will not be punched), after a
// second of punching otherwise; both sides compute it from the same table.
Clock::time_point Mesh::relay_time(std::uint32_t p) const {
  const auto& ps = peers_[p];
  if (opt_.relay == RelayMode::never) return Clock::time_point::max();
  if (opt_.relay == RelayMode::always) return Clock::time_point::min();
  auto changed = [&](std::uint32_t q) {
    return table_.peers[q].public_ep.port != table_.peers[q].private_ep.port;
  };
  auto start = ps.first_attempt == Clock::time_point{} ? Clock::now() : ps.first_attempt;
  return start + ((changed(opt_.peer_id) || changed(p)) ? std::chrono::milliseconds(300)
                                                        : std::chrono::milliseconds(1000));
}

void Mesh::start_relay(std::uint32_t p, Clock::time_point now) {
  auto& ps = peers_[p];
  ps.relay_started = true;
  Attempt a;
  a.sock = make_socket(server_ep_.v6 ? AF_INET6 : AF_INET);
  a.peer = p;
  a.target = server_ep_;
  a.started = now;
  a.relay = true;
  sockaddr_storage ss;
  unsigned len = server_ep_.to_sockaddr(ss);
  int rc;
  do {
    rc = ::connect(a.sock.fd(), reinterpret_cast<sockaddr*>(&ss), len);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EINPROGRESS) {
    ps.relay_error = "relay connection to " + server_ep_.str() + ": " + errno_text(errno);
    return;
  }
  attempts_.push_back(std::move(a));  // POLLOUT reports the connect (even when instant)
}

bool Mesh::relay_step(Attempt& a) {
  auto& ps = peers_[a.peer];
  for (;;) {
    try {
      // Frame by frame, never past the end of RELAY_READY: what follows it is the
      // peer's HELLO, for the handshake.
      std::size_t need = proto::kHeaderSize;
      if (a.in.size() >= proto::kHeaderSize)
        need += proto::decode_header(a.in, proto::kMaxReplyPayload).length;
      if (a.in.size() < need) {
        std::size_t have = a.in.size();
        a.in.resize(need);
        ssize_t r;
        do {
          r = ::recv(a.sock.fd(), a.in.data() + have, need - have, 0);
        } while (r < 0 && errno == EINTR);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          a.in.resize(have);
          return true;
        }
        if (r <= 0) {
          ps.relay_error = "rendezvous server closed the relay request";
          return false;
        }
        a.in.resize(have + std::size_t(r));
        continue;
      }
      std::size_t used;
      auto m = proto::try_decode(a.in, proto::kMaxReplyPayload, used);
      a.in.clear();
      if (auto* ch = std::get_if<proto::Challenge>(&*m)) {
        if (a.relay_sent) continue;  // no secret: RELAY went out at once
        proto::Relay req{opt_.comm, opt_.peer_id, a.peer, session_, table_.peers[a.peer].session};
        if (ch->auth) {
          req.proof = proto::Proof{auth::random_nonce(), {}};
          req.proof->mac = auth::relay_mac(opt_.secret, req, ch->nonce);
        }
        if (!send_frame(a.sock.fd(), req)) {
          ps.relay_error = "sending RELAY to " + a.target.str() + ": " + errno_text(errno);
          return false;
        }
        a.relay_sent = true;
        continue;
      }
      if (std::holds_alternative<proto::RelayReady>(*m)) {
        new_candidate(std::move(a.sock), a.peer, "relay via " + a.target.str());
        return false;
      }
      if (auto* e = std::get_if<proto::ErrorMsg>(&*m)) {
        ps.relay_error = std::string("rendezvous server refused the relay: ") +
                         proto::to_string(e->code) + ": " + e->text;
        return false;
      }
      ps.relay_error = "rendezvous server answered the relay request with an unexpected message";
      return false;
    } catch (const ChannelError& e) {
      ps.relay_error = e.what();
      return false;
    }
  }
}

void Mesh::on_attempt_event(std::size_t i, short revents) {
  (void)revents;
  Attempt& a = attempts_[i];
  if (a.relay && a.connected) {
    if (!relay_step(a)) a.sock.reset();
    return;
  }
  int err = 0;
  socklen_t el = sizeof err;
  ::getsockopt(a.sock.fd(), SOL_SOCKET, SO_ERROR, &err, &el);
  std::uint32_t p = a.peer;
  if (err == 0 && a.relay) {
    a.connected = true;
    // With a secret, the RELAY waits for the server's CHALLENGE (relay_step).
    if (!opt_.secret.empty()) return;
    proto::Relay req{opt_.comm, opt_.peer_id, p, session_, table_.peers[p].session};
    if (send_frame(a.sock.fd(), req)) {
      a.relay_sent = true;
      return;
    }
    err = errno ? errno : EPIPE;
  }
  if (err == 0) {
    peers_[p].tcp_ever = true;
    new_candidate(std::move(a.sock), p, a.target.str());
  } else if (a.relay) {
    peers_[p].relay_error = "relay connection to " + a.target.str() + ": " + errno_text(err);
    a.sock.reset();
  } else {
    peers_[p].last_error = "connect to " + a.target.str() + ": " + errno_text(err);
    a.sock.reset();
  }
}

void Mesh::new_candidate(Socket s, std::int64_t peer, const std::string& remote) {
  if (peer >= 0 && peers_[std::size_t(peer)].conn) return;  // pair already settled
  auto c = std::make_unique<Candidate>();
  c->sock = std::move(s);
  c->peer = peer;
  c->started = Clock::now();
  c->remote = remote;
  bool auth = !opt_.secret.empty();
  if (auth) c->nonce = auth::random_nonce();
  if (!send_frame(c->sock.fd(), proto::Hello{opt_.comm, opt_.peer_id, session_, auth, c->nonce}))
    return;
  cands_.push_back(std::move(c));
}

void Mesh::accept_all() {
  for (;;) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(listener_.fd(), reinterpret_cast<sockaddr*>(&ss), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN, or out of descriptors: try again on the next event
    }
    Socket s(fd);
    // Bounded: a flood of connections that never say HELLO cannot grow this forever.
    if (cands_.size() >= kMaxCandidatesPerPeer * opt_.num_peers + 16) continue;
    new_candidate(std::move(s), -1,
                  proto::Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss)).str());
  }
}

bool Mesh::read_candidate(Candidate& c) {
  for (;;) {
    std::size_t have = c.in.size();
    c.in.resize(c.need);
    ssize_t r;
    do {
      // Exactly up to the end of the current frame: whatever follows the DECIDE
      // frame is data of the channel and must stay in the socket.
      r = ::recv(c.sock.fd(), c.in.data() + have, c.need - have, 0);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
      c.in.resize(have);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (c.peer >= 0)
        peers_[std::size_t(c.peer)].last_error =
            "connection from/to " + c.remote + " closed during the handshake";
      return false;
    }
    c.in.resize(have + std::size_t(r));
    if (c.in.size() < c.need) continue;
    try {
      if (!c.header_done) {
        auto h = proto::decode_header(c.in, proto::kMaxRequestPayload);
        c.header_done = true;
        c.need = proto::kHeaderSize + h.length;
        if (h.length > 0) continue;
      }
      std::size_t used;
      auto m = proto::try_decode(c.in, proto::kMaxRequestPayload, used);
      c.in.clear();
      c.need = proto::kHeaderSize;
      c.header_done = false;
      if (!m) return false;
      if (c.state == CState::hello) {
        auto* h = std::get_if<proto::Hello>(&*m);
        if (!h) return false;
        c.hello = *h;
        if (!have_table_) {
          c.state = CState::hello_pending_table;
          return true;
        }
        if (!on_hello(c)) return false;
        if (!c.sock) return true;  // adopted
        continue;
      }
      if (c.state == CState::proof) {
        auto p = std::uint32_t(c.peer);
        auto* pp = std::get_if<proto::PeerProof>(&*m);
        if (!pp) {
          auth_failed(c, "it sent another message instead of its PROOF");
          return false;
        }
        auto expected = auth::peer_mac(opt_.secret, opt_.comm, p, opt_.peer_id,
                                       table_.peers[p].session, session_, c.hello.nonce, c.nonce);
        if (!auth::equal(pp->mac, expected)) {
          auth_failed(c, "its proof of the shared secret is wrong (a different secret?)");
          return false;
        }
        if (!decide(c)) return false;
        if (!c.sock) return true;  // adopted
        continue;
      }
      if (c.state == CState::decide) {
        auto* d = std::get_if<proto::Decide>(&*m);
        if (!d || !d->accept) return false;
        auto p = std::uint32_t(c.peer);
        if (peers_[p].conn) return false;
        adopt(c, p);
        return true;
      }
      return false;  // nothing may arrive while we wait for the table
    } catch (const ChannelError&) {
      return false;  // not an FMI peer speaking our protocol
    }
  }
}

bool Mesh::on_hello(Candidate& c) {
  const auto& h = c.hello;
  if (h.comm != opt_.comm || h.peer_id >= opt_.num_peers || h.peer_id == opt_.peer_id ||
      h.session != table_.peers[h.peer_id].session)
    return false;  // another communicator, or a stale incarnation of a peer
  if (c.peer >= 0 && c.peer != std::int64_t(h.peer_id)) return false;
  c.peer = h.peer_id;
  auto p = h.peer_id;
  peers_[p].tcp_ever = true;
  if (opt_.secret.empty() == h.auth) {
    auth_failed(c, opt_.secret.empty()
                       ? "it uses a shared secret and this peer has none"
                       : "it has no shared secret and this peer has one");
    return false;
  }
  if (!opt_.secret.empty()) {
    auto mac = auth::peer_mac(opt_.secret, opt_.comm, opt_.peer_id, p, session_,
                              table_.peers[p].session, c.nonce, h.nonce);
    if (!send_frame(c.sock.fd(), proto::PeerProof{mac})) return false;
    c.state = CState::proof;
    return true;
  }
  return decide(c);
}

void Mesh::auth_failed(const Candidate& c, const std::string& why) {
  if (c.peer < 0) return;
  peers_[std::size_t(c.peer)].auth_error = "connection " + c.remote + ": " + why;
}

bool Mesh::decide(Candidate& c) {
  auto p = std::uint32_t(c.peer);
  if (opt_.peer_id < p) {
    // We decide: the first valid candidate wins, every later one is rejected.
    if (peers_[p].conn || !peers_[p].broken.empty()) {
      send_frame(c.sock.fd(), proto::Decide{false});
      return false;
    }
    if (!send_frame(c.sock.fd(), proto::Decide{true})) return false;
    adopt(c, p);
    return true;
  }
  c.state = CState::decide;
  return true;
}

void Mesh::adopt(Candidate& c, std::uint32_t p) {
  set_nodelay(c.sock.fd());
  peers_[p].conn = std::move(c.sock);
  drop_pair_leftovers(p);
}

void Mesh::drop_pair_leftovers(std::uint32_t p) {
  for (auto& a : attempts_)
    if (a.peer == p) a.sock.reset();
  std::erase_if(attempts_, [](const Attempt& a) { return !a.sock; });
  // Other candidates of this pair are left to the handshake (the decider rejects
  // them); dropping them here would race with their DECIDE.
}

void Mesh::add_pollfds(std::vector<pollfd>& fds) const {
  if (listener_) fds.push_back({listener_.fd(), POLLIN, 0});
  if (server_) fds.push_back({server_.fd(), POLLIN, 0});
  // A candidate whose HELLO waits for our table is not read further: its DECIDE may
  // already be on the way and must wait in the socket until we know the table.
  for (const auto& c : cands_)
    if (c && c->sock && c->state != CState::hello_pending_table)
      fds.push_back({c->sock.fd(), POLLIN, 0});
  for (const auto& a : attempts_)
    if (a.sock) fds.push_back({a.sock.fd(), short(a.connected ? POLLIN : POLLOUT), 0});
}

void Mesh::handle(const pollfd* first, std::size_t n) {
  bool accept = false, server = false;
  for (std::size_t k = 0; k < n; ++k) {
    const pollfd& pf = first[k];
    if (!pf.revents) continue;
    if (listener_ && pf.fd == listener_.fd()) {
      accept = true;
      continue;
    }
    if (server_ && pf.fd == server_.fd()) {
      server = true;
      continue;
    }
    bool found = false;
    for (auto& c : cands_)
      if (c && c->sock && c->sock.fd() == pf.fd) {
        found = true;
        if (!read_candidate(*c)) c.reset();
        else if (!c->sock) c.reset();  // adopted
        break;
      }
    if (found) continue;
    for (std::size_t i = 0; i < attempts_.size(); ++i)
      if (attempts_[i].sock && attempts_[i].sock.fd() == pf.fd) {
        on_attempt_event(i, pf.revents);
        break;
      }
  }
  std::erase_if(cands_, [](const auto& c) { return !c; });
  std::erase_if(attempts_, [](const Attempt& a) { return !a.sock; });
  if (server) read_server();
  if (accept) accept_all();
  timers(Clock::now());
}

void Mesh::timers(Clock::time_point now) {
  for (auto& a : attempts_)
    if (!a.relay && now - a.started >= a.timeout) {
      peers_[a.peer].last_error = "connect to " + a.target.str() + ": no answer within " +
                                  ms_text(a.timeout);
      a.sock.reset();
    }
  std::erase_if(attempts_, [](const Attempt& a) { return !a.sock; });
  std::erase_if(cands_,
                [&](const auto& c) { return !c || now - c->started >= kHandshakeTimeout; });
  if (!have_table_) return;
  for (std::uint32_t p = 0; p < peers_.size(); ++p) {
    auto& ps = peers_[p];
    if (!ps.wanted || ps.conn) continue;
    if (ps.first_attempt == Clock::time_point{}) ps.first_attempt = now;
    if (!ps.relay_started && now >= relay_time(p)) start_relay(p, now);
    if (opt_.relay == RelayMode::always || now < ps.next_attempt) continue;
    bool in_flight = std::any_of(attempts_.begin(), attempts_.end(),
                                 [&](const Attempt& a) { return a.peer == p && !a.relay; });
    if (!in_flight) start_attempts(p, now);
  }
}

Clock::time_point Mesh::next_timer() const {
  auto t = Clock::time_point::max();
  for (const auto& a : attempts_)
    if (!a.relay) t = std::min(t, a.started + a.timeout);
  if (have_table_)
    for (std::uint32_t p = 0; p < peers_.size(); ++p) {
      const auto& ps = peers_[p];
      if (!ps.wanted || ps.conn) continue;
      t = std::min(t, ps.next_attempt);
      if (!ps.relay_started) t = std::min(t, relay_time(p));
    }
  return t;
}

void Mesh::mark_broken(std::uint32_t peer, const std::string& why) {
  auto& ps = peers_[peer];
  ps.conn.reset();
  if (ps.broken.empty()) ps.broken = why;
}

void Mesh::connect(std::span<const std::uint32_t> peers, Deadline deadline, const char* op) {
  auto start = Clock::now();
  std::vector<std::uint32_t> todo;
  for (auto p : peers) {
    if (p == opt_.peer_id) continue;
    if (!peers_[p].broken.empty())
      FMI_THROW(PeerError, "Direct: ", op, ": connection to peer ", p, " is broken: ",
                peers_[p].broken);
    if (!peers_[p].conn) {
      peers_[p].wanted = true;
      todo.push_back(p);
    }
  }
  struct Unwant {
    Mesh* m;
    std::vector<std::uint32_t>* t;
    ~Unwant() {
      for (auto p : *t) m->peers_[p].wanted = false;
    }
  } unwant{this, &todo};
  std::vector<pollfd> fds;
  for (;;) {
    if (!have_table_ && !server_error_.empty())
      FMI_THROW(ChannelError, "Direct: ", op, ": rendezvous server ", server_str(),
                " refused the registration of peer ", opt_.peer_id, " of comm '", opt_.comm,
                "': ", server_error_);
    auto now = Clock::now();
    timers(now);
    std::erase_if(todo, [&](std::uint32_t p) {
      if (!peers_[p].conn) return false;
      peers_[p].wanted = false;
      return true;
    });
    if (todo.empty()) return;
    if (now >= deadline) {
      if (!have_table_)
        FMI_THROW(TimeoutError, "Direct: ", op, ": no endpoint table from rendezvous server ",
                  server_str(), " after ", ms_text(now - start), " (peer ", opt_.peer_id,
                  " of comm '", opt_.comm, "' waits for all ", opt_.num_peers,
                  " peers to register)");
      auto p = todo.front();
      const auto& ps = peers_[p];
      if (!ps.auth_error.empty())
        FMI_THROW(PeerError, "Direct: ", op, ": authentication failed with peer ", p,
                  " (peer ", opt_.peer_id, " of comm '", opt_.comm,
                  "'): no authenticated connection within ", ms_text(now - start),
                  "; last failure: ", ps.auth_error,
                  ". Every function needs the same secret (FMI_SECRET or backends.Direct.secret).");
      if (ps.tcp_ever)
        FMI_THROW(TimeoutError, "Direct: ", op, ": peer ", p,
                  " did not complete the connection handshake with peer ", opt_.peer_id,
                  " within ", ms_text(now - start),
                  " (it is busy elsewhere or not using this communicator)");
    {
      // A NAT that rewrote the port towards the server likely picks yet another
      // port towards each peer (symmetric / port-randomising NAT): say so.
      std::string hint;
      for (auto q : {opt_.peer_id, p}) {
        const auto& e = table_.peers[q];
        if (e.public_ep.port != e.private_ep.port)
          hint += " Peer " + std::to_string(q) + "'s NAT changed its port (private " +
                  e.private_ep.str() + ", public " + e.public_ep.str() + ").";
      }
      FMI_THROW(ChannelError, "Direct: ", op, ": hole punching between peer ", opt_.peer_id,
                " and peer ", p, " failed: no TCP connection within ", ms_text(now - start),
                " (public endpoints ", table_.peers[opt_.peer_id].public_ep.str(), " and ",
                table_.peers[p].public_ep.str(), "; last error: ",
                ps.last_error.empty() ? "none" : ps.last_error,
                "). Likely a symmetric NAT (a different public port per destination), "
                "a firewall, or peer ", p, " is not running.", hint,
                ps.relay_started
                    ? " The relay through the rendezvous server did not connect either" +
                          (ps.relay_error.empty() ? std::string(" (peer ") + std::to_string(p) +
                                                        " never asked for it)"
                                                  : ": " + ps.relay_error) +
                          "."
                    : std::string(" No relay was tried (FMI_DIRECT_RELAY=never)."));
    }
    }
    fds.clear();
    add_pollfds(fds);
    poll_until(fds, std::min(deadline, next_timer()));
    handle(fds.data(), fds.size());
  }
}

}  // namespace FMI::Direct
