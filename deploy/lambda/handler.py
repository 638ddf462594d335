"""Example AWS Lambda handler: one FMI peer per invocation, an allreduce over NumPy.

Start a job of n functions with the launcher (docs/lambda.md), which sends each one
the event {"peer_id", "num_peers", "comm_name", "fmi_config"} plus --payload fields:
    fmirun --lambda FUNCTION -n 8 --config fmi.json --payload '{"elements": 1000}'
Optional event field: "elements" (float32 elements per peer, default 1048576).
Without "fmi_config" in the event, FMI_CONFIG (a path) is used when set, else the
event's "config" (a path), else a configuration written from the function's
environment: FMI_RENDEZVOUS_HOST / FMI_RENDEZVOUS_PORT / FMI_MAX_TIMEOUT_MS (Direct
channel; see template.yaml) and the model parameters of the fmi.json shipped next to
this file. The Direct channel's secret comes from FMI_SECRET in the environment.

Returns {"ok", "peer_id", "num_peers", "elements", "sum_first", "seconds"}: every
peer contributes peer_id + 1 in every element, so sum_first = n (n + 1) / 2.

Locally, with peers as processes over Direct (see docs/python.md):
    fmirun -n 3 --config config/fmi.json -- /usr/bin/python3 -c \\
      "import os, handler; print(handler.lambda_handler({'peer_id': int(os.environ['FMI_PEER_ID']),
       'num_peers': int(os.environ['FMI_NUM_PEERS']), 'comm_name': os.environ['FMI_COMM_NAME']}, None))"
"""

import json
import os
import time

import numpy as np

import fmi


HERE = os.path.dirname(os.path.abspath(__file__))
# The model section (bandwidths, prices) comes from the configuration shipped with
# the function (build.sh copies config/fmi.json), or the repository's when run locally.
BASE_CONFIGS = [os.path.join(HERE, "fmi.json"), os.path.join(HERE, "..", "..", "config", "fmi.json")]


def config_path(event):
    """The configuration when the event has none and FMI_CONFIG is unset: the event's
    "config" path, or a configuration from the function's environment (Direct channel
    only) and the shipped model parameters."""
    if event.get("config"):
        return event["config"]
    host = os.environ.get("FMI_RENDEZVOUS_HOST")
    if not host:
        raise fmi.ConfigError("no FMI configuration: start the job with fmirun --lambda --config "
                              "FILE (event['fmi_config']), pass event['config'], set FMI_CONFIG, or "
                              "set FMI_RENDEZVOUS_HOST (and FMI_RENDEZVOUS_PORT) for the Direct "
                              "channel")
    base = next((p for p in BASE_CONFIGS if os.path.exists(p)), None)
    if base is None:
        raise fmi.ConfigError(f"no base configuration (model parameters) in {BASE_CONFIGS}")
    with open(base) as f:
        cfg = json.load(f)
    for name in ("S3", "Redis"):
        cfg.setdefault("backends", {}).setdefault(name, {})["enabled"] = False
    cfg["backends"]["Direct"] = {
        "enabled": True, "host": host, "port": int(os.environ.get("FMI_RENDEZVOUS_PORT", "10000")),
        "max_timeout": int(os.environ.get("FMI_MAX_TIMEOUT_MS", "30000"))}
    return cfg


def run(comm, elements):
    """The work of one peer: a float32 allreduce (sum) into a preallocated array."""
    data = np.full(elements, comm.peer_id + 1, dtype=np.float32)
    out = np.empty_like(data)
    comm.barrier()
    t0 = time.perf_counter()
    comm.allreduce(data, fmi.func(fmi.op.sum), out=out)
    seconds = time.perf_counter() - t0
    return {"ok": bool((out == out[0]).all()), "peer_id": comm.peer_id, "num_peers": comm.num_peers,
            "elements": elements, "sum_first": float(out[0]) if elements else 0.0, "seconds": seconds}


@fmi.lambda_handler(default_config=config_path)
def lambda_handler(comm, event, context):
    comm.hint(fmi.hints.fast)
    return run(comm, int(event.get("elements", 1 << 20)))
