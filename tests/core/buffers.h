// Buffers of the suite in every Data form the API accepts, so one test body checks
// the same collective with Data<int>, Data<std::vector<...>> and Data<void*>.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "fmi/data.h"

namespace fmitest {

using FMI::Comm::Data;

/// How a buffer is presented to the API.
enum class Form {
  ints,     // Data<int> when it is one int, else Data<std::vector<int>>
  chars,    // Data<std::vector<char>>: any byte count
  doubles,  // Data<std::vector<double>>
  raw,      // Data<void*> over memory owned by the test
};

using AnyData = std::variant<Data<int>, Data<std::vector<int>>, Data<std::vector<char>>,
                             Data<std::vector<double>>, Data<void*>>;

struct Buf {
  std::vector<std::byte> storage;  // memory behind Data<void*>
  AnyData d;
};

inline std::unique_ptr<Buf> make_buf(Form f, std::size_t bytes) {
  auto b = std::make_unique<Buf>();
  switch (f) {
    case Form::ints:
      if (bytes == sizeof(int))
        b->d = Data<int>(0);
      else
        b->d = Data<std::vector<int>>(bytes / sizeof(int));
      break;
    case Form::chars: b->d = Data<std::vector<char>>(bytes); break;
    case Form::doubles: b->d = Data<std::vector<double>>(bytes / sizeof(double)); break;
    case Form::raw:
      b->storage.resize(bytes);
      b->d = Data<void*>(b->storage.data(), bytes);
      break;
  }
  return b;
}

inline std::span<std::byte> bytes(Buf& b) {
  return std::visit(
      [](auto& d) {
        return std::span<std::byte>(static_cast<std::byte*>(d.data()), d.size_in_bytes());
      },
      b.d);
}

/// One size of the data-movement tests: `unit` is the bytes of one block (the whole
/// buffer of bcast, one peer's contribution to gather/allgather, one block of
/// scatter/alltoall).
struct SizeCase {
  std::string name;
  Form form;
  std::size_t unit;
};

}  // namespace fmitest
