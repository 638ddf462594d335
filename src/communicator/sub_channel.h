// Channels of a sub-communicator (Communicator::split, dup): adapters over the
// channel objects of the communicator that owns them.
//
// A sub-communicator never creates, initialises, registers or connects a channel of
// its own: its messages travel over the owner's channel objects (the same sockets,
// the same Redis connection, the same bucket). The adapter
//  - translates ranks: the sub-communicator's rank r is the owner's rank to_base[r];
//  - stamps the sub-communicator's id into every Tag (Tag::comm), so its messages
//    and objects never match the owner's or another sub-communicator's, whatever
//    the interleaving (on the wire the id is in the top bits of the 64-bit tag; in
//    object keys it is an extra path element, see ObjectKey::str);
//  - shares the owner's channel by shared_ptr, but never finalizes it: the owner's
//    destructor does. After the owner is destroyed every call raises UsageError
//    (the channel is closed), so a sub-communicator is usable while the
//    communicator that owns the channels lives. Splits of a split wrap the owner's
//    channel directly (the rank maps are composed), so only the owner's lifetime
//    matters, not the intermediate communicator's.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "fmi/channel.h"

namespace FMI::Comm {

/// Wraps `parent` (a channel of the communicator whose rank r' is to_parent[r] for
/// the new communicator's rank r) for a sub-communicator with id `comm` (1 ..
/// Tag::max_comm). When `parent` is itself an adapter, the result wraps the
/// underlying channel with the composed rank map. `owner_alive` expires when the
/// communicator that owns `parent` is destroyed (ignored for an adapter parent,
/// which carries its own).
std::shared_ptr<Channel> make_sub_channel(const std::shared_ptr<Channel>& parent,
                                          const std::vector<Utils::peer_num>& to_parent,
                                          std::uint32_t comm,
                                          std::weak_ptr<const void> owner_alive);

/// True if `ch` is an adapter made by make_sub_channel.
bool is_sub_channel(const Channel& ch);

}  // namespace FMI::Comm
