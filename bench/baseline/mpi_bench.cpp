// mpi_bench: OpenMPI reference for fmi-bench, measured exactly as fmi-bench measures
// FMI (same sizes, same per-iteration slowest-rank timing, same row format), so
// bench/compare.sh can divide one by the other.
//
//   mpirun --allow-run-as-root --oversubscribe --mca btl tcp,self -n 4
//       build-bench/bench/baseline/mpi_bench --ops allreduce --sizes 64M --csv
//
// --mca btl tcp,self keeps OpenMPI on TCP (no shared memory), like FMI's Direct channel.
// Reductions are float32 sums. Ping-pong and bandwidth run between ranks 0 and 1.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "bench_common.h"
#include "tools/common/cli.h"

namespace {

struct Options {
  std::vector<std::string> ops;
  std::vector<std::size_t> sizes;
  std::size_t iters = 1000, warmup = 20;
  double budget_s = 1.0;
  std::size_t max_buffer = 1u << 30;  // per rank, skip points that need more
  bool csv = false;
};

int g_rank = 0, g_size = 1;

// Runs `body` warm-up times, then enough timed iterations; returns the slowest
// rank's time of each iteration (on rank 0). `align` puts an untimed barrier
// before each iteration so that every rank starts together.
std::vector<double> measure(const Options& opt, std::size_t bytes, bool align,
                            const std::function<void()>& body, std::size_t max_iters) {
  // The median warm-up iteration sets the count: the first ones include lazy
  // connection set-up and would make it far too small.
  std::vector<double> warm_secs;
  for (std::size_t i = 0, w = fmibench::warmup_for(opt.warmup, bytes); i < w; ++i) {
    if (align) MPI_Barrier(MPI_COMM_WORLD);
    double a = MPI_Wtime();
    body();
    warm_secs.push_back(MPI_Wtime() - a);
  }
  double warm = fmibench::summarize(warm_secs).median;
  double warm_max = 0;
  MPI_Allreduce(&warm, &warm_max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  std::size_t iters = fmibench::iterations_for(warm_max, opt.budget_s, 5, max_iters);
  std::vector<double> secs(iters), worst(iters);
  for (std::size_t i = 0; i < iters; ++i) {
    if (align) MPI_Barrier(MPI_COMM_WORLD);
    double a = MPI_Wtime();
    body();
    secs[i] = MPI_Wtime() - a;
  }
  MPI_Reduce(secs.data(), worst.data(), static_cast<int>(iters), MPI_DOUBLE, MPI_MAX, 0,
             MPI_COMM_WORLD);
  return worst;
}

// OpenMPI opens its TCP connections lazily, and right after start-up the first
// messages can take milliseconds each (seen here: a whole first point at 10+ ms per
// ping-pong). Exchange small messages between every pair until 20 rounds in a row
// are fast on every rank (or 5 s pass), so that no point pays for start-up.
void warm_connections() {
  std::vector<char> a(static_cast<std::size_t>(g_size)), b(a.size());
  const double start = MPI_Wtime();
  int fast = 0;
  while (fast < 20) {
    double t = MPI_Wtime();
    MPI_Alltoall(a.data(), 1, MPI_BYTE, b.data(), 1, MPI_BYTE, MPI_COMM_WORLD);
    double mine = MPI_Wtime() - t, worst = 0, elapsed = MPI_Wtime() - start, longest = 0;
    MPI_Allreduce(&mine, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&elapsed, &longest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    fast = worst < 1e-3 ? fast + 1 : 0;
    if (longest > 5.0) break;
  }
}

void emit(const Options& opt, const fmibench::Row& r) {
  if (g_rank != 0) return;
  std::cout << (opt.csv ? fmibench::to_csv(r) : fmibench::to_table(r)) << std::endl;
}

void run_point(const Options& opt, const std::string& op, std::size_t bytes) {
  const int n = g_size;
  const std::size_t floats = std::max<std::size_t>(1, (bytes + 3) / 4);
  const std::size_t fbytes = floats * 4;
  const int cnt = static_cast<int>(bytes);
  std::size_t need = bytes;
  if (op == "gather" || op == "scatter" || op == "allgather" || op == "alltoall")
    need = bytes * static_cast<std::size_t>(n) * 2;
  if (op == "reduce_scatter") need = fbytes * static_cast<std::size_t>(n) + fbytes;
  if (op == "alltoallv") need = bytes * static_cast<std::size_t>(n) * 2;
  if (need > opt.max_buffer) {
    if (g_rank == 0)
      std::cerr << "mpi_bench: skipping " << op << " " << bytes << " B on " << n << " ranks (needs "
                << need << " B per rank, above --max-buffer)\n";
    return;
  }
  std::vector<char> a, b;
  std::vector<float> fa, fb;
  const auto& tool = "mpi";
  const char* chan = "tcp";

  if (op == "pingpong" || op == "bandwidth") {
    if (n < 2) return;
    a.assign(std::max<std::size_t>(bytes, 1), 'x');
    if (op == "pingpong") {
      auto body = [&] {
        if (g_rank == 0) {
          MPI_Send(a.data(), cnt, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
          MPI_Recv(a.data(), cnt, MPI_BYTE, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (g_rank == 1) {
          MPI_Recv(a.data(), cnt, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          MPI_Send(a.data(), cnt, MPI_BYTE, 0, 1, MPI_COMM_WORLD);
        }
      };
      auto secs = measure(opt, bytes, false, body, opt.iters);
      for (auto& s : secs) s /= 2;
      if (g_rank == 0) emit(opt, fmibench::make_row(tool, op, chan, n, bytes, secs));
    } else {
      const std::size_t window = fmibench::bandwidth_window(bytes);
      std::vector<MPI_Request> reqs(window);
      char ack = 0;
      auto body = [&] {
        if (g_rank == 0) {
          for (std::size_t w = 0; w < window; ++w)
            MPI_Isend(a.data(), cnt, MPI_BYTE, 1, 2, MPI_COMM_WORLD, &reqs[w]);
          MPI_Waitall(static_cast<int>(window), reqs.data(), MPI_STATUSES_IGNORE);
          MPI_Recv(&ack, 1, MPI_BYTE, 1, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (g_rank == 1) {
          // Receives go into one buffer: only the transfer is measured.
          for (std::size_t w = 0; w < window; ++w)
            MPI_Irecv(a.data(), cnt, MPI_BYTE, 0, 2, MPI_COMM_WORLD, &reqs[w]);
          MPI_Waitall(static_cast<int>(window), reqs.data(), MPI_STATUSES_IGNORE);
          MPI_Send(&ack, 1, MPI_BYTE, 0, 3, MPI_COMM_WORLD);
        }
      };
      auto secs = measure(opt, bytes, false, body, std::max<std::size_t>(opt.iters / 10, 5));
      if (g_rank == 0) emit(opt, fmibench::make_row(tool, op, chan, n, bytes, secs, window));
    }
    return;
  }

  std::function<void()> body;
  std::size_t row_bytes = bytes;
  if (op == "barrier") {
    body = [] { MPI_Barrier(MPI_COMM_WORLD); };
    row_bytes = 0;
  } else if (op == "bcast") {
    a.assign(std::max<std::size_t>(bytes, 1), 'x');
    body = [&] { MPI_Bcast(a.data(), cnt, MPI_BYTE, 0, MPI_COMM_WORLD); };
  } else if (op == "gather") {
    a.assign(std::max<std::size_t>(bytes, 1), 'x');
    b.resize(std::max<std::size_t>(bytes, 1) * n);
    body = [&] { MPI_Gather(a.data(), cnt, MPI_BYTE, b.data(), cnt, MPI_BYTE, 0, MPI_COMM_WORLD); };
  } else if (op == "scatter") {
    a.assign(std::max<std::size_t>(bytes, 1) * n, 'x');
    b.resize(std::max<std::size_t>(bytes, 1));
    body = [&] {
      MPI_Scatter(a.data(), cnt, MPI_BYTE, b.data(), cnt, MPI_BYTE, 0, MPI_COMM_WORLD);
    };
  } else if (op == "allgather") {
    a.assign(std::max<std::size_t>(bytes, 1), 'x');
    b.resize(std::max<std::size_t>(bytes, 1) * n);
    body = [&] { MPI_Allgather(a.data(), cnt, MPI_BYTE, b.data(), cnt, MPI_BYTE, MPI_COMM_WORLD); };
  } else if (op == "alltoall") {
    a.assign(std::max<std::size_t>(bytes, 1) * n, 'x');
    b.resize(std::max<std::size_t>(bytes, 1) * n);
    body = [&] { MPI_Alltoall(a.data(), cnt, MPI_BYTE, b.data(), cnt, MPI_BYTE, MPI_COMM_WORLD); };
  } else if (op == "alltoallv") {
    // The skew of fmi-bench's alltoallv (fmibench::alltoallv_block): peer 0 sends most.
    std::vector<int> sc(n), sd(n), rc(n), rd(n);
    for (int q = 0, so = 0, ro = 0; q < n; ++q) {
      sc[q] = static_cast<int>(fmibench::alltoallv_block(unsigned(g_rank), bytes));
      rc[q] = static_cast<int>(fmibench::alltoallv_block(unsigned(q), bytes));
      sd[q] = so, rd[q] = ro;
      so += sc[q], ro += rc[q];
    }
    a.assign(std::max<std::size_t>(std::size_t(sd[n - 1]) + sc[n - 1], 1), 'x');
    b.resize(std::max<std::size_t>(std::size_t(rd[n - 1]) + rc[n - 1], 1));
    body = [&, sc, sd, rc, rd] {
      MPI_Alltoallv(a.data(), sc.data(), sd.data(), MPI_BYTE, b.data(), rc.data(), rd.data(),
                    MPI_BYTE, MPI_COMM_WORLD);
    };
  } else if (op == "reduce" || op == "allreduce" || op == "scan") {
    row_bytes = fbytes;
    fa.assign(floats, 1.0f);
    fb.resize(floats);
    const int fc = static_cast<int>(floats);
    if (op == "reduce")
      body = [&, fc] {
        MPI_Reduce(fa.data(), fb.data(), fc, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
      };
    else if (op == "allreduce")
      body = [&, fc] {
        MPI_Allreduce(fa.data(), fb.data(), fc, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      };
    else
      body = [&, fc] { MPI_Scan(fa.data(), fb.data(), fc, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); };
  } else if (op == "reduce_scatter") {
    row_bytes = fbytes;
    fa.assign(floats * n, 1.0f);
    fb.resize(floats);
    const int fc = static_cast<int>(floats);
    body = [&, fc] {
      MPI_Reduce_scatter_block(fa.data(), fb.data(), fc, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    };
  } else {
    if (g_rank == 0) std::cerr << "mpi_bench: unknown operation '" << op << "'\n";
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  auto secs = measure(opt, row_bytes, true, body, opt.iters);
  if (g_rank == 0) emit(opt, fmibench::make_row(tool, op, chan, n, row_bytes, secs));
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);

  CLI::App app{"OpenMPI reference benchmark (same rows as fmi-bench)"};
  Options opt;
  std::string ops = "pingpong,bandwidth,bcast,barrier,allreduce";
  std::string sizes = "8,1K,64K,1M,64M";
  std::string max_buffer = "1G";
  bool no_header = false;
  app.add_option("--ops", ops, "operations, comma separated");
  app.add_option("--sizes", sizes, "bytes per peer (K/M/G suffixes)");
  app.add_option("--iters", opt.iters, "maximum timed iterations per point");
  app.add_option("--warmup", opt.warmup, "warm-up iterations per point");
  app.add_option("--budget", opt.budget_s, "seconds of measurement per point (approx.)");
  app.add_option("--max-buffer", max_buffer, "skip points needing more memory per rank");
  app.add_flag("--csv", opt.csv, "CSV output (fmi-bench's columns)");
  app.add_flag("--no-header", no_header, "omit the header line");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = g_rank == 0 ? app.exit(e) : (e.get_exit_code());
    MPI_Finalize();
    return rc;
  }
  try {
    opt.ops = FMI::Tools::split(ops);
    opt.sizes = FMI::Tools::parse_sizes(sizes);
    opt.max_buffer = FMI::Tools::parse_size(max_buffer);
  } catch (const std::exception& e) {
    if (g_rank == 0) std::cerr << "mpi_bench: " << e.what() << "\n";
    MPI_Finalize();
    return 2;
  }
  if (g_rank == 0 && !no_header)
    std::cout << (opt.csv ? fmibench::csv_header() : fmibench::table_header()) << std::endl;
  warm_connections();
  for (const auto& op : opt.ops) {
    if (op == "barrier") {
      run_point(opt, op, 0);
      continue;
    }
    for (std::size_t s : opt.sizes) run_point(opt, op, s);
  }
  MPI_Finalize();
  return 0;
}
