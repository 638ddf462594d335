// Basic vocabulary shared by the API, the channels and the collective algorithms.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace FMI::Utils {

/// A peer (function) id within a communicator: 0 .. num_peers-1.
using peer_num = unsigned int;

/// What the channel policy optimises for. Must be set identically on every peer
/// (it is an input of the channel choice, which all peers must make the same way).
enum class Hint { fast, cheap };

/// Every operation FMI performs; part of each message's tag and of the policy's input.
enum class Operation : std::uint8_t {
  send = 1,  // point-to-point (send and recv share the tag space of a pair)
  bcast,
  barrier,
  gather,
  scatter,
  reduce,
  allreduce,
  scan,
  allgather,
  alltoall,
  reduce_scatter,
  // Variable-size forms: every peer's block has its own size (counts per peer).
  gatherv,
  scatterv,
  allgatherv,
  alltoallv,
};

const char* to_string(Operation op);
const char* to_string(Hint h);

using Clock = std::chrono::steady_clock;
/// Every blocking call in FMI takes an absolute deadline on the steady clock, so
/// time spent inside requests counts as well as time spent sleeping.
using Deadline = Clock::time_point;

}  // namespace FMI::Utils

namespace FMI::Comm {

using Bytes = std::span<std::byte>;
using ConstBytes = std::span<const std::byte>;

/// Names one message of one operation: (operation, sequence number). Every rank
/// numbers its collectives in the same order, so (op, seq) identifies the same
/// collective on every peer; point-to-point messages use a per-pair sequence.
/// `comm` keeps sub-communicators (Communicator::split) apart on the channels of
/// the communicator they were split from: 0 for a communicator that owns its
/// channels, a 24-bit id otherwise. It lives in the top bits of encode(), which
/// were always zero, so the 64-bit tag on the wire keeps its format.
struct Tag {
  static constexpr std::uint32_t max_comm = 0xffffffu;  // comm has 24 bits
  Utils::Operation op{};
  std::uint32_t seq = 0;
  std::uint32_t comm = 0;

  std::uint64_t encode() const {
    return (std::uint64_t(comm & max_comm) << 40) | (std::uint64_t(op) << 32) | seq;
  }
  static Tag decode(std::uint64_t v) {
    return Tag{static_cast<Utils::Operation>((v >> 32) & 0xff), static_cast<std::uint32_t>(v),
               static_cast<std::uint32_t>(v >> 40) & max_comm};
  }
  bool operator==(const Tag&) const = default;
};

std::string to_string(const Tag& t);

}  // namespace FMI::Comm
