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
    case Operation::gatherv: return "gatherv";
    case Operation::scatterv: return "scatterv";
    case Operation::allgatherv: return "allgatherv";
    case Operation::alltoallv: return "alltoallv";
  }
  return "unknown-operation";
}
const char* to_string(Hint h) { return h == Hint::fast ? "fast" : "cheap"; }
}  // namespace Utils

namespace Comm {
namespace {
// A sub-communicator's id as 6 hex digits ("c00a3f1"), in tags and object keys.
std::string comm_id_str(std::uint32_t id) {
  static const char* hex = "0123456789abcdef";
  std::string s = "c";
  for (int shift = 20; shift >= 0; shift -= 4) s += hex[(id >> shift) & 0xf];
  return s;
}
}  // namespace

std::string to_string(const Tag& t) {
  std::string s = std::string(Utils::to_string(t.op)) + "#" + std::to_string(t.seq);
  if (t.comm != 0) s += "@" + comm_id_str(t.comm);
  return s;
}

// A sub-communicator's objects live under its parent's name (so the parent's
// channel finds and deletes them as its own) with the sub-communicator's id as an
// extra path element: "<comm>/c00a3f1/<op>/<seq>/<from>-<to>".
std::string ObjectKey::str(const std::string& comm_name) const {
  std::string s = comm_name;
  s += '/';
  if (tag.comm != 0) {
    s += comm_id_str(tag.comm);
    s += '/';
  }
  s += Utils::to_string(tag.op);
  s += '/';
  s += std::to_string(tag.seq);
  s += '/';
  s += std::to_string(from);
  s += '-';
  s += to == all ? std::string("all") : std::to_string(to);
  return s;
}

// Channels written before probe existed (and users' own) do not support an
// any-source receive; saying so beats waiting on one source.
std::optional<Probed> PeerToPeerChannel::probe(std::span<const Envelope>, bool, Utils::Deadline) {
  FMI_THROW(UsageError, "probe (any-source receive) is not supported by this peer-to-peer channel");
}
std::optional<Probed> ObjectStoreChannel::probe(std::span<const ObjectKey>, bool, Utils::Deadline) {
  FMI_THROW(UsageError, "probe (any-source receive) is not supported by this object-store channel");
}
}  // namespace Comm

}  // namespace FMI
