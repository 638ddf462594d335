// Error cases: invalid arguments raise FMI::UsageError at once (before any
// communication: a single peer of a larger group checks them, so a call that talked
// to other peers first would time out instead), naming the operation and the sizes,
// and writing nothing; mismatched sizes between peers, timeouts and a missing channel.
#include <algorithm>

#include "harness.h"

namespace fmitest {
namespace {

using FMI::Comm::Data;
using FMI::Utils::Function;

using Chars = Data<std::vector<char>>;

Chars chars(std::size_t n, char fill = 'x') { return Chars(std::vector<char>(n, fill)); }

bool all_are(const Chars& d, char c) {
  return std::all_of(d.get().begin(), d.get().end(), [c](char x) { return x == c; });
}

/// One communicator of `n` peers with only peer `me` alive (the others never come).
struct Lonely {
  std::shared_ptr<FMI::Comm::InProcessHub> hub;
  std::unique_ptr<FMI::Communicator> comm;
  Lonely(peer_num me, peer_num n, Kind kind = Kind::p2p,
         std::chrono::milliseconds timeout = 1500ms) {
    hub = std::make_shared<FMI::Comm::InProcessHub>(n, timeout);
    FMI::Config cfg;
    comm = std::make_unique<FMI::Communicator>(me, n, cfg, "lonely");
    comm->register_channel("inproc", endpoint(*hub, kind));
  }
};

/// Runs `call`; it must throw exactly a UsageError whose message holds every word.
template <typename F>
void expect_usage(F&& call, std::initializer_list<std::string> words) {
  try {
    call();
    ADD_FAILURE() << "no exception; expected FMI::UsageError mentioning "
                  << ::testing::PrintToString(std::vector<std::string>(words));
  } catch (const FMI::UsageError& e) {
    const std::string msg = e.what();
    for (const auto& w : words)
      EXPECT_NE(msg.find(w), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << w << "\"";
  } catch (...) {
    ADD_FAILURE() << "expected FMI::UsageError, got " << describe(std::current_exception());
  }
}

class UsageErrors : public ::testing::TestWithParam<Kind> {};

TEST(Constructor, PeerIdOutOfRange) {
  FMI::Config cfg;
  expect_usage([&] { FMI::Communicator c(4, 4, cfg, "x"); }, {"4"});
  expect_usage([&] { FMI::Communicator c(9, 3, cfg, "x"); }, {"9", "3"});
  expect_usage([&] { FMI::Communicator c(0, 0, cfg, "x"); }, {});
}

TEST_P(UsageErrors, RootOutOfRange) {
  Lonely l(0, 5, GetParam());
  auto& c = *l.comm;
  Chars b = chars(4), r = chars(20, 'r');
  auto sum = Function<std::vector<char>>::sum();
  expect_usage([&] { c.bcast(b, 7); }, {"bcast", "7"});
  expect_usage([&] { c.gather(b, r, 5); }, {"gather", "5"});
  expect_usage([&] { c.scatter(r, b, 6); }, {"scatter", "6"});
  expect_usage([&] { c.reduce(b, b, 99, sum); }, {"reduce", "99"});
  EXPECT_TRUE(all_are(b, 'x'));
  EXPECT_TRUE(all_are(r, 'r'));
}

TEST_P(UsageErrors, SendRecvPeerOutOfRangeOrSelf) {
  Lonely l(2, 4, GetParam());
  auto& c = *l.comm;
  Chars b = chars(8);
  expect_usage([&] { c.send(b, 4); }, {"send", "4"});
  expect_usage([&] { c.send(b, 11); }, {"send", "11"});
  expect_usage([&] { c.send(b, 2); }, {"send", "2"});
  expect_usage([&] { c.recv(b, 4); }, {"recv", "4"});
  expect_usage([&] { c.recv(b, 2); }, {"recv", "2"});
  EXPECT_TRUE(all_are(b, 'x'));
}

TEST_P(UsageErrors, GatherRecvTooSmallOnRoot) {
  Lonely l(1, 3, GetParam());
  Chars s = chars(1001), r = chars(2002, 'r');
  expect_usage([&] { l.comm->gather(s, r, 1); }, {"gather", "2002"});
  EXPECT_TRUE(all_are(r, 'r'));
  EXPECT_TRUE(all_are(s, 'x'));
}

TEST_P(UsageErrors, ScatterSendNotDivisible) {
  Lonely l(0, 3, GetParam());
  Chars s = chars(1000), r = chars(333, 'r');
  expect_usage([&] { l.comm->scatter(s, r, 0); }, {"scatter", "1000"});
  EXPECT_TRUE(all_are(r, 'r'));
  // Divisible, but not num_peers x recvbuf.
  Chars s2 = chars(999), r2 = chars(332, 'r');
  expect_usage([&] { l.comm->scatter(s2, r2, 0); }, {"scatter", "999"});
  EXPECT_TRUE(all_are(r2, 'r'));
}

TEST_P(UsageErrors, ReduceAllreduceScanSizeMismatch) {
  Lonely l(0, 3, GetParam());
  auto& c = *l.comm;
  auto sum = Function<std::vector<char>>::sum();
  Chars s = chars(1001), r = chars(1000, 'r');
  expect_usage([&] { c.allreduce(s, r, sum); }, {"allreduce", "1001", "1000"});
  expect_usage([&] { c.scan(s, r, sum); }, {"scan", "1001", "1000"});
  expect_usage([&] { c.reduce(s, r, 0, sum); }, {"reduce", "1001", "1000"});
  Chars big = chars(1002, 'r');
  expect_usage([&] { c.allreduce(s, big, sum); }, {"allreduce", "1001", "1002"});
  EXPECT_TRUE(all_are(r, 'r'));
  EXPECT_TRUE(all_are(big, 'r'));
  EXPECT_TRUE(all_are(s, 'x'));
}

TEST_P(UsageErrors, AllgatherAlltoallReduceScatterSizes) {
  Lonely l(0, 3, GetParam());
  auto& c = *l.comm;
  auto sum = Function<std::vector<char>>::sum();
  Chars s = chars(1001), r = chars(3000, 'r');
  expect_usage([&] { c.allgather(s, r); }, {"allgather", "3000"});
  EXPECT_TRUE(all_are(r, 'r'));

  Chars a = chars(1000), ar = chars(1000, 'r');  // 1000 is not 3 blocks
  expect_usage([&] { c.alltoall(a, ar); }, {"alltoall", "1000"});
  EXPECT_TRUE(all_are(ar, 'r'));
  Chars a2 = chars(3003), ar2 = chars(3000, 'r');  // recv != send
  expect_usage([&] { c.alltoall(a2, ar2); }, {"alltoall", "3003", "3000"});
  EXPECT_TRUE(all_are(ar2, 'r'));

  Chars rs = chars(3000), rr = chars(1001, 'r');
  expect_usage([&] { c.reduce_scatter(rs, rr, sum); }, {"reduce_scatter", "3000"});
  EXPECT_TRUE(all_are(rr, 'r'));
}

// A correct call after a rejected one still works: the rejected call consumed no
// sequence number (otherwise peers would disagree about the next collective's tag).
TEST_P(UsageErrors, RejectedCallDoesNotDesynchronise) {
  const Kind kind = GetParam();
  run_peers(3, kind, [&](FMI::Communicator& c) {
    Chars s = chars(10), bad = chars(7);
    if (c.peer_id() == 1) {
      EXPECT_THROW(c.allgather(s, bad), FMI::UsageError);
    }
    Chars good = chars(30, '?');
    c.allgather(s, good);
    EXPECT_TRUE(all_are(good, 'x'));
  });
}

INSTANTIATE_TEST_SUITE_P(All, UsageErrors, ::testing::Values(Kind::p2p, Kind::store),
                         [](const auto& i) { return std::string(kind_name(i.param)); });

// ---- failures between peers --------------------------------------------------------
class PeerFailures : public ::testing::TestWithParam<Kind> {};

// Peer 0 sends 8 bytes, peer 1 expects 12 (and the reverse): the receiver gets a
// PeerError naming both sizes; nobody waits for the timeout.
TEST_P(PeerFailures, MismatchedSendRecvSizes) {
  for (auto [sent, expected] : {std::pair<std::size_t, std::size_t>{8, 12}, {12, 8}}) {
    SCOPED_TRACE(std::to_string(sent) + " bytes sent, " + std::to_string(expected) + " expected");
    RunOptions opt;
    opt.max_timeout = 5s;
    auto r = run_peers_raw(
        2, GetParam(),
        [&](FMI::Communicator& c) {
          if (c.peer_id() == 0) {
            Chars m = chars(sent);
            c.send(m, 1);
          } else {
            Chars m = chars(expected, 'r');
            c.recv(m, 0);
          }
        },
        opt);
    EXPECT_FALSE(r.errors[0]) << "sender threw " << describe(r.errors[0]);
    ASSERT_TRUE(r.errors[1]) << "receiver of a mismatched message did not throw";
    try {
      std::rethrow_exception(r.errors[1]);
    } catch (const FMI::PeerError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::to_string(sent)), std::string::npos) << msg;
      EXPECT_NE(msg.find(std::to_string(expected)), std::string::npos) << msg;
    } catch (...) {
      ADD_FAILURE() << "expected FMI::PeerError, got " << describe(std::current_exception());
    }
  }
}

// A bcast whose peers disagree on the size: every peer ends (no hang) and the peers
// with the wrong size fail with an FMI::Error.
TEST_P(PeerFailures, MismatchedCollectiveSizes) {
  RunOptions opt;
  opt.max_timeout = 3s;
  opt.check_store_empty = false;
  auto r = run_peers_raw(
      4, GetParam(),
      [&](FMI::Communicator& c) {
        Chars b = chars(c.peer_id() == 2 ? 12 : 8);
        c.bcast(b, 0);
      },
      opt);
  ASSERT_TRUE(r.errors[2]) << "peer with the wrong size did not throw";
  for (peer_num p = 0; p < 4; ++p) {
    if (!r.errors[p]) continue;
    try {
      std::rethrow_exception(r.errors[p]);
    } catch (const FMI::Error&) {
    } catch (...) {
      ADD_FAILURE() << "peer " << p << ": not an FMI::Error: " << describe(r.errors[p]);
    }
  }
}

// recv with no sender: TimeoutError after the channel's max_timeout, catchable as
// FMI::Utils::Timeout and FMI::Error, naming the operation and the peer.
TEST_P(PeerFailures, RecvWithoutSenderTimesOut) {
  Lonely l(0, 3, GetParam(), 200ms);
  Chars m = chars(16, 'r');
  try {
    l.comm->recv(m, 2);
    ADD_FAILURE() << "recv returned without a sender";
  } catch (const FMI::Utils::Timeout& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("recv"), std::string::npos) << msg;
    EXPECT_NE(msg.find("2"), std::string::npos) << msg;
    const FMI::Error* base = &e;
    EXPECT_NE(dynamic_cast<const FMI::TimeoutError*>(base), nullptr);
  } catch (...) {
    ADD_FAILURE() << "expected FMI::TimeoutError, got " << describe(std::current_exception());
  }
  EXPECT_TRUE(all_are(m, 'r'));
  // Also catchable as the root type.
  EXPECT_THROW(l.comm->recv(m, 1), FMI::Error);
}

// A collective whose peers never come times out too (does not hang).
TEST_P(PeerFailures, CollectiveWithoutPeersTimesOut) {
  Lonely l(1, 3, GetParam(), 200ms);
  Chars m = chars(16);
  EXPECT_THROW(l.comm->bcast(m, 0), FMI::TimeoutError);
  EXPECT_THROW(l.comm->barrier(), FMI::TimeoutError);
  Chars r = chars(16);
  EXPECT_THROW(l.comm->allreduce(m, r, Function<std::vector<char>>::sum()), FMI::TimeoutError);
}

INSTANTIATE_TEST_SUITE_P(All, PeerFailures, ::testing::Values(Kind::p2p, Kind::store),
                         [](const auto& i) { return std::string(kind_name(i.param)); });

TEST(NoChannel, CallsThrowError) {
  FMI::Config cfg;  // every backend disabled
  FMI::Communicator c(0, 2, cfg, "nochannel");
  EXPECT_TRUE(c.channels().empty());
  Chars m = chars(4);
  EXPECT_THROW(c.send(m, 1), FMI::Error);
  EXPECT_THROW(c.bcast(m, 0), FMI::Error);
  EXPECT_THROW(c.barrier(), FMI::Error);
}

}  // namespace
}  // namespace fmitest
