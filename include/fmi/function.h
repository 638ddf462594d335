// FMI::Utils::Function<T>: a reduction operator with its algebraic properties, as in
// the original FMI API, plus built-in element-wise operators (sum, prod, min, max).
//
// The properties decide the evaluation order the algorithms may use:
//  - neither commutative nor associative: strictly left to right over peer ids,
//    ((x0 op x1) op x2) ... op x(n-1);
//  - associative only: any bracketing, operands kept in peer order;
//  - commutative and associative: any order. The same peer count and algorithm
//    always give the same bracketing, so results are reproducible run to run.
#pragma once

#include <algorithm>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "fmi/errors.h"
#include "fmi/types.h"

namespace FMI::Utils {

/// Type-erased reduction over bytes, built by the Communicator from a Function<T>
/// for the algorithms. Holds no allocation: a function pointer and a context.
struct ReduceOp {
  using Fn = void (*)(const void* ctx, Comm::ConstBytes left, Comm::ConstBytes right,
                      Comm::Bytes out);
  Fn fn = nullptr;
  const void* ctx = nullptr;
  /// >0: fn may be applied to any sub-range whose offset and length are multiples
  /// of this many bytes (element-wise operators: chunked and pipelined algorithms
  /// are allowed). 0: fn only works on whole buffers.
  std::size_t granularity = 0;
  bool commutative = false;
  bool associative = false;

  /// out = left op right. out may be the same span as left or right.
  void operator()(Comm::ConstBytes left, Comm::ConstBytes right, Comm::Bytes out) const {
    fn(ctx, left, right, out);
  }
};

namespace detail {
template <typename T>
struct is_vector : std::false_type {};
template <typename A>
struct is_vector<std::vector<A>> : std::true_type {
  using element = A;
};

template <typename T>
struct element_of {
  using type = T;
};
template <typename A>
struct element_of<std::vector<A>> {
  using type = A;
};

template <typename E>
using Kernel = void (*)(const E* a, const E* b, E* out, std::size_t n);

template <typename E, typename Op>
void elementwise(const E* a, const E* b, E* out, std::size_t n) {
  Op op;
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<E>(op(a[i], b[i]));
}
struct Plus {
  template <typename E>
  auto operator()(E x, E y) const {
    return x + y;
  }
};
struct Times {
  template <typename E>
  auto operator()(E x, E y) const {
    return x * y;
  }
};
struct Min {
  template <typename E>
  E operator()(E x, E y) const {
    return y < x ? y : x;
  }
};
struct Max {
  template <typename E>
  E operator()(E x, E y) const {
    return x < y ? y : x;
  }
};
}  // namespace detail

template <typename T>
class Function {
  using E = typename detail::element_of<T>::type;

 public:
  /// A user function. Calls f(left, right) where left comes from lower peer ids.
  Function(std::function<T(T, T)> f, bool commutative, bool associative)
      : f(std::move(f)), commutative(commutative), associative(associative) {}

  T operator()(T a, T b) const { return f(std::move(a), std::move(b)); }

  static Function sum() { return builtin<detail::Plus>(); }
  static Function prod() { return builtin<detail::Times>(); }
  static Function min() { return builtin<detail::Min>(); }
  static Function max() { return builtin<detail::Max>(); }

  std::function<T(T, T)> f;
  bool commutative;
  bool associative;
  /// Set for built-in operators: element-wise over E, may be applied per chunk.
  detail::Kernel<E> kernel = nullptr;

  /// The byte-level view the algorithms use. *this must outlive the ReduceOp.
  ReduceOp op() const {
    ReduceOp r;
    r.ctx = this;
    r.commutative = commutative;
    r.associative = associative;
    if (kernel) {
      r.granularity = sizeof(E);
      r.fn = [](const void* ctx, Comm::ConstBytes l, Comm::ConstBytes rr, Comm::Bytes out) {
        auto* self = static_cast<const Function*>(ctx);
        self->kernel(reinterpret_cast<const E*>(l.data()), reinterpret_cast<const E*>(rr.data()),
                     reinterpret_cast<E*>(out.data()), out.size() / sizeof(E));
      };
    } else if constexpr (detail::is_vector<T>::value) {
      r.granularity = 0;
      r.fn = [](const void* ctx, Comm::ConstBytes l, Comm::ConstBytes rr, Comm::Bytes out) {
        auto* self = static_cast<const Function*>(ctx);
        T a(l.size() / sizeof(E)), b(rr.size() / sizeof(E));
        // memcpy with a null pointer is undefined even for 0 bytes, and empty
        // vectors and spans may hold null (UBSan: nonnull-attribute).
        if (!l.empty()) std::memcpy(a.data(), l.data(), l.size());
        if (!rr.empty()) std::memcpy(b.data(), rr.data(), rr.size());
        T c = self->f(std::move(a), std::move(b));
        if (c.size() * sizeof(E) != out.size())
          FMI_THROW(UsageError, "reduction function returned ", c.size(), " elements, expected ",
                    out.size() / sizeof(E));
        if (!out.empty()) std::memcpy(out.data(), c.data(), out.size());
      };
    } else {
      r.granularity = sizeof(T);
      r.fn = [](const void* ctx, Comm::ConstBytes l, Comm::ConstBytes rr, Comm::Bytes out) {
        auto* self = static_cast<const Function*>(ctx);
        T a, b;
        std::memcpy(&a, l.data(), sizeof(T));
        std::memcpy(&b, rr.data(), sizeof(T));
        T c = self->f(a, b);
        std::memcpy(out.data(), &c, sizeof(T));
      };
    }
    return r;
  }

 private:
  template <typename Op>
  static Function builtin() {
    static_assert(std::is_arithmetic_v<E>, "built-in reductions need an arithmetic element type");
    Function fn(
        [](T a, T b) {
          if constexpr (detail::is_vector<T>::value) {
            if (a.size() != b.size())
              FMI_THROW(UsageError, "element-wise reduction of vectors of different lengths (",
                        a.size(), " and ", b.size(), ")");
            T out(a.size());
            detail::elementwise<E, Op>(a.data(), b.data(), out.data(), out.size());
            return out;
          } else {
            T out;
            detail::elementwise<E, Op>(&a, &b, &out, 1);
            return out;
          }
        },
        true, true);
    fn.kernel = &detail::elementwise<E, Op>;
    return fn;
  }
};

}  // namespace FMI::Utils
