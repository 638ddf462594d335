"""The documented calls with peers as processes started by fmirun, over the Direct
channel (TCP between the processes, rendezvous through fmi-rendezvous, which fmirun
starts itself for a local configuration).

Needs fmirun (FMI_FMIRUN, else next to the module's build or on PATH) and a module
built with the Direct channel; skips with a message naming what is missing.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

import fmi

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def fmirun_path():
    p = os.environ.get("FMI_FMIRUN") or shutil.which("fmirun")
    return p if p and os.access(p, os.X_OK) else None


def need_launcher():
    if "Direct" not in fmi.builtin_channels:
        pytest.skip("the fmi module was built without the Direct channel (FMI_WITH_DIRECT=OFF)")
    if not fmirun_path():
        pytest.skip("fmirun not found: build the targets fmirun and fmi-rendezvous "
                    "(FMI_BUILD_TOOLS=ON) and set FMI_FMIRUN (ctest does), or put fmirun on PATH")
    return fmirun_path()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def direct_config(tmp_path):
    """The repository's configuration with only Direct, on a free local port."""
    with open(os.path.join(REPO, "config", "fmi.json")) as f:
        cfg = json.load(f)
    for name in ("S3", "Redis"):
        cfg["backends"].setdefault(name, {})["enabled"] = False
    cfg["backends"]["Direct"] = {"enabled": True, "host": "127.0.0.1", "port": free_port(),
                                 "max_timeout": 30000}
    path = tmp_path / "direct.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def run_fmirun(n, config, program_args, name, timeout=150, extra_path=()):
    fmirun = need_launcher()
    env = dict(os.environ)
    # The children import this very module (and the test helpers).
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(fmi.__file__), HERE, *extra_path]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [fmirun, "-n", str(n), "--config", config, "--name", name, "--timeout", str(timeout - 30),
           "--", sys.executable] + program_args
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout


@pytest.mark.parametrize("n", [1, 2, 3, 5], ids=lambda n: f"n{n}")
def test_documented_calls_over_direct(n, tmp_path):
    rc, out = run_fmirun(n, direct_config(tmp_path),
                         [os.path.join(HERE, "peer_program.py"), "Direct"], f"pytest-direct-{n}")
    assert rc == 0, f"fmirun exited {rc}:\n{out}"
    for i in range(n):
        assert f"peer {i} of {n}: ok" in out, out


def test_lambda_handler_over_direct(tmp_path):
    # The example Lambda handler, each peer's event built from fmirun's environment.
    n = 3
    code = ("import json, os, handler; "
            "ev = {'peer_id': int(os.environ['FMI_PEER_ID']), 'num_peers': int(os.environ['FMI_NUM_PEERS']), "
            "'comm_name': os.environ['FMI_COMM_NAME'], 'elements': 1000}; "
            "print('RESULT', json.dumps(handler.lambda_handler(ev, None)), flush=True)")
    rc, out = run_fmirun(n, direct_config(tmp_path), ["-c", code], "pytest-lambda",
                         extra_path=[os.path.join(REPO, "deploy", "lambda")])
    assert rc == 0, f"fmirun exited {rc}:\n{out}"
    results = [json.loads(line.split("RESULT ", 1)[1]) for line in out.splitlines() if "RESULT " in line]
    assert len(results) == n, out
    for r in results:
        assert r["ok"] and r["sum_first"] == n * (n - 1) / 2 + n and r["num_peers"] == n
