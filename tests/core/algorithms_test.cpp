// Every point-to-point algorithm of src/collectives/ forced through Options::algorithm,
// not only the ones choose_p2p picks for the sizes of the Communicator tests: each
// algorithm must be correct for every peer count, root and size, including sizes
// smaller than the peer count (chunks of zero elements). Internal API.
#include "collectives/collectives.h"
#include "harness.h"

namespace fmitest {
namespace {

using FMI::Comm::Bytes;
using FMI::Comm::ConstBytes;
using FMI::coll::Algorithm;
using FMI::Utils::Function;
using FMI::Utils::Operation;

struct Param {
  Operation op;
  Algorithm alg;
  peer_num n;
};

void PrintTo(const Param& p, std::ostream* os) {
  *os << FMI::Utils::to_string(p.op) << ", " << FMI::coll::to_string(p.alg) << ", " << p.n << " peers";
}

std::string param_name(const ::testing::TestParamInfo<Param>& i) {
  return std::string(FMI::Utils::to_string(i.param.op)) + "_" +
         FMI::coll::to_string(i.param.alg) + "_n" + std::to_string(i.param.n);
}

/// Runs body(channel, context) on n threads, each with its own initialised endpoint.
void run_channels(peer_num n, Operation op,
                  const std::function<void(FMI::Comm::PeerToPeerChannel&,
                                           const FMI::coll::Context&)>& body) {
  auto hub = std::make_shared<FMI::Comm::InProcessHub>(n, 10s);
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (peer_num i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      try {
        auto ch = hub->p2p_endpoint();
        ch->init(FMI::Comm::ChannelContext{i, n, "alg", 128});
        FMI::coll::Context c{i, n, FMI::Comm::Tag{op, 1},
                             FMI::Utils::Clock::now() + std::chrono::seconds(10)};
        body(*ch, c);
        ch->finalize();
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (peer_num i = 0; i < n; ++i) {
    if (errors[i]) ADD_FAILURE() << "peer " << i << " threw " << describe(errors[i]);
  }
}

std::vector<std::byte> pat(peer_num peer, peer_num block, std::size_t len) {
  std::vector<std::byte> v(len);
  fill_pattern(v, peer, block);
  return v;
}

template <typename E>
std::span<const std::byte> cb(const std::vector<E>& v) {
  return std::as_bytes(std::span<const E>(v));
}
template <typename E>
std::span<std::byte> wb(std::vector<E>& v) {
  return std::as_writable_bytes(std::span<E>(v));
}

class Algorithms : public ::testing::TestWithParam<Param> {};

void data_op(const Param& prm, peer_num root, std::size_t bs) {
  namespace p2p = FMI::coll::p2p;
  const peer_num n = prm.n;
  FMI::coll::Options o{root, prm.alg};
  run_channels(n, prm.op, [&](FMI::Comm::PeerToPeerChannel& ch, const FMI::coll::Context& c) {
    const peer_num p = c.rank;
    std::string where = "peer " + std::to_string(p) + ", root " + std::to_string(root) +
                        ", block " + std::to_string(bs) + " bytes";
    switch (prm.op) {
      case Operation::bcast: {
        auto buf = p == root ? pat(root, 0, bs) : std::vector<std::byte>(bs);
        p2p::bcast(ch, c, buf, o);
        EXPECT_TRUE(bytes_equal(buf, pat(root, 0, bs))) << where;
        break;
      }
      case Operation::gather: {
        auto s = pat(p, 0, bs);
        std::vector<std::byte> r(n * bs);
        p2p::gather(ch, c, s, r, o);
        if (p == root) {
          for (peer_num q = 0; q < n; ++q)
            EXPECT_TRUE(bytes_equal(std::span(r).subspan(q * bs, bs), pat(q, 0, bs))) << where;
        }
        break;
      }
      case Operation::scatter: {
        std::vector<std::byte> s(n * bs), r(bs);
        for (peer_num q = 0; q < n; ++q) fill_pattern(std::span(s).subspan(q * bs, bs), root, q);
        p2p::scatter(ch, c, s, r, o);
        EXPECT_TRUE(bytes_equal(r, pat(root, p, bs))) << where;
        break;
      }
      case Operation::allgather: {
        auto s = pat(p, 0, bs);
        std::vector<std::byte> r(n * bs);
        p2p::allgather(ch, c, s, r, o);
        for (peer_num q = 0; q < n; ++q)
          EXPECT_TRUE(bytes_equal(std::span(r).subspan(q * bs, bs), pat(q, 0, bs))) << where;
        break;
      }
      case Operation::alltoall: {
        std::vector<std::byte> s(n * bs), r(n * bs);
        for (peer_num q = 0; q < n; ++q) fill_pattern(std::span(s).subspan(q * bs, bs), p, q);
        p2p::alltoall(ch, c, s, r, o);
        for (peer_num q = 0; q < n; ++q)
          EXPECT_TRUE(bytes_equal(std::span(r).subspan(q * bs, bs), pat(q, p, bs))) << where;
        break;
      }
      case Operation::barrier:
        p2p::barrier(ch, c, o);
        break;
      default:
        FAIL() << "not a data operation";
    }
  });
}

std::vector<std::uint64_t> matmul(std::vector<std::uint64_t> a, std::vector<std::uint64_t> b) {
  std::vector<std::uint64_t> c(a.size());
  for (std::size_t k = 0; k + 3 < a.size(); k += 4) {
    c[k] = a[k] * b[k] + a[k + 1] * b[k + 2];
    c[k + 1] = a[k] * b[k + 1] + a[k + 1] * b[k + 3];
    c[k + 2] = a[k + 2] * b[k] + a[k + 3] * b[k + 2];
    c[k + 3] = a[k + 2] * b[k + 1] + a[k + 3] * b[k + 3];
  }
  return c;
}
std::vector<std::uint64_t> affine(std::vector<std::uint64_t> a, std::vector<std::uint64_t> b) {
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = 2 * a[i] + b[i];
  return a;
}

/// A reduction with `f` on vectors of `len` uint64 (n x len for reduce_scatter).
void reduction_op(const Param& prm, peer_num root, const Function<std::vector<std::uint64_t>>& f,
                  std::size_t len, const std::string& fname) {
  namespace p2p = FMI::coll::p2p;
  using V = std::vector<std::uint64_t>;
  const peer_num n = prm.n;
  const bool rs = prm.op == Operation::reduce_scatter;
  std::vector<V> xs(n);
  for (peer_num p = 0; p < n; ++p) {
    xs[p].resize(rs ? n * len : len);
    for (std::size_t i = 0; i < xs[p].size(); ++i) xs[p][i] = (p + 2) * 7919ull + (i % 13) * (p % 3 + 1);
  }
  auto fold = [&](peer_num upto, std::size_t off) {
    V acc(xs[0].begin() + off, xs[0].begin() + off + len);
    for (peer_num q = 1; q <= upto; ++q)
      acc = f(acc, V(xs[q].begin() + off, xs[q].begin() + off + len));
    return acc;
  };
  const auto op = f.op();
  FMI::coll::Options o{root, prm.alg};
  run_channels(n, prm.op, [&](FMI::Comm::PeerToPeerChannel& ch, const FMI::coll::Context& c) {
    const peer_num p = c.rank;
    V r(len, 99);
    std::string where = fname + ", peer " + std::to_string(p) + ", root " + std::to_string(root) +
                        ", " + std::to_string(len) + " elements";
    switch (prm.op) {
      case Operation::reduce:
        p2p::reduce(ch, c, cb(xs[p]), wb(r), op, o);
        if (p == root) {
          EXPECT_TRUE(elems_equal(r, fold(n - 1, 0))) << where;
        }
        break;
      case Operation::allreduce:
        p2p::allreduce(ch, c, cb(xs[p]), wb(r), op, o);
        EXPECT_TRUE(elems_equal(r, fold(n - 1, 0))) << where;
        break;
      case Operation::scan:
        p2p::scan(ch, c, cb(xs[p]), wb(r), op, o);
        EXPECT_TRUE(elems_equal(r, fold(p, 0))) << where;
        break;
      case Operation::reduce_scatter:
        p2p::reduce_scatter(ch, c, cb(xs[p]), wb(r), op, o);
        EXPECT_TRUE(elems_equal(r, fold(n - 1, p * len))) << where;
        break;
      default:
        FAIL() << "not a reduction";
    }
  });
}

TEST_P(Algorithms, Correct) {
  const Param& prm = GetParam();
  const bool rooted = prm.op == Operation::bcast || prm.op == Operation::gather ||
                      prm.op == Operation::scatter || prm.op == Operation::reduce;
  const std::vector<peer_num> roots = rooted ? roots_for(prm.n) : std::vector<peer_num>{0};
  const bool reduction = prm.op == Operation::reduce || prm.op == Operation::allreduce ||
                         prm.op == Operation::scan || prm.op == Operation::reduce_scatter;
  for (peer_num root : roots) {
    if (!reduction) {
      for (std::size_t bs : {std::size_t{1}, std::size_t{3}, std::size_t{1001}}) data_op(prm, root, bs);
      continue;
    }
    // Which functions an algorithm accepts: ring needs an element-wise commutative
    // operator; recursive doubling and binomial need associativity; linear takes all.
    std::vector<std::pair<std::string, Function<std::vector<std::uint64_t>>>> fns = {
        {"sum", Function<std::vector<std::uint64_t>>::sum()}};
    if (prm.alg != Algorithm::ring) fns.push_back({"matmul", {matmul, false, true}});
    if (prm.alg == Algorithm::linear) fns.push_back({"2a+b", {affine, false, false}});
    for (const auto& [name, f] : fns)
      for (std::size_t len : {std::size_t{4}, std::size_t{1000}})
        reduction_op(prm, root, f, len, name);
  }
}

std::vector<Param> params() {
  const std::vector<std::pair<Operation, std::vector<Algorithm>>> table = {
      {Operation::bcast, {Algorithm::linear, Algorithm::binomial, Algorithm::scatter_allgather}},
      {Operation::barrier, {Algorithm::dissemination}},
      {Operation::gather, {Algorithm::linear, Algorithm::binomial}},
      {Operation::scatter, {Algorithm::linear, Algorithm::binomial}},
      {Operation::reduce, {Algorithm::linear, Algorithm::binomial, Algorithm::ring}},
      {Operation::allreduce, {Algorithm::linear, Algorithm::recursive_doubling, Algorithm::ring}},
      {Operation::scan, {Algorithm::linear, Algorithm::recursive_doubling}},
      {Operation::allgather, {Algorithm::binomial, Algorithm::ring}},
      {Operation::alltoall, {Algorithm::pairwise}},
      {Operation::reduce_scatter, {Algorithm::binomial, Algorithm::ring}},
  };
  std::vector<Param> v;
  for (const auto& [op, algs] : table)
    for (Algorithm a : algs)
      for (peer_num n : {1u, 2u, 3u, 4u, 5u, 7u, 8u, 9u, 16u}) v.push_back({op, a, n});
  return v;
}

INSTANTIATE_TEST_SUITE_P(P2P, Algorithms, ::testing::ValuesIn(params()), param_name);

}  // namespace
}  // namespace fmitest
