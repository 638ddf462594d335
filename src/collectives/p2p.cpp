// Collective algorithms over point-to-point channels (Direct, in-process).
//
// Conventions used throughout:
//  - n = number of peers, r = this peer's rank.
//  - Rooted algorithms work on the virtual rank v = (r - root) mod n, so that the
//    root is always v = 0 and one tree shape serves every root.
//  - "block" = one peer's contribution (gather/scatter/allgather/alltoall);
//    "chunk" = one of n slices of a buffer that a bandwidth-optimal algorithm
//    reduces or forwards piecewise (cut at multiples of the operator's element
//    size, so an element-wise reduction can work on any chunk).
//  - All messages of one collective share its tag; the channel keeps messages of
//    one ordered pair in order, and every algorithm has both sides of a pair
//    perform their transfers in the same order.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collectives/collectives.h"
#include "collectives/tree.h"
#include "fmi/errors.h"

namespace FMI::coll::p2p {
namespace {

using Comm::Bytes;
using Comm::ConstBytes;
using Utils::peer_num;
using Buffer = std::vector<std::byte>;

using tree::subtree_of;
using tree::to_real;
using tree::to_virtual;

// Chunk i of a buffer of `len` bytes cut into n chunks at multiples of `gran`
// bytes: sizes differ by at most one element.
struct Chunks {
  std::size_t len, gran;
  peer_num n;
  std::size_t begin(peer_num i) const {
    const std::size_t elems = len / gran;
    return gran * (elems * i / n);
  }
  std::size_t size(peer_num i) const { return begin(i + 1) - begin(i); }
  std::size_t max_size() const {
    std::size_t m = 0;
    for (peer_num i = 0; i < n; ++i) m = std::max(m, size(i));
    return m;
  }
};

// Scratch space that stays on the stack for small messages: the 8-byte reductions
// would otherwise pay a heap allocation (and its free) per call and peer. Larger ones
// are left uninitialised: every use writes before it reads, and zero-filling would
// cost a memset of the message per call.
class Scratch {
 public:
  explicit Scratch(std::size_t n) {
    if (n > small_.size()) heap_.reset(new std::byte[n]);
    bytes_ = n > small_.size() ? Bytes(heap_.get(), n) : Bytes(small_.data(), n);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  Bytes bytes() const { return bytes_; }
  operator Bytes() const { return bytes_; }
  operator ConstBytes() const { return bytes_; }

 private:
  std::array<std::byte, 256> small_;
  std::unique_ptr<std::byte[]> heap_;
  Bytes bytes_;
};

// ---- segmented pipelines ---------------------------------------------------------

constexpr peer_num kNone = ~peer_num(0);

std::size_t segment_bytes(const Options& o) {
  if (o.segment > 0) return o.segment;
  // Read once: a sweep sets FMI_SEGMENT_BYTES for the whole run (every peer).
  static const std::size_t env = [] {
    const char* v = std::getenv("FMI_SEGMENT_BYTES");
    if (!v || !*v) return kSegment;
    char* end = nullptr;
    const unsigned long long x = std::strtoull(v, &end, 10);
    if (*end || x == 0)
      FMI_THROW(ConfigError, "FMI_SEGMENT_BYTES='", v, "' must be a positive number of bytes");
    return std::size_t(x);
  }();
  return env;
}

// A buffer of `len` bytes cut into segments of `step` bytes (the last one shorter),
// `step` a multiple of the function's granularity, so an element-wise function can
// work on any segment and both ends of a link agree on every segment's size.
struct Segments {
  std::size_t len, step;
  Segments(std::size_t l, std::size_t seg, std::size_t gran) : len(l) {
    gran = std::max<std::size_t>(gran, 1);
    step = std::max(gran, seg / gran * gran);
  }
  std::size_t count() const { return (len + step - 1) / step; }
  std::size_t begin(std::size_t k) const { return std::min(len, k * step); }
  std::size_t size(std::size_t k) const { return begin(k + 1) - begin(k); }
};

// One peer's part of a segmented pipeline along a chain prev -> me -> next (kNone
// at the ends): segment k arrives from prev into in(k), done(k) processes it, and it
// leaves as out(k) for next while segment k+1 arrives (sendrecv), so every link of
// the chain is busy at once. The head (no prev) produces with done(k) and sends.
// Each link carries the segments in order on the collective's tag.
template <typename In, typename Done, typename Out>
void chain_pipeline(Ch& ch, const Context& c, peer_num prev, peer_num next, std::size_t nseg, In in,
                    Done done, Out out) {
  for (std::size_t k = 0; k < nseg; ++k) {
    if (prev != kNone) {
      if (next != kNone && k > 0)
        ch.sendrecv(next, out(k - 1), prev, in(k), c.tag, c.deadline);
      else
        ch.recv(prev, in(k), c.tag, c.deadline);
    }
    done(k);
    if (prev == kNone && next != kNone) ch.send(next, out(k), c.tag, c.deadline);
  }
  if (prev != kNone && next != kNone && nseg > 0) ch.send(next, out(nseg - 1), c.tag, c.deadline);
}

// Pipelined left fold along a chain: this peer receives the fold of everything
// before it segment by segment, combines each as (received op mine), and passes
// it on. `result` is where this peer keeps its combined segments; empty: it only
// passes them on, and two segment buffers are all it holds. The head's fold is its
// own contribution. Strictly left to right in chain order, element-wise: any
// chunkable function (granularity > 0), commutative and associative or not.
// `result` may be `mine` (in place).
void fold_chain(Ch& ch, const Context& c, peer_num prev, peer_num next, ConstBytes mine,
                Bytes result, const ReduceOp& f, std::size_t seg) {
  const Segments sg(mine.size(), seg, f.granularity);
  const std::size_t nseg = sg.count();
  auto mine_of = [&](std::size_t k) { return mine.subspan(sg.begin(k), sg.size(k)); };
  if (prev == kNone) {
    if (!result.empty()) copy(mine, result);
    chain_pipeline(
        ch, c, prev, next, nseg, [](std::size_t) { return Bytes(); }, [](std::size_t) {}, mine_of);
    return;
  }
  // Two segment buffers: k arrives in one while k-1 leaves from the other (each
  // received into before it is read: left uninitialised).
  const std::size_t half = std::min(sg.step, mine.size());
  const std::unique_ptr<std::byte[]> tmp(new std::byte[2 * half]);
  auto in = [&](std::size_t k) { return Bytes(tmp.get() + (k % 2) * half, sg.size(k)); };
  auto dst = [&](std::size_t k) {
    return result.empty() ? in(k) : result.subspan(sg.begin(k), sg.size(k));
  };
  chain_pipeline(
      ch, c, prev, next, nseg, in, [&](std::size_t k) { f(in(k), mine_of(k), dst(k)); },
      [&](std::size_t k) { return ConstBytes(dst(k)); });
}

// Pipelined broadcast along the chain of virtual ranks 0 -> 1 -> ... -> n-1: every
// link carries the message once, in segments, all links at once; about
// (segments + n - 2) segment times against log2(n) whole messages for the tree.
void bcast_pipeline(Ch& ch, const Context& c, Bytes buf, peer_num root, std::size_t seg) {
  const peer_num n = c.size, v = to_virtual(c.rank, root, n);
  const Segments sg(buf.size(), seg, 1);
  auto part = [&](std::size_t k) { return buf.subspan(sg.begin(k), sg.size(k)); };
  chain_pipeline(
      ch, c, v > 0 ? to_real(v - 1, root, n) : kNone, v + 1 < n ? to_real(v + 1, root, n) : kNone,
      sg.count(), part, [](std::size_t) {}, part);
}

constexpr std::size_t kRingSegment = std::size_t(1) << 20;

// Ring reduce-scatter of this peer's contribution `src` (n chunks). Step s: send
// chunk (r - s - 1) to the right neighbour, receive chunk (r - s - 2) from the left
// one and reduce it with ours. A chunk c starts at rank c+1 and travels right
// picking up one contribution per hop, so after n-1 steps rank r holds chunk r
// complete. Requires a commutative and associative operator (contributions are
// combined in ring order, not peer order).
//
// `acc(s)` is where step s puts the chunk it reduces (ck.size of that chunk bytes);
// step s+1 sends it from there, and nothing reads it after that, so the last step's
// acc(n-2) is chunk r's result and the others may share two buffers in turn. No copy
// of `src` comes first: the chunk reduced at step s was never touched before, so the
// reduction reads our contribution straight from `src`; the chunk sent at step 0 goes
// out from `src`.
template <typename Acc>
void ring_reduce_scatter_into(Ch& ch, const Context& c, ConstBytes src, const Chunks& ck,
                              const ReduceOp& f, const Acc& acc) {
  const peer_num n = c.size, r = c.rank;
  const peer_num right = (r + 1) % n, left = (r + n - 1) % n;
  // Each step moves its chunk in segments of about kRingSegment and reduces each
  // segment as soon as it has arrived: the reduction then reads data still in the
  // cache, and the neighbours' transfers of the next segment overlap it (64 MiB,
  // 2 peers: 46-53 ms against 72-90 ms unsegmented; docs/collectives.md). Every
  // chunk is cut into the same number of segments, at multiples of the function's
  // granularity, so both ends of a link agree on each segment's size.
  const std::size_t nseg =
      std::max<std::size_t>(1, (ck.max_size() + kRingSegment - 1) / kRingSegment);
  const std::size_t g = std::max<std::size_t>(f.granularity, 1);
  struct Range {
    std::size_t off, len;  // within the chunk
  };
  auto segment = [&](peer_num chunk, std::size_t j) {
    const std::size_t elems = ck.size(chunk) / g;
    const std::size_t b = g * (elems * j / nseg), e = g * (elems * (j + 1) / nseg);
    return Range{b, e - b};
  };
  // Each segment is received here before it is read: no zero-fill needed.
  const std::unique_ptr<std::byte[]> tmp(new std::byte[ck.max_size() / nseg + g]);
  for (peer_num s = 0; s + 1 < n; ++s) {
    const peer_num cs = (r + 2 * n - s - 1) % n;
    const peer_num cr = (r + 2 * n - s - 2) % n;
    const ConstBytes from =
        s == 0 ? src.subspan(ck.begin(cs), ck.size(cs)) : ConstBytes(acc(s - 1));
    const Bytes to = acc(s);
    const ConstBytes mine = src.subspan(ck.begin(cr), ck.size(cr));
    for (std::size_t j = 0; j < nseg; ++j) {
      const Range o = segment(cs, j), i = segment(cr, j);
      Bytes in(tmp.get(), i.len);
      ch.sendrecv(right, from.subspan(o.off, o.len), left, in, c.tag, c.deadline);
      if (i.len > 0) f(in, mine.subspan(i.off, i.len), to.subspan(i.off, i.len));
    }
  }
}

// The ring reduce-scatter into a whole buffer `buf` laid out as `src`: after it,
// `buf` chunk r is the result (allreduce's allgather goes on from there); chunk r-1
// is not written. `src` may be `buf` (in place).
void ring_reduce_scatter(Ch& ch, const Context& c, ConstBytes src, Bytes buf, const Chunks& ck,
                         const ReduceOp& f) {
  const peer_num n = c.size, r = c.rank;
  ring_reduce_scatter_into(ch, c, src, ck, f, [&](peer_num s) {
    const peer_num cr = (r + 2 * n - s - 2) % n;
    return buf.subspan(ck.begin(cr), ck.size(cr));
  });
}

bool overlaps(ConstBytes a, ConstBytes b) {
  return !a.empty() && !b.empty() && a.data() < b.data() + b.size() &&
         b.data() < a.data() + a.size();
}

// The ring reduce-scatter when only chunk r is wanted (reduce_scatter, the ring
// reduce), into `out` (ck.size(r) bytes; empty: the result stays in `spare`). The
// chunk reduced at a step is sent at the next and never read again, so the steps
// take turns between `out` and one spare chunk, the last one writing `out`; when
// `out` cannot take every chunk (chunks of unequal size, none given, or overlapping
// `src`), two spare chunks take turns and the last step writes one of them. Against
// a buffer of all n chunks (zero-filled, on every call: at 16 MiB blocks on 4 peers
// 64 MiB memset and faulted in per peer and call, measured with perf stat) this
// touches one or two chunks, left uninitialised, and copies nothing out. Returns
// where the result is.
Bytes ring_reduce_scatter_mine(Ch& ch, const Context& c, ConstBytes src, Bytes out,
                               const Chunks& ck, const ReduceOp& f,
                               std::unique_ptr<std::byte[]>& spare) {
  const peer_num n = c.size, r = c.rank;
  const std::size_t m = ck.max_size();
  bool equal = !out.empty() && !overlaps(out, src);
  for (peer_num i = 0; equal && i < n; ++i) equal = ck.size(i) == out.size();
  spare.reset(new std::byte[equal ? m : 2 * m]);  // default-initialised: no memset
  auto acc = [&](peer_num s) {
    const peer_num cr = (r + 2 * n - s - 2) % n;
    if (equal) return (n - 2 - s) % 2 == 0 ? out : Bytes(spare.get(), m);
    return Bytes(spare.get() + (s % 2) * m, ck.size(cr));
  };
  ring_reduce_scatter_into(ch, c, src, ck, f, acc);
  return acc(n - 2);
}

// Ring allgather in place on `buf`: rank r starts with chunk r complete; step s
// forwards chunk (r - s) to the right and receives chunk (r - s - 1) from the left.
void ring_allgather(Ch& ch, const Context& c, Bytes buf, const Chunks& ck) {
  const peer_num n = c.size, r = c.rank;
  const peer_num right = (r + 1) % n, left = (r + n - 1) % n;
  for (peer_num s = 0; s + 1 < n; ++s) {
    const peer_num cs = (r + n - s) % n;
    const peer_num cr = (r + 2 * n - s - 1) % n;
    ch.sendrecv(right, buf.subspan(ck.begin(cs), ck.size(cs)), left,
                buf.subspan(ck.begin(cr), ck.size(cr)), c.tag, c.deadline);
  }
}

// Binomial-tree broadcast on virtual ranks. A peer with virtual rank v > 0
// receives once, from v minus its lowest set bit; then it sends to v + m for
// every power of two m below that bit (the root: below n), largest first, so
// that the far half of the tree starts forwarding as early as possible.
void bcast_binomial(Ch& ch, const Context& c, Bytes buf, peer_num root) {
  const peer_num n = c.size, v = to_virtual(c.rank, root, n);
  peer_num mask = 1;
  while (mask < n) {
    if (v & mask) {
      ch.recv(to_real(v - mask, root, n), buf, c.tag, c.deadline);
      break;
    }
    mask <<= 1;
  }
  for (mask >>= 1; mask > 0; mask >>= 1)
    if (v + mask < n) ch.send(to_real(v + mask, root, n), buf, c.tag, c.deadline);
}

// Large broadcast (van de Geijn): scatter n chunks down the binomial tree, then a
// ring allgather. Each byte crosses each link about twice instead of log2(n) times.
// Chunks are indexed by virtual rank, so a subtree's chunks are contiguous bytes.
void bcast_scatter_allgather(Ch& ch, const Context& c, Bytes buf, peer_num root) {
  const peer_num n = c.size, v = to_virtual(c.rank, root, n);
  const Chunks ck{buf.size(), 1, n};
  auto range = [&](peer_num first, peer_num count) {
    const peer_num last = std::min(n, first + count);
    return buf.subspan(ck.begin(first), ck.begin(last) - ck.begin(first));
  };
  peer_num mask = 1;
  while (mask < n) {
    if (v & mask) {  // my subtree is [v, v + mask)
      ch.recv(to_real(v - mask, root, n), range(v, mask), c.tag, c.deadline);
      break;
    }
    mask <<= 1;
  }
  for (mask >>= 1; mask > 0; mask >>= 1)
    if (v + mask < n) ch.send(to_real(v + mask, root, n), range(v + mask, mask), c.tag, c.deadline);
  // Ring on virtual ranks: virtual peer v holds chunk v.
  Context vc = c;
  vc.rank = v;
  struct Virtual final : Ch {
    Ch& inner;
    peer_num root, n;
    Virtual(Ch& i, peer_num ro, peer_num nn) : inner(i), root(ro), n(nn) {}
    void init(const Comm::ChannelContext&) override {}
    void finalize() noexcept override {}
    std::chrono::milliseconds max_timeout() const override { return inner.max_timeout(); }
    void send(peer_num d, ConstBytes b, Comm::Tag t, Utils::Deadline dl) override {
      inner.send(to_real(d, root, n), b, t, dl);
    }
    void recv(peer_num s, Bytes b, Comm::Tag t, Utils::Deadline dl) override {
      inner.recv(to_real(s, root, n), b, t, dl);
    }
    void sendrecv(peer_num d, ConstBytes b, peer_num s, Bytes o, Comm::Tag t,
                  Utils::Deadline dl) override {
      inner.sendrecv(to_real(d, root, n), b, to_real(s, root, n), o, t, dl);
    }
  } virt(ch, root, n);
  ring_allgather(virt, vc, buf, ck);
}

// Binomial reduction to virtual rank 0 (tree root `root`): a peer combines its
// subtree [v, v + 2^k) as acc = acc op (child's subtree), children taken in
// increasing order. On real ranks (root 0) that keeps the operands in peer order
// (associative functions); on other roots only commutative ones may use it.
// The fold starts from `mine` where it is: a leaf sends its contribution without
// a copy, and the first child's partial is combined straight into `out` (the
// result on the tree root; any scratch elsewhere), which saves the copy of `mine`.
// Small messages never touch the heap (Scratch).
void reduce_binomial(Ch& ch, const Context& c, ConstBytes mine, Bytes out, peer_num root,
                     const ReduceOp& f) {
  const peer_num n = c.size, v = to_virtual(c.rank, root, n);
  ConstBytes acc = mine;
  std::optional<Scratch> tmp, partial;
  for (peer_num mask = 1; mask < n; mask <<= 1) {
    if (v & mask) {
      ch.send(to_real(v - mask, root, n), acc, c.tag, c.deadline);
      return;
    }
    if (v + mask < n) {
      if (!tmp) tmp.emplace(mine.size());
      ch.recv(to_real(v + mask, root, n), *tmp, c.tag, c.deadline);
      Bytes dst = out;
      if (v != 0) {
        if (!partial) partial.emplace(mine.size());
        dst = *partial;
      }
      f(acc, *tmp, dst);
      acc = dst;
    }
  }
  copy(acc, out);  // n == 1: nothing combined
}

// Strict left-to-right reduction for functions that are not associative: a
// chain 0 -> 1 -> ... -> n-1 where peer i computes acc = acc(0..i-1) op x_i.
// Returns true on the peer that ends with the result (n-1).
bool reduce_chain(Ch& ch, const Context& c, ConstBytes send, Bytes acc, const ReduceOp& f) {
  const peer_num n = c.size, r = c.rank;
  if (r == 0) {
    copy(send, acc);
  } else {
    ch.recv(r - 1, acc, c.tag, c.deadline);
    f(acc, send, acc);
  }
  if (r + 1 < n) ch.send(r + 1, acc, c.tag, c.deadline);
  return r + 1 == n;
}

// Recursive doubling allreduce for associative functions, any n. With p the
// largest power of two <= n and e = n - p, the first 2e peers pair up (2i, 2i+1)
// and the odd one keeps x_2i op x_2i+1, leaving p participants that each cover a
// contiguous range of peers in order. In round k, participant j exchanges with
// j ^ 2^k and combines (lower range) op (higher range): both partners compute the
// same operands in the same order, so every peer ends with identical bits, and
// the peer order is preserved (non-commutative functions are fine).
void allreduce_recursive_doubling(Ch& ch, const Context& c, Bytes acc, const ReduceOp& f) {
  const peer_num n = c.size, r = c.rank;
  peer_num p = 1;
  while (p * 2 <= n) p *= 2;
  const peer_num e = n - p;
  Scratch tmp(acc.size());
  peer_num j;  // participant index, or none
  if (r < 2 * e) {
    if (r % 2 == 0) {
      ch.send(r + 1, acc, c.tag, c.deadline);
      ch.recv(r + 1, acc, c.tag, c.deadline);  // the final result
      return;
    }
    ch.recv(r - 1, tmp, c.tag, c.deadline);
    f(tmp, acc, acc);
    j = r / 2;
  } else {
    j = r - e;
  }
  auto real_of = [&](peer_num jj) { return jj < e ? 2 * jj + 1 : jj + e; };
  for (peer_num mask = 1; mask < p; mask <<= 1) {
    const peer_num partner = j ^ mask;
    ch.sendrecv(real_of(partner), acc, real_of(partner), tmp, c.tag, c.deadline);
    if (partner < j)
      f(tmp, acc, acc);
    else
      f(acc, tmp, acc);
  }
  if (r < 2 * e) ch.send(r - 1, acc, c.tag, c.deadline);
}

// A forced algorithm that would compute a wrong result (a ring over a
// non-commutative function, segments of a whole-buffer function) is refused.
void check_supported(Utils::Operation op, Algorithm a, const ReduceProps& props) {
  if (!supports_p2p(op, a, props))
    FMI_THROW(UsageError, Utils::to_string(op), ": algorithm ", to_string(a),
              " cannot run a function that is", props.commutative ? "" : " not commutative,",
              props.associative ? "" : " not associative,",
              props.granularity ? "" : " whole-buffer (granularity 0),", " as this one is");
}

}  // namespace

void bcast(Ch& ch, const Context& c, Bytes buf, const Options& o) {
  if (c.size == 1) return;
  const Algorithm a = prepare(ch, c, Utils::Operation::bcast, o, buf.size());
  if (a == Algorithm::scatter_allgather)
    bcast_scatter_allgather(ch, c, buf, o.root);
  else if (a == Algorithm::pipeline)
    bcast_pipeline(ch, c, buf, o.root, segment_bytes(o));
  else if (a == Algorithm::linear) {
    if (c.rank == o.root) {
      for (peer_num p = 0; p < c.size; ++p)
        if (p != o.root) ch.send(p, buf, c.tag, c.deadline);
    } else {
      ch.recv(o.root, buf, c.tag, c.deadline);
    }
  } else {
    bcast_binomial(ch, c, buf, o.root);
  }
}

// Dissemination barrier: in round k every peer signals (r + 2^k) and waits for
// (r - 2^k); after ceil(log2 n) rounds each peer has transitively heard from all.
// Under a connection budget too small for its 2 log2 n partners: a binomial tree
// (fan-in of empty messages to 0, then a binomial bcast) or a chain (scale.cpp).
void barrier(Ch& ch, const Context& c, const Options& o) {
  const peer_num n = c.size, r = c.rank;
  if (n == 1) return;
  const Algorithm a = prepare(ch, c, Utils::Operation::barrier, o, 0);
  if (a == Algorithm::chain) return barrier_chain(ch, c);
  if (a == Algorithm::binomial) {
    const Options t{0, Algorithm::binomial};
    gather(ch, c, {}, {}, t);
    bcast_binomial(ch, c, {}, 0);
    return;
  }
  for (peer_num d = 1; d < n; d <<= 1)
    ch.sendrecv((r + d) % n, {}, (r + n - d) % n, {}, c.tag, c.deadline);
}

// Binomial gather on virtual ranks: a peer collects the blocks of its subtree
// [v, v + 2^k) contiguously (virtual order) and hands them to its parent in one
// message. The root then rotates virtual order back into peer order.
// Large blocks use the linear algorithm: forwarding would copy each block
// log2(n) times.
void gather(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const Options& o) {
  const peer_num n = c.size, root = o.root;
  const std::size_t bs = send.size();
  const Algorithm a = prepare(ch, c, Utils::Operation::gather, o, bs);
  if (a == Algorithm::chain && n > 1) {
    const std::vector<std::size_t> counts(n, bs);
    return gatherv_chain(ch, c, send, recv, counts, root);
  }
  if (a == Algorithm::linear || n == 1) {
    if (c.rank != root) {
      ch.send(root, send, c.tag, c.deadline);
      return;
    }
    for (peer_num p = 0; p < n; ++p) {
      if (p == root)
        copy(send, recv.subspan(p * bs, bs));
      else
        ch.recv(p, recv.subspan(p * bs, bs), c.tag, c.deadline);
    }
    return;
  }
  const peer_num v = to_virtual(c.rank, root, n);
  const peer_num have = subtree_of(v, n);
  Buffer tmp;
  Bytes acc;
  if (v == 0 && root == 0) {
    acc = recv;  // virtual order is peer order: assemble in place
  } else {
    tmp.resize(static_cast<std::size_t>(have) * bs);
    acc = tmp;
  }
  copy(send, acc.subspan(0, bs));
  for (peer_num mask = 1; mask < n; mask <<= 1) {
    if (v & mask) {
      ch.send(to_real(v - mask, root, n), acc, c.tag, c.deadline);
      return;
    }
    if (v + mask < n) {
      const peer_num cnt = std::min(mask, n - v - mask);
      ch.recv(to_real(v + mask, root, n), acc.subspan(mask * bs, cnt * bs), c.tag, c.deadline);
    }
  }
  if (acc.data() != recv.data())
    for (peer_num i = 0; i < n; ++i)
      copy(acc.subspan(i * bs, bs), recv.subspan(to_real(i, root, n) * bs, bs));
}

// Binomial scatter: the reverse of gather. The root lays the blocks out in
// virtual order; each peer receives its subtree's blocks and passes on the
// halves that belong to its children.
void scatter(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const Options& o) {
  const peer_num n = c.size, root = o.root;
  const std::size_t bs = recv.size();
  const Algorithm a = prepare(ch, c, Utils::Operation::scatter, o, bs);
  if (a == Algorithm::chain && n > 1) {
    const std::vector<std::size_t> counts(n, bs);
    return scatterv_chain(ch, c, send, counts, recv, root);
  }
  if (a == Algorithm::linear || n == 1) {
    if (c.rank != root) {
      ch.recv(root, recv, c.tag, c.deadline);
      return;
    }
    for (peer_num p = 0; p < n; ++p) {
      if (p == root)
        copy(send.subspan(p * bs, bs), recv);
      else
        ch.send(p, send.subspan(p * bs, bs), c.tag, c.deadline);
    }
    return;
  }
  const peer_num v = to_virtual(c.rank, root, n);
  peer_num sub;
  const peer_num have = subtree_of(v, n, &sub);
  Buffer tmp;
  ConstBytes blocks;
  if (v == 0) {
    if (root == 0) {
      blocks = send;
    } else {
      tmp.resize(static_cast<std::size_t>(n) * bs);
      for (peer_num i = 0; i < n; ++i)
        copy(send.subspan(to_real(i, root, n) * bs, bs), Bytes(tmp).subspan(i * bs, bs));
      blocks = tmp;
    }
  } else {
    tmp.resize(static_cast<std::size_t>(have) * bs);
    ch.recv(to_real(v - sub, root, n), tmp, c.tag, c.deadline);
    blocks = tmp;
  }
  // Children of v are v + m for the powers of two m below v's lowest set bit
  // (for the root: below n), each owning the blocks [v + m, v + 2m).
  for (peer_num mask = sub >> 1; mask > 0; mask >>= 1) {
    if (v + mask < n) {
      const peer_num cnt = std::min(mask, n - v - mask);
      ch.send(to_real(v + mask, root, n), blocks.subspan(mask * bs, cnt * bs), c.tag, c.deadline);
    }
  }
  copy(blocks.subspan(0, bs), recv);
}

void reduce(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const ReduceOp& f,
            const Options& o) {
  const peer_num n = c.size, r = c.rank, root = o.root;
  if (n == 1) {
    copy(send, recv);
    return;
  }
  const ReduceProps props{f.commutative, f.associative, f.granularity};
  if (o.algorithm != Algorithm::automatic)
    check_supported(Utils::Operation::reduce, o.algorithm, props);
  const Algorithm a = prepare(ch, c, Utils::Operation::reduce, o, send.size(), props);
  switch (a) {
    case Algorithm::linear: {  // left-to-right chain, then n-1 -> root
      Buffer scratch;
      Bytes acc = recv;
      if (r != root) {
        scratch.resize(send.size());
        acc = scratch;
      }
      const bool last = reduce_chain(ch, c, send, acc, f);
      if (root != n - 1) {
        if (last) ch.send(root, acc, c.tag, c.deadline);
        if (r == root) ch.recv(n - 1, recv, c.tag, c.deadline);
      }
      return;
    }
    case Algorithm::pipeline: {
      const std::size_t seg = segment_bytes(o);
      if (f.commutative && f.associative) {
        // Chain on positions p = (v - 1) mod n, real rank (root + 1 + p) mod n: it
        // ends at the root, which keeps the result; the others hold two segments.
        const peer_num p = (to_virtual(r, root, n) + n - 1) % n;
        auto real = [&](peer_num q) { return (root + 1 + q) % n; };
        fold_chain(ch, c, p > 0 ? real(p - 1) : kNone, p + 1 < n ? real(p + 1) : kNone, send,
                   r == root ? recv : Bytes(), f, seg);
        return;
      }
      // Ordered: the chain 0 -> n-1 in peer order; when the root is not n-1, n-1
      // sends it the folded result afterwards (pipelining that hop would make the
      // root serve two stages of one chain at once).
      Buffer full;
      Bytes result;
      if (r == n - 1) {
        if (root != r) full.resize(send.size());
        result = root == r ? recv : Bytes(full);
      }
      fold_chain(ch, c, r > 0 ? r - 1 : kNone, r + 1 < n ? r + 1 : kNone, send, result, f, seg);
      if (root != n - 1) {
        if (r == n - 1) ch.send(root, result, c.tag, c.deadline);
        if (r == root) ch.recv(n - 1, recv, c.tag, c.deadline);
      }
      return;
    }
    case Algorithm::ring: {  // reduce-scatter, then gather the chunks at root
      const Chunks ck{send.size(), f.granularity, n};
      std::unique_ptr<std::byte[]> spare;  // the root reduces its own chunk into recv
      const Bytes mine = ring_reduce_scatter_mine(
          ch, c, send, r == root ? recv.subspan(ck.begin(r), ck.size(r)) : Bytes(), ck, f, spare);
      if (r != root) {
        ch.send(root, mine, c.tag, c.deadline);
      } else {
        for (peer_num p = 0; p < n; ++p) {
          Bytes dst = recv.subspan(ck.begin(p), ck.size(p));
          if (p == r)
            copy(mine, dst);  // nothing to do unless recv overlaps send
          else
            ch.recv(p, dst, c.tag, c.deadline);
        }
      }
      return;
    }
    case Algorithm::binomial:
      if (f.commutative && f.associative) {
        reduce_binomial(ch, c, send, recv, root, f);  // only the root's `out` is written
        return;
      }
      [[fallthrough]];
    default: {  // associative, not commutative: ordered tree to 0, then 0 -> root
      std::optional<Scratch> at0;
      if (r == 0 && root != 0) at0.emplace(send.size());
      const Bytes out = at0 ? Bytes(*at0) : recv;
      reduce_binomial(ch, c, send, out, 0, f);
      if (root != 0) {
        if (r == 0) ch.send(root, out, c.tag, c.deadline);
        if (r == root) ch.recv(0, recv, c.tag, c.deadline);
      }
      return;
    }
  }
}

void allreduce(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const ReduceOp& f,
               const Options& o) {
  const peer_num n = c.size;
  if (n == 1) {
    copy(send, recv);
    return;
  }
  const ReduceProps props{f.commutative, f.associative, f.granularity};
  const Algorithm a = prepare(ch, c, Utils::Operation::allreduce, o, send.size(), props);
  if (a == Algorithm::ring) {
    // Reduce-scatter then allgather: each peer sends and receives about
    // 2 (n-1)/n of the buffer, independent of n (bandwidth-optimal). The input is
    // read where it is: no copy into recv first (a 64 MiB memcpy saved).
    const Chunks ck{send.size(), f.granularity, n};
    ring_reduce_scatter(ch, c, send, recv, ck, f);
    ring_allgather(ch, c, recv, ck);
    return;
  }
  switch (a) {
    case Algorithm::linear: {  // not associative: left-to-right chain, then bcast
      Buffer acc(send.size());
      if (reduce_chain(ch, c, send, acc, f)) copy(acc, recv);
      bcast_binomial(ch, c, recv, n - 1);
      return;
    }
    case Algorithm::binomial:  // associative: reduce to 0 in peer order, then bcast from 0
      reduce_binomial(ch, c, send, recv, 0, f);  // writes recv on 0 only
      bcast_binomial(ch, c, recv, 0);
      return;
    case Algorithm::chain: {  // any function, 2 partners: the chain, then back along it
      Buffer acc(send.size());
      if (reduce_chain(ch, c, send, acc, f)) copy(acc, recv);
      bcast_pipeline(ch, c, recv, n - 1, segment_bytes(o));
      return;
    }
    default:
      copy(send, recv);  // recursive doubling works in place on recv
      allreduce_recursive_doubling(ch, c, recv, f);
  }
}

// Inclusive scan. Not associative: the chain, which is exactly left to right.
// Large messages: the same chain pipelined in segments (fold_chain).
// Associative: Hillis-Steele recursive doubling, ceil(log2 n) rounds; in round k
// peer r sends its partial prefix (covering [r - 2^k + 1, r]) to r + 2^k and
// prepends the one it receives from r - 2^k, keeping operands in peer order.
void scan(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const ReduceOp& f,
          const Options& o) {
  const peer_num n = c.size, r = c.rank;
  const ReduceProps props{f.commutative, f.associative, f.granularity};
  if (o.algorithm != Algorithm::automatic)
    check_supported(Utils::Operation::scan, o.algorithm, props);
  if (n == 1) {
    copy(send, recv);
    return;
  }
  const Algorithm a = prepare(ch, c, Utils::Operation::scan, o, send.size(), props);
  if (a == Algorithm::linear) {
    if (r == 0) {
      copy(send, recv);
    } else {
      ch.recv(r - 1, recv, c.tag, c.deadline);
      f(recv, send, recv);
    }
    if (r + 1 < n) ch.send(r + 1, recv, c.tag, c.deadline);
    return;
  }
  if (a == Algorithm::pipeline) {  // the linear chain, in segments: still left to right
    fold_chain(ch, c, r > 0 ? r - 1 : kNone, r + 1 < n ? r + 1 : kNone, send, recv, f,
               segment_bytes(o));
    return;
  }
  copy(send, recv);
  Scratch tmp(send.size());
  for (peer_num d = 1; d < n; d <<= 1) {
    const bool to = r + d < n, from = r >= d;
    if (to && from)
      ch.sendrecv(r + d, recv, r - d, tmp, c.tag, c.deadline);
    else if (to)
      ch.send(r + d, recv, c.tag, c.deadline);
    else if (from)
      ch.recv(r - d, tmp, c.tag, c.deadline);
    if (from) f(tmp, recv, recv);
  }
}

void allgather(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const Options& o) {
  const peer_num n = c.size;
  const std::size_t bs = send.size();
  const Algorithm a = prepare(ch, c, Utils::Operation::allgather, o, bs);
  if (a == Algorithm::bruck && n > 1) {
    const std::vector<std::size_t> counts(n, bs);
    return allgatherv_bruck(ch, c, send, recv, counts);
  }
  if (a == Algorithm::binomial) {  // small blocks: gather to 0, then broadcast
    Options go;
    go.root = 0;
    gather(ch, c, send, recv, go);
    bcast_binomial(ch, c, recv, 0);
    return;
  }
  copy(send, recv.subspan(c.rank * bs, bs));
  ring_allgather(ch, c, recv, Chunks{recv.size(), std::max<std::size_t>(bs, 1), n});
}

// Pairwise exchange: in round s every peer sends to r + s and receives from r - s,
// so each round is a permutation and no peer is a hot spot. It talks to every
// peer; beyond the budget Bruck or the ring route the blocks (scale.cpp).
void alltoall(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const Options& o) {
  const peer_num n = c.size, r = c.rank;
  const std::size_t bs = send.size() / n;
  const Algorithm a = n > 1 ? prepare(ch, c, Utils::Operation::alltoall, o, bs) : o.algorithm;
  if (n > 1 && (a == Algorithm::bruck || a == Algorithm::ring))
    return alltoall_routed(ch, c, a, send, recv);
  copy(send.subspan(r * bs, bs), recv.subspan(r * bs, bs));
  for (peer_num s = 1; s < n; ++s) {
    const peer_num dest = (r + s) % n, src = (r + n - s) % n;
    ch.sendrecv(dest, send.subspan(dest * bs, bs), src, recv.subspan(src * bs, bs), c.tag,
                c.deadline);
  }
}

void reduce_scatter(Ch& ch, const Context& c, ConstBytes send, Bytes recv, const ReduceOp& f,
                    const Options& o) {
  const peer_num n = c.size;
  const std::size_t bs = recv.size();
  if (n == 1) {
    copy(send, recv);
    return;
  }
  const ReduceProps props{f.commutative, f.associative, f.granularity};
  const Algorithm a = prepare(ch, c, Utils::Operation::reduce_scatter, o, bs, props);
  if (a == Algorithm::ring) {
    // Every chunk is one block: recv takes turns with one spare block.
    std::unique_ptr<std::byte[]> spare;
    copy(ring_reduce_scatter_mine(ch, c, send, recv,
                                  Chunks{send.size(), std::max<std::size_t>(bs, 1), n}, f, spare),
         recv);
    return;
  }
  // Order-sensitive or whole-buffer functions: reduce everything to 0 with the
  // order-respecting algorithm, then scatter the blocks.
  // Their algorithms are chosen together (reduce_scatter_parts), so that the union
  // of their partners fits the budget.
  const auto [ra, sa] = reduce_scatter_parts(bs, n, props, ch.max_connections());
  Buffer full(send.size());
  Options ro;
  ro.root = 0;
  ro.algorithm = ra;
  reduce(ch, c, send, full, f, ro);
  Options so;
  so.root = 0;
  so.algorithm = sa;
  scatter(ch, c, full, recv, so);
}

}  // namespace FMI::coll::p2p
