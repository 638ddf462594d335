// Reliability of the Direct channel and fmi-rendezvous (issue 9), with a real server
// child process and one forked process per peer:
//  - HostileConnectionsDuringARun: ~300 hostile connections (garbage, oversized
//    length prefixes, half-open requests, idle and slow clients) held open while 4
//    peers run 20 allreduces and a bcast through FMI::Communicator; the server must
//    survive with bounded memory (VmRSS of the server process);
//  - Soak: 8 peers, 1,000 allreduces of seeded random sizes (log-uniform 1 B..256 KiB,
//    every 100th ~1 MiB), every element checked, checksums equal on every peer, and
//    the open descriptors of each peer unchanged from after the first (meshing)
//    collective to after the last;
//  - RendezvousRestartBetweenRuns: a run, SIGTERM of the server, a new server on the
//    same port, a new run with the same communicator name.
// Prints "[ direct-rel ]" lines with the observed numbers; no timed assertions (the
// time limits below only stop a hung run).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <atomic>
#include <cinttypes>
#include <cstring>
#include <random>

#include "fmi/communicator.h"
#include "reliability.h"
#include "rendezvous_server.h"

namespace {

using namespace std::chrono_literals;
using fmirel::Clock;
using fmitest::PeerResult;

using fmirel::mix;
using fmirel::open_fds;
using fmirel::seconds_since;

/// VmRSS of another process in KiB (0 if unreadable).
long vm_rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

/// fmi-rendezvous quietly (one line per connection would flood the log here).
class Server : public fmitest::RendezvousServer {
 public:
  explicit Server(std::uint16_t port = 0, std::vector<std::string> extra = {})
      : RendezvousServer(with_quiet(std::move(extra)), port) {}

 private:
  static std::vector<std::string> with_quiet(std::vector<std::string> extra) {
    extra.insert(extra.begin(), "--quiet");
    return extra;
  }
};

/// A connected loopback TCP socket (closed in the destructor).
class Conn {
 public:
  explicit Conn(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port) + ": " +
                               std::strerror(errno));
  }
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  Conn(Conn&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Conn& operator=(Conn&&) = delete;
  int fd() const { return fd_; }
  /// Sends what the socket takes; errors (the server dropped us) are ignored.
  void send(const void* p, std::size_t n) const {
    (void)::send(fd_, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  /// True once the server closed the connection (EOF or reset), reading and
  /// discarding whatever it sent first (its CHALLENGE, an ERROR). Waits up to `limit`.
  bool closed_by_server(std::chrono::milliseconds limit) const {
    const auto until = Clock::now() + limit;
    char buf[4096];
    for (;;) {
      ssize_t r = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        return true;
      if (r > 0) continue;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      ::poll(&p, 1, int(std::min<long long>(left.count(), 200)));
    }
  }

 private:
  int fd_ = -1;
};

/// The fixed 10-byte frame header of the rendezvous protocol (docs/rendezvous-protocol.md).
std::vector<std::uint8_t> frame_header(std::uint8_t type, std::uint32_t length) {
  return {'F',
          'M',
          'I',
          'R',
          2,
          type,
          std::uint8_t(length >> 24),
          std::uint8_t(length >> 16),
          std::uint8_t(length >> 8),
          std::uint8_t(length)};
}

/// Forked peers that wait for a go byte on a pipe, so that the parent can prepare
/// (e.g. open hostile connections, which the peers then do not inherit) before they
/// start. `results` reaps them.
class Peers {
 public:
  Peers(unsigned n, const std::function<void(unsigned)>& fn) {
    if (::pipe(go_) != 0) throw std::runtime_error("pipe failed");
    std::cout.flush();
    std::cerr.flush();
    for (unsigned p = 0; p < n; ++p) {
      pid_t pid = ::fork();
      if (pid == 0) {
        ::close(go_[1]);
        char c;
        if (::read(go_[0], &c, 1) != 1) ::_exit(3);  // the parent gave up
        ::close(go_[0]);
        fmitest::run_peer_and_exit(p, n, fn);
      }
      pids_.push_back(pid);
    }
    ::close(go_[0]);
  }
  ~Peers() {
    if (go_[1] >= 0) ::close(go_[1]);
    for (pid_t p : pids_)
      if (p > 0) {
        ::kill(p, SIGKILL);
        ::waitpid(p, nullptr, 0);
      }
  }
  void go() {
    std::string bytes(pids_.size(), 'g');
    if (::write(go_[1], bytes.data(), bytes.size()) != ssize_t(bytes.size()))
      throw std::runtime_error("writing the go bytes failed");
    ::close(go_[1]);
    go_[1] = -1;
  }
  /// Waits for every peer; kills those still running after `limit` (a hang).
  std::vector<PeerResult> results(std::chrono::seconds limit) {
    std::vector<PeerResult> res(pids_.size());
    std::size_t left = pids_.size();
    const auto until = Clock::now() + limit;
    while (left > 0) {
      for (std::size_t p = 0; p < pids_.size(); ++p) {
        if (pids_[p] <= 0) continue;
        int st;
        if (::waitpid(pids_[p], &st, WNOHANG) == pids_[p]) {
          res[p].exited = WIFEXITED(st);
          res[p].code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
          res[p].signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
          pids_[p] = -1;
          --left;
        }
      }
      if (left == 0) break;
      if (Clock::now() > until) {
        for (std::size_t p = 0; p < pids_.size(); ++p)
          if (pids_[p] > 0) {
            std::cerr << "peer " << p << " still running after " << limit.count()
                      << " s: killing it\n";
            ::kill(pids_[p], SIGKILL);
            ::waitpid(pids_[p], nullptr, 0);
            res[p].signal = SIGKILL;
            pids_[p] = -1;
          }
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    return res;
  }

 private:
  int go_[2] = {-1, -1};
  std::vector<pid_t> pids_;
};

FMI::Config direct_config(std::uint16_t port, std::chrono::seconds max_timeout) {
  FMI::Config cfg;
  cfg.section<FMI::Comm::DirectConfig>().enabled = true;
  cfg.section<FMI::Comm::DirectConfig>().host = "127.0.0.1";
  cfg.section<FMI::Comm::DirectConfig>().port = port;
  cfg.section<FMI::Comm::DirectConfig>().max_timeout = max_timeout;
  return cfg;
}

using I64s = std::vector<std::int64_t>;
using Vec = FMI::Comm::Data<I64s>;
using Fn = FMI::Utils::Function<I64s>;

/// `rounds` allreduces (sizes alternate small / above the 256 KiB threshold) and a
/// bcast, every element checked.
void checked_run(FMI::Communicator& comm, int rounds, std::int64_t salt) {
  const unsigned n = comm.num_peers(), me = comm.peer_id();
  const std::int64_t N = n;
  for (int r = 0; r < rounds; ++r) {
    const std::size_t count = (r % 4 == 3) ? 40000 : std::size_t(1 + 37 * r);
    Vec send(count), out(count);
    for (std::size_t k = 0; k < count; ++k)
      send.ref()[k] = std::int64_t(me) * 1000003 + std::int64_t(k) * (r + 1) + salt;
    comm.allreduce(send, out, Fn::sum());
    for (std::size_t k = 0; k < count; ++k) {
      const std::int64_t want =
          1000003 * (N * (N - 1) / 2) + N * (std::int64_t(k) * (r + 1) + salt);
      PEER_CHECK(out.get()[k] == want, "allreduce round ", r, " on peer ", me, ": element ", k,
                 " is ", out.get()[k], ", expected ", want);
    }
  }
  const unsigned root = n - 1;
  Vec buf(5000);
  if (me == root)
    for (std::size_t k = 0; k < 5000; ++k) buf.ref()[k] = std::int64_t(k) * 11 + salt;
  comm.bcast(buf, root);
  for (std::size_t k = 0; k < 5000; ++k)
    PEER_CHECK(buf.get()[k] == std::int64_t(k) * 11 + salt, "bcast on peer ", me, ": element ", k);
}

// ---------------------------------------------------------------------------

TEST(DirectReliability, HostileConnectionsDuringARun) {
  // Hello timeout 2 s (default 5 s): the half-open, idle and slow connections are
  // swept sooner, so the test can check that they are.
  Server server(0, {"--hello-timeout-ms", "2000"});
  const std::uint16_t port = server.port();
  constexpr unsigned kPeers = 4;
  Peers peers(kPeers, [&](unsigned me) {
    FMI::Communicator comm(me, kPeers, direct_config(port, 20s), "hostile-run");
    checked_run(comm, 20, 17);
  });

  std::this_thread::sleep_for(200ms);  // let the server settle before measuring
  const long rss0 = vm_rss_kib(server.pid());
  const auto t0 = Clock::now();

  std::mt19937_64 rng(20261126);
  std::vector<Conn> garbage, oversized, half, idle, slow;
  // 100 that send random garbage (4 KiB each, not starting with the magic).
  for (int i = 0; i < 100; ++i) {
    garbage.emplace_back(port);
    std::vector<std::uint8_t> junk(4096);
    for (auto& b : junk) b = std::uint8_t(rng());
    junk[0] = 'X';
    garbage.back().send(junk.data(), junk.size());
  }
  // 100 valid headers (REGISTER, RELAY, or an unknown type) announcing up to ~4 GiB.
  for (int i = 0; i < 100; ++i) {
    oversized.emplace_back(port);
    const std::uint8_t type = std::uint8_t(i % 3 == 0 ? 1 : i % 3 == 1 ? 5 : 16);
    const std::uint32_t len = 0x00100000u + std::uint32_t(rng() % 0xFFE00000u);
    auto h = frame_header(type, len);
    oversized.back().send(h.data(), h.size());
    std::vector<std::uint8_t> body(1024, 0x41);  // a start of the announced payload
    oversized.back().send(body.data(), body.size());
  }
  // 50 half-open: half of a REGISTER frame (its header and part of the payload), then silence.
  for (int i = 0; i < 50; ++i) {
    half.emplace_back(port);
    auto h = frame_header(1, 60);
    std::vector<std::uint8_t> bytes(h.begin(), h.end());
    bytes.insert(bytes.end(), {0, 4, 'h', 'a', 'l', 'f', 0, 0, 0, 1, 0, 0, 0, 2});
    half.back().send(bytes.data(), bytes.size());
  }
  // 25 that send nothing, 25 that drip a valid header one byte per 100 ms.
  for (int i = 0; i < 25; ++i) idle.emplace_back(port);
  for (int i = 0; i < 25; ++i) slow.emplace_back(port);
  const double open_s = seconds_since(t0);

  std::atomic<bool> done{false};
  std::thread dripper([&] {
    const auto h = frame_header(1, 200);
    std::size_t at = 0;
    while (!done.load()) {
      for (auto& c : slow) c.send(&h[at % h.size()], 1);
      ++at;
      std::this_thread::sleep_for(100ms);
    }
  });
  peers.go();
  auto res = peers.results(120s);
  const double run_s = seconds_since(t0);
  const long rss1 = vm_rss_kib(server.pid());
  const bool alive = server.alive();

  fmitest::expect_all_ok(res);
  EXPECT_TRUE(alive) << "fmi-rendezvous died during the hostile run";
  ASSERT_GT(rss0, 0);
  ASSERT_GT(rss1, 0);
  const double grew_mib = double(rss1 - rss0) / 1024.0;
  EXPECT_LT(grew_mib, 64.0) << "server VmRSS grew from " << rss0 << " KiB to " << rss1 << " KiB";

  // The server drops garbage and oversized lengths on the spot (the bound only stops
  // a hang; it is not a time requirement).
  int garbage_closed = 0, oversized_closed = 0;
  for (auto& c : garbage) garbage_closed += c.closed_by_server(30s);
  for (auto& c : oversized) oversized_closed += c.closed_by_server(30s);
  EXPECT_EQ(garbage_closed, 100);
  EXPECT_EQ(oversized_closed, 100);
  // Half-open, idle and slow (still dripping) ones never complete a request: the
  // sweep drops them after the hello timeout.
  int half_closed = 0, idle_closed = 0, slow_closed = 0;
  for (auto& c : half) half_closed += c.closed_by_server(30s);
  for (auto& c : idle) idle_closed += c.closed_by_server(30s);
  for (auto& c : slow) slow_closed += c.closed_by_server(30s);
  done = true;
  dripper.join();
  EXPECT_EQ(half_closed, 50);
  EXPECT_EQ(idle_closed, 25);
  EXPECT_EQ(slow_closed, 25);

  // And a fresh run still works next to whatever hostile connections are left.
  auto res2 = fmitest::run_forked(
      3,
      [&](unsigned me) {
        FMI::Communicator comm(me, 3, direct_config(port, 20s), "after-hostile");
        checked_run(comm, 4, 5);
      },
      120s);
  fmitest::expect_all_ok(res2);
  const long rss2 = vm_rss_kib(server.pid());
  garbage.clear();
  oversized.clear();
  half.clear();
  idle.clear();
  slow.clear();
  EXPECT_TRUE(server.alive());
  EXPECT_EQ(server.stop(), 0);
  std::printf(
      "[ direct-rel ] hostile: 300 connections opened in %.2f s; 4 peers x (20 allreduces "
      "+ bcast) done %.2f s after the first hostile connect; server VmRSS %.1f -> %.1f MiB "
      "(-> %.1f after a second run); closed by the server: garbage %d/100, oversized %d/100, "
      "half-open %d/50, idle %d/25, slow %d/25\n",
      open_s, run_s, rss0 / 1024.0, rss1 / 1024.0, rss2 / 1024.0, garbage_closed, oversized_closed,
      half_closed, idle_closed, slow_closed);
}

// ---------------------------------------------------------------------------

struct SoakResult {
  std::uint64_t checksum;
  std::uint64_t bytes;
  int rounds;
  int fds_before_comm, fds_after_warmup, fds_after_last, fds_after_destroy;
  double seconds;
};

TEST(DirectReliability, Soak) {
  constexpr unsigned kPeers = 8;
  constexpr int kRounds = 1000;
  constexpr std::uint64_t kSeed = 977;
  Server server;
  const std::uint16_t port = server.port();
  // Shared with the forked peers: each writes its own slot.
  void* mem = ::mmap(nullptr, sizeof(SoakResult) * kPeers, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* out = static_cast<SoakResult*>(mem);
  std::memset(out, 0, sizeof(SoakResult) * kPeers);

  using U8s = std::vector<std::uint8_t>;
  Peers peers(kPeers, [&](unsigned me) {
    SoakResult& r = out[me];
    r.fds_before_comm = open_fds();
    {
      FMI::Communicator comm(me, kPeers, direct_config(port, 60s), "direct-soak");
      // Warm-up: the first collective opens the whole mesh (Communicator::connect_all).
      FMI::Comm::Data<U8s> w(U8s(1, std::uint8_t(me))), wout(1);
      comm.allreduce(w, wout, FMI::Utils::Function<U8s>::sum());
      PEER_CHECK(wout.get()[0] == std::uint8_t(kPeers * (kPeers - 1) / 2));
      r.fds_after_warmup = open_fds();
      const auto t0 = Clock::now();
      // The same seed on every peer: every peer draws the same sizes.
      std::mt19937_64 rng(kSeed);
      std::uniform_real_distribution<double> log_size(0.0, std::log(256.0 * 1024.0));
      const std::uint64_t n = kPeers;
      std::uint64_t h = 0;
      for (int round = 0; round < kRounds; ++round) {
        std::size_t m = std::size_t(std::exp(log_size(rng)));  // log-uniform 1 B .. 256 KiB
        m = std::max<std::size_t>(1, std::min<std::size_t>(m, 256 * 1024));
        if (round % 100 == 99) m = (1 << 20) + std::size_t(rng() % 4096);  // a few ~1 MiB
        FMI::Comm::Data<U8s> s(m), o(m);
        for (std::size_t i = 0; i < m; ++i)
          s.ref()[i] = std::uint8_t(mix(std::uint64_t(round) * 1000003u + i) * (me + 1) + me);
        comm.allreduce(s, o, FMI::Utils::Function<U8s>::sum());
        for (std::size_t i = 0; i < m; ++i) {
          const auto want = std::uint8_t(
              mix(std::uint64_t(round) * 1000003u + i) * (n * (n + 1) / 2) + n * (n - 1) / 2);
          PEER_CHECK(o.get()[i] == want, "peer ", me, " round ", round, ": byte ", i, " of ", m,
                     " is ", int(o.get()[i]), ", expected ", int(want));
          h = mix(h ^ (std::uint64_t(o.get()[i]) << (8 * (i % 8))) ^ i);
        }
        h = mix(h ^ m);
        r.bytes += m;
        ++r.rounds;
      }
      r.checksum = h;
      r.seconds = seconds_since(t0);
      r.fds_after_last = open_fds();
      PEER_CHECK(r.fds_after_last == r.fds_after_warmup, "peer ", me, ": open descriptors ",
                 r.fds_after_warmup, " after the warm-up, ", r.fds_after_last,
                 " after the last collective");
    }
    r.fds_after_destroy = open_fds();
    PEER_CHECK(r.fds_after_destroy == r.fds_before_comm, "peer ", me, ": open descriptors ",
               r.fds_before_comm, " before the communicator, ", r.fds_after_destroy,
               " after destroying it");
  });
  peers.go();
  auto res = peers.results(170s);
  fmitest::expect_all_ok(res);
  double slowest = 0;
  std::uint64_t total = 0;
  for (unsigned p = 0; p < kPeers; ++p) {
    EXPECT_EQ(out[p].rounds, kRounds) << "peer " << p;
    EXPECT_EQ(out[p].checksum, out[0].checksum) << "peer " << p;
    EXPECT_EQ(out[p].fds_after_last, out[p].fds_after_warmup) << "peer " << p;
    slowest = std::max(slowest, out[p].seconds);
    total += out[p].bytes;
  }
  EXPECT_TRUE(server.alive());
  std::printf(
      "[ direct-rel ] soak: %d allreduces x %u peers, %.1f MiB contributed per peer, "
      "%.2f s, checksum %016" PRIx64
      ", peer 0 fds %d (no communicator) -> %d (meshed) "
      "-> %d (after the last) -> %d (destroyed)\n",
      out[0].rounds, kPeers, double(out[0].bytes) / (1 << 20), slowest, out[0].checksum,
      out[0].fds_before_comm, out[0].fds_after_warmup, out[0].fds_after_last,
      out[0].fds_after_destroy);
  (void)total;
  ::munmap(mem, sizeof(SoakResult) * kPeers);
}

// ---------------------------------------------------------------------------

TEST(DirectReliability, RendezvousRestartBetweenRuns) {
  constexpr unsigned kPeers = 3;
  std::uint16_t port = 0;
  const auto run = [&](std::int64_t salt) {
    return fmitest::run_forked(
        kPeers,
        [&](unsigned me) {
          FMI::Communicator comm(me, kPeers, direct_config(port, 20s), "restarted");
          checked_run(comm, 6, salt);
        },
        120s);
  };
  {
    Server first;
    port = first.port();
    fmitest::expect_all_ok(run(1));
    EXPECT_EQ(first.stop(), 0);
  }
  Server second(port);
  ASSERT_EQ(second.port(), port);
  const auto t0 = Clock::now();
  fmitest::expect_all_ok(run(2));
  const double dt = seconds_since(t0);
  EXPECT_TRUE(second.alive());
  EXPECT_EQ(second.stop(), 0);
  std::printf(
      "[ direct-rel ] restart: server on port %u stopped (SIGTERM, exit 0) and restarted "
      "on the same port; second 3-peer run with the same name took %.2f s\n",
      unsigned(port), dt);
}

}  // namespace
