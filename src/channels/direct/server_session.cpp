#include "channels/direct/server_session.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <thread>

#include "channels/direct/io.h"
#include "fmi/errors.h"

namespace FMI::Direct {

ServerSession::ServerSession(const MeshOptions& opt, Deadline deadline) : opt_(opt) {
  relays_.resize(opt_.num_peers);
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

bool ServerSession::try_register(const std::vector<proto::Endpoint>& eps, Deadline deadline,
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

// One frame from the server on a blocking exchange (registration with a secret),
// read exactly to its end so that later frames stay in the socket for read_server.
// An ERROR frame becomes a ChannelError carrying the server's text.
proto::Message ServerSession::read_one_frame(int fd, Deadline deadline, const char* what) {
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

std::string ServerSession::server_str() const {
  return opt_.server_host + ":" + std::to_string(opt_.server_port);
}

bool ServerSession::read_server() {
  if (!server_) return false;
  std::byte buf[4096];
  for (;;) {
    ssize_t r = ::recv(server_.fd(), buf, sizeof buf, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      server_error_ = "connection error: " + errno_text(errno);
      server_.reset();
      return false;
    }
    if (r == 0) {
      if (!have_table_ && server_error_.empty())
        server_error_ = "server closed the connection before sending the endpoint table";
      server_.reset();
      return false;
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
          table_ = std::move(*t);
          have_table_ = true;
          // The server closes after the table; we are done with it too.
          server_.reset();
          return true;
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
      return false;
    }
  }
}

void ServerSession::start_relay(std::uint32_t p) {
  auto& rs = relays_[p];
  rs.started = true;
  Request a;
  a.sock = make_socket(server_ep_.v6 ? AF_INET6 : AF_INET);
  a.peer = p;
  sockaddr_storage ss;
  unsigned len = server_ep_.to_sockaddr(ss);
  int rc;
  do {
    rc = ::connect(a.sock.fd(), reinterpret_cast<sockaddr*>(&ss), len);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EINPROGRESS) {
    rs.error = "relay connection to " + server_ep_.str() + ": " + errno_text(errno);
    return;
  }
  requests_.push_back(std::move(a));  // POLLOUT reports the connect (even when instant)
}

// A relay request after its connect: CHALLENGE (answered with RELAY when a secret
// is set), then RELAY_READY, after which the socket carries the other peer's bytes.
bool ServerSession::relay_step(Request& a, std::vector<Relayed>& ready) {
  auto& ps = relays_[a.peer];
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
          ps.error = "rendezvous server closed the relay request";
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
          ps.error = "sending RELAY to " + server_ep_.str() + ": " + errno_text(errno);
          return false;
        }
        a.relay_sent = true;
        continue;
      }
      if (std::holds_alternative<proto::RelayReady>(*m)) {
        ready.push_back({a.peer, std::move(a.sock), "relay via " + server_ep_.str()});
        return false;
      }
      if (auto* e = std::get_if<proto::ErrorMsg>(&*m)) {
        ps.error = std::string("rendezvous server refused the relay: ") +
                   proto::to_string(e->code) + ": " + e->text;
        return false;
      }
      ps.error = "rendezvous server answered the relay request with an unexpected message";
      return false;
    } catch (const ChannelError& e) {
      ps.error = e.what();
      return false;
    }
  }
}

// The first event of a relay request is its connect finishing (POLLOUT); after
// that, the server's frames (relay_step).
void ServerSession::on_request_event(Request& a, std::vector<Relayed>& ready) {
  if (a.connected) {
    if (!relay_step(a, ready)) a.sock.reset();
    return;
  }
  int err = 0;
  socklen_t el = sizeof err;
  ::getsockopt(a.sock.fd(), SOL_SOCKET, SO_ERROR, &err, &el);
  if (err == 0) {
    a.connected = true;
    // With a secret, the RELAY waits for the server's CHALLENGE (relay_step).
    if (!opt_.secret.empty()) return;
    proto::Relay req{opt_.comm, opt_.peer_id, a.peer, session_, table_.peers[a.peer].session};
    if (send_frame(a.sock.fd(), req)) {
      a.relay_sent = true;
      return;
    }
    err = errno ? errno : EPIPE;
  }
  relays_[a.peer].error = "relay connection to " + server_ep_.str() + ": " + errno_text(err);
  a.sock.reset();
}

bool ServerSession::relay_pending(std::uint32_t p) const {
  return std::any_of(requests_.begin(), requests_.end(),
                     [&](const Request& r) { return r.peer == p && r.sock; });
}

void ServerSession::drop_relays(std::uint32_t p) {
  std::erase_if(requests_, [&](const Request& r) { return r.peer == p; });
}

void ServerSession::add_pollfds(std::vector<pollfd>& fds) const {
  if (server_) fds.push_back({server_.fd(), POLLIN, 0});
  for (const auto& r : requests_)
    if (r.sock) fds.push_back({r.sock.fd(), short(r.connected ? POLLIN : POLLOUT), 0});
}

bool ServerSession::handle(const pollfd* first, std::size_t n, std::vector<Relayed>& ready) {
  bool server = false;
  for (std::size_t k = 0; k < n; ++k) {
    const pollfd& pf = first[k];
    if (!pf.revents) continue;
    if (server_ && pf.fd == server_.fd()) {
      server = true;
      continue;
    }
    for (auto& r : requests_)
      if (r.sock && r.sock.fd() == pf.fd) {
        on_request_event(r, ready);
        break;
      }
  }
  std::erase_if(requests_, [](const Request& r) { return !r.sock; });
  return server && read_server();
}

}  // namespace FMI::Direct
