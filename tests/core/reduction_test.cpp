// Collectives with a function (reduce, allreduce, scan, reduce_scatter) over both
// channel kinds, every peer count, roots {0, middle, last}, sizes {1, 3, 1001
// elements, 4 MiB} and functions of every algebraic class:
//  - built-in element-wise sum/min/max/prod on int, float, double, uint8 vectors and
//    on scalars (exact: integer-valued data, so any order gives the same bits);
//  - a user commutative + associative function;
//  - a user associative, non-commutative one (2x2 matrix products): operands must
//    stay in peer order;
//  - user functions that are neither (2a+b, a-b): the result must be exactly the
//    strict left-to-right value ((x0 f x1) f x2) ...
// The expected value is always the left-to-right fold computed with the same
// function on the main thread.
#include <cmath>
#include <map>

#include "harness.h"

namespace fmitest {
namespace {

using FMI::Comm::Data;
using FMI::Utils::Function;

enum class Op { reduce, allreduce, scan, reduce_scatter };
const char* op_name(Op o) {
  switch (o) {
    case Op::reduce: return "reduce";
    case Op::allreduce: return "allreduce";
    case Op::scan: return "scan";
    case Op::reduce_scatter: return "reduce_scatter";
  }
  return "?";
}

/// One reduction function with its element type, data generator and checker.
struct Case {
  virtual ~Case() = default;
  virtual bool scalar() const = 0;
  virtual bool big_ok() const = 0;
  /// Runs `op` and checks every peer's result; `items` is ignored by scalar cases.
  virtual void run(Kind kind, Op op, peer_num n, peer_num root, std::size_t items) const = 0;
  /// items that make one peer's buffer about `bytes` long
  virtual std::size_t items_for(std::size_t bytes) const = 0;
};

template <typename T>
T fold(const Function<T>& f, const std::vector<T>& xs, std::size_t upto) {
  T acc = xs[0];
  for (std::size_t i = 1; i <= upto; ++i) acc = f(acc, xs[i]);
  return acc;
}

template <typename E>
struct VecCase final : Case {
  Function<std::vector<E>> f;
  std::size_t per_item;  // elements per item (4 for a 2x2 matrix)
  E (*gen)(peer_num peer, std::size_t index);
  bool big;

  VecCase(Function<std::vector<E>> f, std::size_t per_item, E (*gen)(peer_num, std::size_t),
          bool big)
      : f(std::move(f)), per_item(per_item), gen(gen), big(big) {}

  bool scalar() const override { return false; }
  bool big_ok() const override { return big; }
  std::size_t items_for(std::size_t bytes) const override {
    return std::max<std::size_t>(1, bytes / (sizeof(E) * per_item));
  }

  std::vector<E> input(peer_num p, std::size_t len) const {
    std::vector<E> v(len);
    for (std::size_t i = 0; i < len; ++i) v[i] = gen(p, i);
    return v;
  }

  void run(Kind kind, Op op, peer_num n, peer_num root, std::size_t items) const override {
    const std::size_t len = items * per_item;  // elements of one result
    const std::size_t send_len = op == Op::reduce_scatter ? n * len : len;
    std::vector<std::vector<E>> xs(n);
    for (peer_num p = 0; p < n; ++p) xs[p] = input(p, send_len);

    // Expected results, folded left to right with the function under test.
    std::vector<std::vector<E>> expected(n);
    if (op == Op::reduce_scatter) {
      for (peer_num i = 0; i < n; ++i) {
        std::vector<std::vector<E>> blocks(n);
        for (peer_num p = 0; p < n; ++p)
          blocks[p].assign(xs[p].begin() + i * len, xs[p].begin() + (i + 1) * len);
        expected[i] = fold(f, blocks, n - 1);
      }
    } else if (op == Op::scan) {
      for (peer_num i = 0; i < n; ++i) expected[i] = fold(f, xs, i);
    } else {
      std::vector<E> all = fold(f, xs, n - 1);
      for (peer_num i = 0; i < n; ++i) expected[i] = all;
    }

    const E sentinel = static_cast<E>(123);
    run_peers(n, kind, [&](FMI::Communicator& c) {
      const peer_num p = c.peer_id();
      Data<std::vector<E>> send(xs[p]);
      Data<std::vector<E>> recv(std::vector<E>(len, sentinel));
      switch (op) {
        case Op::reduce: c.reduce(send, recv, root, f); break;
        case Op::allreduce: c.allreduce(send, recv, f); break;
        case Op::scan: c.scan(send, recv, f); break;
        case Op::reduce_scatter: c.reduce_scatter(send, recv, f); break;
      }
      if (op != Op::reduce || p == root) {
        EXPECT_TRUE(elems_equal(recv.get(), expected[p]))
            << op_name(op) << " result at peer " << p << ", root " << root << " (" << items
            << " items)";
      }
      EXPECT_TRUE(elems_equal(send.get(), xs[p])) << "send buffer modified at peer " << p;
    });
  }
};

template <typename T>
struct ScalarCase final : Case {
  Function<T> f;
  T (*gen)(peer_num peer);

  ScalarCase(Function<T> f, T (*gen)(peer_num)) : f(std::move(f)), gen(gen) {}
  bool scalar() const override { return true; }
  bool big_ok() const override { return false; }
  std::size_t items_for(std::size_t) const override { return 1; }

  void run(Kind kind, Op op, peer_num n, peer_num root, std::size_t) const override {
    std::vector<T> xs(n);
    for (peer_num p = 0; p < n; ++p) xs[p] = gen(p);
    run_peers(n, kind, [&](FMI::Communicator& c) {
      const peer_num p = c.peer_id();
      Data<T> send = xs[p];
      Data<T> recv = static_cast<T>(77);
      T expected{};
      switch (op) {
        case Op::reduce:
          c.reduce(send, recv, root, f);
          expected = fold(f, xs, n - 1);
          break;
        case Op::allreduce:
          c.allreduce(send, recv, f);
          expected = fold(f, xs, n - 1);
          break;
        case Op::scan:
          c.scan(send, recv, f);
          expected = fold(f, xs, p);
          break;
        case Op::reduce_scatter:  // only valid for n == 1: send holds n blocks
          c.reduce_scatter(send, recv, f);
          expected = xs[0];
          break;
      }
      if (op != Op::reduce || p == root) {
        EXPECT_EQ(std::memcmp(&recv.get(), &expected, sizeof(T)), 0)
            << op_name(op) << " at peer " << p << ": got " << recv.get() << ", expected "
            << expected;
      }
      EXPECT_EQ(send.get(), xs[p]) << "send buffer modified at peer " << p;
    });
  }
};

// ---- generators: every value depends on the peer and the index --------------------
int gen_int(peer_num p, std::size_t i) {
  return static_cast<int>((p * 1009 + i * 7 + 3) % 2001) - 1000;
}
float gen_float(peer_num p, std::size_t i) {
  return static_cast<float>((p * 37 + i * 11) % 1001) - 500.0f;
}
double gen_double(peer_num p, std::size_t i) {
  return static_cast<double>((p * 53 + i * 13) % 4001) * 0.25 - 500.0;
}
std::int64_t gen_small(peer_num p, std::size_t i) {
  return static_cast<std::int64_t>((p + i) % 3) + 1;
}
std::uint8_t gen_u8(peer_num p, std::size_t i) {
  return static_cast<std::uint8_t>(p * 89 + i * 31 + 5);
}
std::uint32_t gen_u32(peer_num p, std::size_t i) {
  return static_cast<std::uint32_t>(p * 2654435761u + i * 40503u + 1);
}
std::uint64_t gen_mat(peer_num p, std::size_t i) {
  // entry i%4 of matrix i/4 of peer p: [[p+2, m%5+1], [(p*3+m)%7, p%4+1]]
  const std::size_t m = i / 4;
  switch (i % 4) {
    case 0: return p + 2;
    case 1: return m % 5 + 1;
    case 2: return (p * 3 + m) % 7;
    default: return p % 4 + 1;
  }
}
std::uint64_t gen_u64(peer_num p, std::size_t i) { return p * 1000003ull + i * 7919ull + 11; }
int gen_scalar_int(peer_num p) { return static_cast<int>(p * 17) - 40; }
double gen_scalar_double(peer_num p) { return 1.0 / (p + 3) + p * 0.1; }

// ---- user functions ---------------------------------------------------------------
// (1+a)(1+b)-1 mod 2^32: commutative and associative, not a built-in.
std::vector<std::uint32_t> user_comm(std::vector<std::uint32_t> a, std::vector<std::uint32_t> b) {
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = a[i] * b[i] + a[i] + b[i];
  return a;
}
// Products of 2x2 matrices (row-major, 4 entries each) mod 2^64: associative only.
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
// 2a+b mod 2^64: neither commutative nor associative.
std::vector<std::uint64_t> affine(std::vector<std::uint64_t> a, std::vector<std::uint64_t> b) {
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = 2 * a[i] + b[i];
  return a;
}

const std::map<std::string, std::shared_ptr<Case>>& cases() {
  static const std::map<std::string, std::shared_ptr<Case>> m = [] {
    std::map<std::string, std::shared_ptr<Case>> c;
    c["sum_int"] =
        std::make_shared<VecCase<int>>(Function<std::vector<int>>::sum(), 1, gen_int, true);
    c["sum_float"] =
        std::make_shared<VecCase<float>>(Function<std::vector<float>>::sum(), 1, gen_float, false);
    c["sum_double"] = std::make_shared<VecCase<double>>(Function<std::vector<double>>::sum(), 1,
                                                        gen_double, true);
    c["min_float"] =
        std::make_shared<VecCase<float>>(Function<std::vector<float>>::min(), 1, gen_float, false);
    c["max_double"] = std::make_shared<VecCase<double>>(Function<std::vector<double>>::max(), 1,
                                                        gen_double, false);
    c["min_int"] =
        std::make_shared<VecCase<int>>(Function<std::vector<int>>::min(), 1, gen_int, false);
    c["prod_int64"] = std::make_shared<VecCase<std::int64_t>>(
        Function<std::vector<std::int64_t>>::prod(), 1, gen_small, false);
    c["sum_uint8"] = std::make_shared<VecCase<std::uint8_t>>(
        Function<std::vector<std::uint8_t>>::sum(), 1, gen_u8, true);
    c["user_commutative"] = std::make_shared<VecCase<std::uint32_t>>(
        Function<std::vector<std::uint32_t>>(user_comm, true, true), 1, gen_u32, false);
    c["user_matmul_assoc"] = std::make_shared<VecCase<std::uint64_t>>(
        Function<std::vector<std::uint64_t>>(matmul, false, true), 4, gen_mat, true);
    c["user_2a_plus_b_ordered"] = std::make_shared<VecCase<std::uint64_t>>(
        Function<std::vector<std::uint64_t>>(affine, false, false), 1, gen_u64, true);
    c["scalar_sum_int"] = std::make_shared<ScalarCase<int>>(Function<int>::sum(), gen_scalar_int);
    c["scalar_max_double"] =
        std::make_shared<ScalarCase<double>>(Function<double>::max(), gen_scalar_double);
    c["scalar_a_minus_b_ordered"] = std::make_shared<ScalarCase<double>>(
        Function<double>([](double a, double b) { return a - b; }, false, false),
        gen_scalar_double);
    return c;
  }();
  return m;
}

struct Param {
  Kind kind;
  Op op;
  peer_num n;
  peer_num root;
  std::string fn;
};

void PrintTo(const Param& p, std::ostream* os) {
  *os << op_name(p.op) << ", " << kind_name(p.kind) << ", " << p.n << " peers, " << p.fn;
}

std::string param_name(const ::testing::TestParamInfo<Param>& i) {
  const Param& p = i.param;
  std::string s = std::string(op_name(p.op)) + "_" + kind_name(p.kind) + "_n" + std::to_string(p.n);
  return s + "_" + p.fn;
}

std::vector<Param> params(Op op) {
  std::vector<Param> v;
  for (Kind k : {Kind::p2p, Kind::store})
    for (peer_num n : kPeerCounts)
      for (const auto& [name, c] : cases()) {
        if (op == Op::reduce_scatter && c->scalar() && n != 1) continue;
        v.push_back({k, op, n, 0, name});
      }
  return v;
}

class Reduction : public ::testing::TestWithParam<Param> {};

// Roots {0, middle, last} for reduce (the other operations have none).
TEST_P(Reduction, Values) {
  const Param& p = GetParam();
  const Case& c = *cases().at(p.fn);
  const std::vector<peer_num> roots =
      p.op == Op::reduce ? roots_for(p.n) : std::vector<peer_num>{0};
  for (peer_num root : roots) {
    SCOPED_TRACE("root " + std::to_string(root));
    if (c.scalar()) {
      c.run(p.kind, p.op, p.n, root, 1);
      continue;
    }
    for (std::size_t items : {1, 3, 1001}) {
      SCOPED_TRACE("items " + std::to_string(items));
      c.run(p.kind, p.op, p.n, root, items);
    }
    // 4 MiB for one root only (the runtime budget of the suite).
    if (c.big_ok() && big_for(p.n) && root == roots.back()) {
      SCOPED_TRACE("4 MiB");
      const std::size_t bytes = p.op == Op::reduce_scatter ? kBig / p.n : kBig;
      // An odd item count, so that chunked algorithms get chunks of unequal size.
      c.run(p.kind, p.op, p.n, root, c.items_for(bytes) | 1);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Reduce, Reduction, ::testing::ValuesIn(params(Op::reduce)), param_name);
INSTANTIATE_TEST_SUITE_P(Allreduce, Reduction, ::testing::ValuesIn(params(Op::allreduce)),
                         param_name);
INSTANTIATE_TEST_SUITE_P(Scan, Reduction, ::testing::ValuesIn(params(Op::scan)), param_name);
INSTANTIATE_TEST_SUITE_P(ReduceScatter, Reduction, ::testing::ValuesIn(params(Op::reduce_scatter)),
                         param_name);

// ---- reproducibility of commutative + associative reductions ------------------------
// Non-integer doubles: the bits depend on the bracketing. Every peer of an allreduce
// must hold the same bits, and a second run must give the same bits again.
struct ReproParam {
  Kind kind;
  peer_num n;
};

void PrintTo(const ReproParam& p, std::ostream* os) {
  *os << kind_name(p.kind) << ", " << p.n << " peers";
}

class Reproducible : public ::testing::TestWithParam<ReproParam> {};

double gen_frac(peer_num p, std::size_t i) {
  return 0.1 * (p + 1) + 1e-3 * static_cast<double>(i % 977) + 1.0 / (p + 3);
}

std::vector<std::vector<double>> allreduce_all(Kind kind, peer_num n, std::size_t len,
                                               const Function<std::vector<double>>& f) {
  std::vector<std::vector<double>> out(n);
  run_peers(n, kind, [&](FMI::Communicator& c) {
    const peer_num p = c.peer_id();
    std::vector<double> x(len);
    for (std::size_t i = 0; i < len; ++i) x[i] = gen_frac(p, i);
    Data<std::vector<double>> send(x), recv(len);
    c.allreduce(send, recv, f);
    out[p] = recv.get();
  });
  return out;
}

std::vector<double> reduce_root(Kind kind, peer_num n, std::size_t len, peer_num root,
                                const Function<std::vector<double>>& f) {
  std::vector<double> out;
  run_peers(n, kind, [&](FMI::Communicator& c) {
    const peer_num p = c.peer_id();
    std::vector<double> x(len);
    for (std::size_t i = 0; i < len; ++i) x[i] = gen_frac(p, i);
    Data<std::vector<double>> send(x), recv(len);
    c.reduce(send, recv, root, f);
    if (p == root) out = recv.get();
  });
  return out;
}

TEST_P(Reproducible, AllreduceSameBitsEverywhereAndTwice) {
  const auto [kind, n] = GetParam();
  const Function<std::vector<double>> fns[] = {
      Function<std::vector<double>>::sum(), Function<std::vector<double>>(
                                                [](std::vector<double> a, std::vector<double> b) {
                                                  for (std::size_t i = 0; i < a.size(); ++i)
                                                    a[i] += b[i];
                                                  return a;
                                                },
                                                true, true)};
  std::vector<std::size_t> lens = {1001};
  if (big_for(n) || n == 5) lens.push_back(kBig / sizeof(double));
  for (std::size_t fi = 0; fi < 2; ++fi) {
    for (std::size_t len : lens) {
      SCOPED_TRACE(std::string(fi == 0 ? "built-in sum" : "user sum") + ", " + std::to_string(len) +
                   " doubles");
      auto first = allreduce_all(kind, n, len, fns[fi]);
      for (peer_num p = 1; p < n; ++p)
        EXPECT_TRUE(elems_equal(first[p], first[0])) << "peer " << p << " differs from peer 0";
      auto second = allreduce_all(kind, n, len, fns[fi]);
      for (peer_num p = 0; p < n; ++p)
        EXPECT_TRUE(elems_equal(second[p], first[p])) << "second run differs at peer " << p;
      auto r1 = reduce_root(kind, n, len, n - 1, fns[fi]);
      auto r2 = reduce_root(kind, n, len, n - 1, fns[fi]);
      EXPECT_TRUE(elems_equal(r2, r1)) << "reduce: second run differs";
    }
  }
}

std::vector<ReproParam> repro_params() {
  std::vector<ReproParam> v;
  for (Kind k : {Kind::p2p, Kind::store})
    for (peer_num n : {2u, 3u, 5u, 7u, 8u, 9u, 16u}) v.push_back({k, n});
  return v;
}

INSTANTIATE_TEST_SUITE_P(All, Reproducible, ::testing::ValuesIn(repro_params()),
                         [](const ::testing::TestParamInfo<ReproParam>& i) {
                           return std::string(kind_name(i.param.kind)) + "_n" +
                                  std::to_string(i.param.n);
                         });

// ---- empty buffers -----------------------------------------------------------------
class EmptyReduction : public ::testing::TestWithParam<ReproParam> {};

TEST_P(EmptyReduction, ZeroElements) {
  const auto [kind, n] = GetParam();
  const auto sum = Function<std::vector<int>>::sum();
  const Function<std::vector<std::uint64_t>> ordered(affine, false, false);
  run_peers(n, kind, [&](FMI::Communicator& c) {
    Data<std::vector<int>> s(std::size_t{0}), r(std::size_t{0});
    c.reduce(s, r, n - 1, sum);
    c.allreduce(s, r, sum);
    c.scan(s, r, sum);
    c.reduce_scatter(s, r, sum);
    Data<std::vector<std::uint64_t>> so(std::size_t{0}), ro(std::size_t{0});
    c.reduce(so, ro, 0, ordered);
    c.allreduce(so, ro, ordered);
    c.scan(so, ro, ordered);
    c.reduce_scatter(so, ro, ordered);
    EXPECT_TRUE(r.get().empty());
  });
}

std::vector<ReproParam> empty_params() {
  std::vector<ReproParam> v;
  for (Kind k : {Kind::p2p, Kind::store})
    for (peer_num n : kPeerCounts) v.push_back({k, n});
  return v;
}

INSTANTIATE_TEST_SUITE_P(All, EmptyReduction, ::testing::ValuesIn(empty_params()),
                         [](const ::testing::TestParamInfo<ReproParam>& i) {
                           return std::string(kind_name(i.param.kind)) + "_n" +
                                  std::to_string(i.param.n);
                         });

}  // namespace
}  // namespace fmitest
