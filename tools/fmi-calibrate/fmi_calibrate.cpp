// fmi-calibrate: measures the enabled channels on this deployment and writes the
// "model" parameters the channel policy uses (see docs/policy.md, "Calibration").
//
//   fmi-calibrate --config config/fmi.json --out calibrated.json
//   fmi-calibrate --config config/fmi.json --sizes 1K,1M,8M --reps 20 --channels Redis
//   fmi-calibrate --config config/fmi.json --inproc --out /tmp/x.json   (self-test)
//
// For every enabled channel, two peers (threads of this process, each with its own
// Communicator holding only that channel) ping-pong messages over a size sweep; the
// median one-way time per size is fitted by least squares to
//     latency = overhead + size / bandwidth
// and overhead (ms) and bandwidth (MiB/s) are written into the channel's "model"
// section. Redis also gets bandwidth_multiple from a 1 -> 3 broadcast among 4 peers.
// Prices and everything else in the file are kept. A channel that cannot be set up
// or fails while measuring is skipped with a message; its parameters stay as they were.
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <latch>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "channels/direct/config.h"
#include "channels/redis/config.h"
#include "channels/s3/config.h"
#include "fmi/fmi.h"
#include "fmi/model.h"
#include "tools/common/cli.h"

namespace {

using Clock = std::chrono::steady_clock;
using FMI::Utils::peer_num;
constexpr double kMiB = 1024.0 * 1024.0;

// How to give one peer a Communicator whose only channel is the one measured.
struct Target {
  std::string name;  // "Direct", "Redis", "S3": the model section written
  std::function<std::unique_ptr<FMI::Communicator>(peer_num id, peer_num n,
                                                   const std::string& comm)>
      make;
};

// Runs `body` on n peers (threads). Communicators are all created before any peer
// starts, so a peer whose set-up failed never leaves the others waiting for it.
// Returns the first error ("peer i: what"), or an empty string.
std::string run_group(const Target& t, peer_num n, const std::string& comm_name,
                      const std::function<void(FMI::Communicator&)>& body) {
  std::vector<std::string> errors(n);
  std::atomic<bool> setup_failed{false};
  std::latch ready(n);
  std::vector<std::thread> threads;
  for (peer_num id = 0; id < n; ++id)
    threads.emplace_back([&, id] {
      std::unique_ptr<FMI::Communicator> comm;
      try {
        comm = t.make(id, n, comm_name);
        if (!comm->channels().count(t.name))
          throw std::runtime_error("channel " + t.name + " is not available in this build");
      } catch (const std::exception& e) {
        errors[id] = e.what();
        setup_failed = true;
      }
      ready.arrive_and_wait();
      if (setup_failed) return;
      try {
        body(*comm);
      } catch (const std::exception& e) {
        errors[id] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (peer_num id = 0; id < n; ++id)
    if (!errors[id].empty()) return "peer " + std::to_string(id) + ": " + errors[id];
  return "";
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

struct Line {
  double intercept = 0, slope = 0;
};

// y = intercept + slope x for sizes x sorted ascending. The slope (1 / bandwidth)
// is the ordinary least-squares slope, which the large sizes decide. The
// intercept (overhead) is what the smallest size's time leaves unexplained by
// that slope: an ordinary fit over sizes spanning orders of magnitude often gives
// a meaningless (negative) intercept, and the overhead matters for small messages.
Line fit(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = double(x.size());
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < x.size(); ++i) mx += x[i] / n, my += y[i] / n;
  double sxy = 0, sxx = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
  }
  Line l;
  l.slope = sxx > 0 ? sxy / sxx : 0;
  l.intercept = y[0] - std::max(0.0, l.slope) * x[0];
  if (l.intercept <= 0) l.intercept = y[0];
  return l;
}

struct Measured {
  std::vector<double> sizes, seconds;  // median one-way time per size
};

// Ping-pong between peers 0 and 1: half the round trip is one exchange.
std::string ping_pong(const Target& t, const std::vector<std::size_t>& sizes, int reps,
                      const std::string& comm, Measured& out) {
  std::vector<std::vector<double>> times(sizes.size());
  const std::string err = run_group(t, 2, comm, [&](FMI::Communicator& c) {
    std::vector<std::byte> buf(*std::max_element(sizes.begin(), sizes.end()));
    auto exchange = [&](std::size_t s) {
      FMI::Comm::Bytes b(buf.data(), s);
      if (c.peer_id() == 0) {
        c.send_bytes(b, 1);
        c.recv_bytes(b, 1);
      } else {
        c.recv_bytes(b, 0);
        c.send_bytes(b, 0);
      }
    };
    exchange(sizes.front());  // warm-up: connections, first requests
    for (std::size_t i = 0; i < sizes.size(); ++i)
      for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        exchange(sizes[i]);
        if (c.peer_id() == 0)
          times[i].push_back(std::chrono::duration<double>(Clock::now() - t0).count() / 2);
      }
  });
  if (!err.empty()) return err;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    out.sizes.push_back(double(sizes[i]));
    out.seconds.push_back(median(times[i]));
  }
  return "";
}

// A broadcast from peer 0 to 3 others: time from the root's start until the last
// peer holds the data.
std::string fan_out(const Target& t, const std::vector<std::size_t>& sizes, int reps,
                    const std::string& comm, Measured& out) {
  constexpr peer_num n = 4;
  std::vector<std::vector<double>> times(sizes.size());
  std::atomic<std::int64_t> start{0};
  std::vector<std::atomic<std::int64_t>> done(n);
  const std::string err = run_group(t, n, comm, [&](FMI::Communicator& c) {
    std::vector<std::byte> buf(*std::max_element(sizes.begin(), sizes.end()));
    c.bcast_bytes(FMI::Comm::Bytes(buf.data(), sizes.front()), 0);  // warm-up
    for (std::size_t i = 0; i < sizes.size(); ++i)
      for (int r = 0; r < reps; ++r) {
        c.barrier();
        if (c.peer_id() == 0) start = Clock::now().time_since_epoch().count();
        c.bcast_bytes(FMI::Comm::Bytes(buf.data(), sizes[i]), 0);
        done[c.peer_id()] = Clock::now().time_since_epoch().count();
        c.barrier();
        if (c.peer_id() == 0) {
          std::int64_t last = 0;
          for (peer_num p = 1; p < n; ++p) last = std::max<std::int64_t>(last, done[p]);
          times[i].push_back(
              std::chrono::duration<double>(Clock::duration(last - start.load())).count());
        }
      }
  });
  if (!err.empty()) return err;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    out.sizes.push_back(double(sizes[i]));
    out.seconds.push_back(median(times[i]));
  }
  return "";
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

// What one channel's calibration measured and wrote.
struct Result {
  std::string name;
  Measured ping, fan;                     // fan: Redis's 1 -> 3 bcast (may be empty)
  std::map<std::string, double> written;  // model fields set from the measurement
  // The fitted line of the ping-pong, seconds = intercept + slope x bytes, when a
  // slope was written (the model must then predict exactly this line).
  bool has_line = false;
  double intercept = 0, slope = 0;
};

// The value of a written model field as the model reads it back from the config.
double read_back(const FMI::Config& c, const std::string& channel, const std::string& field) {
  if (channel == "Direct") {
    const auto& m = c.section<FMI::Comm::DirectConfig>().model;
    return field == "overhead" ? m.overhead : m.bandwidth;
  }
  if (channel == "Redis") {
    const auto& m = c.section<FMI::Comm::RedisConfig>().model;
    return field == "overhead"           ? m.overhead
           : field == "bandwidth_single" ? m.bandwidth_single
                                         : m.bandwidth_multiple;
  }
  const auto& m = c.section<FMI::Comm::S3Config>().model;
  return field == "overhead" ? m.overhead : m.bandwidth;
}

// The round trip: the config as written must give the model exactly the fitted
// values (same units: ms and MiB/s), and the model's prediction for each measured
// exchange is printed next to the measurement. Returns false on a mismatch.
bool check_and_compare(const std::string& text, const std::string& source,
                       const std::vector<Result>& results, std::ostream& report) {
  const FMI::Config loaded = FMI::Config::parse(text, source);
  bool ok = true;
  for (const auto& r : results) {
    for (const auto& [field, value] : r.written) {
      const double got = read_back(loaded, r.name, field);
      if (got != value) {
        std::cerr << "fmi-calibrate: model." << r.name << "." << field << " reads back as " << got
                  << ", wrote " << value << '\n';
        ok = false;
      }
    }
    const auto model = FMI::Comm::make_builtin_model(r.name, loaded);
    if (!model) continue;
    report << r.name << ": measured one way vs the model's latency(1 -> 1) from the written config"
           << (r.name == "S3" ? " (the model adds the poll delay of backends.S3.timeout)" : "")
           << '\n';
    auto table = [&](const Measured& m, unsigned consumers) {
      for (std::size_t i = 0; i < m.sizes.size(); ++i) {
        const double predicted = model->latency(1, consumers, std::size_t(m.sizes[i]));
        report << "  " << FMI::Tools::format_size(std::size_t(m.sizes[i])) << ": measured "
               << fmt(m.seconds[i] * 1e3) << " ms, model " << fmt(predicted * 1e3) << " ms\n";
      }
    };
    // Units end to end: overhead written in ms and bandwidth in MiB/s must make the
    // model (which reads ms and MiB/s) predict the fitted line in seconds.
    if (r.has_line && r.name != "S3")  // S3's model adds the poll delay on top
      for (double x : r.ping.sizes) {
        const double line = r.intercept + r.slope * x;
        const double predicted = model->latency(1, 1, std::size_t(x));
        if (std::abs(predicted - line) > 1e-9 * line) {
          std::cerr << "fmi-calibrate: " << r.name << " model predicts " << predicted << " s for "
                    << x << " bytes, the fit " << line << " s\n";
          ok = false;
        }
      }
    table(r.ping, 1);
    if (!r.fan.sizes.empty()) {
      report << r.name << ": measured 1 -> 3 bcast vs the model's latency(1 -> 3)\n";
      table(r.fan, 3);
    }
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fmi-calibrate: measures the enabled channels and writes the \"model\" "
      "parameters (overhead, bandwidth) into a config file (see docs/policy.md)"};
  std::string config_path, out_path, sizes_arg = "1K,64K,256K,1M,4M", channels_arg;
  int reps = 10;
  bool inproc = false;
  app.add_option("--config", config_path, "configuration file to start from")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--out", out_path, "file to write (default: print the new config)");
  app.add_option("--sizes", sizes_arg, "comma-separated message sizes (8, 1K, 1M, ...)");
  app.add_option("--reps", reps, "repetitions per size (the median is used)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--channels", channels_arg,
                 "only these enabled channels (Direct, Redis, S3; default: all enabled)");
  app.add_flag("--inproc", inproc,
               "self-test: measure the in-process channels instead and write their fit "
               "as Direct (point-to-point) and Redis (object store)");
  CLI11_PARSE(app, argc, argv);

  FMI::Config config;
  nlohmann::ordered_json doc;  // keeps the file's key order
  std::vector<std::size_t> sizes;
  try {
    config = FMI::Config::load(config_path);
    std::ifstream in(config_path);
    doc = nlohmann::ordered_json::parse(in);
    sizes = FMI::Tools::parse_sizes<FMI::UsageError>(sizes_arg);
  } catch (const std::exception& e) {
    std::cerr << "fmi-calibrate: " << e.what() << '\n';
    return 1;
  }
  if (sizes.size() < 2) {
    std::cerr << "fmi-calibrate: --sizes needs at least two sizes for a fit\n";
    return 1;
  }
  std::sort(sizes.begin(), sizes.end());
  const std::vector<std::string> only = FMI::Tools::split_list(channels_arg);
  auto wanted = [&](const std::string& n) {
    return only.empty() || std::find(only.begin(), only.end(), n) != only.end();
  };

  std::vector<Target> targets;
  if (inproc) {
    auto make = [&config](bool p2p) {
      // Each group gets a fresh hub sized for it: the first peer of a group creates it.
      auto hubs =
          std::make_shared<std::map<std::string, std::shared_ptr<FMI::Comm::InProcessHub>>>();
      auto mu = std::make_shared<std::mutex>();
      return [&config, p2p, hubs, mu](peer_num id, peer_num n, const std::string& comm) {
        std::shared_ptr<FMI::Comm::InProcessHub> h;
        {
          std::lock_guard<std::mutex> lock(*mu);
          auto& slot = (*hubs)[comm];
          if (!slot) slot = std::make_shared<FMI::Comm::InProcessHub>(n, std::chrono::seconds(30));
          h = slot;
        }
        FMI::Config none = config;
        for (const auto& name : none.channel_names()) none.set_enabled(name, false);
        auto c = std::make_unique<FMI::Communicator>(id, n, none, comm);
        if (p2p)
          c->register_channel("Direct", h->p2p_endpoint());
        else
          c->register_channel("Redis", h->store_endpoint());
        return c;
      };
    };
    if (wanted("Direct")) targets.push_back({"Direct", make(true)});
    if (wanted("Redis")) targets.push_back({"Redis", make(false)});
  } else {
    // The enabled channels that have a model to calibrate.
    for (const auto& name : config.channel_names()) {
      if (!config.enabled(name) || !FMI::Comm::make_builtin_model(name, config) || !wanted(name))
        continue;
      std::string ch = name;
      targets.push_back({ch, [&config, ch](peer_num id, peer_num n, const std::string& comm) {
                           // Only the measured channel, so the policy has no choice.
                           FMI::Config one = config;
                           for (const auto& other : one.channel_names())
                             one.set_enabled(other, other == ch);
                           return std::make_unique<FMI::Communicator>(id, n, one, comm);
                         }});
    }
  }
  if (targets.empty()) {
    std::cerr << "fmi-calibrate: no channel to measure (enable a backend in " << config_path
              << (only.empty() ? "" : " or fix --channels") << ")\n";
    return 1;
  }

  std::ostream& report = out_path.empty() ? std::cerr : std::cout;
  int calibrated = 0;
  std::vector<Result> results;
  const std::string run = "fmi-calibrate-" + std::to_string(::getpid());
  for (const auto& t : targets) {
    report << t.name << ": ping-pong over " << sizes.size() << " sizes x " << reps << " reps\n";
    Measured m;
    std::string err = ping_pong(t, sizes, reps, run + "-" + t.name, m);
    if (!err.empty()) {
      report << t.name << ": skipped (" << err << ")\n";
      continue;
    }
    for (std::size_t i = 0; i < m.sizes.size(); ++i)
      report << "  " << FMI::Tools::format_size(std::size_t(m.sizes[i])) << ": "
             << fmt(m.seconds[i] * 1e3) << " ms one way\n";
    const Line l = fit(m.sizes, m.seconds);
    auto& section = doc["model"][t.name];
    Result res{t.name, m, {}, {}};
    // The model's units: overhead in ms, bandwidths in MiB/s (2^20 bytes per s).
    const double overhead_ms = std::max(0.0, l.intercept) * 1e3;
    section["overhead"] = res.written["overhead"] = overhead_ms;
    std::string summary = "overhead " + fmt(overhead_ms) + " ms";
    const char* bw_field = t.name == "Redis" ? "bandwidth_single" : "bandwidth";
    if (l.slope > 0) {
      section[bw_field] = res.written[bw_field] = 1.0 / (l.slope * kMiB);
      res.has_line = true;
      res.intercept = overhead_ms / 1e3;
      res.slope = l.slope;
      summary += ", " + std::string(bw_field) + " " + fmt(1.0 / (l.slope * kMiB)) + " MiB/s";
    } else {
      summary +=
          ", " + std::string(bw_field) + " kept (time does not grow with size: use larger --sizes)";
    }
    if (t.name == "Redis") {
      Measured f;
      err = fan_out(t, sizes, reps, run + "-" + t.name + "-fanout", f);
      const Line lf = err.empty() ? fit(f.sizes, f.seconds) : Line{};
      if (!err.empty())
        summary += ", bandwidth_multiple kept (" + err + ")";
      else if (lf.slope > 0) {
        // 1 -> 3 moves 3 x size through the server: slope = 3 / bandwidth_multiple.
        section["bandwidth_multiple"] = res.written["bandwidth_multiple"] = 3.0 / (lf.slope * kMiB);
        res.fan = f;
        summary += ", bandwidth_multiple " + fmt(3.0 / (lf.slope * kMiB)) + " MiB/s";
      } else {
        summary += ", bandwidth_multiple kept (time does not grow with size)";
      }
    }
    // Keep every price: write the loaded values where the file had no section.
    auto keep = [&section](const char* k, double v) {
      if (!section.contains(k)) section[k] = v;
    };
    if (t.name == "Direct") {
      const auto& p = config.section<FMI::Comm::DirectConfig>().model;
      keep("bandwidth", p.bandwidth);
      keep("transfer_price", p.transfer_price);
      keep("vm_price", p.vm_price);
      keep("requests_per_hour", p.requests_per_hour);
      if (!section.contains("include_infrastructure_costs"))
        section["include_infrastructure_costs"] = p.include_infrastructure_costs;
    } else if (t.name == "Redis") {
      const auto& p = config.section<FMI::Comm::RedisConfig>().model;
      keep("bandwidth_single", p.bandwidth_single);
      keep("bandwidth_multiple", p.bandwidth_multiple);
      keep("transfer_price", p.transfer_price);
      keep("instance_price", p.instance_price);
      keep("requests_per_hour", p.requests_per_hour);
      if (!section.contains("include_infrastructure_costs"))
        section["include_infrastructure_costs"] = p.include_infrastructure_costs;
    } else {
      const auto& p = config.section<FMI::Comm::S3Config>().model;
      keep("bandwidth", p.bandwidth);
      keep("transfer_price", p.transfer_price);
      keep("download_price", p.download_price);
      keep("upload_price", p.upload_price);
    }
    if (!doc["model"].contains("FaaS"))
      doc["model"]["FaaS"]["gib_second_price"] = config.model.faas.gib_second_price;
    report << t.name << ": " << summary << '\n';
    results.push_back(std::move(res));
    ++calibrated;
  }

  if (calibrated == 0) {
    std::cerr << "fmi-calibrate: no channel could be measured; nothing written\n";
    return 2;
  }
  const std::string text = doc.dump(2) + "\n";
  try {
    if (!check_and_compare(text, out_path.empty() ? "<output>" : out_path, results, report)) {
      std::cerr << "fmi-calibrate: the written config does not give the model the measured "
                   "values; nothing written\n";
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "fmi-calibrate: the written config does not load: " << e.what() << '\n';
    return 1;
  }
  if (out_path.empty()) {
    std::cout << text;
  } else {
    std::ofstream out(out_path);
    out << text;
    out.close();
    if (!out) {
      std::cerr << "fmi-calibrate: cannot write " << out_path << '\n';
      return 1;
    }
    try {
      FMI::Config::load(out_path);  // what we wrote must load
    } catch (const std::exception& e) {
      std::cerr << "fmi-calibrate: the written config does not load: " << e.what() << '\n';
      return 1;
    }
    report << "wrote " << out_path << '\n';
  }
  return 0;
}
