#include "communicator.h"

#include <climits>
#include <cstdint>
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
    throw py::type_error(std::string(op) + ": func must be fmi.func(...), got '" + type_name(func) +
                         "'");
  return *func.cast<const Func*>();
}

bool given(py::handle h) { return h && !h.is_none(); }

void no_type_and_out(const TypeSpec* t, py::handle out, const char* op) {
  if (t && given(out))
    FMI_THROW(UsageError, op, ": pass either a type (Python values) or out= (a buffer), not both");
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
  if (!config.is_none())
    path = py::module_::import("os").attr("fspath")(config).cast<std::string>();
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

PyCommunicator::PyCommunicator(std::unique_ptr<FMI::Communicator> comm,
                               std::shared_ptr<std::mutex> mu)
    : comm_(std::move(comm)), mu_(std::move(mu)) {
  peer_id_ = comm_->peer_id();
  num_peers_ = comm_->num_peers();
  comm_name_ = comm_->comm_name();
}

std::unique_ptr<PyCommunicator> PyCommunicator::split(long long color, long long key) {
  auto int_arg = [](long long v, const char* name) {
    if (v < INT_MIN || v > INT_MAX)
      FMI_THROW(UsageError, "split: ", name, " ", v, " does not fit in a C int");
    return static_cast<int>(v);
  };
  const int c = int_arg(color, "color"), k = int_arg(key, "key");
  std::unique_ptr<FMI::Communicator> child;
  blocking("split", [&](auto& comm) { child = comm.split(c, k); });
  if (!child) return nullptr;  // None
  return std::unique_ptr<PyCommunicator>(new PyCommunicator(std::move(child), mu_));
}

std::unique_ptr<PyCommunicator> PyCommunicator::dup() {
  std::unique_ptr<FMI::Communicator> child;
  blocking("dup", [&](auto& comm) { child = comm.dup(); });
  return std::unique_ptr<PyCommunicator>(new PyCommunicator(std::move(child), mu_));
}

PyCommunicator::~PyCommunicator() {
  // No reduction check here (a destructor must not throw): the communicator that runs
  // a collective is referenced by that call, so it is never destroyed from inside it.
  py::gil_scoped_release nogil;
  std::lock_guard lk(*mu_);
  comm_.reset();
}

void PyCommunicator::finalize() {
  check_not_in_reduction("close");
  // Channels close connections and delete their objects: may block.
  py::gil_scoped_release nogil;
  std::lock_guard lk(*mu_);
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
  std::lock_guard lk(*mu_);
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
  if (!given(type) && is_object(obj)) {
    send_object(obj, d);
    return;
  }
  if (const TypeSpec* t = type_arg(type, op)) {
    Packed p = pack(obj, *t, t->is_list(), expected_count(*t), op);
    blocking(op, [&](auto& c) { c.send_bytes(p.cspan(), d); });
    return;
  }
  if (!numpy_importable()) {  // plain buffers (bytes, bytearray, ...) need no NumPy
    BufferView b(obj, false, op, "obj");
    blocking(op, [&](auto& c) { c.send_bytes(b.bytes(), d); });
    return;
  }
  py::array a = input_array(obj, op);
  blocking(op, [&](auto& c) { c.send_bytes(cbytes(a), d); });
}

namespace {
// Whether recv's first argument is a peer id rather than recv(buf, src)'s buffer.
// NumPy arrays have __index__ (for one-element integer arrays), and NumPy's
// integer scalars are buffers: an int-like buffer is a peer only when it is a
// NumPy scalar (NumPy is loaded then: nothing is imported here).
bool is_peer_arg(py::handle o) {
  if (PyLong_Check(o.ptr())) return true;
  if (!PyIndex_Check(o.ptr())) return false;
  if (!PyObject_CheckBuffer(o.ptr())) return true;
  py::object np = py::reinterpret_steal<py::object>(PyImport_GetModule(py::str("numpy").ptr()));
  if (!np || np.is_none()) {
    PyErr_Clear();
    return false;
  }
  return py::isinstance(o, np.attr("generic"));
}
}  // namespace

// The forms of recv (communicator.h). A first argument that is not a peer id is
// the buffer of recv(buf, src), mpi4py's Recv order.
py::object PyCommunicator::recv(py::handle src, py::handle type, py::handle out, bool status) {
  const char* op = "recv";
  auto peer = [&](py::handle p) {
    return peer_arg(py::reinterpret_borrow<py::object>(p).cast<long long>(), op, "source peer");
  };
  FMI::Status st{};
  if (!is_peer_arg(src)) {
    if (given(out))
      FMI_THROW(FMI::UsageError, "recv: recv(buf, src) takes its buffer once, not also as out=");
    if (!given(type) || !is_peer_arg(type))
      FMI_THROW(FMI::UsageError,
                "recv: recv(buf, src) needs the source peer (an int or "
                "fmi.any_source) as its second argument");
    recv_from(peer(type), py::none(), src, st);
    if (status) return py::cast(st);
    return py::int_(st.source);
  }
  py::object v = recv_from(peer(src), type, out, st);
  if (status) return py::make_tuple(v, py::cast(st));
  return v;
}

py::object PyCommunicator::recv_from(unsigned s, py::handle type, py::handle out, FMI::Status& st) {
  const char* op = "recv";
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  if (given(out)) {
    if (!numpy_importable()) {
      BufferView b(out, true, op, "out");
      blocking(op, [&](auto& c) { st = c.recv_bytes(b.bytes(), s); });
      return py::reinterpret_borrow<py::object>(out);
    }
    py::array o = output_array(out, op, "out");
    blocking(op, [&](auto& c) { st = c.recv_bytes(mbytes(o), s); });
    return py::reinterpret_borrow<py::object>(out);
  }
  if (!t) return recv_object(s, st);  // no type, no buffer: a pickled object
  Packed p = packed_zeros(*t, t->is_list() ? require_count(*t, op, peer_id_) : 1);
  blocking(op, [&](auto& c) { st = c.recv_bytes(p.span(), s); });
  return unpack(p.cspan(), *t, t->is_list());
}

FMI::Status PyCommunicator::probe(long long src) {
  const unsigned s = peer_arg(src, "probe", "source peer");
  FMI::Status st{};
  blocking("probe", [&](auto& c) { st = c.probe(s); });
  return st;
}

py::object PyCommunicator::iprobe(long long src) {
  const unsigned s = peer_arg(src, "iprobe", "source peer");
  std::optional<FMI::Status> st;
  blocking("iprobe", [&](auto& c) { st = c.iprobe(s); });
  if (!st) return py::none();
  return py::cast(*st);
}

// ---- collectives ---------------------------------------------------------------------

py::object PyCommunicator::bcast(py::handle obj, long long root, py::handle type, py::handle out) {
  const char* op = "bcast";
  const unsigned r = peer_arg(root, op, "root");
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  const bool is_root = r == peer_id_;
  // Objects: no type, no out, and a value that is not a buffer (None off the root).
  if (!t && !given(out) && is_object(obj)) return bcast_object(obj, r);
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

py::object PyCommunicator::gather(py::handle obj, long long root, py::handle type, py::handle out) {
  const char* op = "gather";
  const unsigned r = peer_arg(root, op, "root");
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  if (!t && !given(out) && is_object(obj)) return gather_objects(obj, r, op);
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
  if (!t && !given(out) && is_object(obj)) return scatter_objects(obj, r);
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
        FMI_THROW(UsageError, "scatter: ", t->repr(),
                  " (the root's whole list) cannot be split into ", num_peers_, " equal parts");
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

py::object PyCommunicator::reduce(py::handle obj, long long root, py::handle func, py::handle type,
                                  py::handle out) {
  const char* op = "reduce";
  const unsigned r = peer_arg(root, op, "root");
  const Func& f = func_arg(func, op);
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  if (!t && !given(out) && is_object(obj)) return reduce_objects(obj, f, Fold::reduce, r, op);
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
                                                 py::handle func, py::handle type, py::handle out) {
  const Func& f = func_arg(func, op);
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  if (!t && !given(out) && is_object(obj))
    return reduce_objects(
        obj, f, call == &FMI::Communicator::scan_bytes ? Fold::scan : Fold::allreduce, 0, op);
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

py::object PyCommunicator::scan(py::handle obj, py::handle func, py::handle type, py::handle out) {
  return elementwise_reduction("scan", &FMI::Communicator::scan_bytes, obj, func, type, out);
}

py::object PyCommunicator::allgather(py::handle obj, py::handle type, py::handle out) {
  const char* op = "allgather";
  const TypeSpec* t = type_arg(type, op);
  no_type_and_out(t, out, op);
  if (!t && !given(out) && is_object(obj)) return allgather_objects(obj, op);
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
  if (!t && !given(out) && is_object(obj)) return alltoall_objects(obj);
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

// ---- non-blocking forms --------------------------------------------------------------
//
// The arguments are checked and converted here as by the array forms above (the
// same helpers, the same errors), the results' arrays are made here, and all of
// them go into the request, which holds them until the operation is complete.

namespace {
/// The output of an operation: out= (checked), or a new array of `shape`.
py::array output_or_new(py::handle out, const py::dtype& dt, const std::vector<py::ssize_t>& shape,
                        const char* op) {
  return given(out) ? output_array(out, op, "out") : empty_array(dt, shape);
}
py::object result_of(py::handle out, const py::array& o) {
  return given(out) ? py::reinterpret_borrow<py::object>(out) : py::object(o);
}
}  // namespace

template <typename F>
PyCommunicator::Req PyCommunicator::start(const char* op, Req r, F&& call) {
  blocking(op, [&](FMI::Communicator& c) { r->req_ = c.start_nonblocking([&] { call(c); }); });
  return r;
}

PyCommunicator::Req PyCommunicator::isend(py::handle obj, long long dest) {
  const char* op = "isend";
  const unsigned d = peer_arg(dest, op, "destination peer");
  auto r = std::make_shared<PyRequest>();
  if (!numpy_importable()) {
    auto& b = r->views_.emplace_back(std::make_unique<BufferView>(obj, false, op, "obj"));
    const ConstBytes data = b->bytes();
    return start(op, r, [&](auto& c) { c.send_bytes(data, d); });
  }
  py::array a = input_array(obj, op);
  r->keep_.push_back(a);
  return start(op, r, [&](auto& c) { c.send_bytes(cbytes(a), d); });
}

PyCommunicator::Req PyCommunicator::irecv(py::handle out, long long src) {
  const char* op = "irecv";
  const unsigned s = peer_arg(src, op, "source peer");
  auto r = std::make_shared<PyRequest>();
  r->result_ = py::reinterpret_borrow<py::object>(out);
  if (!numpy_importable()) {
    auto& b = r->views_.emplace_back(std::make_unique<BufferView>(out, true, op, "out"));
    const Bytes data = b->bytes();
    return start(op, r, [&](auto& c) { c.recv_bytes(data, s); });
  }
  py::array o = output_array(out, op, "out");
  r->keep_.push_back(o);
  return start(op, r, [&](auto& c) { c.recv_bytes(mbytes(o), s); });
}

PyCommunicator::Req PyCommunicator::ibcast(py::handle obj, long long root, py::handle out) {
  const char* op = "ibcast";
  const unsigned rt = peer_arg(root, op, "root");
  auto r = std::make_shared<PyRequest>();
  py::array a;
  if (rt == peer_id_) {
    if (!given(obj) && !given(out))
      FMI_THROW(UsageError, "ibcast: the root (peer ", peer_id_, ") must pass the array to send");
    py::handle src = given(obj) ? obj : out;
    a = input_array(src, op);
    r->result_ = py::reinterpret_borrow<py::object>(src);
    if (given(out) && !out.is(src)) {  // the root's out receives the value too
      py::array o = output_array(out, op, "out");
      if (o.nbytes() != a.nbytes())
        FMI_THROW(UsageError, "ibcast: out holds ", o.nbytes(), " bytes, obj holds ", a.nbytes());
      if (!overlap(cbytes(a), cbytes(o))) std::memcpy(mbytes(o).data(), a.data(), a.nbytes());
      a = o;
      r->result_ = py::reinterpret_borrow<py::object>(out);
    } else if (!a.writeable()) {
      a = numpy().attr("array")(a, py::arg("copy") = true);  // see bcast
    }
  } else {
    py::handle dst = given(out) ? out : obj;
    if (!given(dst))
      FMI_THROW(UsageError, "ibcast: peer ", peer_id_,
                " (not the root) needs a buffer to receive into: pass out= (or a writable obj)");
    a = output_array(dst, op, given(out) ? "out" : "obj (the receive buffer off the root)");
    r->result_ = py::reinterpret_borrow<py::object>(dst);
  }
  r->keep_.push_back(a);
  return start(op, r, [&](auto& c) { c.bcast_bytes(mbytes(a), rt); });
}

PyCommunicator::Req PyCommunicator::ibarrier() {
  return start("ibarrier", std::make_shared<PyRequest>(), [](auto& c) { c.barrier(); });
}

PyCommunicator::Req PyCommunicator::igather(py::handle obj, long long root, py::handle out) {
  const char* op = "igather";
  const unsigned rt = peer_arg(root, op, "root");
  auto r = std::make_shared<PyRequest>();
  py::array a = input_array(obj, op);
  py::array o;
  if (rt == peer_id_) {
    o = output_or_new(out, a.dtype(), prepend(num_peers_, shape_of(a)), op);
    a = unaliased(a, o);
    r->result_ = result_of(out, o);
    r->keep_.push_back(o);
  }
  r->keep_.push_back(a);
  return start(
      op, r, [&](auto& c) { c.gather_bytes(cbytes(a), rt == peer_id_ ? mbytes(o) : Bytes{}, rt); });
}

PyCommunicator::Req PyCommunicator::iscatter(py::handle obj, long long root, py::handle out) {
  const char* op = "iscatter";
  const unsigned rt = peer_arg(root, op, "root");
  auto r = std::make_shared<PyRequest>();
  py::array a, o;
  if (rt == peer_id_) {
    a = input_array(obj, op);
    o = output_or_new(out, a.dtype(), block_shape(a, num_peers_, op), op);
    a = unaliased(a, o);
    r->keep_.push_back(a);
  } else {
    if (!given(out))
      FMI_THROW(UsageError, "iscatter: peer ", peer_id_,
                " (not the root) needs out= (an array of one block's size)");
    o = output_array(out, op, "out");
  }
  r->keep_.push_back(o);
  r->result_ = result_of(out, o);
  return start(op, r, [&](auto& c) {
    c.scatter_bytes(rt == peer_id_ ? cbytes(a) : ConstBytes{}, mbytes(o), rt);
  });
}

PyCommunicator::Req PyCommunicator::ireduce(py::handle obj, long long root, py::handle func,
                                            py::handle out) {
  const char* op = "ireduce";
  const unsigned rt = peer_arg(root, op, "root");
  const Func& f = func_arg(func, op);
  auto r = std::make_shared<PyRequest>();
  py::array a = input_array(obj, op);
  r->reduction_ = std::make_unique<Reduction>(f, a.dtype(), shape_of(a), op);
  py::array o;
  if (rt == peer_id_) {
    o = reduce_target(out, a, shape_of(a), op);
    a = unaliased(a, o);
    r->result_ = result_of(out, o);
    r->keep_.push_back(o);
  }
  r->keep_.push_back(a);
  const FMI::Utils::ReduceOp& red = r->reduction_->op();
  return start(op, r, [&](auto& c) {
    c.reduce_bytes(cbytes(a), rt == peer_id_ ? mbytes(o) : Bytes{}, rt, red);
  });
}

PyCommunicator::Req PyCommunicator::ielementwise(const char* op, bool scan, py::handle obj,
                                                 py::handle func, py::handle out) {
  const Func& f = func_arg(func, op);
  auto r = std::make_shared<PyRequest>();
  py::array a = input_array(obj, op);
  r->reduction_ = std::make_unique<Reduction>(f, a.dtype(), shape_of(a), op);
  py::array o = reduce_target(out, a, shape_of(a), op);
  a = unaliased(a, o);
  r->keep_ = {a, o};
  r->result_ = result_of(out, o);
  const FMI::Utils::ReduceOp& red = r->reduction_->op();
  return start(op, r, [&](auto& c) {
    if (scan)
      c.scan_bytes(cbytes(a), mbytes(o), red);
    else
      c.allreduce_bytes(cbytes(a), mbytes(o), red);
  });
}

PyCommunicator::Req PyCommunicator::iallreduce(py::handle obj, py::handle func, py::handle out) {
  return ielementwise("iallreduce", false, obj, func, out);
}

PyCommunicator::Req PyCommunicator::iscan(py::handle obj, py::handle func, py::handle out) {
  return ielementwise("iscan", true, obj, func, out);
}

PyCommunicator::Req PyCommunicator::iallgather(py::handle obj, py::handle out) {
  const char* op = "iallgather";
  auto r = std::make_shared<PyRequest>();
  py::array a = input_array(obj, op);
  py::array o = output_or_new(out, a.dtype(), prepend(num_peers_, shape_of(a)), op);
  a = unaliased(a, o);
  r->keep_ = {a, o};
  r->result_ = result_of(out, o);
  return start(op, r, [&](auto& c) { c.allgather_bytes(cbytes(a), mbytes(o)); });
}

PyCommunicator::Req PyCommunicator::ialltoall(py::handle obj, py::handle out) {
  const char* op = "ialltoall";
  auto r = std::make_shared<PyRequest>();
  py::array a = input_array(obj, op);
  py::array o = output_or_new(out, a.dtype(), shape_of(a), op);
  a = unaliased(a, o);
  r->keep_ = {a, o};
  r->result_ = result_of(out, o);
  return start(op, r, [&](auto& c) { c.alltoall_bytes(cbytes(a), mbytes(o)); });
}

PyCommunicator::Req PyCommunicator::ireduce_scatter(py::handle obj, py::handle func,
                                                    py::handle out) {
  const char* op = "ireduce_scatter";
  const Func& f = func_arg(func, op);
  auto r = std::make_shared<PyRequest>();
  py::array a = input_array(obj, op);
  const auto bs = block_shape(a, num_peers_, op);
  r->reduction_ = std::make_unique<Reduction>(f, a.dtype(), bs, op);
  py::array o = reduce_target(out, a, bs, op);
  a = unaliased(a, o);
  r->keep_ = {a, o};
  r->result_ = result_of(out, o);
  const FMI::Utils::ReduceOp& red = r->reduction_->op();
  return start(op, r, [&](auto& c) { c.reduce_scatter_bytes(cbytes(a), mbytes(o), red); });
}

// ---- pickled objects -------------------------------------------------------------------
//
// Every form sends the payload sizes first (one uint64 per payload, over a
// fixed-size operation), then the payloads over the matching variable-size one.
// Pickling and unpickling hold the GIL; the transfers release it.

namespace {
ConstBytes u64_bytes(const std::uint64_t& v) { return {reinterpret_cast<const std::byte*>(&v), 8}; }
template <typename V>
Bytes vec_bytes(V& v) {
  return {reinterpret_cast<std::byte*>(v.data()), v.size() * sizeof(v[0])};
}
std::vector<std::size_t> offsets_of(const std::vector<std::size_t>& sizes) {
  std::vector<std::size_t> d(sizes.size() + 1, 0);
  for (std::size_t i = 0; i < sizes.size(); ++i) d[i + 1] = d[i] + sizes[i];
  return d;
}
/// A list of exactly n items on the root of scatter / every peer of alltoall.
py::list list_of_n(py::handle obj, unsigned n, const char* op, const char* who) {
  if (!PySequence_Check(obj.ptr()) || PyUnicode_Check(obj.ptr()) || PyBytes_Check(obj.ptr()))
    throw py::type_error(std::string(op) + ": " + who +
                         " passes a list of one object per peer, got '" + type_name(obj) + "'");
  py::list l(py::reinterpret_borrow<py::sequence>(obj));
  if (l.size() != n)
    FMI_THROW(UsageError, op, ": ", who, " passes a list of ", l.size(),
              " objects, needs one per peer (", n, ")");
  return l;
}
}  // namespace

// send, recv and bcast move the out-of-band buffers straight from the sender's
// arrays into the receiver's message: first the sizes (payload, head), then the
// head, then each buffer at its place in the receiver's bytearray.
void PyCommunicator::send_object(py::handle obj, unsigned dest) {
  const char* op = "send";
  Encoded e = encode(obj, op);
  const std::uint64_t sizes[2] = {e.total, e.head.size()};
  blocking(op, [&](auto& c) {
    c.send_bytes(ConstBytes(reinterpret_cast<const std::byte*>(sizes), sizeof sizes), dest);
    c.send_bytes(e.head, dest);
    for (const auto& b : e.bufs) c.send_bytes(b->bytes(), dest);
  });
}

// From any source: the probe names the sender of the next message, whatever its
// size, and the rest of the object comes from that sender (per-pair order).
py::object PyCommunicator::recv_object(unsigned src, FMI::Status& st) {
  const char* op = "recv";
  std::uint64_t sizes[2] = {0, 0};
  blocking(op, [&](auto& c) {
    if (src == FMI::any_source) src = c.probe(src).source;
    c.recv_bytes(Bytes(reinterpret_cast<std::byte*>(sizes), sizeof sizes), src);
  });
  st = FMI::Status{src, std::size_t(sizes[0])};
  if (sizes[1] > sizes[0] || sizes[1] < 16)
    FMI_THROW(FMI::PeerError, "recv: peer ", src, " sent an object header of ", sizes[1],
              " bytes for ", sizes[0], "; did it call the object form of send?");
  py::object ba = new_bytearray(sizes[0]);
  Bytes into = bytearray_span(ba);
  blocking(op, [&](auto& c) { c.recv_bytes(into.first(sizes[1]), src); });
  const auto ranges = buffer_ranges(into.first(sizes[1]));
  for (const auto& [at, len] : ranges)
    if (at > into.size() || len > into.size() - at)
      FMI_THROW(FMI::PeerError, "recv: the object from peer ", src, " lists a buffer past its end");
  blocking(op, [&](auto& c) {
    for (const auto& [at, len] : ranges) c.recv_bytes(into.subspan(at, len), src);
  });
  return decode_object(ba, 0, sizes[0], op);
}

py::object PyCommunicator::bcast_object(py::handle obj, unsigned root) {
  const char* op = "bcast";
  const bool is_root = root == peer_id_;
  Encoded e;
  if (is_root) e = encode(obj, op);
  std::uint64_t sizes[2] = {e.total, e.head.size()};
  blocking(op, [&](auto& c) {
    c.bcast_bytes(Bytes(reinterpret_cast<std::byte*>(sizes), sizeof sizes), root);
  });
  if (is_root) {
    // Some bcast algorithms store every chunk in every peer's buffer, the root's
    // too (identical bytes): a read-only buffer is broadcast from a copy.
    std::vector<std::vector<std::byte>> copies;
    std::vector<Bytes> parts;
    copies.reserve(e.bufs.size());
    for (const auto& b : e.bufs) {
      const ConstBytes x = b->bytes();
      if (b->readonly()) {
        copies.emplace_back(x.begin(), x.end());
        parts.emplace_back(copies.back());
      } else {
        parts.emplace_back(const_cast<std::byte*>(x.data()), x.size());
      }
    }
    blocking(op, [&](auto& c) {
      c.bcast_bytes(e.head, root);
      for (Bytes p : parts) c.bcast_bytes(p, root);
    });
    return py::reinterpret_borrow<py::object>(obj);  // the root keeps its own object
  }
  if (sizes[1] > sizes[0] || sizes[1] < 16)
    FMI_THROW(FMI::PeerError, "bcast: the root sent an object header of ", sizes[1], " bytes for ",
              sizes[0], "; did every peer call the object form?");
  py::object ba = new_bytearray(sizes[0]);
  Bytes into = bytearray_span(ba);
  blocking(op, [&](auto& c) { c.bcast_bytes(into.first(sizes[1]), root); });
  const auto ranges = buffer_ranges(into.first(sizes[1]));
  for (const auto& [at, len] : ranges)
    if (at > into.size() || len > into.size() - at)
      FMI_THROW(FMI::PeerError, "bcast: the root's object lists a buffer past its end");
  blocking(op, [&](auto& c) {
    for (const auto& [at, len] : ranges) c.bcast_bytes(into.subspan(at, len), root);
  });
  return decode_object(ba, 0, sizes[0], op);
}

py::list PyCommunicator::allgather_objects(py::handle obj, const char* op) {
  std::vector<std::byte> payload = encode_object(obj, op);
  const std::uint64_t mine = payload.size();
  std::vector<std::uint64_t> all(num_peers_);
  blocking(op, [&](auto& c) { c.allgather_bytes(u64_bytes(mine), vec_bytes(all)); });
  const std::vector<std::size_t> sizes(all.begin(), all.end());
  const auto d = offsets_of(sizes);
  py::object ba = new_bytearray(d.back());
  Bytes into = bytearray_span(ba);
  blocking(op, [&](auto& c) { c.allgatherv_bytes(payload, into, sizes); });
  py::list out;
  for (unsigned p = 0; p < num_peers_; ++p) out.append(decode_object(ba, d[p], sizes[p], op));
  return out;
}

// gatherv needs every peer's size on every peer (a tree's inner peers forward
// their subtree), so the sizes are all-gathered, not gathered.
py::object PyCommunicator::gather_objects(py::handle obj, unsigned root, const char* op) {
  std::vector<std::byte> payload = encode_object(obj, op);
  const std::uint64_t mine = payload.size();
  std::vector<std::uint64_t> all(num_peers_);
  blocking(op, [&](auto& c) { c.allgather_bytes(u64_bytes(mine), vec_bytes(all)); });
  const std::vector<std::size_t> sizes(all.begin(), all.end());
  const auto d = offsets_of(sizes);
  const bool is_root = root == peer_id_;
  py::object ba = new_bytearray(is_root ? d.back() : 0);
  Bytes into = bytearray_span(ba);
  blocking(op, [&](auto& c) { c.gatherv_bytes(payload, into, sizes, root); });
  if (!is_root) return py::none();
  py::list out;
  for (unsigned p = 0; p < num_peers_; ++p) out.append(decode_object(ba, d[p], sizes[p], op));
  return out;
}

py::object PyCommunicator::scatter_objects(py::handle obj, unsigned root) {
  const char* op = "scatter";
  const bool is_root = root == peer_id_;
  std::vector<std::uint64_t> all(num_peers_, 0);
  std::vector<std::byte> packed;
  if (is_root) {
    py::list items = list_of_n(obj, num_peers_, op, "the root");
    for (unsigned p = 0; p < num_peers_; ++p) {
      std::vector<std::byte> one = encode_object(items[p], op);
      all[p] = one.size();
      packed.insert(packed.end(), one.begin(), one.end());
    }
  }
  blocking(op, [&](auto& c) { c.bcast_bytes(vec_bytes(all), root); });
  const std::vector<std::size_t> sizes(all.begin(), all.end());
  py::object ba = new_bytearray(sizes[peer_id_]);
  Bytes into = bytearray_span(ba);
  blocking(op, [&](auto& c) { c.scatterv_bytes(packed, sizes, into, root); });
  return decode_object(ba, 0, sizes[peer_id_], op);
}

py::object PyCommunicator::alltoall_objects(py::handle obj) {
  const char* op = "alltoall";
  py::list items = list_of_n(obj, num_peers_, op, "every peer");
  std::vector<std::uint64_t> out_sizes(num_peers_), in_sizes(num_peers_);
  std::vector<std::byte> packed;
  for (unsigned p = 0; p < num_peers_; ++p) {
    std::vector<std::byte> one = encode_object(items[p], op);
    out_sizes[p] = one.size();
    packed.insert(packed.end(), one.begin(), one.end());
  }
  blocking(op, [&](auto& c) { c.alltoall_bytes(vec_bytes(out_sizes), vec_bytes(in_sizes)); });
  const std::vector<std::size_t> sc(out_sizes.begin(), out_sizes.end());
  const std::vector<std::size_t> rc(in_sizes.begin(), in_sizes.end());
  const auto d = offsets_of(rc);
  py::object ba = new_bytearray(d.back());
  Bytes into = bytearray_span(ba);
  blocking(op, [&](auto& c) { c.alltoallv_bytes(packed, sc, into, rc); });
  py::list res;
  for (unsigned p = 0; p < num_peers_; ++p) res.append(decode_object(ba, d[p], rc[p], op));
  return res;
}

// Objects are combined by Python code, which cannot run inside the algorithms
// without the GIL for every step: the operands are collected (gather or allgather)
// and folded left to right in peer order here, which is right for any function
// (commutative or not) and gives every peer of an allreduce the same result.
py::object PyCommunicator::reduce_objects(py::handle obj, const Func& f, Fold kind, unsigned root,
                                          const char* op) {
  py::object fn = object_operator(static_cast<int>(f.op), f.fn);
  py::object all =
      kind == Fold::reduce ? gather_objects(obj, root, op) : py::object(allgather_objects(obj, op));
  if (all.is_none()) return py::none();
  py::list l = all.cast<py::list>();
  const std::size_t upto = kind == Fold::scan ? peer_id_ + 1 : l.size();
  py::object acc = l[0];
  for (std::size_t p = 1; p < upto; ++p) acc = fn(acc, l[p]);
  return acc;
}

// ---- variable-size collectives on buffers -----------------------------------------
// comm.gatherv / scatterv / allgatherv / alltoallv on buffer-protocol objects
// (NumPy arrays, bytes, bytearray, memoryview, array.array). Counts are elements of
// the buffer's item size (the itemsize of its format: 8 for a float64 array, 1 for
// bytes); blocks are packed in peer order. Buffers are taken through the buffer
// protocol itself, so these calls need no NumPy. Outputs must be writable and
// C-contiguous and are filled in place; the call returns the output (None for the
// recv of gatherv off the root, which may be None).

namespace {

std::vector<std::size_t> counts_arg(py::handle counts, const char* op, const char* name) {
  if (!PySequence_Check(counts.ptr()) || PyUnicode_Check(counts.ptr()))
    throw py::type_error(std::string(op) + ": " + name + " must be a sequence of ints, got '" +
                         type_name(counts) + "'");
  std::vector<std::size_t> out;
  for (py::handle x : py::reinterpret_borrow<py::sequence>(counts)) {
    if (!PyIndex_Check(x.ptr()))
      throw py::type_error(std::string(op) + ": " + name + " must hold ints, got '" + type_name(x) +
                           "'");
    const long long v = x.cast<long long>();
    if (v < 0) FMI_THROW(UsageError, op, ": ", name, "[", out.size(), "] = ", v, " is negative");
    out.push_back(static_cast<std::size_t>(v));
  }
  return out;
}

// The unit of `counts`: the item size of the buffer they describe, or of the
// other one when that buffer is absent (gatherv's recv off the root, ...).
std::size_t unit_of(const BufferView& described, const BufferView& other) {
  if (described.held()) return described.itemsize();
  return other.held() ? other.itemsize() : 1;
}

}  // namespace

// Each form runs blocking or, for its i-form, non-blocking: the buffers are held
// by the request in both cases (the blocking form drops it on return).
template <typename F>
PyCommunicator::Req PyCommunicator::run_v(const char* op, bool nb, Req r, F&& call) {
  if (nb) return start(op, std::move(r), std::forward<F>(call));
  blocking(op, call);
  return r;
}

PyCommunicator::Req PyCommunicator::gatherv_run(bool nb, py::handle send, py::handle recv,
                                                py::handle recv_counts, long long root) {
  const char* op = nb ? "igatherv" : "gatherv";
  const unsigned r = peer_arg(root, op, "root");
  auto req = std::make_shared<PyRequest>();
  const auto& s = *req->views_.emplace_back(std::make_unique<BufferView>(send, false, op, "send"));
  const auto& o =
      *req->views_.emplace_back(std::make_unique<BufferView>(recv, true, op, "recv", true));
  if (r == peer_id_ && !o.held())
    FMI_THROW(UsageError, op, ": the root (peer ", peer_id_, ") needs a recv buffer");
  const std::size_t es = unit_of(o, s);
  FMI::Communicator::check_elements(op, "send buffer", s.bytes().size(), es);
  const auto counts = FMI::Communicator::counts_in_bytes(
      op, "recv_counts", counts_arg(recv_counts, op, "recv_counts"), es);
  if (r == peer_id_) req->result_ = py::reinterpret_borrow<py::object>(recv);
  return run_v(op, nb, req, [&](auto& c) { c.gatherv_bytes(s.bytes(), o.bytes(), counts, r); });
}

PyCommunicator::Req PyCommunicator::scatterv_run(bool nb, py::handle send, py::handle send_counts,
                                                 py::handle recv, long long root) {
  const char* op = nb ? "iscatterv" : "scatterv";
  const unsigned r = peer_arg(root, op, "root");
  auto req = std::make_shared<PyRequest>();
  const auto& s =
      *req->views_.emplace_back(std::make_unique<BufferView>(send, false, op, "send", true));
  if (r == peer_id_ && !s.held())
    FMI_THROW(UsageError, op, ": the root (peer ", peer_id_, ") needs a send buffer");
  const auto& o = *req->views_.emplace_back(std::make_unique<BufferView>(recv, true, op, "recv"));
  const std::size_t es = unit_of(s, o);
  FMI::Communicator::check_elements(op, "recv buffer", o.bytes().size(), es);
  const auto counts = FMI::Communicator::counts_in_bytes(
      op, "send_counts", counts_arg(send_counts, op, "send_counts"), es);
  req->result_ = py::reinterpret_borrow<py::object>(recv);
  return run_v(op, nb, req, [&](auto& c) { c.scatterv_bytes(s.bytes(), counts, o.bytes(), r); });
}

PyCommunicator::Req PyCommunicator::allgatherv_run(bool nb, py::handle send, py::handle recv,
                                                   py::handle recv_counts) {
  const char* op = nb ? "iallgatherv" : "allgatherv";
  auto req = std::make_shared<PyRequest>();
  const auto& s = *req->views_.emplace_back(std::make_unique<BufferView>(send, false, op, "send"));
  const auto& o = *req->views_.emplace_back(std::make_unique<BufferView>(recv, true, op, "recv"));
  const std::size_t es = o.itemsize();
  FMI::Communicator::check_elements(op, "send buffer", s.bytes().size(), es);
  const auto counts = FMI::Communicator::counts_in_bytes(
      op, "recv_counts", counts_arg(recv_counts, op, "recv_counts"), es);
  req->result_ = py::reinterpret_borrow<py::object>(recv);
  return run_v(op, nb, req, [&](auto& c) { c.allgatherv_bytes(s.bytes(), o.bytes(), counts); });
}

PyCommunicator::Req PyCommunicator::alltoallv_run(bool nb, py::handle send, py::handle send_counts,
                                                  py::handle recv, py::handle recv_counts) {
  const char* op = nb ? "ialltoallv" : "alltoallv";
  auto req = std::make_shared<PyRequest>();
  const auto& s = *req->views_.emplace_back(std::make_unique<BufferView>(send, false, op, "send"));
  const auto& o = *req->views_.emplace_back(std::make_unique<BufferView>(recv, true, op, "recv"));
  const auto sc = FMI::Communicator::counts_in_bytes(
      op, "send_counts", counts_arg(send_counts, op, "send_counts"), s.itemsize());
  const auto rc = FMI::Communicator::counts_in_bytes(
      op, "recv_counts", counts_arg(recv_counts, op, "recv_counts"), o.itemsize());
  req->result_ = py::reinterpret_borrow<py::object>(recv);
  return run_v(op, nb, req, [&](auto& c) { c.alltoallv_bytes(s.bytes(), sc, o.bytes(), rc); });
}

py::object PyCommunicator::gatherv(py::handle send, py::handle recv, py::handle recv_counts,
                                   long long root) {
  return gatherv_run(false, send, recv, recv_counts, root)->result_;
}
py::object PyCommunicator::scatterv(py::handle send, py::handle send_counts, py::handle recv,
                                    long long root) {
  return scatterv_run(false, send, send_counts, recv, root)->result_;
}
py::object PyCommunicator::allgatherv(py::handle send, py::handle recv, py::handle recv_counts) {
  return allgatherv_run(false, send, recv, recv_counts)->result_;
}
py::object PyCommunicator::alltoallv(py::handle send, py::handle send_counts, py::handle recv,
                                     py::handle recv_counts) {
  return alltoallv_run(false, send, send_counts, recv, recv_counts)->result_;
}
PyCommunicator::Req PyCommunicator::igatherv(py::handle send, py::handle recv,
                                             py::handle recv_counts, long long root) {
  return gatherv_run(true, send, recv, recv_counts, root);
}
PyCommunicator::Req PyCommunicator::iscatterv(py::handle send, py::handle send_counts,
                                              py::handle recv, long long root) {
  return scatterv_run(true, send, send_counts, recv, root);
}
PyCommunicator::Req PyCommunicator::iallgatherv(py::handle send, py::handle recv,
                                                py::handle recv_counts) {
  return allgatherv_run(true, send, recv, recv_counts);
}
PyCommunicator::Req PyCommunicator::ialltoallv(py::handle send, py::handle send_counts,
                                               py::handle recv, py::handle recv_counts) {
  return alltoallv_run(true, send, send_counts, recv, recv_counts);
}

}  // namespace fmipy
