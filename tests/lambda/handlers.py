"""Handlers of the fmirun --lambda tests (run by the emulator, see emulator.py)."""

import os
import time

import numpy as np

import fmi


@fmi.lambda_handler
def echo(comm, event, context):
    """What the function saw: the event (less its configuration, summarised) and
    whether the secret reached it through its environment."""
    comm.barrier()
    time.sleep(event.get("sleep", 0))
    cfg = event.get("fmi_config", {})
    return {"peer_id": comm.peer_id, "num_peers": comm.num_peers, "comm_name": comm.comm_name,
            "event_keys": sorted(event), "payload": {k: v for k, v in event.items()
                                                     if k not in ("peer_id", "num_peers", "comm_name", "fmi_config")},
            "direct": cfg.get("backends", {}).get("Direct", {}),
            "secret_in_env": bool(os.environ.get("FMI_SECRET")),
            # made JSON by the decorator
            "numpy": {"array": np.arange(3), "scalar": np.float32(0.5), "tuple": (np.int64(7),)}}


@fmi.lambda_handler
def fail_one(comm, event, context):
    """Peer event["fail_peer"] raises before the allreduce the others wait in."""
    if comm.peer_id == event["fail_peer"]:
        raise ValueError(f"peer {comm.peer_id} fails on purpose")
    return comm.allreduce(comm.peer_id, fmi.func(fmi.op.sum), fmi.types(fmi.datatypes.int))


@fmi.lambda_handler
def ready(comm, event, context):
    """For bench/lambda.sh: when this peer's Communicator was ready (built and through
    a first barrier, i.e. every peer joined) and when it finished, in wall-clock
    seconds (the emulator runs on this machine: one clock)."""
    comm.barrier()
    ready_at = time.time()
    comm.allreduce(1, fmi.func(fmi.op.sum), fmi.types(fmi.datatypes.int))
    return {"peer_id": comm.peer_id, "ready_at": ready_at, "done_at": time.time()}
