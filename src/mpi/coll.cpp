// MPI collectives over FMI's (byte-level) collectives. MPI's extras are done here:
// MPI_IN_PLACE (a copy of the in-place block is sent), displacements of the v-forms
// (packed and unpacked around FMI's packed layout), the counts non-roots do not pass
// in MPI_Gatherv / MPI_Scatterv (FMI's trees need them everywhere: one small
// allgather / bcast), and MPI_Exscan (no FMI form: an allgather and a left-to-right
// reduction). The MPI_I... forms go through start_icoll (src/mpi/async.h): the
// blocking call and a completed request until FMI's non-blocking collectives are
// merged, one of FMI's requests after (docs/mpi.md).
#include <cstring>
#include <numeric>

#include "mpi/async.h"
#include "mpi/state.h"

namespace FMI::Mpi {
namespace {

Comm::ConstBytes in(const void* p, std::size_t n) { return {static_cast<const std::byte*>(p), n}; }
Comm::Bytes out(void* p, std::size_t n) { return {static_cast<std::byte*>(p), n}; }
Buf copy_of(const void* p, std::size_t n) {
  const auto* b = static_cast<const std::byte*>(p);
  return Buf(b, b + n);
}

void check_root(const CommObj& c, int root) {
  if (root < 0 || root >= c.size)
    FMI_MPI_FAIL(MPI_ERR_ROOT, "root ", root, " is not a rank of the communicator of ", c.size);
}

std::vector<std::size_t> counts_bytes(const CommObj& c, const int counts[], MPI_Datatype t,
                                      const char* name) {
  const std::size_t es = type(t).size;
  std::vector<std::size_t> v(c.size);
  for (int p = 0; p < c.size; ++p) {
    if (counts[p] < 0) FMI_MPI_FAIL(MPI_ERR_COUNT, name, "[", p, "] = ", counts[p], " is negative");
    v[p] = static_cast<std::size_t>(counts[p]) * es;
  }
  return v;
}

// Byte offsets of the blocks: displs x extent (contiguous types: extent = size).
std::vector<std::size_t> offsets(const CommObj& c, const int displs[], MPI_Datatype t) {
  const std::size_t es = type(t).size;
  std::vector<std::size_t> v(c.size);
  for (int p = 0; p < c.size; ++p) {
    if (displs[p] < 0) FMI_MPI_FAIL(MPI_ERR_ARG, "displacement ", displs[p], " is negative");
    v[p] = static_cast<std::size_t>(displs[p]) * es;
  }
  return v;
}

bool packed(const std::vector<std::size_t>& counts, const std::vector<std::size_t>& offs) {
  std::size_t at = 0;
  for (std::size_t p = 0; p < counts.size(); ++p) {
    if (counts[p] && offs[p] != at) return false;
    at += counts[p];
  }
  return true;
}

std::size_t total(const std::vector<std::size_t>& v) {
  return std::accumulate(v.begin(), v.end(), std::size_t{0});
}

void unpack(const Buf& from, void* to, const std::vector<std::size_t>& counts,
            const std::vector<std::size_t>& offs) {
  std::size_t at = 0;
  for (std::size_t p = 0; p < counts.size(); ++p) {
    if (counts[p]) std::memcpy(static_cast<std::byte*>(to) + offs[p], from.data() + at, counts[p]);
    at += counts[p];
  }
}

Buf pack(const void* from, const std::vector<std::size_t>& counts,
         const std::vector<std::size_t>& offs) {
  Buf b(total(counts));
  std::size_t at = 0;
  for (std::size_t p = 0; p < counts.size(); ++p) {
    if (counts[p])
      std::memcpy(b.data() + at, static_cast<const std::byte*>(from) + offs[p], counts[p]);
    at += counts[p];
  }
  return b;
}

// The send side of a gather-like call: sendbuf (scount x stype), or with MPI_IN_PLACE
// a copy, kept in k, of the `block` bytes at `offset` of recvbuf (where MPI has this
// rank's contribution already).
Comm::ConstBytes send_side(const void* sendbuf, int scount, MPI_Datatype stype, const void* recvbuf,
                           std::size_t offset, std::size_t block, Keep& k) {
  if (sendbuf != MPI_IN_PLACE) return in(sendbuf, bytes(scount, stype));
  return k.emplace_back(copy_of(static_cast<const std::byte*>(recvbuf) + offset, block));
}

// ---- the collectives (blocking) ----------------------------------------------------

void bcast(void* buf, int count, MPI_Datatype t, int root, MPI_Comm h) {
  CommObj& c = comm(h);
  const std::size_t n = bytes(count, t);
  check_root(c, root);
  c.fmi->bcast_bytes(out(buf, n), static_cast<unsigned>(root));
}

void reduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype t, MPI_Op o, int root,
            MPI_Comm h, Keep& k) {
  CommObj& c = comm(h);
  const std::size_t n = bytes(count, t);
  check_root(c, root);
  const Utils::ReduceOp f = reduce_op(o, t);
  const bool at_root = c.rank == root;
  Buf& send = k.emplace_back();
  Buf& scratch = k.emplace_back();
  if (sendbuf == MPI_IN_PLACE) {
    if (!at_root) FMI_MPI_FAIL(MPI_ERR_BUFFER, "MPI_IN_PLACE is the send buffer of the root only");
    send = copy_of(recvbuf, n);
    sendbuf = send.data();
  }
  if (!at_root) scratch.resize(n);  // not significant in MPI, written by FMI's tree
  c.fmi->reduce_bytes(in(sendbuf, n), at_root ? out(recvbuf, n) : Comm::Bytes(scratch),
                      static_cast<unsigned>(root), f);
}

// Allreduce and scan take the same buffers; `fn` is the FMI collective.
using ReduceAll = void (Communicator::*)(Comm::ConstBytes, Comm::Bytes, const Utils::ReduceOp&);
void reduce_all(ReduceAll fn, const void* sendbuf, void* recvbuf, int count, MPI_Datatype t,
                MPI_Op o, MPI_Comm h, Keep& k) {
  CommObj& c = comm(h);
  const std::size_t n = bytes(count, t);
  const Utils::ReduceOp f = reduce_op(o, t);
  Buf& send = k.emplace_back();
  if (sendbuf == MPI_IN_PLACE) {
    send = copy_of(recvbuf, n);
    sendbuf = send.data();
  }
  ((*c.fmi).*fn)(in(sendbuf, n), out(recvbuf, n), f);
}

void allreduce(const void* sendbuf, void* recvbuf, int count, MPI_Datatype t, MPI_Op o, MPI_Comm h,
               Keep& k) {
  reduce_all(&Communicator::allreduce_bytes, sendbuf, recvbuf, count, t, o, h, k);
}

void scan(const void* sendbuf, void* recvbuf, int count, MPI_Datatype t, MPI_Op o, MPI_Comm h,
          Keep& k) {
  reduce_all(&Communicator::scan_bytes, sendbuf, recvbuf, count, t, o, h, k);
}

void exscan(const void* sendbuf, void* recvbuf, int count, MPI_Datatype t, MPI_Op o, MPI_Comm h) {
  CommObj& c = comm(h);
  const std::size_t n = bytes(count, t);
  reduce_op(o, t);  // checks (op, type) on every rank alike
  Buf all(n * c.size);
  c.fmi->allgather_bytes(in(sendbuf == MPI_IN_PLACE ? recvbuf : sendbuf, n), Comm::Bytes(all));
  if (c.rank == 0) return;  // recvbuf of rank 0 is undefined in MPI: left as it is
  // acc = x0 op x1 op ... op x(rank-1), left to right (non-commutative operators too).
  Buf acc(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n));
  for (int p = 1; p < c.rank; ++p) {
    Buf next(all.begin() + static_cast<std::ptrdiff_t>(p * n),
             all.begin() + static_cast<std::ptrdiff_t>((p + 1) * n));
    apply_op(o, t, acc.data(), next.data(), static_cast<std::size_t>(count));
    acc.swap(next);
  }
  if (n) std::memcpy(recvbuf, acc.data(), n);
}

void gather(const void* sendbuf, int scount, MPI_Datatype stype, void* recvbuf, int rcount,
            MPI_Datatype rtype, int root, MPI_Comm h, Keep& k) {
  CommObj& c = comm(h);
  check_root(c, root);
  const bool at_root = c.rank == root;
  const std::size_t rn = at_root ? bytes(rcount, rtype) : 0;
  if (sendbuf == MPI_IN_PLACE && !at_root)
    FMI_MPI_FAIL(MPI_ERR_BUFFER, "MPI_IN_PLACE is the send buffer of the root only");
  c.fmi->gather_bytes(send_side(sendbuf, scount, stype, recvbuf, root * rn, rn, k),
                      at_root ? out(recvbuf, rn * c.size) : Comm::Bytes(),
                      static_cast<unsigned>(root));
}

void scatter(const void* sendbuf, int scount, MPI_Datatype stype, void* recvbuf, int rcount,
             MPI_Datatype rtype, int root, MPI_Comm h, Keep& k) {
  CommObj& c = comm(h);
  check_root(c, root);
  const bool at_root = c.rank == root;
  const std::size_t sn = at_root ? bytes(scount, stype) : 0;
  Buf& recv = k.emplace_back();
  std::size_t rn;
  if (recvbuf == MPI_IN_PLACE) {
    if (!at_root)
      FMI_MPI_FAIL(MPI_ERR_BUFFER, "MPI_IN_PLACE is the receive buffer of the root only");
    recv.resize(sn);  // the root's own block stays where it is
    recvbuf = recv.data();
    rn = sn;
  } else {
    rn = bytes(rcount, rtype);
  }
  c.fmi->scatter_bytes(at_root ? in(sendbuf, sn * c.size) : Comm::ConstBytes(), out(recvbuf, rn),
                       static_cast<unsigned>(root));
}

void allgather(const void* sendbuf, int scount, MPI_Datatype stype, void* recvbuf, int rcount,
               MPI_Datatype rtype, MPI_Comm h, Keep& k) {
  CommObj& c = comm(h);
  const std::size_t rn = bytes(rcount, rtype);
  c.fmi->allgather_bytes(send_side(sendbuf, scount, stype, recvbuf, c.rank * rn, rn, k),
                         out(recvbuf, rn * c.size));
}

void alltoall(const void* sendbuf, int scount, MPI_Datatype stype, void* recvbuf, int rcount,
              MPI_Datatype rtype, MPI_Comm h, Keep& k) {
  CommObj& c = comm(h);
  const std::size_t rn = bytes(rcount, rtype);
  Buf& send = k.emplace_back();
  std::size_t sn;
  if (sendbuf == MPI_IN_PLACE) {
    send = copy_of(recvbuf, rn * c.size);
    sendbuf = send.data();
    sn = rn;
  } else {
    sn = bytes(scount, stype);
  }
  c.fmi->alltoall_bytes(in(sendbuf, sn * c.size), out(recvbuf, rn * c.size));
}

void gatherv(const void* sendbuf, int scount, MPI_Datatype stype, void* recvbuf,
             const int rcounts[], const int displs[], MPI_Datatype rtype, int root, MPI_Comm h) {
  CommObj& c = comm(h);
  check_root(c, root);
  const bool at_root = c.rank == root;
  Keep k;
  Comm::ConstBytes send;
  if (sendbuf == MPI_IN_PLACE) {
    if (!at_root) FMI_MPI_FAIL(MPI_ERR_BUFFER, "MPI_IN_PLACE is the send buffer of the root only");
    const std::size_t es = type(rtype).size;
    send = send_side(sendbuf, 0, rtype, recvbuf, static_cast<std::size_t>(displs[root]) * es,
                     static_cast<std::size_t>(rcounts[root]) * es, k);
  } else {
    send = send_side(sendbuf, scount, stype, recvbuf, 0, 0, k);
  }
  const std::uint64_t sn = send.size();
  // Only the root knows every count in MPI; FMI's tree needs them on every peer.
  std::vector<std::uint64_t> all(c.size);
  c.fmi->allgather_bytes(in(&sn, sizeof sn), out(all.data(), all.size() * sizeof sn));
  std::vector<std::size_t> counts(all.begin(), all.end());
  if (!at_root) {
    c.fmi->gatherv_bytes(send, Comm::Bytes(), counts, static_cast<unsigned>(root));
    return;
  }
  const auto want = counts_bytes(c, rcounts, rtype, "recvcounts");
  for (int p = 0; p < c.size; ++p)
    if (want[p] != counts[p])
      FMI_MPI_FAIL(MPI_ERR_TRUNCATE, "rank ", p, " sends ", counts[p], " bytes, recvcounts[", p,
                   "] on the root says ", want[p]);
  const auto offs = offsets(c, displs, rtype);
  if (packed(counts, offs)) {
    c.fmi->gatherv_bytes(send, out(recvbuf, total(counts)), counts, static_cast<unsigned>(root));
  } else {
    Buf tmp(total(counts));
    c.fmi->gatherv_bytes(send, Comm::Bytes(tmp), counts, static_cast<unsigned>(root));
    unpack(tmp, recvbuf, counts, offs);
  }
}

void scatterv(const void* sendbuf, const int scounts[], const int displs[], MPI_Datatype stype,
              void* recvbuf, int rcount, MPI_Datatype rtype, int root, MPI_Comm h) {
  CommObj& c = comm(h);
  check_root(c, root);
  const bool at_root = c.rank == root;
  std::vector<std::uint64_t> all(c.size);
  Buf packed_send;
  Comm::ConstBytes send;
  std::vector<std::size_t> counts;
  if (at_root) {
    counts = counts_bytes(c, scounts, stype, "sendcounts");
    const auto offs = offsets(c, displs, stype);
    all.assign(counts.begin(), counts.end());
    if (packed(counts, offs)) {
      send = in(sendbuf, total(counts));
    } else {
      packed_send = pack(sendbuf, counts, offs);
      send = packed_send;
    }
  }
  // Only the root passes the counts in MPI; FMI's tree needs them on every peer.
  c.fmi->bcast_bytes(out(all.data(), all.size() * sizeof(std::uint64_t)),
                     static_cast<unsigned>(root));
  counts.assign(all.begin(), all.end());
  Buf own;
  std::size_t rn;
  if (recvbuf == MPI_IN_PLACE) {
    if (!at_root)
      FMI_MPI_FAIL(MPI_ERR_BUFFER, "MPI_IN_PLACE is the receive buffer of the root only");
    rn = counts[root];
    own.resize(rn);
    recvbuf = own.data();
  } else {
    rn = bytes(rcount, rtype);
  }
  if (rn != counts[c.rank])
    FMI_MPI_FAIL(MPI_ERR_TRUNCATE, "the root sends ", counts[c.rank], " bytes to rank ", c.rank,
                 ", whose recvcount says ", rn);
  c.fmi->scatterv_bytes(send, counts, out(recvbuf, rn), static_cast<unsigned>(root));
}

void allgatherv(const void* sendbuf, int scount, MPI_Datatype stype, void* recvbuf,
                const int rcounts[], const int displs[], MPI_Datatype rtype, MPI_Comm h) {
  CommObj& c = comm(h);
  const auto counts = counts_bytes(c, rcounts, rtype, "recvcounts");
  const auto offs = offsets(c, displs, rtype);
  Keep k;
  const Comm::ConstBytes send =
      send_side(sendbuf, scount, stype, recvbuf, offs[c.rank], counts[c.rank], k);
  if (packed(counts, offs)) {
    c.fmi->allgatherv_bytes(send, out(recvbuf, total(counts)), counts);
  } else {
    Buf tmp(total(counts));
    c.fmi->allgatherv_bytes(send, Comm::Bytes(tmp), counts);
    unpack(tmp, recvbuf, counts, offs);
  }
}

void alltoallv(const void* sendbuf, const int scounts[], const int sdispls[], MPI_Datatype stype,
               void* recvbuf, const int rcounts[], const int rdispls[], MPI_Datatype rtype,
               MPI_Comm h) {
  CommObj& c = comm(h);
  const auto rc = counts_bytes(c, rcounts, rtype, "recvcounts");
  const auto ro = offsets(c, rdispls, rtype);
  std::vector<std::size_t> sc;
  Buf send;
  if (sendbuf == MPI_IN_PLACE) {
    sc = rc;
    send = pack(recvbuf, rc, ro);
  } else {
    sc = counts_bytes(c, scounts, stype, "sendcounts");
    send = pack(sendbuf, sc, offsets(c, sdispls, stype));
  }
  if (packed(rc, ro)) {
    c.fmi->alltoallv_bytes(Comm::ConstBytes(send), sc, out(recvbuf, total(rc)), rc);
  } else {
    Buf tmp(total(rc));
    c.fmi->alltoallv_bytes(Comm::ConstBytes(send), sc, Comm::Bytes(tmp), rc);
    unpack(tmp, recvbuf, rc, ro);
  }
}

void reduce_scatter_block(const void* sendbuf, void* recvbuf, int rcount, MPI_Datatype t, MPI_Op o,
                          MPI_Comm h, Keep& k) {
  CommObj& c = comm(h);
  const std::size_t n = bytes(rcount, t);
  const Utils::ReduceOp f = reduce_op(o, t);
  if (sendbuf == MPI_IN_PLACE) {
    const Buf& send = k.emplace_back(copy_of(recvbuf, n * c.size));
    c.fmi->reduce_scatter_bytes(Comm::ConstBytes(send), out(recvbuf, n), f);
  } else {
    c.fmi->reduce_scatter_bytes(in(sendbuf, n * c.size), out(recvbuf, n), f);
  }
}

// Variable blocks: an allreduce of the whole vector, each rank keeping its block.
void reduce_scatter(const void* sendbuf, void* recvbuf, const int rcounts[], MPI_Datatype t,
                    MPI_Op o, MPI_Comm h) {
  CommObj& c = comm(h);
  const auto counts = counts_bytes(c, rcounts, t, "recvcounts");
  const std::size_t n = total(counts);
  std::size_t mine = 0;
  for (int p = 0; p < c.rank; ++p) mine += counts[p];
  const Utils::ReduceOp f = reduce_op(o, t);
  Buf all(n);
  const Buf send = sendbuf == MPI_IN_PLACE ? copy_of(recvbuf, n) : Buf();
  c.fmi->allreduce_bytes(sendbuf == MPI_IN_PLACE ? Comm::ConstBytes(send) : in(sendbuf, n),
                         Comm::Bytes(all), f);
  if (counts[c.rank]) std::memcpy(recvbuf, all.data() + mine, counts[c.rank]);
}

}  // namespace
}  // namespace FMI::Mpi

using namespace FMI::Mpi;

extern "C" {

#define FMI_MPI_CALL(name, comm_arg, ...) return guard(name, comm_arg, [&] { __VA_ARGS__; })

int MPI_Barrier(MPI_Comm c) { FMI_MPI_CALL("MPI_Barrier", c, comm(c).fmi->barrier()); }

int MPI_Bcast(void* buf, int count, MPI_Datatype t, int root, MPI_Comm c) {
  FMI_MPI_CALL("MPI_Bcast", c, bcast(buf, count, t, root, c));
}

int MPI_Reduce(const void* s, void* r, int count, MPI_Datatype t, MPI_Op o, int root, MPI_Comm c) {
  FMI_MPI_CALL("MPI_Reduce", c, Keep k; reduce(s, r, count, t, o, root, c, k));
}

int MPI_Allreduce(const void* s, void* r, int count, MPI_Datatype t, MPI_Op o, MPI_Comm c) {
  FMI_MPI_CALL("MPI_Allreduce", c, Keep k; allreduce(s, r, count, t, o, c, k));
}

int MPI_Gather(const void* s, int sc, MPI_Datatype st, void* r, int rc, MPI_Datatype rt, int root,
               MPI_Comm c) {
  FMI_MPI_CALL("MPI_Gather", c, Keep k; gather(s, sc, st, r, rc, rt, root, c, k));
}

int MPI_Gatherv(const void* s, int sc, MPI_Datatype st, void* r, const int rcs[],
                const int displs[], MPI_Datatype rt, int root, MPI_Comm c) {
  FMI_MPI_CALL("MPI_Gatherv", c, gatherv(s, sc, st, r, rcs, displs, rt, root, c));
}

int MPI_Scatter(const void* s, int sc, MPI_Datatype st, void* r, int rc, MPI_Datatype rt, int root,
                MPI_Comm c) {
  FMI_MPI_CALL("MPI_Scatter", c, Keep k; scatter(s, sc, st, r, rc, rt, root, c, k));
}

int MPI_Scatterv(const void* s, const int scs[], const int displs[], MPI_Datatype st, void* r,
                 int rc, MPI_Datatype rt, int root, MPI_Comm c) {
  FMI_MPI_CALL("MPI_Scatterv", c, scatterv(s, scs, displs, st, r, rc, rt, root, c));
}

int MPI_Allgather(const void* s, int sc, MPI_Datatype st, void* r, int rc, MPI_Datatype rt,
                  MPI_Comm c) {
  FMI_MPI_CALL("MPI_Allgather", c, Keep k; allgather(s, sc, st, r, rc, rt, c, k));
}

int MPI_Allgatherv(const void* s, int sc, MPI_Datatype st, void* r, const int rcs[],
                   const int displs[], MPI_Datatype rt, MPI_Comm c) {
  FMI_MPI_CALL("MPI_Allgatherv", c, allgatherv(s, sc, st, r, rcs, displs, rt, c));
}

int MPI_Alltoall(const void* s, int sc, MPI_Datatype st, void* r, int rc, MPI_Datatype rt,
                 MPI_Comm c) {
  FMI_MPI_CALL("MPI_Alltoall", c, Keep k; alltoall(s, sc, st, r, rc, rt, c, k));
}

int MPI_Alltoallv(const void* s, const int scs[], const int sds[], MPI_Datatype st, void* r,
                  const int rcs[], const int rds[], MPI_Datatype rt, MPI_Comm c) {
  FMI_MPI_CALL("MPI_Alltoallv", c, alltoallv(s, scs, sds, st, r, rcs, rds, rt, c));
}

int MPI_Reduce_scatter_block(const void* s, void* r, int rc, MPI_Datatype t, MPI_Op o, MPI_Comm c) {
  FMI_MPI_CALL("MPI_Reduce_scatter_block", c, Keep k; reduce_scatter_block(s, r, rc, t, o, c, k));
}

int MPI_Reduce_scatter(const void* s, void* r, const int rcs[], MPI_Datatype t, MPI_Op o,
                       MPI_Comm c) {
  FMI_MPI_CALL("MPI_Reduce_scatter", c, reduce_scatter(s, r, rcs, t, o, c));
}

int MPI_Scan(const void* s, void* r, int count, MPI_Datatype t, MPI_Op o, MPI_Comm c) {
  FMI_MPI_CALL("MPI_Scan", c, Keep k; scan(s, r, count, t, o, c, k));
}

int MPI_Exscan(const void* s, void* r, int count, MPI_Datatype t, MPI_Op o, MPI_Comm c) {
  FMI_MPI_CALL("MPI_Exscan", c, exscan(s, r, count, t, o, c));
}

// ---- non-blocking forms (src/mpi/async.h, start_icoll) -------------------------------
// Each makes exactly one FMI collective call, after its checks and in-place copies
// (kept in `k` until the request completes).

#define FMI_MPI_ICALL(name, comm_arg, req, ...)                              \
  FMI_MPI_CALL(name, comm_arg, *(req) = start_icoll(comm_arg, [&](Keep& k) { \
                 (void)k;                                                    \
                 __VA_ARGS__;                                                \
               }))

int MPI_Ibarrier(MPI_Comm c, MPI_Request* rq) {
  FMI_MPI_ICALL("MPI_Ibarrier", c, rq, comm(c).fmi->barrier());
}

int MPI_Ibcast(void* buf, int count, MPI_Datatype t, int root, MPI_Comm c, MPI_Request* rq) {
  FMI_MPI_ICALL("MPI_Ibcast", c, rq, bcast(buf, count, t, root, c));
}

int MPI_Ireduce(const void* s, void* r, int count, MPI_Datatype t, MPI_Op o, int root, MPI_Comm c,
                MPI_Request* rq) {
  FMI_MPI_ICALL("MPI_Ireduce", c, rq, reduce(s, r, count, t, o, root, c, k));
}

int MPI_Iallreduce(const void* s, void* r, int count, MPI_Datatype t, MPI_Op o, MPI_Comm c,
                   MPI_Request* rq) {
  FMI_MPI_ICALL("MPI_Iallreduce", c, rq, allreduce(s, r, count, t, o, c, k));
}

int MPI_Igather(const void* s, int sc, MPI_Datatype st, void* r, int rc, MPI_Datatype rt, int root,
                MPI_Comm c, MPI_Request* rq) {
  FMI_MPI_ICALL("MPI_Igather", c, rq, gather(s, sc, st, r, rc, rt, root, c, k));
}

int MPI_Iscatter(const void* s, int sc, MPI_Datatype st, void* r, int rc, MPI_Datatype rt, int root,
                 MPI_Comm c, MPI_Request* rq) {
  FMI_MPI_ICALL("MPI_Iscatter", c, rq, scatter(s, sc, st, r, rc, rt, root, c, k));
}

int MPI_Iallgather(const void* s, int sc, MPI_Datatype st, void* r, int rc, MPI_Datatype rt,
                   MPI_Comm c, MPI_Request* rq) {
  FMI_MPI_ICALL("MPI_Iallgather", c, rq, allgather(s, sc, st, r, rc, rt, c, k));
}

int MPI_Ialltoall(const void* s, int sc, MPI_Datatype st, void* r, int rc, MPI_Datatype rt,
                  MPI_Comm c, MPI_Request* rq) {
  FMI_MPI_ICALL("MPI_Ialltoall", c, rq, alltoall(s, sc, st, r, rc, rt, c, k));
}

int MPI_Iscan(const void* s, void* r, int count, MPI_Datatype t, MPI_Op o, MPI_Comm c,
              MPI_Request* rq) {
  FMI_MPI_ICALL("MPI_Iscan", c, rq, scan(s, r, count, t, o, c, k));
}

int MPI_Ireduce_scatter_block(const void* s, void* r, int rc, MPI_Datatype t, MPI_Op o, MPI_Comm c,
                              MPI_Request* rq) {
  FMI_MPI_ICALL("MPI_Ireduce_scatter_block", c, rq, reduce_scatter_block(s, r, rc, t, o, c, k));
}

}  // extern "C"
