"""The chaos run as a test (about a minute): `make chaos`, or `pytest -m slow`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "chaos.json"


def test_chaos_run_loses_doubles_and_falsifies_nothing() -> None:
    run = subprocess.run([sys.executable, "-m", "tests.chaos", "--urns", "1500", "--kills",
                          "10"], capture_output=True, text=True, timeout=600)
    report = json.loads(RESULTS.read_text())
    assert run.returncode == 0, run.stdout[-3000:]
    assert report["worker_kills"] >= 10 and report["redis_restarts"] == 1
    assert sum(report["api_faults_injected"].values()) > 0
    assert (report["lost"], report["duplicated"], report["wrong"]) == (0, 0, 0)
    assert report["outcomes_delivered"] == report["urns_scheduled"] >= 1000
