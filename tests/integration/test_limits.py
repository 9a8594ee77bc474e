"""One token, one rate limit, one daily quota for a fleet of real worker processes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from jobops.state import keys
from sandbox import SandboxState
from settings import load_settings
from tests.conftest import Recorder
from tests.jobs import posted_urns
from workers import app
from workers.runtime import build_limiter

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def verify_each(urns: list[str], recorder: Recorder, queue: str | None = None,
                eta: datetime | None = None) -> None:
    """One verification per URN, as a pipeline posting one job per call would send them."""
    for urn in urns:
        app.send_task("jobops.verify_job_operation", queue=queue, eta=eta, kwargs={
            "task_urns": [urn], "operation": "CREATE", "callbacks": recorder.callbacks,
            "context": recorder.context})


def forget_token(store: redis.Redis, sandbox: SandboxState) -> None:
    """The fleet's token has expired: gone from Redis, refused by LinkedIn."""
    store.delete(keys.TOKEN)
    sandbox.expire_tokens()


@pytest.fixture
def clock(store: redis.Redis) -> Iterator[Callable[[datetime], None]]:
    """Moves the fleet's clock (Redis time plus an offset) to a given UTC instant."""
    def move_to(instant: datetime) -> None:
        seconds, micros = store.time()
        store.set(keys.CLOCK_OFFSET, int(instant.timestamp() * 1000) - (
            seconds * 1000 + micros // 1000))

    yield move_to
    store.delete(keys.CLOCK_OFFSET)


def test_burst_after_token_expiry_makes_exactly_one_token_request(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(200)
    forget_token(store, sandbox)
    before = sandbox.token_requests
    verify_each(urns, recorder, eta=datetime.now(UTC) + timedelta(seconds=1.5))
    outcomes = recorder.wait(200, settle_seconds=0.5)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    assert sandbox.token_requests - before == 1


def test_calls_per_second_hold_across_processes(
        sandbox: SandboxState, recorder: Recorder, jobops_worker: Callable[..., str]) -> None:
    # One call per verification, so that the limit, not coalescing, sets the pace.
    queue = jobops_worker(JOBOPS_CALLS_PER_SECOND="5", JOBOPS_COALESCE_POLLING="0")
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(40)
    before = len(sandbox.status_calls())
    verify_each(urns, recorder, queue=queue)
    outcomes = recorder.wait(40, timeout_seconds=40, settle_seconds=0.2)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    times = sorted(call.at for call in sandbox.status_calls()[before:])
    assert len(times) == 40
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= 5
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate >= 4.5, f"achieved {rate:.2f} calls per second"


def own_calls(sandbox: SandboxState, urns: list[str], since: int) -> int:
    """Status calls about ``urns`` since the ``since``-th: verifications other tests of
    the session left running may call too."""
    own = set(urns)
    return sum(1 for c in sandbox.status_calls()[since:] if own.intersection(c.asked()))


def test_daily_quota_defers_until_midnight_utc(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        jobops_worker: Callable[..., str], clock: Callable[[datetime], None]) -> None:
    # One call per URN, so the work needs 80 calls.
    queue = jobops_worker(JOBOPS_DAILY_CALL_LIMIT="60", JOBOPS_QUOTA_RESERVE="10",
                          JOBOPS_COALESCE_POLLING="0")
    sandbox.config.in_progress_seconds = 0
    fresh_day = datetime(2031, 3, 14, 12, 0, tzinfo=UTC) + timedelta(days=os.getpid() % 1000)
    clock(fresh_day)
    urns = posted_urns(80)
    before = len(sandbox.status_calls())
    verify_each(urns, recorder, queue=queue)

    first_day = recorder.wait(50, settle_seconds=3)
    assert len(first_day) == 50
    assert {o["status"] for o in first_day} == {"SUCCEEDED"}
    assert own_calls(sandbox, urns, before) == 50
    limiter = build_limiter(load_settings(JOBOPS_DAILY_CALL_LIMIT="60",
                                          JOBOPS_QUOTA_RESERVE="10"), store)
    snapshot = limiter.snapshot()
    assert (snapshot.used_today, snapshot.left_today) == (50, 0)

    clock(fresh_day.replace(hour=0) + timedelta(days=1, seconds=1))
    outcomes = recorder.wait(80, timeout_seconds=30)
    assert sorted(o["task_urn"] for o in outcomes) == sorted(urns)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    assert own_calls(sandbox, urns, before) == 80


def test_retry_after_pauses_every_process(sandbox: SandboxState, recorder: Recorder) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(30)
    before = len(sandbox.status_calls())
    sandbox.script(429, {"message": "Too many requests", "status": 429}, {"Retry-After": "2"})
    verify_each(urns, recorder)
    outcomes = recorder.wait(30, timeout_seconds=30)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    calls = sandbox.status_calls()[before:]
    [throttled] = [call for call in calls if call.status == 429]
    # Calls already on the wire when the 429 came back may land in its first 100 ms.
    during_pause = [c for c in calls if throttled.at + 0.1 < c.at < throttled.at + 2]
    assert during_pause == []
    assert any(c.at >= throttled.at + 2 for c in calls)


def test_killed_refresher_blocks_others_no_longer_than_the_lock_timeout(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis) -> None:
    lock_timeout_seconds = float(os.environ["JOBOPS_TOKEN_LOCK_SECONDS"])
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(6)
    forget_token(store, sandbox)
    sandbox.script_token(delay_seconds=30)  # the first refresher hangs on the token endpoint
    requests_before = sandbox.token_requests
    verify_each(urns, recorder)
    deadline = time.monotonic() + 10
    # Killed once its request is at the token endpoint, not before it was sent.
    while (owner := store.get(keys.TOKEN_LOCK)) is None or (
            sandbox.token_requests == requests_before):
        assert time.monotonic() < deadline, "no process took the refresh lock"
        time.sleep(0.01)
    pid = int(owner.decode().split(":")[1])
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    outcomes = recorder.wait(6, timeout_seconds=30)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    answered = [c.at for c in sandbox.status_calls() if c.at > killed_at and c.status == 200]
    assert min(answered) - killed_at <= lock_timeout_seconds + 1


def test_token_endpoint_failures_wait_and_retry(sandbox: SandboxState, recorder: Recorder,
                                                store: redis.Redis) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = posted_urns(3)
    forget_token(store, sandbox)
    sandbox.script_token(status=503, times=2)
    before = sandbox.token_requests
    verify_each(urns, recorder)
    outcomes = recorder.wait(3, timeout_seconds=30)
    assert {o["status"] for o in outcomes} == {"SUCCEEDED"}
    assert sandbox.token_requests - before >= 3
