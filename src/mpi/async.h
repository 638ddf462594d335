// The places of the MPI layer that need FMI's non-blocking and any-source API
// (issue 18: FMI::Request, isend/irecv/i-collectives; issue 19: FMI::Status,
// FMI::any_source, Communicator::probe/iprobe), in async.cpp.
#pragma once

#include <deque>
#include <functional>
#include <vector>

#include "mpi/state.h"

namespace FMI::Mpi {

/// The rank whose FMI stream a blocking receive or probe for `src` reads next.
/// src may be MPI_ANY_SOURCE. With two processes only the other can send (no
/// probe).
int next_source(CommObj& c, int src, const char* fn);
/// Without waiting: moves one message that has arrived from `src` (or any source)
/// into c's unexpected queue and returns true, or returns false when none has.
/// A channel without probe support: MPI_ERR_UNSUPPORTED_OPERATION naming `fn` (only
/// messages already queued can be seen without waiting).
bool poll(CommObj& c, int src, const char* fn);
/// Whether a message matching (src, tag) is available without waiting, pulling
/// arrived messages into the queue. A channel that cannot probe: false (only the queue
/// is known).
bool poll_quietly(CommObj& c, int src, int tag);
/// Whether MPI_Test may complete a receive by waiting for it: only on a communicator
/// whose channel cannot probe (c.no_probe; a Test loop then waits in its first Test
/// instead of spinning).
bool test_may_wait(const CommObj& c);
/// MPI_Isend: its FMI messages (header, then payload) go through
/// Communicator::start_nonblocking, in order, and the MPI request completes with them;
/// to oneself it is queued at once.
MPI_Request start_isend(const void* buf, int count, MPI_Datatype t, int dest, int tag, MPI_Comm c);

using Buf = std::vector<std::byte>;
/// Buffers an operation needs until it completes (in-place copies, scratch); a
/// deque keeps references to its elements valid while it grows.
using Keep = std::deque<Buf>;
/// An MPI_I... collective: `call` makes exactly one FMI collective call on c's FMI
/// communicator, putting what the transfer reads or writes besides the user's
/// buffers in its Keep. It runs through Communicator::start_nonblocking (issue 18), the
/// Keep held by the FMI request; the MPI request (kind fmi) completes with it.
MPI_Request start_icoll(MPI_Comm c, const std::function<void(Keep&)>& call);
/// Waits for every FMI request still pending and drops it, errors ignored (MPI_Finalize,
/// before the communicators they run on go).
void drop_fmi_requests();
/// Waits for the FMI request behind MPI request r (kind fmi) and forgets it.
void wait_fmi(MPI_Request r);
/// Whether the FMI request behind r is complete (throws its error then); never waits.
bool test_fmi(MPI_Request r);

/// Reads the next MPI message of src's FMI stream whole into the unexpected queue (p2p.cpp).
void pull_one(CommObj& c, int src);
/// The 256-byte FMI message that starts an MPI message (p2p.cpp), and whether the
/// payload of `bytes` follows in a message of its own.
Buf frame_header(int tag, Comm::ConstBytes data);
bool frame_has_payload(std::size_t bytes);
/// MPI_Send's checks; the message's size in bytes (p2p.cpp).
std::size_t check_send(const CommObj& c, int count, MPI_Datatype t, int dest, int tag);
/// MPI_Send: checks the arguments and sends (p2p.cpp).
void send_checked(const void* buf, int count, MPI_Datatype t, int dest, int tag, MPI_Comm c);
/// A request that is already complete (p2p.cpp).
MPI_Request done_request(MPI_Comm c);

}  // namespace FMI::Mpi
