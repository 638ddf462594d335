// The MPI layer's process-wide state (src/mpi/): the tables behind the int handles
// of mpi.h, and the error path every MPI function returns through. Built only on the
// public FMI API (include/fmi/); scripts/check-layering.py holds it to that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fmi/communicator.h"
#include "fmi/errors.h"
#include "fmi/inproc.h"
#include "fmi/mpi/mpi.h"

namespace FMI::Mpi {

/// An MPI error with its class, raised inside the layer and turned into a return
/// code (or an abort) by guard() at the API boundary.
struct MpiError : Error {
  MpiError(int cls, const std::string& what) : Error(what), error_class(cls) {}
  int error_class;
};

#define FMI_MPI_FAIL(cls, ...) throw ::FMI::Mpi::MpiError(cls, ::FMI::detail::concat(__VA_ARGS__))

/// One framed MPI message that arrived before a receive wanted it (or sent to self).
struct Message {
  int src;
  int tag;
  std::vector<std::byte> data;
};

struct CommObj {
  // The FMI communicator: owned (world, split, dup, create_group) or, for a
  // single-process communicator, over an in-process hub of its own.
  std::unique_ptr<Communicator> fmi;
  std::unique_ptr<Comm::InProcessHub> hub;
  int rank = 0;
  int size = 1;
  std::vector<int> world;  // world rank of every member
  MPI_Errhandler errhandler = MPI_ERRORS_ARE_FATAL;
  std::string name;
  // Messages read from the FMI stream of a source while looking for another
  // (source, tag), in arrival order: MPI's non-overtaking order is kept by always
  // matching the oldest entry first.
  std::deque<Message> unexpected;
  // Comm_create_group: how many communicators each (member list, tag) made, so that
  // every member names the next one alike.
  std::map<std::string, int> created;
  // Set when a channel of this communicator cannot probe (FMI raised UsageError):
  // MPI_Test then waits as without the non-blocking API (src/mpi/async.h).
  bool no_probe = false;
};

/// A datatype: `count` elements of the predefined `base` (reductions work on those).
/// `size` is the extent: the bytes one element takes in a buffer and on the wire
/// (MPI_DOUBLE_INT: 16); `data` is what MPI_Type_size reports (the bytes of data
/// without padding: 12).
struct TypeObj {
  std::size_t size = 0;
  std::size_t data = 0;
  int base = 0;
  std::size_t count = 1;
  bool committed = true;
  bool predefined = true;
  const char* name = "";
};

struct OpObj {
  MPI_User_function* fn = nullptr;  // null for predefined operators
  bool commutative = true;
};

/// A request: complete when started (sends; collectives until the FMI non-blocking
/// API is merged), a receive that runs when waited for, or an FMI request (fmi:
/// an MPI_I... collective with the non-blocking API, src/mpi/async.h).
struct ReqObj {
  enum Kind { done, recv, fmi } kind = done;
  MPI_Status status{};
  int error = MPI_SUCCESS;
  // recv
  void* buf = nullptr;
  int count = 0;
  MPI_Datatype type = MPI_DATATYPE_NULL;
  int src = 0, tag = 0;
  MPI_Comm comm = MPI_COMM_NULL;
};

struct State {
  bool initialized = false;
  bool finalized = false;
  int thread_level = MPI_THREAD_SINGLE;
  std::map<int, std::unique_ptr<CommObj>> comms;
  int next_comm = 3;
  std::map<int, std::vector<int>> groups;  // world ranks
  int next_group = 2;
  std::map<int, TypeObj> types;
  int next_type = 100;
  std::map<int, OpObj> ops;
  int next_op = 32;
  std::map<int, ReqObj> reqs;
  int next_req = 1;
  std::string last_message[MPI_ERR_LASTCODE + 1];
};

State& state();

// ---- lookups (MpiError with the right class when the handle is bad) -------------
CommObj& comm(MPI_Comm c);
const TypeObj& type(MPI_Datatype t);
const OpObj& op(MPI_Op o);
/// count x type in bytes, checking the count (MPI_ERR_COUNT) and type.
std::size_t bytes(int count, MPI_Datatype t);

/// Runs body() and returns MPI_SUCCESS, or maps what it threw to an MPI error class,
/// remembers the message for MPI_Error_string and hands it to `c`'s error handler
/// (MPI_ERRORS_ARE_FATAL: print and end the job). `fn` names the MPI call.
template <typename F>
int guard(const char* fn, MPI_Comm c, F&& body);
int handle_error(const char* fn, MPI_Comm c, int cls, const std::string& what);
int error_class_of(const std::exception& e);
void require_init(const char* fn);

template <typename F>
int guard(const char* fn, MPI_Comm c, F&& body) {
  try {
    require_init(fn);
    body();
    return MPI_SUCCESS;
  } catch (const std::exception& e) {
    return handle_error(fn, c, error_class_of(e), e.what());
  }
}

// ---- reductions ------------------------------------------------------------------
/// The FMI operator for (op, type), valid while both handles live. MPI_ERR_OP when
/// the predefined operator is not defined on the type.
Utils::ReduceOp reduce_op(MPI_Op o, MPI_Datatype t);
/// inout = in op inout over n elements of t (MPI's convention: `in` is the left operand).
void apply_op(MPI_Op o, MPI_Datatype t, const void* in, void* inout, std::size_t n_elems);

// ---- point to point (p2p.cpp) ------------------------------------------------------
void send_message(CommObj& c, int dest, int tag, Comm::ConstBytes data);
/// Receives the oldest message matching (src, tag) into out (truncation is
/// MPI_ERR_TRUNCATE after the status is filled). src may be MPI_ANY_SOURCE.
MPI_Status recv_message(CommObj& c, int src, int tag, Comm::Bytes out, const char* fn);
MPI_Status probe_message(CommObj& c, int src, int tag, bool block, bool* found, const char* fn);
void set_status(MPI_Status* s, const MPI_Status& v);

}  // namespace FMI::Mpi
