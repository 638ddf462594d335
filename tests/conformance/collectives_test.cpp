// One collective suite for every channel of the build, over
// (channel x peers x size x root x algorithm), asserting values:
//
//  - Collectives.Correct/<channel>/<op>_n<peers>: each collective algorithm of
//    src/collectives/ forced through coll::Options::algorithm (every p2p algorithm
//    on the point-to-point channels; the store family on the object stores), for
//    every root and size of the channel's axes, including empty blocks, blocks
//    smaller than the peer count and blocks above coll::kLargeMessage, and the
//    reductions with a commutative sum, a non-commutative associative 2x2 matrix
//    product and a neither-commutative-nor-associative 2a+b where the algorithm
//    accepts them.
//  - CommunicatorCollectives.Every/<channel>/n<peers>: every collective and
//    send/recv through FMI::Communicator with the channel registered as its only
//    channel (the algorithm the Communicator chooses), at 0, 3 and a large count;
//    the store is empty once every Communicator is destroyed; a second run under
//    the same name reads only its own objects.
//  - LargeCollectives.Every64MiB/Direct: the same with 64 MiB per peer, 3 peers.
//
// The axes per channel (backends.cpp, Backend::axes, and tests/README.md) keep the
// suite within the CI budget: full axes on the in-process channels; 1, 2, 3, 5, 8
// peers on Direct and Redis with roots {n-1} (not 0); 1, 2, 3, 5 peers and fewer
// functions and sizes on S3 (moto answers in milliseconds per request).
#include "collectives/collectives.h"
#include "backends.h"

namespace fmitest::conformance {
namespace {

using FMI::coll::Algorithm;
using FMI::Comm::Bytes;
using FMI::Comm::ConstBytes;
using FMI::Utils::Function;
using FMI::Utils::Operation;
using U64 = std::vector<std::uint64_t>;

struct Param {
  std::string backend;
  Operation op;
  unsigned n;
};

std::string case_name(const ::testing::TestParamInfo<Param>& i) {
  return std::string(FMI::Utils::to_string(i.param.op)) + "_n" + std::to_string(i.param.n);
}

/// The algorithms each operation has for a kind of channel.
std::vector<Algorithm> algorithms(Operation op, FMI::Comm::ChannelKind kind) {
  if (kind == FMI::Comm::ChannelKind::object_store) return {Algorithm::linear};
  switch (op) {
    case Operation::bcast:
      return {Algorithm::linear, Algorithm::binomial, Algorithm::scatter_allgather,
              Algorithm::pipeline};
    case Operation::barrier:
      return {Algorithm::dissemination, Algorithm::binomial, Algorithm::chain};
    case Operation::gather:
    case Operation::scatter: return {Algorithm::linear, Algorithm::binomial, Algorithm::chain};
    case Operation::reduce:
      return {Algorithm::linear, Algorithm::binomial, Algorithm::ring, Algorithm::pipeline};
    case Operation::allreduce:
      return {Algorithm::linear, Algorithm::recursive_doubling, Algorithm::ring, Algorithm::chain,
              Algorithm::binomial};
    case Operation::scan:
      return {Algorithm::linear, Algorithm::recursive_doubling, Algorithm::pipeline};
    case Operation::allgather: return {Algorithm::binomial, Algorithm::ring, Algorithm::bruck};
    case Operation::alltoall: return {Algorithm::pairwise, Algorithm::bruck, Algorithm::ring};
    case Operation::reduce_scatter: return {Algorithm::binomial, Algorithm::ring};
    default: return {};
  }
}

bool rooted(Operation op) {
  return op == Operation::bcast || op == Operation::gather || op == Operation::scatter ||
         op == Operation::reduce;
}
bool reduction(Operation op) {
  return op == Operation::reduce || op == Operation::allreduce || op == Operation::scan ||
         op == Operation::reduce_scatter;
}

std::vector<unsigned> roots(unsigned n, bool every) {
  if (!every) return {n - 1};
  std::vector<unsigned> r = {0};
  if (n / 2 != 0) r.push_back(n / 2);
  if (n - 1 != 0 && n - 1 != n / 2) r.push_back(n - 1);
  return r;
}

std::vector<std::byte> pat(unsigned peer, unsigned block, std::size_t len) {
  std::vector<std::byte> v(len);
  fill_pattern(v, peer, block);
  return v;
}

template <typename E>
ConstBytes cb(const std::vector<E>& v) {
  return std::as_bytes(std::span<const E>(v));
}
template <typename E>
Bytes wb(std::vector<E>& v) {
  return std::as_writable_bytes(std::span<E>(v));
}

U64 matmul(U64 a, U64 b) {  // 2x2 matrices, four elements at a time
  U64 c(a.size());
  for (std::size_t k = 0; k + 3 < a.size(); k += 4) {
    c[k] = a[k] * b[k] + a[k + 1] * b[k + 2];
    c[k + 1] = a[k] * b[k + 1] + a[k + 1] * b[k + 3];
    c[k + 2] = a[k + 2] * b[k] + a[k + 3] * b[k + 2];
    c[k + 3] = a[k + 2] * b[k + 1] + a[k + 3] * b[k + 3];
  }
  return c;
}
U64 affine(U64 a, U64 b) {
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = 2 * a[i] + b[i];
  return a;
}

/// One collective call on one peer: the channel, its kind, and the next tag.
struct Call {
  FMI::Comm::Channel& ch;
  unsigned rank, n;
  std::uint32_t seq = 0;
  std::chrono::milliseconds timeout;

  FMI::coll::Context next(Operation op) {
    return {rank, n, FMI::Comm::Tag{op, seq++}, Clock::now() + timeout};
  }
  FMI::Comm::PeerToPeerChannel* p2p() { return dynamic_cast<FMI::Comm::PeerToPeerChannel*>(&ch); }
  FMI::Comm::ObjectStoreChannel& store() {
    return dynamic_cast<FMI::Comm::ObjectStoreChannel&>(ch);
  }
};

// Dispatch to the algorithm family of the channel's kind.
#define FMI_COLL(call, fn, ...)                          \
  do {                                                   \
    if (auto* p = (call).p2p())                          \
      FMI::coll::p2p::fn(*p, __VA_ARGS__);               \
    else                                                 \
      FMI::coll::store::fn((call).store(), __VA_ARGS__); \
  } while (0)

void check_bytes(std::span<const std::byte> got, std::span<const std::byte> want,
                 const std::string& where) {
  auto r = bytes_equal(got, want);
  PEER_CHECK(r, where, ": ", r.message());
}

void data_op(Call& call, Operation op, const FMI::coll::Options& o, std::size_t bs,
             const std::string& where) {
  const unsigned p = call.rank, n = call.n, root = o.root;
  const auto c = call.next(op);
  switch (op) {
    case Operation::bcast: {
      auto buf = p == root ? pat(root, 0, bs) : std::vector<std::byte>(bs);
      FMI_COLL(call, bcast, c, buf, o);
      check_bytes(buf, pat(root, 0, bs), where);
      break;
    }
    case Operation::gather: {
      auto s = pat(p, 0, bs);
      std::vector<std::byte> r(n * bs);
      FMI_COLL(call, gather, c, s, r, o);
      if (p == root)
        for (unsigned q = 0; q < n; ++q)
          check_bytes(std::span(r).subspan(q * bs, bs), pat(q, 0, bs),
                      where + ", block of peer " + std::to_string(q));
      break;
    }
    case Operation::scatter: {
      std::vector<std::byte> s(n * bs), r(bs);
      for (unsigned q = 0; q < n; ++q) fill_pattern(std::span(s).subspan(q * bs, bs), root, q);
      FMI_COLL(call, scatter, c, s, r, o);
      check_bytes(r, pat(root, p, bs), where);
      break;
    }
    case Operation::allgather: {
      auto s = pat(p, 0, bs);
      std::vector<std::byte> r(n * bs);
      FMI_COLL(call, allgather, c, s, r, o);
      for (unsigned q = 0; q < n; ++q)
        check_bytes(std::span(r).subspan(q * bs, bs), pat(q, 0, bs),
                    where + ", block of peer " + std::to_string(q));
      break;
    }
    case Operation::alltoall: {
      std::vector<std::byte> s(n * bs), r(n * bs);
      for (unsigned q = 0; q < n; ++q) fill_pattern(std::span(s).subspan(q * bs, bs), p, q);
      FMI_COLL(call, alltoall, c, s, r, o);
      for (unsigned q = 0; q < n; ++q)
        check_bytes(std::span(r).subspan(q * bs, bs), pat(q, p, bs),
                    where + ", block from peer " + std::to_string(q));
      break;
    }
    case Operation::barrier: FMI_COLL(call, barrier, c, o); break;
    default: PEER_CHECK(false, "not a data operation");
  }
}

void reduction_op(Call& call, Operation op, const FMI::coll::Options& o, const Function<U64>& f,
                  std::size_t gran, std::size_t len, const std::string& where) {
  const unsigned p = call.rank, n = call.n;
  const bool rs = op == Operation::reduce_scatter;
  // Peer q's element i; slices are made directly (the expected values of a
  // reduce_scatter over 16 peers would otherwise cost 16 full vectors per peer).
  auto val = [](unsigned q, std::size_t i) { return (q + 2) * 7919ull + (i % 13) * (q % 3 + 1); };
  auto slice = [&](unsigned q, std::size_t off, std::size_t count) {
    U64 v(count);
    for (std::size_t i = 0; i < count; ++i) v[i] = val(q, off + i);
    return v;
  };
  // Left to right, as an ordered reduction must combine.
  auto fold = [&](unsigned upto, std::size_t off) {
    U64 acc = slice(0, off, len);
    for (unsigned q = 1; q <= upto; ++q) acc = f(acc, slice(q, off, len));
    return acc;
  };
  const U64 mine = slice(p, 0, rs ? n * len : len);
  U64 r(len, 99);
  const auto c = call.next(op);
  auto fop = f.op();
  if (gran) fop.granularity = gran;  // a user function declared element-wise
  auto expect = [&](const U64& want) {
    auto e = elems_equal(r, want);
    PEER_CHECK(e, where, ": ", e.message());
  };
  switch (op) {
    case Operation::reduce:
      FMI_COLL(call, reduce, c, cb(mine), wb(r), fop, o);
      if (p == o.root) expect(fold(n - 1, 0));
      break;
    case Operation::allreduce:
      FMI_COLL(call, allreduce, c, cb(mine), wb(r), fop, o);
      expect(fold(n - 1, 0));
      break;
    case Operation::scan:
      FMI_COLL(call, scan, c, cb(mine), wb(r), fop, o);
      expect(fold(p, 0));
      break;
    case Operation::reduce_scatter:
      FMI_COLL(call, reduce_scatter, c, cb(mine), wb(r), fop, o);
      expect(fold(n - 1, p * len));
      break;
    default: PEER_CHECK(false, "not a reduction");
  }
}

class Collectives : public ::testing::TestWithParam<Param> {};

TEST_P(Collectives, Correct) {
  const Param& prm = GetParam();
  Backend& b = backend(prm.backend);
  const Axes axes = b.axes();
  const auto algs = algorithms(prm.op, b.kind());
  const auto rs = rooted(prm.op) ? roots(prm.n, axes.every_root) : std::vector<unsigned>{0};
  run(b, prm.n, [&](unsigned me, Group& g) {
    auto ch = g.open(me);
    Call call{*ch, me, prm.n, 0, b.max_timeout()};
    for (Algorithm alg : algs) {
      for (unsigned root : rs) {
        // pipeline: also 1000-byte segments, so that the sizes of the axes cut into
        // many segments that do not divide them (the default is kSegment).
        const FMI::coll::Options o{root, alg, alg == Algorithm::pipeline ? 1000u : 0u};
        const std::string at = std::string(FMI::coll::to_string(alg)) + ", peer " +
                               std::to_string(me) + ", root " + std::to_string(root);
        if (!reduction(prm.op)) {
          for (std::size_t bs : axes.block_bytes)
            data_op(call, prm.op, o, bs, at + ", blocks of " + std::to_string(bs) + " bytes");
          continue;
        }
        // Which functions an algorithm accepts: ring needs an element-wise
        // commutative operator; recursive doubling and binomial need
        // associativity; linear takes all.
        // pipeline cuts the buffer into segments: the user functions run on it
        // declared element-wise (granularity: one 2x2 matrix, one element).
        struct Named {
          std::string name;
          Function<U64> f;
          std::size_t gran = 0;
        };
        const bool piped = alg == Algorithm::pipeline;
        std::vector<Named> fns = {{"sum", Function<U64>::sum()}};
        if (alg != Algorithm::ring && axes.every_function)
          fns.push_back({"matmul", {matmul, false, true}, piped ? 32u : 0u});
        if (alg == Algorithm::linear || alg == Algorithm::chain || piped)
          fns.push_back({"2a+b", {affine, false, false}, piped ? 8u : 0u});
        for (const auto& nf : fns)
          for (std::size_t len : axes.reduce_elems)
            reduction_op(call, prm.op, o, nf.f, nf.gran, len,
                         at + ", " + nf.name + ", " + std::to_string(len) + " elements");
      }
    }
    ch->finalize();
  });
}

std::vector<Param> params(const std::string& name) {
  const auto ops = {Operation::bcast,         Operation::barrier,   Operation::gather,
                    Operation::scatter,       Operation::reduce,    Operation::allreduce,
                    Operation::scan,          Operation::allgather, Operation::alltoall,
                    Operation::reduce_scatter};
  std::vector<Param> v;
  for (Operation op : ops)
    for (unsigned n : backend(name).axes().peers) v.push_back({name, op, n});
  return v;
}

INSTANTIATE_TEST_SUITE_P(InProcP2P, Collectives, ::testing::ValuesIn(params("InProcP2P")),
                         case_name);
INSTANTIATE_TEST_SUITE_P(InProcStore, Collectives, ::testing::ValuesIn(params("InProcStore")),
                         case_name);
#ifdef FMI_WITH_DIRECT
INSTANTIATE_TEST_SUITE_P(Direct, Collectives, ::testing::ValuesIn(params("Direct")), case_name);
#endif
#ifdef FMI_WITH_REDIS
INSTANTIATE_TEST_SUITE_P(Redis, Collectives, ::testing::ValuesIn(params("Redis")), case_name);
#endif
#ifdef FMI_WITH_S3
INSTANTIATE_TEST_SUITE_P(S3, Collectives, ::testing::ValuesIn(params("S3")), case_name);
#endif

// ---- through the Communicator ------------------------------------------------------

using I = std::int64_t;
using Vec = FMI::Comm::Data<std::vector<I>>;
using Fn = FMI::Utils::Function<std::vector<I>>;

void check_vec(const std::vector<I>& got, const std::function<I(std::size_t)>& want,
               const std::string& what, unsigned me) {
  for (std::size_t k = 0; k < got.size(); ++k)
    PEER_CHECK(got[k] == want(k), what, " on peer ", me, ": element ", k, " is ", got[k],
               ", expected ", want(k));
}

// Every collective at `count` elements per block, with exact integer results.
void all_collectives(FMI::Communicator& comm, std::size_t count, I salt) {
  const unsigned n = comm.num_peers(), me = comm.peer_id();
  const I N = n, M = me;
  const std::string at = " (" + std::to_string(count) + " elements)";
  for (unsigned root : {0u, n - 1}) {
    Vec buf(count);
    if (me == root)
      for (std::size_t k = 0; k < count; ++k) buf.ref()[k] = I(k) * 7 + root + salt;
    comm.bcast(buf, root);
    check_vec(
        buf.get(), [&](std::size_t k) { return I(k) * 7 + root + salt; }, "bcast" + at, me);

    Vec send(count), all(count * n);
    for (std::size_t k = 0; k < count; ++k) send.ref()[k] = M * 1000 + I(k);
    comm.gather(send, all, root);
    if (me == root)
      check_vec(
          all.get(), [&](std::size_t i) { return I(i / count) * 1000 + I(i % count); },
          "gather" + at, me);

    Vec blocks(count * n), mine(count);
    if (me == root)
      for (std::size_t i = 0; i < count * n; ++i)
        blocks.ref()[i] = I(i / count) * 1000 + I(i % count);
    comm.scatter(blocks, mine, root);
    check_vec(
        mine.get(), [&](std::size_t k) { return M * 1000 + I(k); }, "scatter" + at, me);

    Vec contrib(count), sum(count);
    for (std::size_t k = 0; k < count; ++k) contrib.ref()[k] = M + I(k);
    comm.reduce(contrib, sum, root, Fn::sum());
    if (me == root)
      check_vec(
          sum.get(), [&](std::size_t k) { return N * (N - 1) / 2 + N * I(k); }, "reduce" + at, me);
  }
  comm.barrier();

  Vec contrib(count), out(count);
  for (std::size_t k = 0; k < count; ++k) contrib.ref()[k] = M + I(k);
  comm.allreduce(contrib, out, Fn::sum());
  check_vec(
      out.get(), [&](std::size_t k) { return N * (N - 1) / 2 + N * I(k); }, "allreduce" + at, me);
  comm.allreduce(contrib, out, Fn::max());
  check_vec(
      out.get(), [&](std::size_t k) { return N - 1 + I(k); }, "allreduce max" + at, me);
  comm.scan(contrib, out, Fn::sum());
  check_vec(
      out.get(), [&](std::size_t k) { return M * (M + 1) / 2 + (M + 1) * I(k); }, "scan" + at, me);

  Vec send(count), all(count * n);
  for (std::size_t k = 0; k < count; ++k) send.ref()[k] = M * 1000 + I(k) + salt;
  comm.allgather(send, all);
  check_vec(
      all.get(), [&](std::size_t i) { return I(i / count) * 1000 + I(i % count) + salt; },
      "allgather" + at, me);

  Vec to_all(count * n), from_all(count * n);
  for (std::size_t i = 0; i < count * n; ++i)
    to_all.ref()[i] = M * 100000 + I(i / count) * 1000 + I(i % count);
  comm.alltoall(to_all, from_all);
  check_vec(
      from_all.get(),
      [&](std::size_t i) { return I(i / count) * 100000 + M * 1000 + I(i % count); },
      "alltoall" + at, me);

  Vec rs_in(count * n), rs_out(count);
  for (std::size_t i = 0; i < count * n; ++i) rs_in.ref()[i] = M + I(i / count) + I(i % count);
  comm.reduce_scatter(rs_in, rs_out, Fn::sum());
  check_vec(
      rs_out.get(), [&](std::size_t k) { return N * (N - 1) / 2 + N * (M + I(k)); },
      "reduce_scatter" + at, me);

  if (n > 1) {  // point to point around the ring
    Vec token(count), got(count);
    for (std::size_t k = 0; k < count; ++k) token.ref()[k] = M * 3 + I(k) + salt;
    const unsigned next = (me + 1) % n, prev = (me + n - 1) % n;
    if (me % 2 == 0) {
      comm.send(token, next);
      comm.recv(got, prev);
    } else {
      comm.recv(got, prev);
      comm.send(token, next);
    }
    check_vec(
        got.get(), [&](std::size_t k) { return I(prev) * 3 + I(k) + salt; }, "send/recv" + at, me);
  }

  // Neither commutative nor associative: strictly left to right.
  FMI::Comm::Data<I> x(M + 2), r(0);
  FMI::Utils::Function<I> f([](I a, I b) { return 2 * a - b; }, false, false);
  comm.allreduce(x, r, f);
  I expect = 2;
  for (unsigned q = 1; q < n; ++q) expect = 2 * expect - I(q + 2);
  PEER_CHECK(r.get() == expect, "ordered allreduce on peer ", me, ": ", r.get(), ", expected ",
             expect);
}

class CommunicatorCollectives : public ::testing::TestWithParam<std::tuple<std::string, unsigned>> {
};

TEST_P(CommunicatorCollectives, Every) {
  Backend& b = backend(std::get<0>(GetParam()));
  const unsigned n = std::get<1>(GetParam());
  const std::size_t large = b.axes().large_elems;
  auto g = b.group(n, comm_name());
  // Twice under the same name: the second run reads its own objects only (salt).
  for (I run_no = 0; run_no < 2; ++run_no) {
    run_on(b, *g, [&](unsigned me, Group& grp) {
      FMI::Communicator comm(me, n, FMI::Config{}, grp.comm());
      comm.register_channel(b.name(), grp.make(me));
      if (run_no == 0) {
        all_collectives(comm, 0, run_no);      // empty messages
        all_collectives(comm, large, run_no);  // bandwidth algorithms (> kLargeMessage)
      }
      all_collectives(comm, 3, run_no);
    });
    if (auto left = g->leftovers()) {
      EXPECT_EQ(*left, 0u) << "left in the store after run " << run_no;
    }
  }
}

// The variable-size collectives through the Communicator on every channel: uneven
// counts with zeros, and skewed counts where the last peer holds everything (large
// enough for the bandwidth paths), every root for gatherv/scatterv.
TEST_P(CommunicatorCollectives, VariableSize) {
  Backend& b = backend(std::get<0>(GetParam()));
  const unsigned n = std::get<1>(GetParam());
  auto g = b.group(n, comm_name());
  run_on(b, *g, [&](unsigned me, Group& grp) {
    FMI::Communicator comm(me, n, FMI::Config{}, grp.comm());
    comm.register_channel(b.name(), grp.make(me));
    using Count = std::function<std::size_t(unsigned, unsigned)>;
    const Count uneven = [](unsigned q, unsigned t) -> std::size_t {
      return (q * 5 + t * 3) % 4 * 7;
    };
    const Count skewed = [n](unsigned q, unsigned) -> std::size_t {
      return q == n - 1 ? 40000 : 0;
    };
    auto val = [](unsigned from, unsigned to, std::size_t i) {
      return I(from) * 1000003 + I(to) * 1009 + I(i);
    };
    for (const Count& count : {uneven, skewed}) {
      std::vector<std::size_t> counts(n), offs(n + 1, 0);
      for (unsigned q = 0; q < n; ++q) {
        counts[q] = count(q, 0);
        offs[q + 1] = offs[q] + counts[q];
      }
      for (unsigned root : {0u, n - 1}) {
        Vec mine(counts[me]), all(root == me ? offs[n] : 0);
        for (std::size_t i = 0; i < counts[me]; ++i) mine.ref()[i] = val(me, 0, i);
        comm.gatherv(mine, all, counts, root);
        if (me == root)
          for (unsigned q = 0; q < n; ++q)
            for (std::size_t i = 0; i < counts[q]; ++i)
              PEER_CHECK(all.get()[offs[q] + i] == val(q, 0, i), "gatherv root ", root, " block ",
                         q, " element ", i);
        Vec from_root(me == root ? offs[n] : 0), got(counts[me]);
        if (me == root)
          for (unsigned q = 0; q < n; ++q)
            for (std::size_t i = 0; i < counts[q]; ++i)
              from_root.ref()[offs[q] + i] = val(root, q, i);
        comm.scatterv(from_root, counts, got, root);
        for (std::size_t i = 0; i < counts[me]; ++i)
          PEER_CHECK(got.get()[i] == val(root, me, i), "scatterv root ", root, " element ", i);
      }
      Vec mine(counts[me]), all(offs[n]);
      for (std::size_t i = 0; i < counts[me]; ++i) mine.ref()[i] = val(me, 1, i);
      comm.allgatherv(mine, all, counts);
      for (unsigned q = 0; q < n; ++q)
        for (std::size_t i = 0; i < counts[q]; ++i)
          PEER_CHECK(all.get()[offs[q] + i] == val(q, 1, i), "allgatherv block ", q, " element ",
                     i);
      // alltoallv: the block q -> t holds count(q, t) elements.
      std::vector<std::size_t> sc(n), rc(n), so(n + 1, 0), ro(n + 1, 0);
      for (unsigned t = 0; t < n; ++t) {
        sc[t] = count(me, t);
        rc[t] = count(t, me);
        so[t + 1] = so[t] + sc[t];
        ro[t + 1] = ro[t] + rc[t];
      }
      Vec send(so[n]), recv(ro[n]);
      for (unsigned t = 0; t < n; ++t)
        for (std::size_t i = 0; i < sc[t]; ++i) send.ref()[so[t] + i] = val(me, t, i);
      comm.alltoallv(send, sc, recv, rc);
      for (unsigned q = 0; q < n; ++q)
        for (std::size_t i = 0; i < rc[q]; ++i)
          PEER_CHECK(recv.get()[ro[q] + i] == val(q, me, i), "alltoallv from ", q, " element ", i);
    }
  });
  if (auto left = g->leftovers()) {
    EXPECT_EQ(*left, 0u) << "left in the store";
  }
}

// Sub-communicators over the parent's channel on every channel: groups of rank % 2
// with reversed keys (the last peer of 3 and more joining none), a dup and a split
// of the child. Parent and child send on the same pair with equal (operation,
// sequence) tags, received in reverse order: their messages must not mix, and the
// child uses the parent's channel object (nothing registered or connected again).
TEST_P(CommunicatorCollectives, SplitDupAndNestedSplit) {
  Backend& b = backend(std::get<0>(GetParam()));
  const unsigned n = std::get<1>(GetParam());
  auto g = b.group(n, comm_name());
  run_on(b, *g, [&](unsigned p, Group& grp) {
    FMI::Communicator c(p, n, FMI::Config{}, grp.comm());
    c.register_channel(b.name(), grp.make(p));
    const bool none = n >= 3 && p == n - 1;
    auto child = c.split(none ? -1 : int(p % 2), -int(p));
    if (none) {
      PEER_CHECK(child == nullptr, "peer ", p, " with color -1 got a communicator");
    } else {
      PEER_CHECK(child != nullptr, "peer ", p, " got no communicator");
      std::vector<unsigned> members;  // parent ranks of the child's ranks (reversed keys)
      for (unsigned q = n; q-- > 0;)
        if (q % 2 == p % 2 && !(n >= 3 && q == n - 1)) members.push_back(q);
      const unsigned cn = child->num_peers(), cr = child->peer_id();
      PEER_CHECK(cn == members.size() && members[cr] == p, "child of peer ", p, ": rank ", cr,
                 " of ", cn);
      PEER_CHECK(child->channels().size() == 1 && child->channels().count(b.name()),
                 "the child has other channels than the parent's");
      if (cn > 1) {
        const unsigned to = (cr + 1) % cn, from = (cr + cn - 1) % cn;
        FMI::Comm::Data<int> ps(int(1000 + p)), cs(int(2000 + p)), pr(0), crcv(0);
        c.send(ps, members[to]);
        child->send(cs, to);
        child->recv(crcv, from);
        c.recv(pr, members[from]);
        PEER_CHECK(crcv.get() == int(2000 + members[from]), "child recv got ", crcv.get());
        PEER_CHECK(pr.get() == int(1000 + members[from]), "parent recv got ", pr.get());
      }
      Vec mine(std::vector<I>(5000, I(p))), all(5000 * cn);
      child->allgather(mine, all);
      for (unsigned q = 0; q < cn; ++q)
        PEER_CHECK(all.get()[q * 5000 + 17] == I(members[q]), "child allgather block ", q);
      FMI::Comm::Data<int> x{int(p)}, sum(0);
      child->allreduce(x, sum, FMI::Utils::Function<int>::sum());
      int want_sum = 0;
      for (unsigned q : members) want_sum += int(q);
      PEER_CHECK(sum.get() == want_sum, "child allreduce ", sum.get(), ", expected ", want_sum);
      auto d = child->dup();
      auto half = d->split(int(d->peer_id() % 2), 0);
      FMI::Comm::Data<int> hx{int(p)}, hs(0);
      half->scan(hx, hs, FMI::Utils::Function<int>::sum());
      int want = 0;
      for (unsigned r = d->peer_id() % 2; r <= d->peer_id(); r += 2) want += int(members[r]);
      PEER_CHECK(hs.get() == want, "nested scan ", hs.get(), ", expected ", want);
      FMI::Comm::Data<int> bc(p == members[0] ? 77 : -1);
      d->bcast(bc, 0);
      PEER_CHECK(bc.get() == 77, "dup bcast ", bc.get());
    }
    FMI::Comm::Data<int> one(1), total(0);
    c.allreduce(one, total, FMI::Utils::Function<int>::sum());
    PEER_CHECK(total.get() == int(n), "parent allreduce after the children ", total.get());
  });
  if (auto left = g->leftovers()) {
    EXPECT_EQ(*left, 0u) << "left in the store";
  }
}

// 64 MiB per peer (8 Mi int64) through every collective over Direct, 3 peers (a
// non-power of two): ring and scatter+allgather with chunks of many MiB, partial
// reads and writes on every connection. Direct only: the other channels' large
// messages are their own tests' (Redis 64/256 MiB, S3 64 MiB in the contract), and
// in-process memcpy has no partial transfers.
class LargeCollectives : public ::testing::TestWithParam<std::string> {};

TEST_P(LargeCollectives, Every64MiB) {
  Backend& b = backend(GetParam());
  const unsigned n = 3;
  run(b, n, [&](unsigned me, Group& g) {
    FMI::Communicator comm(me, n, FMI::Config{}, g.comm());
    comm.register_channel(b.name(), g.make(me));
    all_collectives(comm, std::size_t(8) << 20, 0);
  });
}

#ifdef FMI_WITH_DIRECT
INSTANTIATE_TEST_SUITE_P(Direct, LargeCollectives, ::testing::Values("Direct"));
#endif

std::vector<std::tuple<std::string, unsigned>> comm_params(const std::string& name) {
  std::vector<std::tuple<std::string, unsigned>> v;
  for (unsigned n : backend(name).axes().peers) v.emplace_back(name, n);
  return v;
}
std::string comm_case(const ::testing::TestParamInfo<std::tuple<std::string, unsigned>>& i) {
  return "n" + std::to_string(std::get<1>(i.param));
}

INSTANTIATE_TEST_SUITE_P(InProcP2P, CommunicatorCollectives,
                         ::testing::ValuesIn(comm_params("InProcP2P")), comm_case);
INSTANTIATE_TEST_SUITE_P(InProcStore, CommunicatorCollectives,
                         ::testing::ValuesIn(comm_params("InProcStore")), comm_case);
#ifdef FMI_WITH_DIRECT
INSTANTIATE_TEST_SUITE_P(Direct, CommunicatorCollectives,
                         ::testing::ValuesIn(comm_params("Direct")), comm_case);
#endif
#ifdef FMI_WITH_REDIS
INSTANTIATE_TEST_SUITE_P(Redis, CommunicatorCollectives, ::testing::ValuesIn(comm_params("Redis")),
                         comm_case);
#endif
#ifdef FMI_WITH_S3
INSTANTIATE_TEST_SUITE_P(S3, CommunicatorCollectives, ::testing::ValuesIn(comm_params("S3")),
                         comm_case);
#endif

}  // namespace
}  // namespace fmitest::conformance
