// tcp_pingpong: the physical limit of this machine's loopback for the comparison
// with FMI (bench/compare.sh). Two processes (fork) on one blocking TCP connection
// with TCP_NODELAY, nothing else: no framing, no tags, no threads.
//
// --spin: the receiver busy-polls (recv with MSG_DONTWAIT in a loop) instead of
// sleeping in recv. On a virtual machine whose idle vCPU halts, a blocking receiver
// pays tens of microseconds per wake-up; the spinning loop is the floor that FMI's
// own spin-then-block wait is compared with (rows "tcp-spin").
//
//   build-bench/bench/baseline/tcp_pingpong --sizes 8,1K,64K,1M,64M --csv
//
// Prints rows in fmi-bench's format (tools/fmi-bench/bench_common.h):
//  - pingpong: one-way latency (half the round trip) per size;
//  - bandwidth: per size, a window of messages then a 1-byte acknowledgement
//    (as osu_bw), so the 64 MiB row is the stream bandwidth.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_common.h"
#include "tools/common/cli.h"
#include "tools/common/fd.h"

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void sys_fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

using FMI::Tools::Fd;  // the sockets

// Blocking loops over short transfers and EINTR; a peer that closes early is an error.
void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      sys_fail("send");
    }
    p += k;
    n -= static_cast<std::size_t>(k);
  }
}

bool g_spin = false;  // --spin

void read_all(int fd, char* p, std::size_t n) {
  while (n > 0) {
    ssize_t k = ::recv(fd, p, n, g_spin ? MSG_DONTWAIT : 0);
    if (k < 0) {
      if (errno == EINTR || (g_spin && (errno == EAGAIN || errno == EWOULDBLOCK))) continue;
      sys_fail("recv");
    }
    if (k == 0) throw std::runtime_error("recv: peer closed the connection");
    p += k;
    n -= static_cast<std::size_t>(k);
  }
}

void tune(int fd) {
  int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) sys_fail("TCP_NODELAY");
}

struct Options {
  std::vector<std::size_t> sizes;
  std::size_t iters = 1000, warmup = 50;
  double budget_s = 1.0;
  bool csv = false;
};

// Both processes walk the same schedule; rank 0 times it.
void run(int fd, bool rank0, const Options& opt, std::vector<fmibench::Row>& rows) {
  std::size_t max_size = 1;
  for (auto s : opt.sizes) max_size = std::max(max_size, s);
  std::vector<char> buf(max_size, 'x');
  char ack = 0;

  for (std::size_t size : opt.sizes) {
    // ---- ping-pong
    auto once = [&] {
      if (rank0) {
        write_all(fd, buf.data(), size);
        read_all(fd, buf.data(), size);
      } else {
        read_all(fd, buf.data(), size);
        write_all(fd, buf.data(), size);
      }
    };
    std::vector<double> warm_secs;
    for (std::size_t i = 0, w = fmibench::warmup_for(opt.warmup, size); i < w; ++i) {
      auto a = Clock::now();
      once();
      warm_secs.push_back(std::chrono::duration<double>(Clock::now() - a).count());
    }
    double warm = fmibench::summarize(warm_secs).median;
    // Rank 0 decides the count and tells rank 1, so both run the same schedule.
    std::uint64_t iters = fmibench::iterations_for(warm, opt.budget_s, 10, opt.iters);
    if (rank0)
      write_all(fd, reinterpret_cast<const char*>(&iters), sizeof iters);
    else
      read_all(fd, reinterpret_cast<char*>(&iters), sizeof iters);
    std::vector<double> secs;
    secs.reserve(iters);
    for (std::size_t i = 0; i < iters; ++i) {
      auto a = Clock::now();
      once();
      secs.push_back(std::chrono::duration<double>(Clock::now() - a).count() / 2);
    }
    const char* tool = g_spin ? "tcp-spin" : "tcp";
    if (rank0) rows.push_back(fmibench::make_row(tool, "pingpong", "loopback", 2, size, secs));

    // ---- bandwidth: a window of messages one way, then one acknowledgement byte
    const std::size_t window = fmibench::bandwidth_window(size);
    auto burst = [&] {
      if (rank0) {
        for (std::size_t w = 0; w < window; ++w) write_all(fd, buf.data(), size);
        read_all(fd, &ack, 1);
      } else {
        for (std::size_t w = 0; w < window; ++w) read_all(fd, buf.data(), size);
        write_all(fd, &ack, 1);
      }
    };
    const std::size_t bw_warm =
        std::max<std::size_t>(2, fmibench::warmup_for(opt.warmup, size) / 10);
    warm_secs.clear();
    for (std::size_t i = 0; i < bw_warm; ++i) {
      auto a = Clock::now();
      burst();
      warm_secs.push_back(std::chrono::duration<double>(Clock::now() - a).count());
    }
    warm = fmibench::summarize(warm_secs).median;
    iters =
        fmibench::iterations_for(warm, opt.budget_s, 5, std::max<std::size_t>(opt.iters / 10, 5));
    if (rank0)
      write_all(fd, reinterpret_cast<const char*>(&iters), sizeof iters);
    else
      read_all(fd, reinterpret_cast<char*>(&iters), sizeof iters);
    secs.clear();
    for (std::size_t i = 0; i < iters; ++i) {
      auto a = Clock::now();
      burst();
      secs.push_back(std::chrono::duration<double>(Clock::now() - a).count());
    }
    if (rank0)
      rows.push_back(fmibench::make_row(tool, "bandwidth", "loopback", 2, size, secs, window));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Bare blocking TCP ping-pong and stream over loopback (baseline for fmi-bench)"};
  Options opt;
  std::string sizes = "8,1K,64K,1M,64M";
  app.add_option("--sizes", sizes, "message sizes (K/M/G suffixes)");
  app.add_option("--iters", opt.iters, "maximum ping-pong iterations per size");
  app.add_option("--warmup", opt.warmup, "warm-up iterations per size");
  app.add_option("--budget", opt.budget_s, "seconds of measurement per size and test (approx.)");
  app.add_flag("--csv", opt.csv, "CSV output (fmi-bench's columns)");
  app.add_flag("--spin", g_spin,
               "busy-poll the socket instead of blocking in recv (rows tcp-spin)");
  CLI11_PARSE(app, argc, argv);
  try {
    opt.sizes = FMI::Tools::parse_sizes(sizes);

    Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
    if (listener.get() < 0) sys_fail("socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      sys_fail("bind 127.0.0.1:0");
    socklen_t len = sizeof addr;
    if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      sys_fail("getsockname");
    if (::listen(listener.get(), 1) != 0) sys_fail("listen");

    std::cout.flush();
    pid_t child = ::fork();
    if (child < 0) sys_fail("fork");
    if (child == 0) {
      int rc = 0;
      try {
        Fd s(::socket(AF_INET, SOCK_STREAM, 0));
        if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
          sys_fail("connect");
        tune(s.get());
        std::vector<fmibench::Row> unused;
        run(s.get(), false, opt, unused);
      } catch (const std::exception& e) {
        std::cerr << "tcp_pingpong (rank 1): " << e.what() << "\n";
        rc = 1;
      }
      ::_exit(rc);
    }
    std::vector<fmibench::Row> rows;
    {
      Fd s(::accept(listener.get(), nullptr, nullptr));
      if (s.get() < 0) sys_fail("accept");
      tune(s.get());
      run(s.get(), true, opt, rows);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("rank 1 failed");

    if (opt.csv) {
      std::cout << fmibench::csv_header() << "\n";
      for (auto& r : rows) std::cout << fmibench::to_csv(r) << "\n";
    } else {
      std::cout << fmibench::table_header() << "\n";
      for (auto& r : rows) std::cout << fmibench::to_table(r) << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "tcp_pingpong: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
