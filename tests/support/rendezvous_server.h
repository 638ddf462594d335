// The rendezvous server of the Direct tests: a real fmi-rendezvous child process
// on a free port (FMI_RENDEZVOUS_PATH), a secret file for it, and a Direct channel
// on it. Peers run with the fork runner of harness.h.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "channel_factory.h"
#include "channels/direct/direct_channel.h"
#include "fmi/errors.h"
#include "harness.h"

namespace fmitest {

/// fmi-rendezvous as a child process, its log in a temporary file from which the
/// "listening on ADDR:PORT" line gives the port. Stopped by SIGTERM (and reaped) in
/// the destructor, even when the test fails.
class RendezvousServer {
 public:
  /// `port` 0: the kernel picks one. A fixed port (a restart on the port of a server
  /// just stopped) may be held by the old socket for a moment: retried for 5 s.
  explicit RendezvousServer(std::vector<std::string> extra = {}, std::uint16_t port = 0)
      : extra_(std::move(extra)) {
    for (int attempt = 0;; ++attempt) {
      if (start(port)) return;
      if (port == 0 || attempt >= 50)
        throw std::runtime_error("fmi-rendezvous did not start" +
                                 (port ? " on port " + std::to_string(port) : std::string()) +
                                 ": " + log());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~RendezvousServer() {
    int rc = stop();
    if (::testing::Test::HasFailure() || rc != 0)
      std::cerr << "---- fmi-rendezvous log (exit " << rc << ") ----\n" << log() << "----\n";
    if (!log_path_.empty()) ::unlink(log_path_.c_str());
  }
  RendezvousServer(const RendezvousServer&) = delete;
  RendezvousServer& operator=(const RendezvousServer&) = delete;

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }
  std::string log() const {
    std::ifstream f(log_path_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  /// SIGTERM, then waits; returns the exit status (0 on a clean shutdown).
  int stop() {
    if (pid_ <= 0) return exit_status_;
    ::kill(pid_, SIGTERM);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    exit_status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return exit_status_;
  }

 private:
  // False when the server exited at start (e.g. its port is still taken).
  bool start(std::uint16_t port) {
    if (!log_path_.empty()) ::unlink(log_path_.c_str());
    char tmpl[] = "/tmp/fmi-rendezvous-test-XXXXXX";
    int fd = ::mkstemp(tmpl);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    log_path_ = tmpl;
    std::cout.flush();
    std::cerr.flush();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fd, 2);
      std::vector<std::string> args = {FMI_RENDEZVOUS_PATH, "--port", std::to_string(port)};
      if (std::find(extra_.begin(), extra_.end(), "--bind") == extra_.end())
        args.insert(args.end(), {"--bind", "127.0.0.1"});  // default: IPv4 loopback
      args.insert(args.end(), extra_.begin(), extra_.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      std::perror("exec fmi-rendezvous");
      ::_exit(127);
    }
    ::close(fd);
    // Generous: an instrumented (sanitizer) server on a loaded machine starts slowly.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < until) {
      std::string log = this->log();
      auto at = log.find("listening on ");
      if (at != std::string::npos && log.find('\n', at) != std::string::npos) {
        auto colon = log.rfind(':', log.find('\n', at));
        port_ = static_cast<std::uint16_t>(std::stoi(log.substr(colon + 1)));
        return true;
      }
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    stop();
    return false;
  }

  std::vector<std::string> extra_;
  std::string log_path_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  int exit_status_ = 0;
};

/// A temporary file holding a shared secret, for `fmi-rendezvous --secret-file`.
class SecretFile {
 public:
  explicit SecretFile(const std::string& secret) {
    char tmpl[] = "/tmp/fmi-secret-test-XXXXXX";
    int fd = ::mkstemp(tmpl);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    std::string text = secret + "\n";  // a trailing newline, as editors write it
    if (::write(fd, text.data(), text.size()) != ssize_t(text.size()))
      throw std::runtime_error("writing the secret file failed");
    ::close(fd);
    path_ = tmpl;
  }
  ~SecretFile() { ::unlink(path_.c_str()); }
  SecretFile(const SecretFile&) = delete;
  SecretFile& operator=(const SecretFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// A Direct channel for peer `id` of `n`, initialised (its registration sent to the
/// server on 127.0.0.1:`port` unless `host` says otherwise). Configured from JSON
/// text through the one channel factory of the tests (channel_factory.h).
inline std::shared_ptr<FMI::Comm::DirectChannel> make_direct_channel(
    std::uint16_t port, unsigned id, unsigned n, const std::string& comm,
    std::chrono::milliseconds timeout = std::chrono::seconds(30),
    const std::string& host = "127.0.0.1", const std::string& secret = "", bool encryption = true) {
  auto ch = std::dynamic_pointer_cast<FMI::Comm::DirectChannel>(
      make_channel("Direct", direct_config(host, port, timeout, secret, encryption)));
  if (!ch) throw std::runtime_error("the Direct factory made another kind of channel");
  ch->init({id, n, comm, 128});
  return ch;
}

}  // namespace fmitest
