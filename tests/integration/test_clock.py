"""One clock for the fleet: a worker whose host clock is 90 s off still checks nothing
before it is due, and re-sends nothing that is merely waiting."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from sandbox import SandboxState
from settings import load_settings
from tests.conftest import Recorder
from tests.jobs import posted_urns
from workers import app
from workers.runtime import build_runtime, runtime

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
SKEW = {"JOBOPS_TEST_HOST_CLOCK_SKEW_SECONDS": "90"}


def schedule(urns: list[str], recorder: Recorder, queue: str, countdown_seconds: float
             ) -> list[str]:
    """Single-job verifications registered and sent as the scheduler does, from this
    process, whose clock is right."""
    fleet = runtime()
    ids = [str(uuid.uuid4()) for _ in urns]
    due_at = fleet.clock.now() + countdown_seconds
    with fleet.redis.pipeline(transaction=False) as pipe:
        for verification_id, urn in zip(ids, urns, strict=True):
            kwargs = {"task_urns": [urn], "operation": "CREATE",
                      "callbacks": recorder.callbacks, "context": recorder.context}
            fleet.pending.expect(verification_id, kwargs, due_at, pipe)
            assert fleet.status_cache is not None
            fleet.status_cache.expect([urn], due_at, verification_id, pipe)
        pipe.execute()
    for verification_id, urn in zip(ids, urns, strict=True):
        app.send_task("jobops.verify_job_operation", queue=queue, countdown=countdown_seconds,
                      task_id=verification_id, kwargs={
                          "task_urns": [urn], "operation": "CREATE",
                          "callbacks": recorder.callbacks, "context": recorder.context})
    return ids


def test_a_worker_90_s_ahead_takes_no_companion_before_it_is_due(
        sandbox: SandboxState, recorder: Recorder, jobops_worker: Callable[..., str]) -> None:
    queue = jobops_worker(**SKEW, JOBOPS_STATUS_FRESH_SECONDS="1")
    sandbox.config.in_progress_seconds = 0
    later, now = posted_urns(20), posted_urns(20)
    before = len(sandbox.status_calls())
    sent_at = time.time()
    schedule(later, recorder, queue, countdown_seconds=8)
    schedule(now, recorder, queue, countdown_seconds=0)
    outcomes = recorder.wait(40, timeout_seconds=40, settle_seconds=1)
    assert Counter(o["task_urn"] for o in outcomes) == Counter(later + now)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    early = [call for call in sandbox.status_calls()[before:]
             if call.at < sent_at + 7.5 and set(call.asked()) & set(later)]
    assert early == [], f"asked {len(early)} times before they were due"


def test_a_sweeper_90_s_ahead_resends_nothing_that_is_waiting() -> None:
    # A broker visibility timeout of 20 s: a round overdue by 30 s is taken for lost.
    short = {"JOBOPS_VISIBILITY_TIMEOUT_SECONDS": "20", "JOBOPS_FIRST_CHECK_SECONDS": "8"}
    right = build_runtime(load_settings(**short))
    ahead = build_runtime(load_settings(**short, **SKEW))
    waiting = str(uuid.uuid4())
    try:
        right.pending.expect(waiting, {"task_urns": [], "operation": "CREATE"},
                             right.clock.now() + 8)
        # What the fast host's sweeper would re-send now (sweep_once, minus the lock).
        assert ahead.pending.overdue(ahead.clock.now(), limit=10) == []
    finally:
        right.pending.forget(waiting)
        right.redis.close()
        ahead.redis.close()
