// libFuzzer target: the receive side of an encrypted Direct connection
// (src/channels/direct/secure.h), fed with what an attacker on the path controls:
// the 16-byte header and the records after it. Every input must either open
// (only if it is a correctly sealed message, which the fuzzer cannot forge) or be
// rejected, without a crash, an overflow or a leak; and a message sealed by the
// sender side (in pieces whose sizes the input picks) opens back to its plaintext.
// The header's first byte picks the cipher (AES-256-GCM or ChaCha20-Poly1305).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "channels/direct/secure.h"

namespace sec = FMI::Direct::secure;

namespace {
sec::SessionKeys keys(sec::Cipher c) {
  sec::SessionKeys k;
  for (std::size_t i = 0; i < 32; ++i) k.key[0][i] = k.key[1][i] = std::uint8_t(i * 3);
  k.cipher = c;
  return k;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const sec::SessionKeys aes = keys(sec::Cipher::aes_256_gcm);
  static const sec::SessionKeys chacha = keys(sec::Cipher::chacha20_poly1305);
  if (size < 16) return 0;
  const sec::SessionKeys& k = data[0] & 1 ? chacha : aes;
  std::byte hdr[16];
  std::memcpy(hdr, data, 16);
  // The length field as a receiver that expects it would use it, bounded so that
  // a run stays small (the channel bounds it by what the caller's buffer holds).
  std::uint64_t len = 0;
  for (int i = 8; i < 16; ++i) len = (len << 8) | data[i];
  len %= 2 * sec::kRecord + 100;
  std::vector<std::byte> out(len);
  sec::Link rx(k, false);
  sec::BodyReader rd;
  rd.start(hdr, out.data(), out.size());
  std::size_t pos = 16;
  bool ok = true;
  while (ok && !rd.done() && pos < size) {
    iovec v[2];
    int n = rd.iov(v);
    // Arbitrary short reads: the first input byte of each step picks the size.
    std::size_t want = 1 + data[pos] % 64 * 97;
    std::size_t got = 0;
    for (int j = 0; j < n && got < want && pos + got < size; ++j) {
      std::size_t m = std::min({v[j].iov_len, want - got, size - pos - got});
      std::memcpy(v[j].iov_base, data + pos + got, m);
      got += m;
      if (m < v[j].iov_len) break;
    }
    pos += got;
    ok = rd.advance(rx.rx, got);
  }
  // The sender's side of the same header and a short payload: must open again.
  std::size_t small = std::min<std::size_t>(size - 16, 300);
  std::vector<std::byte> msg(small), wire(small + sec::kTag);
  if (small) std::memcpy(msg.data(), data + 16, small);
  sec::Link a(k, true), b(k, false);
  sec::BodyWriter w;
  w.start(hdr, msg.data(), small);
  std::size_t at = 0;
  for (std::size_t i = 0; !w.done(); ++i) {
    const std::size_t want = 1 + (16 + i < size ? data[16 + i] : 0);
    const std::size_t n = w.produce(a.tx, wire.data() + at, wire.size() - at, want);
    if (n == 0) __builtin_trap();
    at += n;
  }
  if (at != wire.size() || !b.rx.open(hdr, 16, wire.data(), small, wire.data() + small) ||
      (small && std::memcmp(wire.data(), msg.data(), small) != 0))
    __builtin_trap();
  return 0;
}
