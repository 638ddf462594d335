// MPI point to point over FMI's send/recv: the framing, the unexpected-message
// queue, probes and requests.
//
// Framing. FMI matches the k-th send from A to B with the k-th recv on B from A, and
// a receive must name the exact size. An MPI message therefore travels as a
// fixed-size 256-byte header {magic, tag, byte count, up to 240 bytes inline},
// followed, when the payload does not fit inline, by one FMI message of exactly the
// payload. Small messages (the latency-bound ones) cost one FMI message; 256 bytes
// cost no more than 64 on TCP or Redis, and cover more of the small sizes.
//
// Matching. A receive for (source, tag) first looks through the communicator's
// unexpected queue (oldest first), then reads headers from the source's FMI stream
// in order; a message with another tag is read whole into the queue. As every
// source's stream is read in order and the queue is searched oldest first, messages
// between a pair with one tag never overtake each other (MPI's rule). A send to
// oneself goes straight into the queue (eagerly, as OpenMPI does for small ones).
//
// What needs the FMI non-blocking / any-source API (issues 18 and 19): finding
// which source has a message (MPI_ANY_SOURCE with more than two processes) and
// looking without waiting (MPI_Iprobe, MPI_Test on nothing queued yet). Those places
// go through next_source() and poll(), in async.h, which say how it works today.
#include <cstring>
#include <vector>

#include "mpi/async.h"
#include "mpi/state.h"

namespace FMI::Mpi {

namespace {

constexpr std::uint32_t magic = 0x31504d46;  // "FMP1"
constexpr std::size_t inline_max = 240;

struct Header {
  std::uint32_t magic;
  std::int32_t tag;
  std::uint64_t bytes;
  std::byte data[inline_max];
};
static_assert(sizeof(Header) == 256);

Comm::Bytes as_bytes(Header& h) { return {reinterpret_cast<std::byte*>(&h), sizeof h}; }

bool matches(int want_src, int want_tag, int src, int tag) {
  return (want_src == MPI_ANY_SOURCE || want_src == src) &&
         (want_tag == MPI_ANY_TAG || want_tag == tag);
}

Header read_header(CommObj& c, int src) {
  Header h;
  c.fmi->recv_bytes(as_bytes(h), static_cast<unsigned>(src));
  if (h.magic != magic)
    FMI_MPI_FAIL(MPI_ERR_INTERN, "message from rank ", src,
                 " is not an MPI message (FMI calls on the same communicator?)");
  return h;
}

}  // namespace

void set_status(MPI_Status* s, const MPI_Status& v) {
  if (s && s != MPI_STATUS_IGNORE) *s = v;
}

namespace {
// Queues the message whose header was just read from src (its payload follows).
void enqueue(CommObj& c, int src, const Header& h) {
  Message m{src, h.tag, std::vector<std::byte>(h.bytes)};
  if (h.bytes <= inline_max)
    std::memcpy(m.data.data(), h.data, h.bytes);
  else
    c.fmi->recv_bytes(m.data, static_cast<unsigned>(src));
  c.unexpected.push_back(std::move(m));
}
}  // namespace

/// Reads the next MPI message of src's stream whole into the unexpected queue.
void pull_one(CommObj& c, int src) { enqueue(c, src, read_header(c, src)); }

void send_message(CommObj& c, int dest, int tag, Comm::ConstBytes data) {
  if (dest == c.rank) {
    c.unexpected.push_back(Message{dest, tag, std::vector<std::byte>(data.begin(), data.end())});
    return;
  }
  Header h{magic, tag, data.size(), {}};
  if (data.size() <= inline_max && !data.empty()) std::memcpy(h.data, data.data(), data.size());
  c.fmi->send_bytes(as_bytes(h), static_cast<unsigned>(dest));
  if (data.size() > inline_max) c.fmi->send_bytes(data, static_cast<unsigned>(dest));
}

Buf frame_header(int tag, Comm::ConstBytes data) {
  Header h{magic, tag, data.size(), {}};
  if (data.size() <= inline_max && !data.empty()) std::memcpy(h.data, data.data(), data.size());
  const auto* p = reinterpret_cast<const std::byte*>(&h);
  return Buf(p, p + sizeof h);
}

bool frame_has_payload(std::size_t bytes) { return bytes > inline_max; }

namespace {

MPI_Status status_of(int src, int tag, std::size_t bytes, std::size_t capacity) {
  MPI_Status s{};
  s.MPI_SOURCE = src;
  s.MPI_TAG = tag;
  s.fmi_bytes = static_cast<long long>(bytes < capacity ? bytes : capacity);
  s.MPI_ERROR = bytes > capacity ? MPI_ERR_TRUNCATE : MPI_SUCCESS;
  return s;
}

// The oldest queued message matching (src, tag), or end().
std::deque<Message>::iterator find_queued(CommObj& c, int src, int tag) {
  for (auto it = c.unexpected.begin(); it != c.unexpected.end(); ++it)
    if (matches(src, tag, it->src, it->tag)) return it;
  return c.unexpected.end();
}

MPI_Status take(CommObj& c, std::deque<Message>::iterator it, Comm::Bytes out) {
  MPI_Status s = status_of(it->src, it->tag, it->data.size(), out.size());
  if (s.fmi_bytes > 0)
    std::memcpy(out.data(), it->data.data(), static_cast<std::size_t>(s.fmi_bytes));
  c.unexpected.erase(it);
  return s;
}

}  // namespace

MPI_Status recv_message(CommObj& c, int src, int tag, Comm::Bytes out, const char* fn) {
  if (src == MPI_PROC_NULL) return status_of(MPI_PROC_NULL, MPI_ANY_TAG, 0, 0);
  auto q = find_queued(c, src, tag);
  if (q != c.unexpected.end()) return take(c, q, out);
  for (;;) {
    const int from = next_source(c, src, fn);
    Header h = read_header(c, from);
    if (!matches(src, tag, from, h.tag)) {
      enqueue(c, from, h);
      continue;
    }
    MPI_Status s = status_of(from, h.tag, h.bytes, out.size());
    if (h.bytes <= inline_max) {
      if (s.fmi_bytes > 0) std::memcpy(out.data(), h.data, static_cast<std::size_t>(s.fmi_bytes));
    } else if (h.bytes <= out.size()) {
      c.fmi->recv_bytes(out.first(h.bytes),
                        static_cast<unsigned>(from));  // straight into the user's buffer
    } else {
      std::vector<std::byte> tmp(h.bytes);
      c.fmi->recv_bytes(tmp, static_cast<unsigned>(from));
      std::memcpy(out.data(), tmp.data(), out.size());
    }
    return s;
  }
}

MPI_Status probe_message(CommObj& c, int src, int tag, bool block, bool* found, const char* fn) {
  *found = true;
  if (src == MPI_PROC_NULL) return status_of(MPI_PROC_NULL, MPI_ANY_TAG, 0, 0);
  for (;;) {
    auto q = find_queued(c, src, tag);
    if (q != c.unexpected.end()) return status_of(q->src, q->tag, q->data.size(), q->data.size());
    if (block) {
      pull_one(c, next_source(c, src, fn));
    } else if (!poll(c, src, fn)) {
      *found = false;
      return MPI_Status{};
    }
  }
}

namespace {

void check_peer(const CommObj& c, int r, const char* what, bool any_ok) {
  if (r == MPI_PROC_NULL || (any_ok && r == MPI_ANY_SOURCE)) return;
  if (r < 0 || r >= c.size)
    FMI_MPI_FAIL(MPI_ERR_RANK, what, " ", r, " is not a rank of the communicator of ", c.size);
}

void check_tag(int tag, bool any_ok) {
  if (any_ok && tag == MPI_ANY_TAG) return;
  if (tag < 0) FMI_MPI_FAIL(MPI_ERR_TAG, "tag ", tag, " is negative");
}

}  // namespace

std::size_t check_send(const CommObj& c, int count, MPI_Datatype t, int dest, int tag) {
  const std::size_t n = bytes(count, t);
  check_peer(c, dest, "destination", false);
  check_tag(tag, false);
  return n;
}

void send_checked(const void* buf, int count, MPI_Datatype t, int dest, int tag, MPI_Comm h) {
  CommObj& c = comm(h);
  const std::size_t n = check_send(c, count, t, dest, tag);
  if (dest == MPI_PROC_NULL) return;
  send_message(c, dest, tag, {static_cast<const std::byte*>(buf), n});
}

namespace {

void do_recv(void* buf, int count, MPI_Datatype t, int src, int tag, MPI_Comm h, MPI_Status* st,
             const char* fn) {
  CommObj& c = comm(h);
  const std::size_t n = bytes(count, t);
  check_peer(c, src, "source", true);
  check_tag(tag, true);
  MPI_Status s = recv_message(c, src, tag, {static_cast<std::byte*>(buf), n}, fn);
  const int err = s.MPI_ERROR;
  s.MPI_ERROR = MPI_SUCCESS;  // MPI sets MPI_ERROR only in the multi-request calls
  set_status(st, s);
  if (err == MPI_ERR_TRUNCATE)
    FMI_MPI_FAIL(MPI_ERR_TRUNCATE, "message of ", s.fmi_bytes, "+ bytes from rank ", s.MPI_SOURCE,
                 " (tag ", s.MPI_TAG, ") is larger than the receive buffer of ", n, " bytes");
}

ReqObj& request(MPI_Request r) {
  auto it = state().reqs.find(r);
  if (r == MPI_REQUEST_NULL || it == state().reqs.end())
    FMI_MPI_FAIL(MPI_ERR_REQUEST, "invalid request ", r);
  return it->second;
}

MPI_Status empty_status() {
  MPI_Status s{};
  s.MPI_SOURCE = MPI_ANY_SOURCE;
  s.MPI_TAG = MPI_ANY_TAG;
  return s;
}

MPI_Request add_request(ReqObj r) {
  State& s = state();
  const int h = s.next_req++;
  s.reqs[h] = r;
  return h;
}

// Completes the request (running a pending receive now) and frees it.
void complete(MPI_Request* r, MPI_Status* st) {
  if (*r == MPI_REQUEST_NULL) {
    set_status(st, empty_status());
    return;
  }
  ReqObj q = request(*r);
  const MPI_Request h = *r;
  state().reqs.erase(*r);
  *r = MPI_REQUEST_NULL;
  if (q.kind == ReqObj::fmi) wait_fmi(h);
  if (q.kind == ReqObj::recv) {
    do_recv(q.buf, q.count, q.type, q.src, q.tag, q.comm, st, "MPI_Wait");
    return;
  }
  set_status(st, q.status);
  if (q.error != MPI_SUCCESS) FMI_MPI_FAIL(q.error, "the request failed");
}

// Whether completing r now would not wait: done, or its message already queued
// (or, with the non-blocking FMI API, arrived).
bool ready(MPI_Request r) {
  if (r == MPI_REQUEST_NULL) return true;
  const ReqObj& q = request(r);
  if (q.kind == ReqObj::fmi) return test_fmi(r);
  if (q.kind != ReqObj::recv) return true;
  bool found = false;
  CommObj& c = comm(q.comm);
  if (q.src == MPI_PROC_NULL) return true;
  if (find_queued(c, q.src, q.tag) != c.unexpected.end()) return true;
  found = poll_quietly(c, q.src, q.tag);
  return found;
}

MPI_Comm comm_of(MPI_Request r) {
  auto it = state().reqs.find(r);
  return it == state().reqs.end() ? MPI_COMM_WORLD : it->second.comm;
}

}  // namespace

/// A request already complete (sends and collectives until the FMI non-blocking API).
MPI_Request done_request(MPI_Comm c) {
  ReqObj q;
  q.comm = c;
  q.status = empty_status();
  return add_request(q);
}

}  // namespace FMI::Mpi

using namespace FMI::Mpi;

extern "C" {

int MPI_Send(const void* buf, int count, MPI_Datatype t, int dest, int tag, MPI_Comm c) {
  return guard("MPI_Send", c, [&] { send_checked(buf, count, t, dest, tag, c); });
}

// A standard send: FMI cannot tell when the receive has started.
int MPI_Ssend(const void* buf, int count, MPI_Datatype t, int dest, int tag, MPI_Comm c) {
  return guard("MPI_Ssend", c, [&] { send_checked(buf, count, t, dest, tag, c); });
}

int MPI_Recv(void* buf, int count, MPI_Datatype t, int src, int tag, MPI_Comm c, MPI_Status* st) {
  return guard("MPI_Recv", c, [&] { do_recv(buf, count, t, src, tag, c, st, "MPI_Recv"); });
}

int MPI_Sendrecv(const void* sendbuf, int sendcount, MPI_Datatype sendtype, int dest, int sendtag,
                 void* recvbuf, int recvcount, MPI_Datatype recvtype, int source, int recvtag,
                 MPI_Comm c, MPI_Status* st) {
  return guard("MPI_Sendrecv", c, [&] {
    // The send as MPI_Isend, the receive, then the send's completion. Until issue 18
    // the send is eager: facing Sendrecvs pass for messages the channel buffers
    // (Direct: the sockets' buffers; Redis: the server); after it, any size.
    MPI_Request r = start_isend(sendbuf, sendcount, sendtype, dest, sendtag, c);
    do_recv(recvbuf, recvcount, recvtype, source, recvtag, c, st, "MPI_Sendrecv");
    complete(&r, MPI_STATUS_IGNORE);
  });
}

int MPI_Probe(int src, int tag, MPI_Comm c, MPI_Status* st) {
  return guard("MPI_Probe", c, [&] {
    CommObj& co = comm(c);
    check_peer(co, src, "source", true);
    check_tag(tag, true);
    bool found;
    set_status(st, probe_message(co, src, tag, true, &found, "MPI_Probe"));
  });
}

int MPI_Iprobe(int src, int tag, MPI_Comm c, int* flag, MPI_Status* st) {
  return guard("MPI_Iprobe", c, [&] {
    CommObj& co = comm(c);
    check_peer(co, src, "source", true);
    check_tag(tag, true);
    bool found;
    MPI_Status s = probe_message(co, src, tag, false, &found, "MPI_Iprobe");
    *flag = found;
    if (found) set_status(st, s);
  });
}

int MPI_Get_count(const MPI_Status* st, MPI_Datatype t, int* count) {
  return guard("MPI_Get_count", MPI_COMM_WORLD, [&] {
    const std::size_t size = type(t).size;
    if (size == 0) {
      *count = st->fmi_bytes == 0 ? 0 : MPI_UNDEFINED;
    } else {
      *count = st->fmi_bytes % static_cast<long long>(size) != 0
                   ? MPI_UNDEFINED
                   : static_cast<int>(st->fmi_bytes / static_cast<long long>(size));
    }
  });
}

int MPI_Isend(const void* buf, int count, MPI_Datatype t, int dest, int tag, MPI_Comm c,
              MPI_Request* r) {
  return guard("MPI_Isend", c, [&] { *r = start_isend(buf, count, t, dest, tag, c); });
}

int MPI_Irecv(void* buf, int count, MPI_Datatype t, int src, int tag, MPI_Comm c, MPI_Request* r) {
  return guard("MPI_Irecv", c, [&] {
    CommObj& co = comm(c);
    bytes(count, t);
    check_peer(co, src, "source", true);
    check_tag(tag, true);
    ReqObj q;
    q.kind = ReqObj::recv;
    q.buf = buf;
    q.count = count;
    q.type = t;
    q.src = src;
    q.tag = tag;
    q.comm = c;
    *r = add_request(q);
  });
}

int MPI_Wait(MPI_Request* r, MPI_Status* st) {
  return guard("MPI_Wait", comm_of(*r), [&] { complete(r, st); });
}

int MPI_Waitall(int count, MPI_Request rs[], MPI_Status* sts) {
  return guard("MPI_Waitall", count > 0 ? comm_of(rs[0]) : MPI_COMM_WORLD, [&] {
    // In order: each send completed when it started, so no receive here waits
    // for a send of this process that comes later in the list.
    for (int i = 0; i < count; ++i)
      complete(&rs[i], sts == MPI_STATUSES_IGNORE ? MPI_STATUS_IGNORE : &sts[i]);
  });
}

int MPI_Waitany(int count, MPI_Request rs[], int* index, MPI_Status* st) {
  return guard("MPI_Waitany", count > 0 ? comm_of(rs[0]) : MPI_COMM_WORLD, [&] {
    int pick = MPI_UNDEFINED;
    for (int i = 0; i < count && pick == MPI_UNDEFINED; ++i)
      if (rs[i] != MPI_REQUEST_NULL && ready(rs[i])) pick = i;
    for (int i = 0; i < count && pick == MPI_UNDEFINED; ++i)
      if (rs[i] != MPI_REQUEST_NULL) pick = i;  // none ready yet: wait for the first active one
    *index = pick;
    if (pick == MPI_UNDEFINED) {
      set_status(st, empty_status());
      return;
    }
    complete(&rs[pick], st);
  });
}

int MPI_Test(MPI_Request* r, int* flag, MPI_Status* st) {
  return guard("MPI_Test", comm_of(*r), [&] {
    *flag = 0;
    if (!ready(*r) && !test_may_wait(comm(comm_of(*r)))) return;
    complete(r, st);
    *flag = 1;
  });
}

int MPI_Testall(int count, MPI_Request rs[], int* flag, MPI_Status* sts) {
  return guard("MPI_Testall", count > 0 ? comm_of(rs[0]) : MPI_COMM_WORLD, [&] {
    *flag = 0;
    for (int i = 0; i < count; ++i)
      if (!ready(rs[i]) && !test_may_wait(comm(comm_of(rs[i])))) return;
    for (int i = 0; i < count; ++i)
      complete(&rs[i], sts == MPI_STATUSES_IGNORE ? MPI_STATUS_IGNORE : &sts[i]);
    *flag = 1;
  });
}

int MPI_Testany(int count, MPI_Request rs[], int* index, int* flag, MPI_Status* st) {
  return guard("MPI_Testany", count > 0 ? comm_of(rs[0]) : MPI_COMM_WORLD, [&] {
    *flag = 0;
    *index = MPI_UNDEFINED;
    int first_active = MPI_UNDEFINED;
    for (int i = 0; i < count; ++i) {
      if (rs[i] == MPI_REQUEST_NULL) continue;
      if (first_active == MPI_UNDEFINED) first_active = i;
      if (ready(rs[i])) {
        *index = i;
        break;
      }
    }
    if (first_active == MPI_UNDEFINED) {  // no active request: MPI says flag true
      *flag = 1;
      set_status(st, empty_status());
      return;
    }
    // As MPI_Test: without a way to see arrivals, complete the first one by waiting.
    if (*index == MPI_UNDEFINED) {
      if (!test_may_wait(comm(comm_of(rs[first_active])))) return;
      *index = first_active;
    }
    complete(&rs[*index], st);
    *flag = 1;
  });
}

namespace {
// MPI_Waitsome / MPI_Testsome: completes every ready request; with `wait` and none
// ready, waits for the first active one (as MPI_Waitany does).
void complete_some(int n, MPI_Request rs[], int* outcount, int indices[], MPI_Status* sts,
                   bool wait) {
  std::vector<int> picked;
  int first_active = MPI_UNDEFINED;
  for (int i = 0; i < n; ++i) {
    if (rs[i] == MPI_REQUEST_NULL) continue;
    if (first_active == MPI_UNDEFINED) first_active = i;
    if (ready(rs[i])) picked.push_back(i);
  }
  if (first_active == MPI_UNDEFINED) {
    *outcount = MPI_UNDEFINED;
    return;
  }
  if (picked.empty() && (wait || test_may_wait(comm(comm_of(rs[first_active])))))
    picked.push_back(first_active);
  *outcount = static_cast<int>(picked.size());
  for (std::size_t k = 0; k < picked.size(); ++k) {
    indices[k] = picked[k];
    complete(&rs[picked[k]], sts == MPI_STATUSES_IGNORE ? MPI_STATUS_IGNORE : &sts[k]);
  }
}
}  // namespace

int MPI_Waitsome(int n, MPI_Request rs[], int* outcount, int indices[], MPI_Status* sts) {
  return guard("MPI_Waitsome", n > 0 ? comm_of(rs[0]) : MPI_COMM_WORLD,
               [&] { complete_some(n, rs, outcount, indices, sts, true); });
}

int MPI_Testsome(int n, MPI_Request rs[], int* outcount, int indices[], MPI_Status* sts) {
  return guard("MPI_Testsome", n > 0 ? comm_of(rs[0]) : MPI_COMM_WORLD,
               [&] { complete_some(n, rs, outcount, indices, sts, false); });
}

int MPI_Request_free(MPI_Request* r) {
  return guard("MPI_Request_free", comm_of(*r), [&] {
    request(*r);
    // A pending receive still takes its message (MPI: the operation completes).
    complete(r, MPI_STATUS_IGNORE);
  });
}

}  // extern "C"
