// Redis channel latency and bandwidth, next to raw hiredis in the same run.
//
//   build-dir/bench/redis/bench_redis [--host H --port P] [--iterations N]
//
// Without --port it starts a private redis-server (persistence off) on a free port.
// Prints, for 8-byte messages, the one-way latency of a ping-pong between two
// threads (each with its own connection):
//   raw      RPUSH -> blocked BLPOP hand-off with hiredis (the floor),
//   channel  RedisChannel put -> get,
//   comm     FMI::Communicator send -> recv over Redis (the public API),
// and the ratio to raw; then the bandwidth of 64 MiB messages (one put -> get,
// raw: RPUSH -> BLPOP of the same bytes). Best and median round of each.
#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "channels/redis/config.h"
#include "channels/registry.h"
#include "fmi/fmi.h"
#include "redis_server.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using FMI::Comm::ObjectKey;
using FMI::Comm::ObjectStoreChannel;
using FMI::Comm::Tag;
using FMI::Utils::Operation;

std::string host = "127.0.0.1";
std::uint16_t port = 0;
int iterations = 1000;
// Short rounds, the three kinds interleaved: on a shared machine the best round of
// each is the most faithful figure, the median shows the spread.
constexpr int kRounds = 15;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

FMI::Config config() {
  FMI::Config cfg;
  cfg.section<FMI::Comm::RedisConfig>().enabled = true;
  cfg.section<FMI::Comm::RedisConfig>().host = host;
  cfg.section<FMI::Comm::RedisConfig>().port = port;
  cfg.section<FMI::Comm::RedisConfig>().max_timeout = 60s;
  return cfg;
}

// ---- raw hiredis ------------------------------------------------------------------
struct Raw {
  redisContext* c;
  Raw() {
    c = redisConnect(host.c_str(), port);
    if (c == nullptr || c->err) throw std::runtime_error("raw connect failed");
  }
  ~Raw() { redisFree(c); }
  void cmd(std::initializer_list<std::pair<const char*, std::size_t>> args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> len;
    for (auto& [p, n] : args) {
      argv.push_back(p);
      len.push_back(n);
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), len.data()));
    if (r == nullptr || r->type == REDIS_REPLY_ERROR)
      throw std::runtime_error("raw command failed");
    freeReplyObject(r);
  }
};
std::pair<const char*, std::size_t> s(const char* x) { return {x, std::strlen(x)}; }

// Seconds for `iters` round trips between two threads; ping(i) on A then pong(i) on B.
double ping_pong(const std::function<void(int)>& a, const std::function<void(int)>& b, int iters) {
  std::thread tb([&] {
    for (int i = 0; i < iters; ++i) b(i);
  });
  const auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) a(i);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  tb.join();
  return secs;
}

double raw_latency(std::size_t bytes, int iters) {
  Raw a, b;
  std::vector<char> msg(bytes, 'x');
  auto side = [&](Raw& r, const char* out, const char* in, bool first) {
    return [&r, &msg, out, in, first](int) {
      auto send = [&] { r.cmd({s("RPUSH"), s(out), {msg.data(), msg.size()}}); };
      if (first) send();
      r.cmd({s("BLPOP"), s(in), s("0")});
      if (!first) send();
    };
  };
  return ping_pong(side(a, "bench:ping", "bench:pong", true),
                   side(b, "bench:pong", "bench:ping", false), iters) /
         (2.0 * iters);
}

double channel_latency(std::size_t bytes, int iters, std::uint32_t& seq) {
  auto cfg = config();
  auto open = [&](unsigned p) {
    auto ch =
        std::dynamic_pointer_cast<ObjectStoreChannel>(FMI::Comm::find_channel("Redis")->make(cfg));
    ch->init(FMI::Comm::ChannelContext{p, 2, "bench", 128});
    return ch;
  };
  auto a = open(0), b = open(1);
  const std::uint32_t base = seq;
  seq += iters;
  std::vector<std::byte> msg(bytes), in(bytes);
  auto dl = [] { return Clock::now() + 60s; };
  const double secs = ping_pong(
      [&](int i) {
        const Tag t{Operation::send, base + i};
        a->put(ObjectKey{t, 0, 1}, msg, 1, dl());
        a->get(ObjectKey{t, 1, 0}, in, dl());
      },
      [&](int i) {
        const Tag t{Operation::send, base + i};
        b->get(ObjectKey{t, 0, 1}, in, dl());
        b->put(ObjectKey{t, 1, 0}, msg, 1, dl());
      },
      iters);
  return secs / (2.0 * iters);
}

double comm_latency(int iters) {
  auto cfg = config();
  std::unique_ptr<FMI::Communicator> ca, cb;
  std::thread mk([&] { cb = std::make_unique<FMI::Communicator>(1, 2, cfg, "bench-comm"); });
  ca = std::make_unique<FMI::Communicator>(0, 2, cfg, "bench-comm");
  mk.join();
  FMI::Comm::Data<double> x(1.0), y(0.0);
  const double secs = ping_pong(
      [&](int) {
        ca->send(x, 1);
        ca->recv(y, 1);
      },
      [&](int) {
        cb->recv(y, 0);
        cb->send(x, 0);
      },
      iters);
  std::thread fin([&] { cb.reset(); });
  ca.reset();
  fin.join();
  return secs / (2.0 * iters);
}

// MiB/s of one `bytes` message from one thread to another, put start to get end.
double raw_bandwidth(std::size_t bytes) {
  Raw a, b;
  std::vector<char> msg(bytes, 'y');
  const auto t0 = Clock::now();
  std::thread reader([&] { b.cmd({s("BLPOP"), s("bench:bw"), s("0")}); });
  a.cmd({s("RPUSH"), s("bench:bw"), {msg.data(), msg.size()}});
  reader.join();
  return bytes / 1048576.0 / std::chrono::duration<double>(Clock::now() - t0).count();
}

double channel_bandwidth(std::size_t bytes, std::uint32_t seq) {
  auto cfg = config();
  auto open = [&](unsigned p) {
    auto ch =
        std::dynamic_pointer_cast<ObjectStoreChannel>(FMI::Comm::find_channel("Redis")->make(cfg));
    ch->init(FMI::Comm::ChannelContext{p, 2, "bench-bw", 128});
    return ch;
  };
  auto a = open(0), b = open(1);
  std::vector<std::byte> msg(bytes, std::byte{1}), in(bytes);
  const ObjectKey k{Tag{Operation::bcast, seq}, 0};
  const auto t0 = Clock::now();
  std::thread reader([&] { b->get(k, in, Clock::now() + 60s); });
  a->put(k, msg, 1, Clock::now() + 60s);
  reader.join();
  return bytes / 1048576.0 / std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--host")
      host = argv[i + 1];
    else if (a == "--port")
      port = static_cast<std::uint16_t>(std::stoi(argv[i + 1]));
    else if (a == "--iterations")
      iterations = std::stoi(argv[i + 1]);
  }
  std::unique_ptr<fmitest::RedisServer> server;
  if (port == 0) {
    server = std::make_unique<fmitest::RedisServer>();
    port = server->port();
  }
  std::printf("Redis at %s:%u, %d round trips per round, %d rounds\n", host.c_str(), port,
              iterations, kRounds);

  std::uint32_t seq = 0;
  raw_latency(8, iterations / 5);  // warm-up
  channel_latency(8, iterations / 5, seq);
  std::vector<double> raw, chan, comm;
  for (int r = 0; r < kRounds; ++r) {
    raw.push_back(raw_latency(8, iterations));
    chan.push_back(channel_latency(8, iterations, seq));
    comm.push_back(comm_latency(iterations));
  }
  std::printf("8-byte one-way latency (best / median round):\n");
  std::printf("  raw hiredis RPUSH -> BLPOP     %8.1f / %8.1f us\n", best(raw) * 1e6,
              median(raw) * 1e6);
  std::printf("  RedisChannel put -> get        %8.1f / %8.1f us   (%.2fx / %.2fx raw)\n",
              best(chan) * 1e6, median(chan) * 1e6, best(chan) / best(raw),
              median(chan) / median(raw));
  std::printf("  Communicator send -> recv      %8.1f / %8.1f us   (%.2fx / %.2fx raw)\n",
              best(comm) * 1e6, median(comm) * 1e6, best(comm) / best(raw),
              median(comm) / median(raw));

  const std::size_t big = 64u << 20;
  std::vector<double> rbw, cbw;
  for (int r = 0; r < 5; ++r) {
    rbw.push_back(raw_bandwidth(big));
    cbw.push_back(channel_bandwidth(big, static_cast<std::uint32_t>(r)));
  }
  std::printf("64 MiB message, put start -> get end (best / median round):\n");
  std::printf("  raw hiredis RPUSH -> BLPOP     %8.0f / %8.0f MiB/s\n",
              *std::max_element(rbw.begin(), rbw.end()), median(rbw));
  std::printf("  RedisChannel put -> get        %8.0f / %8.0f MiB/s\n",
              *std::max_element(cbw.begin(), cbw.end()), median(cbw));
  return 0;
}
