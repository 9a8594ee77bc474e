"""Workers outlive their broker: a Redis killed and started again, a worker stopped while
Redis is down. Each test runs its own Redis (append-only file, password) and real workers."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobops.dev.processes import stop
from sandbox import SandboxState
from tests.conftest import wait_for_line
from tests.fleet import (
    PASSWORD,
    VISIBILITY_TIMEOUT_SECONDS,
    Fleet,
    alive,
    children,
    llen,
    running_fleet,
    wait_until,
)
from tests.jobs import job, post, task_urns

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(tmp_path: Path, store: redis.Redis, sandbox: SandboxState) -> Iterator[Fleet]:
    yield from running_fleet(tmp_path, store)


def test_workers_outlive_a_redis_killed_and_started_again(
        fleet: Fleet, sandbox: SandboxState) -> None:
    # Each verification's own messages are its only way to an outcome (no companion
    # settles it), and none comes back by the visibility timeout within the test: what
    # a worker held when Redis went must go on after it.
    fleet.env.update(JOBOPS_COALESCE_POLLING="0", JOBOPS_VISIBILITY_TIMEOUT_SECONDS="7200")
    sandbox.config.in_progress_seconds = 2
    sandbox.config.in_progress_jitter_seconds = 8
    # Some runs are in the middle of a status call when Redis goes.
    sandbox.config.fault_rates = {"slow": 0.3}
    sandbox.config.fault_slow_seconds = 1.5
    first, first_log = fleet.worker("first")
    second, second_log = fleet.worker("second")
    workers = ((first, first_log), (second, second_log))
    pids = {first.pid, second.pid, *children(first.pid), *children(second.pid)}
    assert len(pids) == 6
    urns = task_urns(post([job() for _ in range(30)], "CREATE"))
    urns += task_urns(post([job() for _ in range(30)], "CREATE"))
    for urn in urns[:30]:
        fleet.verify([urn])
    fleet.verify(urns[30:])
    callbacks = fleet.env["JOBOPS_CALLBACK_QUEUE"]
    broker = fleet.broker()
    for restart in (1, 2):
        # Killed with outcomes delivered and others IN_PROGRESS, their next checks held.
        wait_until(lambda n=restart: llen(broker, callbacks) >= 5 * n, "more outcomes")
        assert llen(broker, callbacks) < len(urns)
        failed_before = failed_connects(workers)
        fleet.kill_redis()
        # Down long enough that reconnecting fails, with work in flight. (A worker whose
        # pool is full may not notice at all: it does not read from Redis meanwhile.)
        wait_until(lambda n=failed_before: failed_connects(workers) > n,
                   "a worker failing to reconnect")
        fleet.redis.start()  # same port, same directory: its append-only file

    fleet.consumer()
    ids = fleet.wait_for_outcomes(urns, timeout_seconds=45)
    assert {urn: len(found) for urn, found in ids.items() if len(found) > 1} == {}
    assert {entry["status"] for entry in fleet.received()} == {"SUCCEEDED"}
    living = {pid for pid in pids if alive(pid)}
    assert living == pids, f"exited: {pids - living}"
    assert {first.pid, second.pid, *children(first.pid), *children(second.pid)} == pids
    for _, log_path in workers:
        text = log_path.read_text(errors="replace")
        assert "Unrecoverable error" not in text
        assert PASSWORD not in text


def failed_connects(workers: tuple[tuple[subprocess.Popen[bytes], Path], ...]) -> int:
    return sum(log_path.read_text(errors="replace").count("Cannot connect to redis")
               for _, log_path in workers)


def test_what_a_worker_stopped_while_redis_is_down_held_runs_after_the_visibility_timeout(
        fleet: Fleet, sandbox: SandboxState) -> None:
    sandbox.config.in_progress_seconds = 0
    holder, holder_log = fleet.worker("holder", concurrency=1)
    urns = task_urns(post([job() for _ in range(4)], "CREATE"))
    for urn in urns:
        fleet.verify([urn], countdown_seconds=VISIBILITY_TIMEOUT_SECONDS / 2)
    broker = fleet.broker()
    # The holder has taken every message and waits for its countdown.
    wait_until(lambda: broker.hlen("unacked") == len(urns), "the holder took every message")
    held = {json.loads(raw)[0]["headers"]["id"] for raw in broker.hvals("unacked")}
    taken_at = time.time()
    fleet.kill_redis()
    wait_for_line(holder_log, "Cannot connect to redis")
    stop(holder)  # warm shutdown, while Redis is down
    assert holder.returncode == 0, holder_log.read_text(errors="replace")[-3000:]
    assert "Unrecoverable error" not in holder_log.read_text(errors="replace")
    wait_for_line(holder_log, "stay in Redis's unacked hash")

    fleet.redis.start()
    broker = fleet.broker()
    # Where they are: still in kombu's unacked hash, not on the queue.
    assert {json.loads(raw)[0]["headers"]["id"] for raw in broker.hvals("unacked")} == held
    assert broker.llen(fleet.env["JOBOPS_QUEUE"]) == 0
    fleet.worker("other")
    fleet.consumer()
    # When they run: once the visibility timeout has passed since they were taken.
    ids = fleet.wait_for_outcomes(urns, timeout_seconds=VISIBILITY_TIMEOUT_SECONDS + 25)
    assert time.time() - taken_at >= VISIBILITY_TIMEOUT_SECONDS
    assert {urn: len(found) for urn, found in ids.items() if len(found) > 1} == {}
    assert broker.hlen("unacked") == 0
