// kmeans_bench: the FMI paper's case study as a benchmark (bench/kmeans_study.sh).
// Distributed K-means on generated HIGGS-like data (28 features, 3 clusters), a fixed
// number of epochs, one allreduce of [per-cluster sums | counts | inertia] per epoch.
// Unlike examples/kmeans.cpp (the demo) it never stops early and prints
// machine-readable lines, so channels and peer counts compare epoch for epoch.
//
//   fmirun -n 8 --config cfg.json -- build-bench/bench/kmeans_study/kmeans_bench --epochs 20
//
// Peer 0 prints, per epoch:
//   KMEANS_EPOCH,channel,peers,epoch,comm_ms,compute_ms,inertia
// and once:
//   KMEANS_SUMMARY,channel,peers,epochs,bytes,comm_median_ms,comm_p90_ms,comm_mean_ms,
//                  model_comm_ms,model_usd_per_1000,measured_usd_per_1000
// comm_ms is the allreduce alone, the slowest peer's (an untimed barrier first, so
// that compute imbalance between functions sharing 2 cores is not counted as
// communication). The costs per 1,000 epochs are those of the communication:
// model = the cost model's prediction (channel + the functions' GiB-seconds while they
// communicate); measured = the model's channel cost + the GiB-seconds of the measured
// median time.
#include <fmi/fmi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bench_common.h"
#ifdef FMI_BENCH_HAVE_MODEL
#include <fmi/model.h>
#endif

namespace {

constexpr std::size_t kFeatures = 28;  // as the HIGGS data set
constexpr double kCentreSpread = 0.6;  // true centres ~ N(0, spread), unit noise

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

unsigned env_number(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v)
    throw std::runtime_error(std::string("$") + name + " is not set (run through fmirun)");
  return static_cast<unsigned>(std::stoul(v));
}

// The data set: k true centres from the seed; function p's shard from (seed, p).
std::vector<double> make_centres(std::size_t k, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, kCentreSpread);
  std::vector<double> c(k * kFeatures);
  for (auto& x : c) x = d(rng);
  return c;
}

std::vector<double> make_shard(std::size_t points, std::size_t k, std::uint64_t seed,
                               unsigned peer) {
  const auto centres = make_centres(k, seed);
  std::mt19937_64 rng(seed * 1000003u + peer + 1);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::uniform_int_distribution<std::size_t> pick(0, k - 1);
  std::vector<double> x(points * kFeatures);
  for (std::size_t i = 0; i < points; ++i) {
    const double* c = &centres[pick(rng) * kFeatures];
    for (std::size_t f = 0; f < kFeatures; ++f) x[i * kFeatures + f] = c[f] + noise(rng);
  }
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"K-means case study benchmark (one allreduce per epoch)"};
  std::size_t points = 20000, k = 3;
  int epochs = 20;
  std::uint64_t seed = 42;
  unsigned memory = 1024;
  std::string label;
  app.add_option("--points", points, "points per function");
  app.add_option("--epochs", epochs, "epochs (always all of them)");
  app.add_option("--k", k, "clusters");
  app.add_option("--seed", seed, "data seed");
  app.add_option("--memory", memory, "function memory in MiB (cost model)");
  app.add_option("--label", label, "channel name for the output (default: the one used)");
  CLI11_PARSE(app, argc, argv);

  try {
    const unsigned me = env_number("FMI_PEER_ID");
    const unsigned n = env_number("FMI_NUM_PEERS");
    const char* name = std::getenv("FMI_COMM_NAME");
    const char* config = std::getenv("FMI_CONFIG");
    if (!config || !*config)
      throw std::runtime_error("$FMI_CONFIG is not set (run through fmirun)");
    FMI::Communicator comm(me, n, std::string(config), name && *name ? name : "kmeans-bench",
                           memory);
    comm.hint(FMI::Utils::Hint::fast);

    const auto x = make_shard(points, k, seed, me);
    // Initial centroids: the first k points of a shard every function can derive.
    std::vector<double> centroids(k * kFeatures);
    {
      const auto first = make_shard(k, k, seed + 7, 0);
      std::copy(first.begin(), first.end(), centroids.begin());
    }
    const std::size_t len = k * kFeatures + k + 1;  // sums | counts | inertia
    FMI::Comm::Data<std::vector<double>> local(len), global(len);
    const auto sum = FMI::Utils::Function<std::vector<double>>::sum();
    std::vector<double> comm_ms, compute_ms, inertia;

    for (int e = 0; e < epochs; ++e) {
      auto t0 = Clock::now();
      auto& acc = local.ref();
      std::fill(acc.begin(), acc.end(), 0.0);
      for (std::size_t i = 0; i < points; ++i) {
        const double* p = &x[i * kFeatures];
        std::size_t best = 0;
        double best_d = std::numeric_limits<double>::max();
        for (std::size_t c = 0; c < k; ++c) {
          double d = 0;
          for (std::size_t f = 0; f < kFeatures; ++f) {
            double t = p[f] - centroids[c * kFeatures + f];
            d += t * t;
          }
          if (d < best_d) best_d = d, best = c;
        }
        for (std::size_t f = 0; f < kFeatures; ++f) acc[best * kFeatures + f] += p[f];
        acc[k * kFeatures + best] += 1;
        acc[len - 1] += best_d;
      }
      compute_ms.push_back(ms_since(t0));
      comm.barrier();  // untimed: compute imbalance is not communication
      auto t1 = Clock::now();
      comm.allreduce(local, global, sum);
      comm_ms.push_back(ms_since(t1));
      const auto& g = global.get();
      for (std::size_t c = 0; c < k; ++c) {
        double cnt = g[k * kFeatures + c];
        if (cnt > 0)
          for (std::size_t f = 0; f < kFeatures; ++f)
            centroids[c * kFeatures + f] = g[c * kFeatures + f] / cnt;
      }
      inertia.push_back(g[len - 1]);
    }

    // The slowest function's time of each epoch (outside the timed region).
    FMI::Comm::Data<std::vector<double>> mine(comm_ms), worst(comm_ms.size());
    comm.reduce(mine, worst, 0, FMI::Utils::Function<std::vector<double>>::max());
    FMI::Comm::Data<std::vector<double>> cmine(compute_ms), cworst(compute_ms.size());
    comm.reduce(cmine, cworst, 0, FMI::Utils::Function<std::vector<double>>::max());

    if (me == 0) {
      FMI::Utils::OperationInfo info;
      info.op = FMI::Utils::Operation::allreduce;
      info.data_size = len * sizeof(double);
      info.num_peers = n;
      info.hint = comm.get_hint();
      info.faas_memory = memory;
      const std::string used = comm.channel_for(info);
      const std::string ch = label.empty() ? used : label;
      for (int e = 0; e < epochs; ++e)
        std::printf("KMEANS_EPOCH,%s,%u,%d,%.4f,%.4f,%.6e\n", ch.c_str(), n, e, worst.get()[e],
                    cworst.get()[e], inertia[e]);
      auto s = fmibench::summarize(worst.get());
      double model_ms = -1, model_usd = -1, measured_usd = -1;
#ifdef FMI_BENCH_HAVE_MODEL
      const auto& chan = comm.channels().at(used);
      auto model = chan->model();
      if (!model) model = FMI::Comm::make_builtin_model(used, comm.config());
      if (model) {
        auto p = FMI::Utils::predict(info, chan->kind(), *model, comm.config());
        model_ms = p.latency * 1e3;
        model_usd = 1000 * p.cost();
        const double faas =
            comm.config().model.faas.gib_second_price * (memory / 1024.0) * n * (s.median / 1e3);
        // Servers billed per hour by the measured share of time, as the model does.
        const double servers = model->hourly_price() * (s.median / 1e3) / 3600.0;
        measured_usd = 1000 * (p.channel_cost + servers + faas);
      }
#endif
      std::printf("KMEANS_SUMMARY,%s,%u,%d,%zu,%.4f,%.4f,%.4f,%.4f,%.6e,%.6e\n", ch.c_str(), n,
                  epochs, len * sizeof(double), s.median, s.p90, s.mean, model_ms, model_usd,
                  measured_usd);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kmeans_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
