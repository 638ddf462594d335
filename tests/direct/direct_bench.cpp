// Loopback numbers of the Direct channel next to bare blocking TCP. Not a test:
//   build-*/tests/direct/direct_bench [iterations]
// prints the one-way latency of an 8-byte ping-pong and the bandwidth of 64 MiB
// messages, for Direct (through fmi-rendezvous, started here) and for bare TCP.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "channels/direct/direct_channel.h"
#include "rendezvous_server.h"

using Clock = std::chrono::steady_clock;
using FMI::Comm::Tag;

namespace {

constexpr std::size_t kBig = 64u << 20;
constexpr int kBigRounds = 8;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void direct_peer(std::uint16_t port, unsigned me, int iters, int out_fd) {
  FMI::Comm::DirectConfig d;
  d.host = "127.0.0.1";
  d.port = port;
  FMI::Comm::DirectChannel ch(d);
  ch.init({me, 2, "bench", 128});
  auto dl = [] { return Clock::now() + std::chrono::seconds(60); };
  ch.connect_all(dl());
  std::byte small[8] = {};
  unsigned other = 1 - me;
  Tag t{FMI::Utils::Operation::send, 0};
  for (int i = 0; i < 1000; ++i) {  // warm-up
    if (me == 0)
      ch.send(other, small, t, dl()), ch.recv(other, small, t, dl());
    else
      ch.recv(other, small, t, dl()), ch.send(other, small, t, dl());
  }
  auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) {
    if (me == 0)
      ch.send(other, small, t, dl()), ch.recv(other, small, t, dl());
    else
      ch.recv(other, small, t, dl()), ch.send(other, small, t, dl());
  }
  double lat = seconds_since(t0) / (2.0 * iters);
  std::vector<std::byte> big(kBig, std::byte{1});
  t0 = Clock::now();
  for (int i = 0; i < kBigRounds; ++i) {
    if (me == 0)
      ch.send(other, big, t, dl());
    else
      ch.recv(other, big, t, dl());
  }
  if (me == 0)
    ch.recv(other, small, t, dl());
  else
    ch.send(other, small, t, dl());
  double bw = double(kBig) * kBigRounds / seconds_since(t0) / (1 << 20);
  if (me == 0) {
    double r[2] = {lat, bw};
    (void)!::write(out_fd, r, sizeof r);
  }
}

void full(int fd, void* p, std::size_t n, bool wr) {
  auto* c = static_cast<char*>(p);
  while (n) {
    ssize_t r = wr ? ::send(fd, c, n, MSG_NOSIGNAL) : ::recv(fd, c, n, 0);
    if (r <= 0) _exit(3);
    c += r, n -= std::size_t(r);
  }
}

void tcp_pair(int iters, double& lat, double& bw) {
  int l = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(l, 1);
  socklen_t len = sizeof a;
  ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
  int one = 1;
  pid_t pid = ::fork();
  if (pid == 0) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char b[8];
    for (int i = 0; i < iters + 1000; ++i) full(s, b, 8, false), full(s, b, 8, true);
    std::vector<char> big(kBig);
    for (int i = 0; i < kBigRounds; ++i) full(s, big.data(), kBig, false);
    full(s, b, 1, true);
    _exit(0);
  }
  int s = ::accept(l, nullptr, nullptr);
  ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char b[8] = {};
  for (int i = 0; i < 1000; ++i) full(s, b, 8, true), full(s, b, 8, false);
  auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) full(s, b, 8, true), full(s, b, 8, false);
  lat = seconds_since(t0) / (2.0 * iters);
  std::vector<char> big(kBig, 1);
  t0 = Clock::now();
  for (int i = 0; i < kBigRounds; ++i) full(s, big.data(), kBig, true);
  full(s, b, 1, false);
  bw = double(kBig) * kBigRounds / seconds_since(t0) / (1 << 20);
  ::waitpid(pid, nullptr, 0);
  ::close(s);
  ::close(l);
}

}  // namespace

int main(int argc, char** argv) {
  int iters = argc > 1 ? std::atoi(argv[1]) : 20000;
  double tl = 0, tb = 0;
  tcp_pair(iters, tl, tb);
  fmitest::RendezvousServer server({"--quiet"});
  int p[2];
  if (::pipe(p) != 0) return 1;
  auto res =
      fmitest::run_forked(2, [&](unsigned me) { direct_peer(server.port(), me, iters, p[1]); });
  double r[2] = {0, 0};
  if (::read(p[0], r, sizeof r) != sizeof r) {
    std::fprintf(stderr, "Direct peers failed\n");
    return 1;
  }
  std::printf("loopback, %d ping-pongs of 8 bytes, %d x 64 MiB\n", iters, kBigRounds);
  std::printf("%-12s %14s %16s\n", "", "one-way (us)", "64 MiB (MiB/s)");
  std::printf("%-12s %14.2f %16.0f\n", "bare TCP", tl * 1e6, tb);
  std::printf("%-12s %14.2f %16.0f\n", "Direct", r[0] * 1e6, r[1]);
  return res[0].code | res[1].code;
}
