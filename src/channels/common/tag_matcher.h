// Matching of received messages by (source, tag), written once for the
// point-to-point channels (Direct, in-process).
//
// A receive names its source and its tag. A message from that source with another
// tag can arrive first: a point-to-point message while the receiver is inside a
// collective, or the next collective's message from a peer that is one step ahead.
// It is kept here until the receive that asks for it, as MPI matches by (source,
// tag). A message a peer sends to itself waits here too, from the send (which
// never blocks) to its recv.
//
// Per source, messages stay in arrival order, so two messages with the same tag
// are received in the order they were sent, as on one TCP connection.
//
// How the bytes arrive stays with the channel: Direct reads them off its stream
// (and decides what is too large to keep), the in-process channel gets them from
// the sender's thread. Not thread-safe: Direct guards it with its channel lock; the
// in-process channel keeps one per receiver, guarded by that receiver's mutex.
//
// Every parked message gets an arrival number (increasing across all sources), so
// a probe over several sources can pick the oldest message that has arrived.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "fmi/types.h"

namespace FMI::Comm {

class TagMatcher {
 public:
  /// Keeps a message from `src` for a later pop()/take().
  void park(Utils::peer_num src, Tag tag, std::vector<std::byte> data) {
    // Grown on demand: the matcher needs no peer count, and a source it never
    // heard from simply has nothing parked.
    if (src >= from_.size()) from_.resize(std::size_t(src) + 1);
    from_[src].push_back({tag, next_arrival_++, std::move(data)});
  }

  /// What a probe sees of the oldest message from `src` with `tag`, left parked.
  struct Peeked {
    std::uint64_t arrival;  // smaller: arrived earlier (any source)
    std::size_t bytes;
  };
  std::optional<Peeked> peek(Utils::peer_num src, Tag tag) const {
    if (src >= from_.size()) return std::nullopt;
    for (const auto& m : from_[src])
      if (m.tag == tag) return Peeked{m.arrival, m.data.size()};
    return std::nullopt;
  }

  /// Removes and returns the oldest message from `src` with `tag`; nullopt when
  /// none is parked.
  std::optional<std::vector<std::byte>> pop(Utils::peer_num src, Tag tag) {
    if (src >= from_.size()) return std::nullopt;
    auto& q = from_[src];
    auto it = std::find_if(q.begin(), q.end(), [&](const Message& m) { return m.tag == tag; });
    if (it == q.end()) return std::nullopt;
    std::vector<std::byte> data = std::move(it->data);
    q.erase(it);
    return data;
  }

  /// Copies a matched message into the receive buffer. A message of another size
  /// than `out` is reported by `mismatch(size)`, which must throw (the channel's
  /// PeerError names the operation and the peers); the message is consumed
  /// either way, as MPI consumes a message that failed to match in size.
  template <class Mismatch>
  static void deliver(const std::vector<std::byte>& data, Bytes out, Mismatch&& mismatch) {
    if (data.size() != out.size()) mismatch(data.size());
    if (!out.empty()) std::memcpy(out.data(), data.data(), out.size());
  }

  /// pop() then deliver(): true when a message from `src` with `tag` was parked
  /// and is now in `out`.
  template <class Mismatch>
  bool take(Utils::peer_num src, Tag tag, Bytes out, Mismatch&& mismatch) {
    auto data = pop(src, tag);
    if (!data) return false;
    deliver(*data, out, std::forward<Mismatch>(mismatch));
    return true;
  }

  /// How many messages from `src` are parked, and how many bytes they hold: a
  /// channel bounds both before it accepts another one (a header can announce any
  /// size). Walks the queue: only called when a message is about to be parked.
  std::size_t parked_messages(Utils::peer_num src) const {
    return src < from_.size() ? from_[src].size() : 0;
  }
  std::uint64_t parked_bytes(Utils::peer_num src) const {
    std::uint64_t n = 0;
    if (src < from_.size())
      for (const auto& m : from_[src]) n += m.data.size();
    return n;
  }

  /// Drops every parked message (finalize, re-init).
  void clear() { from_.clear(); }

 private:
  struct Message {
    Tag tag;
    std::uint64_t arrival;
    std::vector<std::byte> data;
  };
  std::vector<std::deque<Message>> from_;  // indexed by source peer
  std::uint64_t next_arrival_ = 0;
};

}  // namespace FMI::Comm
