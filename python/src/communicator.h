// fmi.Communicator: the Python face of FMI::Communicator.
//
// Each method has two forms, chosen by its arguments:
//  - typed (the original FMI API): a `type` (fmi.types) describes a Python value;
//    the value is converted into C++ storage and results come back as Python values;
//  - buffers (type=None): NumPy arrays and buffer-protocol objects are sent from and
//    received into their own memory; results go into `out=` when given, else into a
//    new NumPy array.
// Arguments are converted with the GIL held; the communication itself runs with the
// GIL released, under a per-communicator mutex (the core Communicator is not
// thread-safe; Python threads sharing one communicator are serialised).
// The non-blocking forms (isend, iallreduce, ...) take buffers only: they start
// the operation under the mutex and return an fmi.Request at once; the transfer
// runs on a worker thread of the core communicator, outside the mutex.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "buffers.h"
#include "fmi/communicator.h"
#include "objects.h"
#include "reductions.h"
#include "requests.h"

namespace fmipy {

class PyCommunicator {
 public:
  PyCommunicator(long long peer_id, long long num_peers, const py::object& config,
                 std::string comm_name, unsigned faas_memory);
  ~PyCommunicator();

  /// Reads FMI_PEER_ID, FMI_NUM_PEERS, FMI_CONFIG and FMI_COMM_NAME (set by fmirun).
  static std::unique_ptr<PyCommunicator> from_env(const py::object& comm_name,
                                                  unsigned faas_memory);

  /// Finalises every channel (idempotent). Later calls raise fmi.UsageError.
  void finalize();
  bool finalized() const { return !comm_; }

  unsigned peer_id() const { return peer_id_; }
  unsigned num_peers() const { return num_peers_; }
  const std::string& comm_name() const { return comm_name_; }
  py::list channels();
  void hint(FMI::Utils::Hint h);
  FMI::Utils::Hint get_hint();
  void register_channel(std::string name, std::shared_ptr<FMI::Comm::Channel> ch);

  void send(py::handle obj, long long dest, py::handle type);
  /// recv(src, type) / recv(src, out=buf) / recv(src) (an object), src may be
  /// fmi.any_source; with status=True each returns (value, fmi.Status). recv(buf,
  /// src): the buffer first, returns the source (the Status with status=True).
  py::object recv(py::handle src, py::handle type, py::handle out, bool status);
  FMI::Status probe(long long src);
  py::object iprobe(long long src);
  py::object bcast(py::handle obj, long long root, py::handle type, py::handle out);
  void barrier();
  py::object gather(py::handle obj, long long root, py::handle type, py::handle out);
  py::object scatter(py::handle obj, long long root, py::handle type, py::handle out);
  py::object reduce(py::handle obj, long long root, py::handle func, py::handle type,
                    py::handle out);
  py::object allreduce(py::handle obj, py::handle func, py::handle type, py::handle out);
  py::object scan(py::handle obj, py::handle func, py::handle type, py::handle out);
  py::object allgather(py::handle obj, py::handle type, py::handle out);
  py::object alltoall(py::handle obj, py::handle type, py::handle out);
  py::object reduce_scatter(py::handle obj, py::handle func, py::handle type, py::handle out);

  // Non-blocking forms on buffers (docs/nonblocking.md): the request keeps the
  // arrays alive; its wait() returns the output (out=, or a new array), or None.
  using Req = std::shared_ptr<PyRequest>;
  Req isend(py::handle obj, long long dest);
  Req irecv(py::handle out, long long src);
  Req ibcast(py::handle obj, long long root, py::handle out);
  Req ibarrier();
  Req igather(py::handle obj, long long root, py::handle out);
  Req iscatter(py::handle obj, long long root, py::handle out);
  Req ireduce(py::handle obj, long long root, py::handle func, py::handle out);
  Req iallreduce(py::handle obj, py::handle func, py::handle out);
  Req iscan(py::handle obj, py::handle func, py::handle out);
  Req iallgather(py::handle obj, py::handle out);
  Req ialltoall(py::handle obj, py::handle out);
  Req ireduce_scatter(py::handle obj, py::handle func, py::handle out);
  Req igatherv(py::handle send, py::handle recv, py::handle recv_counts, long long root);
  Req iscatterv(py::handle send, py::handle send_counts, py::handle recv, long long root);
  Req iallgatherv(py::handle send, py::handle recv, py::handle recv_counts);
  Req ialltoallv(py::handle send, py::handle send_counts, py::handle recv, py::handle recv_counts);

  // Sub-communicators: the peers passing one color >= 0 form a communicator
  // ordered by (key, peer_id); a negative color gives None. The child uses this
  // communicator's channels and keeps it alive (module.cpp: keep_alive); after
  // this one is finalised, the child's calls raise fmi.UsageError.
  std::unique_ptr<PyCommunicator> split(long long color, long long key);
  std::unique_ptr<PyCommunicator> dup();

  // Variable-size collectives on buffers: counts in elements of
  // the buffer's item size, blocks packed in peer order.
  py::object gatherv(py::handle send, py::handle recv, py::handle recv_counts, long long root);
  py::object scatterv(py::handle send, py::handle send_counts, py::handle recv, long long root);
  py::object allgatherv(py::handle send, py::handle recv, py::handle recv_counts);
  py::object alltoallv(py::handle send, py::handle send_counts, py::handle recv,
                       py::handle recv_counts);

 private:
  /// Wraps a sub-communicator made by split/dup; `mu` is the parent's mutex.
  PyCommunicator(std::unique_ptr<FMI::Communicator> comm, std::shared_ptr<std::mutex> mu);
  FMI::Communicator& comm(const char* op);
  unsigned peer_arg(long long p, const char* op, const char* role) const;
  /// Runs `f` on the core communicator with the GIL released, under mu_. Every
  /// access to comm_ goes through here: mu_ is never taken with the GIL held (a
  /// custom reduction takes the GIL while its thread holds mu_).
  template <typename F>
  void blocking(const char* op, F&& f);
  /// Starts `call(comm)` as a non-blocking operation into `r` (under mu_, GIL
  /// released) and returns `r`.
  template <typename F>
  Req start(const char* op, Req r, F&& call);
  /// The v-forms, blocking (nb false: returns a completed request holding the
  /// result) or not.
  template <typename F>
  Req run_v(const char* op, bool nb, Req r, F&& call);
  Req gatherv_run(bool nb, py::handle send, py::handle recv, py::handle recv_counts,
                  long long root);
  Req scatterv_run(bool nb, py::handle send, py::handle send_counts, py::handle recv,
                   long long root);
  Req allgatherv_run(bool nb, py::handle send, py::handle recv, py::handle recv_counts);
  Req alltoallv_run(bool nb, py::handle send, py::handle send_counts, py::handle recv,
                    py::handle recv_counts);
  /// iallreduce and iscan.
  Req ielementwise(const char* op, bool scan, py::handle obj, py::handle func, py::handle out);
  using ReduceCall = void (FMI::Communicator::*)(FMI::Comm::ConstBytes, FMI::Comm::Bytes,
                                                 const FMI::Utils::ReduceOp&);
  /// allreduce and scan (same arguments, result shaped like the input).
  py::object elementwise_reduction(const char* op, ReduceCall call, py::handle obj, py::handle func,
                                   py::handle type, py::handle out);
  /// The result of an allreduce/reduce/scan/reduce_scatter: out (checked) or a new array.
  py::array reduce_target(py::handle out, const py::array& in,
                          const std::vector<py::ssize_t>& shape, const char* op);

  // Pickled objects (objects.h): sizes first, then the payloads.
  void send_object(py::handle obj, unsigned dest);
  py::object recv_object(unsigned src, FMI::Status& st);
  py::object recv_from(unsigned src, py::handle type, py::handle out, FMI::Status& st);
  py::object bcast_object(py::handle obj, unsigned root);
  py::list allgather_objects(py::handle obj, const char* op);
  py::object gather_objects(py::handle obj, unsigned root, const char* op);
  py::object scatter_objects(py::handle obj, unsigned root);
  py::object alltoall_objects(py::handle obj);
  /// reduce (root) / allreduce / scan (prefix) of objects with f folded in peer order.
  enum class Fold { reduce, allreduce, scan };
  py::object reduce_objects(py::handle obj, const Func& f, Fold kind, unsigned root,
                            const char* op);

  std::unique_ptr<FMI::Communicator> comm_;
  // Serialises calls on comm_ from several Python threads. Shared with the
  // sub-communicators split from this one: they use this one's channel objects,
  // which are no more thread-safe than the core Communicator.
  std::shared_ptr<std::mutex> mu_ = std::make_shared<std::mutex>();
  unsigned peer_id_;
  unsigned num_peers_;
  std::string comm_name_;
};

}  // namespace fmipy
