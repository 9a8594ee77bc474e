"""LinkedIn refusing every call for a while (400, 401, 429): nothing final is delivered
meanwhile, the fleet pauses instead of hammering, and every URN ends once it stops.

Verifications are sent as a pipeline sends them: by name, from an app of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from jobops.state import keys
from sandbox import SandboxState
from tests.conftest import Recorder
from tests.env import REDIS_URL, TEST_ENV
from tests.jobs import posted_urns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Celery]:
    """The README's pipeline side: a Celery app that knows jobops only by task name."""
    app = Celery("pipeline", broker=REDIS_URL)
    yield app
    app.close()


def send(pipeline: Celery, recorder: Recorder, urns: list[str], queue: str) -> None:
    """Twenty single-URN operations and one of the rest, each verified by name."""
    operations = [[urn] for urn in urns[:20]] + [urns[20:]]
    for task_urns in operations:
        pipeline.send_task("jobops.verify_job_operation", queue=queue, countdown=0, kwargs={
            "task_urns": task_urns, "operation": "CREATE", "callbacks": recorder.callbacks,
            "context": recorder.context})


def limits() -> dict[str, Any]:
    """What `jobops limits --json` shows an operator right now."""
    done = subprocess.run([sys.executable, "-m", "jobops.cli", "limits", "--json"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["limits"]


def pause_shown() -> dict[str, Any]:
    """`jobops limits --json` once it shows a fleet-wide pause."""
    deadline = time.monotonic() + 5
    while (shown := limits())["pause"] is None:
        assert time.monotonic() < deadline, "jobops limits never showed the pause"
        time.sleep(0.1)
    return shown


def pauses(store: redis.Redis, reason: str) -> int:
    return int(float(store.hget(keys.METRICS, f'jobops_pauses_total{{reason="{reason}"}}')
                     or 0))


def ride_out(sandbox: SandboxState, recorder: Recorder, watch: Callable[[], None]
             ) -> None:
    """While the storm lasts: no outcome arrives; ``watch`` sees what an operator sees."""
    watched = False
    while sandbox.storming():
        assert recorder.outcomes() == [], "an outcome was delivered while LinkedIn refused"
        if not watched:
            watch()
            watched = True
        time.sleep(0.2)
    assert watched


def delivered_once(recorder: Recorder, urns: list[str], timeout_seconds: float
                   ) -> list[dict[str, Any]]:
    outcomes = recorder.wait(len(urns), timeout_seconds=timeout_seconds, settle_seconds=2)
    assert Counter(o["task_urn"] for o in outcomes) == Counter(urns)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    return outcomes


def error_lines(log_path: Path, since: int, reason: str) -> list[str]:
    lines = log_path.read_text(errors="replace").splitlines()[since:]
    return [line for line in lines if "paused fleet-wide" in line and reason in line]


def test_a_400_storm_pauses_the_fleet_and_no_urn_becomes_invalid(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        pipeline: Celery, workers: dict[str, Path]) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(40)
    log_from = len(workers["jobops"].read_text(errors="replace").splitlines())
    before_calls, before_pauses = len(sandbox.status_calls()), pauses(store, "request_refused")
    sandbox.storm(6, 400, {"message": "Unsupported value for header X-RestLi-Protocol",
                           "status": 400})
    send(pipeline, recorder, urns, TEST_ENV["JOBOPS_QUEUE"])

    def watch() -> None:
        shown = pause_shown()
        assert shown["pause"]["reason"] == "request_refused"
        assert "X-RestLi-Protocol" in shown["pause"]["last_error"]

    ride_out(sandbox, recorder, watch)
    delivered_once(recorder, urns, timeout_seconds=60)
    refused = [c for c in sandbox.status_calls()[before_calls:] if c.status == 400]
    # A call and a canary per pause step, not one call per verification and round.
    assert len(refused) <= 20, f"{len(refused)} refused calls in a 6 s storm"
    steps = pauses(store, "request_refused") - before_pauses
    assert 1 <= steps <= 10
    assert len(error_lines(workers["jobops"], log_from, "request_refused")) == steps


def test_a_refused_fresh_token_pauses_instead_of_churning_tokens(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis, pipeline: Celery,
        jobops_worker: Callable[..., str]) -> None:
    queue = jobops_worker(JOBOPS_PAUSE_MAX_SECONDS="8")
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(40)
    tokens_before, pauses_before = sandbox.token_requests, pauses(store, "token_refused")
    sandbox.storm(20, 401, {"serviceErrorCode": 65600, "message": "Invalid access token",
                            "status": 401})
    send(pipeline, recorder, urns, queue)

    def watch() -> None:
        assert pause_shown()["pause"]["reason"] == "token_refused"

    ride_out(sandbox, recorder, watch)
    token_requests = sandbox.token_requests - tokens_before
    # About one per pause step (0.5-1, 1-2, 2-4, 4-8, 4-8 s…) for the whole fleet.
    assert 1 <= token_requests <= 8, f"{token_requests} token requests in 20 s"
    assert pauses(store, "token_refused") - pauses_before >= 2
    delivered_once(recorder, urns, timeout_seconds=60)


def test_a_short_throttle_is_not_taken_for_the_daily_limit(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        pipeline: Celery) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(40)
    sandbox.storm(4, 429, {"serviceErrorCode": 101, "message": "Resource level throttle "
                           "limit for calls to this resource is reached.", "status": 429})
    send(pipeline, recorder, urns, TEST_ENV["JOBOPS_QUEUE"])

    def watch() -> None:
        shown = pause_shown()
        assert shown["pause"]["reason"] == "throttled"
        assert shown["paused_for_seconds"] <= float(TEST_ENV["JOBOPS_PAUSE_MAX_SECONDS"])

    ride_out(sandbox, recorder, watch)
    stopped = time.monotonic()
    delivered_once(recorder, urns, timeout_seconds=60)
    assert time.monotonic() - stopped < 60
