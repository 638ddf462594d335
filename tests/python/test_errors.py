"""Errors arrive as Python exceptions: fmi.Error subclasses with the C++ message, and
TypeError for values of the wrong Python type."""

import json

import numpy as np
import pytest

import fmi
import suite
from conftest import run_peers, run_peers_raw

INT, SUM = suite.INT, suite.SUM


def test_hierarchy():
    for cls in (fmi.TimeoutError, fmi.ConfigError, fmi.UsageError, fmi.PeerError, fmi.ChannelError):
        assert issubclass(cls, fmi.Error)
    assert issubclass(fmi.Error, Exception)
    assert issubclass(fmi.UsageError, ValueError)
    assert issubclass(fmi.TimeoutError, TimeoutError)  # the builtin one
    assert fmi.TimeoutError is not TimeoutError


def test_wrong_python_type():
    def body(comm):
        other = 1 - comm.peer_id
        with pytest.raises(TypeError, match="expected an int"):
            comm.send("abc", other, INT)
        with pytest.raises(TypeError, match="expected an int"):
            comm.allreduce(1.5, SUM, INT)  # no silent truncation
        with pytest.raises(TypeError, match="expected a float"):
            comm.allreduce("1.5", SUM, suite.DOUBLE)
        with pytest.raises(TypeError, match="expected an int"):
            comm.send([1, "x"], other, suite.int_list(2))
        with pytest.raises(TypeError, match="expects a list"):
            comm.send(5, other, suite.int_list(1))
        with pytest.raises(TypeError, match="buffer-protocol"):
            comm.send(object(), other)
        with pytest.raises(TypeError, match="Python object"):
            comm.send(np.array([object()]), other)
        with pytest.raises(TypeError, match="fmi.types"):
            comm.send(1, other, "int")
        with pytest.raises(TypeError, match="fmi.func"):
            comm.allreduce(1, "sum", INT)
        with pytest.raises(OverflowError):
            comm.send(2 ** 40, other, INT)
        with pytest.raises(TypeError, match="callable"):
            fmi.func(fmi.op.custom, 42, True, True)
        # Nothing was sent: the communicator still works.
        assert comm.allreduce(1, SUM, INT) == 2
    run_peers(2, body)


def test_wrong_count():
    def body(comm):
        other = 1 - comm.peer_id
        with pytest.raises(fmi.UsageError, match="expects 4 elements, got a sequence of 3"):
            comm.send([1, 2, 3], other, suite.int_list(4))
        with pytest.raises(ValueError, match="expects 2 elements"):  # UsageError is a ValueError
            comm.allreduce([1.0, 2.0, 3.0], SUM, suite.double_list(2))
        with pytest.raises(fmi.UsageError, match="needs a count"):
            comm.recv(other, suite.int_list())
        with pytest.raises(fmi.UsageError, match="cannot be split"):
            comm.scatter([1, 2, 3] if comm.peer_id == 0 else None, 0, suite.int_list(3))
        with pytest.raises(fmi.UsageError, match="equal blocks"):
            comm.reduce_scatter(np.ones(5), SUM)
        with pytest.raises(fmi.UsageError, match="type .* or a buffer|out="):
            comm.recv(other)
        assert comm.allreduce(1, SUM, INT) == 2
    run_peers(2, body)


def test_size_mismatch_between_peers_is_a_peer_error():
    def body(comm):
        if comm.peer_id == 0:
            comm.send([1, 2, 3, 4], 1, suite.int_list(4))
        else:
            with pytest.raises(fmi.PeerError, match="sent 16 bytes, expected 12"):
                comm.recv(0, suite.int_list(3))
    run_peers(2, body)


@pytest.mark.parametrize("bad", [2, 7, -1])
def test_peer_out_of_range(bad):
    def body(comm):
        with pytest.raises(fmi.UsageError, match=f"{bad} is out of range for 2 peers"):
            comm.send(1, bad, INT)
        with pytest.raises(fmi.UsageError, match="out of range"):
            comm.recv(bad, INT)
        with pytest.raises(fmi.UsageError, match=f"root {bad} is out of range"):
            comm.bcast(1, bad, INT)
        with pytest.raises(fmi.UsageError, match="out of range"):
            comm.reduce(1, bad, SUM, INT)
        with pytest.raises(fmi.UsageError, match="out of range"):
            comm.gather(np.ones(2), bad)
        assert comm.allreduce(1, SUM, INT) == 2
    run_peers(2, body)


def test_send_to_self():
    def body(comm):
        with pytest.raises(fmi.UsageError, match="cannot send to itself"):
            comm.send(1, 0, INT)
    run_peers(1, body)


def test_constructor_errors(tmp_path):
    with pytest.raises(fmi.UsageError, match="peer_id 3 is out of range for 3 peers"):
        fmi.Communicator(3, 3, None, "x")
    with pytest.raises(fmi.UsageError, match="out of range"):
        fmi.Communicator(-1, 3, None, "x")
    with pytest.raises(fmi.UsageError, match="num_peers"):
        fmi.Communicator(0, 0, None, "x")
    missing = tmp_path / "missing.json"
    with pytest.raises(fmi.ConfigError, match="missing.json"):
        fmi.Communicator(0, 1, missing, "x")  # os.PathLike accepted
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"backends": {"Redis": {"enabled": True, "port": "not a port"}}}))
    with pytest.raises(fmi.ConfigError):
        fmi.Communicator(0, 1, str(bad), "x")


def test_no_channel():
    with fmi.Communicator(0, 1, None, "none") as comm:
        with pytest.raises(fmi.UsageError, match="no channel"):
            comm.barrier()


def test_from_env_without_launcher(monkeypatch):
    monkeypatch.delenv("FMI_PEER_ID", raising=False)
    with pytest.raises(fmi.ConfigError, match="FMI_PEER_ID"):
        fmi.Communicator.from_env()


def test_timeout(kind):
    # Peer 1 waits for a message peer 0 never sends: the hub's short max_timeout ends it.
    def body(comm):
        if comm.peer_id == 1:
            with pytest.raises(fmi.TimeoutError, match="200 ms") as info:
                comm.recv(0, INT)
            assert isinstance(info.value, TimeoutError)
            assert isinstance(info.value, fmi.Error)
    run_peers(2, body, kind, max_timeout=0.2)


def test_timeout_in_collective():
    # Only peer 0 enters the barrier.
    def body(comm):
        if comm.peer_id == 0:
            comm.barrier()
    _, errors, _ = run_peers_raw(3, body, max_timeout=0.2)
    assert isinstance(errors[0], fmi.TimeoutError), errors
    assert errors[1] is None and errors[2] is None


def test_custom_reduction_calling_its_communicator_is_a_usage_error():
    # Issue 15: the function ran inside the collective, which holds the communicator;
    # calling back into it waited for itself forever. Now a UsageError, raised inside
    # the function and carried out of the reduce.
    def body(comm):
        def calls_back(a, b):
            comm.barrier()
            return a + b

        f = fmi.func(fmi.op.custom, calls_back, True, True)
        if comm.peer_id == 0:
            with pytest.raises(fmi.UsageError, match="inside a custom reduction function"):
                comm.reduce(1, 0, f, INT)
        else:
            comm.reduce(1, 0, f, INT)  # a non-root only sends its operand
    run_peers(2, body, check_store_empty=False)
