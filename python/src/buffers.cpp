#include "buffers.h"

#include <climits>
#include <cstring>

#include "fmi/errors.h"

namespace fmipy {

namespace {

py::module_ numpy() { return py::module_::import("numpy"); }

[[noreturn]] void raise(PyObject* exc_type, const std::string& msg) {
  PyErr_SetString(exc_type, msg.c_str());
  throw py::error_already_set();
}

void put_int(py::handle v, std::byte* dst, const char* op) {
  // Index objects only (int, bool, NumPy integers): a float would be truncated
  // silently, which the original module refused too.
  if (!PyIndex_Check(v.ptr()))
    raise(PyExc_TypeError,
          std::string(op) + ": expected an int for fmi.datatypes.int, got '" + type_name(v) + "'");
  py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
  if (!idx) throw py::error_already_set();
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
  if (x == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (overflow || x < INT_MIN || x > INT_MAX)
    raise(PyExc_OverflowError, std::string(op) + ": " + py::str(v).cast<std::string>() +
                                   " does not fit fmi.datatypes.int (a 32-bit C int)");
  const int i = static_cast<int>(x);
  std::memcpy(dst, &i, sizeof i);
}

void put_double(py::handle v, std::byte* dst, const char* op) {
  if (PyUnicode_Check(v.ptr()) || PyBytes_Check(v.ptr()) ||
      !(PyFloat_Check(v.ptr()) || PyIndex_Check(v.ptr()) || PyNumber_Check(v.ptr())))
    raise(PyExc_TypeError, std::string(op) + ": expected a float for fmi.datatypes.double, got '" +
                               type_name(v) + "'");
  const double d = PyFloat_AsDouble(v.ptr());
  if (d == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    raise(PyExc_TypeError, std::string(op) + ": expected a float for fmi.datatypes.double, got '" +
                               type_name(v) + "'");
  }
  std::memcpy(dst, &d, sizeof d);
}

}  // namespace

std::string type_name(py::handle obj) { return Py_TYPE(obj.ptr())->tp_name; }

bool numpy_importable() {
  static const bool importable = [] {
    if (numpy_loaded()) return true;
    try {
      py::module_::import("numpy");
      return true;
    } catch (py::error_already_set&) {  // ImportError: a Python without NumPy
      return false;
    }
  }();
  return importable;
}

bool numpy_loaded() {
  PyObject* m = PyDict_GetItemString(PyImport_GetModuleDict(), "numpy");  // borrowed
  return m != nullptr && m != Py_None;
}

std::string TypeSpec::repr() const {
  static const char* names[] = {"int", "double", "int_list", "double_list"};
  std::string s = std::string("fmi.types(fmi.datatypes.") + names[static_cast<int>(dt)];
  if (has_count) s += ", " + std::to_string(count);
  return s + ")";
}

Packed packed_zeros(const TypeSpec& spec, std::size_t count) {
  Packed p;
  p.count = count;
  p.bytes.assign(count * spec.elem_size(), std::byte{0});
  return p;
}

Packed pack(py::handle obj, const TypeSpec& spec, bool as_list, std::size_t expected,
            const char* op) {
  const std::size_t es = spec.elem_size();
  auto put = spec.is_int() ? &put_int : &put_double;
  if (!as_list) {
    Packed p = packed_zeros(spec, 1);
    put(obj, p.bytes.data(), op);
    return p;
  }
  // A NumPy array of exactly the C type: one memcpy instead of a Python loop. Only
  // asked when NumPy is loaded (an ndarray implies it is): pybind11's isinstance
  // would import NumPy, which a Python without it does not have.
  if (numpy_loaded() && py::isinstance<py::array>(obj)) {
    auto a = py::reinterpret_borrow<py::array>(obj);
    const py::dtype want = spec.is_int() ? py::dtype::of<int>() : py::dtype::of<double>();
    if (a.ndim() == 1 && a.dtype().equal(want) && (a.flags() & py::array::c_style)) {
      const auto n = static_cast<std::size_t>(a.size());
      if (expected != npos && n != expected)
        FMI_THROW(FMI::UsageError, op, ": ", spec.repr(), " expects ", expected,
                  " elements, got an array of ", n);
      Packed p = packed_zeros(spec, n);
      if (n) std::memcpy(p.bytes.data(), a.data(), n * es);
      return p;
    }
  }
  if (PyUnicode_Check(obj.ptr()) || PyBytes_Check(obj.ptr()) || !PySequence_Check(obj.ptr()))
    raise(PyExc_TypeError, std::string(op) + ": " + spec.repr() +
                               " expects a list (any sequence), got '" + type_name(obj) + "'");
  py::object fast = py::reinterpret_steal<py::object>(PySequence_Fast(obj.ptr(), op));
  if (!fast) throw py::error_already_set();
  const auto n = static_cast<std::size_t>(PySequence_Fast_GET_SIZE(fast.ptr()));
  if (expected != npos && n != expected)
    FMI_THROW(FMI::UsageError, op, ": ", spec.repr(), " expects ", expected,
              " elements, got a sequence of ", n);
  Packed p = packed_zeros(spec, n);
  PyObject** items = PySequence_Fast_ITEMS(fast.ptr());
  for (std::size_t i = 0; i < n; ++i) put(items[i], p.bytes.data() + i * es, op);
  return p;
}

py::object unpack(ConstBytes data, const TypeSpec& spec, bool as_list) {
  const std::size_t es = spec.elem_size();
  const std::size_t n = data.size() / es;
  auto one = [&](std::size_t i) -> py::object {
    if (spec.is_int()) {
      int v;
      std::memcpy(&v, data.data() + i * es, sizeof v);
      return py::int_(v);
    }
    double v;
    std::memcpy(&v, data.data() + i * es, sizeof v);
    return py::float_(v);
  };
  if (!as_list) return one(0);
  py::list out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = one(i);
  return out;
}

// ---- buffers -----------------------------------------------------------------------

namespace {
void refuse_objects(const py::array& a, const char* op) {
  if (a.dtype().attr("hasobject").cast<bool>())
    raise(PyExc_TypeError, std::string(op) + ": arrays of dtype " +
                               py::str(a.dtype()).cast<std::string>() +
                               " hold Python object pointers and cannot be sent; convert them "
                               "to a numeric or bytes dtype");
}

// The object as an ndarray sharing its memory: the array itself, or NumPy's view
// of its buffer (bytes, bytearray, memoryview, array.array, ...).
py::array as_array(py::handle obj, const char* op) {
  if (numpy_loaded() && py::isinstance<py::array>(obj))
    return py::reinterpret_borrow<py::array>(obj);
  if (PyObject_CheckBuffer(obj.ptr()) && !numpy_importable())
    raise(PyExc_ImportError, std::string(op) +
                                 ": this call views buffers as NumPy arrays and NumPy is not "
                                 "installed; typed values (fmi.types), objects, send/recv and the "
                                 "v-collectives (gatherv, ...) work without it");
  if (!PyObject_CheckBuffer(obj.ptr()))
    raise(PyExc_TypeError,
          std::string(op) +
              ": expected a NumPy array or a buffer-protocol object (bytes, "
              "bytearray, memoryview), got '" +
              type_name(obj) +
              "'; for Python values pass a type, e.g. fmi.types(fmi.datatypes.int)");
  py::memoryview mv(py::reinterpret_borrow<py::object>(obj));
  return numpy().attr("asarray")(mv);
}
}  // namespace

py::array input_array(py::handle obj, const char* op) {
  py::array a = as_array(obj, op);
  refuse_objects(a, op);
  if (!(a.flags() & py::array::c_style)) a = numpy().attr("ascontiguousarray")(a);
  return a;
}

py::array output_array(py::handle obj, const char* op, const char* what) {
  py::array a = as_array(obj, op);
  refuse_objects(a, op);
  if (!(a.flags() & py::array::c_style))
    FMI_THROW(FMI::UsageError, op, ": ", what,
              " must be C-contiguous (it is filled in place; pass numpy.ascontiguousarray(...) "
              "and read the result from it)");
  if (!a.writeable()) FMI_THROW(FMI::UsageError, op, ": ", what, " is read-only");
  return a;
}

py::array empty_array(const py::dtype& dt, const std::vector<py::ssize_t>& shape) {
  return py::array(dt, shape);
}

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

std::vector<py::ssize_t> block_shape(const py::array& a, std::size_t n, const char* op) {
  if (a.ndim() >= 1 && static_cast<std::size_t>(a.shape(0)) == n)
    return std::vector<py::ssize_t>(a.shape() + 1, a.shape() + a.ndim());
  if (static_cast<std::size_t>(a.size()) % n != 0)
    FMI_THROW(FMI::UsageError, op, ": an array of ", a.size(), " elements cannot be split into ", n,
              " equal blocks (one per peer)");
  return {static_cast<py::ssize_t>(static_cast<std::size_t>(a.size()) / n)};
}

}  // namespace fmipy
