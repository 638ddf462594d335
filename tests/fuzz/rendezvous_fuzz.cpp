// libFuzzer target over the wire protocol of the Direct channel and fmi-rendezvous
// (src/wire/protocol.cpp): every byte a server or peer reads from an
// untrusted side goes through these functions first.
//
//   scripts/fuzz.sh [SECONDS]      (builds with clang++ -fsanitize=fuzzer,address,undefined)
//
// Input layout: byte 0 picks the chunk size of the streaming mode (how the
// server and the client receive frames: partial reads appended to a buffer, frames
// taken off the front as they complete); the rest is the byte stream. Each input is
// also parsed as one frame with both limits (request and reply) and as a raw payload
// of every message type. Beyond "no crash, no UB, no leak", the target checks that
// whatever parses re-encodes to exactly the bytes it was parsed from (the encoding
// is canonical, so a parser bug that silently accepts something else shows up).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "fmi/errors.h"
#include "wire/protocol.h"

namespace proto = FMI::Wire::proto;

namespace {

void check_canonical(const proto::Message& m, std::span<const std::byte> frame) {
  std::vector<std::byte> again;
  try {
    again = proto::encode(m);
  } catch (const FMI::UsageError&) {
    // A parsed message that cannot be encoded means the parser accepted more than
    // the protocol allows.
    std::abort();
  }
  if (again.size() != frame.size() || std::memcmp(again.data(), frame.data(), frame.size()) != 0)
    std::abort();
}

void one_frame(std::span<const std::byte> in, std::size_t limit) {
  std::size_t used = 0;
  try {
    if (auto m = proto::try_decode(in, limit, used)) {
      if (used < proto::kHeaderSize || used > in.size()) std::abort();
      check_canonical(*m, in.first(used));
    } else if (used != 0) {
      std::abort();
    }
  } catch (const FMI::ChannelError&) {
    // malformed input: the only acceptable failure
  }
}

void stream(std::span<const std::byte> in, std::size_t chunk, std::size_t limit) {
  std::vector<std::byte> buf;
  std::size_t off = 0;
  try {
    while (off < in.size()) {
      std::size_t n = std::min(chunk, in.size() - off);
      buf.insert(buf.end(), in.begin() + std::ptrdiff_t(off), in.begin() + std::ptrdiff_t(off + n));
      off += n;
      std::size_t used = 0;
      // The server's order: the header (version) first, then the frame.
      if (buf.size() >= proto::kHeaderSize) (void)proto::decode_header(buf, limit);
      while (auto m = proto::try_decode(buf, limit, used)) {
        check_canonical(*m, std::span(buf).first(used));
        buf.erase(buf.begin(), buf.begin() + std::ptrdiff_t(used));
      }
    }
  } catch (const FMI::ChannelError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::span<const std::byte> all(reinterpret_cast<const std::byte*>(data), size);
  std::size_t chunk = 1 + std::to_integer<std::size_t>(all[0]) % 64;
  auto rest = all.subspan(1);

  one_frame(all, proto::kMaxRequestPayload);
  one_frame(all, proto::kMaxReplyPayload);
  one_frame(rest, proto::kMaxRequestPayload);
  stream(rest, chunk, proto::kMaxRequestPayload);
  stream(rest, chunk, proto::kMaxReplyPayload);

  // Payload parsers on their own, for every type byte (valid and not).
  for (int t : {1, 2, 3, 4, 5, 6, 7, 16, 17, 18, std::to_integer<int>(all[0])}) {
    try {
      (void)proto::decode_payload(proto::MsgType(std::uint8_t(t)), rest);
    } catch (const FMI::ChannelError&) {
    }
  }
  return 0;
}
