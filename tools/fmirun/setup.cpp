// See setup.h. Written without the library where it can be: fmirun may be built
// without it (then the configuration's few fields are read here).
#include "setup.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>

#ifdef FMIRUN_WITH_LIBRARY
#include <fmi/config.h>
#include <fmi/errors.h>

#include "channels/direct/config.h"
#endif

#include "process.h"
#include "tools/common/paths.h"

namespace fs = std::filesystem;

#ifndef FMIRUN_RENDEZVOUS
#define FMIRUN_RENDEZVOUS ""
#endif
#ifndef FMIRUN_NATLAB_SCRIPT
#define FMIRUN_NATLAB_SCRIPT ""
#endif

namespace fmirun {

// ---- configuration --------------------------------------------------------

// The only part of the configuration fmirun needs. With the library (the normal build)
// the file is validated by FMI::Config::load, so a bad file is reported once, before any
// function starts, with the library's own message; nlohmann-json is used to rewrite it
// (--nat, --rendezvous-port) and, without the library, to read these few fields (like
// the library, numbers and booleans may be written as strings: "10000", "true").

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SetupError("cannot read config file " + path + ": " + errno_text(errno));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json load_json(const std::string& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw SetupError("config file " + path + " is not valid JSON: " + e.what());
  }
}

DirectEndpoint direct_endpoint(const nlohmann::json& cfg, const std::string& path) {
  DirectEndpoint d;
#ifdef FMIRUN_WITH_LIBRARY
  (void)cfg;
  try {
    FMI::Config c = FMI::Config::load(path);
    d.enabled = c.enabled(FMI::Comm::DirectConfig::kName);
    if (d.enabled) {
      const auto& direct = c.section<FMI::Comm::DirectConfig>();
      d.host = direct.host;
      d.port = direct.port;
    }
    return d;
  } catch (const FMI::Error& e) {
    throw SetupError(e.what());
  }
#endif
  auto backends = cfg.find("backends");
  if (backends == cfg.end() || !backends->is_object()) return d;
  auto it = backends->find("Direct");
  if (it == backends->end() || !it->is_object()) return d;
  const auto& j = *it;
  auto field = [&](const char* name) {
    return "backends.Direct." + std::string(name) + " in " + path;
  };
  if (auto e = j.find("enabled"); e != j.end()) {
    if (e->is_boolean())
      d.enabled = e->get<bool>();
    else if (e->is_string() && (*e == "true" || *e == "false"))
      d.enabled = (*e == "true");
    else
      throw SetupError(field("enabled") + " must be a boolean");
  }
  if (!d.enabled) return d;
  auto h = j.find("host");
  if (h == j.end() || !h->is_string()) throw SetupError(field("host") + " must be a string");
  d.host = h->get<std::string>();
  if (auto p = j.find("port"); p != j.end()) {
    long v = -1;
    if (p->is_number_integer())
      v = p->get<long>();
    else if (p->is_string()) {
      try {
        std::size_t used = 0;
        v = std::stol(p->get<std::string>(), &used);
        if (used != p->get<std::string>().size()) v = -1;
      } catch (const std::exception&) {
        v = -1;
      }
    }
    if (v < 1 || v > 65535) throw SetupError(field("port") + " must be a port number (1-65535)");
    d.port = static_cast<std::uint16_t>(v);
  }
  return d;
}

bool is_local_host(const std::string& h) {
  return h == "127.0.0.1" || h == "localhost" || h == "::1" || h.rfind("127.", 0) == 0;
}

// True when something accepts TCP connections on host:port (probed with a connect,
// which on a local address answers at once: accepted or refused).
bool port_in_use(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return false;
  bool used = false;
  for (addrinfo* a = res; a && !used; a = a->ai_next) {
    Fd s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!s) continue;
    int rc;
    do rc = ::connect(s.get(), a->ai_addr, a->ai_addrlen);
    while (rc != 0 && errno == EINTR);
    used = (rc == 0);
  }
  ::freeaddrinfo(res);
  return used;
}

// What a server already listening on host:port answers right after the connect:
// fmi-rendezvous greets every connection with a CHALLENGE frame, whose header starts
// with the magic "FMIR" and the protocol version (docs/rendezvous-protocol.md). Empty
// when it looks like one; else why not (for the message). Written out here because
// fmirun may be built without the library.
std::string rendezvous_greeting_problem(const std::string& host, std::uint16_t port) {
  constexpr unsigned char kMagic[4] = {'F', 'M', 'I', 'R'};
  constexpr unsigned char kVersion = 2;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0)
    return "cannot resolve " + host;
  std::string problem = "nothing accepted the connection";
  for (addrinfo* a = res; a; a = a->ai_next) {
    Fd s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!s) continue;
    int rc;
    do rc = ::connect(s.get(), a->ai_addr, a->ai_addrlen);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) continue;
    unsigned char got[5];
    std::size_t have = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (have < sizeof got) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      pollfd p{s.get(), POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      ssize_t n = ::recv(s.get(), got + have, sizeof got - have, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      have += static_cast<std::size_t>(n);
    }
    if (have < sizeof got)
      problem = "it did not greet with the rendezvous protocol within 3 s";
    else if (std::memcmp(got, kMagic, sizeof kMagic) != 0)
      problem = "it answered, but not with the rendezvous protocol";
    else if (got[4] != kVersion)
      problem = "it speaks rendezvous protocol version " + std::to_string(got[4]) +
                ", this fmirun version " + std::to_string(kVersion);
    else
      problem.clear();
    break;
  }
  ::freeaddrinfo(res);
  return problem;
}

// ---- locating helpers -----------------------------------------------------

using FMI::Tools::is_executable;

namespace {
fs::path self_dir() { return FMI::Tools::self_exe().parent_path(); }

std::optional<fs::path> search_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path) return std::nullopt;
  std::string all(path);
  std::size_t start = 0;
  while (start <= all.size()) {
    std::size_t end = all.find(':', start);
    if (end == std::string::npos) end = all.size();
    fs::path cand = fs::path(all.substr(start, end - start)) / name;
    if (is_executable(cand)) return cand;
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace

// First existing executable among: the option, the environment variable, paths
// relative to fmirun (installed side by side, or the build tree's layout), the
// path compiled in, and PATH.
fs::path find_helper(const std::string& option, const char* env, std::vector<fs::path> near_self,
                     const char* compiled_in, const std::string& path_name,
                     const std::string& what) {
  if (!option.empty()) {
    if (!is_executable(option))
      throw SetupError(what + " " + option + " is not an executable file");
    return option;
  }
  if (const char* e = std::getenv(env); e && *e) {
    if (!is_executable(e))
      throw SetupError(what + " " + e + " (from $" + env + ") is not an executable file");
    return e;
  }
  fs::path dir = self_dir();
  if (!dir.empty())
    for (const auto& rel : near_self)
      if (is_executable(dir / rel)) return fs::weakly_canonical(dir / rel);
  if (compiled_in && *compiled_in && is_executable(compiled_in)) return compiled_in;
  if (auto p = search_path(path_name)) return *p;
  throw SetupError("cannot find " + what + " (" + path_name +
                   "); give its path with the option or $" + env);
}

fs::path find_rendezvous(const std::string& option) {
  return find_helper(option, "FMI_RENDEZVOUS",
                     {"fmi-rendezvous", "../../server/fmi-rendezvous", "../server/fmi-rendezvous"},
                     FMIRUN_RENDEZVOUS, "fmi-rendezvous", "the rendezvous server");
}

fs::path find_natlab(const std::string& option) {
  return find_helper(option, "FMI_NATLAB", {"fmi-natlab", "natlab.sh"}, FMIRUN_NATLAB_SCRIPT,
                     "fmi-natlab", "the NAT lab script");
}

}  // namespace fmirun
