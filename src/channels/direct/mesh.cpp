#include "channels/direct/mesh.h"

#include <algorithm>

#include "channels/direct/io.h"
#include "fmi/errors.h"

namespace FMI::Direct {

Mesh::Mesh(MeshOptions opt, Deadline deadline)
    : opt_(std::move(opt)),
      session_(opt_, deadline),
      puncher_(opt_, session_.session(), session_.bind_addr(), session_.take_listener(),
               // Once a pair is connected its relay request, if any, is not needed.
               [this](std::uint32_t p) { session_.drop_relays(p); }),
      want_(opt_.num_peers) {}

Mesh::~Mesh() = default;

// When to fall back to the relay for pair p: soon if either NAT rewrote the port
// it used towards the server (a port-randomising NAT will not be punched), after a
// second of punching otherwise; both sides compute it from the same table.
Clock::time_point Mesh::relay_time(std::uint32_t p) const {
  const auto& ps = want_[p];
  if (opt_.relay == RelayMode::never) return Clock::time_point::max();
  if (opt_.relay == RelayMode::always) return Clock::time_point::min();
  auto changed = [&](std::uint32_t q) {
    const auto& e = session_.table().peers[q];
    return e.public_ep.port != e.private_ep.port;
  };
  auto start = ps.first_attempt == Clock::time_point{} ? Clock::now() : ps.first_attempt;
  auto t = start + ((changed(opt_.peer_id) || changed(p)) ? std::chrono::milliseconds(300)
                                                          : std::chrono::milliseconds(1000));
  // A TCP connection to p formed: punching works for the pair, p is only busy (at
  // 1,024 functions on 2 cores a peer may not run for seconds), and a relay would
  // not be faster, only load the server (1,024 functions on loopback asked for up
  // to 4,000 relays at once, which filled its 4,096 connections). But a connection
  // that formed once and then failed its handshake may never form again (a NAT
  // that dropped the mapping): after kTcpGrace without one, the relay is asked for
  // after all. Without that the side that had seen TCP never asked, and the other
  // side's request waited at the server for good (64 functions in the NAT lab).
  if (puncher_.tcp_ever(p)) t = std::max(t, puncher_.tcp_seen(p) + kTcpGrace);
  return t;
}

// Whether pair p may still need the relay: not while a handshake with p is in
// progress (it settles the pair one way or the other).
bool Mesh::relay_due(std::uint32_t p) const {
  if (session_.relay_started(p)) return false;
  return opt_.relay == RelayMode::always || !puncher_.handshaking(p);
}

void Mesh::add_pollfds(std::vector<pollfd>& fds) const {
  session_.add_pollfds(fds);
  puncher_.add_pollfds(fds);
}

void Mesh::handle(const pollfd* first, std::size_t n) {
  puncher_.handle(first, n);
  relayed_.clear();
  bool table = session_.handle(first, n, relayed_);
  for (auto& r : relayed_) puncher_.new_candidate(std::move(r.sock), r.peer, r.remote);
  if (table) puncher_.on_table(session_.table());
  timers(Clock::now());
}

void Mesh::timers(Clock::time_point now) {
  puncher_.expire(now);
  if (!session_.have_table()) return;
  for (std::uint32_t p = 0; p < want_.size(); ++p) {
    auto& w = want_[p];
    if (w.wanted == 0 || puncher_.fd(p) >= 0 || puncher_.closing(p)) continue;
    if (w.first_attempt == Clock::time_point{}) w.first_attempt = now;
    // A relay needs both sides' requests at once: one that ended without a
    // connection (the other side withdrew its request as the server paired it, or
    // the handshake through it failed) is asked again while the pair is wanted, or
    // the other side's next request waits at the server for one that never comes.
    // After a pause, so that a server that refuses is not asked in a loop.
    if (opt_.relay != RelayMode::never && session_.relay_started(p) && !session_.relay_pending(p) &&
        !puncher_.handshaking(p)) {
      if (w.relay_retry == Clock::time_point{}) w.relay_retry = now + kRelayRetry;
      if (now >= w.relay_retry) {
        w.relay_retry = {};
        session_.retry_relay(p);
      }
    }
    if (relay_due(p) && now >= relay_time(p)) session_.start_relay(p);
    if (opt_.relay != RelayMode::always) puncher_.punch(p, now);
  }
}

Clock::time_point Mesh::next_timer() const {
  auto t = puncher_.next_expiry();
  if (session_.have_table())
    for (std::uint32_t p = 0; p < want_.size(); ++p) {
      // A pair being closed waits for its ACK, which the channel's poll sees.
      if (want_[p].wanted == 0 || puncher_.fd(p) >= 0 || puncher_.closing(p)) continue;
      t = std::min(t, puncher_.next_round(p));
      if (relay_due(p)) t = std::min(t, relay_time(p));
      if (want_[p].relay_retry != Clock::time_point{}) t = std::min(t, want_[p].relay_retry);
    }
  return t;
}

std::size_t Mesh::pending_connections() const {
  std::size_t n = puncher_.admitted();
  for (std::uint32_t p = 0; p < want_.size(); ++p)
    n += want_[p].wanted > 0 && puncher_.fd(p) < 0 && puncher_.broken(p).empty();
  return n;
}

Puncher::Detached Mesh::detach(std::uint32_t peer) {
  want_[peer].first_attempt = {};  // the relay timer of a new connection starts afresh
  want_[peer].relay_retry = {};
  session_.reset_relay(peer);
  return puncher_.detach(peer);
}

void Mesh::want(std::span<const std::uint32_t> peers) {
  for (auto p : peers)
    if (p != opt_.peer_id) ++want_[p].wanted;
}

void Mesh::unwant(std::span<const std::uint32_t> peers) {
  for (auto p : peers)
    if (p != opt_.peer_id && want_[p].wanted > 0 && --want_[p].wanted == 0 && puncher_.fd(p) < 0) {
      // A request left at the server would be paired with the other side's next
      // one, for a connection that no call here counts in the budget (seen with every
      // pair relayed: 4 connections held at a budget of 3).
      session_.withdraw_relay(p);
      want_[p].relay_retry = {};
    }
}

bool Mesh::ready(std::span<const std::uint32_t> peers, const char* op) const {
  bool all = true;
  for (auto p : peers) {
    if (p == opt_.peer_id) continue;
    if (!puncher_.broken(p).empty())
      FMI_THROW(PeerError, "Direct: ", op, ": connection to peer ", p,
                " is broken: ", puncher_.broken(p));
    all &= puncher_.fd(p) >= 0;
  }
  if (!all && !session_.have_table() && !session_.error().empty())
    FMI_THROW(ChannelError, "Direct: ", op, ": rendezvous server ", server_str(),
              " refused the registration of peer ", opt_.peer_id, " of comm '", opt_.comm,
              "': ", session_.error());
  return all;
}

void Mesh::connect_timed_out(std::span<const std::uint32_t> peers, Clock::time_point start,
                             const char* op, bool full_wait) const {
  auto now = Clock::now();
  if (!session_.have_table())
    FMI_THROW(TimeoutError, "Direct: ", op, ": no endpoint table from rendezvous server ",
              server_str(), " after ", ms_text(now - start), " (peer ", opt_.peer_id, " of comm '",
              opt_.comm, "' waits for all ", opt_.num_peers, " peers to register)");
  std::uint32_t p = opt_.peer_id;
  for (auto q : peers)
    if (q != opt_.peer_id && puncher_.fd(q) < 0) {
      p = q;
      break;
    }
  if (p == opt_.peer_id)
    FMI_THROW(TimeoutError, "Direct: ", op, ": timed out after ", ms_text(now - start));
  const auto& table = session_.table();
  if (!puncher_.auth_error(p).empty())
    FMI_THROW(PeerError, "Direct: ", op, ": authentication failed with peer ", p, " (peer ",
              opt_.peer_id, " of comm '", opt_.comm, "'): no authenticated connection within ",
              ms_text(now - start), "; last failure: ", puncher_.auth_error(p),
              ". Every function needs the same secret (FMI_SECRET or backends.Direct.secret) "
              "and the same backends.Direct.encryption.");
  if (puncher_.tcp_ever(p))
    FMI_THROW(TimeoutError, "Direct: ", op, ": peer ", p,
              " did not complete the connection handshake with peer ", opt_.peer_id, " within ",
              ms_text(now - start), " (it is busy elsewhere or not using this communicator)");
  // A call whose own deadline was shorter than the channel's max_timeout ran out
  // while the connection was still being opened and nothing had failed yet: a
  // timeout of that call, not evidence that punching fails (a refused or
  // unreachable attempt is, below, at any deadline).
  if (!full_wait && puncher_.last_error(p).empty())
    FMI_THROW(TimeoutError, "Direct: ", op, ": timed out after ", ms_text(now - start),
              " while connecting to peer ", p, " (peer ", opt_.peer_id, " of comm '", opt_.comm,
              "'; no TCP connection yet, no attempt failed)");
  {
    // A NAT that rewrote the port towards the server likely picks yet another
    // port towards each peer (symmetric / port-randomising NAT): say so.
    std::string hint;
    for (auto q : {opt_.peer_id, p}) {
      const auto& e = table.peers[q];
      if (e.public_ep.port != e.private_ep.port)
        hint += " Peer " + std::to_string(q) + "'s NAT changed its port (private " +
                e.private_ep.str() + ", public " + e.public_ep.str() + ").";
    }
    FMI_THROW(ChannelError, "Direct: ", op, ": hole punching between peer ", opt_.peer_id,
              " and peer ", p, " failed: no TCP connection within ", ms_text(now - start),
              " (public endpoints ", table.peers[opt_.peer_id].public_ep.str(), " and ",
              table.peers[p].public_ep.str(),
              "; last error: ", puncher_.last_error(p).empty() ? "none" : puncher_.last_error(p),
              "). Likely a symmetric NAT (a different public port per destination), "
              "a firewall, or peer ",
              p, " is not running.", hint,
              session_.relay_started(p)
                  ? " The relay through the rendezvous server did not connect either" +
                        (session_.relay_error(p).empty()
                             ? std::string(" (peer ") + std::to_string(p) + " never asked for it)"
                             : ": " + session_.relay_error(p)) +
                        "."
                  : std::string(" No relay was tried (FMI_DIRECT_RELAY=never)."));
  }
}

}  // namespace FMI::Direct
