// Test messages of the Direct channel tests: deterministic bytes per (sender,
// receiver, round) that the receiver checks one by one, so a message that arrives
// from the wrong peer, in the wrong round or altered is reported by its first bad
// byte. Shared by direct_test.cpp and threads_test.cpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fmi/types.h"
#include "harness.h"

namespace fmitest::direct {

/// Deterministic content of the message from `from` to `to` in round `r`.
inline std::byte pattern(std::size_t k, unsigned from, unsigned to, std::size_t r) {
  return std::byte(std::uint8_t(k * 131 + from * 17 + to * 7 + r * 3 + (k >> 12)));
}
inline std::vector<std::byte> make_data(std::size_t n, unsigned from, unsigned to, std::size_t r) {
  std::vector<std::byte> v(n);
  for (std::size_t k = 0; k < n; ++k) v[k] = pattern(k, from, to, r);
  return v;
}
inline void check_data(const std::vector<std::byte>& v, unsigned from, unsigned to, std::size_t r) {
  for (std::size_t k = 0; k < v.size(); ++k)
    PEER_CHECK(v[k] == pattern(k, from, to, r), "byte ", k, " of ", v.size(), " from peer ", from,
               " to ", to, " round ", r);
}

inline auto deadline(std::chrono::milliseconds d = std::chrono::seconds(60)) {
  return FMI::Utils::Clock::now() + d;
}
inline FMI::Comm::Tag tag(std::uint32_t seq,
                          FMI::Utils::Operation op = FMI::Utils::Operation::send) {
  return FMI::Comm::Tag{op, seq};
}

}  // namespace fmitest::direct
