// The point-to-point contract of include/fmi/channel.h (PeerToPeerChannel), written
// once and run on every point-to-point channel of the build (InProcP2P, Direct):
// per-(source, tag) ordering and matching, a recv that waits for a later send,
// exact sizes (PeerError naming both), deadlines (TimeoutError naming peer and
// operation, the channel usable afterwards), empty and large messages, sendrecv
// (also with dest == src), messages to self, finalize twice.
//
// Checks are PEER_CHECKs (they throw), because Direct peers are forked processes.
#include <future>
#include <thread>

#include "backends.h"

namespace fmitest::conformance {
namespace {

using FMI::Comm::PeerToPeerChannel;
using FMI::Comm::Tag;
using FMI::Utils::Operation;
using Buf = std::vector<std::byte>;

/// Content of the message `r` from `from` to `to`: a misplaced, shifted or
/// foreign byte shows.
Buf data(std::size_t len, unsigned from, unsigned to, std::uint32_t r) {
  Buf v(len);
  fill_pattern(v, from * 64 + to, r);
  return v;
}

void check(const Buf& got, const Buf& want, const std::string& what) {
  auto r = bytes_equal(got, want);
  PEER_CHECK(r, what, ": ", r.message());
}

Tag tag(std::uint32_t seq, Operation op = Operation::send) { return Tag{op, seq}; }

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

/// Every peer sends an empty message to every other and receives theirs: nobody
/// finalizes (a Direct peer: exits) while a message for it is still on its way.
void sync_all(PeerToPeerChannel& ch, unsigned me, unsigned n, std::chrono::milliseconds t) {
  const Tag done{Operation::barrier, 0xFFFF0000u};
  for (unsigned p = 0; p < n; ++p)
    if (p != me) ch.send(p, {}, done, in(t));
  for (unsigned p = 0; p < n; ++p)
    if (p != me) ch.recv(p, {}, done, in(t));
}

class P2PContract : public ::testing::TestWithParam<std::string> {
 protected:
  Backend& b() { return backend(GetParam()); }
  /// body(me, channel) on n peers, each with its own initialised channel.
  void peers(unsigned n, const std::function<void(unsigned, PeerToPeerChannel&)>& body,
             bool sync = true) {
    const auto t = b().max_timeout();
    run(b(), n, [&](unsigned me, Group& g) {
      auto ch = g.open_p2p(me);
      body(me, *ch);
      if (sync) sync_all(*ch, me, n, t);
      ch->finalize();
      ch->finalize();  // idempotent
    });
  }
};

TEST_P(P2PContract, KindAndTimeout) {
  auto g = b().group(1, comm_name());
  auto ch = g->make(0);
  EXPECT_EQ(ch->kind(), FMI::Comm::ChannelKind::peer_to_peer);
  EXPECT_EQ(ch->max_timeout(), b().max_timeout());
}

// Sources are independent and each keeps its order: peer 2 reads peer 1's
// messages before peer 0's, same tag; then 100 messages of one pair, each with
// its own tag and size, arrive in the order sent.
TEST_P(P2PContract, OrderedPerSourceAndTag) {
  peers(3, [](unsigned me, PeerToPeerChannel& ch) {
    const Tag t = tag(0);
    if (me == 0) {
      for (std::uint32_t k = 0; k < 5; ++k) ch.send(2, data(10 + k, 0, 2, k), t, in(10s));
      for (std::uint32_t i = 0; i < 100; ++i)
        ch.send(2, data((i * 977) % 20000, 0, 2, 100 + i), tag(1 + i), in(10s));
    } else if (me == 1) {
      for (std::uint32_t k = 0; k < 3; ++k) ch.send(2, data(7, 1, 2, k), t, in(10s));
    } else {
      for (std::uint32_t k = 0; k < 3; ++k) {
        Buf out(7);
        ch.recv(1, out, t, in(10s));
        check(out, data(7, 1, 2, k), "message " + std::to_string(k) + " from peer 1");
      }
      for (std::uint32_t k = 0; k < 5; ++k) {
        Buf out(10 + k);
        ch.recv(0, out, t, in(10s));
        check(out, data(10 + k, 0, 2, k), "message " + std::to_string(k) + " from peer 0");
      }
      for (std::uint32_t i = 0; i < 100; ++i) {
        Buf out((i * 977) % 20000);
        ch.recv(0, out, tag(1 + i), in(10s));
        check(out, data(out.size(), 0, 2, 100 + i), "tagged message " + std::to_string(i));
      }
    }
  });
}

// A recv takes the oldest message with its tag; other tags wait for their recv.
TEST_P(P2PContract, MatchesByTag) {
  peers(2, [](unsigned me, PeerToPeerChannel& ch) {
    const Tag a{Operation::send, 0}, b{Operation::bcast, 0}, c{Operation::bcast, 1};
    if (me == 0) {
      ch.send(1, data(4, 0, 1, 1), a, in(10s));
      ch.send(1, data(5, 0, 1, 2), b, in(10s));
      ch.send(1, data(6, 0, 1, 3), c, in(10s));
      return;
    }
    Buf o6(6), o5(5), o4(4);
    ch.recv(0, o6, c, in(10s));
    ch.recv(0, o5, b, in(10s));
    ch.recv(0, o4, a, in(10s));
    check(o6, data(6, 0, 1, 3), "tag bcast#1");
    check(o5, data(5, 0, 1, 2), "tag bcast#0");
    check(o4, data(4, 0, 1, 1), "tag send#0");
  });
}

TEST_P(P2PContract, RecvWaitsForALaterSend) {
  peers(2, [](unsigned me, PeerToPeerChannel& ch) {
    const Tag t = tag(3);
    if (me == 1) {
      std::this_thread::sleep_for(100ms);
      ch.send(0, data(1001, 1, 0, 9), t, in(10s));
      return;
    }
    Buf out(1001);
    ch.recv(1, out, t, in(10s));
    check(out, data(1001, 1, 0, 9), "late message");
  });
}

// Same tag, another size: a larger (peer 1) or smaller (peer 2) receive buffer
// than what was sent is a PeerError naming the peer and both sizes (and where
// the channel promises it, the buffer is not written). (What happens to the pair afterwards is the
// channel's own business: Direct gives the connection up, tests/direct.)
TEST_P(P2PContract, SizeMismatchIsPeerErrorNamingPeerAndBothSizes) {
  const bool keeps = b().keeps_buffer_on_mismatch();
  peers(
      3,
      [keeps](unsigned me, PeerToPeerChannel& ch) {
        if (me == 0) {
          ch.send(1, data(100, 0, 1, 0), tag(1), in(10s));
          ch.send(2, data(100, 0, 2, 0), tag(1), in(10s));
          return;
        }
        const std::size_t expect = me == 1 ? 200 : 50;
        Buf out(expect, std::byte{0x5A});
        std::string what;
        try {
          ch.recv(0, out, tag(1), in(10s));
        } catch (const FMI::PeerError& e) {
          what = e.what();
        }
        PEER_CHECK(!what.empty(), "no PeerError for ", expect, " bytes expected, 100 sent");
        PEER_CHECK(contains(what, "peer 0"), what);
        PEER_CHECK(contains(what, "100") && contains(what, std::to_string(expect)), what);
        if (keeps)
          for (auto x : out) PEER_CHECK(x == std::byte{0x5A}, "buffer written despite the error");
      },
      /*sync=*/false);
}

// A recv nobody answers raises TimeoutError naming the operation and the peer;
// a message with another tag does not satisfy it; the channel stays usable.
TEST_P(P2PContract, DeadlineIsTimeoutErrorAndTheChannelStaysUsable) {
  peers(2, [](unsigned me, PeerToPeerChannel& ch) {
    Buf b(8);
    if (me == 0) {
      ch.send(1, data(8, 0, 1, 5), tag(5, Operation::bcast), in(10s));
      ch.recv(1, b, tag(6), in(10s));
      check(b, data(8, 1, 0, 6), "reply after the timeout");
      return;
    }
    std::string what;
    const auto t0 = Clock::now();
    try {
      ch.recv(0, b, tag(5), in(200ms));
    } catch (const FMI::TimeoutError& e) {
      what = e.what();
    }
    PEER_CHECK(!what.empty(), "no TimeoutError");
    PEER_CHECK(Clock::now() - t0 >= 190ms, "gave up before the deadline");
    PEER_CHECK(contains(what, "timed out"), what);
    PEER_CHECK(contains(what, "peer 0"), what);
    PEER_CHECK(contains(what, "recv"), what);
    ch.recv(0, b, tag(5, Operation::bcast), in(10s));  // the other tag is still there
    check(b, data(8, 0, 1, 5), "message of the other tag");
    ch.send(0, data(8, 1, 0, 6), tag(6), in(10s));
  });
}

// Empty messages, a large sendrecv exchange (dest == src), and messages to self
// through send/recv and sendrecv.
TEST_P(P2PContract, EmptyLargeSendrecvAndSelf) {
  const std::size_t big = b().large_message();
  peers(2, [big](unsigned me, PeerToPeerChannel& ch) {
    const unsigned other = 1 - me;
    const Tag t{Operation::allreduce, 5};
    if (me == 0)
      ch.send(1, {}, t, in(60s));
    else
      ch.recv(0, {}, t, in(60s));
    const Buf mine = data(big, me, other, 1);
    Buf got(big);
    ch.sendrecv(other, mine, other, got, tag(7), in(120s));
    check(got, data(big, other, me, 1), "large sendrecv");
    for (std::size_t s : {std::size_t(0), std::size_t(1001)}) {
      const Buf self = data(s, me, me, 2);
      Buf back(s);
      ch.send(me, self, tag(8), in(10s));
      ch.recv(me, back, tag(8), in(10s));
      check(back, self, "send to self");
      std::fill(back.begin(), back.end(), std::byte{0});
      ch.sendrecv(me, self, me, back, tag(9), in(10s));
      check(back, self, "sendrecv with self");
    }
  });
}

INSTANTIATE_TEST_SUITE_P(InProcP2P, P2PContract, ::testing::Values("InProcP2P"));
#ifdef FMI_WITH_DIRECT
INSTANTIATE_TEST_SUITE_P(Direct, P2PContract, ::testing::Values("Direct"));
#endif

// Ring exchange with sendrecv (round r: to me+r, from me-r), an echo through peer
// 0 with plain send/recv, and messages to self, for sizes from 0 bytes to 1 MiB
// at every peer count of the backend's axes.
class P2PRing : public ::testing::TestWithParam<std::tuple<std::string, unsigned>> {};

TEST_P(P2PRing, SendRecvSendrecvEverySize) {
  auto& b = backend(std::get<0>(GetParam()));
  const unsigned n = std::get<1>(GetParam());
  const auto t = b.max_timeout();
  run(b, n, [&](unsigned me, Group& g) {
    auto ch = g.open_p2p(me);
    ch->connect_all(in(t));
    std::uint32_t seq = 0;
    for (std::size_t s : {std::size_t(0), std::size_t(1), std::size_t(7),
                          std::size_t(64 * 1024 + 3), std::size_t(1) << 20}) {
      for (unsigned r = 1; r < n; ++r) {
        const unsigned dest = (me + r) % n, src = (me + n - r) % n;
        Buf got(s);
        ch->sendrecv(dest, data(s, me, dest, r), src, got, tag(seq++, Operation::allgather), in(t));
        check(got, data(s, src, me, r), "ring round " + std::to_string(r));
      }
      if (me == 0) {
        for (unsigned p = 1; p < n; ++p) {
          const Buf out = data(s, 0, p, 0);
          Buf back(s);
          ch->send(p, out, tag(seq), in(t));
          ch->recv(p, back, tag(seq), in(t));
          check(back, out, "echo from peer " + std::to_string(p));
        }
      } else {
        Buf got(s);
        ch->recv(0, got, tag(seq), in(t));
        check(got, data(s, 0, me, 0), "echo request");
        ch->send(0, got, tag(seq), in(t));
      }
      ++seq;
    }
    sync_all(*ch, me, n, t);
    ch->finalize();
  });
}

std::vector<std::tuple<std::string, unsigned>> ring_params(const std::string& name) {
  std::vector<std::tuple<std::string, unsigned>> v;
  std::vector<unsigned> ns = backend(name).axes().peers;
  if (name == "Direct") ns.push_back(16);  // 120 connections, but only once here
  for (unsigned n : ns) v.emplace_back(name, n);
  return v;
}
std::string ring_name(const ::testing::TestParamInfo<std::tuple<std::string, unsigned>>& i) {
  return "n" + std::to_string(std::get<1>(i.param));
}

INSTANTIATE_TEST_SUITE_P(InProcP2P, P2PRing, ::testing::ValuesIn(ring_params("InProcP2P")),
                         ring_name);
#ifdef FMI_WITH_DIRECT
INSTANTIATE_TEST_SUITE_P(Direct, P2PRing, ::testing::ValuesIn(ring_params("Direct")), ring_name);
#endif

}  // namespace
}  // namespace fmitest::conformance
