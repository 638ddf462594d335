// Python objects as messages: any picklable value, sent when an operation gets no
// type (fmi.types) and a value that is not a buffer (mpi4py's lowercase API).
//
// An object travels as one message, its "payload":
//   u64 nbuf | u64 main_len | u64 buf_len[nbuf] | pad | pickle | pad | buf_0 | pad | ...
// made with pickle protocol 5, whose out-of-band buffers (the memory of NumPy
// arrays and other PickleBuffer-aware objects inside the value) are copied once
// into the payload instead of through the pickle stream. Every part starts at a
// multiple of 64 bytes, and so does every payload in a packed v-collective buffer.
// The receiver unpickles from views of the received bytearray: arrays inside the
// object share its memory (no copy on the receiving side).
//
// Collectives exchange the payload sizes first (a fixed-size collective of one
// uint64 per peer), then the payloads with the variable-size collectives.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "buffers.h"

namespace fmipy {

/// An object to send: true when no type was given and `obj` has no buffer interface.
bool is_object(py::handle obj);

/// A pickled object before packing: the head (the table of sizes and the pickle
/// stream, padded) and views of the out-of-band buffers in their owners' memory,
/// so that send and bcast can transfer them without copying them first.
struct Encoded {
  class View {
   public:
    View(py::handle obj, const char* op);
    ~View();
    View(const View&) = delete;
    View& operator=(const View&) = delete;
    ConstBytes bytes() const;
    bool readonly() const { return v_.readonly != 0; }

   private:
    Py_buffer v_{};
  };
  std::vector<std::byte> head;
  std::vector<std::unique_ptr<View>> bufs;
  std::size_t total = 0;  // bytes of the packed payload

  /// The whole payload in one buffer (the collectives that pack many payloads).
  std::vector<std::byte> packed() const;
};

/// `obj` pickled. TypeError (naming `op`) when it cannot be pickled.
Encoded encode(py::handle obj, const char* op);
/// encode(obj, op).packed().
std::vector<std::byte> encode_object(py::handle obj, const char* op);
/// (offset, size) in the payload of each out-of-band buffer listed by `head`
/// (the head as received: its own size is where the buffers start).
std::vector<std::pair<std::size_t, std::size_t>> buffer_ranges(ConstBytes head);

/// A bytearray of `size` bytes to receive payloads into, and its memory.
py::object new_bytearray(std::size_t size);
Bytes bytearray_span(const py::object& ba);

/// The object held by the payload at [offset, offset + size) of the bytearray
/// `ba`. PeerError when the payload is malformed.
py::object decode_object(const py::object& ba, std::size_t offset, std::size_t size,
                         const char* op);

/// The Python binary function of a reduction operator on objects: operator.add,
/// operator.mul, max, min, or the custom callable.
py::object object_operator(int op_kind, const py::object& custom);

}  // namespace fmipy
