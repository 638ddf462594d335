// What both of fmirun's launchers (local processes in fmirun.cpp, AWS Lambda in
// lambda.cpp) need before a run: the configuration's Direct endpoint, whether a
// rendezvous server answers on it, and where the helper programs are.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace fmirun {

// Exit codes besides the failing peer's own (documented in docs/fmirun.md).
inline constexpr int kExitSetup = 2;      // bad arguments, config, lab or server setup
inline constexpr int kExitTimeout = 124;  // --timeout passed (as timeout(1))

/// The only part of the configuration fmirun needs: the Direct channel's server.
struct DirectEndpoint {
  bool enabled = false;
  std::string host;
  std::uint16_t port = 10000;
};

/// The file's text. Throws SetupError.
std::string read_file(const std::string& path);
/// The file as JSON. Throws SetupError naming the file.
nlohmann::json load_json(const std::string& path);
/// The Direct section of `cfg` (read from `path`), validated as the library does when
/// fmirun links it. Throws SetupError with the library's message.
DirectEndpoint direct_endpoint(const nlohmann::json& cfg, const std::string& path);

/// 127.0.0.0/8, ::1, localhost.
bool is_local_host(const std::string& h);
/// True when something accepts TCP connections on host:port.
bool port_in_use(const std::string& host, std::uint16_t port);
/// Empty when the server on host:port greets like fmi-rendezvous; else why not.
std::string rendezvous_greeting_problem(const std::string& host, std::uint16_t port);

/// First existing executable among: the option, the environment variable, paths
/// relative to fmirun, the path compiled in, and PATH. Throws SetupError.
std::filesystem::path find_helper(const std::string& option, const char* env,
                                  std::vector<std::filesystem::path> near_self,
                                  const char* compiled_in, const std::string& path_name,
                                  const std::string& what);
/// fmi-rendezvous: `option`, $FMI_RENDEZVOUS, next to fmirun, this build's, PATH.
std::filesystem::path find_rendezvous(const std::string& option);
/// scripts/natlab.sh: `option`, $FMI_NATLAB, next to fmirun, this source tree's, PATH.
std::filesystem::path find_natlab(const std::string& option);

}  // namespace fmirun
