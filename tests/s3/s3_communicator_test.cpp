// Every collective (and send/recv) through FMI::Communicator over the S3 channel
// on a real S3 server (moto), for 1, 2, 3 and 5 peers as threads; the bucket must
// be empty once every communicator is destroyed.
#include <gtest/gtest.h>

#include <exception>
#include <numeric>
#include <thread>

#include "fmi/fmi.h"
#include "fmi/inproc.h"
#include "s3_fixture.h"

namespace fmitest {
namespace {

using FMI::Comm::Data;
using FMI::Utils::Function;
using Vec = std::vector<long>;

std::string what(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
}

class S3CommunicatorTest : public S3Test, public ::testing::WithParamInterface<unsigned> {
 protected:
  // Runs body(comm) on every peer, each in its own thread with its own Communicator.
  template <typename F>
  void run(unsigned n, F body, const std::string& name) {
    const FMI::Config cfg = config(5ms);
    std::vector<std::exception_ptr> errors(n);
    std::vector<std::thread> ts;
    for (unsigned i = 0; i < n; ++i)
      ts.emplace_back([&, i] {
        try {
          FMI::Communicator comm(i, n, cfg, name);
          ASSERT_EQ(comm.channels().count("S3"), 1u);
          auto* s3 = dynamic_cast<FMI::Comm::S3Channel*>(comm.channels().at("S3").get());
          ASSERT_NE(s3, nullptr);
          const auto before = s3->requests();
          body(comm);
          // The data really went through the bucket (n = 1 needs no transfer).
          if (n > 1) {
            EXPECT_GT(s3->requests(), before + 2) << "peer " << i;
          }
        } catch (...) {
          errors[i] = std::current_exception();
        }
      });
    for (auto& t : ts) t.join();
    for (unsigned i = 0; i < n; ++i)
      if (errors[i]) ADD_FAILURE() << "peer " << i << " of " << n << " threw: " << what(errors[i]);
  }
};

TEST_P(S3CommunicatorTest, EveryCollectiveGivesTheRightValues) {
  const unsigned n = GetParam();
  const long N = n;
  run(
      n,
      [&](FMI::Communicator& c) {
        const long me = c.peer_id();
        const unsigned root = n - 1;  // not always 0

        if (n > 1) {  // send/recv around a ring
          Data<Vec> out(Vec{me, me * 10, me * 100}), in(3);
          if (me % 2 == 0) {
            c.send(out, (me + 1) % n);
            c.recv(in, (me + n - 1) % n);
          } else {
            c.recv(in, (me + n - 1) % n);
            c.send(out, (me + 1) % n);
          }
          const long from = (me + N - 1) % N;
          EXPECT_EQ(in.get(), (Vec{from, from * 10, from * 100}));
        }

        Data<Vec> b(5);
        if (me == root) b = Data<Vec>(Vec{1, 2, 3, 4, 5});
        c.bcast(b, root);
        EXPECT_EQ(b.get(), (Vec{1, 2, 3, 4, 5}));

        c.barrier();

        Data<long> mine(me * 7);
        Data<Vec> all(n);
        c.gather(mine, all, root);
        if (me == root) {
          Vec want(n);
          for (unsigned i = 0; i < n; ++i) want[i] = long(i) * 7;
          EXPECT_EQ(all.get(), want);
        }

        Data<Vec> parts(n);
        if (me == root) {
          Vec v(n);
          for (unsigned i = 0; i < n; ++i) v[i] = 1000 + long(i);
          parts = Data<Vec>(v);
        }
        Data<long> part;
        c.scatter(parts, part, root);
        EXPECT_EQ(part.get(), 1000 + me);

        Data<Vec> contrib(Vec{me, 1}), sum(2);
        c.reduce(contrib, sum, root, Function<Vec>::sum());
        if (me == root) {
          EXPECT_EQ(sum.get(), (Vec{N * (N - 1) / 2, N}));
        }

        Data<Vec> asum(2);
        c.allreduce(contrib, asum, Function<Vec>::sum());
        EXPECT_EQ(asum.get(), (Vec{N * (N - 1) / 2, N}));

        Data<long> one(me + 1), prefix;
        c.scan(one, prefix, Function<long>::sum());
        EXPECT_EQ(prefix.get(), (me + 1) * (me + 2) / 2);

        Data<Vec> two(Vec{me, -me}), gathered(2 * n);
        c.allgather(two, gathered);
        Vec wantg;
        for (long i = 0; i < N; ++i) wantg.insert(wantg.end(), {i, -i});
        EXPECT_EQ(gathered.get(), wantg);

        Vec blocks(n);
        for (unsigned j = 0; j < n; ++j) blocks[j] = me * 100 + long(j);  // block j -> peer j
        Data<Vec> a2a_in(blocks), a2a_out(n);
        c.alltoall(a2a_in, a2a_out);
        Vec wanta(n);
        for (unsigned i = 0; i < n; ++i) wanta[i] = long(i) * 100 + me;
        EXPECT_EQ(a2a_out.get(), wanta);

        Vec rs(2 * n);
        for (unsigned j = 0; j < 2 * n; ++j) rs[j] = long(j) + me;
        Data<Vec> rs_in(rs), rs_out(2);
        c.reduce_scatter(rs_in, rs_out, Function<Vec>::sum());
        const long base = N * (N - 1) / 2;
        EXPECT_EQ(rs_out.get(), (Vec{2 * me * N + base, (2 * me + 1) * N + base}));
      },
      "coll" + std::to_string(n));
  EXPECT_EQ(bucket_contents(), std::vector<std::string>{}) << "objects left in the bucket";
}

// Large messages take the bandwidth-oriented algorithms (above coll::kLargeMessage).
TEST_P(S3CommunicatorTest, LargeAllreduceAndBcast) {
  const unsigned n = GetParam();
  const std::size_t elems = (1u << 20) / sizeof(long);  // 1 MiB per peer
  run(
      n,
      [&](FMI::Communicator& c) {
        Data<Vec> v(Vec(elems, long(c.peer_id()) + 1)), s(elems);
        c.allreduce(v, s, Function<Vec>::sum());
        const long want = long(n) * (n + 1) / 2;
        EXPECT_EQ(std::count(s.get().begin(), s.get().end(), want), long(elems));
        Data<Vec> b(elems);
        if (c.peer_id() == 0) b = Data<Vec>(Vec(elems, 42));
        c.bcast(b, 0);
        EXPECT_EQ(std::count(b.get().begin(), b.get().end(), 42L), long(elems));
      },
      "large" + std::to_string(n));
  EXPECT_EQ(bucket_contents(), std::vector<std::string>{}) << "objects left in the bucket";
}

// Issue 16: every channel enabled, hint fast: every message goes over the
// point-to-point channel (in-process, registered as "Direct" so that the policy
// ranks it with the Direct model), and the S3 channel, never used, sends no
// request after the HEAD of init: none while running, none at finalize.
class S3UnusedTest : public S3Test {};

TEST_F(S3UnusedTest, AllChannelsHintFastLeavesS3Untouched) {
  const unsigned n = 3;
  FMI::Comm::InProcessHub hub(n, 20s);
  const FMI::Config cfg = config();
  std::vector<std::shared_ptr<FMI::Comm::Channel>> s3(n);
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> ts;
  for (unsigned i = 0; i < n; ++i)
    ts.emplace_back([&, i] {
      try {
        FMI::Communicator comm(i, n, cfg, comm_);
        comm.register_channel("Direct", hub.p2p_endpoint());
        comm.hint(FMI::Utils::Hint::fast);
        s3[i] = comm.channels().at("S3");
        const long me = i;
        Data<Vec> v(Vec{me, 2 * me}), sum(2);
        comm.allreduce(v, sum, Function<Vec>::sum());
        EXPECT_EQ(sum.get(), (Vec{3, 6}));
        Data<Vec> b(Vec{me, me});
        comm.bcast(b, 1);
        EXPECT_EQ(b.get(), (Vec{1, 1}));
        comm.barrier();
        Data<Vec> m(Vec{7 * me});
        if (i == 0) comm.send(m, 2);
        if (i == 2) {
          comm.recv(m, 0);
          EXPECT_EQ(m.get(), (Vec{0}));
        }
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  for (auto& t : ts) t.join();
  for (unsigned i = 0; i < n; ++i) {
    if (errors[i]) ADD_FAILURE() << "peer " << i << " threw: " << what(errors[i]);
    auto* ch = dynamic_cast<FMI::Comm::S3Channel*>(s3[i].get());
    ASSERT_NE(ch, nullptr);
    EXPECT_EQ(ch->requests(), 1u) << "peer " << i << ": only the HEAD bucket of init";
  }
  EXPECT_TRUE(bucket_contents().empty());
}

INSTANTIATE_TEST_SUITE_P(Peers, S3CommunicatorTest, ::testing::Values(1u, 2u, 3u, 5u),
                         [](const auto& info) { return std::to_string(info.param) + "peers"; });

}  // namespace
}  // namespace fmitest
