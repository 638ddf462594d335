// kmeans: distributed K-means over FMI, the case study of the FMI paper, on generated
// HIGGS-like data (28 features, 3 clusters).
//
// Run it as N functions with the launcher, e.g. on 4 local functions over Direct:
//   build/tools/fmirun/fmirun -n 4 --config config/fmi.json -- build/examples/kmeans
// or each function behind its own NAT, as on AWS Lambda (root):
//   build/tools/fmirun/fmirun --nat -n 4 --config config/fmi.json -- build/examples/kmeans
// Options: --points N (per function, default 50000), --epochs E (default 50),
//          --k K (default 3), --seed S (default 42), --tol T (default 1e-4),
//          --check (exit 3 unless every function ends with the same centroids, each
//          within 0.5 of a distinct true centre: the example as a test).
// As an AWS Lambda function (provided.al2023; deploy/lambda/build-cpp.sh, template-cpp.yaml):
//   kmeans --lambda serves invocations (FMI::Lambda::serve); peer id, number of peers,
//   comm name and configuration come from the event of `fmirun --lambda`, the options
//   above from its payload fields ("points", "epochs", "k", "seed", "tol", "check"):
//   fmirun --lambda fmi-kmeans -n 4 --config config/fmi.json --payload '{"points": 20000}'
//   Each function returns {"peer_id", "num_peers", "epochs", "converged", "inertia",
//   "setup_ms", "bcast_ms", "allreduce_ms", "compute_ms", "check"}; with "check" true a
//   failed check is the invocation's error.
//
// Every function generates its own shard deterministically from the seed and its peer
// id, so a run is reproducible and the data never travels. Peer 0 draws the initial
// centroids (k-means++ on a sample of its shard) and broadcasts them. Each epoch, every
// function assigns its points to the nearest centroid and sums them per cluster; one
// allreduce of [sums | counts | inertia] gives every function the global sums, from
// which each computes the same new centroids. Peer 0 prints, per epoch, the inertia
// (sum of squared distances), how far the centroids moved, and the compute and
// communication time; then the final centroids next to the true cluster centres and
// the total communication time. The other peers print one summary line each.
#include <fmi/fmi.h>
#ifdef FMI_WITH_LAMBDA
#include <fmi/lambda.h>

#include <nlohmann/json.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kFeatures = 28;  // as the HIGGS data set
// Standard deviation of the true centres around 0, against unit noise: small enough
// that the clusters overlap (as HIGGS's classes do) and K-means needs some epochs.
constexpr double kCentreSpread = 0.4;

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

struct Options {
  std::size_t points = 50000;
  int epochs = 50;
  std::size_t k = 3;
  std::uint64_t seed = 42;
  double tol = 1e-4;
  bool check = false;
};

// Why the options cannot run, or nullptr (the command line and the Lambda payload).
const char* invalid(const Options& o) {
  if (o.points == 0 || o.k == 0 || o.epochs < 1) return "points, k and epochs must be positive";
  return nullptr;
}

[[noreturn]] void usage(const char* why) {
  std::cerr << "kmeans: " << why
            << "\nusage: kmeans [--points N] [--epochs E] [--k K] [--seed S] [--tol T] [--check]"
               " (FMI_PEER_ID, FMI_NUM_PEERS, FMI_COMM_NAME, FMI_CONFIG from the environment: use "
               "fmirun)\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--check") {
      o.check = true;
      continue;
    }
    if (i + 1 >= argc) usage(("missing value after " + a).c_str());
    std::string v = argv[++i];
    try {
      if (a == "--points")
        o.points = std::stoul(v);
      else if (a == "--epochs")
        o.epochs = std::stoi(v);
      else if (a == "--k")
        o.k = std::stoul(v);
      else if (a == "--seed")
        o.seed = std::stoull(v);
      else if (a == "--tol")
        o.tol = std::stod(v);
      else
        usage(("unknown option " + a).c_str());
    } catch (const std::logic_error&) {
      usage(("bad value for " + a + ": " + v).c_str());
    }
  }
  if (const char* why = invalid(o)) usage(why);
  return o;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) usage((std::string("$") + name + " is not set").c_str());
  return v;
}

// Cluster centres and mixture weights of the generated data: the same on every peer.
struct Truth {
  std::vector<double> centres;  // k x kFeatures
  std::vector<double> weights;
};

Truth make_truth(const Options& o) {
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> centre(0.0, kCentreSpread);
  Truth t;
  t.centres.resize(o.k * kFeatures);
  for (auto& x : t.centres) x = centre(rng);
  for (std::size_t c = 0; c < o.k; ++c)
    t.weights.push_back(1.0 + static_cast<double>(c));  // unequal sizes
  return t;
}

// This peer's shard: points around the true centres with unit noise, Gaussian for most
// features and skewed (exponential, mean zero) for every 7th, as HIGGS's momenta are.
std::vector<double> make_shard(const Options& o, const Truth& t, unsigned peer) {
  std::mt19937_64 rng(o.seed ^ (0x9E3779B97F4A7C15ull * (peer + 1)));
  std::discrete_distribution<std::size_t> cluster(t.weights.begin(), t.weights.end());
  std::normal_distribution<double> noise(0.0, 1.0);
  std::exponential_distribution<double> skewed(1.0);
  std::vector<double> x(o.points * kFeatures);
  for (std::size_t i = 0; i < o.points; ++i) {
    const double* c = &t.centres[cluster(rng) * kFeatures];
    for (std::size_t f = 0; f < kFeatures; ++f)
      x[i * kFeatures + f] = c[f] + (f % 7 == 0 ? skewed(rng) - 1.0 : noise(rng));
  }
  return x;
}

double dist2(const double* a, const double* b) {
  double s = 0;
  for (std::size_t f = 0; f < kFeatures; ++f) {
    double d = a[f] - b[f];
    s += d * d;
  }
  return s;
}

// Greedy k-means++ seeding on a sample of the shard (peer 0 only): each new centroid is
// the best of a few candidates drawn with probability proportional to their squared
// distance to the centroids so far, which rarely puts two centroids in one cluster.
std::vector<double> initial_centroids(const Options& o, const std::vector<double>& x) {
  std::mt19937_64 rng(o.seed + 1);
  const std::size_t sample = std::min<std::size_t>(o.points, 2000);
  std::vector<double> cent;
  std::uniform_int_distribution<std::size_t> first(0, sample - 1);
  std::size_t pick = first(rng);
  cent.insert(cent.end(), &x[pick * kFeatures], &x[pick * kFeatures] + kFeatures);
  // d[i]: squared distance from sample point i to its nearest centroid so far.
  std::vector<double> d(sample);
  for (std::size_t i = 0; i < sample; ++i) d[i] = dist2(&x[i * kFeatures], &cent[0]);
  const int candidates = 2 + static_cast<int>(std::log(static_cast<double>(o.k)));
  while (cent.size() < o.k * kFeatures) {
    std::discrete_distribution<std::size_t> draw(d.begin(), d.end());
    std::size_t best = 0;
    double best_potential = std::numeric_limits<double>::max();
    for (int t = 0; t < candidates; ++t) {
      std::size_t cand = draw(rng);
      double potential = 0;
      for (std::size_t i = 0; i < sample; ++i)
        potential += std::min(d[i], dist2(&x[i * kFeatures], &x[cand * kFeatures]));
      if (potential < best_potential) best_potential = potential, best = cand;
    }
    const double* c = &x[best * kFeatures];
    for (std::size_t i = 0; i < sample; ++i) d[i] = std::min(d[i], dist2(&x[i * kFeatures], c));
    cent.insert(cent.end(), c, c + kFeatures);
  }
  return cent;
}

// What one function's run gives back (the Lambda mode returns it as JSON).
struct Result {
  int epochs = 0;
  bool converged = false;
  double inertia = 0, bcast_ms = 0, comm_ms = 0, compute_ms = 0;
  bool check_ok = true;  // false when o.check is set and the check failed
};

// One function's part of the job over `comm` (peer 0 prints the progress).
Result run(FMI::Communicator& comm, const Options& o, double setup_ms) {
  const unsigned id = comm.peer_id(), n = comm.num_peers();
  const std::size_t k = o.k, D = kFeatures;
  bool check_ok = true;
  const Truth truth = make_truth(o);
  const std::vector<double> x = make_shard(o, truth, id);
  if (id == 0)
    std::printf(
        "kmeans: %u functions x %zu points, %zu features, k=%zu, up to %d epochs (seed %llu)\n", n,
        o.points, D, k, o.epochs, static_cast<unsigned long long>(o.seed));

  // Initial centroids: drawn by peer 0, sent to everyone.
  FMI::Comm::Data<std::vector<double>> centroids(k * D);
  if (id == 0) centroids.ref() = initial_centroids(o, x);
  auto t_bcast = Clock::now();
  comm.bcast(centroids, 0);
  const double bcast_ms = ms_since(t_bcast);

  // One allreduce per epoch over [k*D sums | k counts | inertia].
  const std::size_t len = k * D + k + 1;
  FMI::Comm::Data<std::vector<double>> local(len), global(len);
  const auto sum = FMI::Utils::Function<std::vector<double>>::sum();
  double comm_ms = 0, first_allreduce_ms = 0, compute_ms = 0, inertia = 0;
  int epochs = 0;
  bool converged = false;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    auto t_compute = Clock::now();
    auto& acc = local.ref();
    std::fill(acc.begin(), acc.end(), 0.0);
    const auto& cent = centroids.get();
    for (std::size_t i = 0; i < o.points; ++i) {
      const double* p = &x[i * D];
      std::size_t best = 0;
      double best_d = std::numeric_limits<double>::max();
      for (std::size_t c = 0; c < k; ++c) {
        double d = dist2(p, &cent[c * D]);
        if (d < best_d) best_d = d, best = c;
      }
      for (std::size_t f = 0; f < D; ++f) acc[best * D + f] += p[f];
      acc[k * D + best] += 1;
      acc[k * D + k] += best_d;
    }
    const double epoch_compute = ms_since(t_compute);

    auto t_comm = Clock::now();
    comm.allreduce(local, global, sum);
    const double epoch_comm = ms_since(t_comm);
    if (epoch == 1) first_allreduce_ms = epoch_comm;

    // Every peer computes the same update from the same global sums, so all keep
    // identical centroids and stop at the same epoch without further messages.
    const auto& g = global.get();
    auto& next = centroids.ref();
    double shift = 0;
    for (std::size_t c = 0; c < k; ++c) {
      const double count = g[k * D + c];
      if (count == 0) continue;  // an empty cluster keeps its centroid
      double moved = 0;
      for (std::size_t f = 0; f < D; ++f) {
        double v = g[c * D + f] / count;
        moved += (v - next[c * D + f]) * (v - next[c * D + f]);
        next[c * D + f] = v;
      }
      shift = std::max(shift, std::sqrt(moved));
    }
    inertia = g[k * D + k];
    comm_ms += epoch_comm;
    compute_ms += epoch_compute;
    epochs = epoch;
    if (id == 0)
      std::printf(
          "epoch %3d  inertia %.6e  centroid shift %.3e  compute %7.2f ms  allreduce %7.3f ms\n",
          epoch, inertia, shift, epoch_compute, epoch_comm);
    if (shift < o.tol) {
      converged = true;
      break;
    }
  }

  if (id == 0) {
    std::printf(
        "\n%s after %d epochs; final centroids (first 8 of %zu features) vs true centres:\n",
        converged ? "converged" : "stopped (--epochs)", epochs, D);
    const auto& cent = centroids.get();
    for (std::size_t c = 0; c < k; ++c) {
      std::size_t nearest = 0;
      double nd = std::numeric_limits<double>::max();
      for (std::size_t t = 0; t < k; ++t) {
        double d = dist2(&cent[c * D], &truth.centres[t * D]);
        if (d < nd) nd = d, nearest = t;
      }
      std::printf("  centroid %zu (%9.0f points):", c, global.get()[k * D + c]);
      for (std::size_t f = 0; f < 8; ++f) std::printf(" %7.3f", cent[c * D + f]);
      std::printf(" ...  true centre %zu at distance %.4f\n", nearest, std::sqrt(nd));
    }
    std::printf(
        "\ncommunication: %.2f ms in %d allreduce (%.3f ms each on average, the first %.2f ms);"
        " before them %.2f ms communicator setup and %.2f ms bcast (the first exchange: it "
        "includes"
        " connecting)\n",
        comm_ms, epochs, comm_ms / epochs, first_allreduce_ms, setup_ms, bcast_ms);
    std::printf(
        "computation: %.2f ms; communication share %.1f%% (time in a collective includes waiting "
        "for"
        " the slowest function)\n",
        compute_ms, 100.0 * (comm_ms + bcast_ms) / (comm_ms + bcast_ms + compute_ms));
  } else {
    std::printf("peer %u: %zu points, %d epochs, %.2f ms in allreduce\n", id, o.points, epochs,
                comm_ms);
  }

  if (o.check) {
    // Same centroids everywhere: element-wise min and max over the peers agree.
    FMI::Comm::Data<std::vector<double>> lo(k * D), hi(k * D);
    comm.allreduce(centroids, lo, FMI::Utils::Function<std::vector<double>>::min());
    comm.allreduce(centroids, hi, FMI::Utils::Function<std::vector<double>>::max());
    bool ok = lo.get() == hi.get();
    if (!ok) std::fprintf(stderr, "kmeans: check: the peers ended with different centroids\n");
    // Each true centre recovered by its own centroid.
    std::vector<bool> used(k, false);
    for (std::size_t t = 0; t < k; ++t) {
      std::size_t best = k;
      double bd = 0.25;  // 0.5 squared
      for (std::size_t c = 0; c < k; ++c) {
        double d = dist2(&centroids.get()[c * D], &truth.centres[t * D]);
        if (!used[c] && d < bd) bd = d, best = c;
      }
      if (best == k) {
        ok = false;
        std::fprintf(stderr, "kmeans: check: no centroid within 0.5 of true centre %zu\n", t);
      } else {
        used[best] = true;
      }
    }
    check_ok = ok;
    if (ok && id == 0)
      std::printf(
          "check passed: identical centroids on all %u functions, every true centre found\n", n);
  }
  return {.epochs = epochs,
          .converged = converged,
          .inertia = inertia,
          .bcast_ms = bcast_ms,
          .comm_ms = comm_ms,
          .compute_ms = compute_ms,
          .check_ok = check_ok};
}

#ifdef FMI_WITH_LAMBDA
// The Lambda mode: one job per invocation, the options from the payload. (Built from
// parse_job and communicator() rather than job_handler() to time the setup.)
int serve_lambda() {
  return FMI::Lambda::serve([](const FMI::Lambda::Invocation& invocation) {
    const FMI::Lambda::Job job = FMI::Lambda::parse_job(invocation);
    const auto p = nlohmann::json::parse(job.payload);
    Options o;
    o.points = p.value("points", o.points);
    o.epochs = p.value("epochs", o.epochs);
    o.k = p.value("k", o.k);
    o.seed = p.value("seed", o.seed);
    o.tol = p.value("tol", o.tol);
    o.check = p.value("check", o.check);
    if (const char* why = invalid(o)) FMI_THROW(FMI::UsageError, "kmeans payload: ", why);
    const auto t_setup = Clock::now();
    auto comm = FMI::Lambda::communicator(job);
    const double setup_ms = ms_since(t_setup);
    const Result r = run(*comm, o, setup_ms);
    comm.reset();  // channels finalised before the result is posted
    if (!r.check_ok)
      FMI_THROW(FMI::Error, "kmeans: check failed on peer ", job.peer_id, " (see its log)");
    return nlohmann::json{{"peer_id", job.peer_id},     {"num_peers", job.num_peers},
                          {"epochs", r.epochs},         {"converged", r.converged},
                          {"inertia", r.inertia},       {"setup_ms", setup_ms},
                          {"bcast_ms", r.bcast_ms},     {"allreduce_ms", r.comm_ms},
                          {"compute_ms", r.compute_ms}, {"check", o.check}}
        .dump();
  });
}
#endif

}  // namespace

int main(int argc, char** argv) {
  // fmirun reads our output through a pipe: without line buffering, the progress
  // would only show up when the run ends.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc == 2 && std::string(argv[1]) == "--lambda") {
#ifdef FMI_WITH_LAMBDA
    try {
      return serve_lambda();
    } catch (const FMI::Error& e) {
      std::fprintf(stderr, "kmeans --lambda: %s\n", e.what());
      return 1;
    }
#else
    usage("--lambda: this FMI was built without FMI_WITH_LAMBDA");
#endif
  }
  const Options o = parse(argc, argv);
  const unsigned id = std::stoul(env("FMI_PEER_ID"));
  const unsigned n = std::stoul(env("FMI_NUM_PEERS"));

  try {
    auto t_setup = Clock::now();
    FMI::Communicator comm(id, n, env("FMI_CONFIG"), env("FMI_COMM_NAME"), 1024);
    const Result r = run(comm, o, ms_since(t_setup));
    if (!r.check_ok) return 3;
  } catch (const FMI::Error& e) {
    std::fprintf(stderr, "kmeans: peer %u: %s\n", id, e.what());
    return 1;
  }
  return 0;
}
