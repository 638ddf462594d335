#include "objects.h"

#include <cstdint>
#include <cstring>

#include "fmi/errors.h"

namespace fmipy {

namespace {

constexpr std::size_t kAlign = 64;
std::size_t aligned(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::uint64_t read_u64(const std::byte* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

Encoded::View::View(py::handle obj, const char* op) {
  if (PyObject_GetBuffer(obj.ptr(), &v_, PyBUF_C_CONTIGUOUS) != 0) {
    PyErr_Clear();
    throw py::type_error(std::string(op) + ": an out-of-band pickle buffer is not contiguous");
  }
}
Encoded::View::~View() { PyBuffer_Release(&v_); }

ConstBytes Encoded::View::bytes() const {
  return {static_cast<const std::byte*>(v_.buf), static_cast<std::size_t>(v_.len)};
}

bool is_object(py::handle obj) { return !PyObject_CheckBuffer(obj.ptr()); }

Encoded encode(py::handle obj, const char* op) {
  py::list bufs;
  py::object main;
  try {
    main = py::module_::import("pickle").attr("dumps")(
        obj, py::arg("protocol") = 5, py::arg("buffer_callback") = bufs.attr("append"));
  } catch (py::error_already_set& e) {
    // The message keeps the wording of the buffer path's error: this value was
    // taken for an object because it has no buffer interface.
    throw py::type_error(std::string(op) + ": '" + type_name(obj) +
                         "' is neither a buffer-protocol object nor picklable (" + e.what() +
                         "); pass a NumPy array, bytes, a picklable object, or a type");
  }
  Encoded out;
  for (py::handle b : bufs)
    out.bufs.push_back(std::make_unique<Encoded::View>(b.attr("raw")(), op));
  const std::size_t nbuf = out.bufs.size();
  const ConstBytes m{reinterpret_cast<const std::byte*>(PyBytes_AS_STRING(main.ptr())),
                     static_cast<std::size_t>(PyBytes_GET_SIZE(main.ptr()))};
  const std::size_t table = aligned(8 * (2 + nbuf));
  out.head.assign(table + aligned(m.size()), std::byte{0});
  auto put = [&](std::size_t slot, std::uint64_t v) {
    std::memcpy(out.head.data() + 8 * slot, &v, 8);
  };
  put(0, nbuf);
  put(1, m.size());
  if (!m.empty()) std::memcpy(out.head.data() + table, m.data(), m.size());
  out.total = out.head.size();
  for (std::size_t i = 0; i < nbuf; ++i) {
    put(2 + i, out.bufs[i]->bytes().size());
    out.total += aligned(out.bufs[i]->bytes().size());
  }
  return out;
}

std::vector<std::byte> Encoded::packed() const {
  std::vector<std::byte> p(total, std::byte{0});
  std::memcpy(p.data(), head.data(), head.size());
  std::size_t at = head.size();
  for (const auto& b : bufs) {
    const ConstBytes x = b->bytes();
    if (!x.empty()) std::memcpy(p.data() + at, x.data(), x.size());
    at += aligned(x.size());
  }
  return p;
}

std::vector<std::byte> encode_object(py::handle obj, const char* op) {
  return encode(obj, op).packed();
}

std::vector<std::pair<std::size_t, std::size_t>> buffer_ranges(ConstBytes head) {
  std::vector<std::pair<std::size_t, std::size_t>> r;
  const std::uint64_t nbuf = read_u64(head.data());
  if (nbuf > (head.size() - 16) / 8)  // head.size() >= 16: checked by the callers
    FMI_THROW(FMI::PeerError, "received object header lists ", nbuf, " buffers in ", head.size(),
              " bytes; did every peer call the object form of this operation?");
  std::size_t at = head.size();
  for (std::uint64_t i = 0; i < nbuf; ++i) {
    const std::uint64_t len = read_u64(head.data() + 8 * (2 + i));
    r.emplace_back(at, len);
    at += aligned(len);
  }
  return r;
}

py::object new_bytearray(std::size_t size) {
  PyObject* ba = PyByteArray_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(size));
  if (!ba) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(ba);
}

Bytes bytearray_span(const py::object& ba) {
  return {reinterpret_cast<std::byte*>(PyByteArray_AS_STRING(ba.ptr())),
          static_cast<std::size_t>(PyByteArray_GET_SIZE(ba.ptr()))};
}

py::object decode_object(const py::object& ba, std::size_t offset, std::size_t size,
                         const char* op) {
  const Bytes all = bytearray_span(ba);
  auto malformed = [&](const char* why) {
    FMI_THROW(FMI::PeerError, op, ": received object of ", size, " bytes is malformed (", why,
              "); did every peer call the object form of this operation?");
  };
  if (offset + size > all.size() || size < 16) malformed("shorter than its header");
  const std::byte* p = all.data() + offset;
  const std::uint64_t nbuf = read_u64(p);
  if (nbuf > (size - 16) / 8) malformed("buffer count out of range");
  std::size_t at = aligned(8 * (2 + nbuf));
  py::memoryview whole(ba);
  py::list bufs;
  py::object main;
  for (std::uint64_t i = 0; i <= nbuf; ++i) {
    const std::uint64_t len = read_u64(p + 8 * (1 + i));
    if (at > size || len > size - at) malformed("a part runs past its end");
    py::object part = whole[py::slice(static_cast<py::ssize_t>(offset + at),
                                      static_cast<py::ssize_t>(offset + at + len), 1)];
    if (i == 0)
      main = part;
    else
      bufs.append(part);
    at += aligned(len);
  }
  return py::module_::import("pickle").attr("loads")(main, py::arg("buffers") = bufs);
}

py::object object_operator(int op_kind, const py::object& custom) {
  switch (op_kind) {
    case 0: return py::module_::import("operator").attr("add");
    case 1: return py::module_::import("operator").attr("mul");
    case 2: return py::module_::import("builtins").attr("max");
    case 3: return py::module_::import("builtins").attr("min");
    default: return custom;
  }
}

}  // namespace fmipy
