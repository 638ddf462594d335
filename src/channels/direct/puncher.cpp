#include "channels/direct/puncher.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "channels/direct/io.h"
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
// Accepts per pass over the listener: a flood of connections cannot keep the
// progress loop here; what is left waits for the next poll.
constexpr int kMaxAcceptsPerPass = 64;
// After EMFILE/ENFILE the listener stays readable (the connection waits in the
// queue): it is left out of the poll this long instead of waking it at once.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
constexpr auto kLogInterval = std::chrono::seconds(10);
constexpr std::size_t kMaxLogged = 64;  // addresses remembered for the rate limit
}  // namespace

Puncher::Puncher(const MeshOptions& opt, std::uint64_t session, proto::Endpoint bind_addr,
                 Socket listener, std::function<void(std::uint32_t)> on_connected)
    : opt_(opt),
      session_(session),
      bind_addr_(bind_addr),
      listener_(std::move(listener)),
      on_connected_(std::move(on_connected)),
      peers_(opt.num_peers) {
  // Read once, here: a bad FMI_DIRECT_CIPHER fails the channel's init (ConfigError).
  if (opt_.encryption) cipher_ = secure::local_cipher();
}

void Puncher::on_table(const proto::Table& table) {
  table_ = &table;
  for (auto& c : cands_)
    if (c && c->state == CState::hello_pending_table && (!on_hello(*c) || !c->sock)) c.reset();
  std::erase_if(cands_, [](const auto& c) { return !c; });
}

std::vector<proto::Endpoint> Puncher::targets(std::uint32_t p) const {
  const auto& me = table_->peers[opt_.peer_id];
  const auto& them = table_->peers[p];
  std::vector<proto::Endpoint> out{them.public_ep};
  // Behind the same NAT (same public address) the NAT may not hairpin: the
  // private endpoint is then the way, and often the faster one anyway.
  if (me.public_ep.same_address(them.public_ep) && !(them.private_ep == them.public_ep) &&
      them.private_ep.v6 == bind_addr_.v6)
    out.push_back(them.private_ep);
  std::erase_if(out, [&](const proto::Endpoint& e) { return e.v6 != bind_addr_.v6; });
  return out;
}

void Puncher::start_attempts(std::uint32_t p, Clock::time_point now) {
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
      saw_tcp(p, now);
      new_candidate(std::move(a.sock), p, target.str());
    } else if (errno == EINPROGRESS) {
      attempts_.push_back(std::move(a));
    } else {
      // EADDRNOTAVAIL here means a connection with this very 4-tuple already exists
      // (the peer's SYN reached our listener first): its handshake settles it, and
      // the pair needs no relay for now (Mesh::relay_due). Only the first one counts:
      // the 4-tuple may also be held by a connection that is gone for us (TIME_WAIT),
      // and one that recurs must not keep postponing the relay forever.
      if (errno == EADDRNOTAVAIL && !peers_[p].tcp_ever) saw_tcp(p, now);
      peers_[p].last_error = "connect to " + target.str() + ": " + errno_text(errno);
    }
  }
  auto& ps = peers_[p];
  ps.attempt_timeout = std::min(kMaxAttemptTimeout, ps.attempt_timeout * 2);
  ps.next_attempt = now + ps.backoff;
  ps.backoff = std::min(kMaxBackoff, ps.backoff * 2);
}

// The connect of an attempt finished (POLLOUT), one way or the other.
void Puncher::on_attempt_event(Attempt& a) {
  int err = 0;
  socklen_t el = sizeof err;
  ::getsockopt(a.sock.fd(), SOL_SOCKET, SO_ERROR, &err, &el);
  std::uint32_t p = a.peer;
  if (err == 0) {
    saw_tcp(p, Clock::now());
    new_candidate(std::move(a.sock), p, a.target.str());
  } else {
    peers_[p].last_error = "connect to " + a.target.str() + ": " + errno_text(err);
    a.sock.reset();
  }
}

bool Puncher::send_hello(Candidate& c) {
  bool auth = !opt_.secret.empty();
  // The nonce is fresh on every candidate, with or without a secret: it binds the
  // PROOF and the keys to this connection.
  c.nonce = auth::random_nonce();
  proto::Hello hello{opt_.comm, opt_.peer_id, session_, auth, c.nonce};
  if (opt_.encryption) {
    c.kp = std::make_unique<secure::KeyPair>();
    hello.key_share = c.kp->share();
    hello.cipher = cipher_;
  }
  c.said_hello = true;
  return send_frame(c.sock.fd(), hello);
}

void Puncher::new_candidate(Socket s, std::int64_t peer, const std::string& remote) {
  if (peer >= 0 && peers_[std::size_t(peer)].conn) return;  // pair already settled
  auto c = std::make_unique<Candidate>();
  c->sock = std::move(s);
  c->peer = peer;
  c->started = Clock::now();
  c->remote = remote;
  if (!send_hello(*c)) return;
  cands_.push_back(std::move(c));
}

bool Puncher::handshaking(std::uint32_t p) const {
  return std::any_of(cands_.begin(), cands_.end(),
                     [&](const auto& c) { return c && c->sock && c->peer == std::int64_t(p); });
}

void Puncher::retry_held() {
  bool any = false;
  for (auto& c : cands_) {
    if (!c || c->state != CState::held || !admit_(c->hello.peer_id)) continue;
    any = true;
    if (!send_hello(*c)) {
      c.reset();
      continue;
    }
    if (!table_) {
      c->state = CState::hello_pending_table;
      continue;
    }
    c->state = CState::hello;
    if (!on_hello(*c) || !c->sock) c.reset();
  }
  if (any) std::erase_if(cands_, [](const auto& c) { return !c; });
}

std::size_t Puncher::admitted() const {
  std::size_t n = 0;
  for (const auto& c : cands_) n += c && c->sock && c->accepted && c->said_hello && admit_;
  return n;
}

void Puncher::accept_all() {
  const auto now = Clock::now();
  for (int k = 0; k < kMaxAcceptsPerPass; ++k) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(listener_.fd(), reinterpret_cast<sockaddr*>(&ss), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        listener_paused_until_ = now + kAcceptPause;
        log_limited("(accept)", "accept on the listener failed: " + errno_text(errno) +
                                    "; accepting again in " + ms_text(kAcceptPause));
      }
      break;  // EAGAIN: nothing left
    }
    auto c = std::make_unique<Candidate>();
    c->sock = Socket(fd);
    c->accepted = true;
    c->started = now;
    c->source = proto::Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
    c->remote = c->source.str();
    // A real peer sent its HELLO as soon as its connect completed: usually it is
    // here already, and the connection is verified before any cap applies.
    if (!read_candidate(*c) || !c->sock) continue;  // dropped, or adopted
    if (unverified(*c)) {
      std::size_t total = 0, same = 0;
      std::unique_ptr<Candidate>* oldest = nullptr;
      for (auto& o : cands_)
        if (o && unverified(*o)) {
          ++total;
          same += o->source.same_address(c->source);
          if (!oldest || o->started < (*oldest)->started) oldest = &o;
        }
      // Every other peer may connect to us at once, and behind one NAT (or on one
      // host) they all share an address: the caps never go below what the
      // communicator itself can open (seen at 256 functions on loopback, where
      // the per-address cap of 8 closed real peers' connections before their
      // HELLO arrived).
      const std::size_t per_address =
          std::max<std::size_t>(kMaxUnverifiedPerAddress, opt_.num_peers - 1);
      const std::size_t in_all = std::max<std::size_t>(kMaxUnverified, opt_.num_peers - 1);
      if (same >= per_address) {
        stranger_closed(c->source, "too many connections from this address without a HELLO");
        continue;
      }
      if (total >= in_all) {
        // Closing the oldest rather than the newest: strangers from many addresses
        // then cannot hold every slot while a real peer's connection is refused.
        stranger_closed((*oldest)->source, "evicted: too many connections without a HELLO");
        oldest->reset();
      }
    }
    // Bounded: verified candidates too (a stranger who knows the table).
    if (cands_.size() >= kMaxCandidatesPerPeer * opt_.num_peers +
                             std::max<std::size_t>(kMaxUnverified, opt_.num_peers))
      continue;
    cands_.push_back(std::move(c));
  }
  std::erase_if(cands_, [](const auto& c) { return !c; });
}

void Puncher::log_limited(const std::string& key, const std::string& what) {
  const auto now = Clock::now();
  std::erase_if(logged_, [&](const auto& e) { return now - e.second >= kLogInterval; });
  for (const auto& e : logged_)
    if (e.first == key) return;
  if (logged_.size() >= kMaxLogged) return;  // many addresses at once: enough said
  logged_.emplace_back(key, now);
  std::fprintf(stderr, "FMI Direct: peer %u of comm '%s': %s (logged once per %s and 10 s)\n",
               opt_.peer_id, opt_.comm.c_str(), what.c_str(),
               key == "(accept)" ? "listener" : "address");
}

void Puncher::stranger_closed(const proto::Endpoint& from, const char* why) {
  ++strangers_closed_;
  std::string addr = from.str();
  addr.resize(addr.rfind(':'));
  log_limited(addr, "closing connections from " + addr + " (" + why + "; " +
                        std::to_string(strangers_closed_) +
                        " connections closed so far before their HELLO)");
}

bool Puncher::read_candidate(Candidate& c) {
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
        if (c.accepted && !c.said_hello) {
          // Our HELLO (a key pair with encryption) only for something that looks
          // like a peer of this communicator; the session is checked with the table.
          if (h->comm != opt_.comm || h->peer_id >= opt_.num_peers || h->peer_id == opt_.peer_id)
            return false;
          // The connection budget (docs/direct.md): our HELLO waits until there is
          // room for this peer's connection; theirs is kept, their socket unread.
          if (admit_ && !admit_(h->peer_id)) {
            c.hello = *h;
            c.state = CState::held;
            return true;
          }
          if (!send_hello(c)) return false;
        }
        c.hello = *h;
        if (!table_) {
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
        auto expected =
            c.keys ? secure::confirm_mac(*c.keys, p)
                   : auth::peer_mac(opt_.secret, opt_.comm, p, opt_.peer_id,
                                    table_->peers[p].session, session_, c.hello.nonce, c.nonce);
        if (!auth::equal(pp->mac, expected)) {
          auth_failed(c,
                      !c.keys ? "its proof of the shared secret is wrong (a different secret?)"
                      : opt_.secret.empty()
                          ? "its key confirmation is wrong (the handshake was altered on the way)"
                          : "its key confirmation is wrong (a different secret, or the "
                            "handshake was altered on the way)");
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

bool Puncher::on_hello(Candidate& c) {
  const auto& h = c.hello;
  if (h.comm != opt_.comm || h.peer_id >= opt_.num_peers || h.peer_id == opt_.peer_id ||
      h.session != table_->peers[h.peer_id].session)
    return false;  // another communicator, or a stale incarnation of a peer
  if (c.peer >= 0 && c.peer != std::int64_t(h.peer_id)) return false;
  c.peer = h.peer_id;
  auto p = h.peer_id;
  saw_tcp(p, Clock::now());
  if (opt_.secret.empty() == h.auth) {
    auth_failed(c, opt_.secret.empty() ? "it uses a shared secret and this peer has none"
                                       : "it has no shared secret and this peer has one");
    return false;
  }
  if (opt_.encryption != h.key_share.has_value()) {
    auth_failed(c, opt_.encryption
                       ? "it has encryption off and this peer on (backends.Direct.encryption must "
                         "be the same for every function)"
                       : "it has encryption on and this peer off (backends.Direct.encryption must "
                         "be the same for every function)");
    return false;
  }
  if (opt_.encryption) {
    // Both sides put the same fields in the same order (lower id first).
    const bool lower = opt_.peer_id < p;
    secure::Transcript t;
    t.comm = opt_.comm;
    t.lower = lower ? opt_.peer_id : p;
    t.higher = lower ? p : opt_.peer_id;
    t.lower_session = lower ? session_ : h.session;
    t.higher_session = lower ? h.session : session_;
    t.lower_nonce = lower ? c.nonce : h.nonce;
    t.higher_nonce = lower ? h.nonce : c.nonce;
    t.lower_share = lower ? c.kp->share() : *h.key_share;
    t.higher_share = lower ? *h.key_share : c.kp->share();
    t.lower_cipher = lower ? cipher_ : h.cipher;
    t.higher_cipher = lower ? h.cipher : cipher_;
    std::string why;
    const auto cipher = secure::agree(cipher_, h.cipher, why);
    if (!cipher) {
      auth_failed(c, why);
      return false;
    }
    try {
      c.keys = std::make_unique<secure::SessionKeys>(
          secure::derive(*c.kp, *h.key_share, opt_.secret, t));
    } catch (const ChannelError& e) {
      auth_failed(c, e.what());
      return false;
    }
    c.keys->cipher = *cipher;
    c.kp.reset();  // ephemeral: forgotten as soon as the keys exist
    if (!send_frame(c.sock.fd(), proto::PeerProof{secure::confirm_mac(*c.keys, opt_.peer_id)}))
      return false;
    c.state = CState::proof;
    return true;
  }
  if (!opt_.secret.empty()) {
    auto mac = auth::peer_mac(opt_.secret, opt_.comm, opt_.peer_id, p, session_,
                              table_->peers[p].session, c.nonce, h.nonce);
    if (!send_frame(c.sock.fd(), proto::PeerProof{mac})) return false;
    c.state = CState::proof;
    return true;
  }
  return decide(c);
}

void Puncher::auth_failed(const Candidate& c, const std::string& why) {
  if (c.peer < 0) return;
  peers_[std::size_t(c.peer)].auth_error = "connection " + c.remote + ": " + why;
}

bool Puncher::decide(Candidate& c) {
  auto p = std::uint32_t(c.peer);
  if (opt_.peer_id < p) {
    // We decide: the first valid candidate wins, every later one is rejected; none
    // while the old connection is being closed (the other side may still hold it
    // and would drop our DECIDE, leaving us a connection it closed).
    if (peers_[p].conn || !peers_[p].broken.empty() || closing(p)) {
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

void Puncher::adopt(Candidate& c, std::uint32_t p) {
  set_nodelay(c.sock.fd());
  if (!is_settled(peers_[p])) ++settled_;
  ++open_;
  peers_[p].conn = std::move(c.sock);
  if (c.keys) {
    peers_[p].link = std::make_unique<secure::Link>(*c.keys, opt_.peer_id < p);
    c.keys.reset();
  }
  for (auto& a : attempts_)
    if (a.peer == p) a.sock.reset();
  std::erase_if(attempts_, [](const Attempt& a) { return !a.sock; });
  // Other candidates of this pair are left to the handshake (the decider rejects
  // them); dropping them here would race with their DECIDE.
  on_connected_(p);
}

void Puncher::mark_broken(std::uint32_t peer, const std::string& why) {
  auto& ps = peers_[peer];
  if (!is_settled(ps)) ++settled_;
  if (ps.conn) --open_;
  ps.conn.reset();
  if (ps.broken.empty()) ps.broken = why;
}

Puncher::Detached Puncher::detach(std::uint32_t peer) {
  auto& ps = peers_[peer];
  Detached d{std::move(ps.conn), std::move(ps.link)};
  ps.conn.reset();
  if (d.sock) {
    --open_;
    --settled_;
  }
  // A new connection starts like the first one did (no back-off left over, and a
  // timeout names what happened to the new one, not to the first).
  ps.tcp_ever = false;
  ps.tcp_seen = {};
  ps.last_error.clear();
  ps.next_attempt = {};
  ps.backoff = std::chrono::milliseconds(5);
  ps.attempt_timeout = std::chrono::milliseconds(250);
  return d;
}

void Puncher::punch(std::uint32_t p, Clock::time_point now) {
  if (now < peers_[p].next_attempt) return;
  bool in_flight = std::any_of(attempts_.begin(), attempts_.end(),
                               [&](const Attempt& a) { return a.peer == p; });
  if (!in_flight) start_attempts(p, now);
}

void Puncher::expire(Clock::time_point now) {
  for (auto& a : attempts_)
    if (now - a.started >= a.timeout) {
      peers_[a.peer].last_error =
          "connect to " + a.target.str() + ": no answer within " + ms_text(a.timeout);
      a.sock.reset();
    }
  std::erase_if(attempts_, [](const Attempt& a) { return !a.sock; });
  for (auto& c : cands_)
    if (c && now >= expiry(*c)) {
      if (c->accepted && c->state == CState::hello)
        stranger_closed(c->source, "no complete HELLO within 3 s");
      c.reset();
    }
  std::erase_if(cands_, [](const auto& c) { return !c; });
}

Clock::time_point Puncher::expiry(const Candidate& c) const {
  // The higher peer that has sent its last handshake frame (PROOF, or HELLO without
  // a secret) waits for the DECIDE, and the lower one may have adopted the
  // connection already: closing it now would break the lower one's connection
  // ("peer N closed the connection after 0 bytes", seen at 1,024 functions on 2
  // cores, where a handshake took over 30 s). The candidate ends with the DECIDE,
  // or with the end of stream when the lower peer gives it up (its own expiry).
  if (c.peer >= 0 && opt_.peer_id > std::uint32_t(c.peer) &&
      (c.state == CState::proof || c.state == CState::decide))
    return Clock::time_point::max();
  return c.started + (c.accepted && c.state == CState::hello ? Clock::duration(kHelloTimeout)
                                                             : Clock::duration(kHandshakeTimeout));
}

Clock::time_point Puncher::next_expiry() const {
  auto t = Clock::time_point::max();
  for (const auto& a : attempts_) t = std::min(t, a.started + a.timeout);
  // Candidates expire even while nobody is connecting: a data wait that watches
  // the listener must also wake up to close strangers that never said HELLO.
  for (const auto& c : cands_)
    if (c) t = std::min(t, expiry(*c));
  if (listener_paused_until_ > Clock::now()) t = std::min(t, listener_paused_until_);
  return t;
}

void Puncher::add_pollfds(std::vector<pollfd>& fds) const {
  if (listener_ && Clock::now() >= listener_paused_until_)
    fds.push_back({listener_.fd(), POLLIN, 0});
  // A candidate whose HELLO waits for our table is not read further: its DECIDE may
  // already be on the way and must wait in the socket until we know the table.
  for (const auto& c : cands_)
    if (c && c->sock && c->state != CState::hello_pending_table && c->state != CState::held)
      fds.push_back({c->sock.fd(), POLLIN, 0});
  for (const auto& a : attempts_)
    if (a.sock) fds.push_back({a.sock.fd(), POLLOUT, 0});
}

void Puncher::handle(const pollfd* first, std::size_t n) {
  bool accept = false;
  for (std::size_t k = 0; k < n; ++k) {
    const pollfd& pf = first[k];
    if (!pf.revents) continue;
    if (listener_ && pf.fd == listener_.fd()) {
      accept = true;
      continue;
    }
    bool found = false;
    for (auto& c : cands_)
      if (c && c->sock && c->sock.fd() == pf.fd) {
        found = true;
        if (!read_candidate(*c))
          c.reset();
        else if (!c->sock)
          c.reset();  // adopted
        break;
      }
    if (found) continue;
    for (auto& a : attempts_)
      if (a.sock && a.sock.fd() == pf.fd) {
        on_attempt_event(a);
        break;
      }
  }
  std::erase_if(cands_, [](const auto& c) { return !c; });
  std::erase_if(attempts_, [](const Attempt& a) { return !a.sock; });
  if (accept) accept_all();
}

}  // namespace FMI::Direct
