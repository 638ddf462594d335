#include "communicator.h"

#include <climits>
#include <cstdlib>
#include <cstring>

#include "fmi/config.h"
#include "fmi/errors.h"

namespace fmipy {

using FMI::UsageError;

namespace {

const TypeSpec* type_arg(py::handle type, const char* op) {
  if (!type || type.is_none()) return nullptr;
  if (!py::isinstance<TypeSpec>(type))
    throw py::type_error(std::string(op) + ": type must be fmi.types(...) or None, got '" +
                         type_name(type) + "'");
  return type.cast<const TypeSpec*>();
}

const Func& func_arg(py::handle func, const char* op) {
  if (!func || !py::isinstance<Func>(func))
    throw py::type_error(std::string(op) + ": func must be fmi.func(...), got '" +
                         type_name(func) + "'");
  return *func.cast<const Func*>();
}

bool given(py::handle h) { return h && !h.is_none(); }

void no_type_and_out(const TypeSpec* t, py::handle out, const char* op) {
  if (t && given(out))
    FMI_THROW(UsageError, op,
              ": pass either a type (Python values) or out= (a buffer), not both");
}

/// The element count of a list type on a peer that has no value to count.
std::size_t require_count(const TypeSpec& t, const char* op, unsigned peer) {
  if (!t.has_count)
    FMI_THROW(UsageError, op, ": ", t.repr(), " on peer ", peer,
              " needs a count (e.g. fmi.types(fmi.datatypes.int_list, 4)): this peer receives "
              "the list and must know its length");
  return t.count;
}

py::module_ numpy() { return py::module_::import("numpy"); }

/// A private copy of `a` when it overlaps the output: the algorithms may write the
/// output before they have read all of the input.
py::array unaliased(const py::array& a, const py::array& out) {
  if (!overlap(cbytes(a), cbytes(out))) return a;
  return numpy().attr("array")(a, py::arg("copy") = true);
}

std::vector<py::ssize_t> prepend(std::size_t n, std::vector<py::ssize_t> shape) {
  shape.insert(shape.begin(), static_cast<py::ssize_t>(n));
  return shape;
}

}  // namespace

// ---- life cycle ------------------------------------------------------------------

PyCommunicator::PyCommunicator(long long peer_id, long long num_peers, const py::object& config,
                               std::string comm_name, unsigned faas_memory)
    : comm_name_(comm_name) {
  if (num_peers < 1 || num_peers > UINT_MAX)
    FMI_THROW(UsageError, "Communicator: num_peers must be at least 1, got ", num_peers);
  if (peer_id < 0 || peer_id >= num_peers)
    FMI_THROW(UsageError, "Communicator: peer_id ", peer_id, " is out of range for ", num_peers,
              " peers (valid: 0..", num_peers - 1, ")");
  peer_id_ = static_cast<unsigned>(peer_id);
  num_peers_ = static_cast<unsigned>(num_peers);
  // None: no backend at all, for communicators whose channels are registered by
  // hand (fmi.InProcessHub).
  FMI::Config cfg;
  cfg.source = "<no configuration>";
  std::string path;
  if (!config.is_none()) path = py::module_::import("os").attr("fspath")(config).cast<std::string>();
  py::gil_scoped_release nogil;
  if (!path.empty()) cfg = FMI::Config::load(path);
  // Channels may connect to their servers here.
  comm_ = std::make_unique<FMI::Communicator>(peer_id_, num_peers_, cfg, std::move(comm_name),
                                              faas_memory);
}

std::unique_ptr<PyCommunicator> PyCommunicator::from_env(const py::object& comm_name,
                                                         unsigned faas_memory) {
  auto var = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    if (!v || !*v)
      FMI_THROW(FMI::ConfigError, "Communicator.from_env: environment variable ", name,
                " is not set (fmirun sets FMI_PEER_ID, FMI_NUM_PEERS, FMI_COMM_NAME, FMI_CONFIG)");
    return v;
  };
  auto number = [&](const char* name) -> long long {
    const std::string s = var(name);
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (end == s.c_str() || *end != '\0')
      FMI_THROW(FMI::ConfigError, "Communicator.from_env: ", name, "='", s, "' is not an integer");
    return v;
  };
  const long long id = number("FMI_PEER_ID");
  const long long n = number("FMI_NUM_PEERS");
  std::string name = comm_name.is_none() ? var("FMI_COMM_NAME") : comm_name.cast<std::string>();
  return std::make_unique<PyCommunicator>(id, n, py::str(var("FMI_CONFIG")), std::move(name),
                                          faas_memory);
}

PyCommunicator::~PyCommunicator() {
  // No reduction check here (a destructor must not throw): the communicator that runs
  // a collective is referenced by that call, so it is never destroyed from inside it.
  py::gil_scoped_release nogil;
  std::lock_guard lk(mu_);
  comm_.reset();
}

void PyCommunicator::finalize() {
  check_not_in_reduction("close");
  // Channels close connections and delete their objects: may block.
  py::gil_scoped_release nogil;
  std::lock_guard lk(mu_);
  comm_.reset();
}

FMI::Communicator& PyCommunicator::comm(const char* op) {
  if (!comm_)
    FMI_THROW(UsageError, op, ": communicator '", comm_name_, "' of peer ", peer_id_,
              " is finalised (used after close() or its with-block)");
  return *comm_;
}

template <typename F>
void PyCommunicator::blocking(const char* op, F&& f) {
  check_not_in_reduction(op);
  py::gil_scoped_release nogil;
  std::lock_guard lk(mu_);
  // Checked under the mutex: another thread may have finalised it meanwhile.
  f(comm(op));
}

unsigned PyCommunicator::peer_arg(long long p, const char* op, const char* role) const {
  // The core checks p < num_peers; a negative id never reaches its unsigned type.
  if (p < 0 || p > UINT_MAX)
    FMI_THROW(UsageError, op, ": ", role, " ", p, " is out of range for ", num_peers_,
              " peers (valid: 0..", num_peers_ - 1, ")");
  return static_cast<unsigned>(p);
}

py::list PyCommunicator::channels() {
  std::vector<std::string> names;
  blocking("channels", [&](auto& c) {
    for (const auto& [name, ch] : c.channels()) names.push_back(name);
  });
  py::list l;
  for (const auto& n : names) l.append(n);
  return l;
}

void PyCommunicator::hint(FMI::Utils::Hint h) {
  blocking("hint", [&](auto& c) { c.hint(h); });
}

FMI::Utils::Hint PyCommunicator::get_hint() {
  FMI::Utils::Hint h{};
  blocking("get_hint", [&](auto& c) { h = c.get_hint(); });
  return h;
}

void PyCommunicator::register_channel(std::string name, std::shared_ptr<FMI::Comm::Channel> ch) {
  blocking("register_channel", [&](FMI::Communicator& c) { c.register_channel(name, ch); });
}

// ---- point to point ------------------------------------------------------------------

void PyCommunicator::send(py::handle obj, long long dest, py::handle type) {
  const char* op = "send";
  const unsigned d = peer_arg(dest, op, "destination peer");
  if (const TypeSpec* t = type_arg(type, op)) {
    Packed p = pack(obj, *t, t->is_list(), expected_count(*t), op);
    blocking(op, [&](auto& c) { c.send_bytes(p.cspan(), d); });
    return;
  }
  py::array a = input_array(obj, op);
  blocking(op, [&](auto& c) { c.send_bytes(cbytes(a), d); });
}

py::object PyCommunicator::recv(long long src, py::handle type, py::handle out) {
  const char* op = "recv";
  const unsigned s = peer_arg(src, op, "source peer");
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  if (given(out)) {
    py::array o = output_array(out, op, "out");
    blocking(op, [&](auto& c) { c.recv_bytes(mbytes(o), s); });
    return py::reinterpret_borrow<py::object>(out);
  }
  if (!t)
    FMI_THROW(UsageError,
              "recv: pass a type (fmi.types(...)) or a buffer to receive into (out=array)");
  Packed p = packed_zeros(*t, t->is_list() ? require_count(*t, op, peer_id_) : 1);
  blocking(op, [&](auto& c) { c.recv_bytes(p.span(), s); });
  return unpack(p.cspan(), *t, t->is_list());
}

// ---- collectives ---------------------------------------------------------------------

py::object PyCommunicator::bcast(py::handle obj, long long root, py::handle type,
                                 py::handle out) {
  const char* op = "bcast";
  const unsigned r = peer_arg(root, op, "root");
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  const bool is_root = r == peer_id_;
  if (t) {
    Packed p = is_root ? pack(obj, *t, t->is_list(), expected_count(*t), op)
                       : packed_zeros(*t, t->is_list() ? require_count(*t, op, peer_id_) : 1);
    blocking(op, [&](auto& c) { c.bcast_bytes(p.span(), r); });
    return unpack(p.cspan(), *t, t->is_list());
  }
  if (is_root) {
    if (!given(obj) && !given(out))
      FMI_THROW(UsageError, "bcast: the root (peer ", peer_id_, ") must pass the object to send");
    py::handle src = given(obj) ? obj : out;
    py::array a = input_array(src, op);
    py::handle result = src;
    if (given(out) && !out.is(src)) {  // the root's out receives the value too
      py::array o = output_array(out, op, "out");
      if (o.nbytes() != a.nbytes())
        FMI_THROW(UsageError, "bcast: out holds ", o.nbytes(), " bytes, obj holds ", a.nbytes());
      if (!overlap(cbytes(a), cbytes(o))) std::memcpy(mbytes(o).data(), a.data(), a.nbytes());
      a = o;
      result = out;
    } else if (!a.writeable()) {
      // Some algorithms store every chunk in every peer's buffer, the root's too
      // (identical bytes): a read-only object is broadcast from a copy.
      a = numpy().attr("array")(a, py::arg("copy") = true);
    }
    blocking(op, [&](auto& c) { c.bcast_bytes(mbytes(a), r); });
    return py::reinterpret_borrow<py::object>(result);
  }
  py::handle dst = given(out) ? out : obj;
  if (!given(dst))
    FMI_THROW(UsageError, "bcast: peer ", peer_id_,
              " (not the root) needs a buffer to receive into: pass out= (or a writable obj) "
              "of the root's size, or a type");
  py::array o = output_array(dst, op, given(out) ? "out" : "obj (the receive buffer off the root)");
  blocking(op, [&](auto& c) { c.bcast_bytes(mbytes(o), r); });
  return py::reinterpret_borrow<py::object>(dst);
}

void PyCommunicator::barrier() {
  blocking("barrier", [&](auto& c) { c.barrier(); });
}

py::object PyCommunicator::gather(py::handle obj, long long root, py::handle type,
                                  py::handle out) {
  const char* op = "gather";
  const unsigned r = peer_arg(root, op, "root");
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  const bool is_root = r == peer_id_;
  if (t) {
    Packed p = pack(obj, *t, t->is_list(), expected_count(*t), op);
    Packed all = packed_zeros(*t, is_root ? p.count * num_peers_ : 0);
    blocking(op, [&](auto& c) { c.gather_bytes(p.cspan(), all.span(), r); });
    if (!is_root) return py::none();
    return unpack(all.cspan(), *t, true);
  }
  py::array a = input_array(obj, op);
  if (!is_root) {
    blocking(op, [&](auto& c) { c.gather_bytes(cbytes(a), {}, r); });
    return py::none();
  }
  py::array o = given(out) ? output_array(out, op, "out")
                           : empty_array(a.dtype(), prepend(num_peers_, shape_of(a)));
  a = unaliased(a, o);
  blocking(op, [&](auto& c) { c.gather_bytes(cbytes(a), mbytes(o), r); });
  return given(out) ? py::reinterpret_borrow<py::object>(out) : py::object(o);
}

py::object PyCommunicator::scatter(py::handle obj, long long root, py::handle type,
                                   py::handle out) {
  const char* op = "scatter";
  const unsigned r = peer_arg(root, op, "root");
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  const bool is_root = r == peer_id_;
  if (t) {
    // A list type describes the root's whole list; a scalar type means the root
    // passes one value per peer.
    Packed p;
    std::size_t per = 1;
    if (is_root) {
      p = pack(obj, *t, true, t->is_list() ? expected_count(*t) : num_peers_, op);
      if (t->is_list()) per = p.count / num_peers_;
      if (p.count % num_peers_ != 0)
        FMI_THROW(UsageError, "scatter: the root's list of ", p.count,
                  " elements cannot be split into ", num_peers_, " equal parts");
    } else if (t->is_list()) {
      const std::size_t total = require_count(*t, op, peer_id_);
      if (total % num_peers_ != 0)
        FMI_THROW(UsageError, "scatter: ", t->repr(), " (the root's whole list) cannot be split into ",
                  num_peers_, " equal parts");
      per = total / num_peers_;
    }
    Packed mine = packed_zeros(*t, per);
    blocking(op, [&](auto& c) { c.scatter_bytes(p.cspan(), mine.span(), r); });
    return unpack(mine.cspan(), *t, t->is_list());
  }
  if (!is_root) {
    if (!given(out))
      FMI_THROW(UsageError, "scatter: peer ", peer_id_,
                " (not the root) needs out= (an array of one block's size) or a type");
    py::array o = output_array(out, op, "out");
    blocking(op, [&](auto& c) { c.scatter_bytes({}, mbytes(o), r); });
    return py::reinterpret_borrow<py::object>(out);
  }
  py::array a = input_array(obj, op);
  py::array o = given(out) ? output_array(out, op, "out")
                           : empty_array(a.dtype(), block_shape(a, num_peers_, op));
  a = unaliased(a, o);
  blocking(op, [&](auto& c) { c.scatter_bytes(cbytes(a), mbytes(o), r); });
  return given(out) ? py::reinterpret_borrow<py::object>(out) : py::object(o);
}

py::array PyCommunicator::reduce_target(py::handle out, const py::array& in,
                                        const std::vector<py::ssize_t>& shape, const char* op) {
  if (!given(out)) return empty_array(in.dtype(), shape);
  py::array o = output_array(out, op, "out");
  // Reductions interpret the bytes: the result has the input's dtype.
  if (!o.dtype().equal(in.dtype()))
    FMI_THROW(UsageError, op, ": out has dtype ", py::str(o.dtype()).cast<std::string>(),
              ", the input has ", py::str(in.dtype()).cast<std::string>(),
              "; a reduction writes the input's dtype");
  return o;
}

py::object PyCommunicator::reduce(py::handle obj, long long root, py::handle func,
                                  py::handle type, py::handle out) {
  const char* op = "reduce";
  const unsigned r = peer_arg(root, op, "root");
  const Func& f = func_arg(func, op);
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  const bool is_root = r == peer_id_;
  if (t) {
    Packed p = pack(obj, *t, t->is_list(), expected_count(*t), op);
    Reduction red(f, *t, t->is_list(), op);
    Packed res = packed_zeros(*t, is_root ? p.count : 0);
    blocking(op, [&](auto& c) { c.reduce_bytes(p.cspan(), res.span(), r, red.op()); });
    if (!is_root) return py::none();
    return unpack(res.cspan(), *t, t->is_list());
  }
  py::array a = input_array(obj, op);
  Reduction red(f, a.dtype(), shape_of(a), op);
  if (!is_root) {
    blocking(op, [&](auto& c) { c.reduce_bytes(cbytes(a), {}, r, red.op()); });
    return py::none();
  }
  py::array o = reduce_target(out, a, shape_of(a), op);
  a = unaliased(a, o);
  blocking(op, [&](auto& c) { c.reduce_bytes(cbytes(a), mbytes(o), r, red.op()); });
  return given(out) ? py::reinterpret_borrow<py::object>(out) : py::object(o);
}

// allreduce and scan: every peer gets a result shaped like its own input.
py::object PyCommunicator::elementwise_reduction(const char* op, ReduceCall call, py::handle obj,
                                                 py::handle func, py::handle type,
                                                 py::handle out) {
  const Func& f = func_arg(func, op);
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  if (t) {
    Packed p = pack(obj, *t, t->is_list(), expected_count(*t), op);
    Reduction red(f, *t, t->is_list(), op);
    Packed res = packed_zeros(*t, p.count);
    blocking(op, [&](auto& c) { (c.*call)(p.cspan(), res.span(), red.op()); });
    return unpack(res.cspan(), *t, t->is_list());
  }
  py::array a = input_array(obj, op);
  Reduction red(f, a.dtype(), shape_of(a), op);
  py::array o = reduce_target(out, a, shape_of(a), op);
  a = unaliased(a, o);
  blocking(op, [&](auto& c) { (c.*call)(cbytes(a), mbytes(o), red.op()); });
  return given(out) ? py::reinterpret_borrow<py::object>(out) : py::object(o);
}

py::object PyCommunicator::allreduce(py::handle obj, py::handle func, py::handle type,
                                     py::handle out) {
  return elementwise_reduction("allreduce", &FMI::Communicator::allreduce_bytes, obj, func, type,
                               out);
}

py::object PyCommunicator::scan(py::handle obj, py::handle func, py::handle type,
                                py::handle out) {
  return elementwise_reduction("scan", &FMI::Communicator::scan_bytes, obj, func, type, out);
}

py::object PyCommunicator::allgather(py::handle obj, py::handle type, py::handle out) {
  const char* op = "allgather";
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  if (t) {
    Packed p = pack(obj, *t, t->is_list(), expected_count(*t), op);
    Packed all = packed_zeros(*t, p.count * num_peers_);
    blocking(op, [&](auto& c) { c.allgather_bytes(p.cspan(), all.span()); });
    return unpack(all.cspan(), *t, true);
  }
  py::array a = input_array(obj, op);
  py::array o = given(out) ? output_array(out, op, "out")
                           : empty_array(a.dtype(), prepend(num_peers_, shape_of(a)));
  a = unaliased(a, o);
  blocking(op, [&](auto& c) { c.allgather_bytes(cbytes(a), mbytes(o)); });
  return given(out) ? py::reinterpret_borrow<py::object>(out) : py::object(o);
}

py::object PyCommunicator::alltoall(py::handle obj, py::handle type, py::handle out) {
  const char* op = "alltoall";
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  if (t) {
    // As for scatter: a list type describes the whole send list, a scalar type
    // means one value per peer.
    Packed p = pack(obj, *t, true, t->is_list() ? expected_count(*t) : num_peers_, op);
    Packed res = packed_zeros(*t, p.count);
    blocking(op, [&](auto& c) { c.alltoall_bytes(p.cspan(), res.span()); });
    return unpack(res.cspan(), *t, true);
  }
  py::array a = input_array(obj, op);
  py::array o = given(out) ? output_array(out, op, "out") : empty_array(a.dtype(), shape_of(a));
  a = unaliased(a, o);
  blocking(op, [&](auto& c) { c.alltoall_bytes(cbytes(a), mbytes(o)); });
  return given(out) ? py::reinterpret_borrow<py::object>(out) : py::object(o);
}

py::object PyCommunicator::reduce_scatter(py::handle obj, py::handle func, py::handle type,
                                          py::handle out) {
  const char* op = "reduce_scatter";
  const Func& f = func_arg(func, op);
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  if (t) {
    Packed p = pack(obj, *t, true, t->is_list() ? expected_count(*t) : num_peers_, op);
    if (p.count % num_peers_ != 0)
      FMI_THROW(UsageError, "reduce_scatter: a list of ", p.count,
                " elements cannot be split into ", num_peers_, " equal blocks");
    Reduction red(f, *t, t->is_list(), op);
    Packed res = packed_zeros(*t, p.count / num_peers_);
    blocking(op, [&](auto& c) { c.reduce_scatter_bytes(p.cspan(), res.span(), red.op()); });
    return unpack(res.cspan(), *t, t->is_list());
  }
  py::array a = input_array(obj, op);
  const auto bs = block_shape(a, num_peers_, op);
  Reduction red(f, a.dtype(), bs, op);
  py::array o = reduce_target(out, a, bs, op);
  a = unaliased(a, o);
  blocking(op, [&](auto& c) { c.reduce_scatter_bytes(cbytes(a), mbytes(o), red.op()); });
  return given(out) ? py::reinterpret_borrow<py::object>(out) : py::object(o);
}

}  // namespace fmipy
