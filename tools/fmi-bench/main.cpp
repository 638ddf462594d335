// fmi-bench: latency, bandwidth and modelled cost of FMI's operations, per channel,
// peer count and message size (issue 8; docs/benchmarks.md).
//
//   fmi-bench --channel Direct --ops pingpong,allreduce --peers 2,4 --sizes 8,1K,1M
//   fmi-bench --channel Redis --config config/fmi.json --ops bcast --peers 8 --csv
//   fmi-bench --channel inproc --ops allreduce --peers 4      (threads, no launcher)
//   fmi-bench --channel Direct --ops mesh --peers 16 --nat    (full-mesh set-up, NAT lab)
//   fmi-bench --channel Direct --ops overlap --peers 2,4 --sizes 1M,64M   (non-blocking overlap)
//
// The driver launches the functions itself: for each peer count it runs
// `fmirun -n P --config TMP -- fmi-bench --worker ...`, where TMP is the given
// configuration with only the chosen backend enabled (the model section kept;
// `--channel policy` keeps the configuration as given). Peer 0 of the workers
// prints one machine-readable line per point; the driver prints a progress line on
// stderr and the results on stdout: a table, or --csv / --json.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.h"
#include "fmi/fmi.h"
#include "tools/common/cli.h"
#include "tools/common/fd.h"
#include "tools/common/paths.h"
#include "tools/common/temp_file.h"
#include "worker.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kRowTag = "FMIBENCH-ROW,";
constexpr const char* kProgressTag = "FMIBENCH-PROGRESS ";

struct Options {
  std::string config;
  std::string channel = "Direct";
  std::string ops = "pingpong,bandwidth,bcast,barrier,allreduce";
  std::string peers = "2,4,8";
  std::string sizes = "8,1K,64K,1M,64M";
  std::size_t iters = 1000, warmup = 10, min_iters = 5;
  double budget_s = 1.0;
  std::string max_buffer = "512M";
  unsigned memory = 128;
  std::string hint = "cheap";
  bool csv = false, json_out = false, quiet = false, nat = false;
  unsigned timeout_s = 1800;
  std::string fmirun;
  // worker side
  bool worker = false;
  std::string label;
};

fmibench::WorkerOptions worker_options(const Options& o) {
  fmibench::WorkerOptions w;
  w.ops = FMI::Tools::split(o.ops);
  for (const auto& op : w.ops)
    if (std::find(fmibench::all_ops().begin(), fmibench::all_ops().end(), op) ==
        fmibench::all_ops().end())
      throw std::invalid_argument("unknown operation '" + op + "' in --ops");
  w.sizes = FMI::Tools::parse_sizes(o.sizes);
  w.iters = o.iters;
  w.min_iters = std::min(o.min_iters, o.iters);
  w.warmup = o.warmup;
  w.budget_s = o.budget_s;
  w.max_buffer = FMI::Tools::parse_size(o.max_buffer);
  w.faas_memory = o.memory;
  w.channel_label = o.label;
  return w;
}

FMI::Utils::Hint parse_hint(const std::string& h) {
  if (h == "fast") return FMI::Utils::Hint::fast;
  if (h == "cheap") return FMI::Utils::Hint::cheap;
  throw std::invalid_argument("--hint must be fast or cheap, not '" + h + "'");
}

// ---- worker mode: one function started by fmirun ---------------------------

unsigned env_number(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v)
    throw std::runtime_error(std::string("fmi-bench --worker: $") + name +
                             " is not set (run the workers through fmirun)");
  return static_cast<unsigned>(std::stoul(v));
}

int run_worker_process(const Options& o) {
  const unsigned me = env_number("FMI_PEER_ID");
  const unsigned n = env_number("FMI_NUM_PEERS");
  const char* name = std::getenv("FMI_COMM_NAME");
  const char* config = std::getenv("FMI_CONFIG");
  if (!config || !*config) throw std::runtime_error("fmi-bench --worker: $FMI_CONFIG is not set");
  auto wopt = worker_options(o);
  FMI::Communicator comm(me, n, std::string(config), name && *name ? name : "fmi-bench", o.memory);
  comm.hint(parse_hint(o.hint));
  fmibench::WorkerEvents ev;
  ev.row = [](const fmibench::Row& r) {
    std::printf("%s%s\n", kRowTag, fmibench::to_csv(r).c_str());
    std::fflush(stdout);
  };
  ev.progress = [](const std::string& op, std::size_t bytes, const std::string& skipped) {
    std::printf("%s%s %zu %s\n", kProgressTag, op.c_str(), bytes, skipped.c_str());
    std::fflush(stdout);
  };
  fmibench::run_worker(comm, wopt, ev);
  return 0;
}

// ---- output ------------------------------------------------------------------

class Output {
 public:
  explicit Output(const Options& o) : o_(o) {}
  void begin() {
    if (o_.json_out) return;
    std::cout << (o_.csv ? fmibench::csv_header() : fmibench::table_header()) << std::endl;
  }
  void row(const fmibench::Row& r) {
    std::lock_guard lock(mu_);
    rows_.push_back(r);
    if (o_.json_out) return;
    std::cout << (o_.csv ? fmibench::to_csv(r) : fmibench::to_table(r)) << std::endl;
  }
  void end() {
    if (!o_.json_out) return;
    json arr = json::array();
    for (const auto& r : rows_) {
      json j = {{"tool", r.tool},           {"op", r.op},         {"channel", r.channel},
                {"peers", r.peers},         {"bytes", r.bytes},   {"iters", r.iters},
                {"median_us", r.median_us}, {"p90_us", r.p90_us}, {"min_us", r.min_us},
                {"bw_MiBps", r.bw_mibps}};
      j["pred_us"] = r.pred_us < 0 ? json(nullptr) : json(r.pred_us);
      j["pred_usd"] = r.pred_usd < 0 ? json(nullptr) : json(r.pred_usd);
      arr.push_back(std::move(j));
    }
    std::cout << arr.dump(2) << std::endl;
  }

 private:
  const Options& o_;
  std::mutex mu_;
  std::vector<fmibench::Row> rows_;
};

class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(::isatty(2)) {}
  void show(const std::string& text) {
    if (quiet_) return;
    if (tty_)
      std::fprintf(stderr, "\r\033[K[fmi-bench] %s", text.c_str());
    else
      std::fprintf(stderr, "[fmi-bench] %s\n", text.c_str());
    std::fflush(stderr);
  }
  void note(const std::string& text) {
    clear();
    std::fprintf(stderr, "[fmi-bench] %s\n", text.c_str());
  }
  void clear() {
    if (tty_ && !quiet_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  bool quiet_, tty_;
};

// ---- in-process mode: peers are threads over FMI's in-process channels --------

int run_inproc(const Options& o, const std::vector<unsigned>& peer_counts, Output& out,
               Progress& progress) {
  const bool store = o.channel == "inproc-store";
  auto wopt = worker_options(o);
  wopt.channel_label = o.channel;
  int failures = 0;
  for (unsigned n : peer_counts) {
    FMI::Comm::InProcessHub hub(n, std::chrono::seconds(120));
    std::vector<std::exception_ptr> errors(n);
    std::vector<std::thread> threads;
    fmibench::WorkerEvents ev;
    ev.row = [&](const fmibench::Row& r) { out.row(r); };
    ev.progress = [&](const std::string& op, std::size_t bytes, const std::string& skipped) {
      if (skipped.empty())
        progress.show(o.channel + ", " + std::to_string(n) + " peers: " + op + " " +
                      FMI::Tools::format_size_compact(bytes));
      else
        progress.note("skipped " + op + " " + FMI::Tools::format_size_compact(bytes) + " on " +
                      std::to_string(n) + " peers: " + skipped);
    };
    for (unsigned i = 0; i < n; ++i) {
      std::shared_ptr<FMI::Comm::Channel> ep;
      if (store)
        ep = hub.store_endpoint();
      else
        ep = hub.p2p_endpoint();
      threads.emplace_back([&, i, ep] {
        try {
          FMI::Config cfg;  // no backend: only the in-process channel
          FMI::Communicator comm(i, n, cfg, "fmi-bench", o.memory);
          comm.register_channel(o.channel, ep);
          comm.hint(parse_hint(o.hint));
          fmibench::run_worker(comm, wopt, ev);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (unsigned i = 0; i < n; ++i) {
      if (!errors[i]) continue;
      ++failures;
      try {
        std::rethrow_exception(errors[i]);
      } catch (const std::exception& e) {
        progress.note("peer " + std::to_string(i) + " of " + std::to_string(n) +
                      " failed: " + e.what());
      }
    }
  }
  progress.clear();
  return failures ? 1 : 0;
}

// ---- driver: one fmirun per peer count --------------------------------------

fs::path self_exe() {
  fs::path p = FMI::Tools::self_exe();
  if (p.empty()) throw std::runtime_error("cannot read /proc/self/exe");
  return p;
}

std::string find_fmirun(const Options& o) {
  if (!o.fmirun.empty()) return o.fmirun;
  if (const char* e = std::getenv("FMIRUN"); e && *e) return e;
  fs::path dir = self_exe().parent_path();
  for (fs::path cand : {dir / ".." / "fmirun" / "fmirun", dir / "fmirun"})
    if (FMI::Tools::is_executable(cand)) return fs::weakly_canonical(cand).string();
  return "fmirun";  // from PATH (execvp)
}

std::uint16_t free_tcp_port() {
  FMI::Tools::Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  if (!fd) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error(std::string("bind 127.0.0.1:0: ") + std::strerror(errno));
  return ntohs(a.sin_port);
}

std::string default_config() {
  if (const char* e = std::getenv("FMI_CONFIG"); e && *e) return e;
#ifdef FMI_BENCH_DEFAULT_CONFIG
  return FMI_BENCH_DEFAULT_CONFIG;
#else
  return "config/fmi.json";
#endif
}

// The configuration the functions get: only the chosen backend enabled, and a
// free port for a local rendezvous server so that runs never share one.
class TempConfig {
 public:
  TempConfig(const std::string& source, const std::string& channel) {
    std::ifstream in(source);
    if (!in) throw std::runtime_error("cannot read configuration " + source);
    json j;
    try {
      j = json::parse(in);
    } catch (const json::exception& e) {
      throw std::runtime_error("bad JSON in " + source + ": " + e.what());
    }
    if (!j.contains("backends") || !j["backends"].is_object())
      throw std::runtime_error(source + ": no \"backends\" section");
    auto& b = j["backends"];
    if (channel != "policy") {
      if (!b.contains(channel))
        throw std::runtime_error(source + ": no backends." + channel +
                                 " section to benchmark (--channel " + channel + ")");
      for (auto& [name, sec] : b.items())
        if (sec.is_object()) sec["enabled"] = name == channel;
    }
    if (b.contains("Direct") && b["Direct"].is_object()) {
      auto& d = b["Direct"];
      std::string host = d.value("host", "");
      bool on = d.contains("enabled") && (d["enabled"] == true || d["enabled"] == "true");
      if (on && (host == "127.0.0.1" || host == "localhost")) d["port"] = free_tcp_port();
    }
    file_.emplace("fmi-bench", ".json", j.dump(2));
  }
  const std::string& path() const { return file_->path(); }

 private:
  std::optional<FMI::Tools::TempFile> file_;
};

// Runs fmirun for one peer count; returns its exit status.
int run_fmirun(const Options& o, const std::string& fmirun, const std::string& config, unsigned n,
               Output& out, Progress& progress) {
  std::vector<std::string> args = {fmirun, "-n",        std::to_string(n),          "--config",
                                   config, "--timeout", std::to_string(o.timeout_s)};
  if (o.nat) args.push_back("--nat");
  std::string sizes;
  for (auto s : FMI::Tools::parse_sizes(o.sizes))
    sizes += (sizes.empty() ? "" : ",") + std::to_string(s);
  args.insert(args.end(), {"--",
                           self_exe().string(),
                           "--worker",
                           "--ops",
                           o.ops,
                           "--sizes",
                           sizes,
                           "--iters",
                           std::to_string(o.iters),
                           "--min-iters",
                           std::to_string(o.min_iters),
                           "--warmup",
                           std::to_string(o.warmup),
                           "--budget",
                           std::to_string(o.budget_s),
                           "--max-buffer",
                           o.max_buffer,
                           "--memory",
                           std::to_string(o.memory),
                           "--hint",
                           o.hint});
  if (o.channel != "policy") args.insert(args.end(), {"--label", o.channel});

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::cout.flush();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "fmi-bench: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(pipefd[1]);
  FILE* f = ::fdopen(pipefd[0], "r");
  char* line = nullptr;
  std::size_t cap = 0;
  ssize_t len;
  while ((len = ::getline(&line, &cap, f)) > 0) {
    std::string s(line, static_cast<std::size_t>(len));
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    if (auto p = s.find(kRowTag); p != std::string::npos) {
      fmibench::Row r;
      if (fmibench::from_csv(s.substr(p + std::strlen(kRowTag)), r)) {
        progress.clear();
        out.row(r);
        continue;
      }
    }
    if (auto p = s.find(kProgressTag); p != std::string::npos) {
      auto f2 = FMI::Tools::split(s.substr(p + std::strlen(kProgressTag)), ' ');
      if (f2.size() >= 2) {
        std::string what = f2[0] + " " + FMI::Tools::format_size_compact(std::stoull(f2[1]));
        if (f2.size() > 2) {
          std::string why = s.substr(s.find(f2[2], p));
          progress.note("skipped " + what + " on " + std::to_string(n) + " peers: " + why);
        } else {
          progress.show(o.channel + ", " + std::to_string(n) + " peers: " + what);
        }
        continue;
      }
    }
    progress.clear();
    std::fprintf(stderr, "%s\n", s.c_str());  // the functions' own output and errors
  }
  std::free(line);
  std::fclose(f);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int run_driver(const Options& o) {
  std::vector<unsigned> peer_counts;
  for (const auto& p : FMI::Tools::split(o.peers)) {
    unsigned long v = std::stoul(p);
    if (v == 0 || v > 4096) throw std::invalid_argument("bad peer count '" + p + "' in --peers");
    peer_counts.push_back(static_cast<unsigned>(v));
  }
  worker_options(o);  // validates --ops, --sizes, --max-buffer before launching anything
  parse_hint(o.hint);
  Output out(o);
  Progress progress(o.quiet);
  out.begin();
  int rc = 0;
  if (o.channel == "inproc" || o.channel == "inproc-store") {
    rc = run_inproc(o, peer_counts, out, progress);
  } else {
    const std::string fmirun = find_fmirun(o);
    const std::string config = o.config.empty() ? default_config() : o.config;
    for (unsigned n : peer_counts) {
      TempConfig tmp(config, o.channel);  // fresh rendezvous port per run
      progress.show(o.channel + ", " + std::to_string(n) + " peers: starting");
      int st = run_fmirun(o, fmirun, tmp.path(), n, out, progress);
      if (st != 0) {
        progress.note("the run with " + std::to_string(n) + " peers failed (fmirun exit " +
                      std::to_string(st) + ")");
        rc = 1;
      }
    }
    progress.clear();
  }
  out.end();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fmi-bench: latency, bandwidth and modelled cost of FMI's operations"};
  Options o;
  app.add_option(
      "--config", o.config,
      "FMI configuration (default: $FMI_CONFIG, then the source tree's config/fmi.json)");
  app.add_option("--channel", o.channel,
                 "Direct, Redis, S3 (only that backend enabled), policy (the config as given), "
                 "inproc or inproc-store (threads, no launcher)")
      ->check(CLI::IsMember({"Direct", "Redis", "S3", "policy", "inproc", "inproc-store"}));
  app.add_option("--ops", o.ops,
                 "comma-separated: pingpong,bandwidth,bcast,barrier,gather,scatter,reduce,"
                 "allreduce,scan,allgather,alltoall,reduce_scatter,alltoallv (skewed: peer 0 "
                 "sends most, bench_common.h),mesh (set-up of a new "
                 "communicator: registration and every connection),overlap (compute + "
                 "iallreduce + wait against its parts; e.g. --peers 2,4 --sizes 1M,64M)");
  app.add_option("--peers", o.peers, "comma-separated peer counts");
  app.add_option("--sizes", o.sizes, "bytes per peer, comma-separated, K/M/G suffixes");
  app.add_option("--iters", o.iters, "most timed iterations per point")->check(CLI::PositiveNumber);
  app.add_option("--min-iters", o.min_iters, "fewest timed iterations per point");
  app.add_option("--warmup", o.warmup, "warm-up iterations per point");
  app.add_option("--budget", o.budget_s, "seconds of timed iterations per point (approx.)");
  app.add_option("--max-buffer", o.max_buffer, "skip points needing more memory per peer");
  app.add_option("--memory", o.memory, "function memory in MiB (cost model)");
  app.add_option("--hint", o.hint, "policy hint: fast or cheap");
  app.add_option("--timeout", o.timeout_s, "seconds before fmirun ends a run");
  app.add_option("--fmirun", o.fmirun,
                 "path of fmirun (default: $FMIRUN, next to fmi-bench, PATH)");
  app.add_flag("--nat", o.nat, "run the functions behind NATs (fmirun --nat, root)");
  auto* csv = app.add_flag("--csv", o.csv, "CSV output");
  app.add_flag("--json", o.json_out, "JSON output")->excludes(csv);
  app.add_flag("-q,--quiet", o.quiet, "no progress line");
  app.add_flag("--worker", o.worker, "internal: run as one function (started by fmirun)")
      ->group("");
  app.add_option("--label", o.label, "internal: channel name printed in rows")->group("");
  CLI11_PARSE(app, argc, argv);
  try {
    if (o.worker) return run_worker_process(o);
    return run_driver(o);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "fmi-bench%s: %s\n", o.worker ? " (worker)" : "", e.what());
    return 1;
  }
}
