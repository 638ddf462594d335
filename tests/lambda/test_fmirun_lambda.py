"""fmirun --lambda against a real local Lambda emulator (emulator.py): the Invoke API,
the event contract, results, failures and the errors that end a job at once.

Run by ctest (tests/lambda/CMakeLists.txt) with FMI_FMIRUN, FMI_BUILD_DIR and the
module on PYTHONPATH."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emulator import PREFIX, REPO, Emulator, free_port, install  # noqa: E402

FMIRUN = os.environ.get("FMI_FMIRUN", "")
BUILD = os.environ.get("FMI_BUILD_DIR", os.path.join(REPO, "build"))
SECRET = "fmi-lambda-test-secret-0123456789"
HERE = os.path.dirname(os.path.abspath(__file__))

FUNCTIONS = {
    "allreduce": {"handler": "handler.lambda_handler", "timeout": 30},
    "echo": {"handler": "handlers.echo", "timeout": 30},
    "fail": {"handler": "handlers.fail_one", "timeout": 30},
    # As on AWS: the exception propagates. The emulator's worker dies and the call
    # returns at the function's timeout.
    "fail_raise": {"handler": "handlers.fail_one", "timeout": 3,
                   "environment": {"FMI_LAMBDA_ERRORS": "raise"}},
}


@pytest.fixture(scope="module")
def emulator():
    assert FMIRUN and os.access(FMIRUN, os.X_OK), f"FMI_FMIRUN={FMIRUN!r} is not fmirun"
    emu = Emulator(install(BUILD), FUNCTIONS, [HERE, os.path.join(REPO, "deploy", "lambda")],
                   env={"FMI_SECRET": SECRET})
    with emu:
        yield emu


@pytest.fixture
def config(tmp_path):
    """Direct on a free loopback port (fmirun starts the server), a shared secret, a
    short max_timeout so that peers of a failed function give up quickly."""
    with open(os.path.join(REPO, "tests", "tools", "fmi-test.json")) as f:
        cfg = json.load(f)
    cfg["backends"]["Direct"].update({"port": free_port(), "max_timeout": 3000, "secret": SECRET})
    path = tmp_path / "fmi.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def fmirun(emu, function, n, *args, env=None, timeout=90):
    e = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    e.pop("FMI_SECRET", None)
    e.update(env or {})
    cmd = [FMIRUN, "--lambda", PREFIX + function, "-n", str(n), "--endpoint", emu.endpoint, *args]
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    p.seconds = time.monotonic() - t0
    return p


def results(stdout):
    out = {}
    for line in stdout.splitlines():
        m = re.fullmatch(r"\[peer (\d+)\] (.*)", line)
        assert m, f"unexpected stdout line {line!r}"
        out[int(m.group(1))] = json.loads(m.group(2))
    return out


def test_allreduce_of_8_functions(emulator, config, tmp_path):
    out = tmp_path / "out"
    p = fmirun(emulator, "allreduce", 8, "--config", config, "--timeout", "60",
               "--payload", '{"elements": 1000}', "--output", str(out))
    assert p.returncode == 0, p.stderr + emulator.log()
    assert "started the rendezvous server" in p.stderr
    got = results(p.stdout)
    assert sorted(got) == list(range(8))
    for i, r in got.items():
        assert r == {**r, "ok": True, "peer_id": i, "num_peers": 8, "elements": 1000,
                     "sum_first": 36.0}
        assert json.loads((out / f"peer-{i}.json").read_text()) == r
    assert "8 of 8 functions succeeded" in p.stderr


def test_event_contract_payload_and_secrets(emulator, config):
    p = fmirun(emulator, "echo", 3, "--config", config, "--timeout", "60",
               "--payload", '{"tag": "x y", "k": [1, 2]}')
    assert p.returncode == 0, p.stderr + emulator.log()
    got = results(p.stdout)
    assert sorted(got) == [0, 1, 2]
    names = {r["comm_name"] for r in got.values()}
    assert len(names) == 1 and re.fullmatch(r"fmi-[0-9a-f]{16}", names.pop())
    for i, r in got.items():
        assert r["peer_id"] == i and r["num_peers"] == 3
        assert r["event_keys"] == ["comm_name", "fmi_config", "k", "num_peers", "peer_id", "tag"]
        assert r["payload"] == {"tag": "x y", "k": [1, 2]}
        # The secret is not in the event; the function had it from its environment
        # (and used it: the rendezvous server checks it).
        assert "secret" not in r["direct"] and r["direct"]["host"] == "127.0.0.1"
        assert r["secret_in_env"] is True
        assert r["numpy"] == {"array": [0, 1, 2], "scalar": 0.5, "tuple": [7]}
    assert "backends.Direct.secret" in p.stderr


def test_comm_name_is_fresh_per_run_unless_named(emulator, config):
    runs = [fmirun(emulator, "echo", 2, "--config", config, "--timeout", "60") for _ in range(2)]
    names = []
    for p in runs:
        assert p.returncode == 0, p.stderr
        names.append({r["comm_name"] for r in results(p.stdout).values()})
    assert len(names[0]) == 1 and len(names[1]) == 1 and names[0] != names[1]
    p = fmirun(emulator, "echo", 2, "--config", config, "--name", "my-job", "--timeout", "60")
    assert p.returncode == 0, p.stderr
    assert {r["comm_name"] for r in results(p.stdout).values()} == {"my-job"}


def test_a_failing_function_fails_the_job(emulator, config):
    p = fmirun(emulator, "fail", 4, "--config", config, "--timeout", "60",
               "--payload", '{"fail_peer": 2}')
    assert p.returncode == 1, p.stderr
    assert p.stdout == ""
    assert re.search(r"peer 2 failed after .*: ValueError: peer 2 fails on purpose", p.stderr)
    # The others waited in the allreduce for peer 2 and got an FMI error, none hangs.
    for i in (0, 1, 3):
        assert re.search(rf"peer {i} failed after .*: (PeerError|TimeoutError|ChannelError): ", p.stderr), p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert "0 of 4 functions succeeded" in last and "4 failed" in last
    assert "the first failure: peer 2: ValueError: peer 2 fails on purpose" in last
    assert p.seconds < 45


def test_an_uncaught_exception_is_the_emulators_timeout(emulator, config):
    """FMI_LAMBDA_ERRORS=raise, as on AWS: the emulator loses the message."""
    p = fmirun(emulator, "fail_raise", 2, "--config", config, "--timeout", "60",
               "--payload", '{"fail_peer": 1}')
    # Peer 1 raised, so peer 0's allreduce raised an FMI error: both workers died
    # and both calls came back at the function's 3 s timeout, their messages lost.
    assert p.returncode == 1, p.stderr
    for i in (0, 1):
        assert re.search(rf"peer {i} failed after [3-9].\d s: Error: \[504\] - Lambda timeout\. "
                         r"\(Unhandled\)", p.stderr), p.stderr
    assert "0 of 2 functions succeeded" in p.stderr and "the first failure: peer " in p.stderr
    assert p.seconds < 30


def test_timeout_ends_the_job(emulator, config):
    p = fmirun(emulator, "echo", 2, "--config", config, "--timeout", "4",
               "--payload", '{"sleep": 20}')
    assert p.returncode == 124, p.stderr
    assert re.search(r"peer [01] failed after .*: no answer within the job's --timeout", p.stderr)
    assert "0 of 2 functions succeeded" in p.stderr and p.stdout == ""
    assert p.seconds < 12


def test_unknown_function_fails_at_once(emulator, config):
    p = fmirun(emulator, "nope", 4, "--config", config)
    assert p.returncode == 2
    assert f"function '{PREFIX}nope' not found" in p.stderr
    assert p.stdout == "" and p.seconds < 10


def test_setup_errors(emulator, config):
    p = fmirun(emulator, "echo", 2, "--payload", '{"peer_id": 5}')
    assert p.returncode == 2 and "--payload may not set 'peer_id'" in p.stderr
    p = fmirun(emulator, "echo", 2, "--payload", "[1]")
    assert p.returncode == 2 and "--payload must be a JSON object" in p.stderr
    p = fmirun(emulator, "echo", 2, env={"AWS_ACCESS_KEY_ID": ""})
    assert p.returncode == 2 and "no AWS credentials" in p.stderr
    closed = free_port()
    p = subprocess.run([FMIRUN, "--lambda", "f", "-n", "2", "--endpoint", f"http://127.0.0.1:{closed}"],
                       env=dict(os.environ, AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert p.returncode == 2 and "cannot connect to the Lambda endpoint" in p.stderr
    p = subprocess.run([FMIRUN, "--lambda", "f", "-n", "2", "--region", "moon"],
                       env=dict(os.environ, AWS_ACCESS_KEY_ID="a", AWS_SECRET_ACCESS_KEY="b"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert p.returncode == 2 and "'moon' is not an AWS region" in p.stderr


MOTO_SETUP = """
import boto3, io, sys, zipfile
c = dict(endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="test",
         aws_secret_access_key="test")
role = boto3.client("iam", **c).create_role(RoleName="fmi", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
code = io.BytesIO()
with zipfile.ZipFile(code, "w") as z:
    z.writestr("h.py", "def h(event, context):\\n    return 1\\n")
lam = boto3.client("lambda", **c)
lam.create_function(FunctionName="short", Runtime="python3.12", Role=role, Handler="h.h",
                    Code={"ZipFile": code.getvalue()}, Timeout=3)
lam.put_function_concurrency(FunctionName="short", ReservedConcurrentExecutions=2)
"""


def test_checks_before_the_job_where_the_endpoint_has_them(tmp_path):
    """moto serves GetFunction and GetFunctionConcurrency as AWS does (its Invoke
    needs Docker and answers with a function error, which fmirun reports)."""
    py = os.environ.get("FMI_MOTO_PYTHON")
    assert py, "FMI_MOTO_PYTHON is not set: no Python with moto (pip install 'moto[server]')"
    port = free_port()
    moto = subprocess.Popen([py, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until = time.monotonic() + 30
        while subprocess.run([py, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}))"],
                             stderr=subprocess.DEVNULL).returncode != 0:
            assert time.monotonic() < until and moto.poll() is None, "moto did not start"
            time.sleep(0.2)
        endpoint = f"http://127.0.0.1:{port}"
        subprocess.run([py, "-c", MOTO_SETUP, endpoint], check=True)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
        run = [FMIRUN, "-n", "4", "--endpoint", endpoint, "--timeout", "20", "--lambda"]
        p = subprocess.run(run + ["short"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        assert "warning: the function's timeout (3 s) is shorter than the job's --timeout" in p.stderr
        assert "warning: the function's reserved concurrency (2) is below the job's 4" in p.stderr
        assert p.returncode == 1 and "0 of 4 functions succeeded" in p.stderr, p.stderr
        p = subprocess.run(run + ["absent"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        assert p.returncode == 2 and "function 'absent' not found" in p.stderr, p.stderr
        assert "invoking" not in p.stderr  # GetFunction found it out before any Invoke
    finally:
        moto.terminate()
        moto.wait(timeout=10)
