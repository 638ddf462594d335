// What only the Direct channel does, over real TCP on loopback with a real
// fmi-rendezvous and one forked process per peer: IPv6, lazy connections, a
// connection given up after a mismatch, killed peers, the relay, failed hole
// punching, expiry and replacement of registrations, an unreachable server, 1 GiB
// in one message. The point-to-point contract (ordering, tag matching, sizes,
// deadlines, empty/large/self messages) and the collectives are
// tests/conformance's.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "channels/direct/direct_channel.h"
#include "fmi/errors.h"
#include "messages.h"
#include "rendezvous_server.h"

using FMI::Comm::DirectChannel;
using FMI::Comm::Tag;
using FMI::Utils::Clock;
using FMI::Utils::Operation;
using namespace fmitest;
using namespace fmitest::direct;
using namespace std::chrono_literals;

namespace {

/// For each size, n-1 rounds of sendrecv around the ring (round r: to me+r, from
/// me-r), every byte checked; `seq` numbers the messages.
void ring_rounds(DirectChannel& ch, unsigned me, unsigned n,
                 std::initializer_list<std::size_t> sizes, std::uint32_t& seq,
                 Operation op = Operation::send) {
  for (std::size_t s : sizes) {
    for (unsigned r = 1; r < n; ++r) {
      unsigned dest = (me + r) % n, src = (me + n - r) % n;
      auto out = make_data(s, me, dest, r);
      std::vector<std::byte> in(s);
      ch.sendrecv(dest, out, src, in, tag(seq++, op), deadline());
      check_data(in, src, me, r);
    }
  }
}

}  // namespace

// IPv6 end to end: the server listens on ::1, every peer registers over IPv6, the
// table carries IPv6 endpoints and the peers punch IPv6 connections to each other.
TEST(Direct, IPv6Loopback) {
  {  // a machine (or container) without IPv6 loopback skips, it does not fail
    int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    if (fd >= 0) ::close(fd);
    if (!ok) GTEST_SKIP() << "no IPv6 loopback here (bind [::1]:0 failed)";
  }
  RendezvousServer server({"--bind", "::1"});
  ASSERT_NE(server.log().find("listening on [::1]:"), std::string::npos) << server.log();
  const unsigned n = 3;
  auto res = run_forked(n, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, n, comm_name(), 30s, "::1");
    PEER_CHECK(ch->local_endpoint().rfind("[::1]:", 0) == 0, "local endpoint ",
               ch->local_endpoint(), " is not IPv6 loopback");
    ch->connect_all(deadline());
    std::uint32_t seq = 0;
    ring_rounds(*ch, me, n, {0, 13, std::size_t(3) << 20}, seq);
  });
  expect_all_ok(res);
  EXPECT_NE(server.log().find("public [::1]:"), std::string::npos) << server.log();
}

// Connections opened on first use only, by the two peers of a pair; sendrecv where
// dest == src; a peer that does not use the channel at all (it still registers).
TEST(Direct, LazyConnectionsAndSameDestSrc) {
  RendezvousServer server;
  auto res = run_forked(3, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, 3, comm_name());
    if (me == 2) {
      // Must stay registered until the table is out; then nobody talks to it.
      std::this_thread::sleep_for(300ms);
      return;
    }
    unsigned other = 1 - me;
    std::vector<std::byte> out = make_data(3 * 1024 * 1024 + 1, me, other, 0), in(out.size());
    ch->sendrecv(other, out, other, in, tag(0), deadline());
    check_data(in, other, me, 0);
  });
  expect_all_ok(res);
}

// Point-to-point messages open only the connections they use; the channel's first
// message of a collective opens every connection first (the full mesh), by itself,
// without the Communicator asking.
TEST(Direct, FirstCollectiveMessageOpensTheFullMesh) {
  RendezvousServer server;
  constexpr unsigned n = 4;
  auto res = run_forked(n, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, n, comm_name());
    unsigned next = (me + 1) % n, prev = (me + n - 1) % n;
    auto out = make_data(64, me, next, 0);
    std::vector<std::byte> in(out.size());
    // A ring of point-to-point messages: each peer talks to its two neighbours only.
    ch->sendrecv(next, out, prev, in, tag(0), deadline());
    check_data(in, prev, me, 0);
    PEER_CHECK(ch->connected_peers() == 2, "after the point-to-point ring: ", ch->connected_peers(),
               " connections");
    // A barrier over the neighbours only: after n-1 shifts around the ring every
    // peer has passed its check above, so no peer's collective message below (which
    // opens its full mesh) adds a connection to a peer that is still counting.
    for (unsigned r = 1; r < n; ++r) {
      std::vector<std::byte> x(1), y(1);
      ch->sendrecv(next, x, prev, y, tag(10 + r), deadline());
    }
    // The same ring under a collective's tag: the non-neighbours are connected first.
    ch->sendrecv(next, out, prev, in, tag(0, Operation::allgather), deadline());
    check_data(in, prev, me, 0);
    PEER_CHECK(ch->connected_peers() == n - 1,
               "after the first collective message: ", ch->connected_peers(), " connections");
  });
  expect_all_ok(res);
}

// Why a data wait keeps answering handshakes while the mesh is incomplete: peer 0
// waits for data from 1, 1 waits for data from 2, and 2 can only send once 0 (the
// lower id, which decides) took part in their handshake. If 0 watched only its
// connection to 1, the three would wait for each other until the deadline.
TEST(Direct, DataWaitAnswersAPeerConnectingLater) {
  RendezvousServer server;
  auto res = run_forked(3, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, 3, comm_name());
    auto dl = deadline(10s);
    std::vector<std::byte> in(32);
    if (me == 0) {
      ch->recv(1, in, tag(1), dl);  // opens 0-1, then waits for data on it
      check_data(in, 1, 0, 1);
      ch->recv(2, in, tag(2), dl);
      check_data(in, 2, 0, 2);
    } else if (me == 1) {
      ch->send(0, std::vector<std::byte>(32), tag(0), dl);  // opens 0-1 (unread yet)
      ch->recv(2, in, tag(3), dl);
      check_data(in, 2, 1, 3);
      ch->send(0, make_data(32, 1, 0, 1), tag(1), dl);
    } else {
      std::this_thread::sleep_for(200ms);  // let 0 reach its data wait first
      ch->send(0, make_data(32, 2, 0, 2), tag(2), dl);
      ch->send(1, make_data(32, 2, 1, 3), tag(3), dl);
    }
  });
  expect_all_ok(res);
}

// After a size mismatch (a PeerError naming the peer and both sizes: the
// conformance suite's P2PContract) the Direct channel gives the connection up:
// later receives on it fail, and the sender sees the close as a PeerError.
TEST(Direct, MismatchGivesTheConnectionUp) {
  RendezvousServer server;
  auto res = run_forked(3, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, 3, comm_name());
    if (me == 0) {
      ch->send(1, make_data(100, 0, 1, 0), tag(1), deadline());
      ch->send(2, make_data(100, 0, 2, 0), tag(1), deadline());
      // The receivers give the connection up after the mismatch: peer 0 sees the
      // close as a PeerError too.
      for (unsigned p = 1; p < 3; ++p) {
        std::byte b[1];
        bool closed = false;
        try {
          ch->recv(p, b, tag(2), deadline());
        } catch (const FMI::PeerError& e) {
          closed = std::string(e.what()).find("peer " + std::to_string(p)) != std::string::npos;
        }
        PEER_CHECK(closed, "peer 0 did not see peer ", p, " close the connection");
      }
      return;
    }
    // Same tag, another size: larger (peer 1) or smaller (peer 2) than what was
    // sent. (Another tag is no longer a mismatch: since the channel matches
    // receives by tag, such a message is parked for a later receive.)
    std::vector<std::byte> in(me == 1 ? 200 : 50);
    Tag expect = tag(1);
    std::string what;
    try {
      ch->recv(0, in, expect, deadline());
    } catch (const FMI::PeerError& e) {
      what = e.what();
    }
    PEER_CHECK(!what.empty(), "no PeerError");
    PEER_CHECK(what.find("peer 0") != std::string::npos, what);
    // The connection is given up after a mismatch: later use says why.
    bool again = false;
    try {
      ch->recv(0, in, expect, deadline());
    } catch (const FMI::PeerError&) {
      again = true;
    }
    PEER_CHECK(again);
  });
  expect_all_ok(res);
}

// A peer killed after the mesh is up: the survivors waiting for it get PeerError
// (at once, from the closed connection, not after the 60 s deadline).
TEST(Direct, KilledPeerRaisesPeerError) {
  RendezvousServer server;
  auto res = run_forked(3, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, 3, comm_name(), 60s);
    ch->connect_all(deadline());
    std::byte b[4] = {};
    // Everybody is connected to everybody: one round of messages.
    for (unsigned p = 0; p < 3; ++p)
      if (p != me) ch->send(p, b, tag(0), deadline());
    for (unsigned p = 0; p < 3; ++p)
      if (p != me) ch->recv(p, b, tag(0), deadline());
    if (me == 2) ::raise(SIGKILL);
    std::vector<std::byte> big(1 << 20);
    std::string what;
    auto t0 = Clock::now();
    try {
      ch->recv(2, big, tag(1), deadline());
    } catch (const FMI::PeerError& e) {
      what = e.what();
    }
    PEER_CHECK(!what.empty(), "no PeerError");
    PEER_CHECK(what.find("peer 2") != std::string::npos, what);
    std::cerr << "peer " << me << " noticed the death of peer 2 after "
              << std::chrono::duration<double, std::milli>(Clock::now() - t0).count()
              << " ms: " << what << "\n";
  });
  EXPECT_TRUE(res[0].exited && res[0].code == 0);
  EXPECT_TRUE(res[1].exited && res[1].code == 0);
  EXPECT_EQ(res[2].signal, SIGKILL);
}

// Pairs that cannot punch relay through the server (forced here with
// FMI_DIRECT_RELAY=always): same results, both directions at once, large messages,
// and the end of a peer still reaches the others through the relay.
TEST(Direct, RelayThroughTheServer) {
  RendezvousServer server;
  const unsigned n = 3;
  auto res = run_forked(n, [&](unsigned me) {
    ::setenv("FMI_DIRECT_RELAY", "always", 1);
    auto ch = make_direct_channel(server.port(), me, n, comm_name());
    ch->connect_all(deadline());
    std::uint32_t seq = 0;
    ring_rounds(*ch, me, n, {0, 7, (std::size_t(1) << 20) + 3, std::size_t(16) << 20}, seq);
    if (me == 2) return;  // exits: the others must see it as a PeerError
    std::byte b[1];
    bool closed = false;
    try {
      ch->recv(2, b, tag(99), deadline());
    } catch (const FMI::PeerError&) {
      closed = true;
    }
    PEER_CHECK(closed, "peer ", me, " did not notice the end of peer 2 through the relay");
  });
  expect_all_ok(res);
  EXPECT_NE(server.log().find("relaying"), std::string::npos) << server.log();
}

// A peer whose counterpart is registered but never reachable: the punch fails with a
// ChannelError that names both peers (this is what a symmetric NAT looks like).
TEST(Direct, UnreachablePeerFailsWithPunchingError) {
  RendezvousServer server;
  auto res = run_forked(2, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, 2, comm_name());
    if (me == 1) {
      std::this_thread::sleep_for(300ms);  // long enough for the table to go out
      ch->finalize();                      // its port now refuses connections
      std::this_thread::sleep_for(2s);
      return;
    }
    std::this_thread::sleep_for(600ms);
    std::string what;
    try {
      ch->connect_all(Clock::now() + 1s);
    } catch (const FMI::ChannelError& e) {
      what = e.what();
    }
    PEER_CHECK(what.find("hole punching between peer 0 and peer 1 failed") != std::string::npos,
               what);
  });
  expect_all_ok(res);
}

// The server expires registrations of a communicator that never completes, and
// the waiting peer gets a ChannelError that says so and names the peers that
// never came (the first ten of them).
TEST(Direct, IncompleteCommunicatorExpires) {
  RendezvousServer server({"--ttl-ms", "300"});
  auto res = run_forked(1, [&](unsigned) {
    auto ch = make_direct_channel(server.port(), 0, 13, comm_name());
    std::string what;
    try {
      ch->connect_all(deadline(20s));
    } catch (const FMI::ChannelError& e) {
      what = e.what();
    }
    PEER_CHECK(what.find("expired") != std::string::npos, what);
    PEER_CHECK(what.find("1 of 13 peers registered, missing: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 "
                         "(and 2 more)") != std::string::npos,
               what);
  });
  expect_all_ok(res);
}

// A second registration of the same (comm, peer id) replaces the first (a
// restarted function); the replaced one is told so, the new one works.
TEST(Direct, DuplicateRegistrationReplacesTheOldOne) {
  RendezvousServer server;
  auto res = run_forked(3, [&](unsigned me) {
    // Processes 0 and 2 both claim peer id 0; process 2 comes later.
    if (me == 2) std::this_thread::sleep_for(200ms);
    if (me == 1) std::this_thread::sleep_for(400ms);
    unsigned id = me == 2 ? 0 : me;
    auto ch = make_direct_channel(server.port(), id, 2, comm_name());
    std::byte b[3] = {};
    if (me == 0) {
      std::string what;
      try {
        ch->connect_all(deadline(10s));
      } catch (const FMI::ChannelError& e) {
        what = e.what();
      }
      PEER_CHECK(what.find("replaced") != std::string::npos, what);
      return;
    }
    ch->sendrecv(1 - id, b, 1 - id, b, tag(0), deadline());
  });
  expect_all_ok(res);
}

// No server: init retries the connection until max_timeout, then says which
// server it could not reach.
TEST(Direct, UnreachableServerFailsAfterRetrying) {
  std::uint16_t port;
  {
    RendezvousServer server;  // a port that was free a moment ago, now closed
    port = server.port();
  }
  std::string what;
  try {
    make_direct_channel(port, 0, 2, comm_name(), 400ms);
  } catch (const FMI::ChannelError& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("cannot connect to rendezvous server 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << what;
}

// Plaintext messages larger than one send piece (direct_channel.cpp send_piece():
// ~128 KiB cut at segment boundaries, counted from the header's first byte) arrive
// whole and in order, every byte checked: sizes just below, at and above piece and
// segment boundaries (loopback's segment is 65483 bytes, but the pieces follow
// whatever TCP_MAXSEG says), both directions at once (sendrecv: the sockets fill
// and writes resume mid-piece), back-to-back sends one way, and a small message of
// another tag between two large ones (parked while the receive waits for the
// second).
TEST(Direct, PlaintextLargeMessagesGoOutInPieces) {
  RendezvousServer server;
  auto res = run_forked(2, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, 2, comm_name(), 60s, "127.0.0.1", "", false);
    constexpr std::size_t K = 1024, seg = 65483;
    const std::initializer_list<std::size_t> sizes = {128 * K - 16, 128 * K + 1,      2 * seg - 16,
                                                      2 * seg - 15, 2 * seg + 1,      256 * K + 1,
                                                      1024 * K + 3, 16 * 1024 * K + 7};
    std::uint32_t seq = 0;
    ring_rounds(*ch, me, 2, sizes, seq);
    for (std::size_t s : sizes) {
      if (me == 0) {
        ch->send(1, make_data(s, 0, 1, seq), tag(seq), deadline());
      } else {
        std::vector<std::byte> in(s);
        ch->recv(0, in, tag(seq), deadline());
        check_data(in, 0, 1, seq);
      }
      ++seq;
    }
    const std::size_t first = 5 * seg + 1, small = 77, second = 2 * 1024 * K + 9;
    if (me == 0) {
      ch->send(1, make_data(first, 0, 1, 1), tag(seq), deadline());
      ch->send(1, make_data(small, 0, 1, 2), tag(seq + 1), deadline());
      ch->send(1, make_data(second, 0, 1, 3), tag(seq + 2), deadline());
    } else {
      std::vector<std::byte> a(first), b(small), c(second);
      ch->recv(0, a, tag(seq), deadline());
      ch->recv(0, c, tag(seq + 2), deadline());
      ch->recv(0, b, tag(seq + 1), deadline());
      check_data(a, 0, 1, 1);
      check_data(b, 0, 1, 2);
      check_data(c, 0, 1, 3);
    }
  });
  expect_all_ok(res);
}

// 1 GiB in one message, checksummed; skipped on small machines.
TEST(Direct, OneGibibyteMessage) {
  std::ifstream mi("/proc/meminfo");
  std::string line;
  long kb = 0;
  while (std::getline(mi, line))
    if (line.rfind("MemAvailable:", 0) == 0) kb = std::stol(line.substr(13));
  if (kb < 6L * 1024 * 1024) GTEST_SKIP() << "needs 6 GiB of free memory";
  RendezvousServer server;
  auto res = run_forked(2, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, 2, comm_name(), 120s);
    std::vector<std::uint64_t> buf((1ull << 30) / 8);
    if (me == 0) {
      std::uint64_t x = 88172645463325252ull;
      for (auto& v : buf) v = (x ^= x << 13, x ^= x >> 7, x ^= x << 17);
      std::uint64_t sum = 0;
      for (auto v : buf) sum += v * 0x9E3779B97F4A7C15ull;
      auto t0 = Clock::now();
      ch->send(1, std::as_bytes(std::span(buf)), tag(0), deadline(120s));
      ch->send(1, std::as_bytes(std::span(&sum, 1)), tag(1), deadline(120s));
      std::byte ack[1];
      ch->recv(1, ack, tag(2), deadline(120s));
      double s = std::chrono::duration<double>(Clock::now() - t0).count();
      std::cerr << "1 GiB sent and acknowledged in " << s << " s (" << 1024 / s << " MiB/s)\n";
    } else {
      std::uint64_t sum = 0, expect = 0;
      ch->recv(0, std::as_writable_bytes(std::span(buf)), tag(0), deadline(120s));
      ch->recv(0, std::as_writable_bytes(std::span(&expect, 1)), tag(1), deadline(120s));
      for (auto v : buf) sum += v * 0x9E3779B97F4A7C15ull;
      PEER_CHECK(sum == expect, "checksum of 1 GiB");
      std::byte ack[1] = {};
      ch->send(0, ack, tag(2), deadline(120s));
    }
  });
  expect_all_ok(res);
}
