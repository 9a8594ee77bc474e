"""CI's chaos run (about a minute): a few hundred URNs while pool processes are SIGKILLed
during and after scheduling, Redis is SIGKILLed with work pending, garbage lands on the
queue and every kind of API fault fires. Runs with every `pytest`; `make chaos` runs the
long one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.chaos.harness import run_chaos
from tests.chaos.report import REQUIRED_FAULTS

pytestmark = [pytest.mark.integration, pytest.mark.chaos_short, pytest.mark.timeout(300)]


def test_short_chaos_run_loses_doubles_and_falsifies_nothing(tmp_path: Path) -> None:
    results = tmp_path / "chaos-short.json"
    run = run_chaos(["--profile", "short", "--results", str(results)], timeout_seconds=240)
    assert results.exists(), run.stdout[-3000:]
    report = json.loads(results.read_text())["runs"][0]
    shown = json.dumps({k: v for k, v in report.items() if k != "examples"}, indent=1)

    assert (report["lost"], report["duplicated"], report["wrong"]) == (0, 0, 0), shown
    assert report["outcomes_delivered"] == report["urns_scheduled"] >= 250, shown
    assert [kind for kind in REQUIRED_FAULTS if not report["api_faults_injected"][kind]] == []
    assert report["kills"]["during_scheduling"] >= 1, shown
    assert report["kills"]["after_scheduling"] >= 1, shown
    assert report["redis_kills"] == 1 and report["urns_pending_at_redis_kill"] > 0, shown
    assert report["garbage_messages_pushed"] > 0, shown
    assert report["copies_seen_by_consumer"] >= report["outcomes_delivered"], shown
    assert run.returncode == 0, run.stdout[-3000:]
