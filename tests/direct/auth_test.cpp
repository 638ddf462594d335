// The optional shared-secret authentication of the Direct channel (docs/security.md):
// a real fmi-rendezvous started with --secret-file, peers as forked processes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "channels/direct/direct_channel.h"
#include "fmi/errors.h"
#include "rendezvous_server.h"

using FMI::Comm::DirectChannel;
using FMI::Comm::Tag;
using FMI::Utils::Clock;
using FMI::Utils::Operation;
using namespace fmitest;
using namespace std::chrono_literals;

namespace {

const std::string kSecret = "correct horse battery staple";
const std::string kOther = "another secret of some length";

// A channel that proves `secret` (none when empty).
std::shared_ptr<DirectChannel> make_channel(std::uint16_t port, unsigned id, unsigned n,
                                            const std::string& comm, const std::string& secret,
                                            std::chrono::milliseconds timeout = 30s) {
  return make_direct_channel(port, id, n, comm, timeout, "127.0.0.1", secret);
}

/// Every peer sends its id to every other and checks what it receives.
void all_to_all(DirectChannel& ch, unsigned me, unsigned n) {
  auto until = Clock::now() + 30s;
  for (unsigned k = 1; k < n; ++k) {
    unsigned to = (me + k) % n, from = (me + n - k) % n;
    std::uint32_t out = 1000 * me + to, in = 0;
    ch.sendrecv(to, std::as_bytes(std::span(&out, 1)), from,
                std::as_writable_bytes(std::span(&in, 1)), Tag{Operation::send, k}, until);
    PEER_CHECK(in == 1000 * from + me, "peer ", me, " got ", in, " from ", from);
  }
}

/// Runs `fn` expecting it to throw E whose message contains `text`.
template <typename E, typename F>
void expect_error(F&& fn, const std::string& text) {
  try {
    fn();
  } catch (const E& e) {
    PEER_CHECK(std::string(e.what()).find(text) != std::string::npos, "wrong message: ", e.what());
    return;
  }
  PEER_CHECK(false, "no error containing '", text, "'");
}

}  // namespace

TEST(DirectAuth, SameSecretEverywhereWorks) {
  SecretFile file(kSecret);
  RendezvousServer server({"--secret-file", file.path()});
  const std::uint16_t port = server.port();
  const std::string comm = comm_name();
  expect_all_ok(run_forked(4, [&](unsigned me) {
    auto ch = make_channel(port, me, 4, comm, kSecret);
    all_to_all(*ch, me, 4);
  }));
  EXPECT_NE(server.log().find("shared secret set"), std::string::npos) << server.log();
  EXPECT_EQ(server.log().find("authentication failed"), std::string::npos) << server.log();
}

// The secret from the environment (as on AWS Lambda), and the relay path, whose
// RELAY request is authenticated too.
TEST(DirectAuth, SecretFromEnvironmentThroughTheRelay) {
  SecretFile file(kSecret);
  RendezvousServer server({"--secret-file", file.path()});
  const std::uint16_t port = server.port();
  const std::string comm = comm_name();
  expect_all_ok(run_forked(3, [&](unsigned me) {
    ::setenv("FMI_DIRECT_RELAY", "always", 1);
    ::setenv("FMI_SECRET", kSecret.c_str(), 1);
    auto ch = make_channel(port, me, 3, comm, "a configured secret that env overrides");
    all_to_all(*ch, me, 3);
  }));
  EXPECT_NE(server.log().find("relaying"), std::string::npos) << server.log();
}

TEST(DirectAuth, WrongOrMissingSecretIsRefusedByTheServer) {
  SecretFile file(kSecret);
  RendezvousServer server({"--secret-file", file.path()});
  const std::uint16_t port = server.port();
  const std::string comm = comm_name();
  expect_all_ok(run_forked(2, [&](unsigned me) {
    if (me == 0) {
      // A wrong secret: init itself fails (it waits for the server's verdict).
      expect_error<FMI::ChannelError>([&] { make_channel(port, 0, 2, comm, kOther, 5s); },
                                      "authentication failed");
    } else {
      // No secret: registration is sent without a proof; the refusal surfaces on
      // first use, still as a ChannelError naming authentication.
      auto ch = make_channel(port, 1, 2, comm, "", 5s);
      std::uint32_t v = 1;
      expect_error<FMI::ChannelError>(
          [&] {
            ch->send(0, std::as_bytes(std::span(&v, 1)), Tag{Operation::send, 1},
                     Clock::now() + 5s);
          },
          "authentication failed");
    }
  }));
  auto log = server.log();
  EXPECT_NE(log.find("authentication failed: comm '" + comm + "' peer 0"), std::string::npos)
      << log;
  EXPECT_NE(log.find("no proof of the shared secret"), std::string::npos) << log;
}

// The server has no secret here, so registration succeeds; the peer-to-peer
// handshake is what must keep peers with different secrets apart.
TEST(DirectAuth, PeersWithDifferentSecretsCannotPair) {
  RendezvousServer server;
  const std::uint16_t port = server.port();
  const std::string comm = comm_name();
  expect_all_ok(run_forked(3, [&](unsigned me) {
    // Peers 0 and 1 share a secret, peer 2 has another one.
    auto ch = make_channel(port, me, 3, comm, me == 2 ? kOther : kSecret, 2s);
    std::uint32_t out = me, in = 0;
    auto until = Clock::now() + 2s;
    auto swap = [&](unsigned other) {
      ch->sendrecv(other, std::as_bytes(std::span(&out, 1)), other,
                   std::as_writable_bytes(std::span(&in, 1)), Tag{Operation::send, 1}, until);
    };
    if (me < 2) {
      swap(1 - me);
      PEER_CHECK(in == 1 - me, "peer ", me, " got ", in);
      // Towards peer 2: an error naming authentication and the peer, at the deadline.
      expect_error<FMI::PeerError>([&] { swap(2); }, "authentication failed with peer 2");
    } else {
      expect_error<FMI::PeerError>([&] { swap(0); }, "authentication failed with peer 0");
    }
  }));
}

TEST(DirectAuth, PeerWithoutSecretCannotPairWithOneThatHasIt) {
  RendezvousServer server;
  const std::uint16_t port = server.port();
  const std::string comm = comm_name();
  expect_all_ok(run_forked(2, [&](unsigned me) {
    auto ch = make_channel(port, me, 2, comm, me == 0 ? kSecret : "", 2s);
    std::uint32_t v = me;
    expect_error<FMI::PeerError>(
        [&] {
          if (me == 0)
            ch->send(1, std::as_bytes(std::span(&v, 1)), Tag{Operation::send, 1},
                     Clock::now() + 2s);
          else
            ch->recv(0, std::as_writable_bytes(std::span(&v, 1)), Tag{Operation::send, 1},
                     Clock::now() + 2s);
        },
        "authentication failed with peer " + std::to_string(1 - me));
  }));
}

TEST(DirectAuth, ShortSecretIsAConfigError) {
  FMI::Comm::DirectConfig d;
  d.host = "127.0.0.1";
  d.secret = "short";
  EXPECT_THROW(DirectChannel{d}, FMI::ConfigError);
}
