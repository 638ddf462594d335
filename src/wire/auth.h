// Optional shared-secret authentication of the Direct channel (protocol version 2,
// docs/security.md and docs/rendezvous-protocol.md): HMAC-SHA256 proofs that a
// registration, a relay request or a peer-to-peer handshake comes from a holder of
// the secret. Part of the fmi_wire library, shared by the channel's handshake
// (src/channels/direct/) and fmi-rendezvous.
//
// Every MAC is HMAC-SHA256(secret, "FMI1" || label || for each field: u32be(len) || bytes):
// the label separates the uses (a proof made for one purpose never verifies for
// another) and the length prefixes keep fields from being shifted into each other.
#pragma once

#include <cstdint>
#include <string>

#include "wire/protocol.h"

namespace FMI::Wire::auth {

/// The secret in effect: the environment variable FMI_SECRET if set (AWS Lambda
/// sets environment variables per function), else `configured`
/// (backends.Direct.secret); empty means no authentication. Throws ConfigError if
/// it is set but shorter than kMinSecret bytes, naming where it came from.
inline constexpr std::size_t kMinSecret = 16;
std::string resolve_secret(const std::string& configured);

/// Checks a secret given to fmi-rendezvous (`source` names it in the error).
void check_secret(const std::string& secret, const std::string& source);

/// 32 bytes from the system's CSPRNG (OpenSSL RAND_bytes).
proto::Nonce random_nonce();

/// Constant-time comparison.
bool equal(const proto::Mac& a, const proto::Mac& b);

/// Proof of REGISTER: over every field of the request, the server's challenge
/// nonce `ns` and the client's nonce (r.proof->nonce, which must be set).
proto::Mac register_mac(const std::string& secret, const proto::Register& r,
                        const proto::Nonce& ns);
/// Proof of RELAY, likewise.
proto::Mac relay_mac(const std::string& secret, const proto::Relay& r, const proto::Nonce& ns);
/// Proof of a peer in the handshake: binds the sender, the receiver, both sessions
/// (as in the server's table) and both HELLO nonces of this connection.
proto::Mac peer_mac(const std::string& secret, const std::string& comm, std::uint32_t sender,
                    std::uint32_t receiver, std::uint64_t sender_session,
                    std::uint64_t receiver_session, const proto::Nonce& sender_nonce,
                    const proto::Nonce& receiver_nonce);

}  // namespace FMI::Wire::auth
