// Conversions between Python objects and the byte spans the Communicator moves.
//
// Two kinds of arguments reach the byte-level API:
//  - typed values (fmi.types: int, double, int_list, double_list), the original
//    FMI API: converted element by element into C++ int / double storage;
//  - NumPy arrays and other buffer-protocol objects: used in place. Inputs are only
//    copied when they are not C-contiguous (once, by NumPy); outputs must be
//    C-contiguous and writable and are filled in place.
// Everything here needs the GIL; none of it blocks.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <string>

#include <vector>
#include "fmi/errors.h"

#include "fmi/types.h"

namespace fmipy {

namespace py = pybind11;
using FMI::Comm::Bytes;
using FMI::Comm::ConstBytes;

// ---- fmi.types ---------------------------------------------------------------

enum class DataType { int_, double_, int_list, double_list };

/// fmi.types(datatype[, count]): how a typed value is laid out.
struct TypeSpec {
  DataType dt = DataType::int_;
  std::size_t count = 0;
  bool has_count = false;

  bool is_list() const { return dt == DataType::int_list || dt == DataType::double_list; }
  bool is_int() const { return dt == DataType::int_ || dt == DataType::int_list; }
  std::size_t elem_size() const { return is_int() ? sizeof(int) : sizeof(double); }
  std::string repr() const;
};

/// C++ storage of a typed value: `count` ints or doubles.
struct Packed {
  std::vector<std::byte> bytes;
  std::size_t count = 0;

  Bytes span() { return bytes; }
  ConstBytes cspan() const { return bytes; }
};

/// Storage for `count` elements of spec's element type, zero-filled.
Packed packed_zeros(const TypeSpec& spec, std::size_t count);

/// Converts one value (list types: a sequence) into C++ storage. For list types,
/// `expected` (when not npos) is the element count the sequence must have: a
/// different length raises fmi.UsageError naming both. A value of the wrong
/// Python type raises TypeError.
Packed pack(py::handle obj, const TypeSpec& spec, bool as_list, std::size_t expected,
            const char* op);

/// The Python value of C++ storage: an int / float, or a list of them.
py::object unpack(ConstBytes data, const TypeSpec& spec, bool as_list);

inline constexpr std::size_t npos = static_cast<std::size_t>(-1);

/// The element count a list argument must have, or npos when fmi.types had no count.
inline std::size_t expected_count(const TypeSpec& t) { return t.has_count ? t.count : npos; }

// ---- buffers -------------------------------------------------------------------

/// A C-contiguous NumPy view of an input object (an ndarray itself when it already
/// is a contiguous one: no copy). TypeError when `obj` has no buffer interface or
/// holds Python objects.
py::array input_array(py::handle obj, const char* op);

/// A writable C-contiguous NumPy view of an output object, sharing its memory
/// (fmi.UsageError when it is read-only or not contiguous).
py::array output_array(py::handle obj, const char* op, const char* what);

/// An uninitialised array.
py::array empty_array(const py::dtype& dt, const std::vector<py::ssize_t>& shape);

inline ConstBytes cbytes(const py::array& a) {
  return {static_cast<const std::byte*>(a.data()), static_cast<std::size_t>(a.nbytes())};
}
/// Only for arrays checked writable (output_array, empty_array) or known to be
/// written by no algorithm.
inline Bytes mbytes(const py::array& a) {
  return {static_cast<std::byte*>(const_cast<void*>(a.data())),
          static_cast<std::size_t>(a.nbytes())};
}

inline bool overlap(ConstBytes a, ConstBytes b) {
  if (a.empty() || b.empty()) return false;
  return a.data() < b.data() + b.size() && b.data() < a.data() + a.size();
}

std::vector<py::ssize_t> shape_of(const py::array& a);

/// Shape of one of n equal blocks of `a`: a.shape[1:] when a.shape[0] == n,
/// else a flat block of a.size / n elements (fmi.UsageError if not divisible).
std::vector<py::ssize_t> block_shape(const py::array& a, std::size_t n, const char* op);

/// True when NumPy is imported in this interpreter. Code for plain Python values
/// asks this before anything that would import NumPy (NumPy is optional).
bool numpy_loaded();

/// True when NumPy is loaded or can be imported (asked once, then remembered).
/// Without it, the buffer forms that need no array view (send, recv into out=, the
/// v-collectives) take the buffer protocol directly.
bool numpy_importable();

/// Name of a Python object's type, for error messages.
std::string type_name(py::handle obj);

/// A contiguous buffer held for the duration of a call (released with the GIL held:
/// the object lives on the caller's stack frame).
class BufferView {
 public:
  /// `optional`: None gives an empty, unheld buffer.
  BufferView(py::handle obj, bool writable, const char* op, const char* what,
             bool optional = false) {
    if (optional && (!obj || obj.is_none())) return;
    if (!PyObject_CheckBuffer(obj.ptr()))
      throw py::type_error(std::string(op) + ": " + what +
                           " must be a buffer-protocol object (a NumPy array, bytes, bytearray, "
                           "memoryview), got '" +
                           type_name(obj) + "'");
    const int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj.ptr(), &v_, flags) != 0) {
      PyErr_Clear();
      FMI_THROW(FMI::UsageError, op, ": ", what,
                writable ? " must be writable and C-contiguous" : " must be C-contiguous");
    }
    held_ = true;
  }
  ~BufferView() {
    if (held_) PyBuffer_Release(&v_);
  }
  BufferView(const BufferView&) = delete;
  BufferView& operator=(const BufferView&) = delete;
  bool held() const { return held_; }
  std::size_t itemsize() const { return held_ ? static_cast<std::size_t>(v_.itemsize) : 0; }
  Bytes bytes() const {
    if (!held_) return {};
    return {static_cast<std::byte*>(v_.buf), static_cast<std::size_t>(v_.len)};
  }

 private:
  Py_buffer v_{};
  bool held_ = false;
};

}  // namespace fmipy
