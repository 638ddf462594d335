// Communicator::split and dup: sub-communicators over the parent's channels.
//
// The split is one allgather of (color, key) over the parent; every member then
// computes the same groups, ranks and ids locally. The child gets adapters over
// the parent's channel objects (sub_channel.h): rank translation and the child's
// id in every tag, no channel of its own.
//
// Ids. A child's id (Tag::comm, 24 bits) is derived from the parent's id, the
// parent's split counter and the color, so it is equal on every member without
// any further message. Every member of the parent knows every color of the split,
// and every member of the child knows the ids of its ancestors and of everything
// its ancestors' splits handed out, so a derived id that equals one of those is
// re-derived (deterministically, the same way on every member): an id is distinct
// from its siblings', its ancestors' and every earlier split's of the same
// ancestors. What cannot be checked without messages are communicators that share
// members but descend from different splits below a common ancestor (e.g. the
// children of two overlapping siblings-of-different-splits); for those a repeat
// has probability 2^-24 per pair, documented in docs/collectives.md.
#include <algorithm>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "communicator/sub_channel.h"
#include "communicator/worker_pool.h"
#include "fmi/communicator.h"

namespace FMI {

namespace {

std::uint64_t mix(std::uint64_t x) {
  // splitmix64's finaliser: every input bit affects every output bit.
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint32_t derive_id(std::uint32_t parent, std::uint32_t round, int color,
                        std::uint32_t attempt) {
  std::uint64_t h = mix(parent);
  h = mix(h ^ round);
  h = mix(h ^ static_cast<std::uint32_t>(color));
  h = mix(h ^ attempt);
  return static_cast<std::uint32_t>(h) & Comm::Tag::max_comm;
}

}  // namespace

Communicator::Communicator(const Communicator& parent, peer_num peer_id,
                           const std::vector<peer_num>& to_parent, std::uint32_t comm_id,
                           std::vector<std::uint32_t> avoid)
    : peer_id_(peer_id),
      num_peers_(static_cast<peer_num>(to_parent.size())),
      comm_name_(parent.comm_name_),
      faas_memory_(parent.faas_memory_),
      config_(parent.config_),
      hint_(parent.hint_),
      policy_(parent.policy_),
      policy_is_default_(parent.policy_is_default_),
      send_seq_(to_parent.size(), 0),
      recv_seq_(to_parent.size(), 0) {
  comm_id_ = comm_id;
  taken_ids_ = std::move(avoid);
  for (const auto& [name, ch] : parent.channels_)
    channels_[name] = Comm::make_sub_channel(ch, to_parent, comm_id, parent.alive_);
}

std::unique_ptr<Communicator> Communicator::split(int color, int key) {
  // One allgather of (color, key) as two int32 per peer.
  const std::int32_t mine[2] = {color, key};
  std::vector<std::int32_t> all(2 * std::size_t(num_peers_));
  allgather_bytes(std::as_bytes(std::span(mine)), std::as_writable_bytes(std::span(all)));
  const std::uint32_t round = split_count_++;

  // Every color's id, in color order so that re-derivations agree everywhere.
  std::vector<int> colors;
  for (peer_num p = 0; p < num_peers_; ++p)
    if (all[2 * p] >= 0) colors.push_back(all[2 * p]);
  std::sort(colors.begin(), colors.end());
  colors.erase(std::unique(colors.begin(), colors.end()), colors.end());
  std::uint32_t my_id = 0;
  for (int c : colors) {
    std::uint32_t id = 0;
    for (std::uint32_t attempt = 0;; ++attempt) {
      id = derive_id(comm_id_, round, c, attempt);
      if (id != 0 && id != comm_id_ &&
          std::find(taken_ids_.begin(), taken_ids_.end(), id) == taken_ids_.end())
        break;
    }
    taken_ids_.push_back(id);
    if (c == color) my_id = id;
  }
  if (color < 0) return nullptr;

  std::vector<peer_num> members;
  for (peer_num p = 0; p < num_peers_; ++p)
    if (all[2 * p] == color) members.push_back(p);
  std::stable_sort(members.begin(), members.end(), [&](peer_num a, peer_num b) {
    return all[2 * a + 1] < all[2 * b + 1];  // ties keep the parent's order
  });
  const auto rank =
      static_cast<peer_num>(std::find(members.begin(), members.end(), peer_id_) - members.begin());

  // The child must avoid what this communicator avoids (its ancestors and all ids
  // handed out so far, its siblings' included) and this communicator's own id.
  std::vector<std::uint32_t> avoid = taken_ids_;
  if (comm_id_ != 0) avoid.push_back(comm_id_);
  return std::unique_ptr<Communicator>(
      new Communicator(*this, rank, members, my_id, std::move(avoid)));
}

std::unique_ptr<Communicator> Communicator::dup() { return split(0, static_cast<int>(peer_id_)); }

}  // namespace FMI
