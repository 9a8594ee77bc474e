"""The long chaos run as a test (the issue's targets' shape, a couple of minutes):
`pytest -m slow`. `make chaos` runs it three times in a row and keeps the figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.chaos.harness import run_chaos
from tests.chaos.report import REQUIRED_FAULTS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_long_chaos_run_loses_doubles_and_falsifies_nothing(tmp_path: Path) -> None:
    results = tmp_path / "chaos.json"
    run = run_chaos(["--profile", "long", "--results", str(results)], timeout_seconds=720)
    assert results.exists(), run.stdout[-3000:]
    report = json.loads(results.read_text())["runs"][0]

    assert (report["lost"], report["duplicated"], report["wrong"]) == (0, 0, 0)
    assert report["outcomes_delivered"] == report["urns_scheduled"] == 600
    assert report["kills"]["during_scheduling"] + report["kills"]["after_scheduling"] == 8
    assert all(report["api_faults_injected"][kind] for kind in REQUIRED_FAULTS)
    assert report["redis_kills"] == 1 and report["urns_pending_at_redis_kill"] > 0
    assert report["garbage_messages_pushed"] > 0
    assert run.returncode == 0, run.stdout[-3000:]
