"""Hostile and broken input: refused at schedule time with nothing enqueued, or survived."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import redis

from jobops.core.errors import InvalidRequest
from jobops.state import keys
from sandbox import SandboxState
from tests.conftest import Recorder, wait_for_line
from tests.env import TEST_ENV
from tests.jobs import job, post, task_urns
from tests.pipeline_app import app as pipeline
from workers import app
from workers.runtime import runtime
from workers.scheduling import schedule_from_answer, verify_urns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("workers")]
GOOD = "urn:li:simpleJobPostingTask:07ae37ab-2216-4d0f-97a0-53a516681c8f"


def signature(**options: Any) -> dict[str, Any]:
    return {"task": "tests.record_outcome", "args": [], "kwargs": {}, "options": options}


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
    ("negative countdown", {"countdown_seconds": -1}, "countdown_seconds must be at least 0"),
    ("countdown past half the visibility timeout", {"countdown_seconds": 3601},
     "countdown_seconds must be at most 3600"),
    ("NaN countdown", {"countdown_seconds": float("nan")}, "countdown_seconds must be a number"),
    ("callback countdown not a number", {"callbacks": {"DEFAULT": signature(countdown="soon")}},
     "callbacks[DEFAULT].options.countdown must be a number"),
    ("callback eta not a time", {"callbacks": {"DEFAULT": signature(eta="tomorrow")}},
     "callbacks[DEFAULT].options.eta must be an ISO 8601"),
    ("callback expires not a time", {"callbacks": {"DEFAULT": signature(expires="never")}},
     "callbacks[DEFAULT].options.expires must be"),
    ("callback queue on jobops' keys", {"callbacks": {"DEFAULT": signature(queue="jobops:token")}},
     "options.queue may not start with 'jobops:'"),
    ("callback priority not a number", {"callbacks": {"BATCH": signature(priority="high")}},
     "callbacks[BATCH].options.priority must be a whole number"),
    ("callbacks over their cap",
     {"callbacks": {"DEFAULT": {"task": "tests.record_outcome", "args": ["x" * 9_000]}}},
     "MAX_CALLBACKS_BYTES"),
    ("context copied into too many outcomes",
     {"task_urns": [f"urn:li:simpleJobPostingTask:{i:08d}" for i in range(20_000)],
      "context": {"blob": "x" * 1_000}}, "MAX_CONTEXT_COPIES_BYTES"),
    ("idempotency key too long", {"idempotency_key": "k" * 201}, "idempotency_key must be"),
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
    {"elements": [{"id": f"urn:li:simpleJobPostingTask:{i:08d}", "status": 201}
                  for i in range(1_001)]},
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
    # Nothing of it is left for later tests of the session to find pending or due.
    fleet = runtime()
    for verification_id in summary["verification_ids"]:
        app.control.revoke(verification_id)
        fleet.pending.forget(verification_id)
    if fleet.status_cache is not None:
        fleet.status_cache.settle(urns)


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


BAD_BY_NAME = [
    ({"DEFAULT": signature(countdown="soon")}, "options.countdown must be a number"),
    ({"DEFAULT": signature(priority="high")}, "options.priority must be a whole number"),
    ({"DEFAULT": signature(queue="jobops:token")}, "options.queue may not start with"),
    ({"DEFAULT": {**signature(), "subtask_type": "chord"}}, "subtask_type must be null"),
    ({"BATCH": {"task": "tests.record_batch", "options": {"countdown": "soon"}}},
     "callbacks[BATCH].options.countdown must be a number"),
    ({"DEFAULT": {"task": "tests.record_outcome", "kwargs": {"blob": "x" * 9_000}}},
     "MAX_CALLBACKS_BYTES"),
]


def test_callbacks_that_would_fail_at_delivery_are_rejected_when_sent_by_name(
        sandbox: SandboxState, recorder: Recorder, workers: dict[str, Any]) -> None:
    sandbox.config.in_progress_seconds = 0
    urns = task_urns(post([job()], "CREATE"))
    sent = [(pipeline.send_task("jobops.verify_job_operation", kwargs={
        "task_urns": urns, "operation": "CREATE", "callbacks": callbacks,
        "context": recorder.context}).id, fragment) for callbacks, fragment in BAD_BY_NAME]
    for message_id, fragment in sent:
        [line] = wait_for_line(workers["jobops"], f"verification {message_id} rejected: ")
        assert fragment in line
    text = workers["jobops"].read_text(errors="replace")
    assert not [i for i, _ in sent if f"verification {i} failed; retrying" in text]
    assert recorder.outcomes() == []


def test_a_crafted_urn_cannot_take_another_verifications_job_summary(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis,
        workers: dict[str, Any]) -> None:
    sandbox.config.in_progress_seconds = 0
    answer = post([job()], "CREATE")
    [urn] = task_urns(answer)
    summary_key = keys.job_summary_key([urn])
    crafted = summary_key.removeprefix("jobops:outcome:")
    other = Recorder(store, f"{recorder.tag}-crafted")
    pipeline.send_task("jobops.verify_job_operation", kwargs={
        "task_urns": [crafted], "operation": "CREATE", "callbacks": other.callbacks,
        "context": other.context})
    [invalid] = other.wait(1)
    assert invalid["status"] == "INVALID" and invalid["task_urn"] == crafted
    assert store.exists(summary_key) == 0
    pipeline.send_task("jobops.schedule_verification", args=[answer], kwargs={
        "operation": "CREATE", "context": recorder.context,
        "callbacks": {"DEFAULT": "tests.record_outcome", "JOB_COMPLETE": "tests.record_outcome"}})
    outcomes = recorder.wait(2, timeout_seconds=20)
    assert sorted(o["status"] for o in outcomes) == ["JOB_COMPLETE", "SUCCEEDED"]


def test_a_crafted_task_id_cannot_take_the_registrys_keys(
        sandbox: SandboxState, recorder: Recorder, store: redis.Redis) -> None:
    sandbox.config.in_progress_seconds = 0
    later = verify_urns([GOOD], "CREATE", countdown_seconds=3600)["verification_id"]
    try:
        urns = task_urns(post([job()], "CREATE"))
        pipeline.send_task("jobops.verify_job_operation", task_id="urns", kwargs={
            "task_urns": urns, "operation": "CREATE", "callbacks": recorder.callbacks,
            "context": recorder.context})
        recorder.wait(1)
        assert store.type(keys.PENDING_URNS) == b"hash"
        assert store.hget(keys.PENDING_URNS, later) == b"1"
    finally:
        app.control.revoke(later)
        runtime().pending.forget(later)
