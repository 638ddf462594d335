// fmirun --nat: a NAT lab made by scripts/natlab.sh for one run. Every function runs
// in its own network namespace ("f0", "f1", ...) behind its own NAT router, and the
// rendezvous server in the lab's "public" namespace ("pub") at kLabServerAddress.
#pragma once

#include <filesystem>
#include <string>

#include "tools/common/fd.h"

namespace fmirun {

/// The lab's fixed public address of the rendezvous server (scripts/natlab.sh).
inline constexpr const char* kLabServerAddress = "10.200.0.1";

/// The lab, up from construction to destruction: torn down in the destructor, so on
/// every way out of main, including errors and signals (the lab script also removes
/// what it made if its own set-up fails half way).
class NatLab {
 public:
  /// Runs `script --prefix fmi<pid>- up n [--symmetric]`. Throws SetupError.
  NatLab(std::filesystem::path script, int n, bool symmetric);
  ~NatLab();
  NatLab(const NatLab&) = delete;
  NatLab& operator=(const NatLab&) = delete;

  /// The namespace "f<i>" of function i.
  static std::string function_namespace(int i) { return "f" + std::to_string(i); }
  /// The namespace of the rendezvous server.
  static constexpr const char* kPublicNamespace = "pub";

  /// An fd of the lab's namespace `name` (for setns in the child). Throws SetupError.
  FMI::Tools::Fd open_ns(const std::string& name) const;
  const std::string& prefix() const { return prefix_; }

 private:
  std::filesystem::path script_;
  std::string prefix_;
  bool up_ = false;
};

}  // namespace fmirun
