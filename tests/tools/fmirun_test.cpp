// Tests of fmirun: real processes started through the real launcher (the probe
// program plays the functions), output and exit status checked as a user sees them.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct Result {
  int status = -1;  // exit status, or 128+signal
  std::string out, err;
};

// Runs fmirun with args, collecting stdout and stderr separately.
Result run_fmirun(const std::vector<std::string>& args) {
  int out[2], err[2];
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
  std::vector<std::string> all{FMIRUN_EXE};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  Result r;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open = 2;
  while (open > 0) {
    ::poll(fds, 2, -1);
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[65536];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, n);
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

std::vector<std::string> probe(std::vector<std::string> args) {
  args.insert(args.begin(), {"--", PROBE_EXE});
  return args;
}

std::vector<std::string> cat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool listening(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// A scratch directory, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "fmirun-test-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

// tests/tools/fmi-test.json with the Direct backend switched on or off, at a port.
std::string write_config(const fs::path& dir, bool direct, std::uint16_t port) {
  auto j = nlohmann::json::parse(std::ifstream(FMI_TEST_CONFIG));
  j["backends"]["Direct"]["enabled"] = direct;
  j["backends"]["Direct"]["host"] = "127.0.0.1";
  j["backends"]["Direct"]["port"] = port;
  fs::path p = dir / "fmi.json";
  std::ofstream(p) << j.dump(2);
  return p.string();
}

// Every pid file in dir names a process that no longer exists.
void expect_all_gone(const fs::path& dir, int expected_files) {
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".pid") continue;
    ++files;
    pid_t pid = 0;
    std::ifstream(e.path()) >> pid;
    ASSERT_GT(pid, 0);
    EXPECT_TRUE(::kill(pid, 0) == -1 && errno == ESRCH)
        << "process " << pid << " of " << e.path() << " survived";
  }
  EXPECT_EQ(files, expected_files);
}

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST(Fmirun, GivesEveryPeerItsEnvironmentAndPrefixesItsOutput) {
  TempDir dir;
  std::string cfg = write_config(dir.path, false, 1);
  auto r = run_fmirun(
      cat({"-n", "3", "--name", "envtest", "--config", cfg}, probe({"env", "3", "envtest", cfg})));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  for (int i = 0; i < 3; ++i) {
    std::string id = std::to_string(i);
    EXPECT_NE(r.out.find("[peer " + id + "] peer " + id + " of 3 ok\n"), std::string::npos)
        << r.out;
    EXPECT_NE(r.err.find("[peer " + id + "] peer " + id + " says hello on stderr\n"),
              std::string::npos)
        << r.err;
  }
}

TEST(Fmirun, DefaultCommunicatorNameIsTheSameForAllPeersAndUniquePerRun) {
  auto names = [] {
    auto r = run_fmirun({"-n", "3", "--", "/bin/sh", "-c", "echo name=$FMI_COMM_NAME"});
    EXPECT_EQ(r.status, 0) << r.err;
    std::regex re(R"(name=(\S+))");
    std::vector<std::string> found;
    for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), re);
         it != std::sregex_iterator(); ++it)
      found.push_back((*it)[1]);
    return found;
  };
  auto first = names();
  ASSERT_EQ(first.size(), 3u);
  for (const auto& n : first) EXPECT_EQ(n, first[0]);
  EXPECT_EQ(first[0].rfind("fmirun-", 0), 0u) << first[0];
  auto second = names();
  ASSERT_EQ(second.size(), 3u);
  EXPECT_NE(first[0], second[0]);
}

TEST(Fmirun, KeepsLinesWholeUnderLoad) {
  const int lines = 3000;
  auto r = run_fmirun(cat({"-n", "4"}, probe({"lines", std::to_string(lines)})));
  ASSERT_EQ(r.status, 0) << r.err.substr(0, 2000);
  std::istringstream out(r.out);
  std::regex line_re(
      R"(\[peer (\d)\] line (\d+) of peer (\d) with some padding to make it longer than a few bytes)");
  std::vector<int> next(4, 0);
  std::string line;
  int total = 0;
  while (std::getline(out, line)) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, line_re)) << "mangled line: " << line;
    int p = std::stoi(m[1]);
    EXPECT_EQ(p, std::stoi(m[3]));
    EXPECT_EQ(std::stoi(m[2]), next[p]++) << "lines of peer " << p << " out of order";
    ++total;
  }
  EXPECT_EQ(total, 4 * lines);
  EXPECT_EQ(count(r.err, "] err "), 4 * lines);
}

TEST(Fmirun, ForwardsAnUnterminatedLastLine) {
  auto r = run_fmirun(cat({"-n", "2"}, probe({"noeol"})));
  ASSERT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("[peer 0] no newline\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[peer 1] no newline\n"), std::string::npos) << r.out;
}

TEST(Fmirun, FailingPeerEndsTheOthersAndNamesThePeer) {
  TempDir dir;
  auto r = run_fmirun(cat({"-n", "4"}, probe({"fail", "2", "3", dir.path.string()})));
  EXPECT_EQ(r.status, 3) << r.err;
  EXPECT_NE(r.err.find("fmirun: peer 2 (pid"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exited with status 3"), std::string::npos) << r.err;
  // Only the failing peer is reported as the cause.
  EXPECT_EQ(count(r.err, "exited with status"), 1) << r.err;
  expect_all_gone(dir.path, 3);
}

TEST(Fmirun, PeerIgnoringSigtermGetsSigkill) {
  TempDir dir;
  auto r = run_fmirun(cat({"-n", "3", "--grace", "0.3"},
                          probe({"fail", "0", "1", dir.path.string(), "ignore-term"})));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("peer 0 (pid"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("SIGKILL"), std::string::npos) << r.err;
  expect_all_gone(dir.path, 2);
}

TEST(Fmirun, CrashingPeerIsReportedWithItsSignal) {
  TempDir dir;
  auto r = run_fmirun(cat({"-n", "3"}, probe({"crash", "1", dir.path.string()})));
  EXPECT_EQ(r.status, 128 + SIGABRT) << r.err;
  EXPECT_NE(r.err.find("peer 1 (pid"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("killed by signal 6"), std::string::npos) << r.err;
  expect_all_gone(dir.path, 2);
}

TEST(Fmirun, TimeoutEndsTheRun) {
  TempDir dir;
  auto r =
      run_fmirun(cat({"-n", "2", "--timeout", "0.5"}, probe({"sleep", "60", dir.path.string()})));
  EXPECT_EQ(r.status, 124) << r.err;
  EXPECT_NE(r.err.find("timeout"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("still running: 0, 1"), std::string::npos) << r.err;
  expect_all_gone(dir.path, 2);
}

TEST(Fmirun, ProgramThatCannotStartFails) {
  auto r = run_fmirun({"-n", "2", "--", "/nonexistent/program"});
  EXPECT_EQ(r.status, 127);
  EXPECT_NE(r.err.find("cannot execute /nonexistent/program"), std::string::npos) << r.err;
}

TEST(Fmirun, BadConfigIsASetupError) {
  TempDir dir;
  fs::path bad = dir.path / "bad.json";
  std::ofstream(bad) << "{ not json";
  auto r = run_fmirun(cat({"-n", "1", "--config", bad.string()}, probe({"env", "1", "x"})));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find(bad.string()), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("[peer"), std::string::npos) << "no peer may start: " << r.out;
}

// A stand-in server on a loopback port: every connection gets `greeting`, then is
// closed (a real fmi-rendezvous greets with a CHALLENGE frame: "FMIR", version 2).
class FakeListener {
 public:
  explicit FakeListener(std::string greeting) : greeting_(std::move(greeting)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) continue;
        if (!greeting_.empty()) (void)!::send(c, greeting_.data(), greeting_.size(), MSG_NOSIGNAL);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        ::close(c);
      }
    });
  }
  ~FakeListener() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }

 private:
  std::string greeting_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(Fmirun, UsesARendezvousServerAlreadyListening) {
  // Something that speaks the protocol listens on the configured port: fmirun must
  // use it, not start another (the bogus --rendezvous would make it fail if it tried).
  FakeListener srv(std::string("FMIR\x02\x07\x00\x00\x00\x21", 10) + std::string(33, '\0'));
  TempDir dir;
  std::string cfg = write_config(dir.path, true, srv.port());
  auto r =
      run_fmirun(cat({"-n", "2", "--config", cfg, "--rendezvous", "/nonexistent/fmi-rendezvous"},
                     probe({"connect-config"})));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("using the rendezvous server already listening"), std::string::npos)
      << r.err;
}

// Issue 15: fmirun trusted any process on the rendezvous port. One that does not
// speak the protocol (here: an HTTP server) is a setup error naming the port, and no
// function starts (they would hand it their registrations).
TEST(Fmirun, RefusesAListenerThatIsNotARendezvousServer) {
  FakeListener srv("HTTP/1.1 400 Bad Request\r\n\r\n");
  TempDir dir;
  std::string cfg = write_config(dir.path, true, srv.port());
  auto r =
      run_fmirun(cat({"-n", "2", "--config", cfg, "--rendezvous", "/nonexistent/fmi-rendezvous"},
                     probe({"connect-config"})));
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("127.0.0.1:" + std::to_string(srv.port())), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not with the rendezvous protocol"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("[peer"), std::string::npos) << "no peer may start: " << r.out;
}

// Issue 15: the configuration copy fmirun writes (with the Redis password and the
// Direct secret in it) was 0644 in /tmp. It is owner-only now.
TEST(Fmirun, ConfigurationCopyIsReadableByTheOwnerOnly) {
#ifndef RENDEZVOUS_EXE
  GTEST_SKIP() << "fmi-rendezvous is not part of this build";
#else
  TempDir dir;
  std::string cfg = write_config(dir.path, true, free_port());
  auto r = run_fmirun(
      cat({"-n", "2", "--rendezvous-port", "0", "--config", cfg}, probe({"config-mode"})));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count(r.out, "config mode 600"), 2) << r.out;
#endif
}

TEST(Fmirun, NoRendezvousServerWhenDirectIsDisabled) {
  TempDir dir;
  std::string cfg = write_config(dir.path, false, free_port());
  auto r = run_fmirun(cat(
      {"-n", "2", "--name", "n", "--config", cfg, "--rendezvous", "/nonexistent/fmi-rendezvous"},
      probe({"env", "2", "n", cfg})));
  EXPECT_EQ(r.status, 0) << r.err;
  r = run_fmirun(cat({"-n", "2", "--name", "n", "--config", cfg}, probe({"env", "2", "n", cfg})));
  EXPECT_EQ(r.status, 0) << r.err;
}

TEST(Fmirun, StartsAndStopsTheRendezvousServer) {
#ifndef RENDEZVOUS_EXE
  GTEST_SKIP() << "fmi-rendezvous is not part of this build";
#else
  TempDir dir;
  std::uint16_t port = free_port();
  std::string cfg = write_config(dir.path, true, port);
  auto r = run_fmirun(cat({"-n", "3", "--config", cfg}, probe({"connect-config"})));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("started the rendezvous server on 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << r.err;
  EXPECT_EQ(count(r.out, "connected to 127.0.0.1:" + std::to_string(port)), 3) << r.out;
  EXPECT_FALSE(listening(port)) << "the server fmirun started is still running";
#endif
}
