"""Coalescing on the card's own path: verifications a pipeline sends by name, from an app
that never imports jobops, share their LinkedIn calls too."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
import redis
from celery import Celery

from jobops.state import keys
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.env import REDIS_URL
from tests.jobs import posted_urns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def test_a_countdown_sent_by_name_is_kept(sandbox: SandboxState, recorder: Recorder,
                                          store: redis.Redis,
                                          jobops_worker: Callable[..., str]) -> None:
    """A verification waiting out its countdown in a worker is not asked about before it
    is due (less the fresh window), however much room another run's call has."""
    fresh, countdown = 1.0, 6.0
    queue = jobops_worker(JOBOPS_STATUS_FRESH_SECONDS=str(fresh))
    sandbox.config.in_progress_seconds = 0
    [now_urn], [later_urn] = posted_urns(1), posted_urns(1)
    pipeline = Celery("pipeline", broker=REDIS_URL)
    try:
        def send(urn: str, seconds: float) -> None:
            pipeline.send_task("jobops.verify_job_operation", queue=queue, countdown=seconds,
                               kwargs={"task_urns": [urn], "operation": "CREATE",
                                       "callbacks": recorder.callbacks,
                                       "context": recorder.context})

        sent = time.time()
        send(later_urn, countdown)
        deadline = time.monotonic() + 20
        while store.zscore(keys.DUE, later_urn) is None:  # the worker holds it
            assert time.monotonic() < deadline, "the countdown message never arrived"
            time.sleep(0.05)
        send(now_urn, 0)
    finally:
        pipeline.close()
    recorder.wait(2, timeout_seconds=60, settle_seconds=0.2)
    asked = [c.at for c in sandbox.status_calls() if later_urn in c.asked()]
    assert asked and min(asked) >= sent + countdown - fresh - 0.5, (
        f"asked {min(asked) - sent:.1f} s after sending, with a {countdown:.0f} s countdown")


#: The card's path (a countdown) meets the issue's bound of 25 calls for 1,000 URNs; with
#: none, runs start while the pipeline is still sending and a few calls go out part-full
#: (23-27 calls measured).
@pytest.mark.parametrize(("countdown", "most_calls"), [(3, 25), (0, 30)])
def test_single_urn_verifications_sent_by_name_share_their_calls(
        sandbox: SandboxState, recorder: Recorder, jobops_worker: Callable[..., str],
        countdown: int, most_calls: int) -> None:
    """As the README's snippet sends them: one message per operation, by name, with or
    without a countdown (a countdown message waits in the worker; one without waits in
    the queue until a process takes it)."""
    queue = jobops_worker(JOBOPS_STATUS_FRESH_SECONDS="30")
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(1000)
    before = len(sandbox.status_calls())
    pipeline = Celery("pipeline", broker=REDIS_URL)
    try:
        with pipeline.producer_or_acquire() as producer:
            for urn in urns:
                pipeline.send_task(
                    "jobops.verify_job_operation", queue=queue, countdown=countdown,
                    producer=producer, kwargs={
                        "task_urns": [urn], "operation": "CREATE",
                        "callbacks": recorder.callbacks, "context": recorder.context})
    finally:
        pipeline.close()
    outcomes = recorder.wait(1000, timeout_seconds=240, settle_seconds=1)
    assert Counter(o["task_urn"] for o in outcomes) == Counter(urns)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    calls = len(sandbox.status_calls()) - before
    sizes = [c.ids for c in sandbox.status_calls()[before:]]
    print(f"\ncountdown {countdown}: {calls} calls")
    assert calls <= most_calls, f"{calls} calls for 1,000 single-URN verifications: {sizes}"

