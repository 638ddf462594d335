// Collectives under a connection budget (issue 14, docs/collectives.md "Connection
// budget"), driven directly over the in-process point-to-point channel:
//  - Budget.*: for every operation, every algorithm choose_p2p picks at n in
//    {2..9, 31, 64, 100, 256, 1024} and budgets {8, 16, 128, 0}, every rank's
//    partners() fit the budget and max_partners(); below the budget the choice is
//    the budget-free one.
//  - Scale.*: the new algorithms (bruck, ring alltoall, chain) forced, values
//    asserted on every peer for n = 1..9, 17, 33, roots 0, n/2, n-1, empty, small,
//    non-dividing and large blocks; and every collective with the automatic choice
//    on a channel whose max_connections() is 8 or 16 at 33 and 64 peers.
// Every run goes through Counting, which fails a rank that sends to or receives
// from a peer the collective did not connect() first (partners() too small), and
// records how many it connected (compared with the budget).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "../support/harness.h"
#include "collectives/collectives.h"
#include "fmi/inproc.h"

namespace {

using FMI::coll::Algorithm;
using FMI::Comm::Bytes;
using FMI::Comm::ConstBytes;
using FMI::Comm::Tag;
using FMI::Utils::Deadline;
using FMI::Utils::Operation;
using FMI::Utils::peer_num;
using FMI::Utils::ReduceOp;
using U64 = std::uint64_t;

// ---- the choice --------------------------------------------------------------------

const Operation kOps[] = {Operation::barrier,        Operation::bcast,     Operation::gather,
                          Operation::scatter,        Operation::reduce,    Operation::allreduce,
                          Operation::scan,           Operation::allgather, Operation::alltoall,
                          Operation::reduce_scatter, Operation::gatherv,   Operation::scatterv,
                          Operation::allgatherv,     Operation::alltoallv};
const FMI::coll::ReduceProps kProps[] = {
    {true, true, 8}, {false, true, 16}, {false, false, 8}, {true, true, 0}};
const std::size_t kBytes[] = {0, 8, 4096, 256 * 1024, 64 << 20};

std::size_t ceil_log2(std::size_t n) {
  std::size_t l = 0;
  while ((std::size_t(1) << l) < n) ++l;
  return l;
}

TEST(Budget, EveryChosenAlgorithmFitsOnEveryRank) {
  const peer_num sizes[] = {2, 3, 4, 5, 6, 7, 8, 9, 31, 64, 100, 256, 1024};
  const std::size_t budgets[] = {8, 16, 128, 0};
  for (Operation op : kOps)
    for (const auto& props : kProps)
      for (std::size_t bytes : kBytes)
        for (peer_num n : sizes)
          for (std::size_t budget : budgets) {
            const Algorithm a = FMI::coll::choose_p2p(op, bytes, n, props, budget);
            const std::string what = std::string(FMI::Utils::to_string(op)) + " " +
                                     FMI::coll::to_string(a) + " n=" + std::to_string(n) +
                                     " bytes=" + std::to_string(bytes) +
                                     " budget=" + std::to_string(budget) +
                                     " commutative=" + std::to_string(props.commutative) +
                                     " associative=" + std::to_string(props.associative) +
                                     " granularity=" + std::to_string(props.granularity);
            ASSERT_TRUE(FMI::coll::supports_p2p(op, a, props)) << what;
            if (budget == 0 || n - 1 <= budget)
              ASSERT_EQ(a, FMI::coll::choose_p2p(op, bytes, n, props)) << what;
            const std::size_t bound = FMI::coll::max_partners(op, a, n, props, bytes, budget);
            if (budget > 0) ASSERT_LE(bound, budget) << what;
            // The default budget at scale: O(log n) partners (reduce of large
            // messages: a chain, 3).
            if (budget == 128 && n >= 256) ASSERT_LE(bound, 2 * ceil_log2(n)) << what;
            std::vector<peer_num> roots = {0};
            if (n > 2) roots = {0, n / 2, n - 1};
            for (peer_num root : roots)
              for (peer_num r = 0; r < n; ++r) {
                const auto p = FMI::coll::partners(op, a, r, n, root, props, bytes, budget);
                ASSERT_LE(p.size(), bound) << what << " rank " << r << " root " << root;
                ASSERT_TRUE(std::is_sorted(p.begin(), p.end())) << what;
                ASSERT_TRUE(std::find(p.begin(), p.end(), r) == p.end()) << what;
              }
          }
}

TEST(Budget, ForcedAndUnknownNames) {
  EXPECT_STREQ(FMI::coll::to_string(Algorithm::bruck), "bruck");
  EXPECT_STREQ(FMI::coll::to_string(Algorithm::chain), "chain");
  EXPECT_TRUE(FMI::coll::supports_p2p(Operation::alltoallv, Algorithm::bruck, {}));
  EXPECT_TRUE(FMI::coll::supports_p2p(Operation::alltoall, Algorithm::ring, {}));
  EXPECT_TRUE(FMI::coll::supports_p2p(Operation::barrier, Algorithm::chain, {}));
  EXPECT_FALSE(FMI::coll::supports_p2p(Operation::bcast, Algorithm::bruck, {}));
  // At the default budget: Bruck replaces the pairwise alltoall at 1,024 peers, 20
  // partners instead of 1,023; below the budget nothing changes.
  EXPECT_EQ(FMI::coll::choose_p2p(Operation::alltoall, 8, 1024, {}, 128), Algorithm::bruck);
  EXPECT_EQ(FMI::coll::choose_p2p(Operation::alltoall, 8, 100, {}, 128), Algorithm::pairwise);
  EXPECT_EQ(FMI::coll::choose_p2p(Operation::allgather, 8, 1024, {}, 128), Algorithm::bruck);
  EXPECT_EQ(FMI::coll::choose_p2p(Operation::gather, 1 << 20, 1024, {}, 128), Algorithm::binomial);
  EXPECT_EQ(FMI::coll::choose_p2p(Operation::barrier, 0, 1024, {}, 16), Algorithm::binomial);
  EXPECT_EQ(FMI::coll::choose_p2p(Operation::barrier, 0, 1024, {}, 8), Algorithm::chain);
}

// ---- a channel that checks its collectives' connect() -------------------------------

class Counting final : public FMI::Comm::PeerToPeerChannel {
 public:
  Counting(std::shared_ptr<FMI::Comm::PeerToPeerChannel> inner, std::size_t budget)
      : inner_(std::move(inner)), budget_(budget) {}
  void init(const FMI::Comm::ChannelContext& ctx) override { inner_->init(ctx); }
  void finalize() noexcept override { inner_->finalize(); }
  std::chrono::milliseconds max_timeout() const override { return inner_->max_timeout(); }
  std::size_t max_connections() const override { return budget_; }
  void connect(std::span<const peer_num> peers, Deadline) override {
    connected_.insert(peers.begin(), peers.end());
    most_ = std::max(most_, connected_.size());
  }
  void send(peer_num dest, ConstBytes data, Tag tag, Deadline deadline) override {
    use(dest, "send to");
    inner_->send(dest, data, tag, deadline);
  }
  void recv(peer_num src, Bytes out, Tag tag, Deadline deadline) override {
    use(src, "recv from");
    inner_->recv(src, out, tag, deadline);
  }
  void sendrecv(peer_num dest, ConstBytes data, peer_num src, Bytes out, Tag tag,
                Deadline deadline) override {
    use(dest, "sendrecv to");
    use(src, "sendrecv from");
    inner_->sendrecv(dest, data, src, out, tag, deadline);
  }
  /// Before each collective: its partners are counted afresh.
  void reset() { connected_.clear(); }
  std::size_t most() const { return most_; }

 private:
  void use(peer_num p, const char* what) {
    PEER_CHECK(connected_.count(p), what, " peer ", p, " that the collective did not connect()");
  }
  std::shared_ptr<FMI::Comm::PeerToPeerChannel> inner_;
  std::size_t budget_;
  std::set<peer_num> connected_;
  std::size_t most_ = 0;
};

/// Runs body(rank, channel, next) on n threads; next(op) resets the count and
/// returns the context of the next collective. Returns the most partners any rank
/// connected for one collective.
template <typename Body>
std::size_t run(unsigned n, std::size_t budget, const Body& body) {
  FMI::Comm::InProcessHub hub(n, std::chrono::seconds(60));
  std::atomic<std::size_t> most{0};
  auto errors = fmitest::run_threads(n, [&](unsigned rank) {
    Counting ch(hub.p2p_endpoint(), budget);
    ch.init(FMI::Comm::ChannelContext{rank, n, "scale", 128});
    std::uint32_t seq = 0;
    body(rank, ch, [&](Operation op) {
      ch.reset();
      return FMI::coll::Context{rank, n, Tag{op, seq++},
                                FMI::Utils::Clock::now() + std::chrono::seconds(60)};
    });
    std::size_t m = most.load();
    while (m < ch.most() && !most.compare_exchange_weak(m, ch.most())) {
    }
    ch.finalize();
  });
  fmitest::expect_no_errors(errors, std::to_string(n) + " peers, budget " + std::to_string(budget));
  return most.load();
}

// Byte i of the block that `src` gives `dst` (dst 0 for blocks everybody gets).
std::byte pattern(peer_num src, peer_num dst, std::size_t i) {
  return std::byte((src * 131u + dst * 29u + i * 7u + i / 251u + 1u) & 0xff);
}
std::vector<std::byte> block(peer_num src, peer_num dst, std::size_t len) {
  std::vector<std::byte> b(len);
  for (std::size_t i = 0; i < len; ++i) b[i] = pattern(src, dst, i);
  return b;
}
// Variable block sizes, some zero: `scale` bytes times 0..6.
std::size_t vcount(peer_num src, peer_num dst, std::size_t scale) {
  return ((src * 3 + dst * 5 + 1) % 7) * scale;
}

std::vector<unsigned> roots(unsigned n) {
  std::vector<unsigned> r = {0};
  if (n / 2 != 0) r.push_back(n / 2);
  if (n - 1 > n / 2) r.push_back(n - 1);
  return r;
}

const std::size_t kBlocks[] = {0, 1, 13, 1000};

// alltoall and alltoallv of every peer's blocks; `a` forced (automatic: choose_p2p
// with the budget). Returns the most partners.
std::size_t alltoalls(unsigned n, Algorithm a, std::size_t budget,
                      const std::vector<std::size_t>& sizes) {
  return run(n, budget, [&](unsigned me, Counting& ch, auto next) {
    const FMI::coll::Options o{0, a};
    for (std::size_t bs : sizes) {
      std::vector<std::byte> send, want;
      for (unsigned p = 0; p < n; ++p) {
        auto b = block(me, p, bs), w = block(p, me, bs);
        send.insert(send.end(), b.begin(), b.end());
        want.insert(want.end(), w.begin(), w.end());
      }
      std::vector<std::byte> got(send.size(), std::byte{0xee});
      FMI::coll::p2p::alltoall(ch, next(Operation::alltoall), send, got, o);
      PEER_CHECK(got == want, "alltoall of ", bs, "-byte blocks, ", FMI::coll::to_string(a));
      // Variable: block me -> p has vcount(me, p) bytes.
      std::vector<std::size_t> sc(n), rc(n);
      send.clear();
      want.clear();
      for (unsigned p = 0; p < n; ++p) {
        sc[p] = vcount(me, p, bs);
        rc[p] = vcount(p, me, bs);
        auto b = block(me, p, sc[p]), w = block(p, me, rc[p]);
        send.insert(send.end(), b.begin(), b.end());
        want.insert(want.end(), w.begin(), w.end());
      }
      got.assign(want.size(), std::byte{0xee});
      FMI::coll::p2p::alltoallv(ch, next(Operation::alltoallv), send, sc, got, rc, o);
      PEER_CHECK(got == want, "alltoallv of ", bs, "-byte scale, ", FMI::coll::to_string(a));
    }
  });
}

// allgather(v), gather(v), scatter(v) at every root, barrier.
std::size_t rooted(unsigned n, Algorithm a, std::size_t budget,
                   const std::vector<std::size_t>& sizes, std::atomic<unsigned>* arrived) {
  return run(n, budget, [&](unsigned me, Counting& ch, auto next) {
    const auto name = FMI::coll::to_string(a);
    for (std::size_t bs : sizes) {
      std::vector<std::size_t> counts(n);
      std::vector<std::byte> all, vall;
      for (unsigned p = 0; p < n; ++p) {
        counts[p] = vcount(p, 0, bs);
        auto b = block(p, 0, bs), v = block(p, 0, counts[p]);
        all.insert(all.end(), b.begin(), b.end());
        vall.insert(vall.end(), v.begin(), v.end());
      }
      const auto mine = block(me, 0, bs), vmine = block(me, 0, counts[me]);
      const bool gathers = a != Algorithm::binomial || arrived == nullptr;
      if (a == Algorithm::bruck || a == Algorithm::automatic) {
        std::vector<std::byte> got(all.size(), std::byte{0xee});
        FMI::coll::p2p::allgather(ch, next(Operation::allgather), mine, got, {0, a});
        PEER_CHECK(got == all, "allgather of ", bs, " bytes, ", name);
        got.assign(vall.size(), std::byte{0xee});
        FMI::coll::p2p::allgatherv(ch, next(Operation::allgatherv), vmine, got, counts, {0, a});
        PEER_CHECK(got == vall, "allgatherv of scale ", bs, ", ", name);
      }
      if ((a == Algorithm::chain || a == Algorithm::automatic) && gathers)
        for (unsigned root : roots(n)) {
          const FMI::coll::Options o{root, a};
          std::vector<std::byte> got(me == root ? all.size() : 0, std::byte{0xee});
          FMI::coll::p2p::gather(ch, next(Operation::gather), mine, got, o);
          if (me == root) PEER_CHECK(got == all, "gather of ", bs, " bytes at ", root, ", ", name);
          std::vector<std::byte> one(bs, std::byte{0xee});
          FMI::coll::p2p::scatter(ch, next(Operation::scatter),
                                  me == root ? ConstBytes(all) : ConstBytes(), one, o);
          PEER_CHECK(one == mine, "scatter of ", bs, " bytes from ", root, ", ", name);
          got.assign(me == root ? vall.size() : 0, std::byte{0xee});
          FMI::coll::p2p::gatherv(ch, next(Operation::gatherv), vmine, got, counts, o);
          if (me == root) PEER_CHECK(got == vall, "gatherv at ", root, ", ", name);
          one.assign(counts[me], std::byte{0xee});
          FMI::coll::p2p::scatterv(ch, next(Operation::scatterv),
                                   me == root ? ConstBytes(vall) : ConstBytes(), counts, one, o);
          PEER_CHECK(one == vmine, "scatterv from ", root, ", ", name);
        }
    }
    if (arrived) {  // nobody leaves a barrier before everybody has arrived at it
      for (unsigned round = 1; round <= 3; ++round) {
        arrived->fetch_add(1);
        FMI::coll::p2p::barrier(ch, next(Operation::barrier), {0, a});
        PEER_CHECK(arrived->load() >= round * n, "barrier ", round, " (", name, ") left with ",
                   arrived->load(), " of ", round * n, " arrivals");
      }
    }
  });
}

std::vector<unsigned> peer_counts() { return {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 33}; }

TEST(Scale, AlltoallBruckAndRingDeliverEveryBlock) {
  for (unsigned n : peer_counts())
    for (Algorithm a : {Algorithm::bruck, Algorithm::ring}) {
      SCOPED_TRACE(std::to_string(n) + " peers, " + FMI::coll::to_string(a));
      alltoalls(n, a, 0, {kBlocks, kBlocks + 4});
    }
  // Large blocks (alltoallv up to 6 x 40 KB per pair) on a count that is no power of two.
  alltoalls(5, Algorithm::bruck, 0, {40000});
  alltoalls(3, Algorithm::ring, 0, {40000});
}

TEST(Scale, AllgatherBruckDeliversEveryBlock) {
  for (unsigned n : peer_counts()) {
    SCOPED_TRACE(std::to_string(n) + " peers");
    rooted(n, Algorithm::bruck, 0, {kBlocks, kBlocks + 4}, nullptr);
  }
  rooted(6, Algorithm::bruck, 0, {300000}, nullptr);
}

TEST(Scale, ChainGatherScatterAndBarrier) {
  for (unsigned n : peer_counts()) {
    SCOPED_TRACE(std::to_string(n) + " peers");
    std::atomic<unsigned> arrived{0};
    rooted(n, Algorithm::chain, 0, {kBlocks, kBlocks + 4}, &arrived);
  }
  rooted(4, Algorithm::chain, 0, {300000}, nullptr);
}

TEST(Scale, BinomialBarrierWaitsForEveryPeer) {
  for (unsigned n : peer_counts()) {
    std::atomic<unsigned> arrived{0};
    rooted(n, Algorithm::binomial, 0, {}, &arrived);
  }
}

// ---- reductions ---------------------------------------------------------------------

// x -> a x + b as (a, b) per 16-byte element; l then r. Associative, not
// commutative: any reordering changes the result.
ReduceOp compose() {
  ReduceOp f;
  f.granularity = 16;
  f.commutative = false;
  f.associative = true;
  f.fn = [](const void*, ConstBytes l, ConstBytes r, Bytes out) {
    for (std::size_t i = 0; i + 16 <= out.size(); i += 16) {
      U64 x[2], y[2];
      std::memcpy(x, l.data() + i, 16);
      std::memcpy(y, r.data() + i, 16);
      const U64 z[2] = {y[0] * x[0], y[0] * x[1] + y[1]};
      std::memcpy(out.data() + i, z, 16);
    }
  };
  return f;
}
ReduceOp sum() {
  ReduceOp f;
  f.granularity = 8;
  f.fn = [](const void*, ConstBytes l, ConstBytes r, Bytes out) {
    for (std::size_t i = 0; i + 8 <= out.size(); i += 8) {
      U64 x, y;
      std::memcpy(&x, l.data() + i, 8);
      std::memcpy(&y, r.data() + i, 8);
      x += y;
      std::memcpy(out.data() + i, &x, 8);
    }
  };
  return f;
}
std::vector<U64> words(unsigned peer, std::size_t n) {
  std::vector<U64> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = (peer + 3) * 1000003ull + i * 7 + (i % 5) * peer;
  return v;
}
std::vector<U64> fold(const ReduceOp& f, unsigned from, unsigned to, std::size_t n) {
  auto acc = words(from, n);
  for (unsigned q = from + 1; q <= to; ++q) {
    const auto x = words(q, n);
    f(std::as_bytes(std::span(acc)), std::as_bytes(std::span(x)),
      std::as_writable_bytes(std::span(acc)));
  }
  return acc;
}

TEST(Scale, AllreduceChainIsLeftToRight) {
  const ReduceOp ops[] = {sum(), compose()};
  for (unsigned n : peer_counts())
    for (const auto& f : ops)
      run(n, 0, [&](unsigned me, Counting& ch, auto next) {
        for (std::size_t w : {std::size_t(0), std::size_t(2), std::size_t(26)}) {
          const auto mine = words(me, w);
          std::vector<U64> got(w);
          FMI::coll::p2p::allreduce(ch, next(Operation::allreduce), std::as_bytes(std::span(mine)),
                                    std::as_writable_bytes(std::span(got)), f,
                                    {0, Algorithm::chain, 48});
          PEER_CHECK(got == fold(f, 0, n - 1, w), "allreduce chain of ", w, " words");
        }
      });
}

// Every collective with the automatic choice under a small budget: the values, and
// no rank connecting more partners than the budget for one collective.
void every_collective(unsigned n, std::size_t budget) {
  SCOPED_TRACE(std::to_string(n) + " peers, budget " + std::to_string(budget));
  std::size_t most = alltoalls(n, Algorithm::automatic, budget, {0, 24});
  std::atomic<unsigned> arrived{0};
  most = std::max(most, rooted(n, Algorithm::automatic, budget, {0, 24}, &arrived));
  const ReduceOp ops[] = {sum(), compose()};
  most = std::max(most, run(n, budget, [&](unsigned me, Counting& ch, auto next) {
                    for (const auto& f : ops)
                      for (std::size_t w : {std::size_t(2), std::size_t(6)}) {
                        const auto mine = words(me, w);
                        const ConstBytes in = std::as_bytes(std::span(mine));
                        std::vector<U64> got(w);
                        const Bytes out = std::as_writable_bytes(std::span(got));
                        for (unsigned root : roots(n)) {
                          FMI::coll::p2p::reduce(ch, next(Operation::reduce), in, out, f, {root});
                          if (me == root)
                            PEER_CHECK(got == fold(f, 0, n - 1, w), "reduce at ", root);
                          std::vector<U64> b = me == root ? mine : std::vector<U64>(w);
                          FMI::coll::p2p::bcast(ch, next(Operation::bcast),
                                                std::as_writable_bytes(std::span(b)), {root});
                          PEER_CHECK(b == words(root, w), "bcast from ", root);
                        }
                        FMI::coll::p2p::allreduce(ch, next(Operation::allreduce), in, out, f, {});
                        PEER_CHECK(got == fold(f, 0, n - 1, w), "allreduce");
                        FMI::coll::p2p::scan(ch, next(Operation::scan), in, out, f, {});
                        PEER_CHECK(got == fold(f, 0, me, w), "scan");
                        // reduce_scatter: peer p's block is element p of everybody's n elements.
                        std::vector<U64> all(std::size_t(n) * w);
                        for (unsigned p = 0; p < n; ++p) {
                          const auto x = words(me, w);
                          std::copy(x.begin(), x.end(), all.begin() + p * w);
                        }
                        std::vector<U64> part(w);
                        FMI::coll::p2p::reduce_scatter(
                            ch, next(Operation::reduce_scatter), std::as_bytes(std::span(all)),
                            std::as_writable_bytes(std::span(part)), f, {});
                        PEER_CHECK(part == fold(f, 0, n - 1, w), "reduce_scatter");
                      }
                  }));
  EXPECT_LE(most, budget);
  EXPECT_GT(most, 0u);
}

TEST(Scale, EveryCollectiveWithinBudget8At33And64Peers) {
  every_collective(33, 8);
  every_collective(64, 8);
}

TEST(Scale, EveryCollectiveWithinBudget16At33Peers) { every_collective(33, 16); }

}  // namespace
