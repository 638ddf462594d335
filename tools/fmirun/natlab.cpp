// fmirun --nat: the NAT lab of a run (see natlab.h).
#include "natlab.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "process.h"

namespace fmirun {

NatLab::NatLab(std::filesystem::path script, int n, bool symmetric)
    : script_(std::move(script)), prefix_("fmi" + std::to_string(::getpid()) + "-") {
  std::vector<std::string> cmd{script_.string(), "--prefix", prefix_, "up", std::to_string(n)};
  if (symmetric) cmd.push_back("--symmetric");
  int st = run_command(cmd);
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
    throw SetupError("setting up the NAT lab failed: " + script_.string() + " " +
                     describe_status(st));
  up_ = true;
}

NatLab::~NatLab() {
  if (up_) run_command({script_.string(), "--prefix", prefix_, "down"});
}

FMI::Tools::Fd NatLab::open_ns(const std::string& name) const {
  std::string path = "/run/netns/" + prefix_ + name;
  FMI::Tools::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw SetupError("cannot open network namespace " + path + ": " + errno_text(errno));
  return fd;
}

}  // namespace fmirun
