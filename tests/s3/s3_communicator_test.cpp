// Every collective (and send/recv) through FMI::Communicator over the S3 channel
// on a real S3 server (moto), for 1, 2, 3 and 5 peers as threads; the bucket must
// be empty once every communicator is destroyed. SplitAndDup: sub-communicators
// over the parent's bucket.
#include <gtest/gtest.h>

#include <exception>
#include <numeric>
#include <thread>

#include "fmi/fmi.h"
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

// The variable-size collectives over S3: counts with zeros, the last peer holding
// most of the data, a non-zero root; every object is read by its consumers and none
// is left behind.
TEST_P(S3CommunicatorTest, VariableSizeCollectives) {
  const unsigned n = GetParam();
  auto count = [](unsigned from, unsigned to) -> std::size_t { return (from * 3 + to) % 3 * (from + 1); };
  run(
      n,
      [&](FMI::Communicator& c) {
        const unsigned me = c.peer_id(), root = n / 2;
        std::vector<std::size_t> counts(n), offs(n + 1, 0);
        for (unsigned q = 0; q < n; ++q) {
          counts[q] = count(q, 0) + (q == n - 1 ? 5000 : 0);
          offs[q + 1] = offs[q] + counts[q];
        }
        auto val = [](unsigned from, unsigned to, std::size_t i) { return long(from * 1000000 + to * 1000 + i); };
        Data<Vec> mine(counts[me]), all(offs[n]);
        for (std::size_t i = 0; i < counts[me]; ++i) mine.ref()[i] = val(me, 0, i);
        c.allgatherv(mine, all, counts);
        for (unsigned q = 0; q < n; ++q)
          for (std::size_t i = 0; i < counts[q]; ++i) ASSERT_EQ(all.get()[offs[q] + i], val(q, 0, i));
        Data<Vec> at_root(me == root ? offs[n] : 0);
        c.gatherv(mine, at_root, counts, root);
        if (me == root) {
          EXPECT_EQ(at_root.get(), all.get());
        }
        Data<Vec> back(counts[me]);
        c.scatterv(at_root, counts, back, root);
        EXPECT_EQ(back.get(), mine.get());
        std::vector<std::size_t> sc(n), rc(n), so(n + 1, 0), ro(n + 1, 0);
        for (unsigned b = 0; b < n; ++b) {
          sc[b] = count(me, b);
          rc[b] = count(b, me);
          so[b + 1] = so[b] + sc[b];
          ro[b + 1] = ro[b] + rc[b];
        }
        Data<Vec> send(so[n]), recv(ro[n]);
        for (unsigned b = 0; b < n; ++b)
          for (std::size_t i = 0; i < sc[b]; ++i) send.ref()[so[b] + i] = val(me, b, i);
        c.alltoallv(send, sc, recv, rc);
        for (unsigned q = 0; q < n; ++q)
          for (std::size_t i = 0; i < rc[q]; ++i) ASSERT_EQ(recv.get()[ro[q] + i], val(q, me, i));
      },
      "vcoll" + std::to_string(n));
  EXPECT_EQ(bucket_contents(), std::vector<std::string>{}) << "objects left in the bucket";
}

// Sub-communicators over the parent's bucket: groups of rank % 2 with reversed
// keys (the last of 3 and more peers in none), equal tags in parent and child on
// one pair (received in reverse order), values naming the sender's parent rank, a
// dup of the child; the children's objects are deleted with the parent's.
TEST_P(S3CommunicatorTest, SplitAndDup) {
  const unsigned n = GetParam();
  run(
      n,
      [&](FMI::Communicator& c) {
        const unsigned me = c.peer_id();
        const bool none = n >= 3 && me == n - 1;
        auto child = c.split(none ? -1 : int(me % 2), -int(me));
        if (none) {
          ASSERT_EQ(child, nullptr);
        } else {
          ASSERT_NE(child, nullptr);
          std::vector<unsigned> members;  // parent ranks in child rank order
          for (unsigned q = n; q-- > 0;)
            if (q % 2 == me % 2 && !(n >= 3 && q == n - 1)) members.push_back(q);
          const unsigned cn = child->num_peers(), cr = child->peer_id();
          ASSERT_EQ(cn, members.size());
          ASSERT_EQ(members[cr], me);
          if (cn > 1) {
            const unsigned to = (cr + 1) % cn, from = (cr + cn - 1) % cn;
            Data<long> ps(1000 + long(me)), cs(2000 + long(me)), pr(0), crv(0);
            c.send(ps, members[to]);
            child->send(cs, to);
            child->recv(crv, from);
            c.recv(pr, members[from]);
            EXPECT_EQ(crv.get(), 2000 + long(members[from]));
            EXPECT_EQ(pr.get(), 1000 + long(members[from]));
          }
          Data<Vec> id(Vec{long(me)}), ids(cn);
          child->allgather(id, ids);
          for (unsigned r = 0; r < cn; ++r) EXPECT_EQ(ids.get()[r], long(members[r]));
          auto d = child->dup();
          std::vector<std::size_t> cnt(cn);
          std::size_t total = 0;
          for (unsigned r = 0; r < cn; ++r) total += cnt[r] = r + 1;
          Data<Vec> mine(Vec(cr + 1, long(me))), all(total);
          d->allgatherv(mine, all, cnt);
          for (unsigned r = 0, at = 0; r < cn; ++r)
            for (unsigned k = 0; k <= r; ++k) EXPECT_EQ(all.get()[at++], long(members[r]));
        }
        Data<long> x{long(me)}, sum(0);
        c.allreduce(x, sum, Function<long>::sum());
        EXPECT_EQ(sum.get(), long(n) * long(n - 1) / 2);
      },
      "split" + std::to_string(n));
  EXPECT_EQ(bucket_contents(), std::vector<std::string>{}) << "objects left in the bucket";
}

INSTANTIATE_TEST_SUITE_P(Peers, S3CommunicatorTest, ::testing::Values(1u, 2u, 3u, 5u),
                         [](const auto& info) { return std::to_string(info.param) + "peers"; });

}  // namespace
}  // namespace fmitest
