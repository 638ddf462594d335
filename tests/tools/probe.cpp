// fmirun_probe: the program the fmirun and NAT lab tests start. One mode per case:
//
//   env N NAME           check FMI_PEER_ID/FMI_NUM_PEERS/FMI_COMM_NAME/FMI_CONFIG, say hello
//   lines COUNT          print COUNT numbered lines on stdout and on stderr
//   noeol                print a line without a trailing newline
//   fail K CODE DIR [ignore-term]
//                        peer K exits with CODE after 200 ms; the others write DIR/<id>.pid
//                        and sleep (optionally ignoring SIGTERM)
//   crash K DIR          peer K aborts; the others write their pid and sleep
//   sleep SECONDS DIR    every peer writes its pid and sleeps
//   connect-config       connect to the Direct backend's host:port of $FMI_CONFIG
//   config-mode          print the permission bits of $FMI_CONFIG ("config mode 600")
//   whereami             print this peer's IPv4 addresses (one per line, no loopback)
//   listen ADDR PORT COUNT   accept COUNT connections, print each client's address
//   connect HOST PORT MS     exit 0 if a TCP connect succeeds within MS milliseconds
//   punch LPORT HOST PORT MS TAG
//                        TCP simultaneous open from local port LPORT to HOST:PORT, retried
//                        with a fresh socket until MS pass; exchanges TAG with the other
//                        side and prints what it got
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

int peer_id() {
  const char* v = std::getenv("FMI_PEER_ID");
  return v ? std::atoi(v) : -1;
}

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "probe: " << what << std::endl;
  std::exit(1);
}

void write_pid(const std::string& dir) {
  std::ofstream(dir + "/" + std::to_string(peer_id()) + ".pid") << ::getpid() << "\n";
}

[[noreturn]] void sleep_forever(int seconds = 60) {
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  std::exit(0);
}

// A connect bounded by a deadline: non-blocking connect, then poll.
bool connect_within(int fd, const sockaddr_in& to, int ms) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to);
  if (rc != 0 && errno != EINPROGRESS) return false;
  if (rc != 0) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, ms) != 1) return false;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return false;
  }
  ::fcntl(fd, F_SETFL, flags);
  return true;
}

sockaddr_in make_addr(const char* host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host, &a.sin_addr) != 1) fail(std::string("bad IPv4 address ") + host);
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) fail("usage: probe MODE ARGS...");
  std::string mode = argv[1];
  auto arg = [&](int i) -> std::string {
    if (i >= argc) fail("mode " + mode + ": missing argument " + std::to_string(i));
    return argv[i];
  };

  if (mode == "env") {
    int n = std::stoi(arg(2));
    const char* id = std::getenv("FMI_PEER_ID");
    const char* np = std::getenv("FMI_NUM_PEERS");
    const char* name = std::getenv("FMI_COMM_NAME");
    const char* cfg = std::getenv("FMI_CONFIG");
    if (!id || !np || !name) fail("FMI_PEER_ID, FMI_NUM_PEERS or FMI_COMM_NAME missing");
    int i = std::atoi(id);
    if (i < 0 || i >= n) fail("FMI_PEER_ID out of range: " + std::string(id));
    if (std::atoi(np) != n) fail("FMI_NUM_PEERS is " + std::string(np));
    if (arg(3) != name) fail("FMI_COMM_NAME is " + std::string(name));
    if (argc > 4 && (!cfg || arg(4) != cfg))
      fail("FMI_CONFIG is " + std::string(cfg ? cfg : "(unset)"));
    std::cout << "peer " << i << " of " << n << " ok" << std::endl;
    std::cerr << "peer " << i << " says hello on stderr" << std::endl;
    return 0;
  }
  if (mode == "lines") {
    int count = std::stoi(arg(2));
    for (int k = 0; k < count; ++k) {
      std::printf("line %d of peer %d with some padding to make it longer than a few bytes\n", k,
                  peer_id());
      std::fprintf(stderr, "err %d of peer %d\n", k, peer_id());
    }
    return 0;
  }
  if (mode == "noeol") {
    std::cout << "no newline" << std::flush;
    return 0;
  }
  if (mode == "fail" || mode == "crash") {
    int k = std::stoi(arg(2));
    std::string dir = mode == "fail" ? arg(4) : arg(3);
    if (peer_id() == k) {
      std::this_thread::sleep_for(200ms);
      if (mode == "crash") std::abort();
      return std::stoi(arg(3));
    }
    if (mode == "fail" && argc > 5 && std::string(argv[5]) == "ignore-term")
      ::signal(SIGTERM, SIG_IGN);
    write_pid(dir);
    sleep_forever();
  }
  if (mode == "sleep") {
    write_pid(arg(3));
    sleep_forever(std::stoi(arg(2)));
  }
  if (mode == "config-mode") {  // the permission bits of $FMI_CONFIG, in octal
    const char* cfg = std::getenv("FMI_CONFIG");
    if (!cfg) fail("FMI_CONFIG unset");
    struct stat st {};
    if (::stat(cfg, &st) != 0) fail(std::string("cannot stat ") + cfg);
    std::printf("config mode %o\n", unsigned(st.st_mode & 07777));
    return 0;
  }
  if (mode == "connect-config") {
    const char* cfg = std::getenv("FMI_CONFIG");
    if (!cfg) fail("FMI_CONFIG unset");
    std::ifstream in(cfg);
    auto j = nlohmann::json::parse(in);
    std::string host = j["backends"]["Direct"]["host"];
    int port = j["backends"]["Direct"]["port"];
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (!connect_within(fd, make_addr(host.c_str(), port), 3000))
      fail("cannot connect to " + host + ":" + std::to_string(port));
    std::cout << "connected to " << host << ":" << port << std::endl;
    return 0;
  }
  if (mode == "whereami") {
    ifaddrs* ifs = nullptr;
    if (::getifaddrs(&ifs) != 0) fail("getifaddrs");
    for (ifaddrs* a = ifs; a; a = a->ifa_next) {
      if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
      char buf[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof buf);
      if (std::string(buf) != "127.0.0.1") std::cout << "addr " << buf << std::endl;
    }
    ::freeifaddrs(ifs);
    return 0;
  }
  if (mode == "listen") {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto a = make_addr(arg(2).c_str(), std::stoi(arg(3)));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0)
      fail("cannot listen on " + arg(2) + ":" + arg(3) + ": " + std::strerror(errno));
    std::cout << "listening" << std::endl;
    for (int k = 0, n = std::stoi(arg(4)); k < n; ++k) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      int c = ::accept(fd, reinterpret_cast<sockaddr*>(&from), &len);
      if (c < 0) fail("accept");
      char buf[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &from.sin_addr, buf, sizeof buf);
      std::cout << "accepted " << buf << std::endl;
      ::close(c);
    }
    return 0;
  }
  if (mode == "connect") {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    bool ok = connect_within(fd, make_addr(arg(2).c_str(), std::stoi(arg(3))), std::stoi(arg(4)));
    std::cout << (ok ? "connected" : "no connection") << std::endl;
    return ok ? 0 : 1;
  }
  if (mode == "punch") {
    int lport = std::stoi(arg(2));
    auto to = make_addr(arg(3).c_str(), std::stoi(arg(4)));
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::stoi(arg(5)));
    std::string tag = arg(6);
    while (std::chrono::steady_clock::now() < end) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      auto local = make_addr("0.0.0.0", lport);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) fail("bind");
      if (connect_within(fd, to, 300)) {
        if (::send(fd, tag.data(), tag.size(), 0) != static_cast<ssize_t>(tag.size())) fail("send");
        char buf[64] = {};
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 2000) == 1 && ::recv(fd, buf, sizeof buf - 1, 0) > 0) {
          std::cout << "punched, got " << buf << std::endl;
          std::this_thread::sleep_for(200ms);  // let the other side read ours too
          return 0;
        }
      }
      ::close(fd);
      std::this_thread::sleep_for(50ms);
    }
    fail("no connection to " + arg(3) + ":" + arg(4) + " within " + arg(5) + " ms");
  }
  fail("unknown mode " + mode);
}
