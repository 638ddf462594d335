"""Every documented call and type (suite.py) for 1, 2, 3 and 5 peers, peers as threads
over the in-process point-to-point and object-store channels."""

import pytest

import fmi
import suite
from conftest import run_peers


@pytest.mark.parametrize("check", suite.DOCUMENTED, ids=lambda c: c.__name__[len("check_"):])
def test_documented_call(check, npeers, kind):
    run_peers(npeers, check, kind)


def test_everything_in_one_communicator(kind):
    # The same communicator through every call: sequence numbers stay in step.
    run_peers(3, suite.run_all, kind)


def test_module_surface():
    assert isinstance(fmi.__version__, str)
    assert isinstance(fmi.builtin_channels, list)
    t = fmi.types(fmi.datatypes.int_list, 4)
    assert t.datatype == fmi.datatypes.int_list and t.count == 4
    assert fmi.types(fmi.datatypes.double).count is None
    assert "int_list, 4" in repr(t)
    f = fmi.func(fmi.op.custom, max, True, False)
    assert f.op == fmi.op.custom and f.function is max and f.commutative and not f.associative
    assert fmi.func(fmi.op.sum).commutative and fmi.func(fmi.op.sum).associative
    assert {h.name for h in (fmi.hints.fast, fmi.hints.cheap)} == {"fast", "cheap"}


def test_context_manager_finalises():
    hub = fmi.InProcessHub(1, 1.0)
    with fmi.Communicator(0, 1, None, "ctx") as comm:
        comm.register_channel("inproc", hub.p2p_endpoint())
        assert comm.channels == ["inproc"]
        assert comm.peer_id == 0 and comm.num_peers == 1 and comm.comm_name == "ctx"
        assert not comm.finalized
    assert comm.finalized
    with pytest.raises(fmi.UsageError, match="finalised"):
        comm.barrier()
    comm.finalize()  # idempotent


def test_channel_objects():
    hub = fmi.InProcessHub(2, 2.5)
    p2p, store = hub.p2p_endpoint(), hub.store_endpoint()
    assert isinstance(p2p, fmi.PeerToPeerChannel) and isinstance(p2p, fmi.Channel)
    assert isinstance(store, fmi.ObjectStoreChannel)
    assert p2p.kind == "peer_to_peer" and store.kind == "object_store"
    assert p2p.max_timeout.total_seconds() == 2.5


def test_gil_released_while_blocked():
    # Peer 1 waits in recv while peer 0 (this thread) still has Python code to run:
    # if recv held the GIL, peer 0 could not get past the sleep and peer 1 would
    # time out.
    import threading
    import time

    hub = fmi.InProcessHub(2, 20.0)
    got = []
    c0 = fmi.Communicator(0, 2, None, "gil")
    c1 = fmi.Communicator(1, 2, None, "gil")
    c0.register_channel("inproc", hub.p2p_endpoint())
    c1.register_channel("inproc", hub.p2p_endpoint())
    t = threading.Thread(target=lambda: got.append(c1.recv(0, suite.INT)))
    t.start()
    time.sleep(0.2)
    total = sum(range(10000))  # pure Python work while peer 1 is blocked
    c0.send(total, 1, suite.INT)
    t.join()
    assert got == [total]
