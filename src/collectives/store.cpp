// Collective algorithms over object stores (Redis, S3, in-process store).
//
// On a store every request costs a round trip (and on S3 money), and a consumer
// cannot be pushed to, only wake up or poll. So every algorithm here is a single
// round where possible: producers upload once, each object names how many peers
// will read it (put's `readers`), consumers download what they need. No algorithm
// lists the store to count arrivals: every consumer knows the exact keys it needs.
//
// Keys are (tag = operation + sequence, from, to); within one collective each
// (from, to) pair is used at most once, so keys never collide.
#include <cstring>
#include <vector>

#include "collectives/collectives.h"
#include "fmi/errors.h"

namespace FMI::coll::store {
namespace {

using Comm::Bytes;
using Comm::ConstBytes;
using Comm::ObjectKey;
using Utils::peer_num;
using Buffer = std::vector<std::byte>;

ObjectKey key(const Context& c, peer_num from, peer_num to = ObjectKey::all) {
  return ObjectKey{c.tag, from, to};
}

// Everyone uploads its contribution for `readers` consumers. Returns nothing:
// the consumers know the keys.
void upload_own(Ch& ch, const Context& c, ConstBytes data, peer_num to, unsigned readers) {
  if (readers > 0) ch.put(key(c, c.rank, to), data, readers, c.deadline);
}

// acc = x_0 op x_1 op ... op x_(n-1), strictly in peer order, where x_p is read
// from the store (or is `own` for p == self). Applied as each object arrives; the
// order is the peer order, which is what ordered functions require and gives
// reproducible bits for the others.
void reduce_in_order(Ch& ch, const Context& c, ConstBytes own, Bytes acc, const ReduceOp& f,
                     peer_num to) {
  Buffer tmp(own.size());
  for (peer_num p = 0; p < c.size; ++p) {
    ConstBytes x = own;
    if (p != c.rank) {
      ch.get(key(c, p, to), tmp, c.deadline);
      x = tmp;
    }
    if (p == 0)
      copy(x, acc);
    else
      f(acc, x, acc);
  }
}

}  // namespace

void send(Ch& ch, const Context& c, ConstBytes data, peer_num dest) {
  ch.put(key(c, c.rank, dest), data, 1, c.deadline);
}

void recv(Ch& ch, const Context& c, Bytes data, peer_num src) {
  ch.get(key(c, src, c.rank), data, c.deadline);
}

// One upload, n-1 downloads.
void bcast(Ch& ch, const Context& c, Bytes buf, const Options& o) {
  if (c.size == 1) return;
  if (c.rank == o.root)
    ch.put(key(c, o.root), buf, c.size - 1, c.deadline);
  else
    ch.get(key(c, o.root), buf, c.deadline);
}

// Arrivals go to peer 0 (one small object each), which then releases everyone
// with one object read by all: 2 rounds, 2(n-1) requests, no listing.
void barrier(Ch& ch, const Context& c, const Options&) {
  if (c.size == 1) return;
  std::byte none{};
  Bytes empty(&none, 0);
  if (c.rank != 0) {
    ch.put(key(c, c.rank, 0), empty, 1, c.deadline);
    ch.get(key(c, 0), empty, c.deadline);
  } else {
    for (peer_num p = 1; p < c.size; ++p) ch.get(key(c, p, 0), empty, c.deadline);
    ch.put(key(c, 0), empty, c.size - 1, c.deadline);
  }
}

void gather(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const Options& o) {
  const std::size_t bs = send.size();
  if (c.rank != o.root) {
    ch.put(key(c, c.rank, o.root), send, 1, c.deadline);
    return;
  }
  for (peer_num p = 0; p < c.size; ++p) {
    if (p == o.root)
      copy(send, recv.subspan(p * bs, bs));
    else
      ch.get(key(c, p, o.root), recv.subspan(p * bs, bs), c.deadline);
  }
}

void scatter(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const Options& o) {
  const std::size_t bs = recv.size();
  if (c.rank != o.root) {
    ch.get(key(c, o.root, c.rank), recv, c.deadline);
    return;
  }
  for (peer_num p = 0; p < c.size; ++p) {
    if (p == o.root)
      copy(send.subspan(p * bs, bs), recv);
    else
      ch.put(key(c, o.root, p), send.subspan(p * bs, bs), 1, c.deadline);
  }
}

void reduce(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const ReduceOp& f,
            const Options& o) {
  if (c.rank != o.root) {
    upload_own(ch, c, send, o.root, 1);
    return;
  }
  reduce_in_order(ch, c, send, recv, f, o.root);
}

// Reduce at peer 0, then one result object read by everyone: n+1 uploads and
// 2(n-1) downloads, where "everyone reads everything" would need n(n-1) downloads.
void allreduce(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const ReduceOp& f,
               const Options&) {
  if (c.size == 1) {
    copy(send, recv);
    return;
  }
  if (c.rank != 0) {
    upload_own(ch, c, send, 0, 1);
    ch.get(key(c, 0), recv, c.deadline);
    return;
  }
  reduce_in_order(ch, c, send, recv, f, 0);
  ch.put(key(c, 0), recv, c.size - 1, c.deadline);
}

// One round: every peer uploads its value once, read by the peers after it;
// peer i folds x_0 .. x_i left to right itself (exact order for any function).
void scan(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const ReduceOp& f,
          const Options&) {
  upload_own(ch, c, send, ObjectKey::all, c.size - 1 - c.rank);
  Buffer tmp(send.size());
  for (peer_num p = 0; p <= c.rank; ++p) {
    ConstBytes x = send;
    if (p != c.rank) {
      ch.get(key(c, p), tmp, c.deadline);
      x = tmp;
    }
    if (p == 0)
      copy(x, recv);
    else
      f(recv, x, recv);
  }
}

// Gathered at peer 0 (one object per other peer), which uploads the whole result
// once for the n - 1 others: n uploads and 2(n - 1) downloads, where everyone
// reading everyone's object would take n(n - 1) downloads (65,280 at 256 peers,
// each a request). Two rounds instead of one, but a peer's reads were sequential
// anyway, and the bytes each peer downloads stay about the same (the n blocks in
// one object instead of n - 1 objects).
void allgather(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const Options&) {
  const std::size_t bs = send.size();
  if (c.size == 1) {
    copy(send, recv);
    return;
  }
  if (c.rank != 0) {
    ch.put(key(c, c.rank, 0), send, 1, c.deadline);
    ch.get(key(c, 0), recv, c.deadline);
    return;
  }
  copy(send, recv.subspan(0, bs));
  for (peer_num p = 1; p < c.size; ++p) ch.get(key(c, p, 0), recv.subspan(p * bs, bs), c.deadline);
  ch.put(key(c, 0), recv, c.size - 1, c.deadline);
}

void alltoall(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const Options&) {
  const std::size_t bs = send.size() / c.size;
  for (peer_num p = 0; p < c.size; ++p)
    if (p != c.rank) ch.put(key(c, c.rank, p), send.subspan(p * bs, bs), 1, c.deadline);
  copy(send.subspan(c.rank * bs, bs), recv.subspan(c.rank * bs, bs));
  for (peer_num p = 0; p < c.size; ++p)
    if (p != c.rank) ch.get(key(c, p, c.rank), recv.subspan(p * bs, bs), c.deadline);
}

// Every peer uploads block j for peer j; peer j folds the n blocks in peer order.
void reduce_scatter(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const ReduceOp& f,
                    const Options&) {
  const std::size_t bs = recv.size();
  for (peer_num p = 0; p < c.size; ++p)
    if (p != c.rank) ch.put(key(c, c.rank, p), send.subspan(p * bs, bs), 1, c.deadline);
  reduce_in_order(ch, c, send.subspan(c.rank * bs, bs), recv, f, c.rank);
}

}  // namespace FMI::coll::store
