// FMI::Comm::Data<T>: the buffer type of every communication call, as in the
// original FMI API. Three forms:
//  - Data<T> for a trivially copyable T (int, double, a POD struct): one value;
//  - Data<std::vector<A>>: a vector of trivially copyable A;
//  - Data<void*>: raw memory owned by the caller (buffer pointer and length).
// The held value is reachable by reference (ref()), so large vectors are never
// copied on the way in or out.
#pragma once

#include <cstddef>
#include <ostream>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "fmi/types.h"

namespace FMI::Comm {

template <typename T>
class Data {
  static_assert(
      std::is_trivially_copyable_v<T>,
      "FMI::Comm::Data<T> needs a trivially copyable T (or std::vector of one, or void*)");

 public:
  Data() = default;
  Data(T value) : val_(value) {}  // NOLINT: implicit, as in the original API

  const T& get() const { return val_; }
  T& ref() { return val_; }
  void* data() { return &val_; }
  const void* data() const { return &val_; }
  std::size_t size_in_bytes() const { return sizeof(T); }

  bool operator==(const Data& other) const { return val_ == other.val_; }
  friend std::ostream& operator<<(std::ostream& os, const Data& d) { return os << d.val_; }

 private:
  T val_{};
};

template <typename A>
class Data<std::vector<A>> {
  static_assert(std::is_trivially_copyable_v<A>,
                "FMI::Comm::Data<std::vector<A>> needs a trivially copyable A");

 public:
  Data() = default;
  explicit Data(std::size_t count) : val_(count) {}
  Data(std::vector<A> v) : val_(std::move(v)) {}  // NOLINT: implicit, as in the original API

  const std::vector<A>& get() const { return val_; }
  std::vector<A>& ref() { return val_; }
  void* data() { return val_.data(); }
  const void* data() const { return val_.data(); }
  std::size_t size_in_bytes() const { return val_.size() * sizeof(A); }
  std::size_t size() const { return val_.size(); }

  bool operator==(const Data& other) const { return val_ == other.val_; }
  friend std::ostream& operator<<(std::ostream& os, const Data& d) {
    os << '[';
    for (std::size_t i = 0; i < d.val_.size(); ++i) os << (i ? ", " : "") << d.val_[i];
    return os << ']';
  }

 private:
  std::vector<A> val_;
};

/// Raw memory: FMI reads from / writes into [buf, buf+len) and never owns it.
template <>
class Data<void*> {
 public:
  Data() = default;
  Data(void* buf, std::size_t len) : buf_(buf), len_(len) {}

  void* get() const { return buf_; }
  void* data() { return buf_; }
  const void* data() const { return buf_; }
  std::size_t size_in_bytes() const { return len_; }

 private:
  void* buf_ = nullptr;
  std::size_t len_ = 0;
};

/// Size in bytes of one element of a Data<T>, the unit of the counts of the
/// variable-size collectives (gatherv, ...): T itself for a value, A for
/// std::vector<A>, one byte for void*.
template <typename T>
inline constexpr std::size_t element_size_v = sizeof(T);
template <typename A>
inline constexpr std::size_t element_size_v<std::vector<A>> = sizeof(A);
template <>
inline constexpr std::size_t element_size_v<void*> = 1;

/// The bytes of a Data, for the byte-level layers below the API.
template <typename T>
Bytes bytes_of(Data<T>& d) {
  return {static_cast<std::byte*>(d.data()), d.size_in_bytes()};
}
template <typename T>
ConstBytes cbytes_of(const Data<T>& d) {
  return {static_cast<const std::byte*>(d.data()), d.size_in_bytes()};
}

}  // namespace FMI::Comm
