"""Copies with one task id: a callback whose publish reached Redis but whose reply was lost
is sent again (kombu's publish retry, or the run's own retry), and must be queued once."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sandbox import SandboxState
from tests.fleet import PASSWORD, Fleet, running_fleet, wait_until
from tests.jobs import job, post, task_urns
from tests.proxy import ReplyLosingProxy

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(tmp_path: Path, store: redis.Redis, sandbox: SandboxState) -> Iterator[Fleet]:
    yield from running_fleet(tmp_path, store)


@pytest.fixture
def proxy(fleet: Fleet) -> Iterator[ReplyLosingProxy]:
    """Between the jobops worker and its broker (its state goes to Redis directly)."""
    started = ReplyLosingProxy(fleet.redis.port)
    fleet.env["CELERY_BROKER_URL"] = f"redis://:{PASSWORD}@127.0.0.1:{started.port}/0"
    yield started
    started.close()


def settled(fleet: Fleet) -> bool:
    """No verification pending, no callback queued or unacknowledged."""
    broker = fleet.broker()
    return (broker.zcard("jobops:pending") == 0 and broker.hlen("unacked") == 0
            and broker.llen(fleet.env["JOBOPS_CALLBACK_QUEUE"]) == 0)


def runs_per_callback(fleet: Fleet) -> dict[str, int]:
    return dict(collections.Counter(entry["task_id"] for entry in fleet.received()))


@pytest.mark.parametrize("jobs", [1, 3], ids=["one callback", "a batch of callbacks"])
def test_a_callback_whose_publish_reply_was_lost_is_queued_once(
        fleet: Fleet, proxy: ReplyLosingProxy, sandbox: SandboxState, jobs: int) -> None:
    sandbox.config.in_progress_seconds = 0
    _, log_path = fleet.worker("publisher", concurrency=1)
    fleet.consumer()
    # One callback goes through kombu's publish retry; several go in one pipeline, whose
    # failure fails the run, and the run's retry sends them all again.
    proxy.lose_reply_to(b"jobops-outcome-")  # in every callback message: its task id
    urns = task_urns(post([job() for _ in range(jobs)], "CREATE"))
    fleet.verify(urns)
    fleet.wait_for_outcomes(urns, timeout_seconds=40)
    assert proxy.cut_count == 1
    wait_until(lambda: settled(fleet), "the verification ended, every callback consumed",
               timeout_seconds=30)
    assert sorted(runs_per_callback(fleet).values()) == [1] * jobs
    assert PASSWORD not in log_path.read_text(errors="replace")
