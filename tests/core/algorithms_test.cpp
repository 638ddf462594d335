// The segmented pipelines of src/collectives/p2p.cpp (Algorithm::pipeline), driven
// directly over the in-process point-to-point channel with the algorithm forced:
// every peer count 1..9, roots 0, n/2 and n-1, a commutative sum, an ordered
// (non-commutative, associative) composition of affine maps that detects any
// reordering, and a non-associative 2a+b that detects any regrouping; sizes 0,
// below one segment, an exact number of segments and one that does not divide.
// A small Options::segment cuts the few-element buffers into many segments; one
// case per operation runs the default kSegment on a buffer that does not divide.
// The full conformance matrix (every algorithm, every channel) is
// tests/conformance/collectives_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../support/harness.h"
#include "collectives/collectives.h"
#include "fmi/inproc.h"

namespace {

using FMI::coll::Algorithm;
using FMI::Comm::Bytes;
using FMI::Comm::ConstBytes;
using FMI::Utils::Operation;
using FMI::Utils::ReduceOp;
using U64 = std::uint64_t;

// Element-wise functions over uint64 words; `width` words per element.
struct Fn {
  const char* name;
  std::size_t width;
  bool commutative, associative;
  void (*apply)(const U64* l, const U64* r, U64* out);
};
// x -> a x + b as (a, b); l then r: (a_r a_l, a_r b_l + b_r). Reordering changes it.
void compose(const U64* l, const U64* r, U64* out) {
  const U64 a = r[0] * l[0], b = r[0] * l[1] + r[1];
  out[0] = a;
  out[1] = b;
}
void sum(const U64* l, const U64* r, U64* out) { out[0] = l[0] + r[0]; }
void twice_plus(const U64* l, const U64* r, U64* out) { out[0] = 2 * l[0] + r[0]; }
const Fn kFns[] = {{"sum", 1, true, true, sum},
                   {"compose", 2, false, true, compose},
                   {"2a+b", 1, false, false, twice_plus}};

ReduceOp op_of(const Fn& fn) {
  ReduceOp r;
  r.ctx = &fn;
  r.granularity = fn.width * sizeof(U64);
  r.commutative = fn.commutative;
  r.associative = fn.associative;
  r.fn = [](const void* ctx, ConstBytes l, ConstBytes rr, Bytes out) {
    const auto& f = *static_cast<const Fn*>(ctx);
    // Copies: out may alias l or r, and the spans need not be aligned.
    std::vector<U64> a(l.size() / 8), b(rr.size() / 8), c(out.size() / 8);
    if (!l.empty()) std::memcpy(a.data(), l.data(), l.size());
    if (!rr.empty()) std::memcpy(b.data(), rr.data(), rr.size());
    for (std::size_t i = 0; i + f.width <= c.size(); i += f.width) f.apply(&a[i], &b[i], &c[i]);
    if (!out.empty()) std::memcpy(out.data(), c.data(), out.size());
  };
  return r;
}

U64 value(unsigned peer, std::size_t i) { return (peer + 3) * 1000003ull + i * 7 + (i % 5) * peer; }
std::vector<U64> contribution(unsigned peer, std::size_t words) {
  std::vector<U64> v(words);
  for (std::size_t i = 0; i < words; ++i) v[i] = value(peer, i);
  return v;
}
// x_0 op x_1 op ... op x_upto, left to right.
std::vector<U64> fold(const Fn& f, unsigned upto, std::size_t words) {
  std::vector<U64> acc = contribution(0, words);
  for (unsigned q = 1; q <= upto; ++q) {
    const auto x = contribution(q, words);
    for (std::size_t i = 0; i + f.width <= words; i += f.width) f.apply(&acc[i], &x[i], &acc[i]);
  }
  return acc;
}

std::vector<unsigned> roots(unsigned n) {
  std::vector<unsigned> r = {0};
  if (n / 2 != 0) r.push_back(n / 2);
  if (n - 1 > n / 2) r.push_back(n - 1);
  return r;
}

// Segment of 48 bytes: 6 words, 3 compose elements. Sizes in words: empty, less
// than a segment, exactly 4 segments, 4 segments and one element more.
constexpr std::size_t kSeg = 48;
const std::size_t kWords[] = {0, 2, 24, 26};

/// Runs body(rank, channel, context) on n threads over one in-process hub.
template <typename Body>
void run(unsigned n, const Body& body) {
  FMI::Comm::InProcessHub hub(n, std::chrono::seconds(20));
  auto errors = fmitest::run_threads(n, [&](unsigned rank) {
    auto ch = hub.p2p_endpoint();
    ch->init(FMI::Comm::ChannelContext{rank, n, "algorithms", 128});
    std::uint32_t seq = 0;
    body(rank, *ch, [&](Operation op) {
      return FMI::coll::Context{rank, n, FMI::Comm::Tag{op, seq++},
                                FMI::Utils::Clock::now() + std::chrono::seconds(20)};
    });
    ch->finalize();
  });
  fmitest::expect_no_errors(errors, std::to_string(n) + " peers");
}

class Pipeline : public ::testing::TestWithParam<unsigned> {};

TEST_P(Pipeline, BcastDeliversEveryByteFromEveryRoot) {
  const unsigned n = GetParam();
  run(n, [&](unsigned me, FMI::Comm::PeerToPeerChannel& ch, auto next) {
    // Bytes: empty, below one segment, exactly 3 segments, 3 segments and 5 bytes.
    for (unsigned root : roots(n))
      for (std::size_t len : {std::size_t(0), std::size_t(7), 3 * kSeg, 3 * kSeg + 5}) {
        std::vector<std::byte> want(len), buf(len);
        fmitest::fill_pattern(want, root, unsigned(len));
        if (me == root) buf = want;
        FMI::coll::p2p::bcast(ch, next(Operation::bcast), buf, {root, Algorithm::pipeline, kSeg});
        auto r = fmitest::bytes_equal(buf, want);
        PEER_CHECK(r, "bcast root ", root, ", ", len, " bytes on peer ", me, ": ", r.message());
      }
  });
}

TEST_P(Pipeline, ReduceFoldsLeftToRightAtEveryRoot) {
  const unsigned n = GetParam();
  run(n, [&](unsigned me, FMI::Comm::PeerToPeerChannel& ch, auto next) {
    for (const Fn& f : kFns)
      for (unsigned root : roots(n))
        for (std::size_t words : kWords) {
          const auto mine = contribution(me, words);
          std::vector<U64> out(words, 99);
          const ReduceOp op = op_of(f);
          FMI::coll::p2p::reduce(ch, next(Operation::reduce), std::as_bytes(std::span(mine)),
                                 std::as_writable_bytes(std::span(out)), op,
                                 {root, Algorithm::pipeline, kSeg});
          if (me == root)
            PEER_CHECK(out == fold(f, n - 1, words), "reduce ", f.name, " root ", root, ", ", words,
                       " words on ", n, " peers: wrong result");
        }
  });
}

TEST_P(Pipeline, ScanGivesEveryPeerItsOrderedPrefix) {
  const unsigned n = GetParam();
  run(n, [&](unsigned me, FMI::Comm::PeerToPeerChannel& ch, auto next) {
    for (const Fn& f : kFns)
      for (std::size_t words : kWords) {
        const auto mine = contribution(me, words);
        std::vector<U64> out(words, 99);
        FMI::coll::p2p::scan(ch, next(Operation::scan), std::as_bytes(std::span(mine)),
                             std::as_writable_bytes(std::span(out)), op_of(f),
                             {0, Algorithm::pipeline, kSeg});
        PEER_CHECK(out == fold(f, me, words), "scan ", f.name, ", ", words, " words, peer ", me,
                   " of ", n, ": wrong prefix");
      }
  });
}

// In place (recv is send) on the peers that keep a result.
TEST_P(Pipeline, InPlaceReduceAndScan) {
  const unsigned n = GetParam();
  const Fn& f = kFns[1];
  run(n, [&](unsigned me, FMI::Comm::PeerToPeerChannel& ch, auto next) {
    auto buf = contribution(me, 26);
    const auto b = std::as_writable_bytes(std::span(buf));
    FMI::coll::p2p::scan(ch, next(Operation::scan), b, b, op_of(f), {0, Algorithm::pipeline, kSeg});
    PEER_CHECK(buf == fold(f, me, 26), "in-place scan on peer ", me);
    const auto fresh = contribution(me, 26);
    std::copy(fresh.begin(), fresh.end(), buf.begin());  // b keeps pointing at buf
    const unsigned root = n - 1;
    FMI::coll::p2p::reduce(ch, next(Operation::reduce), b, b, op_of(f),
                           {root, Algorithm::pipeline, kSeg});
    if (me == root) PEER_CHECK(buf == fold(f, n - 1, 26), "in-place reduce on the root");
  });
}

INSTANTIATE_TEST_SUITE_P(Peers, Pipeline, ::testing::Range(1u, 10u),
                         [](const auto& i) { return "n" + std::to_string(i.param); });

// The ring reduce-scatter that keeps only this peer's chunk (two chunk buffers, not
// a buffer of the whole message), forced: reduce at every root, in place on the
// root, and reduce_scatter, also with recv inside send; sizes with empty chunks,
// chunks of unequal size, and (3 and 5 peers) chunks of several 1 MiB ring segments.
class RingMine : public ::testing::TestWithParam<unsigned> {};

TEST_P(RingMine, ReduceAtEveryRootAndInPlace) {
  const unsigned n = GetParam();
  const Fn& f = kFns[0];
  std::vector<std::size_t> sizes(std::begin(kWords), std::end(kWords));
  sizes.push_back(5 * n + 3);
  if (n == 3 || n == 5) sizes.push_back(n * ((std::size_t(1) << 20) / 8) * 2 + 3);
  run(n, [&](unsigned me, FMI::Comm::PeerToPeerChannel& ch, auto next) {
    for (unsigned root : roots(n))
      for (std::size_t words : sizes) {
        const auto mine = contribution(me, words);
        std::vector<U64> out(words, 99);
        FMI::coll::p2p::reduce(ch, next(Operation::reduce), std::as_bytes(std::span(mine)),
                               std::as_writable_bytes(std::span(out)), op_of(f),
                               {root, Algorithm::ring});
        if (me == root)
          PEER_CHECK(out == fold(f, n - 1, words), "ring reduce root ", root, ", ", words,
                     " words on ", n, " peers: wrong result");
      }
    auto buf = contribution(me, 5 * n + 3);
    const auto b = std::as_writable_bytes(std::span(buf));
    FMI::coll::p2p::reduce(ch, next(Operation::reduce), b, b, op_of(f), {n - 1, Algorithm::ring});
    if (me == n - 1) PEER_CHECK(buf == fold(f, n - 1, 5 * n + 3), "in-place ring reduce");
  });
}

TEST_P(RingMine, ReduceScatterGivesEveryPeerItsBlock) {
  const unsigned n = GetParam();
  const Fn& f = kFns[0];
  std::vector<std::size_t> blocks = {0, 1, 7};
  if (n == 3 || n == 5) blocks.push_back((std::size_t(1) << 20) / 8 * 2 + 1);
  run(n, [&](unsigned me, FMI::Comm::PeerToPeerChannel& ch, auto next) {
    for (std::size_t bw : blocks)
      for (bool inside : {false, true}) {
        auto send = contribution(me, n * bw);
        const auto want_all = fold(f, n - 1, n * bw);
        const std::vector<U64> want(want_all.begin() + std::ptrdiff_t(me * bw),
                                    want_all.begin() + std::ptrdiff_t((me + 1) * bw));
        std::vector<U64> own(bw, 99);
        // inside: recv is the last block of send itself.
        const auto recv = inside ? std::as_writable_bytes(std::span(send)).subspan((n - 1) * bw * 8)
                                 : std::as_writable_bytes(std::span(own));
        FMI::coll::p2p::reduce_scatter(ch, next(Operation::reduce_scatter),
                                       std::as_bytes(std::span(send)), recv, op_of(f),
                                       {0, Algorithm::ring});
        std::vector<U64> got(bw);
        if (bw > 0) std::memcpy(got.data(), recv.data(), bw * 8);
        PEER_CHECK(got == want, "ring reduce_scatter, ", bw, " words per block",
                   inside ? " (recv inside send)" : "", ", peer ", me, " of ", n, ": wrong block");
      }
  });
}

INSTANTIATE_TEST_SUITE_P(Peers, RingMine, ::testing::Range(1u, 10u),
                         [](const auto& i) { return "n" + std::to_string(i.param); });

// The default segment (kSegment) on a buffer of 2.5 segments, 3 and 5 peers.
TEST(PipelineDefaultSegment, LargeBuffersThatDoNotDivide) {
  const std::size_t words = (5 * FMI::coll::kSegment / 2 + 16) / 8;
  for (unsigned n : {3u, 5u})
    run(n, [&](unsigned me, FMI::Comm::PeerToPeerChannel& ch, auto next) {
      const Fn& f = kFns[1];
      const auto mine = contribution(me, words);
      std::vector<U64> out(words);
      FMI::coll::p2p::scan(ch, next(Operation::scan), std::as_bytes(std::span(mine)),
                           std::as_writable_bytes(std::span(out)), op_of(f),
                           {0, Algorithm::pipeline});
      PEER_CHECK(out == fold(f, me, words), "scan, peer ", me);
      FMI::coll::p2p::reduce(ch, next(Operation::reduce), std::as_bytes(std::span(mine)),
                             std::as_writable_bytes(std::span(out)), op_of(kFns[0]),
                             {1, Algorithm::pipeline});
      if (me == 1) PEER_CHECK(out == fold(kFns[0], n - 1, words), "reduce at root 1");
      std::vector<U64> b = me == 2 ? mine : std::vector<U64>(words);
      FMI::coll::p2p::bcast(ch, next(Operation::bcast), std::as_writable_bytes(std::span(b)),
                            {2, Algorithm::pipeline});
      PEER_CHECK(b == contribution(2, words), "bcast from 2 on peer ", me);
    });
}

// The choice: pipelines only where they can run, for messages of at least n
// segments on 3-7 peers, of 64 MiB on 2 (where the sweep of docs/collectives.md
// found them faster), and for scans from 64 KiB on 8-16 peers; bcast binomial up to
// 8 peers; a pure function of its inputs.
TEST(PipelineChoice, OnlyForLargeChunkableCallsWhereMeasuredFaster) {
  using FMI::coll::choose_p2p;
  using FMI::coll::kSegment;
  const FMI::coll::ReduceProps sum{true, true, 8}, ordered{false, true, 16}, whole{false, true, 0};
  for (unsigned n : {3u, 4u, 8u, 9u}) {
    const std::size_t big = n * kSegment;
    const bool wide = n >= 8;
    EXPECT_EQ(choose_p2p(Operation::scan, big, n, sum), Algorithm::pipeline) << n;
    EXPECT_EQ(choose_p2p(Operation::scan, big, n, ordered), Algorithm::pipeline) << n;
    EXPECT_EQ(choose_p2p(Operation::reduce, big, n, ordered), Algorithm::pipeline) << n;
    EXPECT_EQ(choose_p2p(Operation::reduce, big, n, {false, false, 8}), Algorithm::pipeline) << n;
    EXPECT_EQ(choose_p2p(Operation::scan, big - 8, n, sum),
              wide ? Algorithm::pipeline : Algorithm::recursive_doubling)
        << n;
    EXPECT_EQ(choose_p2p(Operation::scan, big, n, whole), Algorithm::recursive_doubling) << n;
    EXPECT_EQ(choose_p2p(Operation::reduce, big, n, whole), Algorithm::binomial) << n;
    // Commutative sums from 1 MiB on 8-16 peers: the ring, not the chain.
    EXPECT_EQ(choose_p2p(Operation::reduce, 1 << 20, n, sum),
              wide ? Algorithm::ring : Algorithm::pipeline)
        << n;
    EXPECT_EQ(choose_p2p(Operation::bcast, 2 * big, n, {}),
              n <= 8 ? Algorithm::binomial : Algorithm::pipeline)
        << n;
    EXPECT_EQ(choose_p2p(Operation::bcast, big, n, {}),
              n <= 8 ? Algorithm::binomial : Algorithm::scatter_allgather)
        << n;
    EXPECT_EQ(choose_p2p(Operation::bcast, 8, n, {}), Algorithm::binomial) << n;
  }
  // Scans of one segment: the chain on 8-16 peers only.
  EXPECT_EQ(choose_p2p(Operation::scan, 64 * 1024, 8, sum), Algorithm::pipeline);
  EXPECT_EQ(choose_p2p(Operation::scan, 64 * 1024 - 8, 8, sum), Algorithm::recursive_doubling);
  EXPECT_EQ(choose_p2p(Operation::scan, 64 * 1024, 4, sum), Algorithm::recursive_doubling);
  EXPECT_EQ(choose_p2p(Operation::scan, 64 * 1024, 17, sum), Algorithm::recursive_doubling);
  // 2 peers: the chain from 64 MiB on, for reduce and scan alike.
  EXPECT_EQ(choose_p2p(Operation::scan, 64 * kSegment, 2, sum), Algorithm::recursive_doubling);
  EXPECT_EQ(choose_p2p(Operation::scan, std::size_t(64) << 20, 2, sum), Algorithm::pipeline);
  EXPECT_EQ(choose_p2p(Operation::reduce, std::size_t(64) << 20, 2, sum), Algorithm::pipeline);
  EXPECT_EQ(choose_p2p(Operation::reduce, (std::size_t(64) << 20) - 8, 2, sum),
            Algorithm::binomial);
  EXPECT_EQ(choose_p2p(Operation::bcast, 64 * kSegment, 2, {}), Algorithm::binomial);
  // 1 peer: no chain.
  EXPECT_EQ(choose_p2p(Operation::reduce, std::size_t(64) << 20, 1, sum), Algorithm::binomial);
  EXPECT_EQ(choose_p2p(Operation::scan, std::size_t(64) << 20, 1, sum),
            Algorithm::recursive_doubling);
  EXPECT_TRUE(FMI::coll::supports_p2p(Operation::reduce, Algorithm::pipeline, ordered));
  EXPECT_FALSE(FMI::coll::supports_p2p(Operation::reduce, Algorithm::pipeline, whole));
  EXPECT_FALSE(FMI::coll::supports_p2p(Operation::reduce, Algorithm::ring, ordered));
  EXPECT_FALSE(FMI::coll::supports_p2p(Operation::allreduce, Algorithm::pipeline, sum));
}

// A pipeline forced on a whole-buffer function would cut it apart: refused.
TEST(PipelineChoice, ForcedOnAWholeBufferFunctionIsAUsageError) {
  run(2, [&](unsigned me, FMI::Comm::PeerToPeerChannel& ch, auto next) {
    ReduceOp whole = op_of(kFns[1]);
    whole.granularity = 0;
    std::vector<U64> mine(4, me), out(4);
    try {
      FMI::coll::p2p::scan(ch, next(Operation::scan), std::as_bytes(std::span(mine)),
                           std::as_writable_bytes(std::span(out)), whole,
                           {0, Algorithm::pipeline, kSeg});
      PEER_CHECK(false, "no UsageError on peer ", me);
    } catch (const FMI::UsageError& e) {
      PEER_CHECK(std::string(e.what()).find("pipeline") != std::string::npos, e.what());
    }
  });
}

}  // namespace
