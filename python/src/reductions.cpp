#include "reductions.h"

#include <bit>
#include <complex>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fmi/errors.h"

namespace fmipy {

using FMI::Utils::ReduceOp;

namespace {

// ---- kernels of the core (arithmetic C++ types) ----------------------------------

template <typename E>
using CoreKernel = decltype(FMI::Utils::Function<E>::kernel);

// The core's own kernel for (E, K), taken once from Function<E> (the same kernel
// as Function<std::vector<E>>'s): the C++ API's built-in reductions and these run
// the same code. Function<E>, not <std::vector<E>>: std::vector<bool> has no data().
template <typename E, OpKind K>
const CoreKernel<E>* core_kernel() {
  static const CoreKernel<E> k = [] {
    using F = FMI::Utils::Function<E>;
    if constexpr (K == OpKind::sum) return F::sum().kernel;
    if constexpr (K == OpKind::prod) return F::prod().kernel;
    if constexpr (K == OpKind::max) return F::max().kernel;
    if constexpr (K == OpKind::min) return F::min().kernel;
  }();
  return &k;
}

template <typename E>
void apply_core(const void* ctx, ConstBytes l, ConstBytes r, Bytes out) {
  (*static_cast<const CoreKernel<E>*>(ctx))(
      reinterpret_cast<const E*>(l.data()), reinterpret_cast<const E*>(r.data()),
      reinterpret_cast<E*>(out.data()), out.size() / sizeof(E));
}

template <typename E>
ReduceOp make_core(OpKind k) {
  ReduceOp r;
  r.fn = &apply_core<E>;
  r.granularity = sizeof(E);
  r.commutative = r.associative = true;
  switch (k) {
    case OpKind::sum: r.ctx = core_kernel<E, OpKind::sum>(); break;
    case OpKind::prod: r.ctx = core_kernel<E, OpKind::prod>(); break;
    case OpKind::max: r.ctx = core_kernel<E, OpKind::max>(); break;
    case OpKind::min: r.ctx = core_kernel<E, OpKind::min>(); break;
    case OpKind::custom: break;
  }
  return r;
}

// ---- kernels of this module (float16, complex: not std::is_arithmetic) -------------

struct Add {
  template <typename E>
  E operator()(E a, E b) const {
    return a + b;
  }
};
struct Mul {
  template <typename E>
  E operator()(E a, E b) const {
    return a * b;
  }
};
struct Max {
  template <typename E>
  E operator()(E a, E b) const {
    return a < b ? b : a;
  }
};
struct Min {
  template <typename E>
  E operator()(E a, E b) const {
    return b < a ? b : a;
  }
};

template <typename E, typename Op>
void apply_own(const void*, ConstBytes l, ConstBytes r, Bytes out) {
  const E* a = reinterpret_cast<const E*>(l.data());
  const E* b = reinterpret_cast<const E*>(r.data());
  E* o = reinterpret_cast<E*>(out.data());
  const std::size_t n = out.size() / sizeof(E);
  Op op;
  for (std::size_t i = 0; i < n; ++i) o[i] = static_cast<E>(op(a[i], b[i]));
}

template <typename E>
ReduceOp make_own(OpKind k, bool ordered, const std::string& dtype_name) {
  ReduceOp r;
  r.granularity = sizeof(E);
  r.commutative = r.associative = true;
  switch (k) {
    case OpKind::sum: r.fn = &apply_own<E, Add>; break;
    case OpKind::prod: r.fn = &apply_own<E, Mul>; break;
    case OpKind::max:
    case OpKind::min:
      if constexpr (requires(E a, E b) { a < b; }) {
        if (ordered) {
          r.fn = k == OpKind::max ? &apply_own<E, Max> : &apply_own<E, Min>;
          break;
        }
      }
      FMI_THROW(FMI::UsageError, "fmi.op.", k == OpKind::max ? "max" : "min",
                " is not defined for dtype ", dtype_name,
                " (complex numbers have no order); use fmi.func(fmi.op.custom, ...)");
    case OpKind::custom: break;
  }
  return r;
}

const char* op_name(OpKind k) {
  switch (k) {
    case OpKind::sum: return "sum";
    case OpKind::prod: return "prod";
    case OpKind::max: return "max";
    case OpKind::min: return "min";
    case OpKind::custom: return "custom";
  }
  return "?";
}

bool native_order(const py::dtype& dt) {
  const char bo = dt.byteorder();
  if (bo == '=' || bo == '|') return true;
  constexpr bool little = std::endian::native == std::endian::little;
  return little ? bo == '<' : bo == '>';
}

ReduceOp builtin_for_dtype(OpKind k, const py::dtype& dt, const char* op) {
  const std::string name = py::str(py::handle(dt)).cast<std::string>();
  auto unsupported = [&]() -> ReduceOp {
    FMI_THROW(FMI::UsageError, op, ": built-in fmi.op.", op_name(k),
              " needs a boolean, integer, floating or complex dtype, got ", name,
              "; use fmi.func(fmi.op.custom, callable, commutative, associative)");
  };
  if (dt.has_fields() || dt.attr("subdtype").cast<py::object>().ptr() != Py_None)
    return unsupported();
  if (!native_order(dt))
    FMI_THROW(FMI::UsageError, op, ": built-in reductions need native byte order, got dtype ", name,
              "; convert with arr.astype(arr.dtype.newbyteorder('='))");
  const auto size = static_cast<std::size_t>(dt.itemsize());
  switch (dt.kind()) {
    case 'b': return make_core<bool>(k);
    case 'i':
      switch (size) {
        case 1: return make_core<std::int8_t>(k);
        case 2: return make_core<std::int16_t>(k);
        case 4: return make_core<std::int32_t>(k);
        case 8: return make_core<std::int64_t>(k);
      }
      break;
    case 'u':
      switch (size) {
        case 1: return make_core<std::uint8_t>(k);
        case 2: return make_core<std::uint16_t>(k);
        case 4: return make_core<std::uint32_t>(k);
        case 8: return make_core<std::uint64_t>(k);
      }
      break;
    case 'f':
#ifdef __FLT16_MAX__
      if (size == 2) return make_own<_Float16>(k, true, name);
#endif
      if (size == sizeof(float)) return make_core<float>(k);
      if (size == sizeof(double)) return make_core<double>(k);
      if (size == sizeof(long double)) return make_core<long double>(k);
      break;
    case 'c':
      if (size == sizeof(std::complex<float>)) return make_own<std::complex<float>>(k, false, name);
      if (size == sizeof(std::complex<double>))
        return make_own<std::complex<double>>(k, false, name);
      if (size == sizeof(std::complex<long double>))
        return make_own<std::complex<long double>>(k, false, name);
      break;
  }
  return unsupported();
}

void no_op_capsule(void*) {}

}  // namespace

std::string Func::repr() const {
  if (op != OpKind::custom) return std::string("fmi.func(fmi.op.") + op_name(op) + ")";
  return std::string("fmi.func(fmi.op.custom, ") + py::repr(fn).cast<std::string>() + ", " +
         (commutative ? "True" : "False") + ", " + (associative ? "True" : "False") + ")";
}

void Reduction::init_custom(const Func& f) {
  if (!f.fn || !PyCallable_Check(f.fn.ptr()))
    throw py::type_error("fmi.op.custom needs a callable f(left, right)");
  fn_ = f.fn;
  op_.fn = &call_python;
  op_.ctx = this;
  // Whole operands only: the callable sees the values the user sent, never chunks.
  op_.granularity = 0;
  op_.commutative = f.commutative;
  op_.associative = f.associative;
  base_ = py::capsule(static_cast<void*>(this), &no_op_capsule);
}

Reduction::Reduction(const Func& f, const TypeSpec& t, bool as_list, const char* op)
    : typed_(true), spec_(t), as_list_(as_list) {
  (void)op;
  if (f.op == OpKind::custom) {
    init_custom(f);
    return;
  }
  op_ = t.is_int() ? make_core<int>(f.op) : make_core<double>(f.op);
}

Reduction::Reduction(const Func& f, const py::dtype& dt, std::vector<py::ssize_t> shape,
                     const char* op)
    : dtype_(dt), shape_(std::move(shape)) {
  if (f.op == OpKind::custom) {
    init_custom(f);
    return;
  }
  op_ = builtin_for_dtype(f.op, dt, op);
}

std::vector<py::ssize_t> Reduction::shape_for(std::size_t bytes) const {
  const auto n = static_cast<py::ssize_t>(bytes / static_cast<std::size_t>(dtype_.itemsize()));
  py::ssize_t whole = 1;
  for (auto s : shape_) whole *= s;
  if (n == whole) return shape_;
  return {n};
}

py::object Reduction::operand(ConstBytes b) const {
  if (typed_) return unpack(b, spec_, as_list_);
  py::array v(dtype_, shape_for(b.size()), {}, b.data(), base_);
  v.attr("setflags")(py::arg("write") = false);
  return v;
}

void Reduction::store(py::handle result, Bytes out) const {
  if (typed_) {
    const std::size_t n = out.size() / spec_.elem_size();
    Packed p = pack(result, spec_, as_list_, as_list_ ? n : npos, "reduction function result");
    std::memcpy(out.data(), p.bytes.data(), out.size());
    return;
  }
  py::array dst(dtype_, shape_for(out.size()), {}, out.data(), base_);
  py::module_ np = py::module_::import("numpy");
  py::array src = np.attr("asarray")(result, py::arg("dtype") = dtype_);
  if (src.size() != dst.size())
    FMI_THROW(FMI::UsageError, "reduction function returned ", src.size(), " elements, expected ",
              dst.size(), " (the shape of its operands)");
  np.attr("copyto")(dst, src.attr("reshape")(dst.attr("shape")));
}

namespace {
// Custom reduction functions running on this thread (they may nest through another
// communicator's call only by the error below, so 0 or 1 in practice).
thread_local int reductions_running = 0;
struct Running {
  Running() { ++reductions_running; }
  ~Running() { --reductions_running; }
};
}  // namespace

void check_not_in_reduction(const char* op) {
  if (reductions_running > 0)
    FMI_THROW(FMI::UsageError, op,
              ": called from inside a custom reduction function (fmi.op.custom); the "
              "collective that runs the function holds the communicator, so this call would "
              "wait for itself. A reduction function must only compute on its two operands");
}

void Reduction::call_python(const void* ctx, ConstBytes l, ConstBytes r, Bytes out) {
  const auto* self = static_cast<const Reduction*>(ctx);
  Running running;
  py::gil_scoped_acquire gil;
  py::object res = self->fn_(self->operand(l), self->operand(r));
  self->store(res, out);
}

}  // namespace fmipy
