// gloo_bench: Gloo reference for fmi-bench (issue 21's third column), measured as
// fmi-bench and mpi_bench measure (same sizes, same per-iteration slowest-peer timing
// after an untimed barrier, same row format), over Gloo's TCP transport on loopback.
//
//   build/bench/baseline/gloo_bench --peers 4 --ops allreduce,bcast --sizes 8,1M --csv
//
// It starts its peers itself: the process forks --peers children, which meet through a
// gloo::rendezvous::FileStore in a fresh temporary folder and connect a full mesh;
// peer 0 prints the rows. Operations: those Debian 12's libgloo-dev has in its
// options API (bcast, reduce, allreduce, gather, scatter, allgather, alltoall,
// barrier); scan and reduce_scatter have none and are skipped with a note on stderr,
// so bench/collectives.sh shows n/a there. Reductions are float32 sums, as in
// mpi_bench. Gloo's options objects are built once per point and reused by every
// iteration: the per-call cost measured is the collective's, not the set-up's.
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/alltoall.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/gather.h>
#include <gloo/math.h>
#include <gloo/reduce.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/scatter.h>
#include <gloo/transport/tcp/device.h>

#include "bench_common.h"
#include "tools/common/cli.h"

namespace {

struct Options {
  std::vector<std::string> ops;
  std::vector<std::size_t> sizes;
  std::size_t iters = 1000, warmup = 20;
  double budget_s = 1.0;
  std::size_t max_buffer = 1u << 30;
  bool csv = false;
};

using Ctx = std::shared_ptr<gloo::Context>;
using Reduce = void (*)(void*, const void*, const void*, size_t);
const Reduce kSumF = &gloo::sum<float>;
const Reduce kMaxD = &gloo::max<double>;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void barrier(const Ctx& ctx) {
  gloo::BarrierOptions o(ctx);
  gloo::barrier(o);
}

// The largest value of `v` over all peers, element-wise, everywhere.
void max_all(const Ctx& ctx, std::vector<double>& v) {
  gloo::AllreduceOptions o(ctx);
  o.setInput(v.data(), v.size());
  o.setOutput(v.data(), v.size());
  o.setReduceFunction(kMaxD);
  gloo::allreduce(o);
}

// As mpi_bench's measure(): warm-up, an iteration count from the slowest peer's
// median warm-up time, then per iteration the slowest peer's time.
std::vector<double> measure(const Ctx& ctx, const Options& opt, std::size_t bytes, bool align,
                            const std::function<void()>& body) {
  std::vector<double> warm_secs;
  for (std::size_t i = 0, w = fmibench::warmup_for(opt.warmup, bytes); i < w; ++i) {
    if (align) barrier(ctx);
    const double a = now_s();
    body();
    warm_secs.push_back(now_s() - a);
  }
  std::vector<double> warm{fmibench::summarize(warm_secs).median};
  max_all(ctx, warm);
  const std::size_t iters = fmibench::iterations_for(warm[0], opt.budget_s, 5, opt.iters);
  std::vector<double> secs(iters);
  for (std::size_t i = 0; i < iters; ++i) {
    if (align) barrier(ctx);
    const double a = now_s();
    body();
    secs[i] = now_s() - a;
  }
  max_all(ctx, secs);
  return secs;
}

void run_point(const Ctx& ctx, const Options& opt, const std::string& op, std::size_t bytes) {
  const int n = ctx->size, rank = ctx->rank;
  const std::size_t floats = std::max<std::size_t>(1, (bytes + 3) / 4), fbytes = floats * 4;
  const std::size_t b = std::max<std::size_t>(bytes, 1), nb = b * std::size_t(n);
  std::size_t need = bytes;
  if (op == "gather" || op == "scatter" || op == "allgather" || op == "alltoall") need = 2 * nb;
  if (need > opt.max_buffer) {
    if (rank == 0)
      std::cerr << "gloo_bench: skipping " << op << " " << bytes << " B on " << n
                << " peers (needs " << need << " B per peer, above --max-buffer)\n";
    return;
  }
  std::vector<char> a, c;
  std::vector<float> fa, fb;
  std::vector<char*> parts;
  std::size_t row_bytes = bytes;
  std::function<void()> body;
  // Each option object lives as long as the point; the body reuses it.
  std::shared_ptr<void> keep;
  auto hold = [&](auto o) {
    auto p = std::make_shared<decltype(o)>(std::move(o));
    keep = p;
    return p;
  };
  if (op == "barrier") {
    row_bytes = 0;
    auto o = hold(gloo::BarrierOptions(ctx));
    body = [o] { gloo::barrier(*o); };
  } else if (op == "bcast") {
    a.assign(b, 'x');
    auto o = hold(gloo::BroadcastOptions(ctx));
    o->setRoot(0);
    if (rank == 0) o->setInput(a.data(), b);
    o->setOutput(a.data(), b);
    body = [o] { gloo::broadcast(*o); };
  } else if (op == "reduce" || op == "allreduce") {
    row_bytes = fbytes;
    fa.assign(floats, 1.0f);
    fb.resize(floats);
    if (op == "reduce") {
      auto o = hold(gloo::ReduceOptions(ctx));
      o->setRoot(0);
      o->setInput(fa.data(), floats);
      o->setOutput(fb.data(), floats);
      o->setReduceFunction(kSumF);
      body = [o] { gloo::reduce(*o); };
    } else {
      auto o = hold(gloo::AllreduceOptions(ctx));
      o->setInput(fa.data(), floats);
      o->setOutput(fb.data(), floats);
      o->setReduceFunction(kSumF);
      body = [o] { gloo::allreduce(*o); };
    }
  } else if (op == "gather") {
    a.assign(b, 'x');
    c.resize(nb);
    auto o = hold(gloo::GatherOptions(ctx));
    o->setRoot(0);
    o->setInput(a.data(), b);
    if (rank == 0) o->setOutput(c.data(), nb);
    body = [o] { gloo::gather(*o); };
  } else if (op == "scatter") {
    a.assign(nb, 'x');
    c.resize(b);
    auto o = hold(gloo::ScatterOptions(ctx));
    o->setRoot(0);
    if (rank == 0) {
      for (int p = 0; p < n; ++p) parts.push_back(a.data() + std::size_t(p) * b);
      o->setInputs(parts, b);
    }
    o->setOutput(c.data(), b);
    body = [o] { gloo::scatter(*o); };
  } else if (op == "allgather") {
    a.assign(b, 'x');
    c.resize(nb);
    auto o = hold(gloo::AllgatherOptions(ctx));
    o->setInput(a.data(), b);
    o->setOutput(c.data(), nb);
    body = [o] { gloo::allgather(*o); };
  } else if (op == "alltoall") {
    a.assign(nb, 'x');
    c.resize(nb);
    auto o = hold(gloo::AlltoallOptions(ctx));
    o->setInput(a.data(), nb);
    o->setOutput(c.data(), nb);
    body = [o] { gloo::alltoall(*o); };
  } else {
    return;  // run_peer said so once
  }
  auto secs = measure(ctx, opt, row_bytes, true, body);
  if (op == "reduce" || op == "allreduce") {
    // A wrong sum would make every number meaningless: n peers of 1.0f each.
    const std::vector<float>& r = fb;
    if ((op == "allreduce" || rank == 0) && r[0] != float(n))
      throw std::runtime_error(op + ": element 0 is " + std::to_string(r[0]) + ", expected " +
                               std::to_string(n));
  }
  if (rank == 0) {
    const auto row = fmibench::make_row("gloo", op, "tcp", unsigned(n), row_bytes, secs);
    std::cout << (opt.csv ? fmibench::to_csv(row) : fmibench::to_table(row)) << std::endl;
  }
}

int run_peer(int rank, int n, const std::string& store_dir, const Options& opt) {
  gloo::transport::tcp::attr attr;
  attr.hostname = "127.0.0.1";
  auto dev = gloo::transport::tcp::CreateDevice(attr);
  gloo::rendezvous::FileStore store(store_dir);
  auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, n);
  ctx->setTimeout(std::chrono::seconds(120));
  ctx->connectFullMesh(store, dev);
  const std::vector<std::string> have = {"bcast",   "reduce",    "allreduce", "gather",
                                         "scatter", "allgather", "alltoall",  "barrier"};
  for (const auto& op : opt.ops) {
    if (std::find(have.begin(), have.end(), op) == have.end()) {
      if (rank == 0)
        std::cerr << "gloo_bench: Gloo has no " << op << " (Debian 12's libgloo-dev): skipped\n";
      continue;
    }
    if (op == "barrier") {
      run_point(ctx, opt, op, 0);
      continue;
    }
    for (std::size_t s : opt.sizes) run_point(ctx, opt, op, s);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Gloo reference benchmark over TCP (same rows as fmi-bench)"};
  Options opt;
  std::string ops = "bcast,barrier,allreduce";
  std::string sizes = "8,1K,64K,1M,64M";
  std::string max_buffer = "1G";
  std::string peers = "2";
  bool no_header = false;
  app.add_option("--peers", peers, "peer counts, comma separated (each a run of its own)");
  app.add_option("--ops", ops, "operations, comma separated");
  app.add_option("--sizes", sizes, "bytes per peer (K/M/G suffixes)");
  app.add_option("--iters", opt.iters, "maximum timed iterations per point");
  app.add_option("--warmup", opt.warmup, "warm-up iterations per point");
  app.add_option("--budget", opt.budget_s, "seconds of measurement per point (approx.)");
  app.add_option("--max-buffer", max_buffer, "skip points needing more memory per peer");
  app.add_flag("--csv", opt.csv, "CSV output (fmi-bench's columns)");
  app.add_flag("--no-header", no_header, "omit the header line");
  CLI11_PARSE(app, argc, argv);
  std::vector<std::size_t> peer_counts;
  try {
    opt.ops = FMI::Tools::split(ops);
    opt.sizes = FMI::Tools::parse_sizes(sizes);
    opt.max_buffer = FMI::Tools::parse_size(max_buffer);
    for (const auto& p : FMI::Tools::split(peers)) peer_counts.push_back(std::stoul(p));
  } catch (const std::exception& e) {
    std::cerr << "gloo_bench: " << e.what() << "\n";
    return 2;
  }
  if (!no_header)
    std::cout << (opt.csv ? fmibench::csv_header() : fmibench::table_header()) << std::endl;
  int status = 0;
  for (std::size_t n : peer_counts) {
    if (n < 1) continue;
    // A fresh rendezvous folder per run: a FileStore's keys are never reused.
    char tmpl[] = "/tmp/gloo_bench.XXXXXX";
    if (!::mkdtemp(tmpl)) {
      std::perror("gloo_bench: mkdtemp");
      return 1;
    }
    const std::string dir = tmpl;
    std::vector<pid_t> kids;
    for (std::size_t r = 0; r < n; ++r) {
      std::cout.flush();
      const pid_t pid = ::fork();
      if (pid < 0) {
        std::perror("gloo_bench: fork");
        return 1;
      }
      if (pid == 0) {
        int rc = 1;
        try {
          rc = run_peer(int(r), int(n), dir, opt);
        } catch (const std::exception& e) {
          std::cerr << "gloo_bench: peer " << r << " of " << n << ": " << e.what() << "\n";
        }
        std::cout.flush();
        std::_Exit(rc);
      }
      kids.push_back(pid);
    }
    for (pid_t k : kids) {
      int st = 0;
      if (::waitpid(k, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) status = 1;
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  return status;
}
