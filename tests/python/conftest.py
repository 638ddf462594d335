"""Test harness of the Python suite: a communicator of n peers as n Python threads
over an fmi.InProcessHub (no servers), in the manner of the C++ core suite.

Run as documented in docs/python.md:
    PYTHONPATH=<dir of fmi*.so> /usr/bin/python3 -m pytest tests/python
(ctest sets PYTHONPATH to the module built by the main build.)
"""

import os
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import fmi  # noqa: E402
except ImportError as e:  # pragma: no cover - environment problem, reported clearly
    raise ImportError(
        f"cannot import the fmi module ({e}); build it (cmake --build <build> --target fmi_python) "
        "and put its directory on PYTHONPATH"
    ) from e

PEER_COUNTS = [1, 2, 3, 5]
KINDS = ["p2p", "store"]


class PeerFailure(AssertionError):
    pass


def run_peers_raw(n, body, kind="p2p", max_timeout=10.0, comm_name="pytest"):
    """Runs body(comm) on n peers (threads); returns (results, errors) per peer."""
    hub = fmi.InProcessHub(n, max_timeout)
    results = [None] * n
    errors = [None] * n

    def peer(i):
        try:
            with fmi.Communicator(i, n, None, comm_name) as comm:
                comm.register_channel("inproc", hub.p2p_endpoint() if kind == "p2p" else hub.store_endpoint())
                results[i] = body(comm)
        except BaseException as e:  # noqa: BLE001 - reported with the peer id below
            errors[i] = e

    threads = [threading.Thread(target=peer, args=(i,), name=f"peer-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors, hub


def run_peers(n, body, kind="p2p", max_timeout=10.0, check_store_empty=True):
    """Runs body on n peers; any peer's exception fails the test naming the peer."""
    results, errors, hub = run_peers_raw(n, body, kind, max_timeout)
    failed = [(i, e) for i, e in enumerate(errors) if e is not None]
    if failed:
        # Re-raise the first real failure (not a timeout caused by it) with context.
        failed.sort(key=lambda ie: isinstance(ie[1], fmi.TimeoutError))
        i, e = failed[0]
        others = "; ".join(f"peer {j}: {type(x).__name__}: {x}" for j, x in failed[1:])
        raise PeerFailure(f"peer {i} of {n} ({kind}) raised {type(e).__name__}: {e}"
                          + (f" [also {others}]" if others else "")) from e
    if kind == "store" and check_store_empty:
        assert hub.objects_in_store() == 0, "objects left in the in-process store"
    return results


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture(params=PEER_COUNTS, ids=lambda n: f"n{n}")
def npeers(request):
    return request.param
