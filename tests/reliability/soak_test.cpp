// Soak: many consecutive communicators and allreduces on 8 peers (threads) with
// random sizes from a fixed seed (0..32 KiB, every 25th round ~1.2 MiB), every element of every
// result checked, and no leak: open file descriptors and resident memory, objects left in the
// in-process store, in the S3 bucket (moto) and keys in Redis.
//
//   in-process p2p, in-process store: 40 communicators x 25 allreduces = 1,000 each
//   Redis:                             40 communicators x 25 allreduces = 1,000
//   S3 (moto, slow):                   5 communicators x 10 allreduces = 50
//
// Prints one "[ soak ]" line per channel (rounds, bytes, time, checksum, fds, RSS).
#include <gtest/gtest.h>

#include <cinttypes>
#include <random>

#ifdef FMI_WITH_S3
#include "channels/redis/config.h"
#include "channels/s3/config.h"
#include "channels/s3/s3_client.h"
#endif
#include "reliability.h"

namespace fmirel {
namespace {

using FMI::Comm::Data;
using FMI::Utils::Function;
using U64s = std::vector<std::uint64_t>;

constexpr peer_num kPeers = 8;
constexpr std::uint64_t kSeed = 20261126;

// Peer p contributes h*(p+1) + p at element i, so the sum over n peers is
// h*n(n+1)/2 + n(n-1)/2 (mod 2^64): every element is checked exactly.
std::uint64_t base(std::uint64_t round_id, std::size_t i) { return mix(round_id * 1000003u + i); }

struct Plan {
  const char* label;
  int comms;
  int rounds;             // per communicator
  std::size_t max_elems;  // sizes are uniform in [0, max_elems] elements of 8 bytes
};

struct PeerTotals {
  std::uint64_t checksum = 0;
  std::uint64_t bytes = 0;
  int rounds = 0;
};

// Runs the plan: every peer (thread) builds its Communicator for communicator k with
// make(peer, k), runs `rounds` allreduces, and destroys it. Returns per peer totals.
std::vector<PeerTotals> soak(
    const Plan& plan, const std::function<std::unique_ptr<FMI::Communicator>(peer_num, int)>& make,
    int first_comm, int comms) {
  std::vector<PeerTotals> totals(kPeers);
  std::vector<std::exception_ptr> errors(kPeers);
  std::vector<std::thread> ts;
  for (peer_num p = 0; p < kPeers; ++p)
    ts.emplace_back([&, p] {
      try {
        // The same seed on every peer: every peer draws the same sizes.
        std::mt19937_64 rng(kSeed);
        std::uniform_int_distribution<std::size_t> size(0, plan.max_elems);
        for (int k = first_comm; k < first_comm + comms; ++k) {
          auto comm = make(p, k);
          for (int r = 0; r < plan.rounds; ++r) {
            const std::uint64_t id = std::uint64_t(k) * 100000u + r;
            // Every 25th round is large (~1.2 MiB per peer): Redis then stores it in
            // its data hash instead of inline, S3 and the p2p algorithms chunk it.
            const std::size_t m = size(rng) + (r % 25 == 24 ? 150000 : 0);
            Data<U64s> s(m), out(m);
            for (std::size_t i = 0; i < m; ++i) s.ref()[i] = base(id, i) * (p + 1) + p;
            comm->allreduce(s, out, Function<U64s>::sum());
            const std::uint64_t n = kPeers;
            std::uint64_t h = totals[p].checksum;
            for (std::size_t i = 0; i < m; ++i) {
              const std::uint64_t want = base(id, i) * (n * (n + 1) / 2) + n * (n - 1) / 2;
              if (out.get()[i] != want)
                throw std::runtime_error("peer " + std::to_string(p) + ", communicator " +
                                         std::to_string(k) + ", round " + std::to_string(r) +
                                         ": element " + std::to_string(i) + " of " +
                                         std::to_string(m) + " is wrong");
              h = mix(h ^ out.get()[i]);
            }
            totals[p].checksum = mix(h ^ m);
            totals[p].bytes += m * 8;
            ++totals[p].rounds;
          }
        }
      } catch (...) {
        errors[p] = std::current_exception();
      }
    });
  for (auto& t : ts) t.join();
  for (peer_num p = 0; p < kPeers; ++p)
    if (errors[p]) ADD_FAILURE() << plan.label << ": peer " << p << ": " << describe(errors[p]);
  return totals;
}

// Warm-up with the first communicator (first-use allocations, thread stacks, curl's
// global state), then the rest; descriptors and memory are compared from there.
void run_plan(const Plan& plan,
              const std::function<std::unique_ptr<FMI::Communicator>(peer_num, int)>& make,
              const std::function<std::size_t()>& left_behind) {
  const auto t0 = Clock::now();
  auto warm = soak(plan, make, 0, 1);
  const int fds0 = open_fds();
  const std::size_t rss0 = rss_bytes();
  auto rest = soak(plan, make, 1, plan.comms - 1);
  const double dt = seconds_since(t0);
  const int fds1 = open_fds();
  const std::size_t rss1 = rss_bytes();

  const auto rounds = warm[0].rounds + rest[0].rounds;
  EXPECT_EQ(rounds, plan.comms * plan.rounds) << plan.label;
  for (peer_num p = 1; p < kPeers; ++p) {
    EXPECT_EQ(rest[p].checksum, rest[0].checksum) << plan.label << ": peer " << p;
    EXPECT_EQ(warm[p].checksum, warm[0].checksum) << plan.label << ": peer " << p;
  }
  EXPECT_EQ(fds1, fds0) << plan.label << ": file descriptors leaked";
  const double grew = (double(rss1) - double(rss0)) / (1 << 20);
  // Generous: allocator arenas of 8 threads may keep freed memory; a leak of the
  // messages themselves (MiBs per round) would exceed it many times over.
  EXPECT_LT(grew, 64.0) << plan.label << ": resident memory grew by " << grew << " MiB";
  const std::size_t left = left_behind();
  EXPECT_EQ(left, 0u) << plan.label << ": objects/keys left behind";
  std::uint64_t bytes = 0;
  for (auto& t : warm) bytes += t.bytes;
  for (auto& t : rest) bytes += t.bytes;
  std::printf(
      "[ soak ] %-18s %5d allreduces x %u peers, %6.1f MiB contributed, %6.1f s, "
      "checksum %016" PRIx64 ", fds %d -> %d, RSS %.1f -> %.1f MiB, left %zu\n",
      plan.label, rounds, kPeers, double(bytes) / (1 << 20), dt, rest[0].checksum, fds0, fds1,
      double(rss0) / (1 << 20), double(rss1) / (1 << 20), left);
}

class Soak : public ::testing::TestWithParam<fmitest::Kind> {};

TEST_P(Soak, InProcess) {
  const fmitest::Kind kind = GetParam();
  FMI::Comm::InProcessHub hub(kPeers, 30s);
  const std::string label = std::string("in-process ") + fmitest::kind_name(kind);
  Plan plan{label.c_str(), 40, 25, 4096};
  run_plan(
      plan,
      [&](peer_num p, int k) {
        FMI::Config cfg;
        auto c = std::make_unique<FMI::Communicator>(p, kPeers, cfg, "soak-" + std::to_string(k));
        c->register_channel("inproc", fmitest::endpoint(hub, kind));
        return c;
      },
      [&] { return hub.objects_in_store(); });
}

INSTANTIATE_TEST_SUITE_P(Kinds, Soak, ::testing::Values(fmitest::Kind::p2p, fmitest::Kind::store),
                         [](const auto& i) { return std::string(fmitest::kind_name(i.param)); });

#ifdef FMI_WITH_REDIS
TEST(SoakServers, Redis) {
  RedisProcess redis;
  FMI::Config cfg;
  cfg.section<FMI::Comm::RedisConfig>().enabled = true;
  cfg.section<FMI::Comm::RedisConfig>().host = "127.0.0.1";
  cfg.section<FMI::Comm::RedisConfig>().port = static_cast<std::uint16_t>(redis.port());
  cfg.section<FMI::Comm::RedisConfig>().max_timeout = 30s;
  Plan plan{"Redis", 40, 25, 4096};
  run_plan(
      plan,
      [&](peer_num p, int k) {
        return std::make_unique<FMI::Communicator>(p, kPeers, cfg, "soak-" + std::to_string(k));
      },
      [&] { return static_cast<std::size_t>(redis.dbsize()); });
}
#endif

#ifdef FMI_WITH_S3
TEST(SoakServers, S3) {
  set_test_aws_env();
  fmitest::MotoServer moto;
  const std::string bucket = "fmi-soak-" + std::to_string(::getpid());
  FMI::Comm::s3::Client client(FMI::Comm::s3::ClientOptions{
      bucket, "us-east-1", moto.endpoint(), FMI::Comm::s3::Credentials::from_env()});
  client.create_bucket(Clock::now() + 10s);
  FMI::Config cfg;
  cfg.section<FMI::Comm::S3Config>().enabled = true;
  cfg.section<FMI::Comm::S3Config>().bucket_name = bucket;
  cfg.section<FMI::Comm::S3Config>().s3_region = "us-east-1";
  cfg.section<FMI::Comm::S3Config>().endpoint = moto.endpoint();
  cfg.section<FMI::Comm::S3Config>().timeout = 5ms;
  cfg.section<FMI::Comm::S3Config>().max_timeout = 60s;
  Plan plan{"S3 (moto)", 5, 10, 512};
  run_plan(
      plan,
      [&](peer_num p, int k) {
        return std::make_unique<FMI::Communicator>(p, kPeers, cfg, "soak-" + std::to_string(k));
      },
      [&] { return client.list_objects("", Clock::now() + 10s).size(); });
}
#endif

}  // namespace
}  // namespace fmirel
