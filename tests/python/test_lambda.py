"""The example Lambda handler (deploy/lambda/handler.py) with peers as threads."""

import os
import sys

import pytest

import fmi
from conftest import run_peers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "lambda"))
import handler  # noqa: E402


@pytest.mark.parametrize("n", [1, 3])
def test_handler_run(n):
    results = run_peers(n, lambda comm: handler.run(comm, 1000))
    for i, r in enumerate(results):
        assert r["ok"] and r["peer_id"] == i and r["num_peers"] == n
        assert r["sum_first"] == n * (n + 1) / 2


def test_handler_needs_a_configuration(monkeypatch):
    monkeypatch.delenv("FMI_CONFIG", raising=False)
    monkeypatch.delenv("FMI_RENDEZVOUS_HOST", raising=False)
    with pytest.raises(fmi.ConfigError, match="FMI_RENDEZVOUS_HOST"):
        handler.lambda_handler({"peer_id": 0, "num_peers": 1}, None)


# fmi.lambda_handler before any Communicator exists (with peers: tests/lambda).
@fmi.lambda_handler
def _never_called(comm, event, context):
    raise AssertionError("the handler ran without a valid event")


def test_lambda_handler_raises_fmi_errors_by_default(monkeypatch):
    monkeypatch.delenv("FMI_LAMBDA_ERRORS", raising=False)
    monkeypatch.delenv("IS_OFFLINE", raising=False)
    monkeypatch.delenv("FMI_CONFIG", raising=False)
    with pytest.raises(fmi.UsageError, match="'peer_id'"):
        _never_called({"fmi_config": {}, "num_peers": 2, "comm_name": "c"}, None)
    with pytest.raises(fmi.UsageError, match="'num_peers' must be an integer"):
        _never_called({"fmi_config": {}, "peer_id": 0, "num_peers": "2", "comm_name": "c"}, None)
    with pytest.raises(fmi.ConfigError, match="no 'fmi_config'"):
        _never_called({"peer_id": 0, "num_peers": 2, "comm_name": "c"}, None)


@pytest.mark.parametrize("env", [{"FMI_LAMBDA_ERRORS": "return"}, {"IS_OFFLINE": "true"}])
def test_lambda_handler_returns_the_error_payload_where_raising_kills_the_worker(monkeypatch, env):
    monkeypatch.delenv("FMI_LAMBDA_ERRORS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    r = _never_called({"fmi_config": {}, "num_peers": 2, "comm_name": "c"}, None)
    assert set(r) == {"errorType", "errorMessage", "stackTrace"}
    assert r["errorType"] == "UsageError" and "'peer_id'" in r["errorMessage"]
    assert any("UsageError" in line for line in r["stackTrace"])
