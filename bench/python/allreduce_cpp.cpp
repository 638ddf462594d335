// The C++ side of bench/python/allreduce_bench.py: a float32 allreduce (built-in sum)
// of the same size, on the same channel and peer count as the Python side.
//
//   fmi_bench_allreduce_cpp --inproc 4 [--mib 64] [--iters 5]   (peers as threads)
//   fmirun -n 4 --config cfg.json -- fmi_bench_allreduce_cpp [--mib 64] [--iters 5]
//
// Prints on peer 0: "cpp peers=4 bytes=67108864 iters=5 median_s=0.123 best_s=0.120".
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fmi/fmi.h"

namespace {

struct Options {
  unsigned inproc = 0;  // 0: peers are processes (FMI_* environment from fmirun)
  std::size_t mib = 64;
  unsigned iters = 5;
};

// Times `iters` allreduces after one warm-up; returns the per-iteration seconds.
std::vector<double> run(FMI::Communicator& comm, const Options& o) {
  const std::size_t n = o.mib * (1u << 20) / sizeof(float);
  FMI::Comm::Data<std::vector<float>> send(std::vector<float>(n, float(comm.peer_id() + 1)));
  FMI::Comm::Data<std::vector<float>> recv(n);
  const auto sum = FMI::Utils::Function<std::vector<float>>::sum();
  std::vector<double> times;
  for (unsigned it = 0; it <= o.iters; ++it) {
    comm.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    comm.allreduce(send, recv, sum);
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    if (it > 0) times.push_back(dt.count());
  }
  const float expect = float(comm.num_peers()) * float(comm.num_peers() + 1) / 2;
  if (recv.get()[0] != expect || recv.get()[n - 1] != expect) {
    std::fprintf(stderr, "peer %u: wrong result %f, expected %f\n", comm.peer_id(),
                 double(recv.get()[0]), double(expect));
    std::exit(1);
  }
  return times;
}

void report(unsigned peers, const Options& o, std::vector<double> t) {
  std::sort(t.begin(), t.end());
  std::printf("cpp peers=%u bytes=%zu iters=%u median_s=%.6f best_s=%.6f\n", peers,
              o.mib * (std::size_t(1) << 20), o.iters, t[t.size() / 2], t.front());
  std::fflush(stdout);
}

unsigned env_num(const char* name) {
  const char* v = std::getenv(name);
  if (!v) {
    std::fprintf(stderr, "%s not set: run under fmirun or pass --inproc N\n", name);
    std::exit(2);
  }
  return unsigned(std::strtoul(v, nullptr, 10));
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::strtoul(argv[++i], nullptr, 10);
    };
    if (a == "--inproc")
      o.inproc = unsigned(next());
    else if (a == "--mib")
      o.mib = next();
    else if (a == "--iters")
      o.iters = unsigned(next());
    else {
      std::fprintf(stderr, "usage: %s [--inproc N] [--mib 64] [--iters 5]\n", argv[0]);
      return 2;
    }
  }
  if (o.iters == 0) o.iters = 1;
  try {
    if (o.inproc) {
      FMI::Comm::InProcessHub hub(o.inproc, std::chrono::seconds(120));
      std::vector<std::vector<double>> times(o.inproc);
      std::vector<std::thread> threads;
      for (unsigned p = 0; p < o.inproc; ++p)
        threads.emplace_back([&, p] {
          FMI::Config cfg;
          FMI::Communicator comm(p, o.inproc, cfg, "bench");
          comm.register_channel("inproc", hub.p2p_endpoint());
          times[p] = run(comm, o);
        });
      for (auto& t : threads) t.join();
      report(o.inproc, o, times[0]);
    } else {
      const char* cfg = std::getenv("FMI_CONFIG");
      const char* name = std::getenv("FMI_COMM_NAME");
      FMI::Communicator comm(env_num("FMI_PEER_ID"), env_num("FMI_NUM_PEERS"),
                             cfg ? cfg : "config/fmi.json", name ? name : "bench");
      comm.hint(FMI::Utils::Hint::fast);
      auto t = run(comm, o);
      if (comm.peer_id() == 0) report(comm.num_peers(), o, t);
    }
  } catch (const FMI::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
