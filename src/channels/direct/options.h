// Names shared by the pieces of the Direct channel's control plane: the server
// session (server_session.h), the puncher (puncher.h) and the mesh that composes
// them (mesh.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "wire/auth.h"
#include "wire/net.h"
#include "wire/protocol.h"

namespace FMI::Direct {

// The wire library (src/wire/) under the names the channel has always used.
namespace proto = Wire::proto;
namespace auth = Wire::auth;
using Wire::errno_text;
using Wire::local_endpoint;
using Wire::make_socket;
using Wire::resolve;
using Wire::set_nodelay;
using Wire::set_reuse;
using Wire::Socket;

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

/// When to relay a pair's traffic through the rendezvous server.
enum class RelayMode {
  automatic,  // after punching failed for a while (sooner if a NAT rewrote ports)
  always,     // never punch (tests, networks known to need it)
  never,      // punch only; a pair that cannot punch fails with ChannelError
};

struct MeshOptions {
  std::string server_host;
  std::uint16_t server_port = 10000;
  std::string comm;
  std::uint32_t peer_id = 0;
  std::uint32_t num_peers = 1;
  RelayMode relay = RelayMode::automatic;
  std::string secret;      // shared secret; empty: no authentication
  bool encryption = true;  // key exchange + sealed records (secure.h)
};

}  // namespace FMI::Direct
