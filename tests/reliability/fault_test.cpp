// Faults that do not involve the Direct channel: a peer that never arrives, a peer
// that stops in the middle of a run, a server that accepts but never answers, a
// server that goes away (Redis restarted, S3 killed) mid-run. Each must end every
// surviving peer with a clear FMI error within max_timeout (plus the channel's
// finalize), leave nothing behind once the communicators are gone (or after the
// TTL), and a new run with the same communicator name must work.
// Observed times are printed as "[ fault ] ..." lines (docs/reliability.md).
#include <gtest/gtest.h>

#include <atomic>
#include <numeric>

#include <poll.h>

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
using fmitest::Kind;
using Longs = std::vector<long>;

// Every present peer ended with TimeoutError; at least one names the absent peer.
void expect_timeouts_naming(const std::vector<PeerOutcome>& out, const std::string& absent,
                            const char* label) {
  bool named = false;
  double last = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    ASSERT_TRUE(out[i].error) << label << ": peer " << i << " did not fail";
    try {
      std::rethrow_exception(out[i].error);
    } catch (const FMI::TimeoutError& e) {
      named = named || std::string(e.what()).find(absent) != std::string::npos;
    } catch (...) {
      ADD_FAILURE() << label << ": peer " << i << " threw " << describe(out[i].error);
    }
    last = std::max(last, out[i].seconds);
  }
  EXPECT_TRUE(named) << label << ": no timeout names " << absent
                     << "; peer 0: " << describe(out[0].error);
  std::printf("[ fault ] %s: every peer TimeoutError, last after %.2f s; peer 0: %s\n", label, last,
              describe(out[0].error).c_str());
}

// A complete run of `n` peers: allreduce of `rounds` vectors, checked.
void allreduce_rounds(FMI::Communicator& c, int rounds) {
  const long n = c.num_peers();
  for (int k = 0; k < rounds; ++k) {
    Data<Longs> s(Longs{long(c.peer_id()) + k, 1, k}), r(3);
    c.allreduce(s, r, Function<Longs>::sum());
    ASSERT_EQ(r.get(), (Longs{n * (n - 1) / 2 + n * k, n, n * k})) << "round " << k;
  }
}

void expect_all_ok(const std::vector<PeerOutcome>& out, const char* label) {
  for (std::size_t i = 0; i < out.size(); ++i)
    EXPECT_FALSE(out[i].error) << label << ": peer " << i << ": " << describe(out[i].error);
}

// ---- a function killed mid-collective (SIGKILL), peers as processes -----------------

struct KillOutcome {
  std::vector<std::string> results;  // per survivor: "<type>: <message>" or "ok"
  std::vector<double> after_kill;    // seconds from the SIGKILL to the survivor's error
  std::vector<double> finalized;     // ... and to the end of its ~Communicator
};

// Forks n processes that run allreduces over `cfg` until something fails, SIGKILLs
// `victim` once every peer has done 5 rounds, and collects what each survivor ended
// with. Every child writes its outcome to a pipe and exits; none can outlive the test
// (PR_SET_PDEATHSIG) or hang it (each waits at most max_timeout per operation).
KillOutcome kill_one(const FMI::Config& cfg, peer_num n, peer_num victim, const std::string& name) {
  std::vector<pid_t> pids(n);
  std::vector<int> fds(n);
  for (peer_num i = 0; i < n; ++i) {
    int p[2];
    if (::pipe(p) != 0) throw std::runtime_error("pipe failed");
    const pid_t parent = ::getpid();
    pids[i] = ::fork();
    if (pids[i] == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      ::close(p[0]);
      std::string out;
      std::unique_ptr<FMI::Communicator> c;
      try {
        c = std::make_unique<FMI::Communicator>(i, n, cfg, name);
        for (long k = 0;; ++k) {
          Data<Longs> s(Longs{long(i) + k, 1}), r(2);
          c->allreduce(s, r, Function<Longs>::sum());
          if (r.get()[1] != long(n)) throw std::runtime_error("wrong allreduce result");
          if (k == 5 && ::write(p[1], "R", 1) != 1) ::_exit(2);
        }
      } catch (...) {
        out = describe(std::current_exception());
      }
      // The error is reported as soon as it is raised; EOF follows once
      // ~Communicator (finalize) is done.
      if (::write(p[1], out.data(), out.size()) < 0) ::_exit(2);
      c.reset();
      ::_exit(0);
    }
    ::close(p[1]);
    fds[i] = p[0];
  }
  // Everyone is in the loop once each wrote "R".
  for (peer_num i = 0; i < n; ++i) {
    char c = 0;
    if (::read(fds[i], &c, 1) != 1 || c != 'R') {
      for (auto pid : pids) ::kill(pid, SIGKILL);
      for (auto pid : pids) ::waitpid(pid, nullptr, 0);
      throw std::runtime_error("peer " + std::to_string(i) + " did not start its rounds");
    }
  }
  const auto killed = Clock::now();
  ::kill(pids[victim], SIGKILL);
  KillOutcome o;
  ::close(fds[victim]);
  // Read every survivor's pipe as data comes (poll), so that each time is its own.
  std::vector<peer_num> alive;
  for (peer_num i = 0; i < n; ++i)
    if (i != victim) alive.push_back(i);
  o.results.assign(alive.size(), "");
  o.after_kill.assign(alive.size(), -1);
  o.finalized.assign(alive.size(), -1);
  std::size_t open = alive.size();
  while (open > 0) {
    std::vector<pollfd> pf;
    std::vector<std::size_t> which;
    for (std::size_t j = 0; j < alive.size(); ++j)
      if (o.finalized[j] < 0) {
        pf.push_back({fds[alive[j]], POLLIN, 0});
        which.push_back(j);
      }
    if (::poll(pf.data(), pf.size(), 60000) <= 0) break;  // children die with max_timeout
    for (std::size_t k = 0; k < pf.size(); ++k) {
      if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const std::size_t j = which[k];
      char buf[4096];
      const ssize_t got = ::read(pf[k].fd, buf, sizeof buf);
      if (got > 0) {
        if (o.after_kill[j] < 0) o.after_kill[j] = seconds_since(killed);
        o.results[j].append(buf, static_cast<std::size_t>(got));
      } else {
        o.finalized[j] = seconds_since(killed);
        ::close(pf[k].fd);
        --open;
      }
    }
  }
  for (auto pid : pids) ::waitpid(pid, nullptr, 0);
  return o;
}

void expect_survivors_fail(const KillOutcome& o, const char* label) {
  double last = 0, last_final = 0;
  for (std::size_t i = 0; i < o.results.size(); ++i) {
    const auto& r = o.results[i];
    last_final = std::max(last_final, o.finalized[i]);
    EXPECT_TRUE(r.rfind("FMI::TimeoutError", 0) == 0 || r.rfind("FMI::PeerError", 0) == 0 ||
                r.rfind("FMI::ChannelError", 0) == 0)
        << label << ": survivor " << i << " ended with \"" << r << "\"";
    last = std::max(last, o.after_kill[i]);
  }
  std::printf(
      "[ fault ] %s: %zu survivors raised, the last %.2f s after the SIGKILL, and were "
      "finalised %.2f s after it; first: %s\n",
      label, o.results.size(), last, last_final, o.results.empty() ? "" : o.results[0].c_str());
}

// ---- in-process channels -----------------------------------------------------------

class InProcFaults : public ::testing::TestWithParam<Kind> {};

TEST_P(InProcFaults, AbsentPeerTimesOutNamingItThenSameNameWorks) {
  auto hub = std::make_shared<FMI::Comm::InProcessHub>(4, 1s);
  const Kind kind = GetParam();
  FMI::Config cfg;
  auto ch = [&](peer_num) { return fmitest::endpoint(*hub, kind); };
  const std::string label = std::string("in-process ") + fmitest::kind_name(kind);

  // Point to point: peer 0 waits for a message of peer 3, who never comes.
  auto out = run_some(1, 4, cfg, "absent", ch, [](FMI::Communicator& c) {
    Data<int> v;
    c.recv(v, 3);
  });
  expect_timeouts_naming(out, "peer 3", (label + " recv from absent peer").c_str());

  // A collective: peers 0..2 come, peer 3 never does.
  out = run_some(3, 4, cfg, "absent", ch, [](FMI::Communicator& c) { allreduce_rounds(c, 1); });
  expect_timeouts_naming(out, "peer 3", (label + " allreduce without peer 3").c_str());
  const std::size_t left = hub->objects_in_store();
  std::printf("[ fault ] %s: %zu object(s) left in the store after the failed run\n", label.c_str(),
              left);

  // The same name again, everyone present, on the same medium: it works, and a
  // complete run leaves nothing new.
  out = run_some(4, 4, cfg, "absent", ch, [](FMI::Communicator& c) { allreduce_rounds(c, 3); });
  expect_all_ok(out, (label + " rerun").c_str());
  EXPECT_LE(hub->objects_in_store(), left);
}

TEST_P(InProcFaults, PeerStopsMidRunSurvivorsTimeOut) {
  auto hub = std::make_shared<FMI::Comm::InProcessHub>(4, 1s);
  const Kind kind = GetParam();
  FMI::Config cfg;
  auto ch = [&](peer_num) { return fmitest::endpoint(*hub, kind); };
  // Peer 2 leaves (as a killed function would) after 5 rounds; the others go on.
  auto out = run_some(4, 4, cfg, "quit", ch,
                      [](FMI::Communicator& c) { allreduce_rounds(c, c.peer_id() == 2 ? 5 : 10); });
  EXPECT_FALSE(out[2].error) << describe(out[2].error);
  std::vector<PeerOutcome> survivors = {out[0], out[1], out[3]};
  expect_timeouts_naming(survivors, "peer 2",
                         (std::string("in-process ") + fmitest::kind_name(kind) +
                          " peer 2 leaves after 5 of 10 allreduces")
                             .c_str());
}

INSTANTIATE_TEST_SUITE_P(Kinds, InProcFaults, ::testing::Values(Kind::p2p, Kind::store),
                         [](const auto& i) { return std::string(fmitest::kind_name(i.param)); });

// ---- a server that accepts connections and never answers ------------------------------

#ifdef FMI_WITH_S3
TEST(SilentServer, S3TimesOutNamingTheEndpoint) {
  set_test_aws_env();
  SilentServer silent;
  FMI::Config c;
  c.section<FMI::Comm::S3Config>().enabled = true;
  c.section<FMI::Comm::S3Config>().bucket_name = "b";
  c.section<FMI::Comm::S3Config>().s3_region = "us-east-1";
  c.section<FMI::Comm::S3Config>().endpoint = "http://127.0.0.1:" + std::to_string(silent.port());
  c.section<FMI::Comm::S3Config>().max_timeout = 1s;
  const auto t0 = Clock::now();
  EXPECT_TRUE(throws<FMI::TimeoutError>([&] { FMI::Communicator x(0, 2, c, "x"); },
                                        {"127.0.0.1:" + std::to_string(silent.port())}));
  std::printf(
      "[ fault ] S3 server accepts, never answers (max_timeout 1 s): TimeoutError after %.2f s\n",
      seconds_since(t0));
}
#endif

#ifdef FMI_WITH_REDIS
TEST(SilentServer, RedisTimesOutNamingTheAddress) {
  SilentServer silent;
  FMI::Config c;
  c.section<FMI::Comm::RedisConfig>().enabled = true;
  c.section<FMI::Comm::RedisConfig>().host = "127.0.0.1";
  c.section<FMI::Comm::RedisConfig>().port = static_cast<std::uint16_t>(silent.port());
  c.section<FMI::Comm::RedisConfig>().max_timeout = 1s;
  const auto t0 = Clock::now();
  // Connecting succeeds (the kernel accepts); the first command gets no answer.
  EXPECT_TRUE(throws<FMI::TimeoutError>(
      [&] {
        FMI::Communicator x(0, 2, c, "x");
        Data<int> v(1);
        x.send(v, 1);
      },
      {"127.0.0.1:" + std::to_string(silent.port())}));
  std::printf(
      "[ fault ] Redis server accepts, never answers (max_timeout 1 s): TimeoutError after %.2f "
      "s\n",
      seconds_since(t0));
}
#endif

// ---- S3 (moto) -------------------------------------------------------------------------

#ifdef FMI_WITH_S3
class S3Faults : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_test_aws_env();
    moto_ = new fmitest::MotoServer();
  }
  static void TearDownTestSuite() {
    delete moto_;
    moto_ = nullptr;
  }
  void SetUp() override {
    static int counter = 0;
    bucket_ = "fmi-rel-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    client()->create_bucket(Clock::now() + 10s);
  }
  std::unique_ptr<FMI::Comm::s3::Client> client() const {
    return std::make_unique<FMI::Comm::s3::Client>(FMI::Comm::s3::ClientOptions{
        bucket_, "us-east-1", moto_->endpoint(), FMI::Comm::s3::Credentials::from_env()});
  }
  FMI::Config config(std::chrono::milliseconds max_timeout) const {
    FMI::Config c;
    c.section<FMI::Comm::S3Config>().enabled = true;
    c.section<FMI::Comm::S3Config>().bucket_name = bucket_;
    c.section<FMI::Comm::S3Config>().s3_region = "us-east-1";
    c.section<FMI::Comm::S3Config>().endpoint = moto_->endpoint();
    c.section<FMI::Comm::S3Config>().timeout = 5ms;
    c.section<FMI::Comm::S3Config>().max_timeout = max_timeout;
    return c;
  }
  std::vector<std::string> bucket_contents() const {
    return client()->list_objects("", Clock::now() + 10s);
  }

  static fmitest::MotoServer* moto_;
  std::string bucket_;
};
fmitest::MotoServer* S3Faults::moto_ = nullptr;

TEST_F(S3Faults, AbsentPeerTimesOutNamingItNothingLeftSameNameWorks) {
  const FMI::Config cfg = config(2s);
  auto out = run_some(1, 4, cfg, "absent", nullptr, [](FMI::Communicator& c) {
    Data<int> v;
    c.recv(v, 3);
  });
  expect_timeouts_naming(out, "peer 3", "S3 recv from absent peer (max_timeout 2 s)");

  out =
      run_some(3, 4, cfg, "absent", nullptr, [](FMI::Communicator& c) { allreduce_rounds(c, 1); });
  expect_timeouts_naming(out, "peer 3", "S3 allreduce without peer 3 (max_timeout 2 s)");
  const auto left = bucket_contents();
  std::printf("[ fault ] S3: %zu object(s) left in the bucket after the failed run\n", left.size());
  EXPECT_TRUE(left.empty()) << "first: " << left.front();

  out =
      run_some(4, 4, cfg, "absent", nullptr, [](FMI::Communicator& c) { allreduce_rounds(c, 2); });
  expect_all_ok(out, "S3 rerun with the same name");
  EXPECT_TRUE(bucket_contents().empty());
}

TEST_F(S3Faults, FunctionKilledMidCollectiveSurvivorsFailWithinMaxTimeout) {
  const FMI::Config cfg = config(3s);
  auto o = kill_one(cfg, 4, 2, "sigkill");
  ASSERT_EQ(o.results.size(), 3u);
  expect_survivors_fail(o, "S3 peer 2 of 4 SIGKILLed mid-allreduce (max_timeout 3 s)");
  // The killed peer never finalised: what it put stays (S3 has no TTL; a bucket
  // lifecycle rule removes it, docs/s3.md). Count it for the record, then clean up.
  const auto left = bucket_contents();
  std::printf("[ fault ] S3: %zu object(s) left by the killed peer\n", left.size());
  if (!left.empty()) client()->delete_objects(left, Clock::now() + 10s);
  auto out =
      run_some(4, 4, cfg, "sigkill", nullptr, [](FMI::Communicator& c) { allreduce_rounds(c, 2); });
  expect_all_ok(out, "S3 rerun after the SIGKILL");
}

TEST_F(S3Faults, ServerKilledMidRunGivesAnErrorNamingTheEndpoint) {
  // A moto of this test only: it is killed.
  fmitest::MotoServer moto;
  FMI::Config cfg = config(3s);
  cfg.section<FMI::Comm::S3Config>().endpoint = moto.endpoint();
  FMI::Comm::s3::Client(FMI::Comm::s3::ClientOptions{cfg.section<FMI::Comm::S3Config>().bucket_name,
                                                     "us-east-1", moto.endpoint(),
                                                     FMI::Comm::s3::Credentials::from_env()})
      .create_bucket(Clock::now() + 10s);
  std::atomic<int> rounds{0};
  Clock::time_point killed;
  std::thread killer([&] {
    while (rounds.load() < 4) std::this_thread::sleep_for(5ms);
    killed = Clock::now();
    moto.stop();
  });
  auto out = run_some(3, 3, cfg, "killed", nullptr, [&](FMI::Communicator& c) {
    for (int k = 0; k < 100000; ++k) {
      allreduce_rounds(c, 1);
      if (c.peer_id() == 0) ++rounds;
    }
  });
  killer.join();
  bool named = false;
  double last = 0;  // seconds from the kill to the last peer's error
  for (std::size_t i = 0; i < out.size(); ++i) {
    ASSERT_TRUE(out[i].error) << "peer " << i;
    last = std::max(last, std::chrono::duration<double>(out[i].end - killed).count());
    try {
      std::rethrow_exception(out[i].error);
    } catch (const FMI::ChannelError& e) {
      named = named || std::string(e.what()).find(moto.endpoint()) != std::string::npos ||
              std::string(e.what()).find("127.0.0.1:" + std::to_string(moto.port())) !=
                  std::string::npos;
    } catch (const FMI::TimeoutError&) {
    } catch (...) {
      ADD_FAILURE() << "peer " << i << " threw " << describe(out[i].error);
    }
  }
  EXPECT_TRUE(named) << "peer 0: " << describe(out[0].error);
  std::printf(
      "[ fault ] S3 server killed mid-run (max_timeout 3 s): every peer failed, last %.2f s "
      "after the kill; peer 0: %s\n",
      last, describe(out[0].error).c_str());
}
#endif

// ---- Redis ---------------------------------------------------------------------------

#ifdef FMI_WITH_REDIS
FMI::Config redis_cfg(int port, std::chrono::milliseconds max_timeout) {
  FMI::Config c;
  c.section<FMI::Comm::RedisConfig>().enabled = true;
  c.section<FMI::Comm::RedisConfig>().host = "127.0.0.1";
  c.section<FMI::Comm::RedisConfig>().port = static_cast<std::uint16_t>(port);
  c.section<FMI::Comm::RedisConfig>().max_timeout = max_timeout;
  return c;
}

TEST(RedisFaults, AbsentPeerTimesOutNamingItNothingLeftSameNameWorks) {
  RedisProcess redis;
  const FMI::Config cfg = redis_cfg(redis.port(), 1s);
  auto out = run_some(1, 4, cfg, "absent", nullptr, [](FMI::Communicator& c) {
    Data<int> v;
    c.recv(v, 3);
  });
  expect_timeouts_naming(out, "peer 3", "Redis recv from absent peer (max_timeout 1 s)");

  out =
      run_some(3, 4, cfg, "absent", nullptr, [](FMI::Communicator& c) { allreduce_rounds(c, 1); });
  expect_timeouts_naming(out, "peer 3", "Redis allreduce without peer 3 (max_timeout 1 s)");
  const long long left = redis.dbsize();
  std::printf("[ fault ] Redis: %lld key(s) left after the failed run (finalize done)\n", left);
  if (left != 0) {
    // What finalize could not delete expires with its TTL (max(4 x max_timeout, 10 s)).
    const auto t0 = Clock::now();
    while (redis.dbsize() != 0 && Clock::now() - t0 < 15s) std::this_thread::sleep_for(250ms);
    std::printf("[ fault ] Redis: keys gone %.1f s later (TTL)\n", seconds_since(t0));
  }
  EXPECT_EQ(redis.dbsize(), 0);

  out =
      run_some(4, 4, cfg, "absent", nullptr, [](FMI::Communicator& c) { allreduce_rounds(c, 3); });
  expect_all_ok(out, "Redis rerun with the same name");
  EXPECT_EQ(redis.dbsize(), 0);
}

TEST(RedisFaults, FunctionKilledMidCollectiveSurvivorsFailKeysExpire) {
  RedisProcess redis;
  const FMI::Config cfg = redis_cfg(redis.port(), 2s);
  auto o = kill_one(cfg, 4, 2, "sigkill");
  ASSERT_EQ(o.results.size(), 3u);
  expect_survivors_fail(o, "Redis peer 2 of 4 SIGKILLed mid-allreduce (max_timeout 2 s)");
  const long long left = redis.dbsize();
  const auto t0 = Clock::now();
  // What the killed peer put expires with the TTL, max(4 x max_timeout, 10 s).
  while (redis.dbsize() != 0 && Clock::now() - t0 < 20s) std::this_thread::sleep_for(250ms);
  std::printf("[ fault ] Redis: %lld key(s) left by the killed peer, gone %.1f s later (TTL)\n",
              left, seconds_since(t0));
  EXPECT_EQ(redis.dbsize(), 0);
  auto out =
      run_some(4, 4, cfg, "sigkill", nullptr, [](FMI::Communicator& c) { allreduce_rounds(c, 2); });
  expect_all_ok(out, "Redis rerun after the SIGKILL");
  EXPECT_EQ(redis.dbsize(), 0);
}

TEST(RedisFaults, ServerRestartedMidRunGivesAClearErrorThenANewRunWorks) {
  RedisProcess redis;
  const FMI::Config cfg = redis_cfg(redis.port(), 2s);
  const std::string address = "127.0.0.1:" + std::to_string(redis.port());
  std::atomic<int> rounds{0};
  std::vector<PeerOutcome> out;
  // The peers run in a thread of their own: the server must be restarted from this
  // (the test's main) thread, because PR_SET_PDEATHSIG kills a child when the
  // *thread* that forked it exits.
  std::thread peers([&] {
    out = run_some(4, 4, cfg, "restart", nullptr, [&](FMI::Communicator& c) {
      for (int k = 0; k < 1000000; ++k) {
        allreduce_rounds(c, 1);
        if (c.peer_id() == 0) ++rounds;
      }
    });
  });
  while (rounds.load() < 20) std::this_thread::sleep_for(1ms);
  const Clock::time_point killed = Clock::now();
  redis.restart();  // SIGKILL, then a fresh (empty) server on the same port
  peers.join();
  int channel_errors = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    ASSERT_TRUE(out[i].error) << "peer " << i;
    try {
      std::rethrow_exception(out[i].error);
    } catch (const FMI::ChannelError& e) {
      ++channel_errors;
      EXPECT_NE(std::string(e.what()).find(address), std::string::npos) << e.what();
    } catch (const FMI::TimeoutError& e) {
      // A peer that reconnected to the fresh server waits for data the old one lost.
      EXPECT_NE(std::string(e.what()).find(address), std::string::npos) << e.what();
    } catch (...) {
      ADD_FAILURE() << "peer " << i << " threw " << describe(out[i].error);
    }
    std::printf(
        "[ fault ] Redis restarted mid-run (max_timeout 2 s): peer %zu failed %.2f s after the "
        "kill: %s\n",
        i, std::chrono::duration<double>(out[i].end - killed).count(),
        describe(out[i].error).c_str());
  }
  EXPECT_GE(channel_errors, 1);
  // The fresh server lost everything; the new run with the same name works and
  // leaves nothing behind.
  out =
      run_some(4, 4, cfg, "restart", nullptr, [](FMI::Communicator& c) { allreduce_rounds(c, 3); });
  expect_all_ok(out, "Redis rerun after the restart");
  EXPECT_EQ(redis.dbsize(), 0) << redis.keys().front();
}
#endif

}  // namespace
}  // namespace fmirel
