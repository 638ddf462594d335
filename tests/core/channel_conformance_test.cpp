// The channel contract of include/fmi/channel.h, checked on the in-process channels
// (the algorithms' tests rely on it; the network channels should pass the same
// checks): per-(source, tag) ordering and matching, exact sizes, deadlines,
// object-store reads, reader counting, erase, list by prefix and finalize.
#include <future>

#include "harness.h"

namespace fmitest {
namespace {

using FMI::Comm::ObjectKey;
using FMI::Comm::Tag;
using FMI::Utils::Clock;
using FMI::Utils::Operation;

FMI::Utils::Deadline in(std::chrono::milliseconds d) { return Clock::now() + d; }

std::vector<std::shared_ptr<FMI::Comm::PeerToPeerChannel>> p2p_group(FMI::Comm::InProcessHub& hub,
                                                                     peer_num n) {
  std::vector<std::shared_ptr<FMI::Comm::PeerToPeerChannel>> v;
  for (peer_num i = 0; i < n; ++i) {
    v.push_back(hub.p2p_endpoint());
    v.back()->init({i, n, "conf", 128});
  }
  return v;
}

std::vector<std::shared_ptr<FMI::Comm::ObjectStoreChannel>> store_group(
    FMI::Comm::InProcessHub& hub, peer_num n, const std::string& name = "conf") {
  std::vector<std::shared_ptr<FMI::Comm::ObjectStoreChannel>> v;
  for (peer_num i = 0; i < n; ++i) {
    v.push_back(hub.store_endpoint());
    v.back()->init({i, n, name, 128});
  }
  return v;
}

std::vector<std::byte> msg(std::size_t len, int seed) {
  std::vector<std::byte> v(len);
  fill_pattern(v, static_cast<std::uint32_t>(seed), 0);
  return v;
}

TEST(P2PChannel, KindAndTimeout) {
  FMI::Comm::InProcessHub hub(2, 1234ms);
  auto ch = hub.p2p_endpoint();
  EXPECT_EQ(ch->kind(), FMI::Comm::ChannelKind::peer_to_peer);
  EXPECT_EQ(ch->max_timeout(), 1234ms);
  EXPECT_EQ(hub.store_endpoint()->kind(), FMI::Comm::ChannelKind::object_store);
}

TEST(P2PChannel, OrderedPerSourceAndTag) {
  FMI::Comm::InProcessHub hub(3, 10s);
  auto ch = p2p_group(hub, 3);
  const Tag t{Operation::send, 0};
  for (int k = 0; k < 5; ++k) ch[0]->send(2, msg(10 + k, k), t, in(1s));
  for (int k = 0; k < 3; ++k) ch[1]->send(2, msg(7, 100 + k), t, in(1s));
  // Sources are independent: read peer 1's messages first.
  for (int k = 0; k < 3; ++k) {
    std::vector<std::byte> out(7);
    ch[2]->recv(1, out, t, in(1s));
    EXPECT_TRUE(bytes_equal(out, msg(7, 100 + k))) << "message " << k << " from peer 1";
  }
  for (int k = 0; k < 5; ++k) {
    std::vector<std::byte> out(10 + k);
    ch[2]->recv(0, out, t, in(1s));
    EXPECT_TRUE(bytes_equal(out, msg(10 + k, k))) << "message " << k << " from peer 0";
  }
}

TEST(P2PChannel, MatchesByTag) {
  FMI::Comm::InProcessHub hub(2, 10s);
  auto ch = p2p_group(hub, 2);
  const Tag a{Operation::send, 0}, b{Operation::bcast, 0}, c{Operation::bcast, 1};
  ch[0]->send(1, msg(4, 1), a, in(1s));
  ch[0]->send(1, msg(5, 2), b, in(1s));
  ch[0]->send(1, msg(6, 3), c, in(1s));
  std::vector<std::byte> o6(6), o5(5), o4(4);
  ch[1]->recv(0, o6, c, in(1s));
  ch[1]->recv(0, o5, b, in(1s));
  ch[1]->recv(0, o4, a, in(1s));
  EXPECT_TRUE(bytes_equal(o6, msg(6, 3)));
  EXPECT_TRUE(bytes_equal(o5, msg(5, 2)));
  EXPECT_TRUE(bytes_equal(o4, msg(4, 1)));
}

TEST(P2PChannel, RecvWaitsForALaterSend) {
  FMI::Comm::InProcessHub hub(2, 10s);
  auto ch = p2p_group(hub, 2);
  const Tag t{Operation::send, 3};
  auto later = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(30ms);
    ch[1]->send(0, msg(1001, 9), t, in(1s));
  });
  std::vector<std::byte> out(1001);
  ch[0]->recv(1, out, t, in(5s));
  later.get();
  EXPECT_TRUE(bytes_equal(out, msg(1001, 9)));
}

TEST(P2PChannel, SizeMismatchIsPeerErrorNamingBothSizes) {
  FMI::Comm::InProcessHub hub(2, 10s);
  auto ch = p2p_group(hub, 2);
  const Tag t{Operation::send, 0};
  ch[0]->send(1, msg(8, 1), t, in(1s));
  std::vector<std::byte> out(12, std::byte{0x5A});
  try {
    ch[1]->recv(0, out, t, in(1s));
    ADD_FAILURE() << "no exception";
  } catch (const FMI::PeerError& e) {
    EXPECT_NE(std::string(e.what()).find("8"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("12"), std::string::npos) << e.what();
  }
  for (auto b : out) ASSERT_EQ(b, std::byte{0x5A}) << "buffer written despite the error";
}

TEST(P2PChannel, DeadlineGivesTimeoutError) {
  FMI::Comm::InProcessHub hub(2, 10s);
  auto ch = p2p_group(hub, 2);
  std::vector<std::byte> out(4);
  EXPECT_THROW(ch[0]->recv(1, out, Tag{Operation::send, 0}, in(50ms)), FMI::TimeoutError);
  // A message with another tag does not satisfy the recv either.
  ch[1]->send(0, msg(4, 1), Tag{Operation::bcast, 0}, in(1s));
  EXPECT_THROW(ch[0]->recv(1, out, Tag{Operation::send, 0}, in(50ms)), FMI::TimeoutError);
}

TEST(P2PChannel, ZeroBytesAndSendrecvExchange) {
  FMI::Comm::InProcessHub hub(2, 10s);
  auto ch = p2p_group(hub, 2);
  const Tag t{Operation::allreduce, 5};
  ch[0]->send(1, {}, t, in(1s));
  ch[1]->recv(0, {}, t, in(1s));
  const std::size_t big = 1 << 20;
  std::vector<std::byte> a = msg(big, 1), b = msg(big, 2), ra(big), rb(big);
  auto other = std::async(std::launch::async, [&] { ch[1]->sendrecv(0, b, 0, rb, t, in(5s)); });
  ch[0]->sendrecv(1, a, 1, ra, t, in(5s));
  other.get();
  EXPECT_TRUE(bytes_equal(ra, b));
  EXPECT_TRUE(bytes_equal(rb, a));
}

// ---- object store -------------------------------------------------------------------

TEST(StoreChannel, PutGetAndReaderCount) {
  FMI::Comm::InProcessHub hub(3, 10s);
  auto ch = store_group(hub, 3);
  const ObjectKey k{Tag{Operation::bcast, 0}, 0, ObjectKey::all};
  ch[0]->put(k, msg(1001, 4), 2, in(1s));
  EXPECT_EQ(hub.objects_in_store(), 1u);
  std::vector<std::byte> o1(1001), o2(1001);
  ch[1]->get(k, o1, in(1s));
  EXPECT_EQ(hub.objects_in_store(), 1u) << "deleted before its last reader";
  ch[2]->get(k, o2, in(1s));
  EXPECT_TRUE(bytes_equal(o1, msg(1001, 4)));
  EXPECT_TRUE(bytes_equal(o2, msg(1001, 4)));
  EXPECT_EQ(hub.objects_in_store(), 0u) << "not deleted after its last reader";
}

TEST(StoreChannel, GetWaitsForALaterPut) {
  FMI::Comm::InProcessHub hub(2, 10s);
  auto ch = store_group(hub, 2);
  const ObjectKey k{Tag{Operation::send, 0}, 1, 0};
  auto later = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(30ms);
    ch[1]->put(k, msg(3, 7), 1, in(1s));
  });
  std::vector<std::byte> out(3);
  ch[0]->get(k, out, in(5s));
  later.get();
  EXPECT_TRUE(bytes_equal(out, msg(3, 7)));
}

TEST(StoreChannel, SizeMismatchTimeoutAndErase) {
  FMI::Comm::InProcessHub hub(2, 10s);
  auto ch = store_group(hub, 2);
  const ObjectKey k{Tag{Operation::gather, 2}, 1, 0};
  ch[1]->put(k, msg(8, 1), 1, in(1s));
  std::vector<std::byte> wrong(12);
  try {
    ch[0]->get(k, wrong, in(1s));
    ADD_FAILURE() << "no exception";
  } catch (const FMI::PeerError& e) {
    EXPECT_NE(std::string(e.what()).find("8"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("12"), std::string::npos) << e.what();
  }
  ch[1]->erase(k, in(1s));
  ch[1]->erase(k, in(1s));  // erasing a missing key is not an error
  std::vector<std::byte> right(8);
  EXPECT_THROW(ch[0]->get(k, right, in(50ms)), FMI::TimeoutError);
}

TEST(StoreChannel, ListByPrefixAndCommunicatorIsolation) {
  FMI::Comm::InProcessHub hub(2, 10s);
  auto a = store_group(hub, 2, "commA");
  auto b = store_group(hub, 2, "commB");
  const ObjectKey k0{Tag{Operation::barrier, 4}, 0, ObjectKey::all};
  const ObjectKey k1{Tag{Operation::barrier, 4}, 1, ObjectKey::all};
  a[0]->put(k0, msg(1, 1), 2, in(1s));
  a[1]->put(k1, msg(1, 2), 2, in(1s));
  b[0]->put(k0, msg(1, 3), 2, in(1s));
  auto keys = a[0]->list("commA/", in(1s));
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{k0.str("commA"), k1.str("commA")}));
  // Same key, other communicator: another object.
  std::vector<std::byte> out(1);
  b[1]->get(k0, out, in(1s));
  EXPECT_TRUE(bytes_equal(out, msg(1, 3)));
  a[1]->get(k0, out, in(1s));
  EXPECT_TRUE(bytes_equal(out, msg(1, 1)));
  // Last readers: the store, which counts reads, deletes each object after them.
  a[0]->get(k0, out, in(1s));
  a[0]->get(k1, out, in(1s));
  a[1]->get(k1, out, in(1s));
  b[0]->get(k0, out, in(1s));
  EXPECT_EQ(hub.objects_in_store(), 0u);
  for (auto& c : a) c->finalize();
  for (auto& c : a) c->finalize();  // idempotent
}

}  // namespace
}  // namespace fmitest
