// The Lambda Runtime API of the tests: runtime_api_fixture.py (next to this file)
// as a child process on a free loopback port, fed with the invocations a test
// gives, and the log of every request it got (one JSON object per request).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace fmitest {

class RuntimeApiServer {
 public:
  /// `invocations`: the JSON list the fixture hands out (see its docstring).
  explicit RuntimeApiServer(const nlohmann::json& invocations) {
    invocations_path_ = temp_file("fmi-lambda-invocations", invocations.dump());
    log_path_ = temp_file("fmi-lambda-log", "");
    out_path_ = temp_file("fmi-lambda-out", "");
    std::cout.flush();
    std::cerr.flush();
    pid_ = ::fork();
    if (pid_ == 0) {
      std::FILE* out = std::fopen(out_path_.c_str(), "w");
      if (out) {
        ::dup2(fileno(out), 1);
        ::dup2(fileno(out), 2);
      }
      const char* python = std::getenv("FMI_TEST_PYTHON");
      std::string py = python && *python ? python : "python3";
      std::string script = FMI_LAMBDA_FIXTURE;
      ::execlp(py.c_str(), py.c_str(), script.c_str(), "--invocations", invocations_path_.c_str(),
               "--log", log_path_.c_str(), static_cast<char*>(nullptr));
      std::perror("exec python3 runtime_api_fixture.py");
      ::_exit(127);
    }
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < until) {
      std::string out = read(out_path_);
      auto at = out.find("listening on ");
      if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
        address_ = out.substr(at + 13, out.find('\n', at) - at - 13);
        return;
      }
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
    throw std::runtime_error("runtime_api_fixture.py did not start: " + read(out_path_));
  }
  ~RuntimeApiServer() {
    stop();
    if (::testing::Test::HasFailure())
      std::cerr << "---- Runtime API fixture " << address_ << " log ----\n"
                << read(log_path_).substr(0, 8000) << read(out_path_) << "----\n";
    for (auto* p : {&invocations_path_, &log_path_, &out_path_}) ::unlink(p->c_str());
  }
  RuntimeApiServer(const RuntimeApiServer&) = delete;
  RuntimeApiServer& operator=(const RuntimeApiServer&) = delete;

  /// host:port, as $AWS_LAMBDA_RUNTIME_API.
  const std::string& address() const { return address_; }

  /// Every request so far, in the order the fixture got them.
  std::vector<nlohmann::json> requests() const {
    std::vector<nlohmann::json> out;
    std::istringstream in(read(log_path_));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    return out;
  }
  /// The requests of one kind ("next", "response", "error", "init_error").
  std::vector<nlohmann::json> requests(const std::string& kind) const {
    std::vector<nlohmann::json> out;
    for (auto& r : requests())
      if (r["kind"] == kind) out.push_back(r);
    return out;
  }

 private:
  static std::string temp_file(const char* name, const std::string& text) {
    std::string tmpl = std::string("/tmp/") + name + "-XXXXXX";
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      throw std::runtime_error("writing " + tmpl + " failed");
    ::close(fd);
    return tmpl;
  }
  static std::string read(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string invocations_path_, log_path_, out_path_, address_;
  pid_t pid_ = -1;
};

}  // namespace fmitest
