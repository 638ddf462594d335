// See async.h.
#include <optional>

#include "mpi/async.h"

namespace FMI::Mpi {

namespace {
[[noreturn]] void self_deadlock(const CommObj& c, const char* fn) {
  FMI_MPI_FAIL(MPI_ERR_OTHER, fn, ": rank ", c.rank,
               " waits for a message only it could send itself and none is queued (a deadlock)");
}
}  // namespace

int next_source(CommObj& c, int src, const char* fn) {
  if (src == c.rank || (src == MPI_ANY_SOURCE && c.size == 1)) self_deadlock(c, fn);
  if (src != MPI_ANY_SOURCE) return src;
  if (c.size == 2) return 1 - c.rank;  // one possible sender: no probe needed
  return static_cast<int>(c.fmi->probe(FMI::any_source).source);
}

bool poll(CommObj& c, int src, const char* fn) {
  if (src == c.rank || c.size == 1) return false;  // a self-send is queued at once
  std::optional<FMI::Status> s;
  try {
    s = c.fmi->iprobe(src == MPI_ANY_SOURCE ? FMI::any_source : static_cast<unsigned>(src));
  } catch (const UsageError& e) {
    // A channel without probe support (ChannelError and the others pass unchanged).
    c.no_probe = true;
    FMI_MPI_FAIL(MPI_ERR_UNSUPPORTED_OPERATION, fn, ": ", e.what());
  }
  if (!s) return false;
  pull_one(c, static_cast<int>(s->source));
  return true;
}

bool poll_quietly(CommObj& c, int src, int tag) {
  if (c.no_probe) return false;
  bool found = false;
  try {
    while (!found && poll(c, src, "MPI_Test")) {
      const Message& m = c.unexpected.back();
      found = (src == MPI_ANY_SOURCE || m.src == src) && (tag == MPI_ANY_TAG || m.tag == tag);
    }
  } catch (const MpiError& e) {
    if (e.error_class != MPI_ERR_UNSUPPORTED_OPERATION) throw;
  }
  return found;
}

bool test_may_wait(const CommObj& c) { return c.no_probe; }

namespace {
std::map<MPI_Request, std::vector<FMI::Request>>& fmi_requests() {
  static std::map<MPI_Request, std::vector<FMI::Request>> m;
  return m;
}

MPI_Request track(MPI_Comm h, std::vector<FMI::Request> rs) {
  const MPI_Request m = done_request(h);
  state().reqs[m].kind = ReqObj::fmi;
  fmi_requests().emplace(m, std::move(rs));
  return m;
}
}  // namespace

MPI_Request start_icoll(MPI_Comm h, const std::function<void(Keep&)>& call) {
  CommObj& c = comm(h);
  auto keep = std::make_shared<Keep>();
  std::vector<FMI::Request> rs;
  rs.push_back(c.fmi->start_nonblocking([&] { call(*keep); }, keep));
  return track(h, std::move(rs));
}

MPI_Request start_isend(const void* buf, int count, MPI_Datatype t, int dest, int tag, MPI_Comm h) {
  CommObj& c = comm(h);
  const std::size_t n = check_send(c, count, t, dest, tag);
  const Comm::ConstBytes data{static_cast<const std::byte*>(buf), n};
  if (dest == MPI_PROC_NULL || dest == c.rank) {
    if (dest != MPI_PROC_NULL) send_message(c, dest, tag, data);
    return done_request(h);
  }
  auto keep = std::make_shared<Keep>();
  keep->push_back(frame_header(tag, data));
  const auto to = static_cast<unsigned>(dest);
  std::vector<FMI::Request> rs;
  rs.push_back(c.fmi->start_nonblocking([&] { c.fmi->send_bytes(keep->front(), to); }, keep));
  if (frame_has_payload(n))
    rs.push_back(c.fmi->start_nonblocking([&] { c.fmi->send_bytes(data, to); }));
  return track(h, std::move(rs));
}

void drop_fmi_requests() {
  for (auto& [m, rs] : fmi_requests())
    for (FMI::Request& r : rs) {
      try {
        r.wait();
      } catch (const std::exception&) {  // the program did not wait for it either
      }
    }
  fmi_requests().clear();
}

void wait_fmi(MPI_Request m) {
  auto it = fmi_requests().find(m);
  if (it == fmi_requests().end()) return;
  std::vector<FMI::Request> rs = std::move(it->second);
  fmi_requests().erase(it);
  FMI::wait_all(rs);
}

bool test_fmi(MPI_Request m) {
  auto it = fmi_requests().find(m);
  if (it == fmi_requests().end()) return true;
  for (FMI::Request& r : it->second)
    if (r.active() && !r.test()) return false;
  return true;
}

}  // namespace FMI::Mpi
