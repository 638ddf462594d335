// Virtual ranks and binomial subtrees, shared by the rooted p2p algorithms
// (p2p.cpp, vector.cpp).
//
// Rooted algorithms work on the virtual rank v = (r - root) mod n, so that the
// root is always v = 0 and one tree shape serves every root. In the binomial
// tree, virtual rank v > 0 has the parent v - lowbit(v) and owns the subtree
// [v, v + lowbit(v)) clipped at n; the root owns everything.
#pragma once

#include <algorithm>

#include "fmi/types.h"

namespace FMI::coll::tree {

using Utils::peer_num;

inline peer_num to_virtual(peer_num r, peer_num root, peer_num n) { return (r + n - root) % n; }
inline peer_num to_real(peer_num v, peer_num root, peer_num n) { return (v + root) % n; }

/// Number of virtual ranks in v's binomial subtree [v, v + size): the lowest set
/// bit of v (for the root, the first power of two >= n), clipped at n.
inline peer_num subtree_of(peer_num v, peer_num n, peer_num* lowbit = nullptr) {
  peer_num sub = 1;
  while (sub < n && !(v & sub)) sub <<= 1;
  if (lowbit) *lowbit = sub;
  return std::min(sub, n - v);
}

}  // namespace FMI::coll::tree
