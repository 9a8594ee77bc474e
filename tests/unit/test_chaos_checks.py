"""The chaos run's own checks: a run that skipped a disruption it claims does not pass."""

from __future__ import annotations

import random
from typing import Any

from sandbox.state import FAULTS
from tests.chaos.profiles import SHORT
from tests.chaos.report import judge
from tests.chaos.scheduling import operations_for


def good_run(**changes: Any) -> dict[str, Any]:
    run = {"lost": 0, "duplicated": 0, "wrong": 0,
           "api_faults_injected": {kind: 1 for kind in FAULTS},
           "kills": {"during_scheduling": 1, "after_scheduling": 2},
           "redis_kills": 1, "urns_pending_at_redis_kill": 120, "garbage_messages_pushed": 8,
           "workers_that_exited_by_themselves": 2,
           "seconds_from_last_disruption_to_last_outcome": 50.0,
           "targets": {"recovery_seconds": 45.0, "recovery_met": False}}
    run.update(changes)
    return run


def test_a_run_that_did_all_it_claims_passes_and_its_figures_do_not_fail_it() -> None:
    assert judge(good_run(), SHORT, strict=False) == []


def test_strict_turns_the_recovery_target_and_worker_exits_into_checks() -> None:
    assert len(judge(good_run(), SHORT, strict=True)) == 2


def test_what_fails_a_run() -> None:
    faults = {**good_run()["api_faults_injected"], "revoke": 0}
    assert judge(good_run(duplicated=1), SHORT, strict=False) == ["duplicated: 1"]
    assert judge(good_run(api_faults_injected=faults), SHORT,
                 strict=False) == ["fault revoke never fired"]
    assert judge(good_run(kills={"during_scheduling": 0, "after_scheduling": 3}), SHORT,
                 strict=False)
    assert judge(good_run(urns_pending_at_redis_kill=0), SHORT, strict=False) == [
        "Redis was not killed while URNs were pending"]
    assert judge(good_run(garbage_messages_pushed=0), SHORT, strict=False) == [
        "no garbage was pushed"]


def test_operations_carry_exactly_the_urns_asked_for() -> None:
    operations = operations_for(600, 60, random.Random(3), "t")

    urns = [sum(1 + len(job.get("alternateLocations", [])) for job in jobs)
            for jobs in operations]
    assert len(operations) == 60 and sum(urns) == 600 and set(urns) == {10}
    assert any(len(jobs) < 10 for jobs in operations)  # some jobs have three locations
