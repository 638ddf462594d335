#include "fmi/errors.h"

#include <cstdio>

#include "fmi/channel.h"
#include "fmi/types.h"

namespace FMI {

std::string format_duration(std::chrono::nanoseconds d) {
  char buf[64];
  const double ms = std::chrono::duration<double, std::milli>(d).count();
  if (ms >= 1000.0)
    std::snprintf(buf, sizeof buf, "%.3g s", ms / 1000.0);
  else if (ms >= 1.0)
    std::snprintf(buf, sizeof buf, "%.3g ms", ms);
  else
    std::snprintf(buf, sizeof buf, "%.3g us", ms * 1000.0);
  return buf;
}

namespace Utils {
const char* to_string(Operation op) {
  switch (op) {
    case Operation::send: return "send";
    case Operation::bcast: return "bcast";
    case Operation::barrier: return "barrier";
    case Operation::gather: return "gather";
    case Operation::scatter: return "scatter";
    case Operation::reduce: return "reduce";
    case Operation::allreduce: return "allreduce";
    case Operation::scan: return "scan";
    case Operation::allgather: return "allgather";
    case Operation::alltoall: return "alltoall";
    case Operation::reduce_scatter: return "reduce_scatter";
  }
  return "unknown-operation";
}
const char* to_string(Hint h) { return h == Hint::fast ? "fast" : "cheap"; }
}  // namespace Utils

namespace Comm {
std::string to_string(const Tag& t) {
  return std::string(Utils::to_string(t.op)) + "#" + std::to_string(t.seq);
}

std::string ObjectKey::str(const std::string& comm_name) const {
  std::string s = comm_name;
  s += '/';
  s += Utils::to_string(tag.op);
  s += '/';
  s += std::to_string(tag.seq);
  s += '/';
  s += std::to_string(from);
  s += '-';
  s += to == all ? std::string("all") : std::to_string(to);
  return s;
}
}  // namespace Comm

}  // namespace FMI
