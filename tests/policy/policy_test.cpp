// Tests of the policy's models and of the default policy:
//  - exchange models against values computed by hand from docs/policy.md;
//  - the patterns against what the collectives really do (messages, requests and
//    bytes counted on in-process channels, every algorithm the choice can make);
//  - the choice: where it flips, that it agrees for equal inputs, fallbacks for
//    channels without a model, user channels and custom policies.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include "channels/direct/config.h"
#include "channels/redis/config.h"
#include "channels/s3/config.h"
#include "fmi/fmi.h"
#include "fmi/model.h"
#include "policy/models.h"

namespace {

using namespace std::chrono_literals;
using FMI::Config;
using FMI::Comm::ChannelKind;
using FMI::Utils::Hint;
using FMI::Utils::Operation;
using FMI::Utils::OperationInfo;
using FMI::Utils::peer_num;

constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGiB = 1024.0 * kMiB;

OperationInfo info_of(Operation op, std::size_t size, peer_num n, Hint h = Hint::fast,
                      bool commutative = true, bool associative = true) {
  OperationInfo i;
  i.op = op;
  i.data_size = size;
  i.num_peers = n;
  i.hint = h;
  i.commutative = commutative;
  i.associative = associative;
  i.faas_memory = 128;
  return i;
}

FMI::Utils::ChannelMap builtins();

// ---- exchange models --------------------------------------------------------------

TEST(ExchangeModel, DirectByHand) {
  Config c;  // defaults = config/fmi.json: 250 MiB/s, 0.3 ms, vm 0.0134 USD/h, 1000 req/h
  auto m = FMI::Comm::make_builtin_model("Direct", c);
  ASSERT_TRUE(m);
  EXPECT_DOUBLE_EQ(m->latency(1, 1, 1 << 20), 0.0003 + 1.0 / 250);
  EXPECT_DOUBLE_EQ(m->latency(3, 1, 0), 2 * 0.0003);                    // log2(4) overheads
  EXPECT_DOUBLE_EQ(m->latency(1, 7, 1 << 20), 3 * 0.0003 + 7.0 / 250);  // 7 MiB through one link
  // The VM carries no data messages: no per-message price; it is billed per hour.
  EXPECT_EQ(m->cost(2, 3, 0), 0.0);
  EXPECT_EQ(m->cost(2, 3, 1 << 20), 0.0);  // transfer_price 0: one availability zone
  EXPECT_DOUBLE_EQ(m->hourly_price(), 0.0134);
  EXPECT_EQ(m->latency(0, 3, 100), 0.0);
  c.section<FMI::Comm::DirectConfig>().model.transfer_price = 0.09;
  c.section<FMI::Comm::DirectConfig>().model.include_infrastructure_costs = false;
  m = FMI::Comm::make_builtin_model("Direct", c);
  EXPECT_DOUBLE_EQ(m->cost(1, 2, std::size_t(kGiB)), 2 * 0.09);  // 2 GiB delivered
  EXPECT_EQ(m->hourly_price(), 0.0);
  // A quarter of the bytes relayed by the VM: they also pay its egress (USD/GiB).
  c.section<FMI::Comm::DirectConfig>().model.relayed_fraction = 0.25;
  c.section<FMI::Comm::DirectConfig>().model.vm_egress_price = 0.08;
  m = FMI::Comm::make_builtin_model("Direct", c);
  EXPECT_DOUBLE_EQ(m->cost(1, 2, std::size_t(kGiB)), 2 * 0.09 + 0.25 * 2 * 0.08);
}

TEST(ExchangeModel, RedisByHand) {
  Config c;  // 100 MiB/s single, 400 multiple, 5.2 ms, 0.0038 USD/h, 1000 req/h
  auto m = FMI::Comm::make_builtin_model("Redis", c);
  ASSERT_TRUE(m);
  EXPECT_DOUBLE_EQ(m->latency(1, 1, 1 << 20), 0.0052 + 1.0 / 100);
  EXPECT_DOUBLE_EQ(m->latency(1, 3, 1 << 20), 2 * 0.0052 + 3.0 / 400);
  // The instance is billed per hour, not per request: an exchange pays transfer only.
  EXPECT_EQ(m->cost(2, 3, 123), 0.0);
  EXPECT_DOUBLE_EQ(m->hourly_price(), 0.0038);
  c.section<FMI::Comm::RedisConfig>().model.transfer_price = 0.01;
  c.section<FMI::Comm::RedisConfig>().model.include_infrastructure_costs = false;
  m = FMI::Comm::make_builtin_model("Redis", c);
  EXPECT_DOUBLE_EQ(m->cost(2, 3, std::size_t(kGiB)), 6 * 0.01);  // 6 GiB read out
  EXPECT_EQ(m->hourly_price(), 0.0);
}

TEST(ExchangeModel, S3ByHandWithPolling) {
  Config c;  // 50 MiB/s, 40.4 ms, PUT 5.4e-6, GET 4.3e-7; first poll 100 ms
  c.section<FMI::Comm::S3Config>().timeout = 100ms;
  auto m = FMI::Comm::make_builtin_model("S3", c);
  ASSERT_TRUE(m);
  // Small object: exists after 40.4 ms; attempts at 0 (miss) and 100 ms (hit):
  // 1 miss, and on average half of the 100 ms interval of delay.
  EXPECT_NEAR(m->latency(1, 1, 0), 0.0404 + 0.05, 1e-12);
  EXPECT_NEAR(m->cost(1, 1, 0), 5.4e-6 + 4.3e-7 * (1 + 1), 1e-15);
  EXPECT_NEAR(m->cost(2, 3, 0), 2 * 5.4e-6 + 4.3e-7 * (6 + 3 * 1), 1e-15);
  // 50 MiB: exists after 1.0404 s; attempts at 0, .1, .25, .475, .8125 miss, the
  // sixth (1.31 s) hits: 5 misses, interval then 0.1 x 1.5^4 s.
  const std::size_t big = 50u << 20;
  EXPECT_NEAR(m->latency(1, 1, big), 0.0404 + 1.0 + 0.5 * 0.1 * std::pow(1.5, 4), 1e-9);
  EXPECT_NEAR(m->cost(1, 2, big), 5.4e-6 + 4.3e-7 * (2 + 2 * 5), 1e-15);
  EXPECT_EQ(FMI::Comm::make_builtin_model("inproc", c), nullptr);
}

TEST(ExchangeModel, FromConfigFile) {
  const Config c = Config::load(FMI_SOURCE_DIR "/config/fmi.json");
  auto m = FMI::Comm::make_builtin_model("Direct", c);
  EXPECT_DOUBLE_EQ(m->latency(1, 1, 0), 0.0003);
}

// ---- patterns by hand --------------------------------------------------------------

double sum_count(const std::vector<FMI::policy::Exchange>& v) {
  double s = 0;
  for (const auto& x : v) s += x.count;
  return s;
}

TEST(Pattern, ByHand) {
  using FMI::policy::Exchange;
  using FMI::policy::pattern;
  const auto p2p = ChannelKind::peer_to_peer, store = ChannelKind::object_store;
  // Binomial bcast of 8 peers: 3 rounds, 7 messages of the full size.
  auto b = pattern(info_of(Operation::bcast, 100, 8), p2p);
  EXPECT_EQ(b.algorithm, FMI::coll::Algorithm::binomial);
  EXPECT_EQ(sum_count(b.path), 3);
  EXPECT_EQ(sum_count(b.traffic), 7);
  EXPECT_EQ(b.participants, 8u);
  // Ring allreduce of 4 x 1 MiB: 2(n-1) = 6 rounds of 4 messages of 256 KiB.
  auto r = pattern(info_of(Operation::allreduce, 1 << 20, 4), p2p);
  EXPECT_EQ(r.algorithm, FMI::coll::Algorithm::ring);
  ASSERT_EQ(r.path.size(), 1u);
  EXPECT_EQ(r.path[0], (Exchange{6, 1, 1, 256 * 1024}));
  EXPECT_EQ(r.traffic[0], (Exchange{24, 1, 1, 256 * 1024}));
  // Small allreduce on 6 peers: reduce to 0 and bcast on one binomial tree, 3 + 3
  // rounds, 5 + 5 messages.
  auto d = pattern(info_of(Operation::allreduce, 64, 6), p2p);
  EXPECT_EQ(d.algorithm, FMI::coll::Algorithm::binomial);
  EXPECT_EQ(sum_count(d.path), 6);
  EXPECT_EQ(sum_count(d.traffic), 10);
  // Recursive doubling on 2 peers: one exchange, 2 messages.
  auto d2 = pattern(info_of(Operation::allreduce, 64, 2), p2p);
  EXPECT_EQ(d2.algorithm, FMI::coll::Algorithm::recursive_doubling);
  EXPECT_EQ(sum_count(d2.path), 1);
  EXPECT_EQ(sum_count(d2.traffic), 2);
  // Barrier on 5 peers: fan-in and release on the binomial tree, 3 + 3 rounds of
  // empty messages, 4 + 4 of them; on 2 peers dissemination, one round.
  auto w = pattern(info_of(Operation::barrier, 0, 5), p2p);
  EXPECT_EQ(w.algorithm, FMI::coll::Algorithm::binomial);
  EXPECT_EQ(sum_count(w.path), 6);
  EXPECT_EQ(sum_count(w.traffic), 8);
  auto w2 = pattern(info_of(Operation::barrier, 0, 2), p2p);
  EXPECT_EQ(w2.algorithm, FMI::coll::Algorithm::dissemination);
  EXPECT_EQ(sum_count(w2.path), 1);
  // Store allreduce: (n-1) -> 1 then 1 -> (n-1).
  auto s = pattern(info_of(Operation::allreduce, 64, 5), store);
  EXPECT_EQ(s.path, (std::vector<Exchange>{{1, 4, 1, 64}, {1, 1, 4, 64}}));
  // Send: only the two ends pay for their time.
  EXPECT_EQ(pattern(info_of(Operation::send, 64, 9), store).participants, 2u);
}

TEST(Predict, DirectBcastByHand) {
  Config c;
  auto m = FMI::Comm::make_builtin_model("Direct", c);
  const auto p =
      FMI::Utils::predict(info_of(Operation::bcast, 8, 8), ChannelKind::peer_to_peer, *m, c);
  const double lat = 3 * (0.0003 + 8 / (250 * kMiB));
  EXPECT_EQ(p.algorithm, "binomial");
  EXPECT_NEAR(p.latency, lat, 1e-15);
  EXPECT_EQ(p.channel_cost, 0.0);
  EXPECT_NEAR(p.infra_cost, 0.0134 * lat / 3600, 1e-18);  // USD/h x s / (s/h)
  EXPECT_NEAR(p.faas_cost, 0.0000166667 * (128 / 1024.0) * lat * 8, 1e-18);
  EXPECT_DOUBLE_EQ(p.cost(), p.channel_cost + p.infra_cost + p.faas_cost);
}

// The issue's table (64 functions of 2048 MiB), recomputed from the formulas of
// docs/policy.md with every unit written out: seconds, MiB/s, USD/h, USD/(GiB s).
TEST(Predict, IssueTableByHand) {
  const Config c;  // the shipped model (config/fmi.json's values are the defaults)
  auto info = info_of(Operation::allreduce, 64u << 20, 64, Hint::cheap);
  info.faas_memory = 2048;
  const double gib_s = 0.0000166667 * (2048 / 1024.0) * 64;  // USD per second of all 64
  // Direct, ring: 2(n-1) = 126 rounds of one 1 MiB chunk (64 MiB / 64) per link.
  const auto d = FMI::Utils::predict(info, ChannelKind::peer_to_peer,
                                     *FMI::Comm::make_builtin_model("Direct", c), c);
  const double d_lat = 126 * (0.3 / 1000 + 1.0 / 250);  // 0.5418 s
  EXPECT_EQ(d.algorithm, "ring");
  EXPECT_NEAR(d.latency, d_lat, 1e-12);
  EXPECT_EQ(d.channel_cost, 0.0);
  EXPECT_NEAR(d.infra_cost, 0.0134 / 3600 * d_lat, 1e-15);
  EXPECT_NEAR(d.faas_cost, gib_s * d_lat, 1e-12);
  // Redis, linear: 63 -> 1 at bandwidth_single, then 1 -> 63 at bandwidth_multiple,
  // log2(64) = 6 overheads of 5.2 ms each.
  const auto r = FMI::Utils::predict(info, ChannelKind::object_store,
                                     *FMI::Comm::make_builtin_model("Redis", c), c);
  const double r_lat = (6 * 0.0052 + 63 * 64 / 100.0) + (6 * 0.0052 + 63 * 64 / 400.0);  // 50.46 s
  EXPECT_NEAR(r.latency, r_lat, 1e-9);
  EXPECT_EQ(r.channel_cost, 0.0);
  EXPECT_NEAR(r.infra_cost, 0.0038 / 3600 * r_lat, 1e-12);
  EXPECT_NEAR(r.faas_cost, gib_s * r_lat, 1e-9);
  EXPECT_LT(d.cost(), r.cost() / 50);  // the reason cheap picks Direct: 64 functions wait
  // S3, 8 B: each exchange is an upload (40.4 ms) polled at 0 (miss) and 100 ms (hit).
  info.data_size = 8;
  const auto s = FMI::Utils::predict(info, ChannelKind::object_store,
                                     *FMI::Comm::make_builtin_model("S3", c), c);
  const double one = 6 * 0.0404 + 63 * 8 / (50 * kMiB) + 0.5 * 0.1;
  EXPECT_NEAR(s.latency, 2 * one, 1e-12);
  // 63 + 1 PUTs; GETs: 63 + 1 miss, then 63 + 63 misses (USD per request).
  EXPECT_NEAR(s.channel_cost, 64 * 5.4e-6 + (64 + 126) * 4.3e-7, 1e-15);
  EXPECT_EQ(s.infra_cost, 0.0);
  EXPECT_NEAR(s.faas_cost, gib_s * 2 * one, 1e-12);
  // And the policy takes Direct at every size under cheap.
  auto policy = FMI::Utils::make_default_policy(c);
  for (std::size_t size : {std::size_t(8), std::size_t(1) << 20, std::size_t(64) << 20}) {
    info.data_size = size;
    EXPECT_EQ(policy->get_channel(info, builtins()), "Direct") << size;
  }
}

// ---- patterns against the real algorithms ----------------------------------------------

// Counts what the algorithms really do on an in-process channel.
struct Counters {
  std::atomic<std::uint64_t> messages{0}, bytes{0}, puts{0}, gets{0};
};

class CountingP2P final : public FMI::Comm::PeerToPeerChannel {
 public:
  CountingP2P(std::shared_ptr<FMI::Comm::PeerToPeerChannel> in, Counters& c) : in_(in), c_(c) {}
  void init(const FMI::Comm::ChannelContext& x) override { in_->init(x); }
  void finalize() noexcept override { in_->finalize(); }
  std::chrono::milliseconds max_timeout() const override { return in_->max_timeout(); }
  void send(peer_num d, FMI::Comm::ConstBytes b, FMI::Comm::Tag t,
            FMI::Utils::Deadline dl) override {
    ++c_.messages;
    c_.bytes += b.size();
    in_->send(d, b, t, dl);
  }
  void recv(peer_num s, FMI::Comm::Bytes b, FMI::Comm::Tag t, FMI::Utils::Deadline dl) override {
    in_->recv(s, b, t, dl);
  }
  void sendrecv(peer_num d, FMI::Comm::ConstBytes b, peer_num s, FMI::Comm::Bytes o,
                FMI::Comm::Tag t, FMI::Utils::Deadline dl) override {
    ++c_.messages;
    c_.bytes += b.size();
    in_->sendrecv(d, b, s, o, t, dl);
  }

 private:
  std::shared_ptr<FMI::Comm::PeerToPeerChannel> in_;
  Counters& c_;
};

class CountingStore final : public FMI::Comm::ObjectStoreChannel {
 public:
  CountingStore(std::shared_ptr<FMI::Comm::ObjectStoreChannel> in, Counters& c) : in_(in), c_(c) {}
  void init(const FMI::Comm::ChannelContext& x) override { in_->init(x); }
  void finalize() noexcept override { in_->finalize(); }
  std::chrono::milliseconds max_timeout() const override { return in_->max_timeout(); }
  void put(const FMI::Comm::ObjectKey& k, FMI::Comm::ConstBytes b, unsigned r,
           FMI::Utils::Deadline dl) override {
    ++c_.puts;
    in_->put(k, b, r, dl);
  }
  void get(const FMI::Comm::ObjectKey& k, FMI::Comm::Bytes b, FMI::Utils::Deadline dl) override {
    ++c_.gets;
    c_.bytes += b.size();
    in_->get(k, b, dl);
  }
  void erase(const FMI::Comm::ObjectKey& k, FMI::Utils::Deadline dl) override { in_->erase(k, dl); }
  std::vector<std::string> list(const std::string& p, FMI::Utils::Deadline dl) override {
    return in_->list(p, dl);
  }

 private:
  std::shared_ptr<FMI::Comm::ObjectStoreChannel> in_;
  Counters& c_;
};

void xor_bytes(const void*, FMI::Comm::ConstBytes l, FMI::Comm::ConstBytes r, FMI::Comm::Bytes o) {
  for (std::size_t i = 0; i < o.size(); ++i) o[i] = l[i] ^ r[i];
}

// Runs `op` once on n threads over a counting in-process channel of `kind`.
void run_counted(Operation op, std::size_t s, peer_num n, ChannelKind kind, bool commutative,
                 bool associative, Counters& counters) {
  FMI::Comm::InProcessHub hub(n, 20s);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (peer_num id = 0; id < n; ++id) {
    threads.emplace_back([&, id] {
      try {
        FMI::Communicator comm(id, n, Config{}, "count");
        if (kind == ChannelKind::peer_to_peer)
          comm.register_channel("x", std::make_shared<CountingP2P>(hub.p2p_endpoint(), counters));
        else
          comm.register_channel("x",
                                std::make_shared<CountingStore>(hub.store_endpoint(), counters));
        FMI::Utils::ReduceOp f;
        f.fn = &xor_bytes;
        f.granularity = 1;
        f.commutative = commutative;
        f.associative = associative;
        std::vector<std::byte> a(s * n, std::byte{1}), b(s * n);
        FMI::Comm::ConstBytes one(a.data(), s), all(a.data(), s * n);
        FMI::Comm::Bytes rone(b.data(), s), rall(b.data(), s * n);
        const std::vector<std::size_t> counts(n, s);
        switch (op) {
          case Operation::send:
            if (id == 0) comm.send_bytes(one, n - 1);
            if (id == n - 1) comm.recv_bytes(rone, 0);
            break;
          case Operation::bcast: comm.bcast_bytes(rone, 0); break;
          case Operation::barrier: comm.barrier(); break;
          case Operation::gather: comm.gather_bytes(one, rall, 0); break;
          case Operation::scatter: comm.scatter_bytes(all, rone, 0); break;
          case Operation::reduce: comm.reduce_bytes(one, rone, 0, f); break;
          case Operation::allreduce: comm.allreduce_bytes(one, rone, f); break;
          case Operation::scan: comm.scan_bytes(one, rone, f); break;
          case Operation::allgather: comm.allgather_bytes(one, rall); break;
          case Operation::alltoall: comm.alltoall_bytes(all, rall); break;
          case Operation::reduce_scatter: comm.reduce_scatter_bytes(all, rone, f); break;
          // The v-forms with every count equal to s: the model costs the mean block.
          case Operation::gatherv: comm.gatherv_bytes(one, rall, counts, 0); break;
          case Operation::scatterv: comm.scatterv_bytes(all, counts, rone, 0); break;
          case Operation::allgatherv: comm.allgatherv_bytes(one, rall, counts); break;
          case Operation::alltoallv: comm.alltoallv_bytes(all, counts, rall, counts); break;
        }
      } catch (const std::exception& e) {
        errors[id] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (peer_num id = 0; id < n; ++id) ASSERT_EQ(errors[id], "") << "peer " << id;
}

struct Case {
  Operation op;
  std::size_t size;
  peer_num n;
  bool commutative = true, associative = true;
};

class PatternMatchesAlgorithm : public ::testing::TestWithParam<Case> {};

TEST_P(PatternMatchesAlgorithm, P2PMessagesAndBytes) {
  const Case c = GetParam();
  Counters k;
  run_counted(c.op, c.size, c.n, ChannelKind::peer_to_peer, c.commutative, c.associative, k);
  const auto pat =
      FMI::policy::pattern(info_of(c.op, c.size, c.n, Hint::fast, c.commutative, c.associative),
                           ChannelKind::peer_to_peer);
  double messages = 0, bytes = 0;
  for (const auto& x : pat.traffic) {
    messages += x.count * x.producers * x.consumers;
    bytes += x.count * x.producers * x.consumers * double(x.bytes);
  }
  EXPECT_EQ(messages, double(k.messages)) << FMI::coll::to_string(pat.algorithm);
  // Chunks of n-way splits are rounded up in the model: allow one byte per message.
  EXPECT_NEAR(bytes, double(k.bytes), messages) << FMI::coll::to_string(pat.algorithm);
}

TEST_P(PatternMatchesAlgorithm, StoreRequestsAndBytes) {
  const Case c = GetParam();
  Counters k;
  run_counted(c.op, c.size, c.n, ChannelKind::object_store, c.commutative, c.associative, k);
  const auto pat =
      FMI::policy::pattern(info_of(c.op, c.size, c.n, Hint::fast, c.commutative, c.associative),
                           ChannelKind::object_store);
  double puts = 0, gets = 0, bytes = 0;
  for (const auto& x : pat.traffic) {
    puts += x.count * x.producers;
    gets += x.count * x.producers * x.consumers;
    bytes += x.count * x.producers * x.consumers * double(x.bytes);
  }
  EXPECT_EQ(puts, double(k.puts));
  EXPECT_EQ(gets, double(k.gets));
  EXPECT_EQ(bytes, double(k.bytes));
}

std::vector<Case> cases() {
  std::vector<Case> v;
  const Operation ops[] = {Operation::send,      Operation::bcast,          Operation::barrier,
                           Operation::gather,    Operation::scatter,        Operation::reduce,
                           Operation::allreduce, Operation::scan,           Operation::allgather,
                           Operation::alltoall,  Operation::reduce_scatter, Operation::gatherv,
                           Operation::scatterv,  Operation::allgatherv,     Operation::alltoallv};
  for (peer_num n : {2u, 3u, 5u, 8u, 9u})
    for (std::size_t s : {std::size_t(8), std::size_t(300 * 1024)})
      for (Operation op : ops) {
        v.push_back({op, s, n});
        if (op == Operation::reduce || op == Operation::allreduce || op == Operation::scan ||
            op == Operation::reduce_scatter) {
          v.push_back({op, s, n, false, true});
          v.push_back({op, s, n, false, false});
        }
      }
  // 2 MiB: the pipelined chains (coll::kSegment segments) of bcast, reduce, scan.
  for (peer_num n : {3u, 5u, 8u})
    for (Operation op : {Operation::bcast, Operation::reduce, Operation::scan}) {
      v.push_back({op, std::size_t(2) << 20, n});
      if (op != Operation::bcast) {
        v.push_back({op, std::size_t(2) << 20, n, false, true});
        v.push_back({op, std::size_t(2) << 20, n, false, false});
      }
    }
  return v;
}

std::string case_name(const ::testing::TestParamInfo<Case>& i) {
  const Case& c = i.param;
  return std::string(FMI::Utils::to_string(c.op)) + "_" + std::to_string(c.size) + "B_" +
         std::to_string(c.n) + "peers" + (c.commutative ? "" : "_noncomm") +
         (c.associative ? "" : "_nonassoc");
}

INSTANTIATE_TEST_SUITE_P(All, PatternMatchesAlgorithm, ::testing::ValuesIn(cases()), case_name);

// ---- the choice ----------------------------------------------------------------------

// Stand-ins with a kind and a model (or none); the policy moves no data.
class FakeP2P final : public FMI::Comm::PeerToPeerChannel {
 public:
  explicit FakeP2P(std::shared_ptr<const FMI::Comm::ChannelModel> m = nullptr) : m_(m) {}
  void init(const FMI::Comm::ChannelContext&) override {}
  void finalize() noexcept override {}
  std::chrono::milliseconds max_timeout() const override { return 1s; }
  std::shared_ptr<const FMI::Comm::ChannelModel> model() const override { return m_; }
  void send(peer_num, FMI::Comm::ConstBytes, FMI::Comm::Tag, FMI::Utils::Deadline) override {}
  void recv(peer_num, FMI::Comm::Bytes, FMI::Comm::Tag, FMI::Utils::Deadline) override {}
  void sendrecv(peer_num, FMI::Comm::ConstBytes, peer_num, FMI::Comm::Bytes, FMI::Comm::Tag,
                FMI::Utils::Deadline) override {}

 private:
  std::shared_ptr<const FMI::Comm::ChannelModel> m_;
};

class FakeStore final : public FMI::Comm::ObjectStoreChannel {
 public:
  explicit FakeStore(std::shared_ptr<const FMI::Comm::ChannelModel> m = nullptr) : m_(m) {}
  void init(const FMI::Comm::ChannelContext&) override {}
  void finalize() noexcept override {}
  std::chrono::milliseconds max_timeout() const override { return 1s; }
  std::shared_ptr<const FMI::Comm::ChannelModel> model() const override { return m_; }
  void put(const FMI::Comm::ObjectKey&, FMI::Comm::ConstBytes, unsigned,
           FMI::Utils::Deadline) override {}
  void get(const FMI::Comm::ObjectKey&, FMI::Comm::Bytes, FMI::Utils::Deadline) override {}
  void erase(const FMI::Comm::ObjectKey&, FMI::Utils::Deadline) override {}
  std::vector<std::string> list(const std::string&, FMI::Utils::Deadline) override { return {}; }

 private:
  std::shared_ptr<const FMI::Comm::ChannelModel> m_;
};

// The three built-in channels as the Communicator would register them, with
// model() == nullptr: the policy must fall back to the reference models.
FMI::Utils::ChannelMap builtins() {
  return {{"Direct", std::make_shared<FakeP2P>()},
          {"Redis", std::make_shared<FakeStore>()},
          {"S3", std::make_shared<FakeStore>()}};
}

TEST(Choice, DocumentedDefaults) {
  auto policy = FMI::Utils::make_default_policy(Config{});
  const auto ch = builtins();
  // Small messages: Direct is fastest (0.3 ms overhead) and cheapest (the functions
  // wait least; the VM is billed by the hour, not per message).
  EXPECT_EQ(policy->get_channel(info_of(Operation::bcast, 8, 8, Hint::fast), ch), "Direct");
  EXPECT_EQ(policy->get_channel(info_of(Operation::bcast, 8, 8, Hint::cheap), ch), "Direct");
  EXPECT_EQ(policy->get_channel(info_of(Operation::allreduce, 1024, 8, Hint::fast), ch), "Direct");
  // 64 MiB bcast under cheap: Direct's 0.45 s against Redis's 1.1 s and S3's 9.5 s.
  EXPECT_EQ(policy->get_channel(info_of(Operation::bcast, 64u << 20, 8, Hint::cheap), ch),
            "Direct");
  // S3 is cheapest where the others' servers are dear: a VM at 100 USD/h.
  Config pricey;
  pricey.section<FMI::Comm::DirectConfig>().model.vm_price = 100;
  pricey.section<FMI::Comm::RedisConfig>().model.instance_price = 100;
  EXPECT_EQ(FMI::Utils::make_default_policy(pricey)->get_channel(
                info_of(Operation::bcast, 8, 8, Hint::cheap), ch),
            "S3");
  // 64 MiB scatter under fast: the root's link (7 x 64 MiB at 250 MiB/s) is slower
  // than Redis's aggregate 400 MiB/s.
  EXPECT_EQ(policy->get_channel(info_of(Operation::scatter, 64u << 20, 8, Hint::fast), ch),
            "Redis");
}

// The choice flips exactly where the predictions cross.
TEST(Choice, FlipsWhereModelsCross) {
  // Direct across availability zones (0.01 USD/GiB), Redis in the functions' zone:
  // Direct's scatter_allgather moves about twice the bytes of a store bcast, so
  // large bcasts are cheaper on Redis.
  Config c;
  c.section<FMI::Comm::DirectConfig>().model.transfer_price = 0.01;
  auto policy = FMI::Utils::make_default_policy(c);
  const auto ch = builtins();
  for (Hint h : {Hint::fast, Hint::cheap}) {
    for (Operation op : {Operation::bcast, Operation::scatter, Operation::allreduce}) {
      std::string prev;
      int flips = 0;
      for (std::size_t s = 1; s <= (256u << 20); s *= 2) {
        const auto info = info_of(op, s, 8, h);
        const std::string got = policy->get_channel(info, ch);
        // The chosen channel is the argmin of the objective.
        double best = INFINITY;
        std::string argmin;
        for (const auto& [name, c2] : ch) {
          const auto p =
              FMI::Utils::predict(info, c2->kind(), *FMI::Comm::make_builtin_model(name, c), c);
          const double v = h == Hint::fast ? p.latency : p.cost();
          if (v < best) best = v, argmin = name;
        }
        EXPECT_EQ(got, argmin) << to_string(op) << " " << s << " B " << to_string(h);
        flips += !prev.empty() && prev != got;
        prev = got;
      }
      if (op == Operation::scatter && h == Hint::fast) {
        EXPECT_GE(flips, 1);
      }
      if (op == Operation::bcast && h == Hint::cheap) {
        EXPECT_GE(flips, 1);
      }
    }
  }
}

// Same inputs, same choice: on another peer (another policy object), whatever the
// registration order, for every operation, size and peer count.
TEST(Choice, AllPeersAgree) {
  const Config c;
  auto p1 = FMI::Utils::make_default_policy(c);
  auto p2 = FMI::Utils::make_default_policy(c);
  FMI::Utils::ChannelMap a, b;
  std::vector<std::pair<std::string, std::shared_ptr<FMI::Comm::Channel>>> list = {
      {"Direct", std::make_shared<FakeP2P>()},
      {"Redis", std::make_shared<FakeStore>()},
      {"S3", std::make_shared<FakeStore>()},
      {"zz-user", std::make_shared<FakeP2P>()}};
  for (const auto& x : list) a.insert(x);
  for (auto it = list.rbegin(); it != list.rend(); ++it) b.insert(*it);
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    auto info =
        info_of(static_cast<Operation>(1 + rng() % 11), std::size_t(1) << (rng() % 30),
                1 + rng() % 200, rng() % 2 ? Hint::fast : Hint::cheap, rng() % 2, rng() % 2);
    const std::string x = p1->get_channel(info, a);
    EXPECT_EQ(x, p2->get_channel(info, b));
    EXPECT_EQ(x, p1->get_channel(info, a));
    EXPECT_NE(x, "zz-user");  // unmodelled channels rank after modelled ones
  }
}

// A model whose parameters the test controls.
struct FixedModel final : FMI::Comm::ChannelModel {
  double lat, price;
  FixedModel(double l, double p) : lat(l), price(p) {}
  double latency(unsigned, unsigned, std::size_t) const override { return lat; }
  double cost(unsigned, unsigned, std::size_t) const override { return price; }
};

TEST(Choice, ModelsAndFallbacks) {
  auto policy = FMI::Utils::make_default_policy(Config{});
  const auto info = info_of(Operation::bcast, 8, 4, Hint::fast);
  // Nothing modelled: point-to-point first, then by name.
  EXPECT_EQ(policy->get_channel(info, {{"a", std::make_shared<FakeStore>()},
                                       {"b", std::make_shared<FakeP2P>()},
                                       {"c", std::make_shared<FakeP2P>()}}),
            "b");
  EXPECT_EQ(policy->get_channel(
                info, {{"b", std::make_shared<FakeStore>()}, {"a", std::make_shared<FakeStore>()}}),
            "a");
  // A modelled channel beats an unmodelled one even if the latter is p2p.
  EXPECT_EQ(policy->get_channel(
                info, {{"a", std::make_shared<FakeP2P>()}, {"S3", std::make_shared<FakeStore>()}}),
            "S3");
  // A channel's own model is used (and wins when it predicts less).
  auto quick = std::make_shared<FixedModel>(1e-9, 1.0);
  EXPECT_EQ(policy->get_channel(info, {{"mine", std::make_shared<FakeP2P>(quick)},
                                       {"Direct", std::make_shared<FakeP2P>()}}),
            "mine");
  auto cheap_info = info;
  cheap_info.hint = Hint::cheap;
  EXPECT_EQ(policy->get_channel(cheap_info, {{"mine", std::make_shared<FakeP2P>(quick)},
                                             {"Direct", std::make_shared<FakeP2P>()}}),
            "Direct");
  // Ties: the other objective, then the name.
  auto same = std::make_shared<FixedModel>(1.0, 1.0);
  EXPECT_EQ(policy->get_channel(info, {{"y", std::make_shared<FakeP2P>(same)},
                                       {"x", std::make_shared<FakeP2P>(same)}}),
            "x");
  // NaN predictions never win.
  auto broken = std::make_shared<FixedModel>(NAN, NAN);
  EXPECT_EQ(policy->get_channel(info, {{"a", std::make_shared<FakeP2P>(broken)},
                                       {"b", std::make_shared<FakeP2P>(same)}}),
            "b");
}

// ---- through the Communicator ------------------------------------------------------------

// Runs body on n threads, each with a Communicator holding a p2p endpoint of
// `p2p_hub` under `p2p_name` and a store endpoint of `store_hub` under `store_name`.
void run_two_channels(peer_num n, FMI::Comm::InProcessHub& p2p_hub, const std::string& p2p_name,
                      FMI::Comm::InProcessHub& store_hub, const std::string& store_name,
                      const std::function<void(FMI::Communicator&)>& body,
                      const Config& config = Config{}) {
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (peer_num id = 0; id < n; ++id)
    threads.emplace_back([&, id] {
      try {
        FMI::Communicator comm(id, n, config, "two");
        comm.register_channel(p2p_name, p2p_hub.p2p_endpoint());
        comm.register_channel(store_name, store_hub.store_endpoint());
        body(comm);
      } catch (const std::exception& e) {
        errors[id] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (peer_num id = 0; id < n; ++id) EXPECT_EQ(errors[id], "") << "peer " << id;
}

// A custom policy that routes by size keeps working next to the default one.
class BySize final : public FMI::Utils::ChannelPolicy {
 public:
  std::string get_channel(const OperationInfo& info, const FMI::Utils::ChannelMap&) override {
    return info.data_size >= 4096 ? "bulk" : "fastlane";
  }
};

TEST(Communicator, CustomPolicyRoutesBySize) {
  const peer_num n = 4;
  FMI::Comm::InProcessHub p2p(n, 20s), store(n, 20s);
  std::size_t after_small = 0;
  std::atomic<int> at_barrier{0};
  run_two_channels(n, p2p, "fastlane", store, "bulk", [&](FMI::Communicator& comm) {
    comm.set_channel_policy(std::make_shared<BySize>());
    std::vector<int> small(16, int(comm.peer_id())), big(4096, 7);
    FMI::Comm::Data<std::vector<int>> s(small), b(big);
    comm.bcast(s, 0);
    EXPECT_EQ(s.get()[0], 0);
    // Everyone is past the small bcast before anyone starts the big one.
    comm.barrier();  // 0 bytes: fastlane
    if (++at_barrier == int(n)) after_small = store.store_requests();
    comm.barrier();
    comm.bcast(b, 1);
    EXPECT_EQ(b.get()[4095], 7);
  });
  EXPECT_EQ(after_small, 0u) << "small messages must not touch the store";
  EXPECT_GT(store.store_requests(), 0u) << "large messages must go through the store";
}

// The default policy over in-process channels registered under built-in names
// (their model() is null): fast keeps small bcasts off the store, cheap uses it
// when the rendezvous VM is priced so that S3's requests are cheaper.
TEST(Communicator, DefaultPolicyUsesBuiltinModelsByName) {
  const peer_num n = 4;
  Config pricey;
  pricey.section<FMI::Comm::DirectConfig>().model.vm_price = 100;  // USD per hour
  for (Hint h : {Hint::fast, Hint::cheap}) {
    FMI::Comm::InProcessHub p2p(n, 20s), store(n, 20s);
    std::vector<std::string> chosen(n);
    run_two_channels(
        n, p2p, "Direct", store, "S3",
        [&](FMI::Communicator& comm) {
          comm.hint(h);  // set identically on every peer, as docs/policy.md requires
          std::vector<double> v(8, comm.peer_id() == 2 ? 3.5 : 0.0);
          FMI::Comm::Data<std::vector<double>> d(v);
          comm.bcast(d, 2);
          EXPECT_EQ(d.get()[7], 3.5);
          chosen[comm.peer_id()] = comm.channel_for(info_of(Operation::bcast, 64, n, h));
        },
        pricey);
    for (peer_num i = 0; i < n; ++i) EXPECT_EQ(chosen[i], h == Hint::fast ? "Direct" : "S3");
    if (h == Hint::fast)
      EXPECT_EQ(store.store_requests(), 0u);
    else
      EXPECT_GT(store.store_requests(), 0u);
  }
}

// ---- explain ------------------------------------------------------------------------

TEST(Explain, TableMatchesPolicy) {
  const Config c;
  FMI::Utils::ExplainOptions o;
  o.num_peers = 8;
  o.sizes = {8, 64u << 20};
  o.ops = {Operation::bcast, Operation::barrier};
  const auto rows = FMI::Utils::explain_rows(c, o);
  ASSERT_EQ(rows.size(), 3u);  // barrier: one row
  EXPECT_EQ(rows[0].choice.at(0).second, "Direct");
  EXPECT_EQ(rows[0].choice.at(1).second, "Direct");
  EXPECT_EQ(rows[1].choice.at(1).second, "Direct");
  ASSERT_EQ(rows[0].per_channel.size(), 3u);
  EXPECT_EQ(rows[0].per_channel[0].second.algorithm, "binomial");
  const std::string table = FMI::Utils::explain(c, o);
  EXPECT_NE(table.find("bcast"), std::string::npos);
  EXPECT_NE(table.find("64 MiB"), std::string::npos);
  // The barrier of 8 peers: the binomial tree (dissemination only at 2 peers).
  EXPECT_NE(table.find("barrier"), std::string::npos);
  ASSERT_FALSE(rows[2].per_channel.empty());
  EXPECT_EQ(rows[2].per_channel[0].second.algorithm, "binomial");
  o.channels = {"Redis", "Nope"};
  EXPECT_THROW(FMI::Utils::explain_rows(c, o), FMI::UsageError);
}

}  // namespace
