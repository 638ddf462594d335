// The object-store contract of include/fmi/channel.h (ObjectStoreChannel), written
// once and run on every object store of the build (InProcStore, Redis, S3): put and
// get of every size class, several readers (a store that counts reads deletes after
// the last one; the others at finalize), get waiting for a later put, exact sizes
// (PeerError naming both), deadlines (TimeoutError naming the object's peer), erase,
// list by prefix with communicators kept apart, finalize twice, nothing left.
//
// Peers are channels of this process (one each, as functions have); a test uses
// threads where a peer must wait for another.
#include <algorithm>
#include <future>
#include <set>
#include <thread>

#include "backends.h"

namespace fmitest::conformance {
namespace {

using FMI::Comm::ObjectKey;
using FMI::Comm::ObjectStoreChannel;
using FMI::Comm::Tag;
using FMI::Utils::Operation;
using Buf = std::vector<std::byte>;
using Store = std::shared_ptr<ObjectStoreChannel>;
constexpr std::size_t MiB = std::size_t(1) << 20;

Buf data(std::size_t len, std::uint32_t seed) {
  Buf v(len);
  fill_pattern(v, seed, 0);
  return v;
}

ObjectKey key(Operation op, std::uint32_t seq, unsigned from, unsigned to = ObjectKey::all) {
  return ObjectKey{Tag{op, seq}, from, to};
}

class StoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  Backend& b() { return backend(GetParam()); }

  /// n initialised channels of one communicator (`comm`: another one's name).
  std::vector<Store> open(Group& g, const std::string& comm = {}) {
    std::vector<Store> v;
    for (unsigned i = 0; i < g.size(); ++i) v.push_back(g.open_store(i, comm));
    return v;
  }
  /// Finalizes every channel at once (a store that cannot count reads synchronises
  /// the peers in finalize), twice, then nothing may be left in the store.
  void finalize_all(Group& g, std::vector<std::vector<Store>> sets) {
    std::vector<std::thread> ts;
    for (auto& set : sets)
      for (auto& ch : set)
        ts.emplace_back([ch] {
          ch->finalize();
          ch->finalize();
        });
    for (auto& t : ts) t.join();
    if (auto left = g.leftovers()) {
      EXPECT_EQ(*left, 0u) << "left in the store after finalize";
    }
  }
  bool counts() { return b().counts_readers(); }
};

TEST_P(StoreContract, KindAndTimeout) {
  auto g = b().group(1, comm_name());
  auto ch = g->make(0);
  EXPECT_EQ(ch->kind(), FMI::Comm::ChannelKind::object_store);
  EXPECT_EQ(ch->max_timeout(), b().max_timeout());
}

// Sizes around the in-process, Redis (1 MiB inline limit, chunks) and S3 (multi-
// part free) boundaries, and the backend's large message.
TEST_P(StoreContract, PutGetEverySize) {
  auto g = b().group(2, comm_name());
  auto ch = open(*g);
  std::uint32_t seq = 0;
  for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(3), std::size_t(1001),
                        std::size_t(65537), MiB - 5, MiB + 1, 3 * MiB + 7, b().large_message()}) {
    SCOPED_TRACE("size " + std::to_string(n));
    const auto k = key(Operation::send, seq++, 0, 1);
    const Buf d = data(n, static_cast<std::uint32_t>(n));
    ch[0]->put(k, d, 1, in(60s));
    Buf out(n, std::byte{0xEE});
    ch[1]->get(k, out, in(60s));
    EXPECT_TRUE(bytes_equal(out, d));
    if (counts())
      if (auto left = g->objects()) {
        EXPECT_EQ(*left, 0u) << "not deleted by its only reader";
      }
  }
  finalize_all(*g, {ch});
}

// One object, four readers each with its own channel, at once.
TEST_P(StoreContract, SeveralReaders) {
  constexpr unsigned kReaders = 4;
  auto g = b().group(kReaders + 1, comm_name());
  auto ch = open(*g);
  std::uint32_t seq = 0;
  for (std::size_t n : {std::size_t(0), std::size_t(100), std::size_t(300 * 1024), 2 * MiB + 3}) {
    SCOPED_TRACE("size " + std::to_string(n));
    const auto k = key(Operation::bcast, seq++, 0);
    const Buf d = data(n, 99);
    ch[0]->put(k, d, kReaders, in(10s));
    // The first kReaders-1 read one after the other: the object must still be there.
    for (unsigned r = 1; r < kReaders; ++r) {
      Buf out(n, std::byte{0xEE});
      ch[r]->get(k, out, in(10s));
      EXPECT_TRUE(bytes_equal(out, d)) << "reader " << r;
      if (auto left = g->objects()) {
        EXPECT_GT(*left, 0u) << "deleted before its last reader";
      }
    }
    Buf last(n, std::byte{0xEE});
    auto reader = std::async(std::launch::async, [&] { ch[kReaders]->get(k, last, in(10s)); });
    reader.get();
    EXPECT_TRUE(bytes_equal(last, d)) << "last reader";
    if (counts())
      if (auto left = g->objects()) {
        EXPECT_EQ(*left, 0u) << "not deleted after its last reader";
      }
  }
  finalize_all(*g, {ch});
}

TEST_P(StoreContract, GetWaitsForALaterPut) {
  auto g = b().group(2, comm_name());
  auto ch = open(*g);
  for (std::size_t n : {std::size_t(8), MiB + 5}) {
    const auto k = key(Operation::send, static_cast<std::uint32_t>(n), 0, 1);
    const Buf d = data(n, 3);
    std::atomic<bool> put_started{false};
    auto later = std::async(std::launch::async, [&] {
      std::this_thread::sleep_for(200ms);
      put_started = true;  // before: the put may wake the reader before it returns
      ch[0]->put(k, d, 1, in(10s));
    });
    Buf out(n);
    ch[1]->get(k, out, in(10s));
    EXPECT_TRUE(put_started.load()) << "get returned before the put";
    later.get();
    EXPECT_TRUE(bytes_equal(out, d));
  }
  finalize_all(*g, {ch});
}

TEST_P(StoreContract, SizeMismatchIsPeerErrorNamingBothSizes) {
  auto g = b().group(2, comm_name());
  auto ch = open(*g);
  std::uint32_t seq = 0;
  for (auto [sent, expected] :
       {std::pair<std::size_t, std::size_t>{10, 12}, {100, 64}, {2 * MiB, 2 * MiB - 1}}) {
    const auto k = key(Operation::gather, seq++, 0, 1);
    ch[0]->put(k, data(sent, 1), 1, in(10s));
    Buf out(expected, std::byte{0x5A});
    try {
      ch[1]->get(k, out, in(10s));
      ADD_FAILURE() << "no PeerError for " << sent << " bytes read as " << expected;
    } catch (const FMI::PeerError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(std::to_string(sent)), std::string::npos) << what;
      EXPECT_NE(what.find(std::to_string(expected)), std::string::npos) << what;
    }
    ch[0]->erase(k, in(10s));
  }
  finalize_all(*g, {ch});
}

// A missing object: TimeoutError at the deadline naming the peer it was expected
// from, also when the deadline has passed already.
TEST_P(StoreContract, DeadlineIsTimeoutErrorNamingThePeer) {
  auto g = b().group(4, comm_name());
  auto ch = open(*g);
  Buf out(8);
  const auto t0 = Clock::now();
  try {
    ch[1]->get(key(Operation::reduce, 9, 3, 1), out, in(300ms));
    ADD_FAILURE() << "no TimeoutError";
  } catch (const FMI::TimeoutError& e) {
    EXPECT_GE(Clock::now() - t0, 290ms) << "gave up before the deadline";
    EXPECT_NE(std::string(e.what()).find("peer 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ch[1]->get(key(Operation::reduce, 10, 3, 1), out, Clock::now() - 1s),
               FMI::TimeoutError);
  finalize_all(*g, {ch});
}

// list by prefix (only what exists under the prefix, in this communicator),
// erase (of a missing key too), the same key in two communicators, objects that
// were read disappear from the list.
TEST_P(StoreContract, ListEraseAndCommunicatorIsolation) {
  auto g = b().group(3, comm_name());
  const std::string A = g->comm() + "-A", B = g->comm() + "-B";
  auto a = open(*g, A), other = open(*g, B);
  const Buf small = data(16, 1), big = data(2 * MiB, 2), foreign = data(16, 3);
  a[0]->put(key(Operation::bcast, 1, 0), small, 2, in(10s));
  a[0]->put(key(Operation::bcast, 2, 0), big, 1, in(10s));
  a[0]->put(key(Operation::gather, 1, 0, 2), small, 1, in(10s));
  a[1]->put(key(Operation::gather, 1, 1, 2), small, 1, in(10s));
  other[0]->put(key(Operation::bcast, 1, 0), foreign, 1, in(10s));

  using Set = std::set<std::string>;
  auto listed = [&](Store& ch, const std::string& prefix) {
    auto v = ch->list(prefix, in(10s));
    return Set(v.begin(), v.end());
  };
  auto k = [&](Operation op, std::uint32_t seq, unsigned from, unsigned to = ObjectKey::all) {
    return key(op, seq, from, to).str(A);
  };
  EXPECT_EQ(listed(a[1], A + "/bcast/"),
            (Set{k(Operation::bcast, 1, 0), k(Operation::bcast, 2, 0)}));
  EXPECT_EQ(listed(a[2], A + "/gather/1/"),
            (Set{k(Operation::gather, 1, 0, 2), k(Operation::gather, 1, 1, 2)}));
  EXPECT_EQ(listed(a[1], A + "/").size(), 4u);
  EXPECT_TRUE(listed(a[1], A + "/scan/").empty());

  a[0]->erase(key(Operation::bcast, 2, 0), in(10s));
  EXPECT_EQ(listed(a[1], A + "/bcast/"), (Set{k(Operation::bcast, 1, 0)}));
  Buf out(big.size());
  EXPECT_THROW(a[1]->get(key(Operation::bcast, 2, 0), out, in(200ms)), FMI::TimeoutError);
  a[0]->erase(key(Operation::bcast, 77, 0), in(10s));  // missing: not an error

  // Same key, other communicator: another object.
  Buf s(small.size());
  other[1]->get(key(Operation::bcast, 1, 0), s, in(10s));
  EXPECT_TRUE(bytes_equal(s, foreign));
  a[1]->get(key(Operation::bcast, 1, 0), s, in(10s));
  EXPECT_TRUE(bytes_equal(s, small));
  if (counts()) {  // one of two readers: still listed
    EXPECT_EQ(listed(a[1], A + "/bcast/"), (Set{k(Operation::bcast, 1, 0)}));
  }
  a[2]->get(key(Operation::bcast, 1, 0), s, in(10s));
  if (counts()) {
    EXPECT_TRUE(listed(a[1], A + "/bcast/").empty());
  }

  // Single-reader objects that were read are not listed any more (by their reader).
  a[2]->get(key(Operation::gather, 1, 0, 2), s, in(10s));
  a[2]->get(key(Operation::gather, 1, 1, 2), s, in(10s));
  EXPECT_TRUE(listed(a[2], A + "/gather/").empty());
  finalize_all(*g, {a, other});
}

INSTANTIATE_TEST_SUITE_P(InProcStore, StoreContract, ::testing::Values("InProcStore"));
#ifdef FMI_WITH_REDIS
INSTANTIATE_TEST_SUITE_P(Redis, StoreContract, ::testing::Values("Redis"));
#endif
#ifdef FMI_WITH_S3
INSTANTIATE_TEST_SUITE_P(S3, StoreContract, ::testing::Values("S3"));
#endif

}  // namespace
}  // namespace fmitest::conformance
