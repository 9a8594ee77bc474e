"""The benchmark's floor baseline works as its docstring says: no call to LinkedIn, every
URN decided at once but those held IN_PROGRESS, which it retries with jobops' own waits —
so comparing jobops with it compares like with like."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox import SandboxState
from tests.conftest import Recorder
from tests.env import TEST_ENV
from tests.jobs import posted_urns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def test_the_floor_decides_at_once_but_what_is_in_progress(
        sandbox: SandboxState, recorder: Recorder, bench_worker: Callable[[str], str]) -> None:
    from bench.floor import app

    floor_queue = bench_worker("bench.floor")
    urns = posted_urns(3)
    before = len(sandbox.status_calls())
    app.send_task("floor.verify_job_operation", queue=floor_queue, kwargs={
        "task_urns": urns, "operation": "CREATE",
        "callbacks": {"DEFAULT": "tests.record_outcome"}, "context": recorder.context,
        "in_progress": [urns[2]], "in_progress_seconds": 1.0})
    outcomes = {o["task_urn"]: o for o in recorder.wait(3, timeout_seconds=30,
                                                        settle_seconds=0.5)}
    assert set(outcomes) == set(urns)
    first = outcomes[urns[0]]["decided_at"]
    assert outcomes[urns[1]]["decided_at"] == first  # one run, one batch
    held = outcomes[urns[2]]
    assert held["flipped_at"] - first == pytest.approx(1.0, abs=0.05)
    # Looked at again within jobops' longest wait (JOBOPS_MAX_POLL_INTERVAL_SECONDS).
    assert 0 <= held["decided_at"] - held["flipped_at"] <= float(
        TEST_ENV["JOBOPS_MAX_POLL_INTERVAL_SECONDS"])
    assert len(sandbox.status_calls()) == before
