// fmirun: starts N FMI functions as local processes, in the spirit of mpirun.
//
//   fmirun -n 4 --config config/fmi.json -- build/examples/kmeans
//   fmirun -n 4 --config config/fmi.json --nat -- build/examples/hello   (root)
//
// Each function gets FMI_PEER_ID, FMI_NUM_PEERS, FMI_COMM_NAME and FMI_CONFIG in its
// environment. When the configuration enables the Direct channel on a local host and
// nothing listens on its port, fmirun starts fmi-rendezvous itself for the run. Output
// is forwarded line by line as "[peer i] ...". The first function that fails (non-zero
// exit or signal) ends the run: the others get SIGTERM, then SIGKILL after a grace
// period, and fmirun exits non-zero naming the peer. With --nat every function runs in
// its own network namespace behind its own NAT router (scripts/natlab.sh), and the
// rendezvous server in the lab's "public" namespace. See docs/fmirun.md.
//
// This file is the launcher: options, configuration, helper lookup and the flow of
// a run. Child processes (spawning, signals, output) are in process.{h,cpp}, the
// NAT lab in natlab.{h,cpp}.
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "lambda.h"
#include "natlab.h"
#include "process.h"
#include "setup.h"
#include "tools/common/temp_file.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace fmirun {
namespace {

// The configuration the functions see when fmirun rewrites it (--nat,
// --rendezvous-port): a temporary file removed on every way out.
class TempFile {
 public:
  explicit TempFile(const std::string& content) try : file_("fmirun-config", ".json", content) {
  } catch (const std::exception& e) {
    throw SetupError(e.what());
  }
  const std::string& path() const { return file_.path(); }

 private:
  FMI::Tools::TempFile file_;
};

// ---- the run -----------------------------------------------------------------

struct Options {
  int n = 1;
  std::string config;
  std::string name;
  bool nat = false;
  bool symmetric = false;
  double timeout_s = 0;
  double grace_s = 3;
  int rendezvous_port = -1;  // -1: the config's; 0: any free port
  bool verbose = false;
  std::string rendezvous;
  std::string natlab;
  std::vector<std::string> command;
};

class Launcher {
 public:
  explicit Launcher(const Options& o) : opt_(o) {}
  // On an error half way through, nothing we started may outlive us.
  ~Launcher() { kill_all(); }
  Launcher(const Launcher&) = delete;
  Launcher& operator=(const Launcher&) = delete;

  int run();

 private:
  std::uint16_t start_rendezvous(std::uint16_t port, int netns_fd, const std::string& bind);
  void pump(std::chrono::milliseconds max_wait);
  void read_stream(Proc& p, Stream& s);
  void emit(Proc& p, Stream& s, const std::string& line);
  void reap();
  void begin_termination(const std::string& why, int exit_code);
  void stop_rendezvous();
  void kill_all();
  bool peers_running() const;
  std::chrono::milliseconds until_deadline() const;

  const Options& opt_;
  Fd sig_r_;
  // Destroyed after ~Launcher has ended every process (members go after the body).
  std::optional<NatLab> lab_;
  std::optional<TempFile> lab_config_;  // the configuration the functions see, when rewritten
  std::vector<Proc> peers_;
  std::optional<Proc> server_;
  bool server_ready_ = false;
  int server_port_ = 0;                 // as announced by the server ("listening on ADDR:PORT")
  std::deque<std::string> server_log_;  // last lines, shown when the server fails

  std::optional<Clock::time_point> deadline_;
  bool terminating_ = false;
  Clock::time_point kill_at_{};
  bool killed_ = false;
  int exit_code_ = 0;
  int fatal_signal_ = 0;
};

std::chrono::milliseconds Launcher::until_deadline() const {
  if (!deadline_) return std::chrono::milliseconds::max();
  return std::max(0ms,
                  std::chrono::duration_cast<std::chrono::milliseconds>(*deadline_ - Clock::now()));
}

bool Launcher::peers_running() const {
  return std::any_of(peers_.begin(), peers_.end(), [](const Proc& p) { return p.running; });
}

void Launcher::emit(Proc& p, Stream& s, const std::string& line) {
  if (server_ && &p == &*server_) {
    if (auto at = line.find("listening on "); at != std::string::npos && !server_ready_) {
      server_ready_ = true;
      std::string addr = line.substr(at + 13);
      addr = addr.substr(0, addr.find_first_of(" \t"));
      if (auto colon = addr.rfind(':'); colon != std::string::npos)
        server_port_ = std::atoi(addr.c_str() + colon + 1);
    }
    server_log_.push_back(line);
    if (server_log_.size() > 20) server_log_.pop_front();
    if (!opt_.verbose) return;
  }
  write_all(s.target, "[" + p.label + "] " + line + "\n");
}

void Launcher::read_stream(Proc& p, Stream& s) {
  read_lines(s, [&](const std::string& line) { emit(p, s, line); });
}

// Waits up to max_wait for output or a signal, forwards what arrived, reaps children.
void Launcher::pump(std::chrono::milliseconds max_wait) {
  std::vector<pollfd> fds;
  std::vector<std::pair<Proc*, Stream*>> owners;
  fds.push_back({sig_r_.get(), POLLIN, 0});
  owners.emplace_back(nullptr, nullptr);
  auto add = [&](Proc& p) {
    for (Stream* s : {&p.out, &p.err})
      if (s->fd) {
        fds.push_back({s->fd.get(), POLLIN, 0});
        owners.emplace_back(&p, s);
      }
  };
  for (auto& p : peers_) add(p);
  if (server_) add(*server_);

  int rc =
      ::poll(fds.data(), fds.size(), static_cast<int>(std::min<long long>(max_wait.count(), 1000)));
  if (rc > 0) {
    for (std::size_t i = 1; i < fds.size(); ++i)
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
        read_stream(*owners[i].first, *owners[i].second);
    if (fds[0].revents & POLLIN) {
      unsigned char sigs[64];
      ssize_t n = ::read(sig_r_.get(), sigs, sizeof sigs);
      for (ssize_t i = 0; i < n; ++i)
        if (sigs[i] != SIGCHLD && !fatal_signal_) {
          fatal_signal_ = sigs[i];
          begin_termination(std::string("received ") + ::sigabbrev_np(sigs[i]) + ", ending the run",
                            128 + sigs[i]);
        }
    }
  }
  reap();
}

void Launcher::reap() {
  int status;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (server_ && server_->pid == pid) {
      server_->running = false;
      server_->status = status;
      if (!server_->terminated_by_us) {
        say("the rendezvous server " + describe_status(status) +
            " during the run; its last lines:");
        for (const auto& l : server_log_) write_all(STDERR_FILENO, "[rendezvous] " + l + "\n");
      }
      continue;
    }
    for (std::size_t i = 0; i < peers_.size(); ++i) {
      Proc& p = peers_[i];
      if (p.pid != pid) continue;
      p.running = false;
      p.status = status;
      bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (ok || terminating_) break;  // peers we ended ourselves are not the cause
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      begin_termination(p.label + " (pid " + std::to_string(pid) + ") " + describe_status(status) +
                            "; ending the other peers",
                        code);
      break;
    }
  }
}

void Launcher::begin_termination(const std::string& why, int exit_code) {
  if (terminating_) return;
  terminating_ = true;
  exit_code_ = exit_code;
  say(why);
  for (auto& p : peers_) signal_group(p, SIGTERM);
  kill_at_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(opt_.grace_s));
}

// Starts fmi-rendezvous on bind:port (port 0: the server picks one and announces it)
// and returns the port it listens on.
std::uint16_t Launcher::start_rendezvous(std::uint16_t port, int netns_fd,
                                         const std::string& bind) {
  fs::path bin = find_rendezvous(opt_.rendezvous);
  server_.emplace();
  server_->label = "rendezvous";
  SpawnSpec spec;
  spec.argv = {bin.string(), "--port", std::to_string(port), "--bind", bind};
  // On one machine every function registers from the same address: the server's
  // per-address limit (1,024, against a stranger holding every slot) would refuse
  // the functions of a large run; --max-connections still bounds the total.
  if (netns_fd < 0) spec.argv.insert(spec.argv.end(), {"--max-per-address", "0"});
  // A relayed pair holds one server connection per side for its lifetime, so behind
  // NATs that do not punch the server needs up to one connection per function,
  // communicator and partner (the default budget is 128 partners) next to the
  // registrations: 64 functions in the NAT lab, with two communicators each
  // (fmi-bench's mesh point), had 1,712 pairs relayed at once and the default 4,096
  // refused the rest ("server overloaded"). Room for two communicators, bounded by
  // what one machine's descriptors allow.
  long n = opt_.n, per = std::min<long>(n - 1, 128) + 1;
  long want = std::min<long>(16384, std::max<long>(4096, 2 * n * per));
  spec.argv.insert(spec.argv.end(), {"--max-connections", std::to_string(want)});
  spec.netns_fd = netns_fd;
  spawn(*server_, spec);

  // Ready when it says so (or, on loopback, when its port answers); bounded so that a
  // server that hangs at start-up does not hang the launcher.
  auto give_up = Clock::now() + 10s;
  while (!server_ready_) {
    if (!server_->running) {
      std::string log;
      for (const auto& l : server_log_) log += "\n[rendezvous] " + l;
      throw SetupError("the rendezvous server " + bin.string() + " " +
                       describe_status(server_->status) + " before listening on " + bind + ":" +
                       std::to_string(port) + log);
    }
    if (netns_fd < 0 && port != 0 && port_in_use(bind, port)) break;
    if (Clock::now() > give_up || fatal_signal_)
      throw SetupError("the rendezvous server " + bin.string() + " did not listen on " + bind +
                       ":" + std::to_string(port) + " within 10 s");
    pump(50ms);
  }
  if (port == 0) {
    if (server_port_ <= 0 || server_port_ > 65535)
      throw SetupError(
          "the rendezvous server " + bin.string() +
          " was started on port 0 but did not announce its port (\"listening on ADDR:PORT\")");
    port = static_cast<std::uint16_t>(server_port_);
  }
  say("started the rendezvous server on " + bind + ":" + std::to_string(port));
  return port;
}

void Launcher::kill_all() {
  auto end = [](Proc& p) {
    if (!p.running) return;
    signal_group(p, SIGKILL);
    while (::waitpid(p.pid, &p.status, 0) < 0 && errno == EINTR) {
    }
    p.running = false;
  };
  for (auto& p : peers_) end(p);
  if (server_) end(*server_);
}

void Launcher::stop_rendezvous() {
  if (!server_ || !server_->running) return;
  signal_group(*server_, SIGTERM);
  auto kill_at = Clock::now() + 3s;
  while (server_->running) {
    if (Clock::now() > kill_at) signal_group(*server_, SIGKILL);
    pump(50ms);
  }
}

int Launcher::run() {
  if (opt_.timeout_s > 0)
    deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(opt_.timeout_s));

  // Signals: through a pipe into the poll loop (see install_signal_pipe).
  sig_r_ = install_signal_pipe();

  std::string comm_name =
      opt_.name.empty()
          ? "fmirun-" + std::to_string(::getpid()) + "-" +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count())
          : opt_.name;

  std::string config_path;
  nlohmann::json config;
  DirectEndpoint direct;
  if (!opt_.config.empty()) {
    config_path = fs::absolute(opt_.config).lexically_normal().string();
    config = load_json(config_path);
    direct = direct_endpoint(config, config_path);
  }

  std::vector<Fd> peer_ns(opt_.n);
  if (opt_.nat) {
    if (::geteuid() != 0)
      throw SetupError("--nat needs root (it creates network namespaces and NAT rules)");
    fs::path script = find_natlab(opt_.natlab);
    lab_.emplace(script, opt_.n, opt_.symmetric);
    say("NAT lab " + lab_->prefix() + " is up: " + std::to_string(opt_.n) + " functions behind " +
        (opt_.symmetric ? "symmetric" : "port-preserving") + " NATs, rendezvous at " +
        kLabServerAddress);
    for (int i = 0; i < opt_.n; ++i) peer_ns[i] = lab_->open_ns(NatLab::function_namespace(i));
    if (direct.enabled) {
      // Inside the lab the only reachable server is the one in the public namespace:
      // the functions see a copy of the configuration that points there.
      Fd pub = lab_->open_ns(NatLab::kPublicNamespace);
      std::uint16_t port =
          start_rendezvous(opt_.rendezvous_port > 0 ? opt_.rendezvous_port : direct.port, pub.get(),
                           kLabServerAddress);
      config["backends"]["Direct"]["host"] = kLabServerAddress;
      config["backends"]["Direct"]["port"] = port;
      lab_config_.emplace(config.dump(2));
      config_path = lab_config_->path();
    } else {
      say("warning: the Direct channel is not enabled in the configuration; the functions run in "
          "the NAT lab "
          "without a rendezvous server");
    }
  } else if (direct.enabled && is_local_host(direct.host)) {
    std::string bind = direct.host == "localhost" ? "127.0.0.1" : direct.host;
    if (opt_.rendezvous_port >= 0) {
      // A server of our own on another port (0: any free one, for parallel runs):
      // the functions see a copy of the configuration that points there.
      std::uint16_t port =
          start_rendezvous(static_cast<std::uint16_t>(opt_.rendezvous_port), -1, bind);
      config["backends"]["Direct"]["port"] = port;
      lab_config_.emplace(config.dump(2));
      config_path = lab_config_->path();
    } else if (port_in_use(bind, direct.port)) {
      // The functions would hand their registrations (and, with a secret, their
      // proofs) to whatever holds the port: at least check it is a rendezvous server.
      const std::string where = bind + ":" + std::to_string(direct.port);
      if (std::string problem = rendezvous_greeting_problem(bind, direct.port); !problem.empty())
        throw SetupError("something is listening on " + where +
                         " (the Direct channel's rendezvous port) but " + problem +
                         ": stop it, or let fmirun start a server on a free port with "
                         "--rendezvous-port 0");
      say("using the rendezvous server already listening on " + where +
          " (it speaks the rendezvous protocol; fmirun did not start it)");
    } else {
      start_rendezvous(direct.port, -1, bind);
    }
  } else if (opt_.rendezvous_port >= 0) {
    say("warning: --rendezvous-port ignored: the configuration does not enable the Direct channel "
        "on a local host");
  }

  // The functions.
  peers_.resize(opt_.n);
  for (int i = 0; i < opt_.n && !terminating_; ++i) {
    Proc& p = peers_[i];
    p.label = "peer " + std::to_string(i);
    SpawnSpec spec;
    spec.argv = opt_.command;
    spec.env = {{"FMI_PEER_ID", std::to_string(i)},
                {"FMI_NUM_PEERS", std::to_string(opt_.n)},
                {"FMI_COMM_NAME", comm_name}};
    if (!config_path.empty()) spec.env.emplace_back("FMI_CONFIG", config_path);
    spec.netns_fd = peer_ns[i] ? peer_ns[i].get() : -1;
    spawn(p, spec);
    // Read what arrived meanwhile: starting 1,024 functions takes seconds, and a
    // pipe nobody reads blocks its writer. The rendezvous server logs a line per
    // registration, so at about 420 functions it stopped in write(2) and the
    // functions started next had their registration reset ("refused the
    // registration ... Connection reset by peer").
    pump(0ms);
  }

  // Until every peer has ended: forward output, watch for failures, the timeout and
  // signals; after SIGTERM, SIGKILL whoever is left when the grace period is over.
  while (peers_running()) {
    auto wait = 1000ms;
    if (deadline_ && !terminating_) wait = std::min(wait, until_deadline());
    if (terminating_ && !killed_)
      wait = std::min(wait, std::max(0ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                                              kill_at_ - Clock::now())));
    pump(std::max(wait, 1ms));
    if (deadline_ && !terminating_ && Clock::now() >= *deadline_) {
      std::string left;
      for (const auto& p : peers_)
        if (p.running) left += (left.empty() ? "" : ", ") + p.label.substr(5);
      std::ostringstream limit;
      limit << opt_.timeout_s;
      begin_termination("timeout: the run took longer than " + limit.str() +
                            " s; ending peers still running: " + left,
                        kExitTimeout);
    }
    if (terminating_ && !killed_ && Clock::now() >= kill_at_) {
      killed_ = true;
      std::string left;
      for (auto& p : peers_)
        if (p.running) {
          left += (left.empty() ? "" : ", ") + p.label;
          signal_group(p, SIGKILL);
        }
      if (!left.empty()) say("sending SIGKILL to " + left + " (still running after SIGTERM)");
    }
  }

  // The peers are gone; whatever they started may still hold their pipes. Drain
  // briefly, then end such leftovers with their process group.
  auto drain_until = Clock::now() + 1s;
  auto open_pipes = [&] {
    return std::any_of(peers_.begin(), peers_.end(),
                       [](const Proc& p) { return p.out.fd || p.err.fd; });
  };
  while (open_pipes() && Clock::now() < drain_until) pump(20ms);
  for (auto& p : peers_)
    if (p.out.fd || p.err.fd) {
      ::kill(-p.pid, SIGKILL);
      p.out.fd.reset();
      p.err.fd.reset();
    }

  stop_rendezvous();
  return exit_code_;
}

}  // namespace
}  // namespace fmirun

int main(int argc, char** argv) {
  using namespace fmirun;
  Options opt;
  LambdaOptions lam;
  CLI::App app{
      "fmirun: start N FMI functions as local processes, or with --lambda as AWS Lambda "
      "functions (see docs/fmirun.md, docs/lambda.md)",
      "fmirun"};
  app.add_option("-n,--np", opt.n, "number of functions (peers)")
      ->required()
      ->check(CLI::Range(1, 4096));
  app.add_option(
         "--config", opt.config,
         "FMI configuration file (default: $FMI_CONFIG); passed to the functions as FMI_CONFIG")
      ->envname("FMI_CONFIG");
  app.add_option("--name", opt.name, "communicator name, FMI_COMM_NAME (default: unique per run)");
  app.add_flag("--nat", opt.nat,
               "run every function in its own network namespace behind its own NAT (root; "
               "scripts/natlab.sh)");
  app.add_flag("--symmetric", opt.symmetric,
               "with --nat: symmetric NATs (MASQUERADE --random-fully)");
  app.add_option("--timeout", opt.timeout_s,
                 "end the run after this many seconds (0: no limit); exit code 124")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--grace", opt.grace_s, "seconds between SIGTERM and SIGKILL when ending peers")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--rendezvous-port", opt.rendezvous_port,
                 "start a rendezvous server of our own on this port (0: any free port) and point "
                 "the functions "
                 "at it, instead of the configuration's port")
      ->check(CLI::Range(0, 65535));
  app.add_flag("-v,--verbose", opt.verbose, "also forward the rendezvous server's log");
  app.add_option("--rendezvous", opt.rendezvous,
                 "path of fmi-rendezvous (default: $FMI_RENDEZVOUS, next to fmirun, PATH)");
  app.add_option("--natlab", opt.natlab,
                 "path of natlab.sh (default: $FMI_NATLAB, the source tree's scripts/)");
  app.add_option("command", opt.command, "PROGRAM ARGS... (after --; not with --lambda)");
  auto* lambda = app.add_option("--lambda", lam.function,
                                "run the job as N invocations of this Lambda function (name, "
                                "name:qualifier or ARN) instead of local processes");
  auto lambda_only = [&](CLI::Option* o) { o->needs(lambda); };
  lambda_only(
      app.add_option("--region", lam.region,
                     "with --lambda: AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION)"));
  lambda_only(app.add_option("--endpoint", lam.endpoint,
                             "with --lambda: Invoke API endpoint (default: "
                             "https://lambda.REGION.amazonaws.com; an emulator's URL)"));
  lambda_only(app.add_option("--payload", lam.payload,
                             "with --lambda: JSON object whose fields go into every event"));
  lambda_only(app.add_option("--output", lam.output,
                             "with --lambda: write each function's result to DIR/peer-i.json"));
  app.footer(
      "Exit status: 0 when every function exits 0; else the first failing function's exit status "
      "(128+N for "
      "signal N), 124 on --timeout, 128+N when fmirun itself gets signal N, 2 for set-up errors. "
      "With --lambda: 1 when a function failed (docs/lambda.md).");
  CLI11_PARSE(app, argc, argv);

  if (!lam.function.empty()) {
    if (!opt.command.empty() || opt.nat || opt.rendezvous_port >= 0) {
      say("--lambda runs no local program and takes neither a command nor --nat, "
          "--symmetric, --rendezvous-port");
      return kExitSetup;
    }
    lam.n = opt.n;
    lam.config = opt.config;
    lam.name = opt.name;
    lam.timeout_s = opt.timeout_s;
    lam.rendezvous = opt.rendezvous;
    lam.verbose = opt.verbose;
    try {
      return run_lambda(lam);
    } catch (const std::exception& e) {
      say(e.what());
      return kExitSetup;
    }
  }
  if (opt.command.empty()) {
    say("no program to run: fmirun -n N [options] -- PROGRAM ARGS... (or --lambda FUNCTION)");
    return kExitSetup;
  }

  try {
    Launcher launcher(opt);
    return launcher.run();  // the lab, if any, is torn down inside, after the peers
  } catch (const SetupError& e) {
    say(e.what());
    return kExitSetup;
  } catch (const std::exception& e) {
    say(std::string("error: ") + e.what());
    return kExitSetup;
  }
}
