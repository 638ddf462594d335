// The Python module `fmi`: bindings of the FMI communicator (see docs/python.md).
#include <pybind11/chrono.h>
#include <pybind11/eval.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>

#include "communicator.h"
#include "fmi/errors.h"
#include "fmi/inproc.h"
#include "lambda_handler_py.h"  // generated from lambda_handler.py

#ifndef FMI_PYTHON_VERSION
#define FMI_PYTHON_VERSION "0.0.0"
#endif

namespace py = pybind11;
using namespace pybind11::literals;
using fmipy::DataType;
using fmipy::Func;
using fmipy::OpKind;
using fmipy::PyCommunicator;
using fmipy::TypeSpec;

namespace {

// The exception classes live as long as the interpreter (owned by the module).
PyObject* exc_error = nullptr;
PyObject* exc_timeout = nullptr;
PyObject* exc_config = nullptr;
PyObject* exc_usage = nullptr;
PyObject* exc_peer = nullptr;
PyObject* exc_channel = nullptr;

PyObject* new_exception(py::module_& m, const char* name, const char* doc,
                        std::initializer_list<PyObject*> bases) {
  py::tuple b(bases.size());
  std::size_t i = 0;
  for (PyObject* base : bases) b[i++] = py::reinterpret_borrow<py::object>(base);
  const std::string qualified = std::string("fmi.") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, b.ptr(), nullptr);
  if (!cls) throw py::error_already_set();
  m.add_object(name, py::reinterpret_borrow<py::object>(cls));
  return cls;
}

void register_exceptions(py::module_& m) {
  exc_error = new_exception(m, "Error", "Root of every exception FMI raises.", {PyExc_Exception});
  exc_timeout = new_exception(
      m, "TimeoutError",
      "A blocking call passed its deadline (the channel's max_timeout). Also a builtin "
      "TimeoutError.",
      {exc_error, PyExc_TimeoutError});
  exc_config = new_exception(
      m, "ConfigError",
      "The configuration file is missing or unparsable, or a field is missing or ill-typed.",
      {exc_error});
  exc_usage = new_exception(
      m, "UsageError",
      "Invalid arguments: a peer id or root out of range, sizes or counts that do not match. "
      "Raised before anything is sent. Also a ValueError.",
      {exc_error, PyExc_ValueError});
  exc_peer = new_exception(m, "PeerError",
                           "A peer misbehaved or went away (connection closed, mismatched "
                           "message: peers called operations in different orders or sizes).",
                           {exc_error});
  exc_channel = new_exception(
      m, "ChannelError",
      "A channel's transport failed: a server unreachable, an error reply, an I/O error.",
      {exc_error});

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const FMI::TimeoutError& e) {
      PyErr_SetString(exc_timeout, e.what());
    } catch (const FMI::ConfigError& e) {
      PyErr_SetString(exc_config, e.what());
    } catch (const FMI::UsageError& e) {
      PyErr_SetString(exc_usage, e.what());
    } catch (const FMI::PeerError& e) {
      PyErr_SetString(exc_peer, e.what());
    } catch (const FMI::ChannelError& e) {
      PyErr_SetString(exc_channel, e.what());
    } catch (const FMI::Error& e) {
      PyErr_SetString(exc_error, e.what());
    }
  });
}

const char* kind_name(FMI::Comm::ChannelKind k) {
  return k == FMI::Comm::ChannelKind::peer_to_peer ? "peer_to_peer" : "object_store";
}

}  // namespace

PYBIND11_MODULE(fmi, m) {
  m.doc() =
      "FMI, the FaaS Message Interface: MPI-like communication between serverless "
      "functions. See docs/python.md.";
  m.attr("__version__") = FMI_PYTHON_VERSION;

  register_exceptions(m);

  py::list builtin;
#ifdef FMI_WITH_DIRECT
  builtin.append("Direct");
#endif
#ifdef FMI_WITH_REDIS
  builtin.append("Redis");
#endif
#ifdef FMI_WITH_S3
  builtin.append("S3");
#endif
  m.attr("builtin_channels") = builtin;

  m.attr("any_source") = FMI::any_source;
  py::class_<FMI::Status>(m, "Status",
                          "What a receive or probe found: the sending peer and the message's "
                          "size in bytes (of a pickled object: its pickle and buffers).")
      .def(py::init([](unsigned source, std::size_t bytes) {
             return FMI::Status{source, bytes};
           }),
           "source"_a, "bytes"_a)
      .def_readonly("source", &FMI::Status::source)
      .def_readonly("bytes", &FMI::Status::bytes)
      .def("__eq__",
           [](const FMI::Status& a, const FMI::Status& b) {
             return a.source == b.source && a.bytes == b.bytes;
           })
      .def("__repr__", [](const FMI::Status& s) {
        return "fmi.Status(source=" + std::to_string(s.source) +
               ", bytes=" + std::to_string(s.bytes) + ")";
      });

  py::enum_<DataType>(m, "datatypes", "Element types of fmi.types.")
      .value("int", DataType::int_, "A C int (32 bit).")
      .value("double", DataType::double_, "A C double.")
      .value("int_list", DataType::int_list, "A list of C ints.")
      .value("double_list", DataType::double_list, "A list of C doubles.");

  py::enum_<OpKind>(m, "op", "Reduction operators of fmi.func.")
      .value("sum", OpKind::sum)
      .value("prod", OpKind::prod)
      .value("max", OpKind::max)
      .value("min", OpKind::min)
      .value("custom", OpKind::custom);

  py::enum_<FMI::Utils::Hint>(m, "hints", "What the channel policy optimises for.")
      .value("fast", FMI::Utils::Hint::fast)
      .value("cheap", FMI::Utils::Hint::cheap);

  py::class_<TypeSpec>(m, "types",
                       "How a Python value is laid out: fmi.types(fmi.datatypes.int) or "
                       "fmi.types(fmi.datatypes.double_list, count).")
      .def(py::init([](DataType dt, py::object count) {
             TypeSpec t;
             t.dt = dt;
             if (!count.is_none()) {
               const long long c = count.cast<long long>();
               if (c < 0) FMI_THROW(FMI::UsageError, "fmi.types: count must be >= 0, got ", c);
               t.count = static_cast<std::size_t>(c);
               t.has_count = true;
             }
             return t;
           }),
           "datatype"_a, "count"_a = py::none())
      .def_property_readonly("datatype", [](const TypeSpec& t) { return t.dt; })
      .def_property_readonly("count",
                             [](const TypeSpec& t) -> py::object {
                               if (!t.has_count) return py::none();
                               return py::int_(t.count);
                             })
      .def("__repr__", &TypeSpec::repr);

  py::class_<Func>(m, "func",
                   "A reduction operator: fmi.func(fmi.op.sum) or fmi.func(fmi.op.custom, "
                   "callable, commutative, associative).")
      .def(py::init([](OpKind op, py::object function, bool commutative, bool associative) {
             Func f;
             f.op = op;
             if (op == OpKind::custom) {
               if (function.is_none() || !PyCallable_Check(function.ptr()))
                 throw py::type_error(
                     "fmi.func(fmi.op.custom, ...) needs a callable f(left, right) -> value");
               f.fn = function;
               f.commutative = commutative;
               f.associative = associative;
             } else if (!function.is_none()) {
               FMI_THROW(FMI::UsageError, "fmi.func: a callable is only taken with fmi.op.custom");
             }
             return f;
           }),
           "op"_a, "function"_a = py::none(), "commutative"_a = false, "associative"_a = false)
      .def_property_readonly("op", [](const Func& f) { return f.op; })
      .def_property_readonly("function",
                             [](const Func& f) -> py::object { return f.fn ? f.fn : py::none(); })
      .def_property_readonly("commutative", [](const Func& f) { return f.commutative; })
      .def_property_readonly("associative", [](const Func& f) { return f.associative; })
      .def("__repr__", &Func::repr);

  // ---- channels and the in-process hub ----------------------------------------------
  using FMI::Comm::Channel;
  py::class_<Channel, std::shared_ptr<Channel>>(
      m, "Channel", "A channel endpoint; give it to Communicator.register_channel.")
      .def_property_readonly("kind", [](const Channel& c) { return kind_name(c.kind()); })
      .def_property_readonly("max_timeout", &Channel::max_timeout);
  py::class_<FMI::Comm::PeerToPeerChannel, Channel, std::shared_ptr<FMI::Comm::PeerToPeerChannel>>(
      m, "PeerToPeerChannel");
  py::class_<FMI::Comm::ObjectStoreChannel, Channel,
             std::shared_ptr<FMI::Comm::ObjectStoreChannel>>(m, "ObjectStoreChannel");

  py::class_<FMI::Comm::InProcessHub, std::shared_ptr<FMI::Comm::InProcessHub>>(
      m, "InProcessHub",
      "Medium of an in-process communicator whose peers are threads of this process. "
      "max_timeout: seconds (float) or datetime.timedelta.")
      .def(py::init<FMI::Utils::peer_num, std::chrono::milliseconds>(), "num_peers"_a,
           "max_timeout"_a = std::chrono::milliseconds(30000))
      .def("p2p_endpoint", &FMI::Comm::InProcessHub::p2p_endpoint,
           "A point-to-point channel endpoint for one peer.")
      .def("store_endpoint", &FMI::Comm::InProcessHub::store_endpoint,
           "An object-store channel endpoint for one peer.")
      .def("objects_in_store", &FMI::Comm::InProcessHub::objects_in_store)
      .def("store_requests", &FMI::Comm::InProcessHub::store_requests);

  // ---- the communicator ---------------------------------------------------------------
  py::class_<PyCommunicator>(m, "Communicator",
                             "A group of peers. config_path=None creates no channel: "
                             "register them with register_channel (e.g. an InProcessHub).")
      .def(py::init<long long, long long, const py::object&, std::string, unsigned>(), "peer_id"_a,
           "num_peers"_a, "config_path"_a, "comm_name"_a, "faas_memory"_a = 128)
      .def_static("from_env", &PyCommunicator::from_env, "comm_name"_a = py::none(),
                  "faas_memory"_a = 128,
                  "A communicator from FMI_PEER_ID, FMI_NUM_PEERS, FMI_CONFIG, FMI_COMM_NAME "
                  "(set by fmirun).")
      .def(
          "__enter__", [](PyCommunicator& c) -> PyCommunicator& { return c; },
          py::return_value_policy::reference)
      .def("__exit__",
           [](PyCommunicator& c, py::args) {
             c.finalize();
             return false;
           })
      .def("finalize", &PyCommunicator::finalize,
           "Closes every channel (also done on garbage collection and at the end of a "
           "with-block).")
      .def_property_readonly("finalized", &PyCommunicator::finalized)
      .def_property_readonly("peer_id", &PyCommunicator::peer_id)
      .def_property_readonly("num_peers", &PyCommunicator::num_peers)
      .def_property_readonly("comm_name", &PyCommunicator::comm_name)
      .def_property_readonly("channels", &PyCommunicator::channels)
      .def("hint", &PyCommunicator::hint, "hint"_a)
      .def("get_hint", &PyCommunicator::get_hint)
      .def("register_channel", &PyCommunicator::register_channel, "name"_a, "channel"_a)
      .def("send", &PyCommunicator::send, "obj"_a, "dest"_a, "type"_a = py::none())
      .def("recv", &PyCommunicator::recv, "src"_a, "type"_a = py::none(), py::kw_only(),
           "out"_a = py::none(), "status"_a = false,
           "recv(src, type) / recv(src, out=buf) / recv(src) for a pickled object; src may be "
           "fmi.any_source; status=True returns (value, fmi.Status). recv(buf, src) receives "
           "into buf and returns the source (the fmi.Status with status=True).")
      .def("probe", &PyCommunicator::probe, "src"_a,
           "Waits for the next message from src (or fmi.any_source) without receiving it; "
           "returns its fmi.Status. The recv from status.source that follows receives it.")
      .def("iprobe", &PyCommunicator::iprobe, "src"_a,
           "probe that never waits: the fmi.Status, or None when nothing has arrived.")
      .def("bcast", &PyCommunicator::bcast, "obj"_a, "root"_a, "type"_a = py::none(), py::kw_only(),
           "out"_a = py::none())
      .def("barrier", &PyCommunicator::barrier)
      .def("gather", &PyCommunicator::gather, "obj"_a, "root"_a, "type"_a = py::none(),
           py::kw_only(), "out"_a = py::none())
      .def("scatter", &PyCommunicator::scatter, "obj"_a, "root"_a, "type"_a = py::none(),
           py::kw_only(), "out"_a = py::none())
      .def("reduce", &PyCommunicator::reduce, "obj"_a, "root"_a, "func"_a, "type"_a = py::none(),
           py::kw_only(), "out"_a = py::none())
      .def("allreduce", &PyCommunicator::allreduce, "obj"_a, "func"_a, "type"_a = py::none(),
           py::kw_only(), "out"_a = py::none())
      .def("scan", &PyCommunicator::scan, "obj"_a, "func"_a, "type"_a = py::none(), py::kw_only(),
           "out"_a = py::none())
      .def("allgather", &PyCommunicator::allgather, "obj"_a, "type"_a = py::none(), py::kw_only(),
           "out"_a = py::none())
      .def("alltoall", &PyCommunicator::alltoall, "obj"_a, "type"_a = py::none(), py::kw_only(),
           "out"_a = py::none())
      .def("reduce_scatter", &PyCommunicator::reduce_scatter, "obj"_a, "func"_a,
           "type"_a = py::none(), py::kw_only(), "out"_a = py::none())
      .def("split", &PyCommunicator::split, "color"_a, "key"_a = 0, py::keep_alive<0, 1>(),
           "Collective: the peers passing the same color >= 0 form a new Communicator, "
           "ranked by (key, peer_id); a negative color returns None. The new communicator "
           "uses this one's channels (no new connections) and keeps it alive; finalising "
           "this one makes the child unusable.")
      .def("dup", &PyCommunicator::dup, py::keep_alive<0, 1>(),
           "split(0, peer_id): the same peers in the same order, in a tag space of its own.")
      .def("gatherv", &PyCommunicator::gatherv, "send"_a, "recv"_a, "recv_counts"_a, "root"_a,
           "recv on root receives recv_counts[p] elements from each peer p, packed in peer "
           "order (recv may be None elsewhere).")
      .def("scatterv", &PyCommunicator::scatterv, "send"_a, "send_counts"_a, "recv"_a, "root"_a,
           "send on root holds send_counts[p] elements for each peer p (send may be None "
           "elsewhere).")
      .def("allgatherv", &PyCommunicator::allgatherv, "send"_a, "recv"_a, "recv_counts"_a)
      .def("alltoallv", &PyCommunicator::alltoallv, "send"_a, "send_counts"_a, "recv"_a,
           "recv_counts"_a)
      // Non-blocking forms (docs/nonblocking.md): buffers only; each returns an
      // fmi.Request whose wait() returns the output.
      .def("isend", &PyCommunicator::isend, "obj"_a, "dest"_a)
      .def("irecv", &PyCommunicator::irecv, "out"_a, "src"_a)
      .def("ibcast", &PyCommunicator::ibcast, "obj"_a, "root"_a, py::kw_only(),
           "out"_a = py::none())
      .def("ibarrier", &PyCommunicator::ibarrier)
      .def("igather", &PyCommunicator::igather, "obj"_a, "root"_a, py::kw_only(),
           "out"_a = py::none())
      .def("iscatter", &PyCommunicator::iscatter, "obj"_a, "root"_a, py::kw_only(),
           "out"_a = py::none())
      .def("ireduce", &PyCommunicator::ireduce, "obj"_a, "root"_a, "func"_a, py::kw_only(),
           "out"_a = py::none())
      .def("iallreduce", &PyCommunicator::iallreduce, "obj"_a, "func"_a, py::kw_only(),
           "out"_a = py::none())
      .def("iscan", &PyCommunicator::iscan, "obj"_a, "func"_a, py::kw_only(), "out"_a = py::none())
      .def("iallgather", &PyCommunicator::iallgather, "obj"_a, py::kw_only(), "out"_a = py::none())
      .def("ialltoall", &PyCommunicator::ialltoall, "obj"_a, py::kw_only(), "out"_a = py::none())
      .def("ireduce_scatter", &PyCommunicator::ireduce_scatter, "obj"_a, "func"_a, py::kw_only(),
           "out"_a = py::none())
      .def("igatherv", &PyCommunicator::igatherv, "send"_a, "recv"_a, "recv_counts"_a, "root"_a)
      .def("iscatterv", &PyCommunicator::iscatterv, "send"_a, "send_counts"_a, "recv"_a, "root"_a)
      .def("iallgatherv", &PyCommunicator::iallgatherv, "send"_a, "recv"_a, "recv_counts"_a)
      .def("ialltoallv", &PyCommunicator::ialltoallv, "send"_a, "send_counts"_a, "recv"_a,
           "recv_counts"_a);

  // ---- pure Python (lambda_handler.py), run with `fmi` bound to this module -----------
  py::dict ns;
  ns["__builtins__"] = py::reinterpret_borrow<py::object>(PyEval_GetBuiltins());
  ns["__name__"] = "fmi";
  ns["fmi"] = m;
  py::exec(kLambdaHandlerPy, ns);
  m.attr("lambda_handler") = ns["lambda_handler"];
  // ---- non-blocking requests -------------------------------------------------------------
  py::class_<fmipy::PyRequest, std::shared_ptr<fmipy::PyRequest>>(
      m, "Request",
      "A non-blocking operation in flight. Its buffers belong to it until it completes; it "
      "keeps them alive. Destroying it while it runs waits for it.")
      .def("wait", &fmipy::PyRequest::wait,
           "Blocks (GIL released) until complete; returns the output array (or None) and "
           "raises the operation's fmi error.")
      .def("test", &fmipy::PyRequest::test,
           "True once complete (raising its error then); never blocks.")
      .def("wait_for", &fmipy::PyRequest::wait_for, "seconds"_a,
           "Waits up to `seconds` (a float, like threading.Event.wait); False if still running.")
      .def_property_readonly("active", &fmipy::PyRequest::active,
                             "False once completed (by wait, test, wait_for, wait_all, wait_any).");
  m.def("wait_all", &fmipy::wait_all, "requests"_a,
        "Completes every request, then raises the first error (in list order).");
  m.def("wait_any", &fmipy::wait_any, "requests"_a,
        "Blocks until one active request completes; returns its index (raising its error). "
        "fmi.UsageError when none is active.");
}
