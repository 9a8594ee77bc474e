"""Hostile and broken input: refused at schedule time with nothing enqueued, or survived."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.signals import before_task_publish

from jobops.errors import InvalidRequest
from sandbox import SandboxState
from tasks.scheduling import schedule_from_answer, verify_urns
from tests.conftest import Recorder
from tests.env import TEST_ENV
from tests.jobs import job, post, task_urns
from workers import app

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
GOOD = "urn:li:simpleJobPostingTask:07ae37ab-2216-4d0f-97a0-53a516681c8f"


@pytest.fixture
def published() -> Iterator[list[str]]:
    """Names of the tasks this process publishes while the test runs."""
    names: list[str] = []

    def record(sender: str | None = None, **_: Any) -> None:
        names.append(str(sender))

    before_task_publish.connect(record, weak=False)
    yield names
    before_task_publish.disconnect(record)


HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("ampersand", {"task_urns": [GOOD, f"{GOOD}&ids=urn:li:simpleJobPostingTask:x"]},
     "characters other than letters"),
    ("equals", {"task_urns": [f"{GOOD}=1"]}, "characters other than letters"),
    ("hash", {"task_urns": [f"{GOOD}#frag"]}, "characters other than letters"),
    ("space", {"task_urns": [f"{GOOD} x"]}, "characters other than letters"),
    ("newline", {"task_urns": [f"{GOOD}\nids=x"]}, "characters other than letters"),
    ("over-long", {"task_urns": ["urn:li:simpleJobPostingTask:" + "a" * 5000]},
     "characters, more than 128"),
    ("wrong kind", {"task_urns": ["urn:li:jobPosting:123"]}, "does not start with"),
    ("not a string", {"task_urns": [12345]}, "is not a string"),
    ("unknown operation", {"operation": "DELETE"}, "must be one of CREATE, UPDATE, RENEW"),
    ("callback not a task", {"callbacks": {"SUCCEEDED": 42}}, "must be a task name or a sig"),
    ("callback bad name", {"callbacks": {"FAILED": "rm -rf /"}}, "is not a task name"),
    ("callback bad key", {"callbacks": {"WHATEVER": "a.b"}}, "is not one of"),
    ("non-JSON context", {"context": {"when": object()}}, "must be JSON-serializable"),
    ("context not an object", {"context": "batch-1"}, "must be a JSON object"),
    ("empty list", {"task_urns": []}, "task_urns is empty"),
    ("too many", {"task_urns": [GOOD] * 60_000}, "at most 50000"),
]


@pytest.mark.parametrize(("changes", "message"), [(c, m) for _, c, m in HOSTILE],
                         ids=[name for name, _, _ in HOSTILE])
def test_refused_at_schedule_time_with_nothing_enqueued(
        published: list[str], changes: dict[str, Any], message: str) -> None:
    request = {"task_urns": [GOOD], "operation": "CREATE",
               "callbacks": {"DEFAULT": "tests.record_outcome"}, "context": {"t": 1}, **changes}
    with pytest.raises(InvalidRequest) as caught:
        verify_urns(**request)
    assert message in str(caught.value)
    assert published == []


@pytest.mark.parametrize("answer", [
    {"elements": [{"id": "urn:li:simpleJobPostingTask:a&b", "status": 202}]},
    {"elements": "nope"},
    {"elements": [{"status": 202}]},
    {"elements": []},
    ["not", "an", "answer"],
])
def test_broken_post_answers_are_refused(published: list[str], answer: Any) -> None:
    with pytest.raises(InvalidRequest):
        schedule_from_answer(answer, "CREATE", {"DEFAULT": "tests.record_outcome"})
    assert published == []


def test_tens_of_thousands_of_urns_are_accepted_and_split(published: list[str]) -> None:
    urns = [f"urn:li:simpleJobPostingTask:{uuid.uuid4()}" for _ in range(30_000)]
    summary = verify_urns(urns, "CREATE", {"DEFAULT": "tests.record_outcome"},
                          countdown_seconds=3600)
    assert summary["task_urns"] == 30_000
    assert len(summary["verification_ids"]) == 30
    assert published == ["jobops.verify_job_operation"] * 30
    for verification_id in summary["verification_ids"]:
        app.control.revoke(verification_id)


def test_poison_messages_are_rejected_without_blocking_others(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        workers: dict[str, Any]) -> None:
    sandbox.config.in_progress_seconds = 0
    poison = [
        {"args": ["positional"], "kwargs": {}},
        {"args": [], "kwargs": {"operation": "CREATE"}},
        {"args": [], "kwargs": {"task_urns": "urn", "operation": "CREATE"}},
        {"args": [], "kwargs": {"task_urns": [GOOD], "operation": 7}},
        {"args": [], "kwargs": {"task_urns": [GOOD], "operation": "CREATE",
                                "callbacks": {"SUCCEEDED": ["list"]}}},
    ]
    ids = []
    for message in poison:
        ids.append(app.send_task("jobops.verify_job_operation", **message).id)
    # Not a Celery message at all, though valid JSON, pushed onto the queue by hand.
    store.lpush(TEST_ENV["JOBOPS_QUEUE"], json.dumps({"body": "x", "headers": {}}))
    urns = task_urns(post([job()], "CREATE"))
    verify_urns(urns, "CREATE", recorder.callbacks, recorder.context, countdown_seconds=0)
    [outcome] = recorder.wait(1)
    assert outcome["status"] == "SUCCEEDED"
    deadline = time.monotonic() + 10
    while True:
        text = workers["jobops"].read_text(errors="replace")
        if all(f"verification {i} rejected" in text for i in ids):
            break
        assert time.monotonic() < deadline, "a poison message was not rejected with a log line"
        time.sleep(0.2)
    assert "takes keyword arguments only" in text
    assert "task_urns must be a list" in text
