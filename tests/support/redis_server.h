// A real redis-server for one test process: started on a free port of 127.0.0.1 with
// persistence off (--save "" --appendonly no) and its files in a temporary
// directory, stopped (and its directory removed) by the destructor, killed by the
// kernel if the test process dies first (PR_SET_PDEATHSIG); kill() and restart()
// on the same port for the fault tests. Also a raw hiredis client to look at the
// server from outside the channel (DBSIZE, PTTL).
//
// The server binary is $FMI_REDIS_SERVER, else redis-server from PATH.
#pragma once

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ports.h"

namespace fmitest {

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using RawReply = std::unique_ptr<redisReply, ReplyFree>;

/// A plain hiredis connection for inspecting the server in tests.
class RawClient {
 public:
  RawClient(std::uint16_t port, const std::string& password = "", int db = 0) {
    timeval tv{5, 0};
    ctx_ = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (ctx_ == nullptr || ctx_->err)
      throw std::runtime_error("RawClient: cannot connect to port " + std::to_string(port));
    redisSetTimeout(ctx_, tv);
    if (!password.empty()) command({"AUTH", password});
    if (db != 0) command({"SELECT", std::to_string(db)});
  }
  ~RawClient() { redisFree(ctx_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  RawReply command(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> len;
    for (const auto& a : args) {
      argv.push_back(a.data());
      len.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(ctx_, static_cast<int>(args.size()), argv.data(), len.data()));
    if (r == nullptr) throw std::runtime_error(std::string("RawClient: ") + ctx_->errstr);
    if (r->type == REDIS_REPLY_ERROR) {
      std::string e(r->str, r->len);
      freeReplyObject(r);
      throw std::runtime_error("RawClient: " + args[0] + ": " + e);
    }
    return RawReply(r);
  }
  long long integer(const std::vector<std::string>& args) { return command(args)->integer; }

  long long dbsize() { return integer({"DBSIZE"}); }
  /// Every key (KEYS *: tests only, on their own private server).
  std::vector<std::string> keys() {
    auto r = command({"KEYS", "*"});
    std::vector<std::string> k;
    for (std::size_t i = 0; i < r->elements; ++i)
      k.emplace_back(r->element[i]->str, r->element[i]->len);
    return k;
  }
  redisContext* context() { return ctx_; }

 private:
  redisContext* ctx_ = nullptr;
};

class RedisServer {
 public:
  struct Options {
    std::string password;  // --requirepass
  };

  RedisServer() : RedisServer(Options{}) {}
  explicit RedisServer(Options o) : opt_(std::move(o)) {
    char tmpl[] = "/tmp/fmi-redis-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("RedisServer: mkdtemp failed");
    dir_ = tmpl;
    std::string last_error;
    // A free port can be taken between free_port() and the server's bind: retry.
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = free_port();
      if (start(last_error)) return;
    }
    std::filesystem::remove_all(dir_);
    throw std::runtime_error("RedisServer: could not start redis-server: " + last_error);
  }

  ~RedisServer() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const { return port_; }
  const std::string& password() const { return opt_.password; }

  /// SIGKILL now (the "server goes away" tests), and reap it.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  /// SIGTERM, up to 5 s to exit, then SIGKILL.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 500; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill();
  }

  /// SIGKILL, then a new (empty: persistence is off, as after a crash) server on
  /// the same port; retried while the old socket lingers.
  void restart() {
    kill();
    std::string error;
    for (int i = 0; i < 50; ++i) {
      if (start(error)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("RedisServer: could not restart on port " + std::to_string(port_) +
                             ": " + error);
  }

  std::unique_ptr<RawClient> client(int db = 0) const {
    return std::make_unique<RawClient>(port_, opt_.password, db);
  }
  long long dbsize() const { return client()->dbsize(); }
  std::vector<std::string> keys() const { return client()->keys(); }

  std::string log() const {
    std::ifstream f(dir_ + "/redis.log");
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

 private:
  bool start(std::string& error) {
    const char* bin = std::getenv("FMI_REDIS_SERVER");
    const std::string server = bin != nullptr ? bin : "redis-server";
    std::vector<std::string> args = {server,
                                     "--port",
                                     std::to_string(port_),
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--dir",
                                     dir_,
                                     "--protected-mode",
                                     "no",
                                     "--daemonize",
                                     "no",
                                     "--logfile",
                                     dir_ + "/redis.log"};
    if (!opt_.password.empty()) {
      args.push_back("--requirepass");
      args.push_back(opt_.password);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
      error = "fork failed";
      return false;
    }
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);  // the parent died before prctl
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }

    // Up when it answers PING (or NOAUTH, which is an answer too).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        error = "redis-server exited (status " + std::to_string(status) + "): " + log();
        return false;
      }
      timeval tv{0, 200000};
      redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
      bool up = false;
      if (c != nullptr && !c->err) {
        auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
        up = r != nullptr;
        if (r) freeReplyObject(r);
      }
      if (c) redisFree(c);
      if (up) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    error = "no answer on port " + std::to_string(port_) + " within 10 s: " + log();
    kill();
    return false;
  }

  Options opt_;
  std::string dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace fmitest
