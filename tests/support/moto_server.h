// A real S3 server for the tests: moto (`python3 -m moto.server`) on a free port
// of 127.0.0.1, started as a child process and stopped (SIGTERM, then SIGKILL)
// when the object is destroyed. The child also dies with the test process
// (PR_SET_PDEATHSIG), so a crashing test leaves no server behind.
//
// The Python interpreter is the first of: $FMI_MOTO_PYTHON, the one CMake found
// at configure time (FMI_MOTO_PYTHON_DEFAULT), python3 on PATH, that has moto.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifndef FMI_MOTO_PYTHON_DEFAULT
#define FMI_MOTO_PYTHON_DEFAULT ""
#endif

#include "ports.h"

namespace fmitest {

/// The first interpreter that can import moto.server; throws naming what was tried.
inline std::string find_moto_python() {
  std::vector<std::string> candidates;
  if (const char* e = std::getenv("FMI_MOTO_PYTHON"); e && *e) candidates.push_back(e);
  // Checked by CMake at configure time; importing moto again costs 0.6 s per test.
  if (candidates.empty() && *FMI_MOTO_PYTHON_DEFAULT) return FMI_MOTO_PYTHON_DEFAULT;
  candidates.push_back("python3");
  std::string tried;
  for (const auto& py : candidates) {
    const std::string cmd = "'" + py + "' -c 'import moto.server' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return py;
    tried += (tried.empty() ? "" : ", ") + py;
  }
  throw std::runtime_error("no Python interpreter with moto found (tried " + tried +
                           "); install moto 5 (pip install 'moto[server]') or set FMI_MOTO_PYTHON");
}

class MotoServer {
 public:
  /// Starts moto and waits (up to 30 s) until it accepts connections.
  /// `env` entries ("NAME=value") are set in the server's environment.
  /// `args` replace "-m moto.server -H 127.0.0.1 -p {port}" (another Python server
  /// listening on {port}, e.g. a script).
  explicit MotoServer(std::vector<std::string> env = {}, std::vector<std::string> args = {}) {
    const std::string py = find_moto_python();
    port_ = free_port();
    if (args.empty()) args = {"-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"};
    for (auto& a : args)
      if (a == "{port}") a = std::to_string(port_);
    log_ = "/tmp/fmi-moto-" + std::to_string(::getpid()) + "-" + std::to_string(port_) + ".log";
    const std::string port = std::to_string(port_);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("MotoServer: fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      for (auto& e : env) ::putenv(e.data());
      std::vector<char*> argv{const_cast<char*>(py.c_str())};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp(py.c_str(), argv.data());
      ::_exit(127);
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!port_open(port_)) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        keep_log_ = true;
        throw std::runtime_error("moto server exited at start (python " + py + "); see " + log_);
      }
      if (std::chrono::steady_clock::now() > until) {
        keep_log_ = true;
        stop();
        throw std::runtime_error("moto server did not listen on port " + port +
                                 " within 30 s; see " + log_);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~MotoServer() {
    stop();
    if (!keep_log_ && !std::getenv("FMI_KEEP_MOTO_LOG")) ::unlink(log_.c_str());
  }
  MotoServer(const MotoServer&) = delete;
  MotoServer& operator=(const MotoServer&) = delete;

  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_;
  bool keep_log_ = false;
};

}  // namespace fmitest
