// Unit tests of the value types of the API: Data<T> in its three forms, Function<T>
// (built-ins and user functions, and the byte-level ReduceOp built from them), and
// the small vocabulary helpers (tags, object keys, durations).
#include <gtest/gtest.h>

#include <cstring>
#include <sstream>
#include <type_traits>

#include "fmi/fmi.h"

namespace {

using FMI::Comm::Data;
using FMI::Utils::Function;

TEST(Data, ScalarForm) {
  Data<int> d = 42;  // implicit construction, as in the original API
  EXPECT_EQ(d.get(), 42);
  EXPECT_EQ(d.size_in_bytes(), sizeof(int));
  EXPECT_EQ(*static_cast<int*>(d.data()), 42);
  d.ref() = 7;
  EXPECT_EQ(d.get(), 7);
  const Data<int>& cd = d;
  EXPECT_EQ(cd.data(), d.data());
  EXPECT_TRUE(Data<int>(7) == d);
  EXPECT_FALSE(Data<int>(8) == d);
  std::ostringstream os;
  os << d;
  EXPECT_EQ(os.str(), "7");
  Data<double> def;
  EXPECT_EQ(def.get(), 0.0);
  EXPECT_EQ(def.size_in_bytes(), sizeof(double));
  static_assert(std::is_convertible_v<int, Data<int>>, "implicit from T");
}

TEST(Data, PodStruct) {
  struct P {
    int a;
    float b;
  };
  Data<P> d(P{1, 2.0f});
  EXPECT_EQ(d.size_in_bytes(), sizeof(P));
  EXPECT_EQ(d.get().a, 1);
  EXPECT_EQ(static_cast<P*>(d.data())->b, 2.0f);
}

TEST(Data, VectorForm) {
  Data<std::vector<float>> byCount(5);
  EXPECT_EQ(byCount.size(), 5u);
  EXPECT_EQ(byCount.size_in_bytes(), 5 * sizeof(float));
  Data<std::vector<int>> v = std::vector<int>{1, 2, 3};  // implicit from vector
  EXPECT_EQ(v.get(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(v.size_in_bytes(), 3 * sizeof(int));
  EXPECT_EQ(v.data(), v.ref().data());  // no copy: data() is the vector's storage
  v.ref()[1] = 20;
  EXPECT_EQ(static_cast<int*>(v.data())[1], 20);
  EXPECT_TRUE(v == Data<std::vector<int>>(std::vector<int>{1, 20, 3}));
  EXPECT_FALSE(v == Data<std::vector<int>>(std::vector<int>{1, 20}));
  std::ostringstream os;
  os << v;
  EXPECT_EQ(os.str(), "[1, 20, 3]");
  Data<std::vector<char>> empty;
  EXPECT_EQ(empty.size_in_bytes(), 0u);
  std::ostringstream oe;
  oe << empty;
  EXPECT_EQ(oe.str(), "[]");
  // The held vector can be moved out without a copy.
  std::vector<int> taken = std::move(v.ref());
  EXPECT_EQ(taken.size(), 3u);
}

TEST(Data, RawForm) {
  char mem[13] = {};
  Data<void*> d(mem, sizeof mem);
  EXPECT_EQ(d.get(), static_cast<void*>(mem));
  EXPECT_EQ(d.data(), static_cast<void*>(mem));
  EXPECT_EQ(d.size_in_bytes(), 13u);
  const Data<void*>& cd = d;
  EXPECT_EQ(cd.data(), static_cast<const void*>(mem));
  Data<void*> none;
  EXPECT_EQ(none.size_in_bytes(), 0u);
  auto b = FMI::Comm::bytes_of(d);
  EXPECT_EQ(b.size(), 13u);
  EXPECT_EQ(static_cast<void*>(b.data()), static_cast<void*>(mem));
}

TEST(Function, BuiltinsOnScalars) {
  EXPECT_EQ(Function<int>::sum()(3, 4), 7);
  EXPECT_EQ(Function<int>::prod()(3, 4), 12);
  EXPECT_EQ(Function<int>::min()(3, -4), -4);
  EXPECT_EQ(Function<int>::max()(3, -4), 3);
  EXPECT_EQ(Function<double>::sum()(0.5, 0.25), 0.75);
  EXPECT_EQ(Function<float>::max()(1.5f, 2.5f), 2.5f);
  EXPECT_EQ(Function<std::uint8_t>::sum()(200, 100), 44);  // wraps in the element type
  EXPECT_TRUE(Function<int>::sum().commutative);
  EXPECT_TRUE(Function<int>::sum().associative);
}

TEST(Function, BuiltinsOnVectors) {
  using V = std::vector<int>;
  EXPECT_EQ(Function<V>::sum()(V{1, 2, 3}, V{10, 20, 30}), (V{11, 22, 33}));
  EXPECT_EQ(Function<V>::prod()(V{1, 2, 3}, V{10, 20, 30}), (V{10, 40, 90}));
  EXPECT_EQ(Function<V>::min()(V{1, 25, 3}, V{10, 20, 30}), (V{1, 20, 3}));
  EXPECT_EQ(Function<V>::max()(V{1, 25, 3}, V{10, 20, 30}), (V{10, 25, 30}));
  using D = std::vector<double>;
  EXPECT_EQ(Function<D>::sum()(D{0.5}, D{1.0}), D{1.5});
}

TEST(Function, UserFunction) {
  Function<int> f([](int a, int b) { return 2 * a + b; }, false, false);
  EXPECT_EQ(f(1, 2), 4);
  EXPECT_FALSE(f.commutative);
  EXPECT_FALSE(f.associative);
  Function<std::vector<int>> g(
      [](std::vector<int> a, std::vector<int> b) {
        a.insert(a.end(), b.begin(), b.end());
        return a;
      },
      false, true);
  EXPECT_EQ(g(std::vector<int>{1}, std::vector<int>{2}), (std::vector<int>{1, 2}));
}

TEST(Function, ReduceOpOfBuiltinIsChunkable) {
  auto f = Function<std::vector<int>>::sum();
  auto op = f.op();
  EXPECT_EQ(op.granularity, sizeof(int));
  EXPECT_TRUE(op.commutative);
  EXPECT_TRUE(op.associative);
  int a[3] = {1, 2, 3}, b[3] = {10, 20, 30};
  // Applied to a sub-range (the last two elements), in place into `a`.
  auto l = std::as_bytes(std::span<const int>(a + 1, 2));
  auto r = std::as_bytes(std::span<const int>(b + 1, 2));
  op(l, r, std::as_writable_bytes(std::span<int>(a + 1, 2)));
  EXPECT_EQ(a[0], 1);
  EXPECT_EQ(a[1], 22);
  EXPECT_EQ(a[2], 33);
}

TEST(Function, ReduceOpOfUserFunctionKeepsOrderAndProperties) {
  Function<std::vector<int>> g(
      [](std::vector<int> a, std::vector<int> b) {
        for (std::size_t i = 0; i < a.size(); ++i) a[i] = a[i] * 10 + b[i];
        return a;
      },
      false, true);
  auto op = g.op();
  EXPECT_EQ(op.granularity, 0u);
  EXPECT_FALSE(op.commutative);
  EXPECT_TRUE(op.associative);
  int a[2] = {1, 2}, b[2] = {3, 4}, out[2] = {};
  op(std::as_bytes(std::span<const int>(a)), std::as_bytes(std::span<const int>(b)),
     std::as_writable_bytes(std::span<int>(out)));
  EXPECT_EQ(out[0], 13);
  EXPECT_EQ(out[1], 24);

  Function<double> s([](double x, double y) { return x - y; }, false, false);
  auto sop = s.op();
  EXPECT_EQ(sop.granularity, sizeof(double));
  double x = 5, y = 2, z = 0;
  sop(std::as_bytes(std::span<const double>(&x, 1)), std::as_bytes(std::span<const double>(&y, 1)),
      std::as_writable_bytes(std::span<double>(&z, 1)));
  EXPECT_EQ(z, 3.0);
}

TEST(Vocabulary, TagsKeysAndDurations) {
  using FMI::Utils::Operation;
  FMI::Comm::Tag t{Operation::allreduce, 77};
  EXPECT_EQ(FMI::Comm::Tag::decode(t.encode()), t);
  FMI::Comm::ObjectKey k{FMI::Comm::Tag{Operation::bcast, 3}, 1, FMI::Comm::ObjectKey::all};
  const std::string s = k.str("app");
  EXPECT_EQ(s.rfind("app/", 0), 0u) << s;
  EXPECT_NE(s.find("/3/"), std::string::npos) << s;
  EXPECT_NE(s.find("/1-all"), std::string::npos) << s;
  FMI::Comm::ObjectKey k2{FMI::Comm::Tag{Operation::bcast, 3}, 1, 2};
  EXPECT_NE(k2.str("app"), s);
  EXPECT_NE(FMI::Comm::ObjectKey{t}.str("app"), FMI::Comm::ObjectKey{t}.str("app2"));
  EXPECT_STREQ(FMI::Utils::to_string(Operation::reduce_scatter), "reduce_scatter");
  EXPECT_STREQ(FMI::Utils::to_string(FMI::Utils::Hint::fast), "fast");
  EXPECT_STREQ(FMI::Utils::to_string(FMI::Utils::Hint::cheap), "cheap");
  EXPECT_EQ(FMI::format_duration(std::chrono::milliseconds(1500)), "1.5 s");
  EXPECT_EQ(FMI::format_duration(std::chrono::milliseconds(250)), "250 ms");
}

TEST(Errors, HierarchyAndTimeoutAlias) {
  static_assert(std::is_base_of_v<FMI::Error, FMI::TimeoutError>);
  static_assert(std::is_base_of_v<FMI::Error, FMI::ConfigError>);
  static_assert(std::is_base_of_v<FMI::Error, FMI::UsageError>);
  static_assert(std::is_base_of_v<FMI::Error, FMI::PeerError>);
  static_assert(std::is_base_of_v<FMI::Error, FMI::ChannelError>);
  static_assert(std::is_base_of_v<std::runtime_error, FMI::Error>);
  static_assert(std::is_same_v<FMI::Utils::Timeout, FMI::TimeoutError>);
  try {
    FMI_THROW(FMI::TimeoutError, "recv from peer ", 3, " after ", "1 s");
  } catch (const FMI::Utils::Timeout& e) {
    EXPECT_STREQ(e.what(), "recv from peer 3 after 1 s");
  }
}

}  // namespace
