"""Nothing lost, nothing doubled: lost messages come back, waiting ones are left to wait,
copies of a round run once."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis

from jobops.core.request import parse_request
from sandbox import SandboxState
from tests.conftest import ExtraWorkers, Recorder, wait_for_line
from tests.jobs import job, post, task_urns
from tests.pipeline_app import app as pipeline
from workers import app
from workers.runtime import runtime
from workers.scheduling import verification_id

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def test_a_lost_message_is_re_sent_by_the_sweeper(sandbox: SandboxState, recorder: Recorder
                                                  ) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = task_urns(post([job(), job()], "CREATE"))
    request = parse_request({"task_urns": urns, "operation": "CREATE",
                             "callbacks": recorder.callbacks, "context": recorder.context},
                            now=time.time(), strict=True)
    pending = runtime().pending
    verification_id = str(uuid.uuid4())
    # Registered as scheduling does, but the message itself never reaches the broker.
    pending.expect(verification_id, request.as_kwargs(),
                   due_at=time.time() - pending.grace_seconds - 1)
    outcomes = recorder.wait(2, timeout_seconds=20)
    assert sorted(o["task_urn"] for o in outcomes) == sorted(urns)
    deadline = time.monotonic() + 5
    while runtime().redis.zscore("jobops:pending", verification_id) is not None:
        assert time.monotonic() < deadline, "a finished verification stayed registered"
        time.sleep(0.1)


def test_copies_of_one_round_run_it_once(sandbox: SandboxState, recorder: Recorder,
                                         workers: dict[str, Path]) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = task_urns(post([job() for _ in range(3)], "CREATE"))
    verification_id = str(uuid.uuid4())
    kwargs = {"task_urns": urns, "operation": "CREATE", "callbacks": recorder.callbacks,
              "context": recorder.context}
    calls_before = len(sandbox.status_calls())
    for _ in range(4):  # as a broker redelivering one message would
        app.send_task("jobops.verify_job_operation", kwargs=kwargs, task_id=verification_id)
    outcomes = recorder.wait(3, settle_seconds=5)
    assert len(outcomes) == 3
    assert len({o["task_urn"] for o in outcomes}) == 3
    # One round asked LinkedIn; the copies were dropped or deferred, not run.
    answered = [c for c in sandbox.status_calls()[calls_before:] if c.status == 200]
    assert len(answered) == 1
    log = workers["jobops"].read_text(errors="replace")
    assert f"verification {verification_id} round 0 ran already; dropping this copy" in log


# A visibility timeout of 10 s: the sweeper takes a round for overdue 15 s after it was due.
# No coalescing: no run settles another's round, so the log that shows a round ran shows
# which of its messages ran.
SHORT_GRACE = {"JOBOPS_VISIBILITY_TIMEOUT_SECONDS": "10", "JOBOPS_COALESCE_POLLING": "0"}
# Time to stop or freeze a worker that holds the round before it runs (at most half of 10 s).
COUNTDOWN_SECONDS = 5


def schedule_on(queue: str, recorder: Recorder, count: int) -> dict[str, str]:
    """``count`` one-job verifications scheduled by the worker on ``queue``, as a pipeline's
    schedule_verification message does: registered with that worker's short grace and
    published to its queue. Returns their task URNs by verification id."""
    urns = {}
    for _ in range(count):
        message_id = str(uuid.uuid4())
        answer = post([job()], "CREATE")
        pipeline.send_task("jobops.schedule_verification", args=[answer],
                           kwargs={"operation": "CREATE", "callbacks": recorder.callbacks,
                                   "context": recorder.context,
                                   "countdown_seconds": COUNTDOWN_SECONDS},
                           queue=queue, task_id=message_id)
        [urns[verification_id(message_id, 0)]] = task_urns(answer)
    return urns


def wait_held(log_path: Path, ids: list[str]) -> None:
    for verification in ids:
        wait_for_line(log_path, f"Task jobops.verify_job_operation[{verification}] received")


def queued(store: redis.Redis, queue: str) -> dict[str, bytes]:
    """The messages waiting in a queue's list, by task id."""
    return {json.loads(raw)["headers"]["id"]: raw for raw in store.lrange(queue, 0, -1)}


def unacknowledged(store: redis.Redis) -> set[str]:
    """Task ids of the messages delivered to a worker and not acknowledged."""
    return {json.loads(raw)[0]["headers"]["id"] for raw in store.hvals("unacked")}


def overdue_at(store: redis.Redis, ids: list[str]) -> dict[str, float]:
    """When the pending registry takes each of ``ids`` for overdue."""
    scores = {i: store.zscore("jobops:pending", i) for i in ids}
    assert None not in scores.values(), f"not registered: {scores}"
    return {i: float(score) for i, score in scores.items() if score is not None}


def wait_until_swept(store: redis.Redis, first: dict[str, float], timeout_seconds: float = 60
                     ) -> None:
    """Until a sweep has judged each round overdue since ``first``: one it leaves to wait,
    or re-sends, it looks at again one grace later, so its score moves on (or it ran)."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        scores = {i: store.zscore("jobops:pending", i) for i in first}
        left = [i for i, score in scores.items() if score is not None and score <= first[i]]
        if not left:
            return
        assert time.monotonic() < deadline, f"no sweep judged {left} in {timeout_seconds} s"
        time.sleep(0.2)


def resent(logs: list[Path], ids: list[str]) -> list[str]:
    """The sweepers' log lines that re-sent any of ``ids``."""
    return [line for path in logs for line in path.read_text(errors="replace").splitlines()
            if "re-sent" in line and any(i in line for i in ids)]


def ran(log_path: Path, ids: list[str]) -> set[str]:
    """Those of ``ids`` whose first round ran in that worker."""
    text = log_path.read_text(errors="replace")
    return {i for i in ids if f"verification {i} round 0:" in text}


def test_a_backlog_longer_than_the_grace_is_not_re_sent(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        jobops_worker: ExtraWorkers, workers: dict[str, Path]) -> None:
    sandbox.config.in_progress_seconds = 0
    stopped = jobops_worker(concurrency=1, **SHORT_GRACE)
    frozen = jobops_worker(concurrency=1, **SHORT_GRACE)
    # A worker names the queue it consumes, so sweepers search it (as schedulers name
    # theirs): a round's later messages go where it was consumed.
    deadline = time.monotonic() + 10
    while not store.sismember("jobops:queues", frozen):
        assert time.monotonic() < deadline, "the worker did not register its queue"
        time.sleep(0.1)
    in_queue = list(schedule_on(stopped, recorder, 2))
    held = list(schedule_on(frozen, recorder, 2))
    wait_held(jobops_worker.logs(frozen)[0], held)
    jobops_worker.pause(frozen)
    wait_held(jobops_worker.logs(stopped)[0], in_queue)
    jobops_worker.stop(stopped)
    # The two places a merely late message waits: the queue's list, with no worker
    # consuming it (a warm shutdown handed the countdowns back), and a frozen worker's
    # unacknowledged messages.
    assert sorted(queued(store, stopped)) == sorted(in_queue)
    assert set(held) <= unacknowledged(store)

    wait_until_swept(store, overdue_at(store, in_queue + held))
    logs = [workers["jobops"], *jobops_worker.logs(stopped), *jobops_worker.logs(frozen)]
    assert resent(logs, in_queue + held) == []

    jobops_worker(concurrency=1, queue=stopped, **SHORT_GRACE)
    jobops_worker.resume(frozen)
    outcomes = recorder.wait(4, timeout_seconds=30, settle_seconds=2)
    assert len(outcomes) == len({o["task_urn"] for o in outcomes}) == 4
    callback_ids = recorder.callback_ids()
    assert len(callback_ids) == len(set(callback_ids)) == 4
    # Each round ran where its message waited, and nowhere else.
    assert ran(jobops_worker.logs(stopped)[1], in_queue) == set(in_queue)
    assert ran(jobops_worker.logs(frozen)[0], held) == set(held)
    assert ran(workers["jobops"], in_queue + held) == set()
    assert resent([*logs, *jobops_worker.logs(stopped)], in_queue + held) == []


def test_a_message_gone_from_the_queue_is_re_sent_and_delivered(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        jobops_worker: ExtraWorkers, workers: dict[str, Path]) -> None:
    sandbox.config.in_progress_seconds = 0
    queue = jobops_worker(concurrency=1, **SHORT_GRACE)
    urns = schedule_on(queue, recorder, 3)
    ids = list(urns)
    wait_held(jobops_worker.logs(queue)[0], ids)
    jobops_worker.stop(queue)
    messages = queued(store, queue)
    assert sorted(messages) == sorted(ids)
    lost, *waiting = ids
    first = overdue_at(store, waiting)
    # As a worker that died between taking the message and recording it unacknowledged.
    assert store.lrem(queue, 1, messages[lost]) == 1

    # Re-sent to the sweeping worker's own queue, which a worker consumes.
    recorder.wait(1, timeout_seconds=60)
    wait_until_swept(store, first)
    logs = [workers["jobops"], *jobops_worker.logs(queue)]
    assert resent(logs, waiting) == []
    assert resent(logs, [lost])
    assert [o["task_urn"] for o in recorder.outcomes()] == [urns[lost]]
    assert ran(workers["jobops"], ids) == {lost}

    jobops_worker(concurrency=1, queue=queue, **SHORT_GRACE)
    outcomes = recorder.wait(3, timeout_seconds=30, settle_seconds=2)
    assert Counter(o["task_urn"] for o in outcomes) == Counter(urns.values())
    callback_ids = recorder.callback_ids()
    assert len(callback_ids) == len(set(callback_ids)) == 3
    assert ran(jobops_worker.logs(queue)[1], waiting) == set(waiting)
