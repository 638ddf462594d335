// The Direct channel's conversation with the rendezvous server (fmi-rendezvous,
// docs/rendezvous-protocol.md): registration, the endpoint table, and relay
// requests for pairs that cannot punch through their NATs.
//
// Why a class of its own: everything here talks to the server and nothing here
// talks to another peer, so the server's frames, its errors and its lifetime (the
// registration connection closes once the table has arrived) stay out of the
// puncher, which only ever sees peers. A relay request is a new connection to the
// server; once the server answers RELAY_READY it forwards bytes to the other peer,
// and the socket is handed over to the puncher for the same handshake as a punched
// connection.
//
// Registration binds the one local port of this function (see mesh.h): the
// listener takes it first, then the server connection binds it too, so that the
// server sees (and tells the others) the public endpoint that port maps to. The
// listener belongs to the puncher and is handed over by take_listener().
//
// Not thread-safe (the channel calls it under its lock, see mesh.h); every blocking
// step takes a deadline.
#pragma once

#include <poll.h>

#include <cstdint>
#include <string>
#include <vector>

#include "channels/direct/options.h"

namespace FMI::Direct {

class ServerSession {
 public:
  /// Binds the local port, listens on it, connects to the server from the same
  /// port and sends the registration; with a secret, also waits for the server's
  /// verdict, so that a wrong secret fails here. Does not wait for the table.
  /// Throws ChannelError (server unreachable, refused) or TimeoutError.
  ServerSession(const MeshOptions& opt, Deadline deadline);
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  /// The listening socket on our port, for the puncher (valid once).
  Socket take_listener() { return std::move(listener_); }

  std::uint64_t session() const { return session_; }
  /// Private endpoint: the local address we reach the server from, with our port.
  const proto::Endpoint& local() const { return local_; }
  /// The wildcard address with our port (what every outgoing attempt binds).
  const proto::Endpoint& bind_addr() const { return bind_addr_; }
  std::string server_str() const;

  bool have_table() const { return have_table_; }
  const proto::Table& table() const { return table_; }
  /// Why the server refused us or its connection failed before the table ("" if
  /// neither happened).
  const std::string& error() const { return server_error_; }

  /// Asks the server to pair a new connection with the one peer `p` opens
  /// towards us (needs the table). The socket comes out of handle() once the
  /// server answered RELAY_READY.
  void start_relay(std::uint32_t p);
  bool relay_started(std::uint32_t p) const { return relays_[p].started; }
  const std::string& relay_error(std::uint32_t p) const { return relays_[p].error; }
  /// The pair is settled: drops its relay requests still in progress.
  void drop_relays(std::uint32_t p);
  /// The pair's connection was closed (connection budget): a new one may be relayed
  /// again.
  void reset_relay(std::uint32_t p) { relays_[p] = {}; }
  /// A relay request for `p` is still on its way (connecting, or waiting at the
  /// server for the other side).
  bool relay_pending(std::uint32_t p) const;
  /// Some relay request is on its way.
  bool any_relay_pending() const { return !requests_.empty(); }
  /// Nobody wants the pair any more: its request is withdrawn, so that the server
  /// cannot pair it later with the other side's, for a connection neither side then
  /// counts in its budget (the next want asks again).
  void withdraw_relay(std::uint32_t p) {
    drop_relays(p);
    relays_[p].started = false;
  }
  /// The relay ended without a connection (the server refused or closed the
  /// request, or the handshake through it failed): the pair may be relayed again.
  /// Its error stays for the timeout's message.
  void retry_relay(std::uint32_t p) { relays_[p].started = false; }

  /// Appends the server connection (until the table arrived) and the relay
  /// requests in progress.
  void add_pollfds(std::vector<pollfd>& fds) const;

  /// A relayed connection ready for the handshake.
  struct Relayed {
    std::uint32_t peer;
    Socket sock;
    std::string remote;
  };
  /// Processes the revents of those of the `n` entries at `first` that are ours;
  /// appends the relayed connections that became ready to `ready`. Returns true
  /// when the table arrived during this call.
  bool handle(const pollfd* first, std::size_t n, std::vector<Relayed>& ready);

 private:
  struct Request {  // one relay request in progress
    Socket sock;
    std::uint32_t peer = 0;
    bool connected = false;     // TCP connected; reading the server's frames
    bool relay_sent = false;    // RELAY written; waiting for RELAY_READY
    std::vector<std::byte> in;  // the server's frame (CHALLENGE, RELAY_READY) as it arrives
  };
  struct RelayState {
    bool started = false;
    std::string error;
  };

  bool try_register(const std::vector<proto::Endpoint>& eps, Deadline deadline, std::string& last);
  proto::Message read_one_frame(int fd, Deadline deadline, const char* what);
  bool read_server();  // true: the table arrived
  void on_request_event(Request& r, std::vector<Relayed>& ready);
  bool relay_step(Request& r, std::vector<Relayed>& ready);  // false: request finished

  const MeshOptions& opt_;
  std::uint64_t session_ = 0;
  proto::Endpoint local_;
  proto::Endpoint bind_addr_;
  proto::Endpoint server_ep_;
  Socket listener_;
  Socket server_;
  std::vector<std::byte> server_in_;
  std::string server_error_;
  bool have_table_ = false;
  proto::Table table_;
  std::vector<RelayState> relays_;  // per peer
  std::vector<Request> requests_;
};

}  // namespace FMI::Direct
