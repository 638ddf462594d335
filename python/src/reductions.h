// Reduction operators of the Python module: fmi.func(...) turned into the
// FMI::Utils::ReduceOp that the collective algorithms call.
//
//  - Built-in operators (sum, prod, max, min) on arrays dispatch on the dtype to a
//    compiled element-wise kernel: the core's Function<E> kernel for
//    every arithmetic C++ type (so Python and C++ run the same code), and kernels of
//    this module for float16 and complex. They never touch Python or the GIL.
//  - Custom operators call the Python callable. The algorithms run with the GIL
//    released, so the call re-acquires it; operands are passed as read-only NumPy
//    views (arrays) or as Python values (fmi.types), the result is copied into the
//    algorithm's output buffer. A Python exception raised by the callable leaves the
//    algorithm by unwinding and reaches the caller unchanged.
#pragma once

#include <string>
#include <vector>

#include "buffers.h"
#include "fmi/function.h"

namespace fmipy {

enum class OpKind { sum, prod, max, min, custom };

/// fmi.func(op[, callable, commutative, associative]).
struct Func {
  OpKind op = OpKind::sum;
  py::object fn;  // custom only
  bool commutative = true;
  bool associative = true;
  std::string repr() const;
};

/// The ReduceOp of one call, and everything its ctx points to. Lives on the
/// caller's stack for the duration of the call (it holds Python references, so it
/// is created and destroyed with the GIL held). Not copyable or movable: the
/// ReduceOp points into it.
/// Throws UsageError when this thread is inside a custom reduction function: a
/// communicator call from there would wait for the collective that is calling the
/// function (the communicator's mutex is held), a deadlock. Called by every
/// communicator entry point that takes that mutex.
void check_not_in_reduction(const char* op);

class Reduction {
 public:
  /// For typed values (fmi.types): operands are ints/floats or lists of them.
  Reduction(const Func& f, const TypeSpec& t, bool as_list, const char* op);
  /// For arrays of `dt`; `shape` is the shape of one whole operand (custom
  /// callables see that shape; other sizes are passed as flat arrays).
  Reduction(const Func& f, const py::dtype& dt, std::vector<py::ssize_t> shape, const char* op);
  Reduction(const Reduction&) = delete;
  Reduction& operator=(const Reduction&) = delete;

  const FMI::Utils::ReduceOp& op() const { return op_; }

 private:
  static void call_python(const void* ctx, ConstBytes l, ConstBytes r, Bytes out);
  py::object operand(ConstBytes b) const;
  void store(py::handle result, Bytes out) const;
  std::vector<py::ssize_t> shape_for(std::size_t bytes) const;
  void init_custom(const Func& f);

  FMI::Utils::ReduceOp op_;
  py::object fn_;
  bool typed_ = false;
  TypeSpec spec_;
  bool as_list_ = false;
  py::dtype dtype_;
  std::vector<py::ssize_t> shape_;
  py::object base_;  // owner object of the views handed to the callable
};

}  // namespace fmipy
