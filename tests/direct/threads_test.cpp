// The Direct channel used by several threads of each peer at once (issue 18) and
// its probe (issue 19), over real TCP on loopback with a real fmi-rendezvous and
// one forked process per peer. Every thread works on its own tags, as the
// Communicator's operations do; every byte is checked.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include "channels/direct/direct_channel.h"
#include "fmi/errors.h"
#include "messages.h"
#include "rendezvous_server.h"

using FMI::Comm::DirectChannel;
using FMI::Comm::Envelope;
using FMI::Comm::Tag;
using FMI::Utils::Clock;
using FMI::Utils::Operation;
using namespace fmitest;
using namespace fmitest::direct;
using namespace std::chrono_literals;

namespace {

/// Runs fn(k) on `threads` threads and rethrows the first failure, naming the thread.
void in_threads(unsigned threads, const std::function<void(unsigned)>& fn) {
  std::vector<std::exception_ptr> errs(threads);
  std::vector<std::thread> ts;
  for (unsigned k = 0; k < threads; ++k)
    ts.emplace_back([&, k] {
      try {
        fn(k);
      } catch (...) {
        errs[k] = std::current_exception();
      }
    });
  for (auto& t : ts) t.join();
  for (unsigned k = 0; k < threads; ++k)
    if (errs[k]) throw std::runtime_error("thread " + std::to_string(k) + ": " + describe(errs[k]));
}

constexpr std::size_t kLarge = 6 * 1024 * 1024 + 5;  // far beyond the socket buffers

struct Setup {
  unsigned peers;
  bool encryption;
};
void PrintTo(const Setup& s, std::ostream* os) {
  *os << s.peers << " peers, " << (s.encryption ? "sealed" : "plain");
}
std::string setup_name(const testing::TestParamInfo<Setup>& i) {
  return "n" + std::to_string(i.param.peers) + (i.param.encryption ? "_sealed" : "_plain");
}

class DirectThreads : public testing::TestWithParam<Setup> {};

}  // namespace

// Each peer runs four threads at once, each its own operation on every other
// peer: thread 0 a ring of sendrecvs (collective tag, which opens the full mesh
// from whichever thread gets there first), thread 1 blocking sends to everyone
// then receives from everyone, thread 2 sendrecvs of empty messages, thread 3
// large sendrecvs in the opposite ring direction. Sizes: empty, small, several
// MiB (sends block on the socket buffers until the peer's leader reads them).
TEST_P(DirectThreads, ConcurrentOperationsOnEveryPair) {
  const auto [n, sealed] = GetParam();
  RendezvousServer server;
  auto res = run_forked(n, [&, n = n, sealed = sealed](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, n, comm_name(), 60s, "127.0.0.1", "", sealed);
    in_threads(4, [&](unsigned k) {
      for (std::uint32_t round = 0; round < 2; ++round) {
        const std::uint32_t seq = 100 * k + round;
        if (k == 0 || k == 3) {
          const std::size_t size = k == 0 ? 1000 + round : kLarge;
          for (unsigned r = 1; r < n; ++r) {
            unsigned dest = k == 0 ? (me + r) % n : (me + n - r) % n;
            unsigned src = k == 0 ? (me + n - r) % n : (me + r) % n;
            auto out = make_data(size, me, dest, seq * 16 + r);
            std::vector<std::byte> in(size);
            ch->sendrecv(dest, out, src, in,
                         tag(seq * 16 + r, k == 0 ? Operation::allgather : Operation::send),
                         deadline());
            check_data(in, src, me, seq * 16 + r);
          }
        } else if (k == 1) {
          for (unsigned p = 0; p < n; ++p)
            if (p != me) ch->send(p, make_data(3000 + p, me, p, seq), tag(seq), deadline());
          for (unsigned p = 0; p < n; ++p) {
            if (p == me) continue;
            std::vector<std::byte> in(3000 + me);
            ch->recv(p, in, tag(seq), deadline());
            check_data(in, p, me, seq);
          }
        } else {
          for (unsigned r = 1; r < n; ++r) {
            std::vector<std::byte> none;
            ch->sendrecv((me + r) % n, none, (me + n - r) % n, none, tag(seq * 16 + r), deadline());
          }
        }
      }
    });
    PEER_CHECK(ch->connected_peers() == n - 1, ch->connected_peers(), " connections");
  });
  expect_all_ok(res);
}

// The exchange that deadlocks without progress across threads: on every peer,
// thread A waits in a receive from the next peer, whose thread B is blocked in a
// large send to us (and ours to the previous peer). A thread that only drove its
// own sockets would never read B's bytes; here whichever thread leads reads them
// (handing them to our thread C's receive of that tag, or parking them).
TEST_P(DirectThreads, ReceiveWaitsWhileThePeersLargeSendBlocks) {
  const auto [n, sealed] = GetParam();
  RendezvousServer server;
  auto res = run_forked(n, [&, n = n, sealed = sealed](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, n, comm_name(), 60s, "127.0.0.1", "", sealed);
    const unsigned next = (me + 1) % n, prev = (me + n - 1) % n;
    in_threads(3, [&](unsigned k) {
      if (k == 0) {  // A: the small message comes after B's large one on the stream
        std::vector<std::byte> in(64);
        ch->recv(next, in, tag(1), deadline());
        check_data(in, next, me, 1);
      } else if (k == 1) {  // B
        ch->send(prev, make_data(kLarge, me, prev, 2), tag(2), deadline());
        ch->send(prev, make_data(64, me, prev, 1), tag(1), deadline());
      } else {  // C: takes B's large message (or finds it parked)
        std::vector<std::byte> in(kLarge);
        ch->recv(next, in, tag(2), deadline());
        check_data(in, next, me, 2);
      }
    });
  });
  expect_all_ok(res);
}

// Many receives from one source at once, each for its own tag, the messages sent
// in another order than the receives were posted; many senders to one
// destination at once (their messages must not interleave, nor, sealed, their
// records' sequence numbers).
TEST_P(DirectThreads, ManyReceivesFromOneSourceAndSendsToOneDestination) {
  const auto [n, sealed] = GetParam();
  constexpr unsigned kThreads = 6;
  auto size = [](unsigned k) -> std::size_t {
    return k % 3 == 0 ? 0 : k % 3 == 1 ? 777 : 2 * 1024 * 1024 + k;
  };
  RendezvousServer server;
  auto res = run_forked(n, [&, n = n, sealed = sealed](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, n, comm_name(), 60s, "127.0.0.1", "", sealed);
    if (me == 0) {
      // Every other peer sends to 0 from kThreads threads; 0 receives each message
      // on its own thread, all posted at once.
      in_threads(kThreads * (n - 1), [&](unsigned i) {
        unsigned src = 1 + i / kThreads, k = i % kThreads;
        std::vector<std::byte> in(size(k));
        ch->recv(src, in, tag(k), deadline());
        check_data(in, src, 0, k);
      });
    } else {
      in_threads(kThreads, [&](unsigned k) {
        // Reverse order of the tags, spread in time a little.
        std::this_thread::sleep_for(std::chrono::milliseconds(5 * (kThreads - k)));
        ch->send(0, make_data(size(k), me, 0, k), tag(k), deadline());
      });
    }
  });
  expect_all_ok(res);
}

// Probe: several sources racing to one receiver. Each probe names a real source
// and its message's size, and the receive that follows gets exactly that message.
TEST_P(DirectThreads, ProbeFromRacingSources) {
  const auto [n, sealed] = GetParam();
  RendezvousServer server;
  auto res = run_forked(n, [&, n = n, sealed = sealed](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, n, comm_name(), 60s, "127.0.0.1", "", sealed);
    auto bytes_of = [](unsigned src) -> std::size_t { return src == 1 ? 0 : src * 100000 + 3; };
    if (me != 0) {
      ch->send(0, make_data(bytes_of(me), me, 0, 9), tag(9), deadline());
      return;
    }
    std::vector<unsigned> left;
    for (unsigned p = 1; p < n; ++p) left.push_back(p);
    while (!left.empty()) {
      std::vector<Envelope> wanted;
      for (unsigned p : left) wanted.push_back({p, tag(9)});
      auto got = ch->probe(wanted, true, deadline());
      PEER_CHECK(got.has_value(), "blocking probe returned nothing");
      PEER_CHECK(got->index < wanted.size(), "index ", got->index);
      unsigned src = wanted[got->index].src;
      PEER_CHECK(got->bytes == bytes_of(src), "probe says ", got->bytes, " bytes from peer ", src);
      std::vector<std::byte> in(got->bytes);
      ch->recv(src, in, tag(9), deadline());
      check_data(in, src, 0, 9);
      std::erase(left, src);
    }
  });
  expect_all_ok(res);
}

INSTANTIATE_TEST_SUITE_P(Direct, DirectThreads,
                         testing::Values(Setup{3, true}, Setup{3, false}, Setup{5, true},
                                         Setup{5, false}),
                         setup_name);

// Non-blocking probe before and after the message arrives; a message to self; the
// oldest message wins over sources; probe concurrent with another thread's
// transfers.
TEST(DirectProbe, NonBlockingOldestFirstAndSelf) {
  RendezvousServer server;
  auto res = run_forked(3, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, 3, comm_name());
    if (me == 0) {
      const Envelope from1[] = {{1, tag(5)}};
      // Nothing sent yet (1 waits for our go): never waits, finds nothing.
      auto t0 = Clock::now();
      PEER_CHECK(!ch->probe(from1, false, deadline()), "a message before it was sent");
      PEER_CHECK(Clock::now() - t0 < 1s, "a non-blocking probe waited");
      ch->send(1, std::vector<std::byte>(1), tag(99), deadline());  // go
      std::optional<FMI::Comm::Probed> got;
      while (!(got = ch->probe(from1, false, deadline()))) {
        PEER_CHECK(Clock::now() - t0 < 30s, "the message never showed");
        std::this_thread::sleep_for(1ms);
      }
      PEER_CHECK(got->index == 0 && got->bytes == 4321, got->index, " ", got->bytes);
      // Still there for the blocking probe, then for the receive.
      got = ch->probe(from1, true, deadline());
      PEER_CHECK(got && got->bytes == 4321);
      std::vector<std::byte> in(4321);
      ch->recv(1, in, tag(5), deadline());
      check_data(in, 1, 0, 5);
      PEER_CHECK(!ch->probe(from1, false, deadline()), "the message was received already");

      // Oldest first: peer 1's tag 6 message is read (parked) while 0 receives 1's
      // tag 7; then 2's tag 6 while 0 receives 2's tag 7. Probing both: peer 1's.
      std::vector<std::byte> seven(8);
      ch->recv(1, seven, tag(7), deadline());
      ch->recv(2, seven, tag(7), deadline());
      const Envelope both[] = {{2, tag(6)}, {1, tag(6)}};
      got = ch->probe(both, false, deadline());
      PEER_CHECK(got && got->index == 1 && got->bytes == 11, got ? got->index : 99);
      std::vector<std::byte> six(11);
      ch->recv(1, six, tag(6), deadline());
      check_data(six, 1, 0, 6);
      got = ch->probe(both, true, deadline());
      PEER_CHECK(got && got->index == 0 && got->bytes == 12);
      six.resize(12);
      ch->recv(2, six, tag(6), deadline());
      check_data(six, 2, 0, 6);

      // A message to self counts, while another thread waits in a receive.
      std::thread other([&] {
        std::vector<std::byte> in(50);
        ch->recv(2, in, tag(8), deadline());
        check_data(in, 2, 0, 8);
      });
      const Envelope self[] = {{1, tag(3)}, {0, tag(3)}};
      ch->send(0, make_data(33, 0, 0, 3), tag(3), deadline());
      got = ch->probe(self, false, deadline());
      PEER_CHECK(got && got->index == 1 && got->bytes == 33);
      std::vector<std::byte> mine(33);
      ch->recv(0, mine, tag(3), deadline());
      check_data(mine, 0, 0, 3);
      ch->send(2, std::vector<std::byte>(1), tag(98), deadline());  // peer 2: go on
      other.join();
      ch->send(1, std::vector<std::byte>(1), tag(97), deadline());  // peer 1 may exit
    } else if (me == 1) {
      std::vector<std::byte> go(1);
      ch->recv(0, go, tag(99), deadline());
      ch->send(0, make_data(4321, 1, 0, 5), tag(5), deadline());
      ch->send(0, make_data(11, 1, 0, 6), tag(6), deadline());
      ch->send(0, make_data(8, 1, 0, 7), tag(7), deadline());
      ch->recv(0, go, tag(97), deadline());  // stays until 0 is done with its stream
    } else {
      std::this_thread::sleep_for(300ms);  // after 1's messages
      ch->send(0, make_data(12, 2, 0, 6), tag(6), deadline());
      ch->send(0, make_data(8, 2, 0, 7), tag(7), deadline());
      std::vector<std::byte> go(1);
      ch->recv(0, go, tag(98), deadline());
      ch->send(0, make_data(50, 2, 0, 8), tag(8), deadline());
    }
  });
  expect_all_ok(res);
}

// A blocking probe with nothing coming ends at its deadline with TimeoutError
// naming the operation and the source.
TEST(DirectProbe, TimesOut) {
  RendezvousServer server;
  auto res = run_forked(2, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, 2, comm_name());
    ch->connect_all(deadline());
    if (me == 0) {
      const Envelope e[] = {{1, tag(4)}};
      auto t0 = Clock::now();
      std::string what;
      try {
        ch->probe(e, true, Clock::now() + 300ms);
      } catch (const FMI::TimeoutError& x) {
        what = x.what();
      }
      auto took = Clock::now() - t0;
      PEER_CHECK(!what.empty(), "no TimeoutError");
      PEER_CHECK(
          what.find("probe") != std::string::npos && what.find("peer 1") != std::string::npos,
          what);
      PEER_CHECK(took >= 300ms && took < 5s, "took ", took.count());
      ch->send(1, std::vector<std::byte>(1), tag(1), deadline());
    } else {
      std::vector<std::byte> go(1);
      ch->recv(0, go, tag(1), deadline());
    }
  });
  expect_all_ok(res);
}

// A peer killed after the mesh is up: every waiter that depends on it fails with
// PeerError naming it (two receives and a probe on three threads), at once rather
// than at the deadline, while another thread's exchange with the live peer
// completes.
TEST(DirectProbe, DeadPeerFailsEveryWaiterOnIt) {
  RendezvousServer server;
  auto res = run_forked(3, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, 3, comm_name(), 60s);
    ch->connect_all(deadline());
    std::byte b[4] = {};
    for (unsigned p = 0; p < 3; ++p)
      if (p != me) ch->send(p, b, tag(0), deadline());
    for (unsigned p = 0; p < 3; ++p)
      if (p != me) ch->recv(p, b, tag(0), deadline());
    if (me == 2) {
      std::this_thread::sleep_for(200ms);  // let the others post their waits
      ::raise(SIGKILL);
    }
    const unsigned live = 1 - me;
    auto t0 = Clock::now();
    std::atomic<int> peer_errors{0};
    in_threads(4, [&](unsigned k) {
      try {
        if (k == 0 || k == 1) {
          std::vector<std::byte> in(1 << 20);
          ch->recv(2, in, tag(10 + k), deadline());
        } else if (k == 2) {
          const Envelope e[] = {{2, tag(12)}};
          ch->probe(e, true, deadline());
        } else {
          std::this_thread::sleep_for(500ms);  // after peer 2's death
          auto out = make_data(kLarge, me, live, 13);
          std::vector<std::byte> in(kLarge);
          ch->sendrecv(live, out, live, in, tag(13), deadline());
          check_data(in, live, me, 13);
          return;
        }
      } catch (const FMI::PeerError& e) {
        PEER_CHECK(std::string(e.what()).find("peer 2") != std::string::npos, e.what());
        ++peer_errors;
        return;
      }
      PEER_CHECK(false, "thread ", k, " got no PeerError");
    });
    PEER_CHECK(peer_errors == 3, peer_errors.load());
    PEER_CHECK(Clock::now() - t0 < 20s, "the waiters noticed the death late");
  });
  EXPECT_TRUE(res[0].exited && res[0].code == 0);
  EXPECT_TRUE(res[1].exited && res[1].code == 0);
  EXPECT_EQ(res[2].signal, SIGKILL);
}

// Two threads reach their first collective message at once: both open the full
// mesh (one punches, the other waits for the same connections), then exchange.
// A third thread's receive times out meanwhile without disturbing the others
// (nothing of its message had moved, so its connection stays usable).
TEST(DirectThreadsMesh, TwoThreadsOpenTheMeshAtOnceAndATimeoutStaysLocal) {
  RendezvousServer server;
  constexpr unsigned n = 4;
  auto res = run_forked(n, [&](unsigned me) {
    auto ch = make_direct_channel(server.port(), me, n, comm_name());
    const unsigned next = (me + 1) % n, prev = (me + n - 1) % n;
    in_threads(3, [&](unsigned k) {
      if (k == 2) {
        std::vector<std::byte> in(10);
        auto t0 = Clock::now();
        bool timed_out = false;
        try {
          ch->recv(next, in, tag(77), Clock::now() + 200ms);  // nobody sends it
        } catch (const FMI::TimeoutError& e) {
          timed_out =
              std::string(e.what()).find("peer " + std::to_string(next)) != std::string::npos;
        }
        PEER_CHECK(timed_out, "no TimeoutError naming peer ", next);
        PEER_CHECK(Clock::now() - t0 < 10s);
        return;
      }
      const auto op = k == 0 ? Operation::allreduce : Operation::bcast;
      for (std::uint32_t r = 0; r < 3; ++r) {
        auto out = make_data(kLarge / (r + 1), me, next, 10 * k + r);
        std::vector<std::byte> in(out.size());
        ch->sendrecv(next, out, prev, in, tag(10 * k + r, op), deadline());
        check_data(in, prev, me, 10 * k + r);
      }
    });
    PEER_CHECK(ch->connected_peers() == n - 1, ch->connected_peers(), " connections");
    // The connection of the timed-out receive still works.
    std::vector<std::byte> in(5);
    ch->sendrecv(prev, make_data(5, me, prev, 78), next, in, tag(78), deadline());
    check_data(in, next, me, 78);
    // No peer exits before its predecessor's timed-out receive is over: an exit closes
    // the connection, and a receive still waiting on it rightly reports PeerError
    // (seen when the whole ring finished within the 200 ms). This exchange waits for
    // prev, which reaches it only after all of its threads, thread 2 included.
    ch->sendrecv(next, make_data(5, me, next, 79), prev, in, tag(79), deadline());
    check_data(in, prev, me, 79);
  });
  expect_all_ok(res);
}
