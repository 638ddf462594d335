// fmi-lambda-exec PROG [ARGS...]: any FMI program, an MPI program built with
// fmi-mpicc among them, as an AWS Lambda function (provided.al2023). The function's
// `bootstrap` is `exec fmi-lambda-exec ./prog`; `fmirun --lambda` then starts a job
// of it as `fmirun -n` starts processes (docs/mpi.md "Running on Lambda",
// docs/lambda-cpp.md).
//
// Per invocation (FMI::Lambda::serve): the event contract is parsed and checked by
// FMI::Lambda::parse_job (peer_id, num_peers, comm_name, fmi_config); fmi_config goes
// to a private temporary file (0600: it may hold secrets a user put there); PROG runs
// with the environment fmirun -n gives its processes (FMI_PEER_ID, FMI_NUM_PEERS,
// FMI_COMM_NAME, FMI_CONFIG: what MPI_Init and the examples read) and the payload's
// optional "args" (an array of strings) after ARGS. It is killed at the invocation's
// deadline (less a reserve to post the error). Its stdout is the result, its stderr
// passes through to ours (the function's log) and its tail goes into the result:
//   {"exit_code": 0, "stdout": "...", "stderr_tail": "..."}
// A non-zero exit, a signal or the deadline is the invocation's error instead, so
// that fmirun --lambda reports a failed peer: errorType fmi_lambda_exec::ProgramExited,
// fmi_lambda_exec::ProgramKilled or FMI::TimeoutError, the message with the stderr tail.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "fmi/errors.h"
#include "fmi/lambda.h"
#include "process.h"
#include "tools/common/temp_file.h"

namespace fmi_lambda_exec {

using json = nlohmann::json;
using namespace std::chrono_literals;

/// The invocation's errors for a program that failed: the class names are the
/// errorType fmirun --lambda prints.
struct ProgramExited : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ProgramKilled : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Kept back from the invocation's time: killing the program, posting the error.
constexpr std::chrono::milliseconds kReserve{1000};
// How much of stderr the result and the error message carry (the whole of it is in
// the function's log).
constexpr std::size_t kTailBytes = 4096;

std::string tail(const std::string& s) {
  return s.size() <= kTailBytes ? s : s.substr(s.size() - kTailBytes);
}

// fmi_config with every numeric backends.<channel>.max_timeout lowered to `budget`, as
// parse_job does for the Communicator it would build: no single FMI call of the
// program waits past the point where it could still fail by itself.
std::string config_text(const json& event, std::chrono::milliseconds budget) {
  json config = event.at("fmi_config");
  if (auto b = config.find("backends"); b != config.end() && b->is_object())
    for (auto& [name, section] : b->items())
      if (section.is_object() && section.contains("max_timeout") &&
          section["max_timeout"].is_number())
        section["max_timeout"] =
            std::min<double>(section["max_timeout"].get<double>(), double(budget.count()));
  return config.dump();
}

// The payload's "args": absent, or an array of strings.
std::vector<std::string> payload_args(const FMI::Lambda::Job& job, const std::string& request) {
  const json payload = json::parse(job.payload);
  std::vector<std::string> out;
  auto it = payload.find("args");
  if (it == payload.end()) return out;
  if (!it->is_array())
    FMI_THROW(FMI::ConfigError, "Lambda event ", request,
              ": field args must be an array of strings, is ", it->dump());
  for (const auto& a : *it) {
    if (!a.is_string())
      FMI_THROW(FMI::ConfigError, "Lambda event ", request,
                ": field args must be an array of strings, has ", a.dump());
    out.push_back(a.get<std::string>());
  }
  return out;
}

// Reads what is there (the pipes are non-blocking); false at EOF. With `echo` (stderr)
// the bytes also go to our stderr, the function's log, and only the tail is kept: a
// chatty program must not grow our memory.
bool drain(fmirun::Stream& s, std::string& into, bool echo) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(s.fd.get(), buf, sizeof buf);
    if (n > 0) {
      into.append(buf, static_cast<std::size_t>(n));
      if (echo) {
        fmirun::write_all(STDERR_FILENO, std::string(buf, static_cast<std::size_t>(n)));
        if (into.size() > 2 * kTailBytes) into.erase(0, into.size() - kTailBytes);
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    s.fd.reset();
    return false;
  }
}

std::string run(const std::vector<std::string>& program, const FMI::Lambda::Invocation& inv) {
  const FMI::Lambda::Job job = FMI::Lambda::parse_job(inv, kReserve);
  const auto budget = inv.remaining() - kReserve;
  const FMI::Tools::TempFile config("fmi-lambda-config", ".json",
                                    config_text(json::parse(inv.event), budget));
  fmirun::SpawnSpec spec;
  spec.argv = program;
  for (auto& a : payload_args(job, inv.request_id)) spec.argv.push_back(std::move(a));
  spec.env = {{"FMI_PEER_ID", std::to_string(job.peer_id)},
              {"FMI_NUM_PEERS", std::to_string(job.num_peers)},
              {"FMI_COMM_NAME", job.comm_name},
              {"FMI_CONFIG", config.path()}};
  fmirun::Proc p;
  p.label = program[0];
  fmirun::spawn(p, spec);
  for (auto* s : {&p.out, &p.err}) ::fcntl(s->fd.get(), F_SETFL, O_NONBLOCK);

  const auto deadline = std::chrono::steady_clock::now() + budget;
  std::string out, err;
  bool timed_out = false;
  // Until it exited and both pipes are at EOF; a grandchild that keeps a pipe open
  // after the program exited is ended with the program's process group.
  while (p.running || p.out.fd || p.err.fd) {
    if (p.running) {
      int status = 0;
      if (::waitpid(p.pid, &status, WNOHANG) == p.pid) {
        p.running = false;
        p.status = status;
        if (p.out.fd) drain(p.out, out, false);
        if (p.err.fd) drain(p.err, err, true);
        ::kill(-p.pid, SIGKILL);
        p.out.fd.reset();
        p.err.fd.reset();
        break;
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms && p.running) {
      timed_out = true;
      fmirun::signal_group(p, SIGKILL);
      while (::waitpid(p.pid, &p.status, 0) < 0 && errno == EINTR) {
      }
      p.running = false;
      continue;
    }
    std::vector<pollfd> fds;
    for (auto* s : {&p.out, &p.err})
      if (s->fd) fds.push_back({s->fd.get(), POLLIN, 0});
    // Short waits: the exit is noticed by waitpid, not by a signal.
    const int wait_ms = static_cast<int>(std::clamp<long long>(left.count(), 0, 50));
    if (fds.empty()) {
      ::usleep(static_cast<useconds_t>(wait_ms) * 1000);
    } else if (::poll(fds.data(), fds.size(), wait_ms) > 0) {
      if (p.out.fd) drain(p.out, out, false);
      if (p.err.fd) drain(p.err, err, true);
    }
  }

  const std::string who = program[0] + " (peer " + std::to_string(job.peer_id) + " of " +
                          std::to_string(job.num_peers) + ")";
  const std::string stderr_tail = tail(err);
  if (timed_out)
    FMI_THROW(FMI::TimeoutError, who, " was killed at the invocation's deadline (", budget.count(),
              " ms); stderr tail:\n", stderr_tail);
  if (WIFSIGNALED(p.status))
    throw ProgramKilled(who + " " + fmirun::describe_status(p.status) + "; stderr tail:\n" +
                        stderr_tail);
  if (WEXITSTATUS(p.status) != 0)
    throw ProgramExited(who + " " + fmirun::describe_status(p.status) + "; stderr tail:\n" +
                        stderr_tail);
  // replace: a program's output need not be UTF-8; the response must still be JSON.
  return json{{"exit_code", 0}, {"stdout", out}, {"stderr_tail", stderr_tail}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

}  // namespace fmi_lambda_exec

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cerr << "usage: fmi-lambda-exec PROG [ARGS...]\n"
                 "  Serves the Lambda Runtime API ($AWS_LAMBDA_RUNTIME_API): runs PROG once per\n"
                 "  invocation of fmirun --lambda's event contract, with FMI_PEER_ID,\n"
                 "  FMI_NUM_PEERS, FMI_COMM_NAME and FMI_CONFIG set as fmirun -n sets them,\n"
                 "  ARGS and the payload's \"args\" as arguments; returns\n"
                 "  {\"exit_code\", \"stdout\", \"stderr_tail\"} (docs/lambda-cpp.md).\n";
    return argc < 2 ? 2 : 0;
  }
  ::signal(SIGPIPE, SIG_IGN);  // a program that dies while we write nothing to it
  const std::vector<std::string> program(argv + 1, argv + argc);
  try {
    return FMI::Lambda::serve(
        [&](const FMI::Lambda::Invocation& inv) { return fmi_lambda_exec::run(program, inv); });
  } catch (const std::exception& e) {
    std::cerr << "fmi-lambda-exec: " << e.what() << "\n";
    return 1;
  }
}
