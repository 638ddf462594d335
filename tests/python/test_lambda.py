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
