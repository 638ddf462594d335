// Channels and policy through the Communicator: registering several channels, a
// user policy choosing per operation, the hint, and the default policy with
// channels that have no model.
#include <mutex>
#include <set>

#include "harness.h"

namespace fmitest {
namespace {

using FMI::Comm::Data;
using FMI::Utils::Function;
using FMI::Utils::Operation;

/// Sends bcast and gather through the store, everything else through p2p, and
/// records what it was asked.
class SplitPolicy : public FMI::Utils::ChannelPolicy {
 public:
  std::string get_channel(const FMI::Utils::OperationInfo& info,
                          const FMI::Utils::ChannelMap& channels) override {
    std::lock_guard lk(mu);
    seen.push_back(info);
    EXPECT_EQ(channels.size(), 2u);
    return info.op == Operation::bcast || info.op == Operation::gather ? "store" : "p2p";
  }
  std::mutex mu;
  std::vector<FMI::Utils::OperationInfo> seen;
};

TEST(Policy, UserPolicyPicksChannelPerOperation) {
  const peer_num n = 4;
  auto hub = std::make_shared<FMI::Comm::InProcessHub>(n, 10s);
  std::vector<std::shared_ptr<SplitPolicy>> policies(n);
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (peer_num i = 0; i < n; ++i) {
    policies[i] = std::make_shared<SplitPolicy>();
    threads.emplace_back([&, i] {
      try {
        FMI::Config cfg;
        FMI::Communicator c(i, n, cfg, "policy", 1024);
        c.register_channel("p2p", hub->p2p_endpoint());
        c.register_channel("store", hub->store_endpoint());
        c.set_channel_policy(policies[i]);
        c.hint(FMI::Utils::Hint::fast);
        EXPECT_EQ(c.get_hint(), FMI::Utils::Hint::fast);
        EXPECT_EQ(c.channels().size(), 2u);

        FMI::Utils::OperationInfo probe;
        probe.op = Operation::bcast;
        EXPECT_EQ(c.channel_for(probe), "store");
        probe.op = Operation::allreduce;
        EXPECT_EQ(c.channel_for(probe), "p2p");
        {
          std::lock_guard lk(policies[i]->mu);  // keep only what the operations ask
          policies[i]->seen.clear();
        }

        Data<std::vector<int>> b(std::vector<int>(10, i == 1 ? 5 : 0));
        c.bcast(b, 1);
        EXPECT_EQ(b.get(), std::vector<int>(10, 5));
        Data<int> mine = static_cast<int>(i * i);
        Data<std::vector<int>> all(n);
        c.gather(mine, all, 0);
        if (i == 0) {
          for (peer_num q = 0; q < n; ++q) EXPECT_EQ(all.get()[q], static_cast<int>(q * q));
        }
        Data<std::vector<double>> s(std::vector<double>(3, 1.0)), r(3);
        c.allreduce(s, r, Function<std::vector<double>>::sum());
        EXPECT_EQ(r.get(), std::vector<double>(3, double(n)));
        c.barrier();
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (peer_num i = 0; i < n; ++i) {
    if (errors[i]) ADD_FAILURE() << "peer " << i << " threw " << describe(errors[i]);
  }

  // What the policy saw: the operation, one peer's bytes, the peer count, the hint.
  std::lock_guard lk(policies[0]->mu);
  bool saw_allreduce = false;
  for (const auto& info : policies[0]->seen) {
    EXPECT_EQ(info.num_peers, n);
    EXPECT_EQ(info.hint, FMI::Utils::Hint::fast);
    EXPECT_EQ(info.faas_memory, 1024u);
    if (info.op == Operation::allreduce) {
      saw_allreduce = true;
      EXPECT_EQ(info.data_size, 3 * sizeof(double));
      EXPECT_TRUE(info.commutative);
      EXPECT_TRUE(info.associative);
    }
  }
  EXPECT_TRUE(saw_allreduce) << "the policy was not asked for the allreduce";
}

// The default policy with two channels that have no model: every peer must pick the
// same one, so collectives complete.
TEST(Policy, DefaultPolicyWithUnmodelledChannels) {
  for (auto hint : {FMI::Utils::Hint::cheap, FMI::Utils::Hint::fast}) {
    // run_peers registers "inproc" (p2p); each peer adds a store channel of one
    // more hub under another name.
    auto store_hub = std::make_shared<FMI::Comm::InProcessHub>(5, 10s);
    run_peers(5, Kind::p2p, [&](FMI::Communicator& c) {
      c.hint(hint);
      c.register_channel("zstore", store_hub->store_endpoint());
      for (int k = 0; k < 3; ++k) {
        Data<std::vector<int>> s(std::vector<int>(7, int(c.peer_id()))), r(7);
        c.allreduce(s, r, Function<std::vector<int>>::sum());
        EXPECT_EQ(r.get(), std::vector<int>(7, 10));
        Data<double> d = c.peer_id() == 2 ? 1.25 : 0.0;
        c.bcast(d, 2);
        EXPECT_EQ(d.get(), 1.25);
      }
    });
  }
}

TEST(Policy, RegisterChannelReplacesByName) {
  auto hub = std::make_shared<FMI::Comm::InProcessHub>(1, 10s);
  FMI::Config cfg;
  FMI::Communicator c(0, 1, cfg, "replace");
  c.register_channel("x", hub->p2p_endpoint());
  c.register_channel("x", hub->store_endpoint());
  ASSERT_EQ(c.channels().size(), 1u);
  EXPECT_EQ(c.channels().at("x")->kind(), FMI::Comm::ChannelKind::object_store);
  EXPECT_EQ(c.get_hint(), FMI::Utils::Hint::cheap) << "default hint is cheap";
  Data<int> s = 3, r;
  c.allreduce(s, r, Function<int>::sum());
  EXPECT_EQ(r.get(), 3);
}

// Two communicators of the same peers over one store: object names carry the
// communicator's name, so their operations never see each other's objects.
TEST(Isolation, TwoCommunicatorsShareOneStore) {
  const peer_num n = 3;
  auto hub = std::make_shared<FMI::Comm::InProcessHub>(n, 10s);
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (peer_num i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      try {
        FMI::Config cfg;
        FMI::Communicator a(i, n, cfg, "A"), b(i, n, cfg, "B");
        a.register_channel("store", hub->store_endpoint());
        b.register_channel("store", hub->store_endpoint());
        for (int k = 0; k < 3; ++k) {
          Data<int> x = i == 0 ? 10 + k : -1, y = i == 0 ? 20 + k : -1;
          b.bcast(y, 0);  // the other order on the two communicators
          a.bcast(x, 0);
          EXPECT_EQ(x.get(), 10 + k);
          EXPECT_EQ(y.get(), 20 + k);
          Data<int> one = 1, sa, sb;
          a.allreduce(one, sa, Function<int>::sum());
          Data<int> two = 2;
          b.allreduce(two, sb, Function<int>::sum());
          EXPECT_EQ(sa.get(), static_cast<int>(n));
          EXPECT_EQ(sb.get(), static_cast<int>(2 * n));
        }
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (peer_num i = 0; i < n; ++i) {
    if (errors[i]) ADD_FAILURE() << "peer " << i << " threw " << describe(errors[i]);
  }
  EXPECT_EQ(hub->objects_in_store(), 0u);
}

// Functions end as soon as their own part is done: a bcast root that destroys its
// communicator right after bcast returns must not take the data away from peers
// that have not read it yet (finalize must not delete what others still need).
TEST(Lifecycle, RootLeavesRightAfterBcast) {
  for (Kind kind : {Kind::p2p, Kind::store}) {
    const peer_num n = 4;
    auto hub = std::make_shared<FMI::Comm::InProcessHub>(n, 10s);
    std::atomic<bool> root_gone{false};
    std::vector<std::exception_ptr> errors(n);
    std::vector<std::thread> threads;
    for (peer_num i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        try {
          FMI::Config cfg;
          if (i == 0) {
            {
              FMI::Communicator c(i, n, cfg, "early");
              c.register_channel("ch", endpoint(*hub, kind));
              Data<std::vector<int>> b(std::vector<int>(100, 42));
              c.bcast(b, 0);
            }
            root_gone = true;
            return;
          }
          FMI::Communicator c(i, n, cfg, "early");
          c.register_channel("ch", endpoint(*hub, kind));
          while (!root_gone) std::this_thread::sleep_for(1ms);  // read only after it left
          Data<std::vector<int>> b(100);
          c.bcast(b, 0);
          EXPECT_EQ(b.get(), std::vector<int>(100, 42)) << "peer " << i;
        } catch (...) {
          errors[i] = std::current_exception();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (peer_num i = 0; i < n; ++i) {
      if (errors[i])
        ADD_FAILURE() << kind_name(kind) << ": peer " << i << " threw " << describe(errors[i]);
    }
  }
}

}  // namespace
}  // namespace fmitest
