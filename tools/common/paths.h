// Finding executables: the tools look for their helpers (fmirun, fmi-rendezvous,
// the NAT lab script) next to themselves before PATH.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <system_error>

namespace FMI::Tools {

/// The running executable (/proc/self/exe); empty when it cannot be read.
inline std::filesystem::path self_exe() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe;
}

/// A regular file that we may execute.
inline bool is_executable(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

}  // namespace FMI::Tools
