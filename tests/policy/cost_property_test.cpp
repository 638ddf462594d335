// Property tests of the cost model and the default policy over random model
// parameters (issue 16): whatever the prices, bandwidths and overheads, the policy
// never chooses a channel that another enabled channel beats on both objectives
// (latency, and cost with the functions' own time counted), every prediction is a
// finite, non-negative number, and the cost terms keep their units.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "channels/direct/config.h"
#include "channels/redis/config.h"
#include "channels/s3/config.h"
#include "fmi/config.h"
#include "fmi/model.h"

namespace {

using FMI::Config;
using FMI::Utils::Hint;
using FMI::Utils::Operation;

// Log-uniform in [lo, hi]: parameters span orders of magnitude.
double log_uniform(std::mt19937_64& rng, double lo, double hi) {
  std::uniform_real_distribution<double> u(std::log(lo), std::log(hi));
  return std::exp(u(rng));
}

// A price: 0 one time in four (free transfer within a zone, servers left out).
double price(std::mt19937_64& rng, double lo, double hi) {
  return rng() % 4 == 0 ? 0.0 : log_uniform(rng, lo, hi);
}

Config random_config(std::mt19937_64& rng) {
  Config c;
  auto& d = c.section<FMI::Comm::DirectConfig>().model;
  auto& r = c.section<FMI::Comm::RedisConfig>().model;
  auto& s = c.section<FMI::Comm::S3Config>().model;
  c.model.faas.gib_second_price = price(rng, 1e-7, 1e-3);
  d.bandwidth = log_uniform(rng, 1, 1e4);
  d.overhead = log_uniform(rng, 1e-3, 200);
  d.transfer_price = price(rng, 1e-4, 1);
  d.vm_price = price(rng, 1e-3, 100);
  d.requests_per_hour = log_uniform(rng, 1, 1e6);
  d.include_infrastructure_costs = rng() % 2;
  d.relayed_fraction = rng() % 2 ? 0.0 : std::uniform_real_distribution<double>(0, 1)(rng);
  d.vm_egress_price = price(rng, 1e-3, 1);
  r.bandwidth_single = log_uniform(rng, 1, 1e4);
  r.bandwidth_multiple = log_uniform(rng, 1, 1e4);
  r.overhead = log_uniform(rng, 1e-3, 200);
  r.transfer_price = price(rng, 1e-4, 1);
  r.instance_price = price(rng, 1e-3, 100);
  r.include_infrastructure_costs = rng() % 2;
  s.bandwidth = log_uniform(rng, 1, 1e4);
  s.overhead = log_uniform(rng, 1e-3, 200);
  s.transfer_price = price(rng, 1e-4, 1);
  s.upload_price = price(rng, 1e-8, 1e-3);
  s.download_price = price(rng, 1e-9, 1e-4);
  c.section<FMI::Comm::S3Config>().timeout = std::chrono::milliseconds(1 + rng() % 2000);
  return c;
}

FMI::Utils::ExplainOptions random_workload(std::mt19937_64& rng) {
  FMI::Utils::ExplainOptions o;
  o.num_peers = 1 + unsigned(rng() % 200);
  o.faas_memory = 128 + unsigned(rng() % 10113);
  o.sizes = {std::size_t(rng() % 64), std::size_t(1) << (rng() % 29)};
  o.ops = {static_cast<Operation>(rng() % 11)};
  o.commutative = rng() % 2;
  o.associative = rng() % 2;
  return o;
}

// b beats a on both objectives, strictly.
bool dominates(const FMI::Utils::Prediction& b, const FMI::Utils::Prediction& a) {
  return b.latency < a.latency && b.cost() < a.cost();
}

TEST(CostProperty, NeverChoosesADominatedChannel) {
  std::mt19937_64 rng(20261201);
  int rows = 0, cheap_not_fast = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    const Config c = random_config(rng);
    const auto o = random_workload(rng);
    for (const auto& row : FMI::Utils::explain_rows(c, o)) {
      ++rows;
      std::string chosen_for[2];
      for (const auto& [hint, name] : row.choice) {
        chosen_for[hint == Hint::cheap] = name;
        const FMI::Utils::Prediction* mine = nullptr;
        for (const auto& [n, p] : row.per_channel)
          if (n == name) mine = &p;
        ASSERT_NE(mine, nullptr);
        for (const auto& [other, p] : row.per_channel)
          EXPECT_FALSE(dominates(p, *mine))
              << "trial " << trial << ": " << to_string(row.op) << " " << row.size << " B, "
              << o.num_peers << " peers, hint " << to_string(hint) << " chose " << name << " ("
              << mine->latency << " s, " << mine->cost() << " USD) over " << other << " ("
              << p.latency << " s, " << p.cost() << " USD)";
        // The chosen channel is the argmin of the hint's objective.
        for (const auto& [other, p] : row.per_channel) {
          if (hint == Hint::cheap)
            EXPECT_LE(mine->cost(), p.cost()) << "trial " << trial << " vs " << other;
          else
            EXPECT_LE(mine->latency, p.latency) << "trial " << trial << " vs " << other;
        }
      }
      cheap_not_fast += chosen_for[0] != chosen_for[1];
    }
  }
  EXPECT_GT(rows, 3000);
  // The random parameters do reach trade-offs (else the property is vacuous).
  EXPECT_GT(cheap_not_fast, 30);
}

// Units: each term scales with the price it is billed in, and only with it.
TEST(CostProperty, TermsScaleWithTheirPrices) {
  std::mt19937_64 rng(16);
  for (int trial = 0; trial < 500; ++trial) {
    Config c = random_config(rng);
    c.section<FMI::Comm::DirectConfig>().model.include_infrastructure_costs =
        c.section<FMI::Comm::RedisConfig>().model.include_infrastructure_costs = true;
    const auto o = random_workload(rng);
    Config twice = c;
    twice.model.faas.gib_second_price *= 2;
    twice.section<FMI::Comm::DirectConfig>().model.vm_price *= 2;
    twice.section<FMI::Comm::RedisConfig>().model.instance_price *= 2;
    const auto a = FMI::Utils::explain_rows(c, o), b = FMI::Utils::explain_rows(twice, o);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t r = 0; r < a.size(); ++r)
      for (std::size_t i = 0; i < a[r].per_channel.size(); ++i) {
        const auto& [name, p] = a[r].per_channel[i];
        const auto& q = b[r].per_channel[i].second;
        ASSERT_TRUE(std::isfinite(p.cost()) && p.cost() >= 0) << name << " trial " << trial;
        ASSERT_TRUE(std::isfinite(p.latency) && p.latency >= 0) << name << " trial " << trial;
        EXPECT_EQ(p.latency, q.latency);
        EXPECT_EQ(p.channel_cost, q.channel_cost);
        EXPECT_NEAR(q.faas_cost, 2 * p.faas_cost, 1e-12 * p.faas_cost);
        EXPECT_NEAR(q.infra_cost, 2 * p.infra_cost, 1e-12 * p.infra_cost);
        // USD per GiB-second x GiB x seconds x functions.
        const double functions = a[r].op == Operation::send ? 2 : o.num_peers;
        EXPECT_NEAR(p.faas_cost,
                    c.model.faas.gib_second_price * o.faas_memory / 1024.0 * p.latency * functions,
                    1e-9 * p.faas_cost);
        // USD per hour x seconds / 3600.
        const double hourly = name == "Direct" ? c.section<FMI::Comm::DirectConfig>().model.vm_price
                              : name == "Redis"
                                  ? c.section<FMI::Comm::RedisConfig>().model.instance_price
                                  : 0.0;
        EXPECT_NEAR(p.infra_cost, hourly * p.latency / 3600, 1e-9 * p.infra_cost);
      }
  }
}

}  // namespace
