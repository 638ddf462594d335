"""FMI, the FaaS Message Interface: MPI-like communication between serverless functions.

Type stubs of the compiled module (python/src). See docs/python.md.
"""

import builtins
import datetime
import enum
import os
from typing import (Any, Callable, List, Literal, Optional, Sequence, Tuple, TypeVar, Union,
                    overload)

__version__: str
#: Channels compiled into this build, e.g. ["Direct", "Redis", "S3"].
builtin_channels: List[str]

#: Source of recv/probe/iprobe that matches the next message of any peer (2**32 - 1,
#: no peer's id); every other call rejects it with UsageError.
any_source: int

# Buffers (numpy.ndarray, bytes, bytearray, memoryview, ...) are typed Any: Python
# before 3.12 cannot spell "supports the buffer protocol".
_B = TypeVar("_B")
_Path = Union[str, "os.PathLike[str]"]

# ---- exceptions -------------------------------------------------------------------

class Error(Exception):
    """Root of every exception FMI raises."""

class TimeoutError(Error, builtins.TimeoutError):
    """A blocking call passed its deadline (the channel's max_timeout)."""

class ConfigError(Error):
    """The configuration is missing or unparsable, or a field is missing or ill-typed."""

class UsageError(Error, ValueError):
    """Invalid arguments (peer out of range, sizes or counts that do not match)."""

class PeerError(Error):
    """A peer went away or sent a message that does not match."""

class ChannelError(Error):
    """A channel's transport failed (server unreachable, error reply, I/O error)."""

# ---- types, operators, hints --------------------------------------------------------

class datatypes(enum.Enum):
    int: datatypes
    double: datatypes
    int_list: datatypes
    double_list: datatypes

class op(enum.Enum):
    sum: op
    prod: op
    max: op
    min: op
    custom: op

class hints(enum.Enum):
    fast: hints
    cheap: hints

class types:
    """How a Python value is laid out: fmi.types(fmi.datatypes.int_list, 4)."""

    def __init__(self, datatype: datatypes, count: Optional[int] = None) -> None: ...
    @property
    def datatype(self) -> datatypes: ...
    @property
    def count(self) -> Optional[int]: ...

class func:
    """A reduction operator.

    fmi.func(fmi.op.sum) / prod / max / min, or
    fmi.func(fmi.op.custom, f, commutative, associative) with f(left, right) -> value,
    where left comes from lower peer ids. Neither commutative nor associative: strictly
    left to right over the peer ids.
    """

    def __init__(
        self,
        op: op,
        function: Optional[Callable[[Any, Any], Any]] = None,
        commutative: bool = False,
        associative: bool = False,
    ) -> None: ...
    @property
    def op(self) -> op: ...
    @property
    def function(self) -> Optional[Callable[[Any, Any], Any]]: ...
    @property
    def commutative(self) -> bool: ...
    @property
    def associative(self) -> bool: ...

# ---- channels --------------------------------------------------------------------------

class Channel:
    @property
    def kind(self) -> str: ...  # "peer_to_peer" or "object_store"
    @property
    def max_timeout(self) -> datetime.timedelta: ...

class PeerToPeerChannel(Channel): ...
class ObjectStoreChannel(Channel): ...

class InProcessHub:
    """Medium of a communicator whose peers are threads of this process."""

    def __init__(
        self, num_peers: int, max_timeout: Union[float, datetime.timedelta] = ...
    ) -> None: ...
    def p2p_endpoint(self) -> PeerToPeerChannel: ...
    def store_endpoint(self) -> ObjectStoreChannel: ...
    def objects_in_store(self) -> int: ...
    def store_requests(self) -> int: ...

# ---- the communicator --------------------------------------------------------------------

class Status:
    """What a receive or probe found: the sending peer and the message's size in bytes
    (of a pickled object: its pickle and out-of-band buffers together)."""

    def __init__(self, source: int, bytes: int) -> None: ...
    @property
    def source(self) -> int: ...
    @property
    def bytes(self) -> int: ...


class Communicator:
    """A group of peers.

    Each operation takes either a `type` (fmi.types: Python values, the original API)
    or buffers (NumPy arrays, bytes, bytearray, memoryview: type=None), in which case
    results are written into `out` when given (returned as is) or into a new NumPy array.
    The GIL is released while the call blocks.
    """

    def __init__(
        self,
        peer_id: int,
        num_peers: int,
        config_path: Optional[_Path],
        comm_name: str,
        faas_memory: int = 128,
    ) -> None: ...
    @staticmethod
    def from_env(comm_name: Optional[str] = None, faas_memory: int = 128) -> Communicator: ...
    def __enter__(self) -> Communicator: ...
    def __exit__(self, *args: Any) -> bool: ...
    def finalize(self) -> None: ...
    @property
    def finalized(self) -> bool: ...
    @property
    def peer_id(self) -> int: ...
    @property
    def num_peers(self) -> int: ...
    @property
    def comm_name(self) -> str: ...
    @property
    def channels(self) -> List[str]: ...
    def hint(self, hint: hints) -> None: ...
    def get_hint(self) -> hints: ...
    def register_channel(self, name: str, channel: Channel) -> None: ...

    # point to point. Without a type, a value that is not a buffer is any picklable
    # object (pickle protocol 5; NumPy arrays inside travel out of band and arrive as
    # views of the received message); recv(src) without type or out returns one.
    # src may be any_source in every recv form: the next message of whichever peer's
    # has arrived (each peer's in the order it sent them); the message must fit the
    # buffer or type exactly (PeerError), probe() tells its size first.
    # status=True returns (value, Status) instead of the value.
    def send(self, obj: Any, dest: int, type: Optional[types] = None) -> None: ...
    @overload
    def recv(self, src: int, type: types, *, status: Literal[False] = False) -> Any: ...
    @overload
    def recv(
        self, src: int, type: None = None, *, out: _B, status: Literal[False] = False
    ) -> _B: ...
    @overload
    def recv(self, src: int, *, status: Literal[False] = False) -> Any: ...
    @overload
    def recv(
        self, src: int, type: Optional[types] = None, *, out: Any = None, status: Literal[True]
    ) -> Tuple[Any, Status]: ...
    # recv(buf, src): mpi4py's Recv order; receives into buf and returns the source.
    @overload
    def recv(self, buf: Any, src: int, *, status: Literal[False] = False) -> int: ...
    @overload
    def recv(self, buf: Any, src: int, *, status: Literal[True]) -> Status: ...
    def probe(self, src: int) -> Status:
        """Waits for the next message from src (or any_source) without receiving it; the
        recv from status.source that follows receives it."""
    def iprobe(self, src: int) -> Optional[Status]:
        """probe that never waits: None when nothing has arrived."""

    # collectives (every peer calls them in the same order)
    def bcast(self, obj: Any, root: int, type: Optional[types] = None, *, out: Any = None) -> Any: ...
    def barrier(self) -> None: ...
    def gather(self, obj: Any, root: int, type: Optional[types] = None, *, out: Any = None) -> Any: ...
    def scatter(self, obj: Any, root: int, type: Optional[types] = None, *, out: Any = None) -> Any: ...
    def reduce(
        self, obj: Any, root: int, func: func, type: Optional[types] = None, *, out: Any = None
    ) -> Any: ...
    def allreduce(self, obj: Any, func: func, type: Optional[types] = None, *, out: Any = None) -> Any: ...
    def scan(self, obj: Any, func: func, type: Optional[types] = None, *, out: Any = None) -> Any: ...
    def allgather(self, obj: Any, type: Optional[types] = None, *, out: Any = None) -> Any: ...
    def alltoall(self, obj: Any, type: Optional[types] = None, *, out: Any = None) -> Any: ...
    def reduce_scatter(
        self, obj: Any, func: func, type: Optional[types] = None, *, out: Any = None
    ) -> Any: ...

    # Objects in collectives (no type, no out, a value that is not a buffer):
    # bcast(obj, root) returns the object everywhere; gather(obj, root) a list on
    # root and None elsewhere; scatter(list_on_root, root), allgather(obj) a list,
    # alltoall(list_of_n) a list; reduce/allreduce/scan fold the objects in peer
    # order with the callable of fmi.func(fmi.op.custom, f) or the built-in op
    # (sum: +, prod: *, max, min).

    # Sub-communicators. split is collective: the peers passing the same color >= 0
    # form a new Communicator ranked by (key, peer_id); a negative color returns
    # None. The child uses this communicator's channels (no new connections), keeps
    # it alive, and raises fmi.UsageError once this one is finalised.
    def split(self, color: int, key: int = 0) -> Optional["Communicator"]: ...
    def dup(self) -> "Communicator": ...

    # Variable-size collectives on buffer-protocol objects (no NumPy needed). Counts
    # are in items of the buffer's itemsize, one per peer; blocks are packed in peer
    # order; a count may be zero. Outputs are filled in place and returned.
    def gatherv(self, send: Any, recv: Optional[_B], recv_counts: Sequence[int], root: int) -> Optional[_B]: ...
    def scatterv(self, send: Optional[Any], send_counts: Sequence[int], recv: _B, root: int) -> _B: ...
    def allgatherv(self, send: Any, recv: _B, recv_counts: Sequence[int]) -> _B: ...
    def alltoallv(
        self, send: Any, send_counts: Sequence[int], recv: _B, recv_counts: Sequence[int]
    ) -> _B: ...

    # Non-blocking forms (docs/nonblocking.md), on buffers only: the same arguments as
    # the buffer forms above; each returns at once a Request whose wait() returns the
    # output (out=, or a new array; None where the blocking form returns None). The
    # buffers belong to the operation until it completes; the Request keeps them alive.
    def isend(self, obj: Any, dest: int) -> "Request": ...
    def irecv(self, out: Any, src: int) -> "Request": ...
    def ibcast(self, obj: Any, root: int, *, out: Any = None) -> "Request": ...
    def ibarrier(self) -> "Request": ...
    def igather(self, obj: Any, root: int, *, out: Any = None) -> "Request": ...
    def iscatter(self, obj: Any, root: int, *, out: Any = None) -> "Request": ...
    def ireduce(self, obj: Any, root: int, func: func, *, out: Any = None) -> "Request": ...
    def iallreduce(self, obj: Any, func: func, *, out: Any = None) -> "Request": ...
    def iscan(self, obj: Any, func: func, *, out: Any = None) -> "Request": ...
    def iallgather(self, obj: Any, *, out: Any = None) -> "Request": ...
    def ialltoall(self, obj: Any, *, out: Any = None) -> "Request": ...
    def ireduce_scatter(self, obj: Any, func: func, *, out: Any = None) -> "Request": ...
    def igatherv(self, send: Any, recv: Optional[Any], recv_counts: Sequence[int], root: int) -> "Request": ...
    def iscatterv(self, send: Optional[Any], send_counts: Sequence[int], recv: Any, root: int) -> "Request": ...
    def iallgatherv(self, send: Any, recv: Any, recv_counts: Sequence[int]) -> "Request": ...
    def ialltoallv(
        self, send: Any, send_counts: Sequence[int], recv: Any, recv_counts: Sequence[int]
    ) -> "Request": ...

class Request:
    """A non-blocking operation in flight; destroying it while it runs waits for it."""

    #: False once completed (by wait, test, wait_for, wait_all or wait_any).
    active: bool
    def wait(self) -> Any:
        """Blocks (GIL released) until complete; returns the output; raises its fmi error."""
    def test(self) -> bool:
        """True once complete (raising its error then); never blocks."""
    def wait_for(self, seconds: float) -> bool:
        """Waits up to `seconds`; False if still running."""

def wait_all(requests: Sequence[Request]) -> None:
    """Completes every request, then raises the first error (in list order)."""

def wait_any(requests: Sequence[Request]) -> int:
    """Index of one request that completed (raising its error); fmi.UsageError if none is active."""

# ---- AWS Lambda (docs/lambda.md) ---------------------------------------------------

_Handler = Callable[[Any, Any], Any]
_PeerFunction = Callable[["Communicator", Any, Any], Any]

# @fmi.lambda_handler turns fn(comm, event, context) into handler(event, context): the
# Communicator from the event of `fmirun --lambda` (peer_id, num_peers, comm_name,
# fmi_config; secrets from the environment), closed afterwards; the result made JSON
# serialisable. Errors propagate (errorType = the class name), or with
# FMI_LAMBDA_ERRORS=return (default under serverless-offline) come back as the
# {"errorType", "errorMessage", "stackTrace"} payload.
@overload
def lambda_handler(fn: _PeerFunction) -> _Handler: ...
@overload
def lambda_handler(
    *, default_config: Optional[Callable[[Any], Union[str, dict]]] = None
) -> Callable[[_PeerFunction], _Handler]: ...
