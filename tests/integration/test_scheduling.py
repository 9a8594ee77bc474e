"""Scheduling: one message schedules once however often it runs; countdowns stay in bounds."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from jobops.state.keys import run_key
from sandbox import SandboxState
from tests.conftest import Recorder, wait_for_line
from tests.jobs import job, post, task_urns
from tests.pipeline_app import app as pipeline
from workers import app, scheduling
from workers.scheduling import schedule_from_answer, verify_urns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]


def registered(store: redis.Redis, tag: str) -> list[dict[str, Any]]:
    """The pending registry's entries (next rounds' arguments) of one test's verifications."""
    found = []
    for name in store.scan_iter(match="jobops:pending:*", count=1000):
        if store.type(name) != b"string":
            continue
        raw = store.get(name)
        if raw is not None and (json.loads(raw).get("context") or {}).get("test") == tag:
            found.append(json.loads(raw))
    return found


def expiring_soon(seconds: float) -> str:
    """A requested_at whose 30-day lifespan ends ``seconds`` from now."""
    return (datetime.now(UTC) - timedelta(days=30) + timedelta(seconds=seconds)).isoformat()


def test_schedule_verification_run_twice_for_one_message_schedules_once(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        workers: dict[str, Path]) -> None:
    held = job()
    answer = post([held, job(), job(title=None)], "CREATE")
    sandbox.hold(held["externalJobPostingId"])  # pending until its lifespan ends, 8 s on
    message_id = str(uuid.uuid4())
    kwargs = {"operation": "CREATE", "callbacks": recorder.callbacks,
              "context": recorder.context, "requested_at": expiring_soon(8)}
    done = f"Task jobops.schedule_verification[{message_id}] succeeded"
    # The same message twice, as the broker hands it back after its worker died.
    for count in (1, 2):
        pipeline.send_task("jobops.schedule_verification", args=[answer], kwargs=kwargs,
                           task_id=message_id)
        wait_for_line(workers["jobops"], done, count=count)
    assert len(registered(store, recorder.tag)) == 1
    outcomes = recorder.wait(3, timeout_seconds=30, settle_seconds=2)
    assert sorted(o["status"] for o in outcomes) == ["EXPIRED", "FAILED", "SUCCEEDED"]
    ids = recorder.callback_ids()
    assert len(ids) == len(set(ids)) == 3


def test_the_python_api_with_an_idempotency_key_schedules_once(
        sandbox: SandboxState, recorder: Recorder, published: list[str]) -> None:
    sandbox.config.in_progress_seconds = 0
    answer = post([job(), job(title=None)], "CREATE")
    key = f"post-{uuid.uuid4()}"
    first = schedule_from_answer(answer, "CREATE", recorder.callbacks, recorder.context,
                                 countdown_seconds=0.5, idempotency_key=key)
    again = schedule_from_answer(answer, "CREATE", recorder.callbacks, recorder.context,
                                 countdown_seconds=0.5, idempotency_key=key)
    assert again == first
    assert sorted(published) == ["jobops.verify_job_operation", "tests.record_outcome"]
    urns = task_urns(post([job()], "CREATE"))
    other_key = f"urns-{uuid.uuid4()}"
    one = verify_urns(urns, "CREATE", recorder.callbacks, recorder.context,
                      countdown_seconds=0.5, idempotency_key=other_key)
    assert verify_urns(urns, "CREATE", recorder.callbacks, recorder.context,
                       countdown_seconds=0.5, idempotency_key=other_key) == one
    assert sorted(published) == ["jobops.verify_job_operation"] * 2 + ["tests.record_outcome"]
    outcomes = recorder.wait(3, settle_seconds=2)
    assert len(outcomes) == len(set(recorder.callback_ids())) == 3


def test_a_run_that_died_before_publishing_is_finished_by_the_next(
        sandbox: SandboxState, recorder: Recorder, published_ids: list[tuple[str, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = task_urns(post([job()], "CREATE"))
    key = f"post-{uuid.uuid4()}"

    def dies(*_: Any, **__: Any) -> None:
        raise ConnectionError("the process died here")

    with monkeypatch.context() as patch:
        patch.setattr(app, "send_task", dies)
        with pytest.raises(ConnectionError):
            verify_urns(urns, "CREATE", recorder.callbacks, recorder.context,
                        countdown_seconds=0.5, idempotency_key=key)
    summary = verify_urns(urns, "CREATE", recorder.callbacks, recorder.context,
                          countdown_seconds=0.5, idempotency_key=key)
    assert published_ids == [("jobops.verify_job_operation", summary["verification_id"])]
    [outcome] = recorder.wait(1)
    assert outcome["task_urn"] == urns[0]


def test_a_run_that_died_before_noting_it_published_sends_the_same_id_again(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        published_ids: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = task_urns(post([job(), job()], "CREATE"))
    key = f"post-{uuid.uuid4()}"
    noted: list[Callable[..., Any]] = []
    with monkeypatch.context() as patch:
        patch.setattr(scheduling, "_note_published", lambda *args: noted.append(args))
        first = verify_urns(urns, "CREATE", recorder.callbacks, recorder.context,
                            countdown_seconds=0.5, idempotency_key=key)
    assert noted, "the test no longer skips noting the message as published"
    again = verify_urns(urns, "CREATE", recorder.callbacks, recorder.context,
                        countdown_seconds=0.5, idempotency_key=key)
    assert again == first
    # Two copies of one message, which the round's lease runs once.
    assert published_ids == [("jobops.verify_job_operation", first["verification_id"])] * 2
    outcomes = recorder.wait(2, settle_seconds=3)
    assert len(outcomes) == len(set(recorder.callback_ids())) == 2


@pytest.mark.parametrize(("countdown", "fragment"), [
    (-5, "countdown_seconds must be at least 0"),
    (10**9, "countdown_seconds must be at most 3600"),
    ("soon", "countdown_seconds must be a number"),
])
def test_schedule_verification_by_name_refuses_a_bad_countdown(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        workers: dict[str, Path], countdown: Any, fragment: str) -> None:
    answer = post([job(), job(title=None)], "CREATE")
    message_id = str(uuid.uuid4())
    pipeline.send_task("jobops.schedule_verification", args=[answer], task_id=message_id,
                       kwargs={"operation": "CREATE", "callbacks": recorder.callbacks,
                               "context": recorder.context, "countdown_seconds": countdown})
    [line] = wait_for_line(workers["jobops"],
                           f"Task jobops.schedule_verification[{message_id}] raised expected")
    assert fragment in line
    assert registered(store, recorder.tag) == []
    assert recorder.outcomes() == []  # not even the refused element's


def test_a_lease_wait_is_cut_to_half_the_visibility_timeout(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        jobops_worker: Callable[..., str], tmp_path: Path) -> None:
    sandbox.config.in_progress_seconds = 0
    queue = jobops_worker(concurrency=1, JOBOPS_VISIBILITY_TIMEOUT_SECONDS="20",
                          JOBOPS_RUN_LEASE_SECONDS="60")
    urns = task_urns(post([job()], "CREATE"))
    verification_id = str(uuid.uuid4())
    # Another run holds round 0 for a minute: three times what the broker waits for.
    store.set(run_key(verification_id, 0), "running:elsewhere", px=60_000)
    pipeline.send_task("jobops.verify_job_operation", queue=queue, task_id=verification_id,
                       kwargs={"task_urns": urns, "operation": "CREATE",
                               "callbacks": recorder.callbacks, "context": recorder.context})
    [line] = wait_for_line(tmp_path / f"{queue}.log", f"[{verification_id}] retry: Retry in ")
    found = re.search(r"Retry in ([0-9.]+)s", line)
    assert found is not None and float(found.group(1)) <= 10, line
    store.delete(run_key(verification_id, 0))  # that run died
    [outcome] = recorder.wait(1, timeout_seconds=20)
    assert outcome["status"] == "SUCCEEDED"
